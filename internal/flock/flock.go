// Package flock gives a process exclusive use of a directory through an
// advisory lock file (flock(2) on Unix; nothing elsewhere): one server per
// data directory, one Shipper per spool directory.
package flock

import "errors"

// ErrLocked is returned by TryLock when the lock is held elsewhere.
var ErrLocked = errors.New("flock: locked by another holder")
