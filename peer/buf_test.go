package peer

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

func TestBufClasses(t *testing.T) {
	for _, c := range []struct{ n, cap int }{
		{1, smallBuf}, {smallBuf, smallBuf}, {smallBuf + 1, index.MaxBlockSize}, {index.MaxBlockSize, index.MaxBlockSize},
	} {
		b := getBuf(c.n)
		if len(b) != c.n || cap(b) != c.cap {
			t.Errorf("getBuf(%d): len %d cap %d, want len %d cap %d", c.n, len(b), cap(b), c.n, c.cap)
		}
		putBuf(b)
	}
	putBuf(make([]byte, 10)) // not from a pool: dropped
	if b := getBuf(100); cap(b) != smallBuf {
		t.Errorf("after putBuf of a foreign buffer, getBuf(100) has cap %d", cap(b))
	}
}

func TestAcrossDirs(t *testing.T) {
	var jobs []job
	for _, p := range []string{"a/1", "a/2", "a/3", "b/1", "c/1", "c/2", "top"} {
		jobs = append(jobs, job{path: p})
	}
	var got []string
	for _, j := range acrossDirs(jobs) {
		got = append(got, j.path)
	}
	want := []string{"a/1", "b/1", "c/1", "top", "a/2", "c/2", "a/3"}
	if !slices.Equal(got, want) {
		t.Errorf("acrossDirs = %v, want %v", got, want)
	}
}

// TestTinyInflightBound: a MaxInflight below one block is raised to
// MaxBlockSize, so that files with several big blocks still arrive (a
// bound below a block would make its fetch wait forever).
func TestTinyInflightBound(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	a.write("big.bin", randBytes(21, 3*index.MaxBlockSize+99))
	a.write("small.txt", []byte("small"))
	for _, d := range []struct{ dev, peer *testDev }{{a, b}, {b, a}} {
		if err := d.dev.startWith(func(o *Options) { o.MaxInflight = 1; o.BlockWorkers = 4 }, d.peer); err != nil {
			t.Fatal(err)
		}
	}
	a.rescan()
	waitConverged(t, converge, a, b)
}

// TestNewFolderStartsAtOnce: a folder added on both sides while they are
// connected starts syncing at once, with the periodic ping out of the way
// (an hour): the local Configure and the peer's hello header trigger it.
func TestNewFolderStartsAtOnce(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	for _, d := range []struct{ dev, peer *testDev }{{a, b}, {b, a}} {
		if err := d.dev.startWith(func(o *Options) { o.Ping = time.Hour }, d.peer); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a and b to connect", converge, func() bool {
		return a.eng.peers[b.id].connected() && b.eng.peers[a.id].connected()
	})
	rootA, rootB := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rootA, "new.txt"), []byte("in the new folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	add := func(d *testDev, peer *testDev, root string) {
		d.eng.Configure([]PeerConfig{{ID: peer.id, Name: peer.name}}, []FolderConfig{
			{ID: "f", Root: d.root, Peers: []deviceid.ID{peer.id}},
			{ID: "g", Root: root, Peers: []deviceid.ID{peer.id}},
		})
	}
	add(a, b, rootA)
	time.Sleep(200 * time.Millisecond) // b adds it later, as a user would
	add(b, a, rootB)
	waitFor(t, "new.txt to reach b's new folder", 10*time.Second, func() bool {
		got, err := os.ReadFile(filepath.Join(rootB, "new.txt"))
		return err == nil && string(got) == "in the new folder"
	})
}

// TestWriteBehind: a large pull keeps only about wbKeep of the file in the
// page cache; the rest is written back and dropped as it goes.
func TestWriteBehind(t *testing.T) {
	dir := t.TempDir()
	needDroppablePageCache(t, dir)
	fd, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	const size = 4 * wbKeep
	chunk := randBytes(1, 1<<20)
	wb := &writeBehind{fd: fd}
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := fd.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
		if err := wb.wrote(int64(len(chunk))); err != nil {
			t.Fatal(err)
		}
	}
	resident := func(off, n int64) int64 { return residentBytes(t, fd, off, n) }
	if wb.dropped < size-wbKeep-wbStep {
		t.Errorf("dropped up to %d of %d bytes, want at least %d", wb.dropped, size, size-wbKeep-wbStep)
	}
	if in := resident(0, wb.dropped); in > wb.dropped/16 {
		t.Errorf("%d of the first %d bytes still cached after write-behind", in, wb.dropped)
	}
	if in := resident(size-wbStep, wbStep); in < wbStep/2 {
		t.Errorf("only %d of the last %d bytes cached: the tail must stay until the fsync", in, wbStep)
	}
	got := make([]byte, len(chunk))
	if _, err := fd.ReadAt(got, 0); err != nil || !bytes.Equal(got, chunk) {
		t.Errorf("content after write-behind differs (err %v)", err)
	}
}

