package peer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// findContent returns the folder paths on d (outside .syncd) whose content is
// want.
func findContent(d *testDev, want string) []string {
	var out []string
	walkFiles(d.root, func(p string, fi os.FileInfo) {
		rel, _ := filepath.Rel(d.root, p)
		if strings.HasPrefix(rel, ".syncd"+string(filepath.Separator)) {
			return
		}
		if b, err := os.ReadFile(p); err == nil && string(b) == want {
			out = append(out, filepath.ToSlash(rel))
		}
	})
	return out
}

// noLeak waits up to d for want to show up on dev, and fails if it does.
func noLeak(t *testing.T, dev *testDev, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if got := findContent(dev, want); len(got) > 0 {
			t.Fatalf("content ignored on the other device reached %s at %v", dev.name, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A file that bravo ignores (and never recorded) and that alpha creates
// under the same name: bravo's own file must not reach alpha.
func TestIgnoredLocalFileNotPulled(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	b.write(".syncdignore", []byte("/.syncdignore\n/secret.txt\n"))
	b.write("secret.txt", []byte("bravo's private secret"))
	b.write("shared.txt", []byte("shared"))
	a.write("secret.txt", []byte("alpha's file of that name"))
	a.start(b)
	b.start(a)
	a.rescan()
	b.rescan()
	waitFor(t, "shared.txt on alpha", converge, func() bool { return fileIs(a, "shared.txt", "shared") })
	noLeak(t, a, "bravo's private secret", 2*time.Second)
	if got := readFile(t, b, "secret.txt"); got != "bravo's private secret" {
		t.Errorf("bravo's ignored secret.txt now holds %q", got)
	}
}

// A file that was synced, then ignored on bravo and edited there (a local
// config): alpha's next edit must not carry bravo's local edit to alpha.
func TestNewlyIgnoredEditStaysLocal(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	b.write(".syncdignore", []byte("/.syncdignore\n"))
	a.start(b)
	b.start(a)
	b.rescan()
	a.write("app.conf", []byte("defaults"))
	a.rescan()
	waitFor(t, "app.conf on bravo", converge, func() bool { return fileIs(b, "app.conf", "defaults") })
	b.write(".syncdignore", []byte("/.syncdignore\napp.conf\n"))
	b.rescan()
	time.Sleep(300 * time.Millisecond)
	b.write("app.conf", []byte("bravo's local password=hunter2"))
	b.rescan()
	time.Sleep(300 * time.Millisecond)
	a.write("app.conf", []byte("alpha's new defaults"))
	a.rescan()
	noLeak(t, a, "bravo's local password=hunter2", 8*time.Second)
	if got := readFile(t, b, "app.conf"); got != "bravo's local password=hunter2" {
		t.Errorf("bravo's ignored app.conf now holds %q", got)
	}
}

// Both devices set up their own .syncdignore before they first sync (the
// usual order). Each keeps its own: the file is not synced, and bravo's
// ignored file must not reach alpha.
func TestIgnoreFilesStayLocal(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	b.write(".syncdignore", []byte("secret.txt\n"))
	b.write("secret.txt", []byte("bravo's private secret"))
	past := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(b.root, ".syncdignore"), past, past)
	a.write(".syncdignore", []byte("*.log\n"))
	b.write("shared.txt", []byte("shared"))
	a.start(b)
	b.start(a)
	a.rescan()
	b.rescan()
	waitFor(t, "shared.txt on alpha", converge, func() bool { return fileIs(a, "shared.txt", "shared") })
	noLeak(t, a, "bravo's private secret", 3*time.Second)
	if got := readFile(t, b, ".syncdignore"); got != "secret.txt\n" {
		t.Errorf("bravo's .syncdignore = %q, want its own", got)
	}
	if got := readFile(t, a, ".syncdignore"); got != "*.log\n" {
		t.Errorf("alpha's .syncdignore = %q, want its own", got)
	}
}

// A directory holding a file that bravo ignores is replaced by a file on
// alpha: bravo's ignored file must not reach alpha.
func TestDirReplacedIgnoredInsideNotSynced(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	b.write(".syncdignore", []byte("/.syncdignore\n/proj/secret.env\n"))
	a.start(b)
	b.start(a)
	b.rescan()
	a.write("proj/a.txt", []byte("a"))
	a.rescan()
	waitFor(t, "proj/a.txt on bravo", converge, func() bool { return fileIs(b, "proj/a.txt", "a") })
	b.write("proj/secret.env", []byte("bravo's private secret"))
	b.rescan()
	time.Sleep(300 * time.Millisecond)
	if err := os.RemoveAll(filepath.Join(a.root, "proj")); err != nil {
		t.Fatal(err)
	}
	a.write("proj", []byte("now a file"))
	a.rescan()
	waitFor(t, "alpha's file proj on bravo", converge, func() bool { return fileIs(b, "proj", "now a file") })
	noLeak(t, a, "bravo's private secret", 2*time.Second)
}
