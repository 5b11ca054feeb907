package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
)

// inodesUnder maps the files under dir (relative names) to their inodes.
func inodesUnder(dir string) map[string]uint64 {
	m := map[string]uint64{}
	walkFiles(dir, func(p string, fi os.FileInfo) {
		rel, _ := filepath.Rel(dir, p)
		m[rel] = fi.Sys().(*syscall.Stat_t).Ino
	})
	return m
}

// trashFiles counts the files in root's trash.
func trashFiles(root string) int {
	n := 0
	walkFiles(trashDir(root), func(string, os.FileInfo) { n++ })
	return n
}

// writeAlbum writes n files under album/ on d, every hundredth one of
// 3 MiB (several blocks), the others small.
func writeAlbum(d *testDev, n int) {
	for i := range n {
		size := 100 + i
		if i%100 == 0 {
			size = 3<<20 + i
		}
		d.write(fmt.Sprintf("album/d%d/p%04d.jpg", i%7, i), randBytes(uint64(i), size))
	}
}

// TestDirRenameMovesFiles renames a directory of more files than one scan
// batch holds on a, with the watcher on: b fetches nothing, copies
// nothing (its files at the new place are the inodes it had at the old
// one), and keeps no second copy in the trash.
func TestDirRenameMovesFiles(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	const files = 700
	writeAlbum(a, files)
	startWatching(t, a, b, nil)
	waitConverged(t, converge, a, b)
	inodes := inodesUnder(filepath.Join(b.root, "album"))
	if len(inodes) != files {
		t.Fatalf("b has %d files under album, want %d", len(inodes), files)
	}
	before := b.eng.fetched()
	if err := os.Rename(filepath.Join(a.root, "album"), filepath.Join(a.root, "photos")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rename to reach b", converge, func() bool {
		_, err := os.Stat(filepath.Join(b.root, "album"))
		return len(inodesUnder(filepath.Join(b.root, "photos"))) == files && os.IsNotExist(err)
	})
	waitConverged(t, converge, a, b)
	if d := b.eng.fetched() - before; d != 0 {
		t.Errorf("a rename fetched %d bytes from peers, want 0", d)
	}
	wantMoved(t, b, inodes, "photos", files)
}

