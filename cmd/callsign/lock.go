package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/callsignhq/callsign/internal/flock"
)

// serveLock is the file in the data directory that a running server holds
// locked.
const serveLock = "serve.lock"

// lockDataDir locks dir/serve.lock for as long as the server runs: one
// server appends events to a data directory at a time (the keys of events
// not yet rolled up live in its memory). CLI commands on the same
// directory do not take it. Where flock is not available it returns nil.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	f, err := flock.TryLock(filepath.Join(dir, serveLock))
	if errors.Is(err, flock.ErrLocked) {
		return nil, fmt.Errorf("another callsign serve is running on %s: stop it, or give this one another --data", dir)
	}
	return f, err
}
