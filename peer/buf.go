package peer

import (
	"os"
	"sync"
	"syscall"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
)

const oNoFollow = syscall.O_NOFOLLOW

// syncFS makes all data of the file system holding d durable (syncfs).
func syncFS(d *os.File) error { return unix.Syncfs(int(d.Fd())) }

// startWriteback asks the kernel to start writing fd's dirty pages without
// waiting for them (sync_file_range SYNC_FILE_RANGE_WRITE); the fsync before
// the rename still guarantees durability.
func startWriteback(fd *os.File) {
	_ = unix.SyncFileRange(int(fd.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

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
