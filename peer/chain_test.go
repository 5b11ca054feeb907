package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
)

// startChain starts alpha - bravo - charlie, alpha and charlie
// talking only through bravo; watch turns the watchers on.
func startChain(t *testing.T, watch bool) (*testNet, *testDev, *testDev, *testDev) {
	n := newTestNet(t)
	a, b, c := n.addDevice("alpha"), n.addDevice("bravo"), n.addDevice("charlie")
	mod := func(o *Options) { o.Watch = watch }
	for _, x := range []struct {
		d     *testDev
		peers []*testDev
	}{{a, []*testDev{b}}, {b, []*testDev{a, c}}, {c, []*testDev{b}}} {
		if err := x.d.startWith(mod, x.peers...); err != nil {
			t.Fatal(err)
		}
	}
	return n, a, b, c
}

// TestChainDirTombstoneLiveChild: alpha deletes directory d while
// charlie, cut off from bravo, adds d/new.txt. Once linked, d and
// d/new.txt are everywhere, and every device records d live (alpha and
// bravo made d again as new.txt's parent: their tombstone of d must not
// stay). Then charlie deletes d whole: it must stay deleted on every
// device. (With the tombstone left in alpha's and bravo's indexes,
// charlie's deletion extended its old live version of d, concurrent with
// that tombstone, and d came back everywhere.)
func TestChainDirTombstoneLiveChild(t *testing.T) {
	for _, watch := range []bool{false, true} {
		name := "rescan"
		if watch {
			name = "watch"
		}
		t.Run(name, func(t *testing.T) {
			n, a, b, c := startChain(t, watch)
			a.write("d/old.txt", []byte("old"))
			a.rescan()
			waitConverged(t, converge, a, b, c)

			n.setLink(b, c, false)
			time.Sleep(100 * time.Millisecond)
			if err := os.RemoveAll(filepath.Join(a.root, "d")); err != nil {
				t.Fatal(err)
			}
			a.rescan()
			waitConverged(t, converge, a, b)
			c.write("d/new.txt", []byte("new on charlie"))
			c.rescan()
			time.Sleep(300 * time.Millisecond)
			n.setLink(b, c, true)
			got := waitConverged(t, converge, a, b, c)
			if _, ok := got["d/new.txt"]; !ok {
				t.Fatalf("d/new.txt missing after the link came back: %v", got)
			}
			// No rescan: what a pull makes is the pull's to record. The
			// devices that had deleted d give it new versions as they
			// make it again; once those have met, d is live everywhere,
			// in one version.
			waitFor(t, "every device to record d live, in one version", converge, func() bool {
				var v index.Vector
				for i, d := range []*testDev{a, b, c} {
					r, ok, err := d.store.Local("f", "d")
					if err != nil || !ok || r.Deleted || i > 0 && r.Version.Compare(v) != index.Equal {
						return false
					}
					v = r.Version
				}
				return true
			})
			pairsSettled(t, "d", [2]*testDev{a, b}, [2]*testDev{b, a}, [2]*testDev{b, c}, [2]*testDev{c, b})

			if err := os.RemoveAll(filepath.Join(c.root, "d")); err != nil {
				t.Fatal(err)
			}
			c.rescan()
			waitFor(t, "charlie to record d deleted", converge, func() bool {
				r, ok, err := c.store.Local("f", "d")
				return err == nil && ok && r.Deleted
			})
			// Every device's record of d reaches its neighbours before the
			// trees are compared: a resurrection would show by then.
			pairsSettled(t, "d", [2]*testDev{a, b}, [2]*testDev{b, a}, [2]*testDev{b, c}, [2]*testDev{c, b})
			got = waitConverged(t, converge, a, b, c)
			if _, ok := got["d"]; ok {
				t.Errorf("d, deleted on charlie, came back: %v", got)
			}
		})
	}
}

