package peer

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
)

// recordsSettled waits until every device holds, as each peer's remote
// record of rel, exactly the version that peer records locally: every
// record of rel has been exchanged.
func recordsSettled(t *testing.T, rel string, ds ...*testDev) {
	t.Helper()
	var pairs [][2]*testDev
	for _, d := range ds {
		for _, q := range ds {
			if q != d {
				pairs = append(pairs, [2]*testDev{d, q})
			}
		}
	}
	pairsSettled(t, rel, pairs...)
}

// pairsSettled waits until, for each pair {d, q}, d holds as q's remote
// record of rel exactly the version q records locally.
func pairsSettled(t *testing.T, rel string, pairs ...[2]*testDev) {
	t.Helper()
	waitFor(t, "every record of "+rel+" exchanged", converge, func() bool {
		for _, p := range pairs {
			d, q := p[0], p[1]
			ql, ok, err := q.store.Local("f", rel)
			if err != nil || !ok {
				return false
			}
			dr, ok, err := d.store.Remote("f", q.id, rel)
			if err != nil || !ok || dr.Version.Compare(ql.Version) != index.Equal {
				return false
			}
		}
		return true
	})
}

// TestThreeWayConflictVersionsConverge: alpha, bravo and charlie
// edit p.txt concurrently; charlie's edit (newest mtime) wins. alpha and
// bravo each keep their edit as a conflict copy and record charlie's
// version merged with their own: {A,C} and {B,C}. Those two records have
// the same content, mtime, modifier and mode, so beats ties both ways and
// winner keeps whichever candidate comes first: the local record, on every
// device. Nobody takes the other's merged version, and the versions of p
// never converge (alpha {A,C}, bravo {B,C}).
//
// The damage shows at the next change: charlie deletes p.txt, long after
// everything converged. Its tombstone extends the merged version charlie
// took (one of the two), which leaves the other device's live record
// concurrent with it: "a live entry beats a deletion", and the file comes
// back everywhere. A deletion made on a fully synced file is undone.
func TestThreeWayConflictVersionsConverge(t *testing.T) {
	n := newTestNet(t)
	a, b, c := n.addDevice("alpha"), n.addDevice("bravo"), n.addDevice("charlie")
	var hold atomic.Bool // charlie's pull passes wait (a slow device)
	a.start(b, c)
	b.start(a, c)
	if err := c.startWith(func(o *Options) {
		o.hooks.beforePull = func() {
			for hold.Load() {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}, a, b); err != nil {
		t.Fatal(err)
	}
	ds := []*testDev{a, b, c}
	syncedFile(t, a, b, "p.txt", []byte("base"))
	waitConverged(t, converge, a, b, c)

	cutAll(n, ds)
	now := time.Now()
	editAt(t, a, "p.txt", "edit on alpha", now.Add(-3*time.Hour))
	editAt(t, b, "p.txt", "edit on bravo", now.Add(-2*time.Hour))
	editAt(t, c, "p.txt", "edit on charlie, newest", now.Add(-1*time.Hour))
	rc0, _, _ := c.store.Local("f", "p.txt")

	// charlie is slow to pull: alpha and bravo each take its edit first
	// (any order of events a real network allows).
	hold.Store(true)
	n.setLink(a, c, true)
	n.setLink(b, c, true)
	for _, d := range []*testDev{a, b} {
		waitFor(t, d.name+" takes charlie's edit", converge, func() bool {
			r, ok, _ := d.store.Local("f", "p.txt")
			return ok && r.Content == rc0.Content && r.Version.Compare(rc0.Version) == index.Greater
		})
	}
	n.setLink(a, b, true)
	hold.Store(false)
	got := waitConverged(t, converge, a, b, c)
	if len(conflictCopies(got)) != 2 {
		t.Fatalf("conflict copies = %v, want alpha's and bravo's edits", conflictCopies(got))
	}
	recordsSettled(t, "p.txt", a, b, c)
	time.Sleep(time.Second) // any pass that would still take a record
	recordsSettled(t, "p.txt", a, b, c)
	var vs []string
	for _, d := range ds {
		r, _, _ := d.store.Local("f", "p.txt")
		vs = append(vs, d.name+" "+r.Version.String())
	}
	ra, _, _ := a.store.Local("f", "p.txt")
	rb, _, _ := b.store.Local("f", "p.txt")
	rc, _, _ := c.store.Local("f", "p.txt")
	if ra.Version.Compare(rb.Version) != index.Equal || ra.Version.Compare(rc.Version) != index.Equal {
		t.Errorf("after convergence the versions of p.txt differ: %v", vs)
	}

	// charlie deletes the synced file.
	if err := os.Remove(filepath.Join(c.root, "p.txt")); err != nil {
		t.Fatal(err)
	}
	c.rescan()
	time.Sleep(2 * time.Second)
	got = waitConverged(t, converge, a, b, c)
	if _, ok := got["p.txt"]; ok {
		t.Errorf("p.txt, deleted on charlie after every device had converged, came back: %s (versions before the delete: %v)", got["p.txt"], vs)
	}
}
