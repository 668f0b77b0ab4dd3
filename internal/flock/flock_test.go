package flock_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/callsignhq/callsign/internal/flock"
)

// A lock is exclusive, even within one process, until its file is closed.
func TestTryLock(t *testing.T) {
	if !flock.Supported {
		t.Skip("no flock here")
	}
	path := filepath.Join(t.TempDir(), "LOCK")
	a, err := flock.TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flock.TryLock(path); !errors.Is(err, flock.ErrLocked) {
		t.Fatalf("second TryLock = %v, want ErrLocked", err)
	}
	a.Close()
	b, err := flock.TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after Close: %v", err)
	}
	b.Close()
	if _, err := flock.TryLock(filepath.Join(t.TempDir(), "no", "such", "dir", "LOCK")); err == nil {
		t.Error("TryLock in a missing directory succeeded")
	}
}
