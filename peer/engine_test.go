package peer

import (
	"context"
	"fmt"
	"io"
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
)

const converge = 20 * time.Second

func pair2(t *testing.T) (*testNet, *testDev, *testDev) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	a.start(b)
	b.start(a)
	return n, a, b
}

func TestCreateModifyDelete(t *testing.T) {
	_, a, b := pair2(t)
	big := randBytes(1, 9<<20+123)
	a.write("docs/readme.txt", []byte("hello"))
	a.write("docs/deep/er/note.md", []byte("deep"))
	a.write("empty.bin", nil)
	a.write("media/big.bin", big)
	if err := os.MkdirAll(filepath.Join(a.root, "emptydir/sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("docs/readme.txt", filepath.Join(a.root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(a.root, "docs/readme.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	got := waitConverged(t, converge, a, b)
	for _, p := range []string{"docs/readme.txt", "docs/deep/er/note.md", "empty.bin", "media/big.bin", "emptydir/sub", "link"} {
		if _, ok := got[p]; !ok {
			t.Errorf("tree after sync lacks %s", p)
		}
	}
	if !strings.HasPrefix(got["docs/readme.txt"], "file:600:") {
		t.Errorf("mode of docs/readme.txt = %s, want 600", got["docs/readme.txt"])
	}

	// Modify on B, see it on A; the overwritten content stays in A's trash.
	b.write("docs/readme.txt", []byte("hello, changed"))
	b.rescan()
	waitConverged(t, converge, a, b)
	if data, _ := os.ReadFile(filepath.Join(a.root, "docs/readme.txt")); string(data) != "hello, changed" {
		t.Fatalf("A has %q after B's change", data)
	}
	if !trashHolds(t, a.root, "hello") {
		t.Errorf("A's trash does not hold the overwritten content")
	}

	// Delete on A, gone on B, recoverable from B's trash.
	if err := os.Remove(filepath.Join(a.root, "media/big.bin")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	got = waitConverged(t, converge, a, b)
	if _, ok := got["media/big.bin"]; ok {
		t.Fatalf("media/big.bin survived its deletion")
	}
	if !trashHolds(t, b.root, string(big[:4096])) {
		t.Errorf("B's trash does not hold the deleted file")
	}
}

// trashHolds reports whether a file in root's trash starts with prefix.
func trashHolds(t *testing.T, root, prefix string) bool {
	t.Helper()
	found := false
	walkFiles(trashDir(root), func(p string, _ os.FileInfo) {
		b, _ := os.ReadFile(p)
		if strings.HasPrefix(string(b), prefix) {
			found = true
		}
	})
	return found
}

// TestTagEditKeepingMtimeSyncs edits a pulled file in place on the
// receiving device and puts its mtime back (a tagger that preserves
// timestamps; the size stays too): the recorded change time shows the
// edit to the scanner, and it syncs back.
func TestTagEditKeepingMtimeSyncs(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "music/song.flac", []byte("title: old song"))
	editKeepingMtime(t, b, "music/song.flac", 7, "new")
	b.rescan()
	waitFor(t, "alpha to get bravo's edit", converge, func() bool {
		data, _ := os.ReadFile(filepath.Join(a.root, "music/song.flac"))
		return string(data) == "title: new song"
	})
	waitConverged(t, converge, a, b)
}

// TestRenameAndMoveTransferNothing moves a large file and a directory of
// small ones (whose blocks the prefetcher would fetch ahead).
func TestRenameAndMoveTransferNothing(t *testing.T) {
	_, a, b := pair2(t)
	a.write("in/video.mp4", randBytes(2, 6<<20))
	for i := range 20 {
		a.write(fmt.Sprintf("in/thumbs/t%02d.jpg", i), randBytes(uint64(300+i), 5000+i))
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	before := b.eng.fetched()
	if err := os.MkdirAll(filepath.Join(a.root, "elsewhere"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, mv := range [][2]string{{"in/video.mp4", "elsewhere/renamed.mp4"}, {"in/thumbs", "elsewhere/thumbs"}} {
		if err := os.Rename(filepath.Join(a.root, mv[0]), filepath.Join(a.root, mv[1])); err != nil {
			t.Fatal(err)
		}
	}
	a.rescan()
	got := waitConverged(t, converge, a, b)
	for _, p := range []string{"elsewhere/renamed.mp4", "elsewhere/thumbs/t19.jpg"} {
		if _, ok := got[p]; !ok {
			t.Fatalf("%s did not arrive: %v", p, got)
		}
	}
	if d := b.eng.fetched() - before; d != 0 {
		t.Errorf("a rename fetched %d bytes from peers, want 0", d)
	}
}

func TestOfflineDeviceRejoins(t *testing.T) {
	n := newTestNet(t)
	a, b, c := n.addDevice("alpha"), n.addDevice("bravo"), n.addDevice("charlie")
	a.start(b, c)
	b.start(a, c)
	c.start(a, b)
	a.write("one.txt", []byte("1"))
	a.rescan()
	waitConverged(t, converge, a, b, c)

	c.stop()
	a.write("two.txt", []byte("2"))
	b.write("one.txt", []byte("1 changed by b"))
	os.Remove(filepath.Join(a.root, "nothing"))
	a.rescan()
	b.rescan()
	waitConverged(t, converge, a, b)
	c.start()
	got := waitConverged(t, converge, a, b, c)
	if _, ok := got["two.txt"]; !ok {
		t.Fatalf("rejoined device lacks two.txt")
	}
}

func TestThreeDevicesInAChain(t *testing.T) {
	n := newTestNet(t)
	a, b, c := n.addDevice("alpha"), n.addDevice("bravo"), n.addDevice("charlie")
	// A and C never talk: they share the folder only with B.
	a.start(b)
	b.start(a, c)
	c.start(b)
	a.write("from-a/x.txt", []byte("from a"))
	c.write("from-c/y.txt", randBytes(3, 3<<20))
	a.rescan()
	c.rescan()
	got := waitConverged(t, converge, a, b, c)
	if len(got) != 4 {
		t.Fatalf("tree = %v, want 2 dirs and 2 files", got)
	}
	os.Remove(filepath.Join(c.root, "from-a/x.txt"))
	c.rescan()
	got = waitConverged(t, converge, a, b, c)
	if _, ok := got["from-a/x.txt"]; ok {
		t.Fatalf("deletion did not travel from C to A through B")
	}
}

func TestConcurrentEditsKeepBoth(t *testing.T) {
	n, a, b := pair2(t)
	syncedFile(t, a, b, "doc.txt", []byte("base"))

	n.setLink(a, b, false)
	time.Sleep(100 * time.Millisecond)
	a.write("doc.txt", []byte("edit on a"))
	b.write("doc.txt", []byte("edit on b, newer"))
	future := time.Now().Add(time.Minute)
	os.Chtimes(filepath.Join(b.root, "doc.txt"), future, future)
	a.rescan()
	b.rescan()
	time.Sleep(300 * time.Millisecond)
	n.setLink(a, b, true)
	got := waitConverged(t, converge, a, b)
	data, _ := os.ReadFile(filepath.Join(a.root, "doc.txt"))
	if string(data) != "edit on b, newer" {
		t.Errorf("winner = %q, want the newer edit", data)
	}
	var copies []string
	for p := range got {
		if isConflictCopy(p) {
			copies = append(copies, p)
		}
	}
	if len(copies) != 1 {
		t.Fatalf("conflict copies = %v, want exactly one", copies)
	}
	data, _ = os.ReadFile(filepath.Join(b.root, copies[0]))
	if string(data) != "edit on a" {
		t.Errorf("conflict copy holds %q, want the losing edit", data)
	}
}

func TestDeleteVsModifyKeepsModification(t *testing.T) {
	n, a, b := pair2(t)
	syncedFile(t, a, b, "keep.txt", []byte("v1"))
	n.setLink(a, b, false)
	os.Remove(filepath.Join(a.root, "keep.txt"))
	b.write("keep.txt", []byte("v2 from b"))
	a.rescan()
	b.rescan()
	time.Sleep(300 * time.Millisecond)
	n.setLink(a, b, true)
	waitConverged(t, converge, a, b)
	data, err := os.ReadFile(filepath.Join(a.root, "keep.txt"))
	if err != nil || string(data) != "v2 from b" {
		t.Fatalf("keep.txt on A = %q, %v; want the modification back", data, err)
	}
}

func TestUnsharedFolderLearnsNothing(t *testing.T) {
	n := newTestNet(t)
	a, b, stranger := n.addDevice("alpha"), n.addDevice("bravo"), n.addDevice("stranger")
	a.start(b)
	// stranger is pinned by nobody; bravo is pinned but asks for a missing folder.
	for _, tc := range []struct {
		name string
		as   *testDev
		path string
		want int
	}{
		{"unpinned hello", stranger, "/v1/hello", http.StatusForbidden},
		{"unpinned changes", stranger, "/v1/folders/f/changes?since=0&epoch=0&wait=0s", http.StatusForbidden},
		{"pinned, unknown folder", b, "/v1/folders/nope/changes?since=0&epoch=0&wait=0s", http.StatusNotFound},
		{"pinned, bad hash", b, "/v1/folders/f/blocks/zz", http.StatusBadRequest},
		{"pinned, unknown block", b, "/v1/folders/f/blocks/" + strings.Repeat("ab", 32), http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", a.srv.URL+tc.path, nil)
			req.Header.Set(testHeader, tc.as.id.String())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s as %s = %d, want %d", tc.path, tc.as.name, resp.StatusCode, tc.want)
			}
		})
	}
}

// TestUnsyncableNameShown: a file whose name is not UTF-8 is not synced,
// status says so, and the files next to it sync.
func TestUnsyncableNameShown(t *testing.T) {
	_, a, b := pair2(t)
	a.write("music/caf\xe9.mp3", []byte("latin-1 name"))
	a.write("music/ok.mp3", []byte("ok"))
	a.rescan()
	waitFor(t, "ok.mp3 to reach bravo", converge, func() bool { return fileIs(b, "music/ok.mp3", "ok") })
	waitFor(t, "alpha's status to name the problem", converge, func() bool {
		return strings.Contains(folderErr(a), "1 names cannot be synced (not UTF-8")
	})
	if _, err := os.Lstat(filepath.Join(b.root, "music/caf\xe9.mp3")); !os.IsNotExist(err) {
		t.Errorf("the unsyncable name reached bravo (%v)", err)
	}
}

// TestCleanTrash: entries older than TrashKeep go, files, symlinks and
// trashed directories alike, and so do the directories that held them once
// empty; recent entries and anything without a stamp stay; an entry whose
// stamp a wrong clock wrote (1970, or years ahead) is stamped again with
// the time now and kept for TrashKeep from then.
func TestCleanTrash(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	f := newFolder(New(Options{Now: func() time.Time { return now }, TrashKeep: 30 * 24 * time.Hour}), FolderConfig{ID: "f", Root: root})
	trash := trashDir(root)
	stamp := func(at time.Time) string { return "~" + at.Format(trashStampLayout) }
	old, recent := now.Add(-31*24*time.Hour), now.Add(-24*time.Hour)
	files := map[string]time.Time{
		"photo.jpg":              old,
		"Album/01.flac":          old, // a trashed directory, whole
		"photos/2019/beach.jpg":  old, // in the folder's directories
		"photos/2020/sunset.jpg": recent,
		"notes.txt":              recent,
		"boot.jpg":               time.Unix(60, 0),                            // trashed while the clock said 1970
		"ahead.jpg":              time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), // a clock years ahead
	}
	for rel, at := range files {
		p := filepath.Join(trash, rel)
		if strings.HasPrefix(rel, "Album/") {
			p = filepath.Join(trash, "Album"+stamp(at), "01.flac")
		} else {
			p += stamp(at)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("target", filepath.Join(trash, "link"+stamp(old))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(trash, "mine.txt"), []byte("a user's file"), 0o600); err != nil {
		t.Fatal(err)
	}
	left := func() []string {
		var names []string
		filepath.WalkDir(trash, func(p string, de fs.DirEntry, err error) error {
			if err == nil && p != trash {
				rel, _ := filepath.Rel(trash, p)
				names = append(names, rel)
			}
			return nil
		})
		return names
	}

	f.cleanTrash()
	want := []string{
		"ahead.jpg" + stamp(now), "boot.jpg" + stamp(now), "mine.txt", "notes.txt" + stamp(recent),
		"photos", "photos/2020", "photos/2020/sunset.jpg" + stamp(recent),
	}
	if got := left(); !slices.Equal(got, want) {
		t.Errorf("after the first clean, the trash holds\n%q\nwant\n%q", got, want)
	}
	now = now.Add(31 * 24 * time.Hour)
	f.cleanTrash()
	if got := left(); !slices.Equal(got, []string{"mine.txt"}) {
		t.Errorf("31 days later, the trash holds %q, want only the user's file", got)
	}
}

// TestRedialWhenAddressChanges: a peer whose session waits 20 s before its
// next dial is dialled as soon as the address book says its address
// changed (a device seen again on the LAN), not at the end of the wait;
// without that news the session waits it out.
func TestRedialWhenAddressChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		notify bool
	}{{"book tells", true}, {"book silent", false}} {
		t.Run(tc.name, func(t *testing.T) {
			n, a, b := startTwo(t, func(_ *testDev, o *Options) { o.hooks.dialBackoff = 20 * time.Second })
			syncedFile(t, a, b, "first.txt", []byte("x"))
			n.setLink(a, b, false)
			// Both sessions end (one by its ping) and, a second later,
			// redial, which fails: 20 s to the next dial.
			waitFor(t, "both sessions to end", converge, func() bool {
				for _, d := range []*testDev{a, b} {
					if ps := d.eng.Status().Peers; len(ps) != 1 || ps[0].Connected {
						return false
					}
				}
				return true
			})
			time.Sleep(1500 * time.Millisecond)
			a.write("second.txt", []byte("y"))
			a.rescan()
			n.mu.Lock()
			n.quiet = !tc.notify
			n.mu.Unlock()
			n.setLink(a, b, true)
			deadline := time.Now().Add(3 * time.Second)
			for !fileIs(b, "second.txt", "y") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := fileIs(b, "second.txt", "y"); got != tc.notify {
				t.Errorf("second.txt on bravo within 3 s of the link's return = %v, want %v", got, tc.notify)
			}
		})
	}
}

// TestTotalsFollowChanges: once a folder's records are counted, status
// shows totals that follow every change, scanned here or pulled from a
// peer, without counting again (a walk of a large library's records at
// every status while it synced).
func TestTotalsFollowChanges(t *testing.T) {
	var walks atomic.Int32
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		o.hooks.countWalk = func() { walks.Add(1) }
	})
	status := func(d *testDev) FolderStatus { return d.eng.Status().Folders[0] }
	syncedFile(t, a, b, "one.txt", []byte("1"))
	for _, d := range []*testDev{a, b} {
		waitFor(t, "the first count of "+d.name, converge, func() bool { f := status(d); return !f.Counting && f.LocalFiles == 1 })
	}
	first := walks.Load()
	a.write("two.txt", []byte("22"))
	a.write("d/three.txt", []byte("333"))
	b.write("d/four.sync-conflict-20260101-120000-ABCDEFG.txt", []byte("4444"))
	a.rescan()
	b.rescan()
	waitConverged(t, converge, a, b)
	if err := os.Remove(filepath.Join(a.root, "one.txt")); err != nil {
		t.Fatal(err)
	}
	a.write("two.txt", []byte("22222"))
	a.rescan()
	waitConverged(t, converge, a, b)
	for _, d := range []*testDev{a, b} {
		f := status(d)
		if f.Counting || f.LocalFiles != 3 || f.LocalBytes != 5+3+4 || f.Conflicts != 1 {
			t.Errorf("%s: status = %d files, %d bytes, %d conflicts, counting %v; want 3 files, 12 bytes, 1 conflict", d.name, f.LocalFiles, f.LocalBytes, f.Conflicts, f.Counting)
		}
	}
	if n := walks.Load(); n != first {
		t.Errorf("%d more walks of the records after the first counts, want none", n-first)
	}
}

