package peer

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mountOver mounts a tmpfs of size bytes over d's folder root (before d
// starts); the cleanup stops d, then unmounts. It needs root: without it
// the test is skipped, or fails under CI=true (CI runs as root).
func mountOver(t *testing.T, d *testDev, size int64) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("needs root to mount a tmpfs")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "syncd-test", d.root).CombinedOutput(); err != nil {
		skip("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		d.stop()
		if out, err := exec.Command("umount", d.root).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", d.root, err, out)
			exec.Command("umount", "-l", d.root).Run()
		}
	})
}

func remountOpts(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, opts, err, out)
	}
}

// TestReadOnlyReceiver: the receiving folder's file system turns
// read-only while files arrive. The folder is in error with a message
// that says so, in a line or so of log, not "syncing" with no word and a
// line per directory; writable again, it converges by itself.
func TestReadOnlyReceiver(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	mountOver(t, b, 8<<20)
	a.start(b)
	b.start(a)
	syncedFile(t, a, b, "first.txt", []byte("first"))

	remountOpts(t, b.root, "ro")
	const files = 40
	for i := range files {
		a.write(fmt.Sprintf("d%d/new%02d.txt", i%4, i), []byte(fmt.Sprintf("content %d", i)))
	}
	a.write("first.txt", []byte("first, changed"))
	a.rescan()
	waitFor(t, "bravo's folder in error", 8*time.Second, func() bool {
		st, lastErr := folderState(b)
		return st == StateError && strings.Contains(lastErr, "read-only file system")
	})
	time.Sleep(2 * time.Second) // a retry or two
	if st, lastErr := folderState(b); st != StateError || !strings.Contains(lastErr, "read-only file system") {
		t.Errorf("bravo's folder on a read-only file system: state %q, error %q; want error saying so", st, lastErr)
	}
	if n := countLines(b, "pull failed"); n > 2 {
		t.Errorf("a read-only file system logged %d failure lines for %d files; want one", n, files+1)
	}

	remountOpts(t, b.root, "rw")
	waitConverged(t, 90*time.Second, a, b)
	waitFor(t, "bravo idle", 10*time.Second, func() bool {
		st, lastErr := folderState(b)
		return st == StateIdle && lastErr == ""
	})
}
