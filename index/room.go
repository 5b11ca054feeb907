package index

import (
	"errors"
	"fmt"
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

// room returns ErrIndexDiskFull if the store's file system is below
// MinIndexFree (never for an in-memory store; a statfs that fails lets
// the write go ahead).
func (s *Store) room() error {
	if s.dir == "" {
		return nil
	}
	free, err := freeSpace(s.dir)
	if err != nil || free >= MinIndexFree {
		return nil
	}
	return fmt.Errorf("%w; %d MiB free in %s", ErrIndexDiskFull, free>>20, s.dir)
}

// IsDiskFull reports whether err says a disk is full: the index's
// (ErrIndexDiskFull) or another (ENOSPC, EDQUOT).
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