// startCountHeld starts a device holding files (each containing its
// name) whose first count of the folder's totals stops before its walk
// until release is closed, and waits until it stops there (the first
// scan's end starts it, with no status asked). free closes release (also
// at cleanup, before the engine stops, which waits for the count).
func startCountHeld(t *testing.T, files ...string) (a *testDev, free func(), release chan struct{}) {
	t.Helper()
	a = newTestNet(t).addDevice("alpha")
	for _, p := range files {
		a.write(p, []byte(p))
	}
	entered := make(chan struct{}, 1)
	release = make(chan struct{})
	var releaseOnce sync.Once
	free = func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(free)
	if err := a.startWith(func(o *Options) {
		o.hooks.countWalk = func() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(converge):
		t.Fatalf("no count started after the first scan (status was not asked)")
	}
	return a, free, release
}

// TestFirstCountAfterStart: the totals of a folder are counted once its
// first scan ends, before anybody asks; until that count ends, status says
// that it is counting instead of showing 0 files (a large library, just
// started, looked empty).
func TestFirstCountAfterStart(t *testing.T) {
	a, free, _ := startCountHeld(t, "one.txt", "d/two.txt", "d/three.txt")
	f := a.eng.Status().Folders[0]
	if !f.Counting || f.LocalFiles != 0 {
		t.Errorf("status during the first count: counting %v, %d files; want counting, 0", f.Counting, f.LocalFiles)
	}
	free()
	waitFor(t, "the first count", converge, func() bool {
		f := a.eng.Status().Folders[0]
		return !f.Counting && f.LocalFiles == 3 && f.LocalBytes == int64(len("one.txt")+len("d/two.txt")+len("d/three.txt"))
	})
}

// TestStatusDuringFirstCount: while a folder's first count walks its
// records, status answers at once that it is counting (it read the totals
// under the index's write lock, so it waited for the whole walk, and so
// did every write).
func TestStatusDuringFirstCount(t *testing.T) {
	a, free, release := startCountHeld(t, "one.txt")
	// A load of the same folder's totals, stopped inside its walk (at its
	// first call of mark; the writes' own calls go on).
	walking := make(chan struct{})
	var first atomic.Bool
	go a.store.LocalTotals(context.Background(), "f", func(string) bool {
		if first.CompareAndSwap(false, true) {
			close(walking)
			<-release
		}
		return false
	}, true)
	<-walking
	answered := make(chan FolderStatus, 1)
	go func() { answered <- a.eng.Status().Folders[0] }()
	select {
	case f := <-answered:
		if !f.Counting {
			t.Errorf("status during the walk: counting %v, want true", f.Counting)
		}
	case <-time.After(2 * time.Second):
		free()
		t.Fatal("status waits for the count's walk")
	}
	a.write("two.txt", []byte("2"))
	a.rescan()
	waitFor(t, "a scan recorded during the walk", converge, func() bool {
		r, ok, _ := a.store.Local("f", "two.txt")
		return ok && !r.Deleted
	})
	free()
	waitFor(t, "the totals", converge, func() bool { f := a.eng.Status().Folders[0]; return !f.Counting && f.LocalFiles == 2 })
}

// TestGlobalTotalsWhilePulling: what status says the folder will hold
// counts a file that has arrived but waits for its commit (the bar of a
// single large file stayed at 0 % until it jumped to 100 %).
func TestGlobalTotalsWhilePulling(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name == "bravo" {
			o.hooks.beforeFinalCheck = func(p string) {
				if p != "big.bin" {
					return
				}
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
			}
		}
	})
	t.Cleanup(free) // before the devices stop, which waits for the commit
	syncedFile(t, a, b, "small.txt", []byte("12345"))
	waitFor(t, "bravo counted", converge, func() bool { f := b.eng.Status().Folders[0]; return !f.Counting && f.LocalFiles == 1 })
	const size = 3 << 20
	a.write("big.bin", randBytes(1, size))
	a.rescan()
	select {
	case <-entered:
	case <-time.After(converge):
		t.Fatal("no commit of big.bin")
	}
	f := b.eng.Status().Folders[0]
	if f.GlobalFiles != 2 || f.GlobalBytes != size+5 || f.LocalFiles != 1 {
		t.Errorf("bravo while big.bin waits for its commit: local %d files, global %d files %d bytes; want local 1, global 2 files %d bytes",
			f.LocalFiles, f.GlobalFiles, f.GlobalBytes, size+5)
	}
	free()
	waitFor(t, "big.bin recorded", converge, func() bool {
		f := b.eng.Status().Folders[0]
		return f.LocalFiles == 2 && f.LocalBytes == size+5 && f.GlobalFiles == 2 && f.GlobalBytes == size+5
	})
}

