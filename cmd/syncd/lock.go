package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// errLocked is wrapped when another process holds the daemon lock.
var errLocked = errors.New("another syncd is already running")

// acquireLock takes the daemon's lock file (flock, exclusive, non-blocking)
// and writes this process's PID into it. A second daemon on the same home
// gets an error wrapping errLocked that names the holder's PID. The kernel
// drops the lock when the process exits, however it exits, so a stale lock
// file never blocks a restart. release unlocks; the file is left in place
// (removing it would let two processes lock different inodes).
func acquireLock(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, withHint(fmt.Errorf("open lock file: %w", err), "check the permissions of "+filepath.Dir(path))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if b, rerr := io.ReadAll(io.LimitReader(f, 32)); rerr == nil {
				if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && n > 0 {
					pid = strconv.Itoa(n)
				}
			}
			return nil, withHint(fmt.Errorf("%w with home %s (pid %s)", errLocked, filepath.Dir(path), pid),
				"stop it first ('syncd status' shows what it is doing), or use another --home")
		}
		return nil, withHint(fmt.Errorf("lock %s: %w", path, err), "check the file system supports flock")
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
