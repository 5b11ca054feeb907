package chunk

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// TestHashReaderMatchesBlocks checks the pipelined HashReader against the
// in-memory reference (Blocks) at the edges of its 4 MiB read segments:
// sizes around the block bounds and segment multiples, data that never
// cuts (zeros: every block is exactly MaxBlockSize, aligned with the
// segments), and readers that return short reads.
func TestHashReaderMatchesBlocks(t *testing.T) {
	sizes := []int{0, 1, MinBlockSize - 1, MinBlockSize, MinBlockSize + 1, AvgBlockSize + 3,
		segSize - 1, segSize, segSize + 1, 2*segSize + MinBlockSize + 5, 5*segSize + 12345}
	readers := map[string]func(io.Reader) io.Reader{
		"plain": func(r io.Reader) io.Reader { return r },
		"half":  iotest.HalfReader,
		"odd":   func(r io.Reader) io.Reader { return &chunkyReader{r: r, n: 777_777} },
	}
	h := NewHasher(2)
	for _, seed := range []string{"hr", "zero", "text"} {
		for _, n := range sizes {
			data := gen(seed, n)
			want, wantID := Blocks(data)
			for name, wrap := range readers {
				t.Run(fmt.Sprintf("%s/%d/%s", seed, n, name), func(t *testing.T) {
					size, got, id, err := h.HashReader(wrap(bytes.NewReader(data)))
					if err != nil || size != int64(n) || id != wantID {
						t.Errorf("HashReader = %d, %v, %v, want %d, %v, nil", size, id, err, n, wantID)
					}
					if d := cmp.Diff(want, got); d != "" {
						t.Errorf("HashReader blocks differ from Blocks (-want +got):\n%s", d)
					}
					if free, made := len(h.pool), int(h.made.Load()); free != made {
						t.Errorf("after HashReader: %d of %d buffers back in the pool, want all", free, made)
					}
				})
			}
		}
	}
}

// chunkyReader returns at most n bytes per Read.
type chunkyReader struct {
	r io.Reader
	n int
}

func (c *chunkyReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

// TestHashReaderErrorReleases checks that a read error in the middle of a
// file returns the error and gives every buffer back.
func TestHashReaderErrorReleases(t *testing.T) {
	h := NewHasher(2)
	data := gen("err", 3*segSize)
	r := io.MultiReader(bytes.NewReader(data), iotest.ErrReader(io.ErrClosedPipe))
	if _, _, _, err := h.HashReader(r); err != io.ErrClosedPipe {
		t.Errorf("HashReader(failing reader) = %v, want %v", err, io.ErrClosedPipe)
	}
	if free, made := len(h.pool), int(h.made.Load()); free != made || made > cap(h.pool) {
		t.Errorf("after a read error: %d of %d buffers free (cap %d), want all", free, made, cap(h.pool))
	}
}

// TestHasherRelease: after Release an idle Hasher holds no buffers, and it
// still hashes correctly afterwards.
func TestHasherRelease(t *testing.T) {
	h := NewHasher(2)
	data := gen("release", 3*segSize+12345)
	_, want := Blocks(data)
	for round := range 2 {
		if _, _, got, err := h.HashReader(bytes.NewReader(data)); err != nil || got != want {
			t.Fatalf("round %d: HashReader = %v, %v; want %v", round, got, err, want)
		}
		if len(h.pool) == 0 {
			t.Fatalf("round %d: no buffer was pooled; the test proves nothing", round)
		}
		h.Release()
		if free, made := len(h.pool), h.made.Load(); free != 0 || made != 0 {
			t.Fatalf("round %d: after Release %d buffers free, %d made; want none", round, free, made)
		}
	}
}
