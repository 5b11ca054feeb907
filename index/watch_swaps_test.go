package index

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// review30fWatch runs Watch wired to Scan like the daemon (no periodic
// rescans of its own), after a first full scan.
func watchScanning(t *testing.T, e *scanEnv) {
	t.Helper()
	e.scan()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.sc.Watch(ctx, WatchOptions{Debounce: 20 * time.Millisecond, FullEvery: -1}, func(ctx context.Context, paths []string) {
			if _, err := e.sc.Scan(ctx, paths...); err != nil && ctx.Err() == nil {
				t.Errorf("Scan(%q) = %v", paths, err)
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !e.sc.WatchDir(""); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not start")
		}
	}
	time.Sleep(100 * time.Millisecond)
}

// waitRecSize waits up to 5 s for rel's live record to hold data's size.
func waitRecSize(t *testing.T, e *scanEnv, rel string, size int64, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, ok, _ := e.st.Local("f", rel)
		if ok && !r.Deleted && r.Size == size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not recorded within 5 s (record %+v, ok=%v)", what, rel, r, ok)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitRecGone(t *testing.T, e *scanEnv, rel string, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, ok, _ := e.st.Local("f", rel)
		if !ok || r.Deleted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s still live within 5 s (record %+v)", what, rel, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchExchangeDirs: two directories swapped atomically
// (renameat2 RENAME_EXCHANGE, as `mv --exchange a b` does). Afterwards
// files written in either directory must still be noticed.
func TestWatchExchangeDirs(t *testing.T) {
	e := newScanEnv(t)
	e.write("a/fa", "a")
	e.write("b/fb", "bb")
	watchScanning(t, e)
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(e.root, "a"), unix.AT_FDCWD, filepath.Join(e.root, "b"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("renameat2 RENAME_EXCHANGE: %v", err)
	}
	waitRecSize(t, e, "a/fb", 2, "after the swap")
	waitRecSize(t, e, "b/fa", 1, "after the swap")
	time.Sleep(200 * time.Millisecond)
	e.write("a/new", "123")
	e.write("b/new", "1234")
	waitRecSize(t, e, "a/new", 3, "file written in a after the swap")
	waitRecSize(t, e, "b/new", 4, "file written in b after the swap")
}

// TestWatchSwapDirsViaTemp: a <-> b through a temp name in quick
// succession (a->t, b->a, t->b).
func TestWatchSwapDirsViaTemp(t *testing.T) {
	e := newScanEnv(t)
	e.write("a/fa", "a")
	e.write("b/fb", "bb")
	watchScanning(t, e)
	mv := func(from, to string) {
		if err := os.Rename(filepath.Join(e.root, from), filepath.Join(e.root, to)); err != nil {
			t.Fatal(err)
		}
	}
	mv("a", "t")
	mv("b", "a")
	mv("t", "b")
	waitRecSize(t, e, "a/fb", 2, "after the swap")
	waitRecSize(t, e, "b/fa", 1, "after the swap")
	time.Sleep(200 * time.Millisecond)
	e.write("a/new", "123")
	e.write("b/new", "1234")
	waitRecSize(t, e, "a/new", 3, "file written in a after the swap")
	waitRecSize(t, e, "b/new", 4, "file written in b after the swap")
}

// TestWatchRenameTwice: a directory renamed twice quickly a->b->c.
func TestWatchRenameTwice(t *testing.T) {
	e := newScanEnv(t)
	e.write("a/sub/f", "x")
	watchScanning(t, e)
	if err := os.Rename(filepath.Join(e.root, "a"), filepath.Join(e.root, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(e.root, "b"), filepath.Join(e.root, "c")); err != nil {
		t.Fatal(err)
	}
	waitRecSize(t, e, "c/sub/f", 1, "after a->b->c")
	waitRecGone(t, e, "a/sub/f", "after a->b->c")
	time.Sleep(200 * time.Millisecond)
	e.write("c/sub/g", "12")
	e.write("c/h", "123")
	waitRecSize(t, e, "c/sub/g", 2, "write after a->b->c")
	waitRecSize(t, e, "c/h", 3, "write after a->b->c")
}

// TestWatchMoveOutAndBack: a tree moved out of the folder, then back
// in under another name.
func TestWatchMoveOutAndBack(t *testing.T) {
	e := newScanEnv(t)
	out := t.TempDir()
	e.write("a/sub/deep/f", "x")
	watchScanning(t, e)
	if err := os.Rename(filepath.Join(e.root, "a"), filepath.Join(out, "a")); err != nil {
		t.Fatal(err)
	}
	waitRecGone(t, e, "a/sub/deep/f", "moved out")
	time.Sleep(200 * time.Millisecond)
	if err := os.Rename(filepath.Join(out, "a"), filepath.Join(e.root, "b")); err != nil {
		t.Fatal(err)
	}
	waitRecSize(t, e, "b/sub/deep/f", 1, "moved back in as b")
	time.Sleep(200 * time.Millisecond)
	e.write("b/sub/deep/g", "12")
	e.write("b/sub/h", "123")
	waitRecSize(t, e, "b/sub/deep/g", 2, "write after moving back in")
	waitRecSize(t, e, "b/sub/h", 3, "write after moving back in")
}

// TestWatchRenameOverEmptyDir: a directory renamed over an existing
// empty one (mv -T a b); later writes in b are noticed.
func TestWatchRenameOverEmptyDir(t *testing.T) {
	e := newScanEnv(t)
	e.write("a/sub/f", "x")
	if err := os.Mkdir(filepath.Join(e.root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	watchScanning(t, e)
	if err := unix.Rename(filepath.Join(e.root, "a"), filepath.Join(e.root, "b")); err != nil {
		t.Fatal(err)
	}
	waitRecSize(t, e, "b/sub/f", 1, "after mv -T a b")
	time.Sleep(200 * time.Millisecond)
	e.write("b/new", "12")
	e.write("b/sub/new", "123")
	waitRecSize(t, e, "b/new", 2, "write after mv -T a b")
	waitRecSize(t, e, "b/sub/new", 3, "write after mv -T a b")
}

// TestWatchExchangeFiles: two files of the same size and mtime
// swapped atomically: both records must take the other's content.
func TestWatchExchangeFiles(t *testing.T) {
	e := newScanEnv(t)
	e.write("x", "AAAA")
	e.write("y", "BBBB")
	mt := time.Unix(1700000000, 0)
	os.Chtimes(filepath.Join(e.root, "x"), mt, mt)
	os.Chtimes(filepath.Join(e.root, "y"), mt, mt)
	watchScanning(t, e)
	cx, cy := e.rec("x").Content, e.rec("y").Content
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(e.root, "x"), unix.AT_FDCWD, filepath.Join(e.root, "y"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("renameat2: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if e.rec("x").Content == cy && e.rec("y").Content == cx {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("swapped files not recorded: x=%v y=%v", e.rec("x").Content, e.rec("y").Content)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchOverflow: events lost to an inotify queue overflow (the
// watcher's consumer blocked while more than max_queued_events arrive) are
// made up for by a full rescan.
func TestWatchOverflow(t *testing.T) {
	e := newScanEnv(t)
	e.write("x", "0")
	e.write("y", "0")
	e.scan()
	block := make(chan struct{})
	blocked := make(chan struct{}, 1)
	var once bool
	var full atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.sc.Watch(ctx, WatchOptions{Debounce: 20 * time.Millisecond, FullEvery: -1}, func(ctx context.Context, paths []string) {
			if !once {
				once = true
				blocked <- struct{}{}
				<-block
			}
			if paths == nil {
				full.Store(true)
			}
			if _, err := e.sc.Scan(ctx, paths...); err != nil && ctx.Err() == nil {
				t.Errorf("Scan(%q) = %v", paths, err)
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !e.sc.WatchDir(""); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not start")
		}
	}
	time.Sleep(100 * time.Millisecond)
	e.write("x", "1")
	<-blocked
	// Alternate writes so that the kernel cannot merge them.
	fx, _ := os.OpenFile(filepath.Join(e.root, "x"), os.O_WRONLY, 0)
	fy, _ := os.OpenFile(filepath.Join(e.root, "y"), os.O_WRONLY, 0)
	for i := 0; i < 40000; i++ {
		fx.WriteAt([]byte("1"), 0)
		fy.WriteAt([]byte("1"), 0)
	}
	fx.Close()
	fy.Close()
	e.write("lost", "123")
	close(block)
	waitRecSize(t, e, "lost", 3, "file created after an overflow")
	if !full.Load() {
		t.Error("no full rescan: the queue did not overflow?")
	}
}

// TestWatchSymlinks: a symlink retargeted in place (ln -sfn) and a
// directory replaced by a symlink to another directory of the folder.
func TestWatchSymlinks(t *testing.T) {
	e := newScanEnv(t)
	e.write("t1/f", "1")
	e.write("t2/f", "22")
	e.write("d/sub/f", "333")
	if err := os.Symlink("t1", filepath.Join(e.root, "l")); err != nil {
		t.Fatal(err)
	}
	watchScanning(t, e)
	// ln -sfn t2 l: a new link under a temp name renamed over l.
	if err := os.Symlink("t2", filepath.Join(e.root, "l.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(e.root, "l.tmp"), filepath.Join(e.root, "l")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.rec("l").Target != "t2" {
		if time.Now().After(deadline) {
			t.Fatalf("retargeted symlink recorded as %+v", e.rec("l"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.RemoveAll(filepath.Join(e.root, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("t1", filepath.Join(e.root, "d")); err != nil {
		t.Fatal(err)
	}
	waitRecGone(t, e, "d/sub/f", "dir replaced by a symlink")
	deadline = time.Now().Add(5 * time.Second)
	for r, ok, _ := e.st.Local("f", "d"); !ok || r.Kind != Symlink; r, ok, _ = e.st.Local("f", "d") {
		if time.Now().After(deadline) {
			t.Fatalf("d recorded as %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Writes through the symlink land in t1: t1/new is recorded, d/new never is.
	e.write("d/new", "4444")
	waitRecSize(t, e, "t1/new", 4, "write through the symlink")
	if _, ok, _ := e.st.Local("f", "d/new"); ok {
		t.Error("d/new recorded through a symlink")
	}
}

// TestWatchedListForgetsRemovedDirs: directories made and removed
// while the watcher runs (a build's temp trees, say) must not stay in
// Scanner.watched: the map would grow with every directory ever made in
// the run, and a stale entry at a name makes a later Rename or Create
// there walk and Remove watches that no longer exist.
func TestWatchedListForgetsRemovedDirs(t *testing.T) {
	e := newScanEnv(t)
	e.write("keep/k", "k")
	watchScanning(t, e)
	const n = 50
	for round := 0; round < 3; round++ {
		for i := 0; i < n; i++ {
			e.write(fmt.Sprintf("tmp%d-%d/sub/f", round, i), "x")
		}
		for i := 0; i < n; i++ {
			waitRecSize(t, e, fmt.Sprintf("tmp%d-%d/sub/f", round, i), 1, "made")
		}
		for i := 0; i < n; i++ {
			if err := os.RemoveAll(filepath.Join(e.root, fmt.Sprintf("tmp%d-%d", round, i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < n; i++ {
			waitRecGone(t, e, fmt.Sprintf("tmp%d-%d", round, i), "removed")
		}
	}
	// A last change, so every earlier event has been handled.
	e.write("keep/k", "kk")
	waitRecSize(t, e, "keep/k", 2, "marker")
	e.sc.watchedMu.Lock()
	var stale []string
	for p := range e.sc.watched {
		if _, err := os.Lstat(p); err != nil {
			stale = append(stale, p)
		}
	}
	total := len(e.sc.watched)
	e.sc.watchedMu.Unlock()
	if len(stale) > 0 {
		t.Fatalf("Scanner.watched holds %d entries, %d of them directories removed long ago (e.g. %s): it grows with every directory made in the run",
			total, len(stale), stale[0])
	}
}
