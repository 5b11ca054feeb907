package peer

import (
	"context"
	"sync"

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
)

type prefetched struct {
	done chan struct{}
	buf  []byte // the verified block (from getBuf), if err is nil
	err  error
}

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

// run fetches ahead for jobs, in order, until done or ctx ends.
func (p *prefetcher) run(ctx context.Context, jobs []job) {
	var (
		batch []index.Block
		futs  []*prefetched
		size  int64
	)
	flush := func() {
		if len(batch) > 0 {
			p.fetch(ctx, batch, futs, size)
		}
		batch, futs, size = nil, nil, 0
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
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
	bufs := make([][]byte, len(batch))
	for i, b := range batch {
		bufs[i] = getBuf(int(b.Size))
	}
	errs := srcs[0].fetchBatch(ctx, p.f.cfg.ID, batch, bufs)
	for i, fut := range futs {
		fut.err = errs[i]
		if fut.err == nil {
			fut.buf = bufs[i]
		} else {
			putBuf(bufs[i])
			p.budget.Release(batch[i].Size)
		}
		close(fut.done)
	}
}

// take returns the prefetched block b, waiting for its batch, or nil if b
// was not prefetched or its batch failed (the caller fetches it itself).
// The caller owns the returned buffer and gives it back with p.done.
func (p *prefetcher) take(ctx context.Context, b index.Block) []byte {
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
	return fut.buf
}

// done gives back a buffer returned by take.
func (p *prefetcher) done(buf []byte) {
	p.budget.Release(int64(len(buf)))
	putBuf(buf)
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

// release waits for fut's batch and gives back its buffer.
func (p *prefetcher) release(fut *prefetched) {
	<-fut.done
	if fut.err == nil && fut.buf != nil {
		p.done(fut.buf)
		fut.buf = nil
	}
}
