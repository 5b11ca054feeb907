package peer

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/index/chunk"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// evilPeer speaks the peer protocol for folder "f" and lies as told.
type evilPeer struct {
	id    deviceid.ID
	epoch uint64

	mu     sync.Mutex // guards recs, blocks, bad
	recs   []index.Record
	blocks map[index.Hash][]byte
	bad    map[index.Hash]bool // blocks served with wrong bytes

	stallChanges atomic.Bool // changes requests never answer
	stallBlocks  atomic.Bool // block requests never answer
	endless      atomic.Bool // changes stream records without end
	blockHits    atomic.Int64
	badServed    atomic.Int64
}

// addEvil registers a lying device on the test network.
func addEvil(t *testing.T, n *testNet, name string) (*evilPeer, *testDev) {
	e := &evilPeer{id: deviceFromName(name), epoch: 7, blocks: map[index.Hash][]byte{}, bad: map[index.Hash]bool{}}
	d := &testDev{net: n, name: name, id: e.id}
	d.srv = httptest.NewServer(e)
	t.Cleanup(d.srv.Close)
	n.mu.Lock()
	n.devs[d.id] = d
	n.mu.Unlock()
	return e, d
}

// add appends records with the next sequences; data, when set, is served
// for the blocks of file records.
func (e *evilPeer) add(recs ...index.Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range recs {
		r.Sequence = uint64(len(e.recs) + 1)
		e.recs = append(e.recs, r)
	}
}

func (e *evilPeer) serve(data []byte, bad bool) {
	blocks, _ := chunk.Blocks(data)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range blocks {
		e.blocks[b.Hash] = data[b.Offset : b.Offset+b.Size]
		e.bad[b.Hash] = bad
	}
}

func (e *evilPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/hello":
		json.NewEncoder(w).Encode(Hello{ID: e.id.String(), Name: "evil", Protocol: ProtocolVersion, Folders: []string{"f"}})
	case r.URL.Path == "/v1/folders/f/changes":
		e.changes(w, r)
	case strings.HasPrefix(r.URL.Path, "/v1/folders/f/blocks/"):
		e.blockHits.Add(1)
		if e.stallBlocks.Load() {
			<-r.Context().Done()
			return
		}
		h, err := index.ParseHash(strings.TrimPrefix(r.URL.Path, "/v1/folders/f/blocks/"))
		e.mu.Lock()
		data, ok := e.blocks[h]
		bad := e.bad[h]
		e.mu.Unlock()
		if err != nil || !ok {
			http.NotFound(w, r)
			return
		}
		if bad {
			e.badServed.Add(1)
			data = bytes.Repeat([]byte{0xEE}, len(data))
		}
		w.Write(data)
	default:
		http.NotFound(w, r)
	}
}

func (e *evilPeer) changes(w http.ResponseWriter, r *http.Request) {
	if e.stallChanges.Load() {
		<-r.Context().Done()
		return
	}
	since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	w.Header().Set("Syncd-Epoch", strconv.FormatUint(e.epoch, 10))
	if e.endless.Load() {
		// Records with unsafe paths, as fast as the reader takes them.
		for seq := since + 1; r.Context().Err() == nil; seq++ {
			rec := index.Record{Path: "../spam/" + strconv.FormatUint(seq, 10), Kind: index.Dir, Sequence: seq,
				Version: index.Vector{{Device: e.id.Key(), Value: seq}}, HashVersion: index.HashVersion}
			if writeFrame(w, &rec) != nil {
				return
			}
		}
		return
	}
	e.mu.Lock()
	var out []index.Record
	for _, rec := range e.recs {
		if rec.Sequence > since {
			out = append(out, rec)
		}
	}
	e.mu.Unlock()
	if len(out) == 0 {
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
		}
		return
	}
	for i := range out {
		writeFrame(w, &out[i])
	}
}

