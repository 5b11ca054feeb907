package peer

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestOwnWritesFilter: a path is dropped while it holds exactly what was
// noted, once; any change to the file, even one that keeps its size and
// mtime, makes it scanned.
func TestOwnWritesFilter(t *testing.T) {
	root := t.TempDir()
	write := func(name, data string) os.FileInfo {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	var o ownWrites
	o.note("a", write("a", "one"))
	o.note("b", write("b", "two"))
	o.note("gone", write("gone", "x"))
	os.Remove(filepath.Join(root, "gone"))
	if got := o.filter(root, []string{"a", "b", "gone", "other"}); !slices.Equal(got, []string{"gone", "other"}) {
		t.Errorf("filter = %q, want the missing and the unnoted paths", got)
	}
	if got := o.filter(root, []string{"a"}); !slices.Equal(got, []string{"a"}) {
		t.Errorf("second filter of a = %q: a note must be used once", got)
	}

	// Same size, mtime set back: only the ctime tells.
	fi := write("c", "abc")
	o.note("c", fi)
	time.Sleep(20 * time.Millisecond)
	p := filepath.Join(root, "c")
	if err := os.WriteFile(p, []byte("xyz"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got := o.filter(root, []string{"c"}); !slices.Equal(got, []string{"c"}) {
		t.Errorf("filter after a same-size edit with the mtime restored = %q, want c", got)
	}

	// A directory: files put in it do not matter, a chmod does.
	for _, name := range []string{"dir", "dir2"} {
		if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		o.noteDir(name, filepath.Join(root, name), fi)
	}
	time.Sleep(20 * time.Millisecond)
	write("dir/x", "x")
	if err := os.Chmod(filepath.Join(root, "dir2"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got := o.filter(root, []string{"dir", "dir2"}); !slices.Equal(got, []string{"dir2"}) {
		t.Errorf("filter of a filled and a chmod-ed noted directory = %q, want dir2", got)
	}
	// Same inode and mode but another birth time: a directory made again
	// (its inode number reused) is walked.
	if err := os.Mkdir(filepath.Join(root, "dir3"), 0o755); err != nil {
		t.Fatal(err)
	}
	fi3, _ := os.Lstat(filepath.Join(root, "dir3"))
	st3, _ := ownStatOf(fi3)
	bt, ok := birthOf(filepath.Join(root, "dir3"))
	if !ok {
		t.Fatal("no birth time on this file system: directories are never noted")
	}
	o.add("dir3", ownStat{ino: st3.ino, mode: st3.mode, dir: true, btime: bt - 1})
	if got := o.filter(root, []string{"dir3"}); !slices.Equal(got, []string{"dir3"}) {
		t.Errorf("filter of a directory born at another time = %q, want dir3", got)
	}

	o.note("d", write("d", "d"))
	o.reset()
	if got := o.filter(root, []string{"d"}); !slices.Equal(got, []string{"d"}) {
		t.Errorf("filter after reset = %q, want d", got)
	}
}

// startWatching starts a and b, each the other's peer, with the watcher on
// (20 ms debounce); bMore, if set, changes b's options further.
func startWatching(t *testing.T, a, b *testDev, bMore func(*Options)) {
	t.Helper()
	for _, d := range []struct {
		dev, peer *testDev
		more      func(*Options)
	}{{a, b, nil}, {b, a, bMore}} {
		if err := d.dev.startWith(func(o *Options) {
			o.Watch = true
			o.Debounce = 20 * time.Millisecond
			if d.more != nil {
				d.more(o)
			}
		}, d.peer); err != nil {
			t.Fatal(err)
		}
	}
}

// waitSkipped waits until d's watcher has reported everything d's puller
// noted, and at least n reports were dropped as d's own writes.
func waitSkipped(t *testing.T, d *testDev, n int, what string) {
	t.Helper()
	f := d.eng.folders["f"]
	waitFor(t, d.name+" to skip the scan of "+what, converge, func() bool {
		f.own.mu.Lock()
		defer f.own.mu.Unlock()
		return len(f.own.seen) == 0 && f.own.skipped >= n
	})
}

// TestOwnWritesSkipScan: with the watcher on, the files a pull installed
// are not scanned again (their notes are used up by the watcher's reports),
// and a local edit right after the pull still travels back.
func TestOwnWritesSkipScan(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	for i := range 40 {
		a.write(filepath.Join("d", string(rune('a'+i%26))+string(rune('0'+i/26))+".txt"), randBytes(uint64(i), 1000+i))
	}
	pullThenWriteBack(t, a, b, 40, "the 40 pulled files", "d/a0.txt", "edited on b right after the pull")
}

// pullThenWriteBack starts a and b watching, waits until b has pulled a's
// files and dropped skipped reports of its own writes (what), then writes
// content at p on b and waits until a has it.
func pullThenWriteBack(t *testing.T, a, b *testDev, skipped int, what, p, content string) {
	t.Helper()
	startWatching(t, a, b, nil)
	waitConverged(t, converge, a, b)
	waitSkipped(t, b, skipped, what)
	b.write(p, []byte(content))
	waitFor(t, "b's write of "+p+" to reach a", converge, func() bool { return fileIs(a, p, content) })
}

// TestOwnDirsNotWalked: the directories a pull made are watched at once
// and noted, so the watcher's reports of them cost no walk; a file another
// program puts in one of them afterwards still travels.
func TestOwnDirsNotWalked(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	for i := range 40 {
		a.write(filepath.Join("new", "sub"+string(rune('0'+i%2)), string(rune('a'+i%26))+string(rune('0'+i/26))+".txt"), randBytes(uint64(i), 500+i))
	}
	pullThenWriteBack(t, a, b, 43, "the 40 pulled files and new, new/sub0 and new/sub1", "new/sub1/late.txt", "put in a directory the pull made")
}

// TestFileInNewDirBeforeWatch: another program puts a file into a
// directory the pull has just made, before the pull watches it (a copy of
// the same tree running here). The directory must then be walked, and the
// file must travel.
func TestFileInNewDirBeforeWatch(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	for i := range 10 {
		a.write(filepath.Join("new", "sub0", string(rune('a'+i))+".txt"), randBytes(uint64(i), 700+i))
	}
	var once sync.Once
	startWatching(t, a, b, func(o *Options) {
		o.hooks.afterMkdir = func(dir string) {
			if filepath.Base(dir) == "sub0" {
				once.Do(func() {
					if err := os.WriteFile(filepath.Join(dir, "other.txt"), []byte("copied in at the same time"), 0o644); err != nil {
						t.Error(err)
					}
				})
			}
		}
	})
	waitFor(t, "the file put into the new directory to reach a", converge, func() bool {
		return fileIs(a, "new/sub0/other.txt", "copied in at the same time")
	})
	waitConverged(t, converge, a, b)
}

// TestOwnMetadataChangeSkipsScan: a change of only mode and mtime, applied
// in place, is noted too, so the watcher's report of it costs no scan.
func TestOwnMetadataChangeSkipsScan(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	a.write("m.txt", []byte("same content on both"))
	startWatching(t, a, b, nil)
	waitConverged(t, converge, a, b)
	waitSkipped(t, b, 1, "the pulled file")
	if err := os.Chmod(filepath.Join(a.root, "m.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new mode to reach b", converge, func() bool {
		fi, err := os.Stat(filepath.Join(b.root, "m.txt"))
		return err == nil && fi.Mode().Perm() == 0o600
	})
	waitSkipped(t, b, 2, "the file whose mode changed")
}

// TestHardLinkEditReachesPeer: alpha holds one file under two names (hard
// links); an edit through one name reaches bravo under both, from the
// watcher's report of the one name (the full rescan is an hour away).
func TestHardLinkEditReachesPeer(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	a.write("one.txt", []byte("first"))
	if err := os.MkdirAll(filepath.Join(a.root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(a.root, "one.txt"), filepath.Join(a.root, "sub/two.txt")); err != nil {
		t.Fatal(err)
	}
	startWatching(t, a, b, nil)
	waitFor(t, "bravo to get both names", converge, func() bool {
		return fileIs(b, "one.txt", "first") && fileIs(b, "sub/two.txt", "first")
	})
	if err := os.WriteFile(filepath.Join(a.root, "one.txt"), []byte("edited through one name"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bravo to get the edit under both names", converge, func() bool {
		return fileIs(b, "one.txt", "edited through one name") && fileIs(b, "sub/two.txt", "edited through one name")
	})
}
