package chunk

import (
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"
)

// segSize is the size of each read of a Hasher (one segment of the input):
// one maximum block, so that a block spans at most two segments and no
// byte is ever copied between buffers.
const segSize = MaxBlockSize

// Hasher chunks and hashes files using several cores with bounded memory:
// at most 2*workers+4 segment buffers of 4 MiB are in use by one call, and
// calls that share a Hasher share its buffers (a busy Hasher makes callers
// wait rather than allocate). A Hasher is safe for concurrent use; it
// hashes one file at a time (calls wait for each other), using all its
// workers on it.
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
	return &Hasher{workers: workers, pool: make(chan []byte, 2*workers+4)}
}

func (h *Hasher) get() []byte {
	select {
	case b := <-h.pool:
		return b
	default:
	}
	if h.made.Add(1) <= int32(cap(h.pool)) {
		return make([]byte, segSize)
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

// Release drops the free buffers, for the garbage collector to return to
// the OS; the next call allocates again. Buffers in use by a running call
// return to the pool as usual.
func (h *Hasher) Release() {
	for {
		select {
		case <-h.pool:
			h.made.Add(-1)
		default:
			return
		}
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

// segment is one read of the input, shared by the blocks cut from it.
type segment struct {
	buf  []byte // the pool buffer; data is buf[:n]
	data []byte
	err  error        // the read error after data (io.EOF at the end), if any
	refs atomic.Int32 // the cutter's reference plus one per pending block piece
}

// job is one block to hash: one or two pieces of consecutive segments.
type job struct {
	segs   [2]*segment
	pieces [2][]byte
	n      int // pieces in use
	out    *Hash
}

// HashReader chunks and hashes r: the caller's goroutine reads segments
// and finds the cut points (the only serial step), the Hasher's workers
// hash the blocks in parallel, straight from the segment buffers.
// The result is identical to Chunk's.
func (h *Hasher) HashReader(r io.Reader) (size int64, blocks []Block, content Hash, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()

	// read returns the next segment of r; the last one carries the read
	// error (io.EOF at the end).
	read := func() *segment {
		buf := h.get()
		n, err := io.ReadFull(r, buf)
		s := &segment{buf: buf, data: buf[:n]}
		s.refs.Store(1)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		s.err = err
		return s
	}

	jobs := make(chan job, 2*h.workers)
	var wg sync.WaitGroup
	for range h.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				h.hashJob(j)
			}
		}()
	}

	type pending struct {
		size int64
		hash *Hash
	}
	var (
		list  []pending
		cur   job   // the block being cut: its pieces so far
		clen  int64 // bytes in cur
		fp    uint64
		rerr  error
		total int64
	)
	emit := func() {
		p := pending{size: clen, hash: new(Hash)}
		list = append(list, p)
		cur.out = p.hash
		jobs <- cur
		cur, clen, fp = job{}, 0, 0
	}
	addPiece := func(s *segment, b []byte) {
		if len(b) == 0 {
			return
		}
		clen += int64(len(b))
		if k := cur.n - 1; k >= 0 && cur.segs[k] == s {
			cur.pieces[k] = cur.pieces[k][:len(cur.pieces[k])+len(b)] // contiguous in s
			return
		}
		s.refs.Add(1)
		cur.segs[cur.n], cur.pieces[cur.n] = s, b
		cur.n++
	}
	for {
		s := read()
		data := s.data
		total += int64(len(data))
		for i := 0; i < len(data); {
			var end int
			var mask uint64
			switch {
			case clen < MinBlockSize: // no cut before the minimum
				n := min(int(MinBlockSize-clen), len(data)-i)
				addPiece(s, data[i:i+n])
				i += n
				continue
			case clen < AvgBlockSize:
				end, mask = i+min(int(AvgBlockSize-clen), len(data)-i), maskS
			default:
				end, mask = i+min(int(MaxBlockSize-clen), len(data)-i), maskL
			}
			var j int
			var ok bool
			fp, j, ok = cutRange(data, fp, i, end, mask)
			addPiece(s, data[i:j])
			i = j
			if ok || clen == MaxBlockSize {
				emit()
			}
		}
		if s.err != nil {
			if !errors.Is(s.err, io.EOF) {
				rerr = s.err
			} else if clen > 0 {
				emit() // the last, short block
			}
		}
		h.release(s) // the cutter's reference
		if s.err != nil {
			break
		}
	}
	if cur.n > 0 { // after a read error: drop the partial block
		for k := range cur.n {
			h.release(cur.segs[k])
		}
	}
	close(jobs)
	wg.Wait()
	if rerr != nil {
		return 0, nil, Hash{}, rerr
	}
	if len(list) > 0 {
		blocks = make([]Block, len(list))
	}
	var off int64
	for i, p := range list {
		blocks[i] = Block{Offset: off, Size: p.size, Hash: *p.hash}
		off += p.size
	}
	return total, blocks, ContentID(total, blocks), nil
}

// hashJob hashes one block and releases its segments.
func (h *Hasher) hashJob(j job) {
	if j.n == 1 {
		*j.out = Sum(j.pieces[0])
	} else {
		d := blake3.New()
		for k := range j.n {
			_, _ = d.Write(j.pieces[k])
		}
		d.Sum(j.out[:0])
	}
	for k := range j.n {
		h.release(j.segs[k])
	}
}

func (h *Hasher) release(s *segment) {
	if s.refs.Add(-1) == 0 {
		h.put(s.buf)
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
