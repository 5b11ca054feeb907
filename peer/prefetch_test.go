package peer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/index/chunk"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// batchRT counts the block requests a device makes, one by one (GET) and
// in batches (POST); with old set it answers batches as a peer without the
// batch endpoint would (404), without asking it.
type batchRT struct {
	rt         *headerTransport
	old        bool
	gets, post atomic.Int64
}

func (c *batchRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/blocks") {
		if r.Method == http.MethodPost {
			c.post.Add(1)
			if c.old {
				return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Body: io.NopCloser(strings.NewReader("")),
					Header: http.Header{}, Request: r}, nil
			}
		} else {
			c.gets.Add(1)
		}
	}
	return c.rt.RoundTrip(r)
}

func (c *batchRT) CloseIdleConnections() { c.rt.CloseIdleConnections() }

// startCounting starts a and b pinned to each other, b's block requests
// counted by the returned transports.
func startCounting(t *testing.T, n *testNet, a, b *testDev, old bool) *[]*batchRT {
	var mu sync.Mutex
	var rts []*batchRT
	for _, d := range []struct{ dev, peer *testDev }{{a, b}, {b, a}} {
		err := d.dev.startWith(func(o *Options) {
			if d.dev != b {
				return
			}
			o.BlockClient = func(dev deviceid.ID, addr string) *http.Client {
				rt := &batchRT{rt: &headerTransport{id: b.id, to: dev, net: n, rt: &http.Transport{}}, old: old}
				mu.Lock()
				rts = append(rts, rt)
				mu.Unlock()
				return &http.Client{Transport: rt}
			}
		}, d.peer)
		if err != nil {
			t.Fatal(err)
		}
	}
	return &rts
}

func counts(rts []*batchRT) (gets, posts int64) {
	for _, rt := range rts {
		gets += rt.gets.Load()
		posts += rt.post.Load()
	}
	return gets, posts
}

// TestSmallFilesInBatches: the blocks of many small files travel in a few
// batch requests, not one request per file; a big file still uses GETs.
func TestSmallFilesInBatches(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	const files = 300
	for i := range files {
		a.write(fmt.Sprintf("d%d/f%03d.txt", i%7, i), randBytes(uint64(100+i), 100+i*37))
	}
	a.write("dup1.txt", []byte("same content"))
	a.write("dup2.txt", []byte("same content"))
	a.write("big.bin", randBytes(5, 2*index.MaxBlockSize))
	rts := startCounting(t, n, a, b, false)
	a.rescan()
	waitConverged(t, converge, a, b)
	gets, posts := counts(*rts)
	t.Logf("%d files: %d GETs, %d batches", files, gets, posts)
	if posts == 0 || posts > files/10 {
		t.Errorf("%d batch requests for %d small files, want 1 to %d", posts, files, files/10)
	}
	if gets > 20 {
		t.Errorf("%d single block requests, want only the big file's few", gets)
	}
}

// TestBatchFallback: a peer that does not serve batches (an older version)
// is asked once, then block by block, and everything arrives.
func TestBatchFallback(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	const files = 200
	for i := range files {
		a.write(fmt.Sprintf("f%03d.txt", i), randBytes(uint64(900+i), 50+i))
	}
	rts := startCounting(t, n, a, b, true)
	a.rescan()
	waitConverged(t, converge, a, b)
	gets, posts := counts(*rts)
	if posts > 2 {
		t.Errorf("%d batch requests to a peer that answered the first with 404", posts)
	}
	if gets < files {
		t.Errorf("%d single block requests for %d files", gets, files)
	}
}

