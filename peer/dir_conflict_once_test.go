package peer

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
)

// allTrees gathers the digests of every regular file of the devices,
// .syncd (trash) included.
func allTrees(devs ...*testDev) map[string]bool {
	have := map[string]bool{}
	for _, d := range devs {
		walkFiles(d.root, func(q string, _ os.FileInfo) {
			if b, err := os.ReadFile(q); err == nil {
				have[digest(b)] = true
			}
		})
	}
	return have
}

// settledTree waits until the devices agree and stay agreed across
// rescans; it fails the test when they do not within converge.
func settledTree(t *testing.T, devs ...*testDev) map[string]string {
	t.Helper()
	deadline := time.Now().Add(converge)
	var last map[string]string
	var diff string
	lastScan := time.Time{}
	for {
		if time.Since(lastScan) > 1500*time.Millisecond {
			for _, d := range devs {
				d.rescan()
			}
			lastScan = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
		got, why, ok := converged(t, devs...)
		if ok && last != nil && equalTrees(got, last) {
			return got
		}
		if ok {
			if last != nil {
				diff = "changing: " + treeDiff("before", last, "after", got)
			}
			last = got
		} else {
			last, diff = nil, why
		}
		if time.Now().After(deadline) {
			t.Fatalf("devices did not converge within %v:\n%s", converge, diff)
		}
	}
}

func contentsKept(t *testing.T, devs []*testDev, contents ...string) {
	t.Helper()
	have := allTrees(devs...)
	for _, c := range contents {
		if !have[digest([]byte(c))] {
			t.Errorf("content %q lost: on no device (file, conflict copy or trash)", c)
		}
	}
}

func dumpTree(t *testing.T, tr map[string]string) {
	var ks []string
	for k, v := range tr {
		ks = append(ks, k+" "+v)
	}
	sort.Strings(ks)
	t.Logf("tree:\n  %s", strings.Join(ks, "\n  "))
}

// upAllBoth restores every link, in both directions (link cuts both).
func upAllBoth(n *testNet, ds []*testDev) {
	for i := range ds {
		for j := i + 1; j < len(ds); j++ {
			link(n, ds[i], ds[j], true)
		}
	}
}

// TestDirConflictCopyOncePerDevice: alpha replaces directory d by a file
// while bravo adds d/new.txt, which charlie takes from bravo. Bravo and
// charlie each take alpha's file before hearing of the other's conflict
// copy (bravo's folder was briefly away, as with a disk mounted late).
// Each kept the directory as a conflict copy under its own name (its
// local mtime and the device itself), so the same directory ended up
// twice on every device; the copy is now named after the directory's
// record, which both share.
func TestDirConflictCopyOncePerDevice(t *testing.T) {
	n, ds := meshNet(t, "alpha", "bravo", "charlie")
	a, b, c := ds[0], ds[1], ds[2]
	a.write("d/old.txt", []byte("old"))
	// The same bytes as alpha's file d below: bravo can pull d from
	// its own disk while no peer is connected.
	a.write("same.txt", []byte("d is a file now"))
	a.rescan()
	waitConverged(t, converge, ds...)
	cutAll(n, ds)
	link(n, b, c, true)
	b.write("d/new.txt", []byte("new on b"))
	b.rescan()
	waitFor(t, "charlie takes new", converge, func() bool { return readFile(t, c, "d/new.txt") == "new on b" })
	time.Sleep(300 * time.Millisecond)
	link(n, b, c, false)
	os.RemoveAll(filepath.Join(a.root, "d"))
	a.write("d", []byte("d is a file now"))
	a.rescan()
	waitFor(t, "alpha records d as a file", converge, func() bool {
		r, ok, _ := a.store.Local("f", "d")
		return ok && !r.Deleted && r.Kind == index.File && r.Size > 0
	})
	// bravo's folder away: it hears of alpha's file, pulls nothing.
	marker := filepath.Join(b.root, ".syncd")
	if err := os.Rename(marker, marker+".away"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	link(n, a, b, true)
	waitFor(t, "bravo to hold alpha's record of d", converge, func() bool {
		r, ok, _ := b.store.Remote("f", a.id, "d")
		return ok && !r.Deleted && r.Size > 0
	})
	link(n, a, b, false)
	// charlie takes alpha's file and keeps d as a conflict copy.
	link(n, a, c, true)
	waitFor(t, "charlie to take alpha's file", converge, func() bool { return readFile(t, c, "d") == "d is a file now" })
	time.Sleep(300 * time.Millisecond)
	link(n, a, c, false)
	// bravo's folder is back.
	if err := os.Rename(marker+".away", marker); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			dumpTree(t, tree(t, b.root))
			dumpTree(t, tree(t, b.root+"/.syncd"))
		}
	}()
	waitFor(t, "bravo to take alpha's file", 2*converge, func() bool { return readFile(t, b, "d") == "d is a file now" })
	upAllBoth(n, ds)
	got := settledTree(t, ds...)
	dumpTree(t, got)
	contentsKept(t, ds, "old", "new on b", "d is a file now")
	var copies []string
	for p, v := range got {
		if isConflictCopy(p) && strings.HasPrefix(v, "dir:") {
			copies = append(copies, p)
		}
	}
	if len(copies) != 1 {
		t.Errorf("%d conflict copies of the directory d on every device, want 1: %v", len(copies), copies)
	}
}