// fileRec is a valid file record of data at p, last changed by dev.
func fileRec(p string, data []byte, dev deviceid.ID) index.Record {
	blocks, content := chunk.Blocks(data)
	return index.Record{Path: p, Kind: index.File, Size: int64(len(data)), Mode: 0o644, ModTime: time.Now().UnixNano(),
		Content: content, Blocks: blocks, Version: index.Vector{{Device: dev.Key(), Value: 1}}, HashVersion: index.HashVersion}
}

// countLines counts the log lines of d holding s.
func countLines(d *testDev, s string) int {
	n := 0
	for _, l := range strings.Split(d.logText(), "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileIs(d *testDev, rel, want string) bool {
	b, err := os.ReadFile(filepath.Join(d.root, filepath.FromSlash(rel)))
	return err == nil && string(b) == want
}

// startDev starts d with a short stall timeout and stops it at the end.
func startDev(t *testing.T, d *testDev, peers ...*testDev) {
	t.Helper()
	if err := d.startWith(func(o *Options) { o.StallTimeout = time.Second }, peers...); err != nil {
		t.Fatal(err)
	}
}

func TestHostilePeer(t *testing.T) {
	n := newTestNet(t)
	victim, honest := n.addDevice("victim"), n.addDevice("honest")
	evil, evilDev := addEvil(t, n, "evil")
	outside := t.TempDir() // the sentinel: nothing may ever appear here

	shared := randBytes(11, 3<<20+77)
	honest.write("shared.bin", shared)
	victim.write("a.txt", []byte("victim's a"))
	startDev(t, honest, victim)
	honest.rescan()
	var sharedRec index.Record
	waitFor(t, "honest to index shared.bin", converge, func() bool {
		r, ok, _ := honest.store.Local("f", "shared.bin")
		sharedRec = r
		return ok
	})

	self := evil.id
	unsafe := []string{"../pwned", "../../pwned", outside + "/pwned", "/etc/pwned", "nul\x00pwned", ".syncd/pwned",
		".syncd/trash/pwned", index.TempPrefix + "pwned", "d/" + index.TempPrefix + "x"}
	for _, p := range unsafe {
		evil.add(fileRec(p, []byte("pwned"), self))
	}
	short := fileRec("short.bin", []byte("0123456789"), self)
	short.Size = 20 // blocks add up to 10
	huge := fileRec("huge.bin", []byte("x"), self)
	huge.Size = 1 << 50
	many := fileRec("many.bin", []byte("x"), self)
	many.Blocks = make([]index.Block, 100_000)
	for i := range many.Blocks {
		many.Blocks[i] = index.Block{Offset: int64(i), Size: 1}
	}
	many.Size = int64(len(many.Blocks))
	evil.add(short, huge, many)
	upper := fileRec("A.txt", []byte("evil's A"), self)
	evil.serve([]byte("evil's A"), false)
	evil.add(upper)
	evil.add(index.Record{Path: "evil", Kind: index.Symlink, Target: outside, Mode: 0o777, ModTime: time.Now().UnixNano(),
		Version: index.Vector{{Device: self.Key(), Value: 1}}, HashVersion: index.HashVersion})
	evil.add(fileRec("evil/pwned", []byte("pwned"), self))
	// The same version of shared.bin as honest's, with wrong block data.
	evil.serve(shared, true)
	sharedRec.Inode, sharedRec.Ctime = 0, 0
	evil.add(sharedRec)

	// First only evil is reachable: the blocks of shared.bin can only come
	// from it, and all of them are refused.
	n.mu.Lock()
	n.cut[[2]deviceid.ID{victim.id, honest.id}] = true
	n.mu.Unlock()
	startDev(t, victim, evilDev, honest)
	waitFor(t, "the truthful records of evil", converge, func() bool {
		fi, err := os.Lstat(filepath.Join(victim.root, "evil"))
		return fileIs(victim, "A.txt", "evil's A") && err == nil && fi.Mode()&os.ModeSymlink != 0
	})
	waitFor(t, "a bad block from evil", converge, func() bool { return evil.badServed.Load() > 0 })
	if _, err := os.Stat(filepath.Join(victim.root, "shared.bin")); err == nil {
		t.Fatalf("shared.bin exists on victim though only bad blocks were available")
	}

	// Then honest comes: the good data arrives, verified.
	n.setLink(victim, honest, true)
	waitFor(t, "shared.bin from honest", converge, func() bool {
		b, err := os.ReadFile(filepath.Join(victim.root, "shared.bin"))
		return err == nil && bytes.Equal(b, shared)
	})
	waitConverged(t, converge, victim, honest)

	// A peer that stops answering: the session notices, other peers are
	// still served, pulls do not hang.
	evil.stallBlocks.Store(true)
	stalled := randBytes(12, 5000)
	evil.serve(stalled, false)
	evil.add(fileRec("stalled.bin", stalled, self))
	waitFor(t, "victim to learn of stalled.bin", converge, func() bool {
		_, ok, _ := victim.store.Remote("f", evil.id, "stalled.bin")
		return ok
	})
	evil.stallChanges.Store(true)
	honest.write("later.txt", []byte("still served"))
	honest.rescan()
	waitFor(t, "later.txt from honest while evil stalls", converge, func() bool { return fileIs(victim, "later.txt", "still served") })
	waitFor(t, "the session with evil to notice the stall", converge, func() bool {
		return countLines(victim, errStalled.Error()) > 0
	})

	// Nothing escaped the folder.
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("ReadDir(sentinel) = %d entries, want none", len(ents))
	}
	for _, d := range []*testDev{victim, honest} {
		filepath.Walk(d.home, func(p string, fi os.FileInfo, err error) error {
			if err == nil && strings.Contains(fi.Name(), "pwned") {
				t.Errorf("%s: %s was written", d.name, p)
			}
			return nil
		})
	}
	for _, tc := range []struct{ rel, want string }{{"a.txt", "victim's a"}, {"A.txt", "evil's A"}} {
		if !fileIs(victim, tc.rel, tc.want) {
			t.Errorf("Content(victim, %s) is not %q: names differing in case must not overwrite each other", tc.rel, tc.want)
		}
	}
	for _, tc := range []struct {
		line string
		want int
	}{
		{"refusing a record with an unsafe path from peer", 1},
		{"refusing an invalid record from peer", 1},
		{"peer sent a block that does not match its hash", 1},
		{"path=evil/pwned", 1},
	} {
		if got := countLines(victim, tc.line); got != tc.want {
			t.Errorf("CountLines(%q) = %d, want %d", tc.line, got, tc.want)
		}
	}
}

