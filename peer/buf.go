package peer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
)

const oNoFollow = syscall.O_NOFOLLOW

// syncFS makes all data of the file system holding d durable (syncfs).
func syncFS(d *os.File) error { return unix.Syncfs(int(d.Fd())) }

// Write-behind for large pulls: every wbStep bytes the file's writeback is
// started (so that the final fsync has little left to do and the disk works
// while the network does), and what lies more than wbKeep behind is waited
// for and dropped from the page cache. A 2 GiB video then passes through
// 64 MiB of cache instead of evicting 2 GiB of the user's working set, and
// the same pages are used again while they are warm: on this VM, writing
// into pages the guest had not touched for a while cost up to 4 CPU-s per
// GiB, against 0.2-0.5 s when they are reused. The data is still made
// durable by the fsync or syncfs before the rename; dropping a range that
// a slow block has not reached yet drops nothing.
const (
	wbStep = 16 << 20
	wbKeep = 48 << 20
)

type writeBehind struct {
	fd      *os.File
	mu      sync.Mutex
	written int64 // bytes written so far
	dropped int64 // [0, dropped) is written back and out of the cache
	off     bool  // this file system cannot start a writeback (sync_file_range)
	err     error // a failed writeback, for good
}

// errWriteback marks a failed writeback of a pulled file's data: the file
// is not committed, and its temp file is not kept for a resume (its pages
// may be clean in the cache and wrong on the disk).
var errWriteback = errors.New("writeback failed")

// wrote counts n more bytes written and does the write-behind work due.
// An error is a failed writeback of what was written (EIO, ENOSPC): the
// wait reports it once for this open file, so the fsync that later makes
// the file durable through the same descriptor would not, and the pull
// must fail. It stays the file's error (failed). A file system whose
// first sync_file_range fails only loses the write-behind.
func (w *writeBehind) wrote(n int64) error {
	w.mu.Lock()
	before := w.written
	w.written += n
	if w.err != nil || w.off || w.written/wbStep == before/wbStep {
		err := w.err
		w.mu.Unlock()
		return err
	}
	from, to := w.dropped, w.written-wbKeep
	if to > from {
		w.dropped = to
	}
	w.mu.Unlock()
	fd := int(w.fd.Fd())
	// Starting a writeback waits for nothing, so it consumes no error:
	// its failure says only that this file system cannot do it.
	if err := syncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE); err != nil {
		w.mu.Lock()
		w.off = true
		w.mu.Unlock()
		return nil
	}
	if to > from {
		err := syncFileRange(fd, from, to-from,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = fmt.Errorf("%w: %w", errWriteback, &fs.PathError{Op: "write back", Path: w.fd.Name(), Err: err})
			}
			err = w.err
			w.mu.Unlock()
			return err
		}
		_ = unix.Fadvise(fd, from, to-from, unix.FADV_DONTNEED)
	}
	return nil
}

// failed is the file's failed writeback, if any.
func (w *writeBehind) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// syncFileRange is unix.SyncFileRange (a variable for tests).
var syncFileRange = unix.SyncFileRange

// Block buffers come from two pools: blocks up to smallBuf (every block of
// a small file, and the last block of many) take a smallBuf buffer, larger
// ones a MaxBlockSize buffer. With one pool of 4 MiB buffers, a pull of
// 10,000 small files zeroed and faulted in a fresh 4 MiB for every 30 KiB
// block each time a collection emptied the pool.
const smallBuf = 256 << 10

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	bigPool   = sync.Pool{New: func() any { b := make([]byte, index.MaxBlockSize); return &b }}
)

// getBuf returns a buffer of length n (n <= MaxBlockSize); give it back
// with putBuf.
func getBuf(n int) []byte {
	pool := &bigPool
	if n <= smallBuf {
		pool = &smallPool
	}
	b := *(pool.Get().(*[]byte))
	return b[:n]
}

func putBuf(b []byte) {
	b = b[:cap(b)]
	switch cap(b) {
	case smallBuf:
		smallPool.Put(&b)
	case index.MaxBlockSize:
		bigPool.Put(&b)
	}
}

// hashOf names a block's bytes (hashing protocol v1: BLAKE3-256).
func hashOf(b []byte) index.Hash { return index.Hash(blake3.Sum256(b)) }

// futimens sets fd's access and modification times to t, to the
// nanosecond, through the descriptor (utimensat with no path), so that no
// path is looked up again.
func futimens(fd *os.File, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, fd.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return &fs.PathError{Op: "utimensat", Path: fd.Name(), Err: e}
	}
	return nil
}
