package peer

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// meshNet starts n devices, all sharing folder "f" with each other.
func meshNet(t *testing.T, names ...string) (*testNet, []*testDev) {
	n := newTestNet(t)
	var ds []*testDev
	for _, nm := range names {
		ds = append(ds, n.addDevice(nm))
	}
	for _, d := range ds {
		var peers []*testDev
		for _, o := range ds {
			if o != d {
				peers = append(peers, o)
			}
		}
		d.start(peers...)
	}
	return n, ds
}

func cutAll(n *testNet, ds []*testDev) {
	for i := range ds {
		for j := i + 1; j < len(ds); j++ {
			n.setLink(ds[i], ds[j], false)
		}
	}
	time.Sleep(100 * time.Millisecond)
}

// link sets the link between x and y in both directions (setLink keys
// the cut by the ordered pair).
func link(n *testNet, x, y *testDev, up bool) {
	n.setLink(x, y, up)
	n.setLink(y, x, up)
}

func upAll(n *testNet, ds []*testDev) {
	for i := range ds {
		for j := i + 1; j < len(ds); j++ {
			n.setLink(ds[i], ds[j], true)
		}
	}
}

// editAt writes data at rel with mtime mt, rescans and waits for the record.
func editAt(t *testing.T, d *testDev, rel, data string, mt time.Time) {
	t.Helper()
	d.write(rel, []byte(data))
	if err := os.Chtimes(filepath.Join(d.root, rel), mt, mt); err != nil {
		t.Fatal(err)
	}
	d.rescan()
	waitFor(t, d.name+" scans "+rel, converge, func() bool {
		r, ok, _ := d.store.Local("f", rel)
		return ok && !r.Deleted && r.ModTime == mt.UnixNano() && r.Size == int64(len(data))
	})
}

// TestMergedVersionOneConflictCopy: alpha records bravo's winning edit
// merged with its own losing one, so alpha's counter is the highest of
// that version; the record still names bravo as who made the content
// (Record.Modifier). When that content later loses to delta's newer edit,
// alpha (holding the merged version) and charlie (holding bravo's own)
// give their conflict copies of it the same name: one copy, not two.
func TestMergedVersionOneConflictCopy(t *testing.T) {
	n, ds := meshNet(t, "alpha", "bravo", "charlie", "delta")
	a, b, c, d := ds[0], ds[1], ds[2], ds[3]
	syncedFile(t, a, b, "p.txt", []byte("base"))
	waitConverged(t, converge, a, b, c, d)

	cutAll(n, ds)
	now := time.Now()
	// alpha edits three times (its counter runs ahead), oldest mtime.
	editAt(t, a, "p.txt", "A1", now.Add(-3*time.Hour))
	editAt(t, a, "p.txt", "A22", now.Add(-3*time.Hour+time.Second))
	editAt(t, a, "p.txt", "A333", now.Add(-3*time.Hour+2*time.Second))
	editAt(t, b, "p.txt", "B edit", now.Add(-2*time.Hour))
	editAt(t, d, "p.txt", "D edit, newest", now.Add(-1*time.Hour))

	// charlie takes bravo's edit as bravo recorded it.
	link(n, b, c, true)
	waitFor(t, "charlie takes B", converge, func() bool { return readFile(t, c, "p.txt") == "B edit" })
	link(n, b, c, false)
	// alpha takes bravo's edit (it beats alpha's) and records it merged.
	link(n, a, b, true)
	waitFor(t, "alpha takes B", converge, func() bool { return readFile(t, a, "p.txt") == "B edit" })
	time.Sleep(300 * time.Millisecond)
	link(n, a, b, false)
	ra, _, _ := a.store.Local("f", "p.txt")
	rc, _, _ := c.store.Local("f", "p.txt")
	t.Logf("alpha records B as %v, charlie as %v", ra.Version, rc.Version)

	// delta's newer edit beats B on charlie, then on alpha.
	link(n, d, c, true)
	waitFor(t, "charlie takes D", converge, func() bool { return readFile(t, c, "p.txt") == "D edit, newest" })
	time.Sleep(300 * time.Millisecond)
	link(n, d, c, false)
	link(n, d, a, true)
	waitFor(t, "alpha takes D", converge, func() bool { return readFile(t, a, "p.txt") == "D edit, newest" })
	time.Sleep(300 * time.Millisecond)
	upAll(n, ds)
	got := waitConverged(t, converge, a, b, c, d)
	t.Logf("tree %v", got)
	byContent := map[string][]string{}
	for _, p := range conflictCopies(got) {
		s := readFile(t, a, p)
		byContent[s] = append(byContent[s], p)
	}
	for s, ps := range byContent {
		sort.Strings(ps)
		if len(ps) > 1 {
			t.Errorf("%d conflict copies of %q: %v", len(ps), s, ps)
		}
	}
	if len(byContent["B edit"]) == 0 {
		t.Errorf("no conflict copy of bravo's edit")
	}
}