func TestHostileEndlessChanges(t *testing.T) {
	n := newTestNet(t)
	victim, honest := n.addDevice("victim"), n.addDevice("honest")
	evil, evilDev := addEvil(t, n, "evil")
	evil.endless.Store(true)
	startDev(t, honest, victim)
	startDev(t, victim, evilDev, honest)
	honest.write("one.txt", []byte("1"))
	honest.rescan()
	waitFor(t, "one.txt from honest during the flood", converge, func() bool { return fileIs(victim, "one.txt", "1") })
	waitFor(t, "a capped response", converge, func() bool { return countLines(victim, "too many records") > 0 })
	var ms runtime.MemStats
	peak := uint64(0)
	for range 3 * maxPerPoll / 50_000 {
		time.Sleep(300 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	honest.write("two.txt", []byte("2"))
	honest.rescan()
	waitFor(t, "two.txt from honest during the flood", converge, func() bool { return fileIs(victim, "two.txt", "2") })
	if peak > 256<<20 {
		t.Errorf("heap in use during the flood = %d MiB, want it bounded", peak>>20)
	}
	for _, line := range []string{"too many records", "refusing a record with an unsafe path from peer"} {
		if got := countLines(victim, line); got != 1 {
			t.Errorf("CountLines(%q) = %d, want 1", line, got)
		}
	}
	if _, err := os.Stat(filepath.Join(victim.home, "spam")); err == nil {
		t.Errorf("the flood wrote outside the folder")
	}
}

// TestHugeVersionCounter: a record whose version counter is near 2^64 is
// refused (an edit here would wrap it to zero, an invalid record that
// would cost every later change of its scan batch); a record at the bound
// syncs, an edit of it here is recorded above it, and the victim's other
// changes keep reaching its other peer. (That edit itself is refused by
// the other peer, being above the bound: a path a hostile peer pushed to
// the bound stops syncing, nothing else does.)
func TestHugeVersionCounter(t *testing.T) {
	n := newTestNet(t)
	victim, honest := n.addDevice("victim"), n.addDevice("honest")
	evil, evilDev := addEvil(t, n, "evil")
	huge, near := []byte("evil's x"), []byte("evil's z")
	evil.serve(huge, false)
	evil.serve(near, false)
	rec := fileRec("x.txt", huge, evil.id)
	rec.Version = index.Vector{{Device: evil.id.Key(), Value: ^uint64(0)}}
	ok := fileRec("z.txt", near, evil.id)
	ok.Version = index.Vector{{Device: evil.id.Key(), Value: index.MaxPeerCounter}}
	evil.add(rec, ok)
	startDev(t, honest, victim)
	startDev(t, victim, evilDev, honest)
	waitFor(t, "z.txt on victim", converge, func() bool { return fileIs(victim, "z.txt", string(near)) })
	if _, err := os.Lstat(filepath.Join(victim.root, "x.txt")); !os.IsNotExist(err) {
		t.Errorf("the record with a counter of 2^64-1 was taken (%v)", err)
	}
	if countLines(victim, "version counter 18446744073709551615 above") != 1 {
		t.Errorf("the refusal is not logged once:\n%s", victim.logText())
	}
	victim.write("z.txt", []byte("victim's edit"))
	victim.write("y.txt", []byte("unrelated new file"))
	victim.rescan()
	waitFor(t, "the victim's new file on honest", converge, func() bool {
		return fileIs(honest, "y.txt", "unrelated new file")
	})
	r, _, _ := victim.store.Local("f", "z.txt")
	if r.Version.Counter(victim.id.Key()) != index.MaxPeerCounter+1 {
		t.Errorf("the victim's edit of z.txt has version %v", r.Version)
	}
}

// TestManyVersionCounters: a record whose version vector has more
// counters than index.MaxPeerCounters is refused (an edit here adds a
// counter, and merged with a local version it would pass
// index.MaxCounters: an invalid record that cost the rest of its scan);
// one at the bound syncs, an edit of it here is recorded, and the
// victim's other changes keep reaching its other peer.
func TestManyVersionCounters(t *testing.T) {
	n := newTestNet(t)
	victim, honest := n.addDevice("victim"), n.addDevice("honest")
	evil, evilDev := addEvil(t, n, "evil")
	many := func(count int) index.Vector {
		v := make(index.Vector, 0, count)
		for d := uint64(1); len(v) < count; d++ {
			if d != victim.id.Key() && d != honest.id.Key() {
				v = append(v, index.Counter{Device: d, Value: 1})
			}
		}
		return v
	}
	tooMany, atBound := []byte("evil's x"), []byte("evil's z")
	evil.serve(tooMany, false)
	evil.serve(atBound, false)
	rec := fileRec("x.txt", tooMany, evil.id)
	rec.Version = many(index.MaxCounters)
	ok := fileRec("z.txt", atBound, evil.id)
	ok.Version = many(index.MaxPeerCounters)
	evil.add(rec, ok)
	startDev(t, honest, victim)
	startDev(t, victim, evilDev, honest)
	waitFor(t, "z.txt on victim", converge, func() bool { return fileIs(victim, "z.txt", string(atBound)) })
	if _, err := os.Lstat(filepath.Join(victim.root, "x.txt")); !os.IsNotExist(err) {
		t.Errorf("the record with %d counters was taken (%v)", index.MaxCounters, err)
	}
	if countLines(victim, "version vector of 1000 counters, more than") != 1 {
		t.Errorf("the refusal is not logged once:\n%s", victim.logText())
	}
	victim.write("z.txt", []byte("victim's edit"))
	victim.write("y.txt", []byte("unrelated new file"))
	victim.rescan()
	waitFor(t, "the victim's new file on honest", converge, func() bool {
		return fileIs(honest, "y.txt", "unrelated new file")
	})
	r, _, _ := victim.store.Local("f", "z.txt")
	if r.Version.Counter(victim.id.Key()) == 0 || r.Version.Compare(ok.Version) != index.Greater {
		t.Errorf("the victim's edit of z.txt has version %v, want one above evil's", r.Version)
	}
}

// TestChangesBatchBounded: a peer that streams records of many blocks (the
// same record again and again, cheap to send) does not make the victim hold
// them all before it stores them: the records held for one index write are
// bounded by their blocks, not only by their number.
func TestChangesBatchBounded(t *testing.T) {
	n := newTestNet(t)
	victim := n.addDevice("victim")
	evil := &testDev{net: n, name: "evil", id: deviceFromName("evil")}
	const nBlocks, copies = 200_000, 24 // 4.8M blocks, about 240 MB decoded
	var frame bytes.Buffer
	func() {
		blocks := make([]index.Block, nBlocks)
		for i := range blocks {
			blocks[i] = index.Block{Offset: int64(i) * index.MinBlockSize, Size: index.MinBlockSize}
		}
		size := int64(nBlocks) * index.MinBlockSize
		rec := index.Record{Path: "big.bin", Kind: index.File, Size: size, Mode: 0o644, ModTime: 1,
			Content: index.ContentID(size, blocks), Blocks: blocks, Sequence: 1,
			Version: index.Vector{{Device: evil.id.Key(), Value: 1}}, HashVersion: index.HashVersion}
		if err := rec.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := writeFrame(&frame, &rec); err != nil {
			t.Fatal(err)
		}
	}()
	sent := make(chan struct{})
	evil.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/hello":
			json.NewEncoder(w).Encode(Hello{ID: evil.id.String(), Protocol: ProtocolVersion, Folders: []string{"f"}})
		case "/v1/folders/f/changes":
			if r.URL.Query().Get("since") != "0" {
				<-r.Context().Done()
				return
			}
			w.Header().Set("Syncd-Epoch", "7")
			for range copies {
				if _, err := w.Write(frame.Bytes()); err != nil {
					return
				}
			}
			close(sent)
			<-r.Context().Done() // the response does not end: what is held is not stored at its end
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(evil.srv.Close)
	n.mu.Lock()
	n.devs[evil.id] = evil
	n.mu.Unlock()
	if err := victim.startWith(func(o *Options) { o.StallTimeout = time.Minute }, evil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(victim.srv.Close)
	select {
	case <-sent:
	case <-time.After(3 * time.Minute): // slow under the race detector
		t.Fatal("evil could not send its records")
	}
	var ms runtime.MemStats
	peak := uint64(0)
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	t.Logf("peak heap in use: %d MiB", peak>>20)
	if peak > 150<<20 {
		t.Errorf("heap in use while one changes answer is read = %d MiB, want it bounded (< 150 MiB)", peak>>20)
	}
}

// TestSlowBlockBounded: a peer that sends a block a byte now and then
// (never idle long enough for the watchdog) does not hold the pull pass,
// and with it another peer's deletion, for longer than the block's
// deadline.
func TestSlowBlockBounded(t *testing.T) {
	old := minBlockRate
	minBlockRate = 1 << 20 // a 300 KiB block: 2 s (twice StallTimeout) and 0.3 s
	t.Cleanup(func() { minBlockRate = old })
	n := newTestNet(t)
	victim, honest := n.addDevice("victim"), n.addDevice("honest")
	evil, evilDev := addEvil(t, n, "evil")
	slow := randBytes(21, 300<<10) // above the prefetcher's size: fetched alone
	slowBlocks, _ := chunk.Blocks(slow)
	var dripping atomic.Int64
	quit := make(chan struct{})
	evilDev.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blocks/"+slowBlocks[0].Hash.String()) {
			dripping.Add(1)
			w.WriteHeader(http.StatusOK)
			for i := 0; r.Context().Err() == nil && i < len(slow); i++ {
				select {
				case <-quit:
					return
				default:
				}
				if _, err := w.Write(slow[i : i+1]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(500 * time.Millisecond) // StallTimeout is 1 s
			}
			return
		}
		evil.ServeHTTP(w, r)
	})
	t.Cleanup(func() { close(quit) }) // before the servers close
	honest.write("gone.txt", []byte("to be deleted"))
	startDev(t, honest, victim)
	startDev(t, victim, evilDev, honest)
	honest.rescan()
	waitFor(t, "gone.txt on the victim", converge, func() bool { return fileIs(victim, "gone.txt", "to be deleted") })
	evil.add(fileRec("slow.bin", slow, evil.id))
	waitFor(t, "the drip to start", converge, func() bool { return dripping.Load() > 0 })
	if err := os.Remove(filepath.Join(honest.root, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	honest.rescan()
	waitFor(t, "honest's deletion of gone.txt on the victim", converge, func() bool {
		_, err := os.Lstat(filepath.Join(victim.root, "gone.txt"))
		return os.IsNotExist(err)
	})
	if countLines(victim, "too slowly") == 0 {
		t.Errorf("the victim does not say why slow.bin failed:\n%s", victim.logText())
	}
}

// TestServeRefusesSymlinkedParent: a directory of the folder replaced by a
// symlink after the scan (before the watcher's rescan sees it) must not
// lead the sender out of the folder. Following it served a peer, for the
// indexed block of d/f.bin, the bytes of the file at the same path outside.
func TestServeRefusesSymlinkedParent(t *testing.T) {
	n := newTestNet(t)
	a := n.addDevice("a")
	mine := randBytes(21, 64<<10)
	a.write("d/f.bin", mine)
	startDev(t, a)
	a.rescan()
	var rec index.Record
	waitFor(t, "a to index d/f.bin", converge, func() bool {
		r, ok, _ := a.store.Local("f", "d/f.bin")
		rec = r
		return ok && len(r.Blocks) == 1
	})
	b := rec.Blocks[0]
	locs, err := a.store.BlockLocations(b.Hash, maxLocations)
	if err != nil || len(locs) == 0 {
		t.Fatalf("locations of the block: %v %v", locs, err)
	}
	r := a.eng.folderReader("f")
	buf, ok := r.read(locs, b, false)
	if !ok || !bytes.Equal(buf, mine) {
		t.Fatalf("the block before the swap: ok=%v", ok)
	}
	putBuf(buf)
	r.close()

	outside := t.TempDir()
	secret := bytes.Repeat([]byte("secret "), len(mine)/7+1)[:len(mine)]
	if err := os.WriteFile(filepath.Join(outside, "f.bin"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, "d"), filepath.Join(a.root, "d.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(a.root, "d")); err != nil {
		t.Fatal(err)
	}
	for _, noat2 := range []bool{false, true} {
		noOpenat2.Store(noat2)
		r := a.eng.folderReader("f")
		buf, ok := r.read(locs, b, false)
		r.close()
		if ok {
			t.Errorf("openat2 off=%v: served %d bytes through the symlink d (outside's: %v)", noat2, len(buf), bytes.Equal(buf, secret))
		}
	}
	noOpenat2.Store(false)
	// Through a plain directory again, the block is served.
	if err := os.Remove(filepath.Join(a.root, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, "d.old"), filepath.Join(a.root, "d")); err != nil {
		t.Fatal(err)
	}
	r = a.eng.folderReader("f")
	defer r.close()
	if buf, ok := r.read(locs, b, false); !ok || !bytes.Equal(buf, mine) {
		t.Errorf("the block after the swap back: ok=%v", ok)
	}
}
