package index

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// MinIndexFree is the free space the index's file system must keep for
// the store to write. badger writes its memtable log and value log
// through memory maps of files made at their full size without
// allocating them (the value log's is twice ValueLogFileSize, 128 MiB):
// on a full file system a write into such a page is a SIGBUS, which ends
// the daemon. A write that would start with less than this free fails
// instead (ErrIndexDiskFull) and the daemon goes on.
const MinIndexFree = 192 << 20

// ErrIndexDiskFull is returned by the store's writes when its file system
// has less than MinIndexFree free. It wraps ENOSPC.
var ErrIndexDiskFull = fmt.Errorf("index disk full: syncd's index needs %d MiB free on its disk: %w", MinIndexFree>>20, syscall.ENOSPC)

// freeSpace returns the bytes an unprivileged user may still write on the
// file system of dir (a variable for tests).
var freeSpace = func(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// room is the check before every write of the store: it returns
// ErrIndexBroken once a write has broken badger (see broke),
// ErrIndexDiskFull if the store's file system is below MinIndexFree, and
// ErrIndexBroken too when the index directory is gone (deleted while the
// daemon runs): badger would fail to make its next memtable there and be
// broken by it. Never for an in-memory store; a statfs that fails
// otherwise lets the write go ahead.
func (s *Store) room() error {
	if err := s.brokenErr(); err != nil {
		return err
	}
	if s.dir == "" {
		return nil
	}
	free, err := freeSpace(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: its directory %s is gone; restart syncd to make it again (it rescans the folders)", ErrIndexBroken, s.dir)
	}
	if err != nil || free >= MinIndexFree {
		return nil
	}
	return fmt.Errorf("%w; %d MiB free in %s", ErrIndexDiskFull, free>>20, s.dir)
}

// ErrIndexBroken is returned by every method of a store that can no
// longer be used (see broke).
var ErrIndexBroken = errors.New("the index can no longer be used")

// broke looks at the error of a write: when badger could not make a new
// memtable (out of file descriptors, its directory gone or read-only), it
// is left without one, and the next read or write through it would crash
// the process (a nil memtable in its read path, an assertion in its write
// path). From then on the store refuses everything with ErrIndexBroken,
// and the daemon says to restart. It returns err.
func (s *Store) broke(err error) error {
	if err != nil && strings.Contains(err.Error(), "cannot create new mem table") {
		e := fmt.Errorf("%w: %v; restart syncd once its disk takes writes again", ErrIndexBroken, err)
		if s.broken.CompareAndSwap(nil, &e) {
			s.log.Error("the index can no longer be used; restart syncd", "err", err)
		}
	}
	return err
}

// brokenErr returns the error that broke the store, or nil.
func (s *Store) brokenErr() error {
	if e := s.broken.Load(); e != nil {
		return *e
	}
	return nil
}

// IsDiskFull reports whether err says a disk is full: the index's
// (ErrIndexDiskFull) or another (ENOSPC, EDQUOT).
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