// needDroppablePageCache skips a test of what stays in the page cache when
// dir is on tmpfs, whose pages cannot leave it (the default /tmp of some
// distributions). Under CI=true it fails instead: CI's /tmp is on disk.
func needDroppablePageCache(t *testing.T, dir string) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is on tmpfs, whose pages cannot leave the page cache; run the tests with TMPDIR on disk", dir)
		}
		t.Skipf("%s is on tmpfs, whose pages cannot leave the page cache", dir)
	}
}

// residentBytes is how many bytes of fd's range [off, off+n) are in the
// page cache (mincore).
func residentBytes(t *testing.T, fd *os.File, off, n int64) int64 {
	t.Helper()
	m, err := unix.Mmap(int(fd.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (n+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	var in int64
	for _, v := range vec {
		in += int64(v & 1)
	}
	return in * page
}

// pairHolding starts alpha and bravo, pinned to each other; with
// holdNone, bravo holds no temp file open for its commits.
func pairHolding(t *testing.T, holdNone bool) (a, b *testDev) {
	n := newTestNet(t)
	a, b = n.addDevice("alpha"), n.addDevice("bravo")
	a.start(b)
	if err := b.startWith(func(o *Options) { o.hooks.holdNone = holdNone }, a); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// writePics writes n random files pics/pNN.jpg of size base+4096*NN into
// d's folder and returns their sizes by path.
func writePics(d *testDev, n, base int) map[string]int64 {
	sizes := map[string]int64{}
	for i := range n {
		p := fmt.Sprintf("pics/p%02d.jpg", i)
		sizes[p] = int64(base + 4096*i)
		d.write(p, randBytes(uint64(i+1), int(sizes[p])))
	}
	return sizes
}

// TestPulledFilesLeaveThePageCache: once a commit has made pulled files
// durable, their pages are dropped from the page cache, whether the batch
// was synced file by file or with one syncfs. With no temp file held open
// for its commit (as past the limit of open files), files still arrive,
// synced after an open by name. No file stays held after the pull.
func TestPulledFilesLeaveThePageCache(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    int
		holdNone bool
	}{
		{"few", 3, false}, {"batch", syncfsMin + 8, false},
		{"few, none held", 3, true}, {"batch, none held", syncfsMin + 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pairHolding(t, tc.holdNone)
			sizes := writePics(a, tc.files, 20000)
			a.rescan()
			waitFor(t, "the files to arrive", converge, func() bool {
				for p, size := range sizes {
					if fi, err := os.Stat(filepath.Join(b.root, p)); err != nil || fi.Size() != size {
						return false
					}
				}
				return true
			})
			if !tc.holdNone {
				needDroppablePageCache(t, b.root)
				for p, size := range sizes {
					fd, err := os.Open(filepath.Join(b.root, p))
					if err != nil {
						t.Fatal(err)
					}
					if in := residentBytes(t, fd, 0, size); in > 0 {
						t.Errorf("%s: %d of %d bytes still in the page cache after its commit", p, in, size)
					}
					fd.Close()
				}
			}
			waitConverged(t, converge, a, b)
			if n := b.eng.held.n.Load(); n != 0 {
				t.Errorf("%d temp files still held after the pull", n)
			}
		})
	}
}

// TestHeldFilesBounded: at most maxHeld temp files are held open for their
// commits; one released makes room for the next.
func TestHeldFilesBounded(t *testing.T) {
	h := &heldFiles{max: 2}
	c := &commits{held: h}
	for i, want := range []bool{true, true, false} {
		if got := h.hold(); got != want {
			t.Fatalf("hold %d = %v, want %v (two held, not a third)", i+1, got, want)
		}
	}
	fd, err := os.Create(filepath.Join(t.TempDir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	p := pending{file: fd}
	if err := c.release(&p, true); err != nil || p.file != nil {
		t.Fatalf("release: %v, file %v", err, p.file)
	}
	if !h.hold() {
		t.Error("a released file did not make room")
	}
	if h.hold() {
		t.Error("a third file held")
	}
	if err := c.release(&p, true); err != nil || h.n.Load() != 2 {
		t.Errorf("releasing a file not held: %v, %d held", err, h.n.Load())
	}
	e := New(Options{})
	f1, f2 := newFolder(e, FolderConfig{ID: "a", Root: t.TempDir()}), newFolder(e, FolderConfig{ID: "b", Root: t.TempDir()})
	if f1.commits.held != &e.held || f2.commits.held != &e.held {
		t.Error("two folders of one engine do not share one bound on held files")
	}
	if maxHeld() < 1 {
		t.Errorf("maxHeld() = %d with this process's limit on open files", maxHeld())
	}
}

// failSyncFileRange makes sync_file_range fail with err when its flags
// include any of flags, until heal is called or the test ends.
func failSyncFileRange(t *testing.T, flags int, err error) (heal func()) {
	old := syncFileRange
	var healed atomic.Bool
	syncFileRange = func(fd int, off, n int64, fl int) error {
		if fl&flags != 0 && !healed.Load() {
			return err
		}
		return old(fd, off, n, fl)
	}
	t.Cleanup(func() { syncFileRange = old })
	return func() { healed.Store(true) }
}

// TestWriteBehindReportsWritebackError: a failed wait for writeback (EIO,
// ENOSPC, anything) is the write-behind's error for good, since the fsync
// through the same descriptor will not report it again; a file system on
// which starting a writeback fails only loses the write-behind.
func TestWriteBehindReportsWritebackError(t *testing.T) {
	for _, tc := range []struct {
		flags int
		err   error
		fail  bool
	}{
		{unix.SYNC_FILE_RANGE_WAIT_AFTER, unix.EIO, true},
		{unix.SYNC_FILE_RANGE_WAIT_AFTER, unix.ENOSPC, true},
		{unix.SYNC_FILE_RANGE_WAIT_AFTER, unix.EINVAL, true},
		{-1, unix.EINVAL, false},
		{-1, unix.ESPIPE, false},
	} {
		heal := failSyncFileRange(t, tc.flags, tc.err)
		fd, err := os.Create(filepath.Join(t.TempDir(), "big"))
		if err != nil {
			t.Fatal(err)
		}
		wb := &writeBehind{fd: fd}
		var got error
		for written := int64(0); written < 2*wbKeep && got == nil; written += wbStep {
			got = wb.wrote(wbStep) // counts only: no data needed
		}
		heal()
		later := wb.wrote(4 * wbStep)
		fd.Close()
		if tc.fail && (!errors.Is(got, tc.err) || !errors.Is(got, errWriteback) || later != got || wb.failed() != got) ||
			!tc.fail && (got != nil || later != nil || wb.failed() != nil) {
			t.Errorf("%v from flags %#x: wrote = %v, then %v, failed() = %v; want failure %v, for good",
				tc.err, tc.flags, got, later, wb.failed(), tc.fail)
		}
	}
}

// TestPullFailsOnWritebackError: a large file whose writeback fails is not
// put in place, and its temp file is not kept: on the disk its data may be
// wrong while the cache says otherwise, so a resume would take it as
// verified. Once the disk is well again, the whole file is fetched and
// arrives.
func TestPullFailsOnWritebackError(t *testing.T) {
	heal := failSyncFileRange(t, unix.SYNC_FILE_RANGE_WAIT_AFTER, unix.EIO)
	_, a, b := pair2(t)
	data := randBytes(7, 2*wbKeep)
	a.write("video.mp4", data)
	a.rescan()
	waitFor(t, "bravo to fail the pull", converge, func() bool {
		return strings.Contains(b.logText(), "write back")
	})
	if _, err := os.Lstat(filepath.Join(b.root, "video.mp4")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("video.mp4 put in place after a failed writeback (err %v)", err)
	}
	waitFor(t, "the temp file to go", converge, func() bool { return len(tempsIn(t, b.root)) == 0 })
	before := b.eng.fetched()
	heal()
	b.rescan() // any event runs another pass
	waitConverged(t, converge, a, b)
	if got := b.eng.fetched() - before; got < int64(len(data)) {
		t.Errorf("fetched %d bytes after healing, want all %d: the failed temp file was resumed", got, len(data))
	}
}

// TestCommitChecksEachFileAfterSyncfs: a batch made durable with one
// syncfs is checked file by file for a failed writeback, which another
// syncfs may have seen first, whether the file is held open or opened
// again; a failed file is neither put in place nor kept, and arrives once
// the disk is well again.
func TestCommitChecksEachFileAfterSyncfs(t *testing.T) {
	for _, holdNone := range []bool{false, true} {
		t.Run(fmt.Sprintf("none held %v", holdNone), func(t *testing.T) {
			a, b := pairHolding(t, holdNone)
			writePics(a, syncfsMin+8, 5000)
			heal := failSyncFileRange(t, unix.SYNC_FILE_RANGE_WAIT_AFTER, unix.EIO)
			// The devices stop before syncFileRange is put back (cleanups
			// run last first): their pulls read it.
			t.Cleanup(func() { a.stop(); b.stop() })
			a.rescan()
			waitFor(t, "bravo to fail the batch", converge, func() bool {
				return strings.Contains(b.logText(), "write back")
			})
			waitFor(t, "the temp files to go", converge, func() bool { return len(tempsIn(t, b.root)) == 0 })
			if names := namesIn(t, filepath.Join(b.root, "pics")); len(names) != 0 {
				t.Fatalf("files put in place after a failed writeback: %v", names)
			}
			heal()
			b.rescan()
			waitConverged(t, converge, a, b)
		})
	}
}

// tempsIn lists the temp files anywhere under root.
func tempsIn(t *testing.T, root string) []string {
	t.Helper()
	var temps []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), index.TempPrefix) {
			temps = append(temps, p)
		}
		return nil
	})
	return temps
}

