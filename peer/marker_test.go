package peer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// folderErr is the last error status shows for d's folder "f".
func folderErr(d *testDev) string {
	for _, f := range d.eng.Status().Folders {
		if f.ID == "f" {
			return f.LastError
		}
	}
	return ""
}

// pullPasses is how many pull passes d's folder has started.
func pullPasses(d *testDev) uint64 {
	f := d.eng.folders["f"]
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pass
}

// waitPaused waits until d's folder says its marker is gone.
func waitPaused(t *testing.T, d *testDev) {
	t.Helper()
	waitFor(t, d.name+" to pause its folder", converge, func() bool {
		return strings.Contains(folderErr(d), ".syncd is gone")
	})
}

// liveLocal fails the test unless d's local record of rel is there and not
// deleted.
func liveLocal(t *testing.T, d *testDev, rel string) {
	t.Helper()
	r, ok, err := d.store.Local("f", rel)
	if err != nil || !ok || r.Deleted {
		t.Errorf("%s's record of %s = %+v, %v, %v; want a live record", d.name, rel, r, ok, err)
	}
}

// unmount takes the disk holding root away: the folder moves aside (to the
// path returned) and leaves an empty mount point. It may run in a hook.
func unmount(t *testing.T, root string) string {
	drive := root + ".drive"
	if err := os.Rename(root, drive); err != nil {
		t.Error(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Error(err)
	}
	return drive
}

// remount puts back at root the disk that unmount took away to drive.
func remount(t *testing.T, root, drive string) {
	t.Helper()
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(drive, root); err != nil {
		t.Fatal(err)
	}
}

// mountPointEmpty fails the test unless nothing was written at root, an
// empty mount point.
func mountPointEmpty(t *testing.T, root string) {
	t.Helper()
	if ents, err := os.ReadDir(root); err != nil || len(ents) > 0 {
		t.Fatalf("the empty mount point holds %d entries (%v), want none", len(ents), err)
	}
}

// moveEntries moves every entry of directory from into directory to.
func moveEntries(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// fastPresence makes folders look for their disk every 50 ms for the test.
func fastPresence(t *testing.T) {
	old := presenceEvery
	presenceEvery = 50 * time.Millisecond
	t.Cleanup(func() { presenceEvery = old }) // after the devices stop
}

// TestUnmountedFolderDeletesNothing: bravo's folder is on a disk that goes
// away, leaving its empty mount point. A rescan there deletes nothing,
// here or on alpha, and alpha's new file is not written onto the disk
// below the mount point. Once the disk is back, both sync.
func TestUnmountedFolderDeletesNothing(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "photos/2019/beach.jpg", []byte("waves"))
	drive := unmount(t, b.root)
	b.rescan()
	waitPaused(t, b)
	liveLocal(t, b, "photos/2019/beach.jpg")
	passes := pullPasses(b)

	a.write("photos/2019/sunset.jpg", []byte("red"))
	a.rescan()
	waitFor(t, "bravo to learn of alpha's new file", converge, func() bool {
		_, ok, _ := b.store.Remote("f", a.id, "photos/2019/sunset.jpg")
		return ok
	})
	time.Sleep(200 * time.Millisecond) // a pull would have begun by now
	if n := pullPasses(b); n != passes {
		t.Errorf("bravo ran %d pull passes while its disk was away", n-passes)
	}
	mountPointEmpty(t, b.root)
	if !fileIs(a, "photos/2019/beach.jpg", "waves") {
		t.Error("alpha lost beach.jpg while bravo's disk was away")
	}

	remount(t, b.root, drive)
	b.rescan()
	got := waitConverged(t, converge, a, b)
	for _, p := range []string{"photos/2019/beach.jpg", "photos/2019/sunset.jpg"} {
		if _, ok := got[p]; !ok {
			t.Errorf("%s missing after the disk came back", p)
		}
	}
	waitFor(t, "bravo's error to clear", converge, func() bool { return folderErr(b) == "" })
}

// TestMarkerMissingAtStart: a folder that has records here but lost its
// marker while the daemon was stopped stays paused at start (its marker is
// not made again behind the user's back) until the user makes it.
func TestMarkerMissingAtStart(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "music/song.flac", []byte("la"))
	b.stop()
	if err := os.RemoveAll(markerDir(b.root)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(b.root, "music", "song.flac")); err != nil {
		t.Fatal(err)
	}
	b.start(a)
	waitPaused(t, b)
	if _, err := os.Lstat(markerDir(b.root)); err == nil {
		t.Error("the marker was made again for a folder that has records")
	}
	liveLocal(t, b, "music/song.flac")
	if !fileIs(a, "music/song.flac", "la") {
		t.Error("alpha lost song.flac while bravo's folder was paused")
	}

	if err := os.Mkdir(markerDir(b.root), 0o700); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	waitFor(t, "alpha to delete song.flac as bravo did", converge, func() bool {
		_, err := os.Lstat(filepath.Join(a.root, "music", "song.flac"))
		return os.IsNotExist(err)
	})
	if !trashHolds(t, a.root, "la") {
		t.Error("alpha's trash does not hold song.flac")
	}
}

