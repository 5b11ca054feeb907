package peer

import (
	"regexp"
	"sync"
	"testing"
	"time"
)

// hold stops the first pull of one path in its worker until release is
// closed.
type hold struct {
	path             string
	once             sync.Once
	started, release chan struct{}
	t                *testing.T
}

func newHold(t *testing.T, path string) *hold {
	return &hold{path: path, started: make(chan struct{}), release: make(chan struct{}), t: t}
}

// hook is for Options.hooks.applyFile.
func (h *hold) hook(p string) {
	if p != h.path {
		return
	}
	h.once.Do(func() {
		close(h.started)
		select {
		case <-h.release:
		case <-time.After(converge):
			h.t.Error("never released")
		}
	})
}

// reached waits until the pull of the path is held.
func (h *hold) reached(t *testing.T) {
	t.Helper()
	select {
	case <-h.started:
	case <-time.After(converge):
		t.Fatalf("bravo never pulled %s", h.path)
	}
}

// holdFirst starts alpha and bravo, has alpha write data at path, and
// returns once bravo's pull of it is held.
func holdFirst(t *testing.T, path string, data []byte) (h *hold, a, b *testDev) {
	t.Helper()
	h = newHold(t, path)
	_, a, b = startTwo(t, func(d *testDev, o *Options) {
		if d.name == "bravo" {
			o.hooks.applyFile = h.hook
		}
	})
	a.write(path, data)
	a.rescan()
	h.reached(t)
	return h, a, b
}

// fetchedWhileHeld waits until d's running pass has fetched n bytes while
// the held pull is still held.
func (h *hold) fetchedWhileHeld(t *testing.T, d *testDev, n int64) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for {
		f := d.eng.folder("f")
		f.mu.Lock()
		done := f.doneBytes
		f.mu.Unlock()
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			close(h.release)
			t.Fatalf("while the pass was held, %s fetched %d of the %d bytes of the new files", d.name, done, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRecordsDuringPassJoinIt holds bravo's pull of the first file until
// alpha has scanned more files (and changed the first one again) and bravo
// has their records: the new directories and files must be pulled in the
// same pass, the new version of the file being pulled must wait for the
// next pass, and everything must converge.
func TestRecordsDuringPassJoinIt(t *testing.T) {
	h, a, b := holdFirst(t, "first.bin", []byte("v1"))
	a.write("late/x.bin", randBytes(1, 3000))
	a.write("late/y.bin", randBytes(2, 70000))
	a.write("late2/deep/z.bin", randBytes(3, 10))
	a.write("first.bin", []byte("v2, changed while bravo pulls v1"))
	a.rescan()
	// The new files are fetched while first.bin is still held: they joined
	// the running pass. (They are renamed into place when the pass commits.)
	h.fetchedWhileHeld(t, b, 3000+70000+10)
	close(h.release)
	waitConverged(t, converge, a, b)
	if got := readFile(t, b, "first.bin"); got != "v2, changed while bravo pulls v1" {
		t.Errorf("first.bin on bravo = %q, want alpha's second version", got)
	}
	// The first pass: three directories and three files, and first.bin's
	// v1 if its block was fetched ahead before alpha changed it.
	m := regexp.MustCompile(`msg="folder synced" dev=bravo folder=f changes=(\d+)`).FindStringSubmatch(b.logText())
	if m == nil || (m[1] != "6" && m[1] != "7") {
		t.Errorf("first pass of bravo: %v, want changes=6 or 7 (the six new paths, and v1); log:\n%s", m, b.logText())
	}
}

// TestNewDeviceRecordsDuringPass: while bravo's pass is held, charlie (whose
// records bravo has never had) comes online with a new directory and file.
// The pass must take them with charlie among the devices it looks at; a
// pass that judged them against the devices it started with dropped them
// as not needed, and they never arrived.
func TestNewDeviceRecordsDuringPass(t *testing.T) {
	n := newTestNet(t)
	a, b, c := n.addDevice("alpha"), n.addDevice("bravo"), n.addDevice("charlie")
	h := newHold(t, "first.bin")
	a.start(b)
	if err := b.startWith(func(o *Options) {
		o.hooks.applyFile = h.hook
	}, a, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.srv.Close)
	a.write("first.bin", []byte("from alpha"))
	a.rescan()
	h.reached(t)
	c.write("from-c/y.txt", []byte("from charlie"))
	c.start(b)
	c.rescan()
	// Wait until bravo has charlie's records, then let the pass go on.
	deadline := time.Now().Add(converge)
	for {
		_, seq, err := b.store.Progress("f", c.id)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := c.store.LocalSeq("f")
		if seq > 0 && seq == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bravo has charlie's records up to %d, want %d", seq, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the pass's refill runs on the records' arrival
	close(h.release)
	got := waitConverged(t, converge, a, b, c)
	if got["from-c/y.txt"] == "" {
		t.Fatalf("tree = %v, want charlie's file", got)
	}
}

// TestFilesInNewDirectoryJoinPass: the pass that makes a directory takes
// the files that arrive for it meanwhile. (A tree's directory records come
// in the first batch of its scan; when they held every later file back for
// the next pass, a 10,000-file tree was pulled in two passes.)
func TestFilesInNewDirectoryJoinPass(t *testing.T) {
	h, a, b := holdFirst(t, "album/first.jpg", []byte("first"))
	a.write("album/second.jpg", randBytes(4, 5000))
	a.write("album/day2/third.jpg", randBytes(5, 7000))
	a.rescan()
	h.fetchedWhileHeld(t, b, 5000+7000)
	close(h.release)
	got := waitConverged(t, converge, a, b)
	if got["album/second.jpg"] == "" || got["album/day2/third.jpg"] == "" {
		t.Fatalf("tree = %v, want both new files", got)
	}
	// One pass: the directory, its new subdirectory and the three files.
	m := regexp.MustCompile(`msg="folder synced" dev=bravo folder=f changes=(\d+)`).FindStringSubmatch(b.logText())
	if m == nil || m[1] != "5" {
		t.Errorf("first pass of bravo: %v, want changes=5; log:\n%s", m, b.logText())
	}
}
