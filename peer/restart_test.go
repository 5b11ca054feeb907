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

// TestIndexBackupRestored: bravo's index is restored from an older copy
// (a backup, a snapshot of ~/.local/share/syncd) while the folder stays.
// The restored index has the same epoch and a lower sequence counter, and
// alpha asks only for records above the last sequence it got before the
// restore: bravo's new records, under sequences alpha believes it has
// seen, never reached it (checkServed now gives the folder a new epoch).
func TestIndexBackupRestored(t *testing.T) {
	backup := filepath.Join(t.TempDir(), "index-backup")
	_, a, b := startTwo(t, nil)
	syncedFile(t, b, a, "base.txt", []byte("base"))
	b.stop() // a clean stop, then the backup
	snapshotDir(t, filepath.Join(b.home, "index"), backup)
	b.start(a)
	// Work after the backup, all of it seen by alpha: a draft edited a few
	// times, then deleted.
	for i := 0; i < 5; i++ {
		syncedFile(t, b, a, "draft.txt", []byte(strings.Repeat("draft ", i+1)))
	}
	if err := os.Remove(filepath.Join(b.root, "draft.txt")); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	waitConverged(t, converge, a, b)
	_, seenBefore, _ := a.store.Progress("f", b.id)
	b.stop()
	// The rollback of bravo's index.
	if err := os.RemoveAll(filepath.Join(b.home, "index")); err != nil {
		t.Fatal(err)
	}
	snapshotDir(t, backup, filepath.Join(b.home, "index"))
	b.start(a)
	b.write("new.txt", []byte("written after the restore"))
	b.rescan()
	waitFor(t, "bravo to record new.txt", converge, func() bool {
		_, ok, err := b.store.Local("f", "new.txt")
		return err == nil && ok
	})
	seqB, _ := b.store.LocalSeq("f")
	t.Logf("alpha had seen bravo up to seq %d; bravo's restored index is at seq %d", seenBefore, seqB)
	if _, diff, ok := convergedWithin(t, 10*time.Second, a, b); !ok {
		t.Errorf("no convergence after the index restore:\n%s", diff)
	}
	if !fileIs(a, "new.txt", "written after the restore") {
		t.Error("new.txt, written on bravo after its index was restored, never reached alpha")
	}
}