// TestRemountedFolderWatchedAgain: when bravo's disk comes back, its folder
// is another directory than the one the watcher watched; a file written
// there afterwards reaches alpha through the watcher alone.
func TestRemountedFolderWatchedAgain(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	startWatching(t, a, b, nil)
	a.write("photos/a.jpg", []byte("a"))
	waitConverged(t, converge, a, b)

	drive := unmount(t, b.root)
	b.rescan()
	waitPaused(t, b)

	// Mounted again: the same entries in a new root directory.
	moveEntries(t, drive, b.root)
	b.rescan()
	waitFor(t, "bravo's folder to resume", converge, func() bool { return folderErr(b) == "" })
	b.write("new.txt", []byte("written after the mount"))
	waitFor(t, "new.txt to reach alpha through bravo's watcher", converge, func() bool {
		return fileIs(a, "new.txt", "written after the mount")
	})
}

// TestAwayNoticedWhileIdle: an idle folder whose disk goes away says so
// within presenceEvery, with no event to wake it; back, it says nothing.
func TestAwayNoticedWhileIdle(t *testing.T) {
	fastPresence(t)
	_, a, b := pair2(t)
	syncedFile(t, a, b, "a.txt", []byte("a"))
	drive := unmount(t, b.root)
	waitPaused(t, b)
	remount(t, b.root, drive)
	waitFor(t, "bravo's error to clear", converge, func() bool { return folderErr(b) == "" })
	if !strings.Contains(b.logText(), "folder is back") {
		t.Error("bravo's log does not say that the folder is back")
	}
}

