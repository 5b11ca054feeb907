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

// bufPool holds block buffers of MaxBlockSize capacity.
var bufPool = sync.Pool{New: func() any { b := make([]byte, index.MaxBlockSize); return &b }}

func getBuf(n int) []byte {
	b := *(bufPool.Get().(*[]byte))
	return b[:n]
}

func putBuf(b []byte) {
	b = b[:cap(b)]
	bufPool.Put(&b)
}

// hashOf names a block's bytes (hashing protocol v1: BLAKE3-256).
func hashOf(b []byte) index.Hash { return index.Hash(blake3.Sum256(b)) }
