package chunk

import (
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// bufSize is the size of each read buffer of a Hasher: two maximum blocks,
// so that at most half of a buffer is carried over into the next one.
const bufSize = 2 * MaxBlockSize

// Hasher chunks and hashes files using several cores with bounded memory:
// at most Workers+2 buffers of 8 MiB are in use by one call, and calls that
// share a Hasher share its buffers (a busy Hasher makes callers wait rather
// than allocate). A Hasher is safe for concurrent use; it hashes one
// file at a time (calls wait for each other), using all its workers on it.
type Hasher struct {
	workers int
	mu      sync.Mutex  // held by the running HashReader call; guards nothing else
	pool    chan []byte // free buffers; allocated lazily up to cap(pool)
	made    atomic.Int32
}

// NewHasher returns a Hasher that hashes with up to workers goroutines per
// file (runtime.GOMAXPROCS(0) when workers <= 0).
func NewHasher(workers int) *Hasher {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Hasher{workers: workers, pool: make(chan []byte, workers+2)}
}

func (h *Hasher) get() []byte {
	select {
	case b := <-h.pool:
		return b
	default:
	}
	if h.made.Add(1) <= int32(cap(h.pool)) {
		return make([]byte, bufSize)
	}
	h.made.Add(-1)
	return <-h.pool
}

func (h *Hasher) put(b []byte) {
	select {
	case h.pool <- b:
	default: // cannot happen: at most cap(pool) buffers exist
	}
}

// HashFile chunks and hashes the file at path with a fresh Hasher using all
// cores. See Hasher.HashFile.
func HashFile(path string) (size int64, blocks []Block, content Hash, err error) {
	return NewHasher(0).HashFile(path)
}

// HashFile chunks and hashes the file at path. size is the number of bytes
// read; the caller compares it (and a re-stat) with what it expected to
// detect a file changed while hashing.
func (h *Hasher) HashFile(path string) (size int64, blocks []Block, content Hash, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, Hash{}, err
	}
	defer f.Close()
	return h.HashReader(f)
}

// buffer is one read buffer shared by the blocks cut from it.
type buffer struct {
	data []byte
	refs atomic.Int32 // the producer's reference plus one per pending block
}

type job struct {
	buf  *buffer
	data []byte
	out  *Hash
}

// HashReader chunks and hashes r: one goroutine (the caller) reads and cuts,
// the Hasher's workers hash the blocks in parallel.
func (h *Hasher) HashReader(r io.Reader) (size int64, blocks []Block, content Hash, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	jobs := make(chan job, 2*h.workers)
	var wg sync.WaitGroup
	for range h.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				*j.out = Sum(j.data)
				h.release(j.buf)
			}
		}()
	}
	type pending struct {
		off, size int64
		hash      *Hash
	}
	var list []pending
	err = func() error {
		cur := &buffer{data: h.get()}
		cur.refs.Store(1)
		defer func() { h.release(cur) }()
		var (
			start, end int
			off        int64
			eof        bool
		)
		for {
			if !eof && end-start < MaxBlockSize {
				if start > 0 {
					next := &buffer{data: h.get()}
					next.refs.Store(1)
					end = copy(next.data, cur.data[start:end])
					start = 0
					h.release(cur)
					cur = next
				}
				for end < len(cur.data) {
					n, err := r.Read(cur.data[end:])
					end += n
					if err == io.EOF {
						eof = true
						break
					}
					if err != nil {
						return err
					}
				}
			}
			if start == end {
				if eof {
					return nil
				}
				continue
			}
			n := Cut(cur.data[start:end])
			p := pending{off: off, size: int64(n), hash: new(Hash)}
			list = append(list, p)
			cur.refs.Add(1)
			jobs <- job{buf: cur, data: cur.data[start : start+n], out: p.hash}
			start += n
			off += int64(n)
		}
	}()
	close(jobs)
	wg.Wait()
	if err != nil {
		return 0, nil, Hash{}, err
	}
	if len(list) > 0 {
		blocks = make([]Block, len(list))
	}
	for i, p := range list {
		blocks[i] = Block{Offset: p.off, Size: p.size, Hash: *p.hash}
		size += p.size
	}
	return size, blocks, ContentID(size, blocks), nil
}

func (h *Hasher) release(b *buffer) {
	if b.refs.Add(-1) == 0 {
		h.put(b.data)
	}
}

// Blocks cuts and hashes data held in memory on the calling goroutine: the
// cheap path for small files. It returns the blocks and the content ID.
func Blocks(data []byte) ([]Block, Hash) {
	var blocks []Block
	for off := 0; off < len(data); {
		n := Cut(data[off:])
		blocks = append(blocks, Block{Offset: int64(off), Size: int64(n), Hash: Sum(data[off : off+n])})
		off += n
	}
	return blocks, ContentID(int64(len(data)), blocks)
}