// TestTrashNeverMakesTheMarker: moving a file into the trash of a folder
// whose marker is gone fails and makes no marker (which would make an
// empty mount point look like the folder).
func TestTrashNeverMakesTheMarker(t *testing.T) {
	root := t.TempDir()
	f := newFolder(New(Options{}), FolderConfig{ID: "f", Root: root})
	var err error
	if f.rootFD, err = openRoot(root); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(f.rootFD)
	if err := os.WriteFile(filepath.Join(root, "x.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = f.toTrash("x.txt", at{f.rootFD, "x.txt", filepath.Join(root, "x.txt")}, false)
	if err == nil || !strings.Contains(err.Error(), ".syncd") {
		t.Errorf("toTrash without a marker = %v, want an error naming .syncd", err)
	}
	if _, err := os.Lstat(markerDir(root)); err == nil {
		t.Error("toTrash made the marker")
	}
	if data, err := os.ReadFile(filepath.Join(root, "x.txt")); err != nil || string(data) != "x" {
		t.Errorf("x.txt = %q, %v; want it in place", data, err)
	}
}

// configure gives d's engine folder "f" at root, shared with d's peers, or
// no folder if root is empty (as a reloaded config does).
func configure(d *testDev, root string) {
	var pc []PeerConfig
	var ids []deviceid.ID
	for _, p := range d.peers {
		pc = append(pc, PeerConfig{ID: p.id, Name: p.name})
		ids = append(ids, p.id)
	}
	var fc []FolderConfig
	if root != "" {
		fc = []FolderConfig{{ID: "f", Root: root, Peers: ids}}
	}
	d.eng.Configure(pc, fc)
}

// TestRemovedFolderStartsOver: bravo's folder is removed and added again
// at a new, empty path: it starts over there, its files come from alpha,
// and nothing is deleted anywhere. Removed and added again where its files
// are, it finds them as they are (no conflict copy, nothing in the trash),
// and an edit made meanwhile to a file bravo wrote reaches alpha: the new
// version goes above bravo's forgotten ones.
func TestRemovedFolderStartsOver(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "photos/a.jpg", []byte("a"))
	syncedFile(t, b, a, "photos/b.jpg", []byte("b"))
	removeFolder := func() {
		t.Helper()
		configure(b, "")
		waitFor(t, "bravo to forget the folder", converge, func() bool {
			seq, err := b.store.LocalSeq("f")
			return err == nil && seq == 0
		})
	}
	removeFolder()
	old := b.root
	b.root = filepath.Join(b.home, "new")
	if err := os.Mkdir(b.root, 0o755); err != nil {
		t.Fatal(err)
	}
	configure(b, b.root)
	got := waitConverged(t, converge, a, b)
	if _, ok := got["photos/a.jpg"]; !ok {
		t.Fatal("photos/a.jpg is not on both devices after the folder was added again")
	}
	if !fileIs(a, "photos/a.jpg", "a") {
		t.Error("alpha lost a.jpg")
	}
	if _, err := os.Stat(filepath.Join(old, "photos", "a.jpg")); err != nil {
		t.Errorf("the old path lost its file: %v", err)
	}

	removeFolder()
	b.write("photos/b.jpg", []byte("edited while removed"))
	configure(b, b.root)
	waitFor(t, "bravo to record its files again", converge, func() bool {
		r, ok, err := b.store.Local("f", "photos/a.jpg")
		return err == nil && ok && !r.Deleted
	})
	waitConverged(t, converge, a, b)
	if !fileIs(a, "photos/b.jpg", "edited while removed") {
		t.Error("alpha does not have the edit bravo made while the folder was removed")
	}
	for _, d := range []*testDev{a, b} {
		for p := range tree(t, d.root) {
			if isConflictCopy(p) {
				t.Errorf("%s has a conflict copy %s", d.name, p)
			}
		}
		if trashHolds(t, d.root, "a") {
			t.Errorf("%s put a.jpg into its trash", d.name)
		}
	}
}

// TestLostIndexEditConverges: bravo's index is lost (moved away, or the
// home restored from an old backup) while its folder keeps its files, and
// a file bravo wrote was edited meanwhile. Bravo's first scan runs before
// it has heard from alpha. Version counters start at the clock (milliseconds),
// so the edit's version is above the one alpha holds for bravo's old
// content: both devices end with the edit, and the old content is kept in
// alpha's trash, not lost and not left to differ.
func TestLostIndexEditConverges(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, b, a, "doc.txt", []byte("v1"))
	before, _, err := b.store.Local("f", "doc.txt")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alpha to record bravo's version", converge, func() bool {
		r, ok, err := a.store.Local("f", "doc.txt")
		return err == nil && ok && r.Version.Compare(before.Version) == index.Equal
	})
	b.stop()
	if err := os.RemoveAll(filepath.Join(b.home, "index")); err != nil {
		t.Fatal(err)
	}
	b.write("doc.txt", []byte("v2, edited on bravo"))
	b.start() // alone first, so that its first scan has heard from nobody
	waitFor(t, "bravo to record doc.txt again", converge, func() bool {
		_, ok, err := b.store.Local("f", "doc.txt")
		return err == nil && ok
	})
	if r, _, _ := b.store.Local("f", "doc.txt"); r.Version.Compare(before.Version) != index.Greater {
		t.Fatalf("bravo's new version %v does not dominate the one it gave before its index was lost, %v", r.Version, before.Version)
	}
	b.stop()
	b.start(a)
	copies := conflictCopies(waitConverged(t, converge, a, b))
	for _, d := range []*testDev{a, b} {
		if got := readFile(t, d, "doc.txt"); got != "v2, edited on bravo" {
			t.Errorf("%s's doc.txt = %q, want bravo's edit", d.name, got)
		}
	}
	if len(copies) != 0 {
		t.Errorf("conflict copies %v, want none (bravo's edit came after v1)", copies)
	}
	if !holds(a.root, "v1", false) {
		t.Errorf("alpha lost v1: it is neither in its folder nor in its trash")
	}
}

