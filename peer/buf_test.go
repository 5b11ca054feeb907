package peer

import (
	"slices"
	"testing"

	"github.com/syncd-project/syncd/index"
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
