package peer

import (
	"sync"
	"syscall"

	"github.com/zeebo/blake3"

	"github.com/syncd-project/syncd/index"
)

const oNoFollow = syscall.O_NOFOLLOW

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
