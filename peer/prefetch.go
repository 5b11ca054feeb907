package peer

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/syncd-project/syncd/index"
)

// Small files are pulled with their blocks fetched ahead, many per request
// (handleBlocks): with one request per file, the requests were most of the
// cost of a pull of 10,000 small files on both sides. The prefetcher walks
// the files of a wave in the order the workers take them and asks a peer
// for the blocks of up to maxBlockBatch single-block files at once; a worker
// that reaches such a file takes its block from the prefetcher (waiting if
// the batch is still on its way) and falls back to its own request if the
// batch failed. Prefetched blocks are verified like any other.
const (
	// prefetchBudget bounds the bytes of prefetched blocks waiting for
	// their worker. It is separate from MaxInflight: blocks waiting for a
	// worker must never keep the workers from their own fetches.
	prefetchBudget = 8 << 20
	// batchBytes ends a batch early once its blocks reach this size.
	batchBytes = 2 << 20
	// batchesInFlight is how many batch requests run at once, so that the
	// sender reads the next batch while the receiver verifies one. (1, 2
	// and 4 measured alike within this machine's noise, 4.5-5.6 s for
	// 10,000 files; 4 with a 256 KiB buffer per block made the receiver's
	// garbage collector its busiest part, hence the arenas.)
	batchesInFlight = 2
)

type prefetched struct {
	done  chan struct{}
	buf   []byte // the verified block, in its batch's arena, if err is nil
	err   error
	arena *arena
}

// arena holds the blocks of one batch, one buffer for all of them (a 256 KiB
// pool buffer per block of a few KiB made the garbage collector the busiest
// part of the receiver); it goes back to its pool when the last of its
// blocks is given back.
type arena struct {
	buf  []byte
	refs atomic.Int32
}

const arenaSize = batchBytes + smallBuf // a batch ends at batchBytes

var arenas = sync.Pool{New: func() any { b := make([]byte, arenaSize); return &b }}

type prefetcher struct {
	f      *folder
	budget *semaphore.Weighted

	mu  sync.Mutex
	got map[index.Hash]*prefetched // blocks fetched or on their way, not yet taken
}

func newPrefetcher(f *folder) *prefetcher {
	return &prefetcher{f: f, budget: semaphore.NewWeighted(prefetchBudget), got: map[index.Hash]*prefetched{}}
}

// prefetchable reports the block of a job worth fetching ahead: a file of
// one small block whose content is not here already.
func (p *prefetcher) prefetchable(j job) (index.Block, bool) {
	r := j.win
	if r.Kind != index.File || r.Deleted || len(r.Blocks) != 1 || r.Blocks[0].Size <= 0 || r.Blocks[0].Size > smallBuf {
		return index.Block{}, false
	}
	if j.hasLocal && !j.local.Deleted && j.local.Kind == index.File && j.local.Content == r.Content {
		return index.Block{}, false // only metadata changes
	}
	b := r.Blocks[0]
	if locs, err := p.f.e.o.Store.BlockLocations(b.Hash, 1); err != nil || len(locs) > 0 {
		return index.Block{}, false // copied from a local file
	}
	return b, true
}

// run fetches ahead for the jobs of q, in order, until q is closed or ctx
// ends.
func (p *prefetcher) run(ctx context.Context, q *jobQueue) {
	var (
		batch []index.Block
		futs  []*prefetched
		size  int64
		wg    sync.WaitGroup
	)
	defer wg.Wait()
	slots := make(chan struct{}, batchesInFlight)
	flush := func() {
		if len(batch) > 0 {
			slots <- struct{}{}
			wg.Add(1)
			go func(batch []index.Block, futs []*prefetched, size int64) {
				defer wg.Done()
				defer func() { <-slots }()
				p.fetch(ctx, batch, futs, size)
			}(batch, futs, size)
		}
		batch, futs, size = nil, nil, 0
	}
	for i := 0; ctx.Err() == nil; i++ {
		if i >= q.len() {
			flush() // the workers need these before the queue grows
		}
		j, ok := q.get(ctx, i)
		if !ok {
			break
		}
		b, ok := p.prefetchable(j)
		if !ok {
			continue
		}
		fut := &prefetched{done: make(chan struct{})}
		p.mu.Lock()
		if _, dup := p.got[b.Hash]; dup {
			p.mu.Unlock()
			continue
		}
		p.got[b.Hash] = fut
		p.mu.Unlock()
		batch, futs, size = append(batch, b), append(futs, fut), size+b.Size
		if len(batch) == maxBlockBatch || size >= batchBytes {
			flush()
		}
	}
	flush()
}

// fetch runs one batch and settles its futures.
func (p *prefetcher) fetch(ctx context.Context, batch []index.Block, futs []*prefetched, size int64) {
	settle := func(err error) {
		for _, fut := range futs {
			fut.err = err
			close(fut.done)
		}
	}
	if err := p.budget.Acquire(ctx, size); err != nil {
		settle(err)
		return
	}
	srcs := p.f.e.sources(p.f.cfg.ID)
	if len(srcs) == 0 {
		p.budget.Release(size)
		settle(ErrNoSource)
		return
	}
	a := &arena{buf: *arenas.Get().(*[]byte)}
	bufs := make([][]byte, len(batch))
	off := int64(0)
	for i, b := range batch {
		bufs[i] = a.buf[off : off+b.Size : off+b.Size]
		off += b.Size
	}
	errs := srcs[0].fetchBatch(ctx, p.f.cfg.ID, batch, bufs)
	ok := int32(0)
	for i, fut := range futs {
		fut.err = errs[i]
		if fut.err == nil {
			fut.buf, fut.arena = bufs[i], a
			ok++
		} else {
			p.budget.Release(batch[i].Size)
		}
	}
	a.refs.Store(ok) // before any taker can give a block back
	if ok == 0 {
		arenas.Put(&a.buf)
	}
	for _, fut := range futs {
		close(fut.done)
	}
}

// take returns the prefetched block b, waiting for its batch, or nil if b
// was not prefetched or its batch failed (the caller fetches it itself).
// The caller gives the block back with p.done(fut) once written.
func (p *prefetcher) take(ctx context.Context, b index.Block) *prefetched {
	p.mu.Lock()
	fut := p.got[b.Hash]
	delete(p.got, b.Hash)
	p.mu.Unlock()
	if fut == nil {
		return nil
	}
	select {
	case <-fut.done:
	case <-ctx.Done():
		go p.release(fut)
		return nil
	}
	if fut.err != nil || int64(len(fut.buf)) != b.Size {
		p.release(fut)
		return nil
	}
	return fut
}

// done gives back a block returned by take.
func (p *prefetcher) done(fut *prefetched) {
	if fut.buf == nil {
		return
	}
	p.budget.Release(int64(len(fut.buf)))
	fut.buf = nil
	if fut.arena.refs.Add(-1) == 0 {
		arenas.Put(&fut.arena.buf)
	}
}

// drop gives back the block of a job that ended without taking it.
func (p *prefetcher) drop(j job) {
	if len(j.win.Blocks) != 1 {
		return
	}
	p.mu.Lock()
	fut := p.got[j.win.Blocks[0].Hash]
	delete(p.got, j.win.Blocks[0].Hash)
	p.mu.Unlock()
	if fut != nil {
		go p.release(fut)
	}
}

// release waits for fut's batch and gives back its block.
func (p *prefetcher) release(fut *prefetched) {
	<-fut.done
	if fut.err == nil {
		p.done(fut)
	}
}