// TestRenameFoundByFullScan: the same rename seen by a full scan (the
// daemon was not running, no watcher): b fetches nothing and keeps no
// second copy.
func TestRenameFoundByFullScan(t *testing.T) {
	_, a, b := pair2(t)
	const files = 300
	writeAlbum(a, files)
	a.rescan()
	waitConverged(t, converge, a, b)
	before := b.eng.fetched()
	if err := os.Rename(filepath.Join(a.root, "album"), filepath.Join(a.root, "photos")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	got := waitConverged(t, converge, a, b)
	if _, ok := got["photos/d0/p0000.jpg"]; !ok {
		t.Fatalf("the renamed directory did not arrive")
	}
	if d := b.eng.fetched() - before; d != 0 {
		t.Errorf("a rename fetched %d bytes from peers, want 0", d)
	}
	if n := trashFiles(b.root); n != 0 {
		t.Errorf("b's trash holds %d files after a rename, want none", n)
	}
}

// holdPulls starts a and b with the watcher off, b's pull passes held
// while hold is set; release lets the held pass go.
func holdPulls(t *testing.T) (n *testNet, a, b *testDev, hold *atomic.Bool, release chan struct{}) {
	n = newTestNet(t)
	a, b = n.addDevice("a"), n.addDevice("b")
	hold, release = &atomic.Bool{}, make(chan struct{})
	a.start(b)
	if err := b.startWith(func(o *Options) {
		o.hooks.beforePull = func() {
			if hold.Load() {
				<-release
			}
		}
		o.hooks.applyFile = b.late.applyFile.call
		o.hooks.beforeMoveQueued = b.late.beforeMoveQueued.call
		o.hooks.beforeFinalCheck = b.late.beforeFinalCheck.call
	}, a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.srv.Close)
	return n, a, b, hold, release
}

// lateHooks are hooks of b's engine that holdPulls installs and a test
// sets while the engine runs (setting the engine's own hooks then raced
// with the pull reading them).
type lateHooks struct {
	applyFile, beforeMoveQueued, beforeFinalCheck lateHook
}

// lateHook is a func(path) that may be set at any time.
type lateHook struct{ p atomic.Pointer[func(string)] }

func (h *lateHook) set(fn func(string)) { h.p.Store(&fn) }

func (h *lateHook) call(path string) {
	if fn := h.p.Load(); fn != nil {
		(*fn)(path)
	}
}

// allIn waits until a has written n records after sequence since, and
// b's index holds them all.
func allIn(t *testing.T, a, b *testDev, since uint64, n int) {
	t.Helper()
	waitFor(t, "b to hold all of a's records", converge, func() bool {
		seq, err := a.store.LocalSeq("f")
		if err != nil || seq < since+uint64(n) {
			return false
		}
		_, got, err := b.store.Progress("f", a.id)
		return err == nil && got == seq
	})
}

// TestMoveInOnePass: b learns of a rename as a whole (its pull was busy
// meanwhile), so one pull pass both makes the new files and deletes the
// old: each new file takes the old one's inode by a hard link, and the
// old name goes without a copy in the trash.
func TestMoveInOnePass(t *testing.T) {
	_, a, b, hold, release := holdPulls(t)
	const files = 300
	writeAlbum(a, files)
	a.rescan()
	waitConverged(t, converge, a, b)
	inodes := inodesUnder(filepath.Join(b.root, "album"))
	before := b.eng.fetched()
	var moves atomic.Int64
	b.late.beforeMoveQueued.set(func(string) { moves.Add(1) })
	renameHeld(t, a, b, hold, release, "album", "photos", 2*(files+8)) // tombstones and new records, the 7 directories and album
	waitConverged(t, converge, a, b)
	if d := b.eng.fetched() - before; d != 0 {
		t.Errorf("a rename fetched %d bytes from peers, want 0", d)
	}
	if moves.Load() != files {
		t.Errorf("%d moves queued, want %d (one pass: every file moved)", moves.Load(), files)
	}
	wantMoved(t, b, inodes, "photos", files)
}

// TestMoveSkipsSharedInode: a file on b with a second name (a user's hard
// link outside the folder) is not moved when a peer renames it: the new
// file gets its own inode, so that writing through the user's link
// changes nothing in the folder.
func TestMoveSkipsSharedInode(t *testing.T) {
	_, a, b := pair2(t)
	writeAlbum(a, 10)
	a.rescan()
	waitConverged(t, converge, a, b)
	link := filepath.Join(t.TempDir(), "mine.jpg")
	if err := os.Link(filepath.Join(b.root, "album/d0/p0000.jpg"), link); err != nil {
		t.Fatal(err)
	}
	// b's scan takes the link's new change time into its record: the file
	// is as recorded again.
	b.rescan()
	waitFor(t, "b's record to take the new change time", converge, func() bool {
		fi, err := os.Stat(link)
		r, ok, rerr := b.store.Local("f", "album/d0/p0000.jpg")
		return err == nil && rerr == nil && ok && r.Ctime == index.Ctime(fi)
	})
	if err := os.Rename(filepath.Join(a.root, "album"), filepath.Join(a.root, "photos")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	if err := os.WriteFile(link, []byte("the user's own edit through the link"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(b.root, "photos/d0/p0000.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(randBytes(0, 3<<20)) {
		t.Errorf("photos/d0/p0000.jpg on b changed with a write to a hard link outside the folder")
	}
}

// TestMoveSourceWrittenBeforeLink: the file a new file is about to take
// by a hard link is written to on b at that moment. The link is undone:
// the new file is copied with a's content, and b's write is kept (it
// beats the deletion, so it comes back on a too).
func TestMoveSourceWrittenBeforeLink(t *testing.T) {
	_, a, b, hold, release := holdPulls(t)
	a.write("album/song.flac", randBytes(7, 1<<20))
	a.rescan()
	waitConverged(t, converge, a, b)
	edit := randBytes(8, 1<<20) // the same size: only the mtime tells
	b.late.beforeMoveQueued.set(func(p string) {
		if err := os.WriteFile(filepath.Join(b.root, p), edit, 0o644); err != nil {
			t.Error(err)
		}
		future := time.Now().Add(time.Hour)
		if err := os.Chtimes(filepath.Join(b.root, p), future, future); err != nil {
			t.Error(err)
		}
	})
	renameHeld(t, a, b, hold, release, "album", "music", 4)
	waitConverged(t, converge, a, b)
	if !fileIs(b, "music/song.flac", string(randBytes(7, 1<<20))) {
		t.Errorf("music/song.flac does not hold a's content")
	}
	if !fileIs(b, "album/song.flac", string(edit)) || !fileIs(a, "album/song.flac", string(edit)) {
		t.Errorf("b's write to album/song.flac was lost")
	}
}

// TestTrashSourceChanged: a file deleted on a went into b's trash; the
// entry is changed there; then a puts the same file back (content, mode,
// mtime). b must not take the changed entry out of the trash: it fetches
// the file, and the entry stays.
func TestTrashSourceChanged(t *testing.T) {
	_, a, b := pair2(t)
	data := randBytes(9, 2<<20)
	a.write("clip.mp4", data)
	a.rescan()
	waitConverged(t, converge, a, b)
	fi, err := os.Stat(filepath.Join(a.root, "clip.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a.root, "clip.mp4")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	var entry string
	walkFiles(trashDir(b.root), func(p string, _ os.FileInfo) { entry = p })
	if entry == "" {
		t.Fatal("clip.mp4 is not in b's trash")
	}
	changed := randBytes(10, 2<<20)
	if err := os.WriteFile(entry, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(entry, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	a.write("clip.mp4", data)
	if err := os.Chtimes(filepath.Join(a.root, "clip.mp4"), fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	if !fileIs(b, "clip.mp4", string(data)) {
		t.Errorf("clip.mp4 on b is not a's")
	}
	if kept, err := os.ReadFile(entry); err != nil || string(kept) != string(changed) {
		t.Errorf("the changed trash entry is gone or different (%v)", err)
	}
}

// TestUntrashFailsTrashKeeps: a file deleted on a is back under another
// name; b's move of it out of the trash finds the entry touched just
// before its rename and gives up: the trash keeps the entry, and the file
// is fetched instead.
func TestUntrashFailsTrashKeeps(t *testing.T) {
	var tried atomic.Bool
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.beforeMoveRename = func(p string) {
			if strings.HasPrefix(p, ".syncd/trash/") && tried.CompareAndSwap(false, true) {
				now := time.Now()
				if err := os.Chtimes(filepath.Join(d.root, p), now, now); err != nil {
					t.Error(err)
				}
			}
		}
	})
	data := randBytes(11, 2<<20)
	a.write("clip.mp4", data)
	a.rescan()
	waitConverged(t, converge, a, b)
	fi, err := os.Stat(filepath.Join(a.root, "clip.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a.root, "clip.mp4")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	before := b.eng.fetched()
	a.write("back.mp4", data)
	if err := os.Chtimes(filepath.Join(a.root, "back.mp4"), fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	if !tried.Load() {
		t.Fatal("b never tried to move back.mp4 out of the trash")
	}
	if !fileIs(b, "back.mp4", string(data)) {
		t.Errorf("back.mp4 on b is not a's")
	}
	if !trashHolds(t, b.root, string(data[:64])) {
		t.Errorf("the trash lost clip.mp4 when its move failed")
	}
	if b.eng.fetched()-before < int64(len(data)) {
		t.Errorf("back.mp4 was not fetched after the move failed")
	}
}

// TestMoveSourceWrittenBeforeCommit: the old file is written to (through
// its old name, the temp file's other name) after the new file took it by
// a hard link and before the commit renames it into place. The commit
// finds the change time moved and drops the temp file: the new file is
// pulled with a's content, and b's write stays in the old file, which
// beats its deletion.
func TestMoveSourceWrittenBeforeCommit(t *testing.T) {
	_, a, b, hold, release := holdPulls(t)
	orig := randBytes(12, 1<<20)
	a.write("album/song.flac", orig)
	a.rescan()
	waitConverged(t, converge, a, b)
	edit := randBytes(13, 1<<20)
	var wrote atomic.Bool
	b.late.beforeFinalCheck.set(func(p string) {
		if p != "music/song.flac" || !wrote.CompareAndSwap(false, true) {
			return
		}
		fd, err := os.OpenFile(filepath.Join(b.root, "album/song.flac"), os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer fd.Close()
		if _, err := fd.WriteAt(edit, 0); err != nil {
			t.Error(err)
		}
	})
	renameHeld(t, a, b, hold, release, "album", "music", 4)
	waitConverged(t, converge, a, b)
	if !wrote.Load() {
		t.Fatal("the commit of music/song.flac never ran its final check")
	}
	if !fileIs(b, "music/song.flac", string(orig)) || !fileIs(a, "music/song.flac", string(orig)) {
		t.Errorf("music/song.flac does not hold the content a renamed")
	}
	if !fileIs(b, "album/song.flac", string(edit)) || !fileIs(a, "album/song.flac", string(edit)) {
		t.Errorf("b's write to album/song.flac was lost")
	}
}

// wantMoved checks that every file under dir on b is the inode inodes
// had for it before a rename (moved, not copied), and that b's trash
// holds nothing.
func wantMoved(t *testing.T, b *testDev, inodes map[string]uint64, dir string, files int) {
	t.Helper()
	moved := 0
	for rel, ino := range inodesUnder(filepath.Join(b.root, dir)) {
		if inodes[rel] == ino {
			moved++
		}
	}
	if moved != files {
		t.Errorf("%d of %d files were moved on b, the rest copied", moved, files)
	}
	if n := trashFiles(b.root); n != 0 {
		t.Errorf("b's trash holds %d files after a rename, want none", n)
	}
}

// renameHeld renames from to to on a while b's pulls are held (holdPulls),
// waits until b holds the records records a writes for it, and lets b's
// pull go: one pass sees the whole rename.
func renameHeld(t *testing.T, a, b *testDev, hold *atomic.Bool, release chan struct{}, from, to string, records int) {
	t.Helper()
	hold.Store(true)
	since, err := a.store.LocalSeq("f")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, from), filepath.Join(a.root, to)); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	allIn(t, a, b, since, records)
	hold.Store(false)
	close(release)
}