// TestManyDeletionsBatched: a directory of 600 files removed on alpha is
// removed on bravo with its deletions recorded in batches (one syncfs and
// one index write per 512), not one fsync and one write each; every file
// is in bravo's trash and the devices converge.
func TestManyDeletionsBatched(t *testing.T) {
	var flushes atomic.Int32
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		o.hooks.beforeDelFlush = func() { flushes.Add(1) }
	})
	for i := range 600 {
		a.write(fmt.Sprintf("album/%03d.jpg", i), fmt.Appendf(nil, "photo %03d", i))
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	if err := os.RemoveAll(filepath.Join(a.root, "album")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	got := waitConverged(t, converge, a, b)
	if len(got) != 0 {
		t.Errorf("tree after the removal = %d entries, want none", len(got))
	}
	if n := flushes.Load(); n < 2 || n > 4 {
		t.Errorf("%d batches recorded bravo's 601 deletions, want 2 to 4 (512 each; a peer's records may arrive in parts)", n)
	}
	for _, i := range []int{0, 299, 599} {
		if !trashHolds(t, b.root, fmt.Sprintf("photo %03d", i)) {
			t.Errorf("bravo's trash lacks photo %03d", i)
		}
	}
	if r, ok, err := b.store.Local("f", "album/599.jpg"); err != nil || !ok || !r.Deleted {
		t.Errorf("bravo's record of album/599.jpg = %+v, %v, %v; want a deletion", r, ok, err)
	}
}

// TestNeedCountsByKind: while bravo's pass is held on its one new file,
// status counts what is left by kind: the file, no directory (the new
// directory is made before any file), and the two deletions (applied
// after the files). Idle again, all three are zero.
func TestNeedCountsByKind(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	a.write("gone/1.txt", []byte("1"))
	a.write("gone/2.txt", []byte("2"))
	a.start(b)
	b.start(a)
	a.rescan()
	waitConverged(t, converge, a, b)
	b.stop()
	for _, p := range []string{"gone/1.txt", "gone/2.txt"} {
		if err := os.Remove(filepath.Join(a.root, p)); err != nil {
			t.Fatal(err)
		}
	}
	a.write("new/a.bin", []byte("new file"))
	a.rescan()
	waitFor(t, "alpha to record the changes", converge, func() bool {
		r, ok, err := a.store.Local("f", "gone/2.txt")
		return err == nil && ok && r.Deleted
	})
	h := newHold(t, "new/a.bin")
	if err := b.startWith(func(o *Options) { o.hooks.applyFile = h.hook }, a); err != nil {
		t.Fatal(err)
	}
	h.reached(t)
	f := b.eng.Status().Folders[0]
	close(h.release)
	if f.NeedFiles != 1 || f.NeedDirs != 0 || f.NeedDeletes != 2 {
		t.Errorf("held on new/a.bin: need %d files, %d dirs, %d deletions; want 1, 0, 2", f.NeedFiles, f.NeedDirs, f.NeedDeletes)
	}
	waitConverged(t, converge, a, b)
	waitIdle(t, b)
	if f := b.eng.Status().Folders[0]; f.NeedFiles+f.NeedDirs+f.NeedDeletes != 0 {
		t.Errorf("idle: need %d files, %d dirs, %d deletions; want none", f.NeedFiles, f.NeedDirs, f.NeedDeletes)
	}
}
