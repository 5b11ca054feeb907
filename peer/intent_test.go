package peer

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// conflictsIn lists the conflict copies under root (outside .syncd).
func conflictsIn(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if de.IsDir() && de.Name() == ".syncd" {
			return filepath.SkipDir
		}
		if isConflictCopy(p) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// crashAfterRename: bravo is killed in a commit after alpha's v2 of
// doc.txt was renamed into place but before its record was written (the
// window the commit's directory sync or syncfs spans). While bravo is
// down, alpha edits doc.txt again (v3). When bravo comes back, v2
// (alpha's own superseded version) must not come out as a conflict copy:
// nobody edited doc.txt concurrently (index.PutIntents). Without the
// intents, bravo's scan gave v2 a new version of its own, concurrent with
// alpha's v3; with v3's mtime older than v2's, v2 won on both devices.
func crashAfterRename(t *testing.T, v3Older bool) {
	var crash oneShot
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.afterFinalCheck = func(p string) {
			if p == "doc.txt" && crash.armed.Load() {
				crash.offer(func() {})
				runtime.Goexit() // kill -9 of the folder goroutine, just before the rename
			}
		}
	})
	syncedFile(t, a, b, "doc.txt", []byte("v1 by alpha"))
	crash.arm()
	time.Sleep(20 * time.Millisecond)
	a.write("doc.txt", []byte("v2 by alpha, a bit longer"))
	a.rescan()
	waitFor(t, "bravo to die placing doc.txt", converge, crash.fired.Load)
	b.stop()
	// The rename the commit was about to make (durable before the record
	// is written: a kill -9 during the commit's syncfs leaves exactly this).
	var tmp string
	for _, p := range tempsIn(t, b.root) {
		if strings.Contains(filepath.Base(p), "doc.txt") {
			tmp = p
		}
	}
	if tmp == "" {
		t.Fatalf("no temp file of doc.txt on bravo: %q", tempsIn(t, b.root))
	}
	if err := os.Rename(tmp, filepath.Join(b.root, "doc.txt")); err != nil {
		t.Fatal(err)
	}
	// alpha edits again while bravo is down.
	time.Sleep(20 * time.Millisecond)
	a.write("doc.txt", []byte("v3 by alpha"))
	if v3Older {
		// alpha's v3 keeps an older mtime (cp -p, an unzip, a restore).
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(filepath.Join(a.root, "doc.txt"), old, old); err != nil {
			t.Fatal(err)
		}
	}
	a.rescan()
	waitFor(t, "alpha to record v3", converge, func() bool {
		r, ok, _ := a.store.Local("f", "doc.txt")
		return ok && r.Size == int64(len("v3 by alpha"))
	})
	b.start(a)
	waitConverged(t, converge, a, b)
	time.Sleep(time.Second)
	waitConverged(t, converge, a, b)
	if c := append(conflictsIn(t, a.root), conflictsIn(t, b.root)...); len(c) > 0 {
		t.Errorf("spurious conflict copies of alpha's own superseded v2: %q", c)
	}
	if !fileIs(a, "doc.txt", "v3 by alpha") || !fileIs(b, "doc.txt", "v3 by alpha") {
		ga, _ := os.ReadFile(filepath.Join(a.root, "doc.txt"))
		t.Errorf("doc.txt is not alpha's latest v3 everywhere: alpha holds %q", ga)
	}
}

func TestCrashAfterRenameBeforeRecord(t *testing.T) { crashAfterRename(t, false) }

// TestCrashAfterRenameBeforeRecordOlderMtime: as above, with alpha's v3
// carrying an older mtime (cp -p, an unzip, a restore).
func TestCrashAfterRenameBeforeRecordOlderMtime(t *testing.T) { crashAfterRename(t, true) }