// TestOtherDiskAtMountPoint: while bravo's disk is away, another disk with
// a syncd folder on it is mounted at the same place: first one of another
// folder, then another copy of this one (a second backup disk). Neither is
// taken for bravo's folder: nothing is deleted, here or on alpha, and
// status says why. Once the right disk is back, both sync.
func TestOtherDiskAtMountPoint(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "photos/beach.jpg", []byte("waves"))
	if m, err := readMarker(markerFile(b.root)); err != nil || m.Folder != "f" {
		t.Fatalf("bravo's marker = %+v, %v; want one of folder f", m, err)
	}
	drive := b.root + ".drive"
	if err := os.Rename(b.root, drive); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		marker, says string
	}{
		{`{"syncd_folder":"music","token":"0123"}`, `belongs to the syncd folder "music"`},
		{`{"syncd_folder":"f","token":"0123"}`, "is another copy of the folder"},
		{`not json`, "cannot read the folder marker"},
	} {
		if err := os.MkdirAll(filepath.Join(b.root, ".syncd", "trash"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(markerFile(b.root), []byte(tc.marker), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b.root, "other.txt"), []byte("other disk"), 0o644); err != nil {
			t.Fatal(err)
		}
		b.rescan()
		waitFor(t, "bravo to say: "+tc.says, converge, func() bool {
			return strings.Contains(folderErr(b), tc.says)
		})
		liveLocal(t, b, "photos/beach.jpg")
		if _, ok, _ := b.store.Local("f", "other.txt"); ok {
			t.Errorf("bravo recorded the other disk's file (marker %s)", tc.marker)
		}
		if !fileIs(a, "photos/beach.jpg", "waves") {
			t.Fatalf("alpha lost beach.jpg (marker %s)", tc.marker)
		}
		if err := os.RemoveAll(b.root); err != nil {
			t.Fatal(err)
		}
	}

	if err := os.Rename(drive, b.root); err != nil {
		t.Fatal(err)
	}
	b.write("photos/dunes.jpg", []byte("sand"))
	b.rescan()
	waitFor(t, "alpha to get bravo's new file", converge, func() bool { return fileIs(a, "photos/dunes.jpg", "sand") })
	waitFor(t, "bravo's error to clear", converge, func() bool { return folderErr(b) == "" })
	if !fileIs(a, "photos/beach.jpg", "waves") {
		t.Error("alpha lost beach.jpg")
	}
}

// TestQuickRemountWatchedAgain: bravo's disk is unmounted and mounted again
// between two looks (no scan saw it away): its root is now another
// directory, with the same marker. Bravo notices, watches the new one, and
// a file written there reaches alpha through the watcher.
func TestQuickRemountWatchedAgain(t *testing.T) {
	fastPresence(t)
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	startWatching(t, a, b, nil)
	a.write("photos/a.jpg", []byte("a"))
	waitConverged(t, converge, a, b)

	// The same entries (marker included) in a new root directory, swapped
	// in at once.
	fresh := b.root + ".mounted"
	if err := os.Mkdir(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	moveEntries(t, b.root, fresh)
	if err := os.Rename(b.root, b.root+".unmounted"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fresh, b.root); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * presenceEvery)
	b.write("new.txt", []byte("written after the remount"))
	waitFor(t, "new.txt to reach alpha through bravo's watcher", converge, func() bool {
		return fileIs(a, "new.txt", "written after the remount")
	})
	if !fileIs(a, "photos/a.jpg", "a") {
		t.Error("alpha lost a.jpg")
	}
}

// TestUnmountAsPullBegins: bravo's disk goes away after its run loop
// looked and before a pull pass opens the folder's root. The pass writes
// nothing below the mount point and the folder pauses; once the disk is
// back, alpha's file arrives: after a rescan request, and with none, by
// the folder's next look for its disk alone.
func TestUnmountAsPullBegins(t *testing.T) {
	for _, look := range []bool{false, true} {
		name := "rescan"
		if look {
			name = "next look"
		}
		t.Run(name, func(t *testing.T) {
			if look {
				fastPresence(t)
			}
			var armed atomic.Bool
			var fired sync.Once
			var drive string
			_, a, b := startTwo(t, func(d *testDev, o *Options) {
				if d.name != "bravo" {
					return
				}
				o.hooks.beforeOpenRoot = func() {
					if !armed.Load() {
						return
					}
					fired.Do(func() {
						drive = unmount(t, d.root)
					})
				}
			})
			syncedFile(t, a, b, "a.txt", []byte("a"))
			armed.Store(true)
			a.write("photos/new.jpg", []byte("new"))
			a.rescan()
			waitPaused(t, b)
			mountPointEmpty(t, b.root)
			remount(t, b.root, drive)
			if !look {
				b.rescan()
			}
			waitFor(t, "alpha's new file to reach bravo", converge, func() bool { return fileIs(b, "photos/new.jpg", "new") })
			waitFor(t, "bravo's error to clear", converge, func() bool { return folderErr(b) == "" })
		})
	}
}

