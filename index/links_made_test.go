package index

import (
	"context"
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
