//go:build unix

package capture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockSpool takes an exclusive advisory lock (flock) on dir/LOCK, so that
// two Shippers, in one process or two, never share a spool directory: each
// would replay and delete the other's segments. The kernel releases the
// lock when the process ends, however it ends.
func lockSpool(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("capture: spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("capture: spool directory %s is in use by another Shipper; give each Shipper its own SpoolDir", dir)
		}
		return nil, fmt.Errorf("capture: spool: lock %s: %w", dir, err)
	}
	return f, nil
}
