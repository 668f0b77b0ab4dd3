//go:build !unix

package flock

import "os"

// Supported reports whether TryLock locks on this system.
const Supported = false

// TryLock does nothing where flock is not available: it returns a nil
// file and no error.
func TryLock(path string) (*os.File, error) { return nil, nil }
