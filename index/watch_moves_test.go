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

// TestRenamedDirSubdirEvents: after a directory with a subdirectory
// is renamed inside the folder, a file written in the subdirectory must be
// reported under its new path.
func TestRenamedDirSubdirEvents(t *testing.T) {
	e, c := startWatch(t, WatchOptions{Debounce: 20 * time.Millisecond})
	if err := os.Rename(filepath.Join(e.root, "existing"), filepath.Join(e.root, "moved")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "moved", func(p []string) bool { return slices.Contains(p, "moved") })
	time.Sleep(100 * time.Millisecond)
	c.reset()
	e.write("moved/deep/f", "x")
	time.Sleep(300 * time.Millisecond)
	calls := c.reset()
	for _, p := range calls {
		if slices.Contains(p, "moved/deep/f") {
			return
		}
	}
	t.Fatalf("write to moved/deep/f was reported as %q, not as moved/deep/f", calls)
}

// TestNewDirFilesHashedOnce: a file copied into a new directory is
// reported both as the directory (walked) and as itself; one scan must
// hash it once, not twice.
func TestNewDirFilesHashedOnce(t *testing.T) {
	e := newScanEnv(t)
	e.scan()
	big := strings.Repeat("x", 20<<20)
	e.write("photos/2024/a.raw", big)
	e.write("photos/2024/b.raw", big[:10<<20])
	// What the watcher reports for mkdir -p photos/2024 && cp a.raw b.raw photos/2024/.
	res := e.scan("photos", "photos/2024", "photos/2024/a.raw", "photos/2024/b.raw")
	if want := int64(30 << 20); res.Bytes != want {
		t.Fatalf("one scan hashed %d MiB for %d MiB of new files (Changed=%d, want 4)", res.Bytes>>20, want>>20, res.Changed)
	}
}

// TestCopyTreeHashedOnceWatched: the same, end to end through the
// watcher: copying a new directory with files into the folder hashes them
// once.
func TestCopyTreeHashedOnceWatched(t *testing.T) {
	e := newScanEnv(t)
	e.scan()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var mu sync.Mutex
	var hashed int64
	var calls [][]string
	go func() {
		done <- e.sc.Watch(ctx, WatchOptions{Debounce: 300 * time.Millisecond}, func(ctx context.Context, paths []string) {
			res, err := e.sc.Scan(ctx, paths...)
			if err != nil {
				t.Errorf("Scan = %v", err)
			}
			mu.Lock()
			hashed += res.Bytes
			calls = append(calls, paths)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond)
	data := []byte(strings.Repeat("y", 16<<20))
	for _, name := range []string{"album/one.mov", "album/two.mov"} {
		e.write(name, string(data))
	}
	// Wait for the hashing (slow under the race detector on a loaded
	// machine), then one more debounce for a second, double scan.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := hashed
		mu.Unlock()
		if n >= 32<<20 {
			break
		}
	}
	time.Sleep(600 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if hashed != 32<<20 {
		t.Fatalf("copying 32 MiB of new files hashed %d MiB; scans: %q", hashed>>20, calls)
	}
}