// TestAnotherCopyOfEmptyFolder: bravo's folder has no record yet (nothing
// to sync) when a disk with another copy of folder "f" (another token) is
// mounted in its place: it pauses, and removing the folder and adding it
// again, as the message says, syncs that copy. Before that, the marker
// being gone altogether does not make bravo make one: it had one.
func TestAnotherCopyOfEmptyFolder(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	b.start(a) // alpha is not running: nothing to sync
	waitFor(t, "bravo's marker token", converge, func() bool {
		tok, err := b.store.MarkerToken("f")
		return err == nil && tok != ""
	})
	if seq, err := b.store.LocalSeq("f"); seq != 0 || err != nil {
		t.Fatalf("bravo's LocalSeq = %d, %v; want 0", seq, err)
	}
	if err := os.RemoveAll(markerDir(b.root)); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	waitPaused(t, b)
	if _, err := os.Lstat(markerDir(b.root)); err == nil {
		t.Error("bravo made a marker again for a folder that had one")
	}

	if err := os.MkdirAll(markerDir(b.root), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(markerFile(b.root), []byte(`{"syncd_folder":"f","token":"0123"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	waitFor(t, "bravo to say it is another copy", converge, func() bool {
		return strings.Contains(folderErr(b), "another copy")
	})
	configure(b, "")
	waitFor(t, "bravo to forget the folder's token", converge, func() bool {
		tok, err := b.store.MarkerToken("f")
		return err == nil && tok == ""
	})
	configure(b, b.root)
	waitFor(t, "bravo to take the copy's token", converge, func() bool {
		tok, err := b.store.MarkerToken("f")
		return err == nil && tok == "0123"
	})
	waitFor(t, "bravo's error to clear", converge, func() bool { return folderErr(b) == "" })
}

// TestNewRootRefused: a folder that never synced here, whose root
// Options.NewRoot refuses (a disk that should be mounted there is not),
// gets no marker and no files, and shows why; once NewRoot accepts the
// root, the folder gets its marker and syncs.
func TestNewRootRefused(t *testing.T) {
	fastPresence(t)
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	a.write("photos/beach.jpg", []byte("waves"))
	a.start(b)
	var mounted atomic.Bool
	var asked atomic.Int32
	const why = "no disk is mounted there"
	err := b.startWith(func(o *Options) {
		o.NewRoot = func(root string) error {
			if root != b.root {
				t.Errorf("NewRoot(%q), want %q", root, b.root)
			}
			asked.Add(1)
			if mounted.Load() {
				return nil
			}
			return errors.New(why)
		}
	}, a)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bravo to show why its folder waits", converge, func() bool { return folderErr(b) == why })
	waitFor(t, "bravo to ask again", converge, func() bool { return asked.Load() >= 3 })
	mountPointEmpty(t, b.root)

	mounted.Store(true)
	waitConverged(t, converge, a, b)
	if !fileIs(b, "photos/beach.jpg", "waves") {
		t.Error("bravo has no beach.jpg after its root was accepted")
	}
	if fi, err := os.Lstat(markerDir(b.root)); err != nil || !fi.IsDir() {
		t.Errorf("bravo's marker: %v", err)
	}
	waitFor(t, "bravo's error to clear", converge, func() bool { return folderErr(b) == "" })

	// A folder that has synced is not asked about again.
	n0 := asked.Load()
	mounted.Store(false)
	b.stop()
	if err := b.startWith(func(o *Options) {
		o.NewRoot = func(string) error { asked.Add(1); return errors.New(why) }
	}, a); err != nil {
		t.Fatal(err)
	}
	a.write("photos/sunset.jpg", []byte("red"))
	a.rescan()
	waitConverged(t, converge, a, b)
	if !fileIs(b, "photos/sunset.jpg", "red") || asked.Load() != n0 {
		t.Errorf("after a restart: sunset.jpg synced %v, NewRoot asked %d more times; want synced, none", fileIs(b, "photos/sunset.jpg", "red"), asked.Load()-n0)
	}
}

// TestRootNotADirectory: a folder path that is a file and one that is
// missing are told apart, so the advice fits (moving the file away, not
// creating what is already there).
func TestRootNotADirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "photos")
	if err := os.WriteFile(file, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ root, want string }{
		{file, "is not a directory;"},
		{filepath.Join(dir, "gone"), "is missing"},
	} {
		err := newFolder(New(Options{}), FolderConfig{ID: "f", Root: tc.root}).present()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("present() of %s = %v, want an error saying %q", tc.root, err, tc.want)
		}
	}
}
