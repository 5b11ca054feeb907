package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcquireLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "syncd.lock")
	release, err := acquireLock(path)
	if err != nil {
		t.Fatalf("acquireLock = %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(data)), fmt.Sprint(os.Getpid()); got != want {
		t.Errorf("lock file = %q, want pid %q", got, want)
	}
	// flock locks belong to the open file description: a second open in
	// the same process conflicts like another process would.
	_, err = acquireLock(path)
	if !errors.Is(err, errLocked) {
		t.Fatalf("acquireLock(held) = %v, want errLocked", err)
	}
	want := fmt.Sprintf("another syncd is already running with home %s (pid %d)", dir, os.Getpid())
	if err.Error() != want {
		t.Errorf("acquireLock(held) = %q, want %q", err, want)
	}
	release()
	release2, err := acquireLock(path)
	if err != nil {
		t.Fatalf("acquireLock(after release) = %v", err)
	}
	release2()
}

func TestAcquireLockNoDir(t *testing.T) {
	if _, err := acquireLock(filepath.Join(t.TempDir(), "missing", "syncd.lock")); err == nil {
		t.Errorf("acquireLock(missing dir) = nil, want an error")
	}
}