// TestBatchEndpoint: the batch handler's answers and refusals.
func TestBatchEndpoint(t *testing.T) {
	n := newTestNet(t)
	a, b, stranger := n.addDevice("alpha"), n.addDevice("bravo"), n.addDevice("stranger")
	one, two := []byte("first block"), []byte("second, longer block")
	a.write("one.txt", one)
	a.write("two.txt", two)
	a.start(b)
	a.rescan()
	waitFor(t, "a to index both files", converge, func() bool {
		_, ok1, _ := a.store.Local("f", "one.txt")
		_, ok2, _ := a.store.Local("f", "two.txt")
		return ok1 && ok2
	})
	h1, h2 := index.Hash(hashOf(one)), index.Hash(hashOf(two))
	var missing index.Hash
	missing[0] = 1
	post := func(as *testDev, folder string, body []byte) (int, []byte) {
		req, _ := http.NewRequest("POST", a.srv.URL+"/v1/folders/"+folder+"/blocks", bytes.NewReader(body))
		req.Header.Set(testHeader, as.id.String())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, got
	}
	cat := func(hs ...index.Hash) []byte {
		var out []byte
		for _, h := range hs {
			out = append(out, h[:]...)
		}
		return out
	}
	code, got := post(b, "f", cat(h2, missing, h1))
	want := append(append(append([]byte{byte(len(two))}, two...), 0, byte(len(one))), one...)
	if code != http.StatusOK || !bytes.Equal(got, want) {
		t.Errorf("batch of two blocks and a missing one = %d %q, want 200 %q", code, got, want)
	}
	for _, tc := range []struct {
		name string
		as   *testDev
		fid  string
		body []byte
		want int
	}{
		{"stranger", stranger, "f", cat(h1), http.StatusForbidden},
		{"unknown folder", b, "nope", cat(h1), http.StatusNotFound},
		{"empty", b, "f", nil, http.StatusBadRequest},
		{"partial hash", b, "f", h1[:31], http.StatusBadRequest},
		{"too many", b, "f", bytes.Repeat(h1[:], maxBlockBatch+1), http.StatusBadRequest},
	} {
		if code, _ := post(tc.as, tc.fid, tc.body); code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, code, tc.want)
		}
	}
}

// writeCountingListener counts the writes on the connections it accepts.
type writeCountingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l writeCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return writeCountingConn{c, l.writes}, nil
}

type writeCountingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCountingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestBatchAnswerInFewWrites: the answer to a batch of 64 small blocks
// (640 KiB) leaves in a few large writes, not two or more per block; under
// a send rate each block leaves once it is paid for.
func TestBatchAnswerInFewWrites(t *testing.T) {
	if w := batchAnswerWrites(t, nil); w > 8 {
		// 640 KiB in 256 KiB writes is 3, plus the header and the end.
		t.Errorf("the answer took %d writes, want at most 8", w)
	}
	lim := rate.NewLimiter(rate.Limit(1<<30), 4<<20) // limited, but not slow
	if w := batchAnswerWrites(t, lim); w < maxBlockBatch {
		t.Errorf("under a send rate the answer took %d writes, want one per block (%d)", w, maxBlockBatch)
	}
}

// batchAnswerWrites serves alpha's answer to a batch of 64 blocks of 10 KiB
// (alpha sending at rate lim), checks it, and returns how many writes its
// connection took.
func batchAnswerWrites(t *testing.T, lim *rate.Limiter) int64 {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	var want [][]byte
	for i := range maxBlockBatch {
		data := randBytes(uint64(100+i), 10<<10)
		want = append(want, data)
		a.write(fmt.Sprintf("small/%02d.bin", i), data)
	}
	if err := a.startWith(func(o *Options) { o.SendRate = lim }, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.srv.Close)
	a.rescan()
	waitFor(t, "a to index the files", converge, func() bool {
		seq, _ := a.store.LocalSeq("f")
		return seq >= maxBlockBatch+1
	})
	var writes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*a.handler.Load()).ServeHTTP(w, r)
	}))
	srv.Listener = writeCountingListener{srv.Listener, &writes}
	srv.Start()
	defer srv.Close()
	var body []byte
	for _, d := range want {
		h := hashOf(d)
		body = append(body, h[:]...)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/folders/f/blocks", bytes.NewReader(body))
	req.Header.Set(testHeader, b.id.String())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("batch: %v %v", resp.Status, err)
	}
	for i, d := range want {
		size, k := binary.Uvarint(got)
		if k <= 0 || size != uint64(len(d)) || len(got) < k+len(d) || !bytes.Equal(got[k:k+len(d)], d) {
			t.Fatalf("block %d of the answer is not the file's content", i)
		}
		got = got[k+len(d):]
	}
	if len(got) != 0 {
		t.Fatalf("%d bytes after the last block", len(got))
	}
	return writes.Load()
}

// TestPrefetcherBehindWorkers: workers that overtake the prefetcher fetch
// their blocks themselves, and the prefetcher, once it catches up, does not
// fetch those blocks again. It did: nobody took them, they held the
// prefetch budget, and once they filled it the pass waited forever.
func TestPrefetcherBehindWorkers(t *testing.T) {
	const files, size, ahead = 400, 40 << 10, 250
	var started atomic.Int64
	enough := make(chan struct{})
	var held sync.Once
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.applyFile = func(string) {
			if started.Add(1) == ahead {
				close(enough)
			}
		}
		// The first prefetcher waits at its first job until the
		// workers have started ahead files without it.
		o.hooks.prefetchJob = func(int) {
			held.Do(func() {
				select {
				case <-enough:
				case <-time.After(converge):
					t.Error("the workers did not go on while the prefetcher waited")
				}
			})
		}
	})
	for i := range files {
		a.write(fmt.Sprintf("d%d/f%03d.bin", i%4, i), randBytes(uint64(7000+i), size))
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	if got, want := b.eng.fetched(), int64(files*size); got != want {
		t.Errorf("bravo fetched %d bytes for %d bytes of files: blocks fetched twice", got, want)
	}
}