// countingRT counts block requests and closes of idle connections.
type countingRT struct {
	rt            *headerTransport
	blocks, close atomic.Int64
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/blocks/") {
		c.blocks.Add(1)
	}
	return c.rt.RoundTrip(r)
}

func (c *countingRT) CloseIdleConnections() {
	c.close.Add(1)
	c.rt.CloseIdleConnections()
}

// TestBlockClient: with Options.BlockClient, every block request goes
// through it (none through the session's client), and its connections are
// closed once blocks have not been asked for a while.
func TestBlockClient(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	a.write("big.bin", randBytes(22, 2*index.MaxBlockSize+5))
	a.write("small.txt", []byte("small"))
	var main, blocks []*countingRT
	var mu sync.Mutex
	for _, d := range []struct{ dev, peer *testDev }{{a, b}, {b, a}} {
		err := d.dev.startWith(func(o *Options) {
			mk := func(list *[]*countingRT) func(deviceid.ID, string) *http.Client {
				return func(dev deviceid.ID, addr string) *http.Client {
					rt := &countingRT{rt: &headerTransport{id: d.dev.id, to: dev, net: n, rt: &http.Transport{}}}
					mu.Lock()
					*list = append(*list, rt)
					mu.Unlock()
					return &http.Client{Transport: rt}
				}
			}
			o.Client, o.BlockClient = mk(&main), mk(&blocks)
			o.hooks.blocksIdleAfter = 100 * time.Millisecond
		}, d.peer)
		if err != nil {
			t.Fatal(err)
		}
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	// The lists are read under mu: a session may dial again meanwhile.
	sum := func(list *[]*countingRT, f func(*countingRT) int64) (s int64) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range *list {
			s += f(c)
		}
		return s
	}
	if got := sum(&main, func(c *countingRT) int64 { return c.blocks.Load() }); got != 0 {
		t.Errorf("%d block requests went through the session's client", got)
	}
	if got := sum(&blocks, func(c *countingRT) int64 { return c.blocks.Load() }); got < 3 {
		t.Errorf("%d block requests went through the block client, want at least 3", got)
	}
	waitFor(t, "the idle block connections to be closed", 5*time.Second, func() bool {
		return sum(&blocks, func(c *countingRT) int64 { return c.close.Load() }) > 0
	})
}

