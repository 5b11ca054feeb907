package peer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
)

func inoOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestMoveCrashAfterLink: bravo dies between the hard link of a move
// (album/x.bin as the temp file of album/y.bin) and its commit, and the
// user appends to album/x.bin while it is down. When bravo runs again the
// temp file (two names) is not resumed: the append survives, and x.bin
// and y.bin never share an inode.
func TestMoveCrashAfterLink(t *testing.T) {
	var crash oneShot
	var hold atomic.Bool
	release := make(chan struct{})
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.beforePull = func() {
			if hold.Load() {
				<-release
			}
		}
		o.hooks.beforeFinalCheck = func(p string) {
			if p == "album/y.bin" && crash.armed.Load() {
				crash.offer(func() {})
				runtime.Goexit() // kill -9 of the folder goroutine
			}
		}
	})
	orig := randBytes(21, 1<<20)
	a.write("album/x.bin", orig)
	a.rescan()
	waitConverged(t, converge, a, b)
	hold.Store(true)
	since, err := a.store.LocalSeq("f")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, "album/x.bin"), filepath.Join(a.root, "album/y.bin")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	allIn(t, a, b, since, 2)
	crash.arm()
	hold.Store(false)
	close(release)
	waitFor(t, "bravo to die committing album/y.bin", converge, crash.fired.Load)
	b.stop()
	t.Logf("temps on bravo after the crash: %q", tempsIn(t, b.root))

	// The user's edit on bravo while it is down: an append to x.bin.
	edit := append(append([]byte{}, orig...), []byte("the user's appended paragraph")...)
	fx, err := os.OpenFile(filepath.Join(b.root, "album/x.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.Write([]byte("the user's appended paragraph")); err != nil {
		t.Fatal(err)
	}
	fx.Close()

	b.start(a)
	if _, diff, ok := convergedWithin(t, converge, a, b); !ok {
		t.Errorf("no convergence:\n%s", diff)
	}
	if r, ok, _ := b.store.Local("f", "album/x.bin"); ok {
		fi, _ := os.Stat(filepath.Join(b.root, "album/x.bin"))
		if fi == nil || fi.Size() != r.Size {
			t.Errorf("bravo's record of album/x.bin says %d bytes (deleted %v), the disk holds %v", r.Size, r.Deleted, fi.Size())
		}
	}
	xb, _ := os.ReadFile(filepath.Join(b.root, "album/x.bin"))
	xa, _ := os.ReadFile(filepath.Join(a.root, "album/x.bin"))
	if !bytes.Equal(xb, edit) || !bytes.Equal(xa, edit) {
		t.Errorf("the user's append to album/x.bin is lost: bravo has %d bytes, alpha %d, want %d", len(xb), len(xa), len(edit))
	}
	if ix, iy := inoOf(t, filepath.Join(b.root, "album/x.bin")), inoOf(t, filepath.Join(b.root, "album/y.bin")); ix != 0 && ix == iy {
		t.Errorf("album/x.bin and album/y.bin share inode %d on bravo", ix)
	}
}

