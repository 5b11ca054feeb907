package peer

import (
	"context"
	"errors"
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
//
// Workers can overtake the prefetcher (it waits for a free batch slot while
// they go on with blocks of their own). A job a worker has started is never
// fetched ahead afterwards: nobody would take that block, and blocks nobody
// takes would hold the budget until the pass ends, so that the next batch
// would wait for budget forever, and the workers waiting for its blocks
// with it.
const (
	// prefetchBudget bounds the bytes of the arenas of prefetched blocks
	// (a batch's arena until its last block is taken). It is separate
	// from MaxInflight: blocks waiting for a worker must never keep the
	// workers from their own fetches. (It counted the blocks' bytes once,
	// and each batch took a 2.25 MiB arena: for files of 1 KiB, 64 to a
	// batch, 8 MiB of blocks held 128 arenas, 290 MB, in a pull of
	// 40,000 such files: a heap profile.)
	prefetchBudget = 10 << 20
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
	job   int // the queue index of the job it was fetched for
	done  chan struct{}
	buf   []byte // the verified block, in its batch's arena, if err is nil
	err   error
	arena *arena
}

// arena holds the blocks of one batch, one buffer for all of them (a 256 KiB
// pool buffer per block of a few KiB made the garbage collector the busiest
// part of the receiver); it goes back to its prefetcher's free arenas, and
// its size to the budget, when the last of its blocks is given back.
type arena struct {
	buf  []byte // len: the size of its class
	cls  int    // its index in arenaSizes
	refs atomic.Int32
}

const (
	arenaSize = batchBytes + smallBuf // a batch ends at batchBytes
	// maxFreeArenas is how many free arenas of each size a prefetcher
	// keeps: enough for the batches in flight and the budget's worth
	// waiting for workers.
	maxFreeArenas = batchesInFlight + prefetchBudget/batchBytes + 1
)

// arenaSizes are the sizes an arena comes in: a batch takes the smallest
// that holds it, so that a batch of small files does not hold a large one.
var arenaSizes = [...]int64{64 << 10, 256 << 10, 1 << 20, arenaSize}

// arenaClass returns the index of the smallest arena size of at least n.
func arenaClass(n int64) int {
	for i, sz := range arenaSizes {
		if n <= sz {
			return i
		}
	}
	return len(arenaSizes) - 1
}

type prefetcher struct {
	f      *folder
	budget *semaphore.Weighted

	// arenas are the free arenas by size, kept for the pass: in a
	// sync.Pool the garbage collector took them, and each new one cost
	// page faults, dear on a VM.
	arenas [len(arenaSizes)]chan []byte

	mu  sync.Mutex
	got map[index.Hash]*prefetched // blocks fetched or on their way, not yet taken
	// next is the queue index the prefetcher looks at next; started holds
	// the jobs at or after it that a worker has started: it skips them.
	next    int
	started map[int]bool
}

func newPrefetcher(f *folder) *prefetcher {
	p := &prefetcher{f: f, budget: semaphore.NewWeighted(prefetchBudget),
		got: map[index.Hash]*prefetched{}, started: map[int]bool{}}
	for i := range p.arenas {
		p.arenas[i] = make(chan []byte, maxFreeArenas)
	}
	return p
}

// arena returns a free arena of class cls (its size is taken from the
// budget by the caller).
func (p *prefetcher) arena(cls int) *arena {
	select {
	case b := <-p.arenas[cls]:
		return &arena{buf: b, cls: cls}
	default:
		return &arena{buf: make([]byte, arenaSizes[cls]), cls: cls}
	}
}

// free gives arena a back, and its size to the budget.
func (p *prefetcher) free(a *arena) {
	select {
	case p.arenas[a.cls] <- a.buf:
	default:
	}
	p.budget.Release(arenaSizes[a.cls])
}

// start tells the prefetcher that a worker starts job i of the queue.
func (p *prefetcher) start(i int) {
	p.mu.Lock()
	if i >= p.next {
		p.started[i] = true
	}
	p.mu.Unlock()
}

// claim moves the prefetcher past job i and registers its block b to be
// fetched ahead if want, unless a worker has started the job meanwhile or
// the block is on its way already. Until then start(i) records a worker's
// start, so that no block is fetched for a job that has gone by.
func (p *prefetcher) claim(i int, b index.Block, want bool) *prefetched {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = i + 1
	if p.started[i] {
		delete(p.started, i)
		return nil
	}
	if _, dup := p.got[b.Hash]; dup || !want {
		return nil
	}
	fut := &prefetched{job: i, done: make(chan struct{})}
	p.got[b.Hash] = fut
	return fut
}

// prefetchable reports the block of a job worth fetching ahead: a file of
// one small block whose content is not here already (leaveLocal leaves out
// the blocks that other local files hold).
func (p *prefetcher) prefetchable(j job) (index.Block, bool) {
	r := j.win
	if r.Kind != index.File || r.Deleted || len(r.Blocks) != 1 || r.Blocks[0].Size <= 0 || r.Blocks[0].Size > smallBuf {
		return index.Block{}, false
	}
	if j.hasLocal && !j.local.Deleted && j.local.Kind == index.File && j.local.Content == r.Content {
		return index.Block{}, false // only metadata changes
	}
	if p.f.mayMove(j) {
		return index.Block{}, false // moved here from a file about to go
	}
	if p.f.hasTemp(j) {
		// Its worker resumes the temp file an earlier try kept (a restart
		// after a crash): it needs no block. Fetched anyway, the same
		// files' blocks went over the wire again after every restart.
		return index.Block{}, false
	}
	return r.Blocks[0], true
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
	batches := 0
	flush := func() {
		if len(batch) > 0 {
			batch, futs, size = p.leaveLocal(batch, futs, size)
		}
		if len(batch) > 0 {
			slots <- struct{}{}
			// The budget is taken here, in queue order: a batch whose
			// goroutine ran late found it taken by the batches after it,
			// whose blocks no worker reaches before its own.
			if err := p.budget.Acquire(ctx, arenaSizes[arenaClass(size)]); err != nil {
				<-slots
				settle(futs, err)
				batch, futs, size = nil, nil, 0
				return
			}
			wg.Add(1)
			go func(n int, batch []index.Block, futs []*prefetched, size int64) {
				defer wg.Done()
				defer func() { <-slots }()
				if h := p.f.e.o.hooks.prefetchBatch; h != nil {
					h(n)
				}
				p.fetch(ctx, batch, futs, size)
			}(batches, batch, futs, size)
			batches++
		}
		batch, futs, size = nil, nil, 0
	}
	for i := 0; ctx.Err() == nil; i++ {
		if i >= q.len() {
			flush() // the workers need these before the queue grows
		}
		if h := p.f.e.o.hooks.prefetchJob; h != nil {
			h(i)
		}
		j, ok := q.get(ctx, i)
		if !ok {
			break
		}
		b, ok := p.prefetchable(j)
		fut := p.claim(i, b, ok)
		if fut == nil {
			continue
		}
		batch, futs, size = append(batch, b), append(futs, fut), size+b.Size
		if len(batch) == maxBlockBatch || size >= batchBytes {
			flush()
		}
	}
	flush()
}

// leaveLocal settles the futures of the blocks of batch that a local file
// holds (their workers copy them from there) and returns the rest. One
// lookup for the batch: one per block cost more than the rest of the
// prefetcher. It runs before the batch waits for a slot or budget, so that
// a worker that only copies does not wait for other batches' transfers.
func (p *prefetcher) leaveLocal(batch []index.Block, futs []*prefetched, size int64) ([]index.Block, []*prefetched, int64) {
	hs := make([]index.Hash, len(batch))
	for i, b := range batch {
		hs[i] = b.Hash
	}
	locs, err := p.f.e.o.Store.BlockLocationsOf(hs, 1)
	if err != nil {
		return batch, futs, size // fetched from peers, then
	}
	k := 0
	for i, b := range batch {
		if len(locs[i]) > 0 {
			futs[i].err = errLocalCopy
			close(futs[i].done)
			size -= b.Size
			continue
		}
		batch[k], futs[k] = b, futs[i]
		k++
	}
	return batch[:k], futs[:k], size
}

// settle ends the futures of a batch that failed.
func settle(futs []*prefetched, err error) {
	for _, fut := range futs {
		fut.err = err
		close(fut.done)
	}
}

// fetch runs one batch, whose size the caller has taken from the budget,
// and settles its futures.
func (p *prefetcher) fetch(ctx context.Context, batch []index.Block, futs []*prefetched, size int64) {
	cls := arenaClass(size)
	srcs := p.f.e.sources(p.f.cfg.ID)
	if len(srcs) == 0 {
		p.budget.Release(arenaSizes[cls])
		settle(futs, ErrNoSource)
		return
	}
	a := p.arena(cls)
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
		}
	}
	a.refs.Store(ok) // before any taker can give a block back
	if ok == 0 {
		p.free(a)
	}
	for _, fut := range futs {
		close(fut.done)
	}
}

// errLocalCopy settles a prefetched block that a local file holds.
var errLocalCopy = errors.New("a local file holds the block")

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
	fut.buf = nil
	if fut.arena.refs.Add(-1) == 0 {
		p.free(fut.arena)
	}
}

// drop gives back the block fetched for job i (j) if the job ended without
// taking it. A block fetched for a later job with the same content stays
// for that job.
func (p *prefetcher) drop(i int, j job) {
	if len(j.win.Blocks) != 1 {
		return
	}
	h := j.win.Blocks[0].Hash
	p.mu.Lock()
	fut := p.got[h]
	if fut != nil && fut.job == i {
		delete(p.got, h)
	} else {
		fut = nil
	}
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
