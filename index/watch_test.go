package index

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type scanCalls struct {
	mu    sync.Mutex
	calls [][]string // nil entry = full rescan
	ch    chan struct{}
}

func (c *scanCalls) scan(_ context.Context, paths []string) {
	c.mu.Lock()
	c.calls = append(c.calls, paths)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

// waitFor waits until some call satisfies ok.
func (c *scanCalls) waitFor(t *testing.T, what string, ok func(paths []string) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for _, p := range c.calls {
			if ok(p) {
				c.calls = nil
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("watcher: no scan call for %s; calls: %q", what, c.calls)
		}
	}
}

func (c *scanCalls) reset() []([]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.calls
	c.calls = nil
	return old
}

func startWatch(t *testing.T, o WatchOptions) (*scanEnv, *scanCalls) {
	e := newScanEnv(t)
	if err := os.MkdirAll(filepath.Join(e.root, "existing/deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &scanCalls{ch: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.sc.Watch(ctx, o, c.scan) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Watch did not stop")
		}
	})
	time.Sleep(100 * time.Millisecond) // let it add its watches
	return e, c
}

func TestWatchEvents(t *testing.T) {
	e, c := startWatch(t, WatchOptions{Debounce: 20 * time.Millisecond})
	has := func(p string) func([]string) bool {
		return func(paths []string) bool { return slices.Contains(paths, p) }
	}
	e.write("new.txt", "x")
	c.waitFor(t, "new.txt", has("new.txt"))
	e.write("existing/deep/f", "x")
	c.waitFor(t, "existing/deep/f", has("existing/deep/f"))
	// A new directory is watched too.
	e.write("fresh/g", "x")
	c.waitFor(t, "fresh", has("fresh"))
	time.Sleep(50 * time.Millisecond)
	e.write("fresh/h", "x")
	c.waitFor(t, "fresh/h", has("fresh/h"))
	// Names that begin with ".." are inside the folder.
	for _, p := range []string{"..data", "...", "..hidden/notes.txt"} {
		e.write(p, "x")
		c.waitFor(t, p, has(strings.SplitN(p, "/", 2)[0]))
	}
	e.write("..hidden/more.txt", "x")
	c.waitFor(t, "..hidden/more.txt (a new directory whose name begins with ..)", has("..hidden/more.txt"))
	// Removal.
	if err := os.Remove(filepath.Join(e.root, "new.txt")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "removed new.txt", has("new.txt"))
	// Own temp files and .syncd/ never trigger.
	c.reset()
	e.write(TempPrefix+"abc", "x")
	e.write("existing/"+TempPrefix+"abc", "x")
	e.write(".syncd/trash/x", "x")
	time.Sleep(300 * time.Millisecond)
	if calls := c.reset(); len(calls) != 0 {
		t.Errorf("temp files and .syncd/ triggered scans: %q", calls)
	}
	// Changing .syncdignore asks for a full rescan.
	e.write(IgnoreFile, "*.log\n")
	c.waitFor(t, "full rescan after .syncdignore", func(p []string) bool { return p == nil })
}

func TestWatchPeriodic(t *testing.T) {
	_, c := startWatch(t, WatchOptions{Debounce: 10 * time.Millisecond, FullEvery: 30 * time.Millisecond})
	c.waitFor(t, "periodic full rescan", func(p []string) bool { return p == nil })
}

// TestWatchScans wires the watcher to the scanner like the daemon does.
func TestWatchScans(t *testing.T) {
	e := newScanEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	scanned := make(chan struct{}, 16)
	go func() {
		done <- e.sc.Watch(ctx, WatchOptions{Debounce: 20 * time.Millisecond}, func(ctx context.Context, paths []string) {
			if _, err := e.sc.Scan(ctx, paths...); err != nil {
				t.Errorf("Scan(%q) = %v", paths, err)
			}
			scanned <- struct{}{}
		})
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond)
	e.write("w/file", "content")
	deadline := time.After(10 * time.Second)
	for {
		if r, ok, _ := e.st.Local("f", "w/file"); ok && r.Size == 7 {
			return
		}
		select {
		case <-scanned:
		case <-deadline:
			t.Fatal("file written under a watched folder never got a record")
		}
	}
}

// TestWatchDir: WatchDir adds a directory's watch at once while Watch runs,
// and reports false when nothing watches.
func TestWatchDir(t *testing.T) {
	e0 := newScanEnv(t)
	if e0.sc.WatchDir("") {
		t.Error("WatchDir before Watch = true")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e0.sc.Watch(ctx, WatchOptions{}, func(context.Context, []string) {}) }()
	for deadline := time.Now().Add(10 * time.Second); !e0.sc.WatchDir(""); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("WatchDir stays false while Watch runs")
		}
	}
	cancel()
	<-done
	if e0.sc.WatchDir("") {
		t.Error("WatchDir after Watch returned = true")
	}
	e, c := startWatch(t, WatchOptions{Debounce: 20 * time.Millisecond})
	// Under .syncd/ the watcher itself adds no watch: only WatchDir can.
	probe := filepath.Join(".syncd", "probe")
	if err := os.MkdirAll(filepath.Join(e.root, probe), 0o755); err != nil {
		t.Fatal(err)
	}
	if !e.sc.WatchDir(filepath.ToSlash(probe)) {
		t.Fatal("WatchDir while watching = false")
	}
	fw := e.sc.watching.Load()
	if fw == nil || !slices.Contains(fw.WatchList(), filepath.Join(e.root, probe)) {
		t.Fatalf("%s is not in the watch list after WatchDir", probe)
	}
	if e.sc.WatchDir("no/such/dir") {
		t.Error("WatchDir of a missing directory = true")
	}
	// A directory made and watched at once: a file put in it is reported.
	if err := os.Mkdir(filepath.Join(e.root, "made"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !e.sc.WatchDir("made") {
		t.Fatal("WatchDir(made) = false")
	}
	e.write("made/f", "x")
	c.waitFor(t, "made/f", func(paths []string) bool { return slices.Contains(paths, "made/f") })
}