func convergedWithin(t *testing.T, d time.Duration, devs ...*testDev) (map[string]string, string, bool) {
	deadline := time.Now().Add(d)
	for {
		tr, diff, ok := converged(t, devs...)
		if ok || time.Now().After(deadline) {
			return tr, diff, ok
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMoveDeletionNextPass: a rename reaches bravo while a pull pass is
// busy with another file, so y.bin and the deletion of x.bin come in by
// refill, and the deletion waits for the next pass. x.bin and y.bin must
// not be one inode meanwhile: the user's write to x.bin (concurrent with
// its deletion, so kept) must not change y.bin.
func TestMoveDeletionNextPass(t *testing.T) {
	gate := make(chan struct{})
	var slowArmed, holdArmed atomic.Bool
	held := make(chan struct{}, 1)
	release := make(chan struct{})
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.applyFile = func(p string) {
			if p == "slow.bin" && slowArmed.Load() {
				<-gate
			}
		}
		o.hooks.beforePull = func() {
			if holdArmed.CompareAndSwap(true, false) {
				held <- struct{}{}
				<-release
			}
		}
	})
	orig := randBytes(31, 1<<20)
	a.write("album/x.bin", orig)
	a.rescan()
	waitConverged(t, converge, a, b)

	slowArmed.Store(true)
	a.write("slow.bin", []byte("a file that keeps bravo's pass busy"))
	a.rescan()
	waitFor(t, "bravo's pass to start on slow.bin", converge, func() bool {
		f := b.eng.folder("f")
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.state == StateSyncing
	})
	since, err := a.store.LocalSeq("f")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, "album/x.bin"), filepath.Join(a.root, "album/y.bin")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	allIn(t, a, b, since, 2)
	time.Sleep(300 * time.Millisecond) // the refill picks them up
	holdArmed.Store(true)
	close(gate)
	<-held // the next pass, which would apply the deletion, is held

	f := b.eng.folder("f")
	f.mu.Lock()
	dups := 0
	for _, list := range f.sources {
		dups += len(list)
	}
	f.mu.Unlock()
	t.Logf("move sources held for the next pass: %d", dups)

	ix, iy := inoOf(t, filepath.Join(b.root, "album/x.bin")), inoOf(t, filepath.Join(b.root, "album/y.bin"))
	if ix != 0 && ix == iy {
		t.Errorf("between passes album/x.bin and album/y.bin are two live paths of inode %d on bravo", ix)
	}
	// The user overwrites x.bin in place (same size).
	fx, err := os.OpenFile(filepath.Join(b.root, "album/x.bin"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.WriteAt([]byte("THE USER'S EDIT"), 0); err != nil {
		t.Fatal(err)
	}
	fx.Close()
	close(release)
	if _, diff, ok := convergedWithin(t, converge, a, b); !ok {
		t.Errorf("no convergence:\n%s", diff)
	}
	for _, d := range []*testDev{a, b} {
		if got, _ := os.ReadFile(filepath.Join(d.root, "album/y.bin")); !bytes.Equal(got, orig) {
			t.Errorf("album/y.bin on %s is not the file alpha renamed (the user wrote to x.bin only)", d.name)
		}
	}
}

// TestMoveRefillSourcesBounded: while a pass is busy, a directory of 100
// files is deleted on alpha (its deletions wait for the next pass) and
// alpha then writes new files one at a time, each a refill of the pass.
// The move sources must not grow with the refills.
func TestMoveRefillSourcesBounded(t *testing.T) {
	gate := make(chan struct{})
	var slowArmed atomic.Bool
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name == "bravo" {
			o.hooks.applyFile = func(p string) {
				if p == "slow.bin" && slowArmed.Load() {
					<-gate
				}
			}
		}
	})
	const dels = 100
	for i := range dels {
		a.write(fmt.Sprintf("old/f%03d.bin", i), randBytes(uint64(100+i), 4096))
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	slowArmed.Store(true)
	a.write("slow.bin", []byte("keeps the pass busy"))
	a.rescan()
	waitFor(t, "bravo's pass to start", converge, func() bool {
		f := b.eng.folder("f")
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.state == StateSyncing
	})
	if err := os.RemoveAll(filepath.Join(a.root, "old")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	for i := range 20 {
		since, _ := a.store.LocalSeq("f")
		a.write(fmt.Sprintf("new%02d.txt", i), []byte(fmt.Sprint("new ", i)))
		a.rescan()
		allIn(t, a, b, since, 1)
		time.Sleep(50 * time.Millisecond)
	}
	f := b.eng.folder("f")
	f.mu.Lock()
	n := 0
	for _, list := range f.sources {
		n += len(list)
	}
	f.mu.Unlock()
	close(gate)
	if n > dels {
		t.Errorf("%d move sources held for %d deletions", n, dels)
	}
}

// TestMovedFilesNotRehashed: after bravo moves 20 files of 1 MiB in one
// pass, their records hold the change time the files have once the old
// names are gone, so that the next scan hashes none of them again (a
// renamed folder of videos would be read in full).
func TestMovedFilesNotRehashed(t *testing.T) {
	_, a, b, hold, release := holdPulls(t)
	const files = 20
	for i := range files {
		a.write(fmt.Sprintf("album/v%02d.bin", i), randBytes(uint64(500+i), 1<<20))
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	renameHeld(t, a, b, hold, release, "album", "videos", 2*(files+1))
	waitConverged(t, converge, a, b)
	time.Sleep(200 * time.Millisecond)
	stale := 0
	for i := range files {
		p := fmt.Sprintf("videos/v%02d.bin", i)
		r, ok, err := b.store.Local("f", p)
		fi, serr := os.Lstat(filepath.Join(b.root, p))
		if err != nil || serr != nil || !ok {
			t.Fatalf("%s: %v %v %v", p, ok, err, serr)
		}
		if r.Ctime != index.Ctime(fi) {
			stale++
		}
	}
	b.stop()
	st, err := index.Open(filepath.Join(b.home, "index"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := index.NewScanner(st, "f", b.root, index.ScanOptions{Self: b.id.Key()}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stale > 0 || res.Bytes > 0 {
		t.Errorf("%d of %d moved files have a stale change time in their record; the next scan hashed %d bytes (%d changed)", stale, files, res.Bytes, res.Changed)
	}
}

// TestMoveSourceDirReplacedByFile: on alpha a/x.bin moves to b/x.bin and
// the directory a becomes a file, in one pass of bravo's. Whatever the
// order of the commits, no two files on bravo share an inode and nothing
// is kept as a conflict that was not one.
func TestMoveSourceDirReplacedByFile(t *testing.T) {
	_, a, b, hold, release := holdPulls(t)
	data := randBytes(51, 1<<20)
	a.write("a/x.bin", data)
	a.rescan()
	waitConverged(t, converge, a, b)
	b.late.applyFile.set(func(p string) {
		if p == "b/x.bin" {
			time.Sleep(300 * time.Millisecond) // the file a is done first
		}
	})
	hold.Store(true)
	since, err := a.store.LocalSeq("f")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(a.root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, "a/x.bin"), filepath.Join(a.root, "b/x.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a.root, "a")); err != nil {
		t.Fatal(err)
	}
	a.write("a", []byte("a is a file now"))
	a.rescan()
	allIn(t, a, b, since, 4)
	hold.Store(false)
	close(release)
	convergedWithin(t, converge, a, b)
	seen := map[uint64]string{}
	walkFiles(b.root, func(p string, fi os.FileInfo) {
		rel, _ := filepath.Rel(b.root, p)
		if strings.HasPrefix(rel, ".syncd") {
			return
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if o, ok := seen[ino]; ok {
			t.Errorf("bravo: %s and %s share inode %d", o, rel, ino)
		}
		seen[ino] = rel
	})
	t.Logf("bravo's tree: %v", tree(t, b.root))
}

// TestReviewMoveSourceWrittenKeepingMtime: like
// TestMoveSourceWrittenBeforeLink, but the writer puts the mtime back (a
// tool that preserves times, or a write in the same timestamp tick). Only
// the change time tells, and linkTemp does not compare it (the link moves
// it): the new file takes the edited inode while its record says a's
// content, and the edit's old name is removed.

// TestMoveSourceWrittenKeepingMtime: like TestMoveSourceWrittenBeforeLink,
// but the writer puts the mtime back (a tool that preserves times): the
// change time tells the move's last check, and the new file is pulled.
func TestMoveSourceWrittenKeepingMtime(t *testing.T) {
	_, a, b, hold, release := holdPulls(t)
	orig := randBytes(61, 1<<20)
	a.write("album/song.flac", orig)
	a.rescan()
	waitConverged(t, converge, a, b)
	edit := randBytes(62, 1<<20) // the same size
	b.late.beforeMoveQueued.set(func(p string) {
		full := filepath.Join(b.root, p)
		fi, err := os.Stat(full)
		if err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(full, edit, 0o644); err != nil {
			t.Error(err)
		}
		if err := os.Chtimes(full, fi.ModTime(), fi.ModTime()); err != nil {
			t.Error(err)
		}
	})
	renameHeld(t, a, b, hold, release, "album", "music", 4)
	convergedWithin(t, 5*time.Second, a, b)
	got, _ := os.ReadFile(filepath.Join(b.root, "music/song.flac"))
	r, _, _ := b.store.Local("f", "music/song.flac")
	t.Logf("bravo: music/song.flac is a's: %v, the edit: %v; record content %s", bytes.Equal(got, orig), bytes.Equal(got, edit), r.Content)
	if !bytes.Equal(got, orig) {
		t.Errorf("bravo's music/song.flac does not hold the content its record (and a) say")
	}
	if !trashHolds(t, b.root, string(edit[:64])) && !fileIs(b, "album/song.flac", string(edit)) && !bytes.Equal(got, edit) {
		t.Errorf("bravo's edit is lost")
	}
}

// TestMoveCrashAfterRename: bravo dies right after a move's rename put
// album/x.bin at album/y.bin, before its record. After the restart the
// devices converge, y.bin holds what alpha renamed, and no trash entry is
// a live file's inode.
func TestMoveCrashAfterRename(t *testing.T) {
	var crash oneShot
	var hold atomic.Bool
	release := make(chan struct{})
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.beforePull = func() {
			if hold.Load() {
				<-release
			}
		}
		o.hooks.afterMoveRename = func(p string) {
			if p == "album/y.bin" && crash.armed.Load() {
				crash.offer(func() {})
				runtime.Goexit() // kill -9 right after the rename, before the record
			}
		}
	})
	data := randBytes(41, 1<<20)
	a.write("album/x.bin", data)
	a.rescan()
	waitConverged(t, converge, a, b)
	hold.Store(true)
	since, err := a.store.LocalSeq("f")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, "album/x.bin"), filepath.Join(a.root, "album/y.bin")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	allIn(t, a, b, since, 2)
	crash.arm()
	hold.Store(false)
	close(release)
	waitFor(t, "bravo to die right after renaming album/y.bin into place", converge, crash.fired.Load)
	b.stop()
	ix, iy := inoOf(t, filepath.Join(b.root, "album/x.bin")), inoOf(t, filepath.Join(b.root, "album/y.bin"))
	t.Logf("after the crash: x.bin inode %d, y.bin inode %d", ix, iy)

	b.start(a)
	if _, diff, ok := convergedWithin(t, converge, a, b); !ok {
		t.Errorf("no convergence:\n%s", diff)
	}
	live := inodesUnder(b.root)
	walkFiles(trashDir(b.root), func(p string, fi os.FileInfo) {
		ino := fi.Sys().(*syscall.Stat_t).Ino
		for rel, li := range live {
			if li == ino && !strings.HasPrefix(rel, ".syncd") {
				t.Errorf("bravo: trash entry %s is the live file %s (inode %d)", p, rel, ino)
			}
		}
	})
	for _, d := range []*testDev{a, b} {
		got, _ := os.ReadFile(filepath.Join(d.root, "album/y.bin"))
		if !bytes.Equal(got, data) {
			t.Errorf("%s: album/y.bin has %d bytes, want the %d bytes alpha renamed (the append to x.bin went into it)", d.name, len(got), len(data))
		}
	}
	if ix, iy := inoOf(t, filepath.Join(b.root, "album/x.bin")), inoOf(t, filepath.Join(b.root, "album/y.bin")); ix != 0 && ix == iy {
		t.Errorf("album/x.bin and album/y.bin share inode %d on bravo", ix)
	}
}