// TestChainOfflineKindSwap: charlie, cut off from bravo, edits
// x (a file) while alpha deletes x and makes a directory x holding x/y,
// then re-creates and deletes other paths. Linked again (alpha and charlie
// only through bravo), every device must hold the same tree with charlie's
// edit and alpha's x/y both in sight.
func TestChainOfflineKindSwap(t *testing.T) {
	for _, newer := range []string{"alpha", "charlie"} {
		t.Run(newer+" newer", func(t *testing.T) {
			n, a, b, c := startChain(t, false)
			a.write("x", []byte("base x"))
			a.write("keep.txt", []byte("k1"))
			a.rescan()
			waitConverged(t, converge, a, b, c)

			n.setLink(b, c, false)
			time.Sleep(100 * time.Millisecond)
			old := time.Now().Add(-time.Hour)
			c.write("x", []byte("charlie's edit of x"))
			if newer == "alpha" {
				os.Chtimes(filepath.Join(c.root, "x"), old, old)
			}
			c.rescan()
			os.Remove(filepath.Join(a.root, "x"))
			a.rescan()
			time.Sleep(200 * time.Millisecond)
			a.write("x/y", []byte("alpha's y"))
			os.Remove(filepath.Join(a.root, "keep.txt"))
			a.rescan()
			time.Sleep(200 * time.Millisecond)
			a.write("keep.txt", []byte("k2 re-created"))
			a.rescan()
			waitConverged(t, converge, a, b)
			time.Sleep(300 * time.Millisecond)
			n.setLink(b, c, true)
			got := waitConverged(t, converge, a, b, c)
			var edit, y bool
			for p := range got {
				if !strings.HasPrefix(got[p], "file:") {
					continue
				}
				switch readFile(t, a, p) {
				case "charlie's edit of x":
					edit = true
				case "alpha's y":
					y = true
				}
			}
			if !edit || !y {
				t.Errorf("charlie's edit kept %v, alpha's x/y kept %v: %v", edit, y, got)
			}
			if readFile(t, c, "keep.txt") != "k2 re-created" {
				t.Errorf("keep.txt on charlie = %q", readFile(t, c, "keep.txt"))
			}
		})
	}
}

// TestReviveScansOnce: bravo deletes directory d while alpha, cut off,
// adds a tree under d (80 subdirectories, a file in each). Linked again,
// bravo's pass makes the subdirectories and pulls the files into d, which
// it records as deleted: d must be scanned once, when the pass ends, and
// come back live. (One scan request per record filled the 64-deep queue,
// and a full scan of the folder stood in for them.)
func TestReviveScansOnce(t *testing.T) {
	var full atomic.Int64
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name == "bravo" {
			o.hooks.fullScan = func() { full.Add(1) }
		}
	})
	n := a.net
	syncedFile(t, a, b, "d/old.txt", []byte("old"))

	n.setLink(a, b, false)
	time.Sleep(100 * time.Millisecond)
	if err := os.RemoveAll(filepath.Join(b.root, "d")); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	waitFor(t, "bravo to record d deleted", converge, func() bool {
		r, ok, err := b.store.Local("f", "d")
		return err == nil && ok && r.Deleted
	})
	for i := 0; i < 80; i++ {
		a.write(fmt.Sprintf("d/s%02d/f.txt", i), []byte(fmt.Sprintf("file %d", i)))
	}
	a.rescan()
	waitFor(t, "alpha to record its tree", converge, func() bool {
		_, ok, _ := a.store.Local("f", "d/s79/f.txt")
		return ok
	})
	time.Sleep(200 * time.Millisecond) // bravo's rescan is done and counted
	before := full.Load()
	n.setLink(a, b, true)
	waitConverged(t, converge, a, b)
	waitFor(t, "bravo to record d live", converge, func() bool {
		r, ok, err := b.store.Local("f", "d")
		return err == nil && ok && !r.Deleted
	})
	time.Sleep(300 * time.Millisecond)
	if got := full.Load() - before; got > 0 {
		t.Errorf("bravo scanned the whole folder %d times after pulling 80 directories into its deleted d (one scan of d wanted)", got)
	}
}
