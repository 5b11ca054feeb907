package index

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestScanLinkMadeAfterScanEditThroughNewName: a.txt is recorded
// (one link). The user then makes a hard link b.txt of it; the watcher
// scans b.txt only (the link's Create event; a.txt gets no event). The
// user then edits the file through b.txt; the watcher scans b.txt. a.txt
// holds the new content on disk, but its record keeps the old one: its
// name was never noted, as the only scan that saw the link count > 1 did
// not visit it.
func TestScanLinkMadeAfterScanEditThroughNewName(t *testing.T) {
	e := newScanEnv(t)
	e.write("a.txt", "old content")
	e.scan()
	e.link("a.txt", "b.txt")
	e.scan("b.txt")
	if err := os.WriteFile(filepath.Join(e.root, "b.txt"), []byte("new content, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.scan("b.txt")
	_, want := chunkBlocks([]byte("new content, longer"))
	if got := e.rec("b.txt").Content; got != want {
		t.Fatalf("b.txt recorded as %s, want %s", got, want)
	}
	if got := e.rec("a.txt").Content; got != want {
		t.Errorf("a.txt (a hard link of b.txt, edited through b.txt) recorded as %s, want %s (scan: %+v)", got, want, res)
	}
}

// TestScanLinkMadeAfterScanWatched is the same through the watcher:
// ln a.txt b.txt, then a write through b.txt. inotify reports b.txt only
// (Create, Write); a.txt's record keeps the old content.
func TestScanLinkMadeAfterScanWatched(t *testing.T) {
	e := newScanEnv(t)
	e.write("a.txt", "old content")
	e.scan()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var mu sync.Mutex
	var calls [][]string
	go func() {
		done <- e.sc.Watch(ctx, WatchOptions{Debounce: 20 * time.Millisecond, FullEvery: -1}, func(ctx context.Context, paths []string) {
			mu.Lock()
			calls = append(calls, paths)
			mu.Unlock()
			if _, err := e.sc.Scan(ctx, paths...); err != nil {
				t.Errorf("Scan(%q) = %v", paths, err)
			}
		})
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond)
	e.link("a.txt", "b.txt")
	time.Sleep(200 * time.Millisecond) // its own scan, as when the user edits later
	if err := os.WriteFile(filepath.Join(e.root, "b.txt"), []byte("new content, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, want := chunkBlocks([]byte("new content, longer"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, ok, _ := e.st.Local("f", "b.txt"); ok && r.Content == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b.txt never recorded with its new content")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if got := e.rec("a.txt").Content; got != want {
		t.Errorf("a.txt (a hard link of b.txt, edited through b.txt) recorded as %s, want %s (watcher scans: %q)", got, want, calls)
	}
}

// TestScanLinkDeadNamesDoNotHideNewLink: a.txt and b.txt are hard links when
// the full scan runs (both noted). The user removes b.txt and renames
// a.txt to a2.txt (now one link: not noted). Later `ln a2.txt c.txt` and
// an edit through c.txt. The memory still holds a.txt and b.txt (dead
// names are forgotten only by scanLinked or the next full scan), so
// unknownNames counts 3 names >= 2 links and findLinkNames never runs:
// a2.txt keeps its old record.
func TestScanLinkDeadNamesDoNotHideNewLink(t *testing.T) {
	e := newScanEnv(t)
	e.write("a.txt", "old content")
	e.link("a.txt", "b.txt")
	e.scan()
	if err := os.Remove(filepath.Join(e.root, "b.txt")); err != nil {
		t.Fatal(err)
	}
	e.scan("b.txt")
	e.move("a.txt", "a2.txt")
	e.scan("a.txt", "a2.txt")
	// c.txt: a copy of a2.txt (same bytes, mode, mtime: cp -p), which a
	// dedup tool (hardlink, rdfind, jdupes -L) then replaces by a hard link
	// of a2.txt: c.txt's record only takes the new inode (refresh), no
	// name of the inode is scanned as changed, and the dead names stay.
	fi, err := os.Stat(filepath.Join(e.root, "a2.txt"))
	if err != nil {
		t.Fatal(err)
	}
	e.write("c.txt", "old content")
	if err := os.Chtimes(filepath.Join(e.root, "c.txt"), fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	e.scan("c.txt")
	if err := os.Remove(filepath.Join(e.root, "c.txt")); err != nil {
		t.Fatal(err)
	}
	e.link("a2.txt", "c.txt")
	e.scan("c.txt")
	if err := os.WriteFile(filepath.Join(e.root, "c.txt"), []byte("new content, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.scan("c.txt")
	_, want := chunkBlocks([]byte("new content, longer"))
	if got := e.rec("c.txt").Content; got != want {
		t.Fatalf("c.txt recorded as %s, want %s", got, want)
	}
	if got := e.rec("a2.txt").Content; got != want {
		t.Errorf("a2.txt (hard link of c.txt, edited through c.txt) recorded as %s, want %s (scan: %+v)", got, want, res)
	}
}

// TestScanLinkSearchOncePerLinkCount: a file with a hard link outside the
// folder (a download client seeding it, a hard-link backup) has fewer
// names in the folder than links, whatever the records say. The records
// are looked through for its other names once, not at every edit (each
// edit gives it a new change time), and again when its link count
// changes.
func TestScanLinkSearchOncePerLinkCount(t *testing.T) {
	e := newScanEnv(t)
	outside := t.TempDir()
	e.write("linked.log", "start\n")
	if err := os.Link(filepath.Join(e.root, "linked.log"), filepath.Join(outside, "linked.log")); err != nil {
		t.Fatal(err)
	}
	e.scan()
	edit := func(i int) {
		f, err := os.OpenFile(filepath.Join(e.root, "linked.log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "line %d\n", i)
		f.Close()
		e.scan("linked.log")
	}
	for i := range 5 {
		edit(i)
	}
	if n := e.sc.linkSearches; n != 1 {
		t.Errorf("5 edits of a file linked from outside the folder looked through the records %d times, want 1", n)
	}
	if err := os.Link(filepath.Join(e.root, "linked.log"), filepath.Join(outside, "second.log")); err != nil {
		t.Fatal(err)
	}
	edit(5)
	edit(6)
	if n := e.sc.linkSearches; n != 2 {
		t.Errorf("after a new link outside and 2 more edits: %d walks of the records, want 2", n)
	}
	if got, want := e.rec("linked.log").Size, int64(len("start\n")+7*len("line 0\n")); got != want {
		t.Errorf("linked.log recorded with %d bytes, want %d", got, want)
	}
}
