//go:build unix

package flock

import (
	"errors"
	"os"
	"syscall"
)

// Supported reports whether TryLock locks on this system.
const Supported = true

// TryLock opens (creating it, mode 0600) the file at path and takes an
// exclusive advisory lock on it without waiting. It returns ErrLocked if
// another open file holds the lock, in this process or another. Closing
// the file releases the lock; so does the end of the process, however it
// ends.
func TryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return f, nil
}