// TestPrefetchBatchesTakeBudgetInOrder: a batch whose fetch starts late (its
// goroutine not scheduled yet) must not find the budget taken by the
// batches after it, whose blocks no worker can reach before its own.
func TestPrefetchBatchesTakeBudgetInOrder(t *testing.T) {
	const files, size = 300, 60 << 10 // about 34 files per batch
	later := make(chan struct{})
	var once, held sync.Once
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.prefetchBatch = func(n int) {
			if n == 4 {
				once.Do(func() { close(later) })
			}
			if n != 0 {
				return
			}
			// The first batch of the first pass waits until the fifth
			// batch starts, or 3 s.
			held.Do(func() {
				select {
				case <-later:
				case <-time.After(3 * time.Second):
				}
			})
		}
	})
	for i := range files {
		a.write(fmt.Sprintf("d%d/f%03d.bin", i%4, i), randBytes(uint64(9000+i), size))
	}
	a.rescan()
	waitConverged(t, converge, a, b)
}

// TestPrefetchArenasBounded: while b's first pull worker is stalled, the
// prefetcher fetches ahead for thousands of 1 KiB files until its budget
// is spent. The arenas holding those blocks must stay within the budget
// (a batch of 64 tiny blocks once held a 2.25 MiB arena: 8 MiB of blocks
// held about 290 MB).
func TestPrefetchArenasBounded(t *testing.T) {
	release := make(chan struct{})
	var stalled sync.Once
	stalledc := make(chan struct{})
	var hold atomic.Bool
	pulls := make(chan struct{})
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.PullWorkers = 1
		o.hooks.beforePull = func() {
			if hold.Load() {
				<-pulls
			}
		}
		o.hooks.applyFile = func(p string) {
			stalled.Do(func() { close(stalledc); <-release })
		}
	})
	waitConverged(t, converge, a, b)
	hold.Store(true)
	since, err := a.store.LocalSeq("f")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		a.write(fmt.Sprintf("mail/d%02d/m%05d.eml", i%20, i), randBytes(uint64(i), 1024))
	}
	a.rescan()
	allIn(t, a, b, since, n+21) // one pass for all of them
	hold.Store(false)
	close(pulls)
	select {
	case <-stalledc:
	case <-time.After(converge):
		t.Fatal("b's pull never started")
	}
	held := func() (arenas, blocks int64) {
		f := b.eng.folder("f")
		f.mu.Lock()
		pf := f.pf
		f.mu.Unlock()
		if pf == nil {
			return 0, 0
		}
		pf.mu.Lock()
		defer pf.mu.Unlock()
		seen := map[*arena]bool{}
		for _, fut := range pf.got {
			select {
			case <-fut.done:
			default:
				continue
			}
			if fut.arena != nil && fut.buf != nil && !seen[fut.arena] {
				seen[fut.arena] = true
				arenas += int64(len(fut.arena.buf))
			}
			blocks += int64(len(fut.buf))
		}
		return arenas, blocks
	}
	// Let the prefetcher run ahead as far as its budget goes.
	var arenas, blocks int64
	for last, still := int64(-1), 0; still < 5; time.Sleep(100 * time.Millisecond) {
		arenas, blocks = held()
		if blocks == last {
			still++
		} else {
			last, still = blocks, 0
		}
	}
	close(release)
	if blocks < 1<<20 {
		t.Fatalf("the prefetcher ran ahead by only %d bytes of blocks", blocks)
	}
	if arenas > prefetchBudget {
		t.Errorf("%d MiB of arenas held for %d KiB of prefetched blocks, budget %d MiB", arenas>>20, blocks>>10, prefetchBudget>>20)
	}
	waitConverged(t, converge, a, b)
}