// loseIndex stops d, removes its index, runs change on its folder, and
// starts it again with its links to peers cut until its first scan has
// recorded rel.
func loseIndex(t *testing.T, n *testNet, d *testDev, peers []*testDev, rel string, change func()) {
	t.Helper()
	d.stop()
	if err := os.RemoveAll(filepath.Join(d.home, "index")); err != nil {
		t.Fatal(err)
	}
	change()
	for _, p := range peers {
		link(n, d, p, false)
	}
	d.start()
	waitFor(t, d.name+" records "+rel+" again", converge, func() bool {
		_, ok, err := d.store.Local("f", rel)
		return err == nil && ok
	})
	for _, p := range peers {
		link(n, d, p, true)
	}
}

// TestLostIndexEditKept: alpha edits bravo's file, both hold alpha's
// version; bravo's index is lost and bravo edits the file before it hears
// from alpha. Counters start at the clock, so the edit's version is above
// every counter bravo gave before: concurrent with alpha's, not dominated
// by it, and the edit stays in sight (the file or a conflict copy).
func TestLostIndexEditKept(t *testing.T) {
	n, a, b := pair2(t)
	syncedFile(t, b, a, "doc.txt", []byte("v1"))
	syncedFile(t, a, b, "doc.txt", []byte("v2 by alpha"))
	const edit = "v3, edited on bravo after its index was lost"
	loseIndex(t, n, b, []*testDev{a}, "doc.txt", func() {
		b.write("doc.txt", []byte(edit))
	})
	waitConverged(t, converge, a, b)
	time.Sleep(time.Second)
	got := waitConverged(t, converge, a, b)
	if !holds(a.root, edit, true) {
		t.Errorf("bravo's edit is in no file on either device: %v (doc.txt = %q)", got, readFile(t, a, "doc.txt"))
	}
}

// TestLostIndexNewFileAtDeletedPathKept: bravo made gone.txt, alpha
// deleted it; bravo's index is lost and bravo writes a new gone.txt before
// it hears from alpha. Its version must not fall below alpha's deletion
// (as {b:1} would): the new file stays.
func TestLostIndexNewFileAtDeletedPathKept(t *testing.T) {
	n, a, b := pair2(t)
	syncedFile(t, b, a, "gone.txt", []byte("old"))
	os.Remove(filepath.Join(a.root, "gone.txt"))
	a.rescan()
	waitConverged(t, converge, a, b)
	const fresh = "a new file written after the index was lost"
	loseIndex(t, n, b, []*testDev{a}, "gone.txt", func() {
		b.write("gone.txt", []byte(fresh))
	})
	time.Sleep(2 * time.Second)
	got := waitConverged(t, converge, a, b)
	if !holds(a.root, fresh, true) {
		t.Errorf("bravo's new file is in no file on either device: %v", got)
	}
}

// TestReadOnlyDirModeKept: alpha has a read-only directory (0555). Bravo
// makes it 0755 (the puller adds owner rwx, to write inside) and records
// what it made, so its next scan finds no change of its own to send back:
// alpha's directory stays read-only.
func TestReadOnlyDirModeKept(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "first.txt", []byte("x"))
	a.write("ro/file.txt", []byte("inside"))
	if err := os.Chmod(filepath.Join(a.root, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(filepath.Join(a.root, "ro"), 0o755)
		os.Chmod(filepath.Join(b.root, "ro"), 0o755)
	})
	a.rescan()
	waitFor(t, "bravo pulls ro/file.txt", converge, func() bool { return fileIs(b, "ro/file.txt", "inside") })
	time.Sleep(300 * time.Millisecond)
	b.rescan()
	time.Sleep(time.Second)
	a.rescan()
	time.Sleep(time.Second)
	fi, err := os.Stat(filepath.Join(a.root, "ro"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o555 {
		r, _, _ := b.store.Local("f", "ro")
		t.Errorf("alpha's ro has mode %o, want 0555 (nobody changed it); bravo's record: mode %o version %v", fi.Mode().Perm(), r.Mode, r.Version)
	}
}

// TestLostIndexChmodConverges: bravo's index is lost and bravo chmods its
// own file before it hears from alpha. The two records have the same
// content and different modes: they are not in sync, and the devices
// converge.
func TestLostIndexChmodConverges(t *testing.T) {
	n, a, b := pair2(t)
	syncedFile(t, b, a, "run.sh", []byte("#!/bin/sh\n"))
	loseIndex(t, n, b, []*testDev{a}, "run.sh", func() {
		if err := os.Chmod(filepath.Join(b.root, "run.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	ra, _, _ := a.store.Local("f", "run.sh")
	rb, _, _ := b.store.Local("f", "run.sh")
	t.Logf("alpha %v mode %o, bravo %v mode %o", ra.Version, ra.Mode, rb.Version, rb.Mode)
	time.Sleep(2 * time.Second)
	a.rescan()
	b.rescan()
	waitConverged(t, 5*time.Second, a, b)
}
