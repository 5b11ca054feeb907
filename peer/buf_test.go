package peer

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

func TestBufClasses(t *testing.T) {
	for _, c := range []struct{ n, cap int }{
		{1, smallBuf}, {smallBuf, smallBuf}, {smallBuf + 1, index.MaxBlockSize}, {index.MaxBlockSize, index.MaxBlockSize},
	} {
		b := getBuf(c.n)
		if len(b) != c.n || cap(b) != c.cap {
			t.Errorf("getBuf(%d): len %d cap %d, want len %d cap %d", c.n, len(b), cap(b), c.n, c.cap)
		}
		putBuf(b)
	}
	putBuf(make([]byte, 10)) // not from a pool: dropped
	if b := getBuf(100); cap(b) != smallBuf {
		t.Errorf("after putBuf of a foreign buffer, getBuf(100) has cap %d", cap(b))
	}
}

func TestAcrossDirs(t *testing.T) {
	var jobs []job
	for _, p := range []string{"a/1", "a/2", "a/3", "b/1", "c/1", "c/2", "top"} {
		jobs = append(jobs, job{path: p})
	}
	var got []string
	for _, j := range acrossDirs(jobs) {
		got = append(got, j.path)
	}
	want := []string{"a/1", "b/1", "c/1", "top", "a/2", "c/2", "a/3"}
	if !slices.Equal(got, want) {
		t.Errorf("acrossDirs = %v, want %v", got, want)
	}
}

// TestTinyInflightBound: a MaxInflight below one block is raised to
// MaxBlockSize, so that files with several big blocks still arrive (a
// bound below a block would make its fetch wait forever).
func TestTinyInflightBound(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	a.write("big.bin", randBytes(21, 3*index.MaxBlockSize+99))
	a.write("small.txt", []byte("small"))
	for _, d := range []struct{ dev, peer *testDev }{{a, b}, {b, a}} {
		if err := d.dev.startWith(func(o *Options) { o.MaxInflight = 1; o.BlockWorkers = 4 }, d.peer); err != nil {
			t.Fatal(err)
		}
	}
	a.rescan()
	waitConverged(t, converge, a, b)
}

// TestNewFolderStartsAtOnce: a folder added on both sides while they are
// connected starts syncing at once, with the periodic ping out of the way
// (an hour): the local Configure and the peer's hello header trigger it.
func TestNewFolderStartsAtOnce(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	for _, d := range []struct{ dev, peer *testDev }{{a, b}, {b, a}} {
		if err := d.dev.startWith(func(o *Options) { o.Ping = time.Hour }, d.peer); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a and b to connect", converge, func() bool {
		return a.eng.peers[b.id].connected() && b.eng.peers[a.id].connected()
	})
	rootA, rootB := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rootA, "new.txt"), []byte("in the new folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	add := func(d *testDev, peer *testDev, root string) {
		d.eng.Configure([]PeerConfig{{ID: peer.id, Name: peer.name}}, []FolderConfig{
			{ID: "f", Root: d.root, Peers: []deviceid.ID{peer.id}},
			{ID: "g", Root: root, Peers: []deviceid.ID{peer.id}},
		})
	}
	add(a, b, rootA)
	time.Sleep(200 * time.Millisecond) // b adds it later, as a user would
	add(b, a, rootB)
	waitFor(t, "new.txt to reach b's new folder", 10*time.Second, func() bool {
		got, err := os.ReadFile(filepath.Join(rootB, "new.txt"))
		return err == nil && string(got) == "in the new folder"
	})
}