// TestPrefetchSkipsKeptTemps: after a restart, the small files whose temp
// files an earlier try kept complete are resumed from them, and the
// prefetcher does not fetch their blocks. It did, for the workers to
// ignore: a receiver killed again and again sent the same files' blocks
// over the wire after every restart and got no further.
func TestPrefetchSkipsKeptTemps(t *testing.T) {
	const files, kept, size = 60, 25, 40 << 10
	a, b := startStalled(t)
	data := make([][]byte, files)
	rel := func(i int) string { return fmt.Sprintf("d%d/f%03d.bin", i%3, i) }
	for i := range files {
		data[i] = randBytes(uint64(500+i), size)
		a.write(rel(i), data[i])
	}
	a.rescan()
	stopWhenKnown(t, a, b, rel(files-1))
	// What the killed pulls left: complete temp files, of the last files
	// in the queue, which the prefetcher reaches before the workers.
	for i := files - kept; i < files; i++ {
		_, content := chunk.Blocks(data[i])
		name := filepath.Join(b.root, path.Dir(rel(i)), tempName(path.Base(rel(i)), content))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, data[i], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b.start(a)
	waitConverged(t, converge, a, b)
	if got, want := b.eng.fetched(), int64((files-kept)*size); got != want {
		t.Errorf("bravo fetched %d bytes after the restart, want %d: the blocks of the %d files resumed from kept temp files came again", got, want, kept)
	}
	if tmps := tempsIn(t, b.root); len(tmps) != 0 {
		t.Errorf("temp files left: %q", tmps)
	}
}

// TestKeptTempOfOtherVersionResumed: a big file's pull was cut short and
// its temp file kept; meanwhile the sender edited the file in place (a
// disk image). The pull of the new version starts from the kept temp file
// and fetches only the changed blocks. It began a new temp file and
// fetched the whole file again, and the kept one was removed.
func TestKeptTempOfOtherVersionResumed(t *testing.T) {
	const size = 12 << 20
	a, b := startStalled(t)
	v1 := randBytes(77, size)
	v2 := bytes.Clone(v1)
	copy(v2[size-(1<<20):], randBytes(78, 64<<10)) // 64 KiB changed in place
	a.write("vm.img", v2)
	a.rescan()
	stopWhenKnown(t, a, b, "vm.img")
	// What a pull of v1 cut short left: its temp file, three quarters done.
	_, content := chunk.Blocks(v1)
	partial := bytes.Clone(v1)
	clear(partial[size*3/4:])
	if err := os.WriteFile(filepath.Join(b.root, tempName("vm.img", content)), partial, 0o600); err != nil {
		t.Fatal(err)
	}
	b.start(a)
	waitConverged(t, converge, a, b)
	if got := b.eng.fetched(); got > size/2 {
		t.Errorf("bravo fetched %d bytes of a %d-byte file whose temp file of the version before held three quarters: the kept blocks were not used", got, size)
	}
	if tmps := tempsIn(t, b.root); len(tmps) != 0 {
		t.Errorf("temp files left: %q", tmps)
	}
}

// startStalled starts alpha and bravo; bravo's folder goroutine dies (as
// in a kill -9) before each pull, so that it learns alpha's records and
// pulls nothing.
func startStalled(t *testing.T) (a, b *testDev) {
	_, a, b = startTwo(t, func(d *testDev, o *Options) {
		if d.name == "bravo" {
			o.hooks.beforePull = func() { runtime.Goexit() }
		}
	})
	return a, b
}

// stopWhenKnown stops bravo once it has alpha's record of p.
func stopWhenKnown(t *testing.T, a, b *testDev, p string) {
	t.Helper()
	waitFor(t, "bravo to have alpha's record of "+p, converge, func() bool {
		_, ok, _ := b.store.Remote("f", a.id, p)
		return ok
	})
	b.stop()
}

// TestCommitsWhileWaveRuns: the files of a wave show up at their paths
// while the rest of the wave still comes (commitAge), not only once all of
// it is there: over a slow link, or with big files, a batch took minutes to
// fill, and nothing was in place until the whole wave was.
func TestCommitsWhileWaveRuns(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name == "bravo" {
			o.hooks.applyFile = func(p string) {
				if p == "z-last.bin" {
					select {
					case <-release:
					case <-time.After(converge):
					}
				}
			}
		}
	})
	a.write("z-last.bin", randBytes(1, 1000))
	a.write("early.bin", randBytes(2, 1000))
	a.rescan()
	waitFor(t, "early.bin in place while z-last.bin is still pulled", commitAge+3*time.Second, func() bool {
		return fileIs(b, "early.bin", string(randBytes(2, 1000)))
	})
	once.Do(func() { close(release) })
	waitConverged(t, converge, a, b)
}