// BenchmarkWriteBehind writes 1 GiB the way a pull does (6 goroutines, 1 MiB
// blocks in order, then fsync), plain and with writeBehind, and reports the
// system CPU per GiB. On this VM the plain variant's cost depends on whether
// the page cache gets pages the guest touched recently; run it after the
// machine has been idle for a while to see the cold case.
func BenchmarkWriteBehind(b *testing.B) {
	const total, block = 1 << 30, 1 << 20
	buf := randBytes(3, block)
	for _, behind := range []bool{false, true} {
		name := "plain"
		if behind {
			name = "write-behind"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(total)
			var sys time.Duration
			for b.Loop() {
				fd, err := os.Create(filepath.Join(b.TempDir(), "f"))
				if err != nil {
					b.Fatal(err)
				}
				var ru0, ru1 unix.Rusage
				unix.Getrusage(unix.RUSAGE_SELF, &ru0)
				wb := &writeBehind{fd: fd}
				offs := make(chan int64)
				var wg sync.WaitGroup
				for range 6 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for off := range offs {
							if _, err := fd.WriteAt(buf, off); err != nil {
								b.Error(err)
								return
							}
							if behind {
								if err := wb.wrote(block); err != nil {
									b.Error(err)
									return
								}
							}
						}
					}()
				}
				for off := int64(0); off < total; off += block {
					offs <- off
				}
				close(offs)
				wg.Wait()
				if err := fd.Sync(); err != nil {
					b.Fatal(err)
				}
				unix.Getrusage(unix.RUSAGE_SELF, &ru1)
				sys += time.Duration(ru1.Stime.Nano() - ru0.Stime.Nano())
				fd.Close()
				os.Remove(fd.Name())
			}
			b.ReportMetric(sys.Seconds()/float64(b.N), "sys-s/GiB")
		})
	}
}
