package chunk

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/zeebo/blake3"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// gen returns n deterministic bytes: the BLAKE3 XOF of seed, all zeros for
// seed "zero", or repeated English-like text for seed "text".
func gen(seed string, n int) []byte {
	out := make([]byte, n)
	switch seed {
	case "zero":
	case "text":
		const s = "the quick brown fox jumps over the lazy dog; syncd keeps every copy. "
		for i := range out {
			out[i] = s[i%len(s)]
		}
	default:
		h := blake3.New()
		_, _ = h.WriteString(seed)
		_, _ = io.ReadFull(h.Digest(), out)
	}
	return out
}

type vector struct {
	Name    string  `json:"name"`
	Seed    string  `json:"seed"`
	Len     int     `json:"len"`
	Blocks  []Block `json:"blocks"`
	Content Hash    `json:"content"`
}

var vectorInputs = []struct {
	name, seed string
	n          int
}{
	{"empty", "a", 0},
	{"one byte", "a", 1},
	{"min block", "b", MinBlockSize},
	{"min block plus one", "b", MinBlockSize + 1},
	{"random 3 MiB", "c", 3 << 20},
	{"random 13 MiB", "d", 13<<20 + 12345},
	{"zeros 9 MiB (forced max cuts)", "zero", 9 << 20},
	{"text 5 MiB", "text", 5 << 20},
}

func TestVectors(t *testing.T) {
	file := filepath.Join("testdata", "vectors.json")
	if *update {
		var vs []vector
		for _, in := range vectorInputs {
			blocks, id := Blocks(gen(in.seed, in.n))
			vs = append(vs, vector{Name: in.name, Seed: in.seed, Len: in.n, Blocks: blocks, Content: id})
		}
		b, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(vectorInputs) {
		t.Fatalf("len(vectors) = %d, want %d", len(vs), len(vectorInputs))
	}
	h := NewHasher(2)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			data := gen(v.Seed, v.Len)
			blocks, id := Blocks(data)
			if d := cmp.Diff(v.Blocks, blocks); d != "" {
				t.Errorf("Blocks(%s) differs from testdata (-want +got):\n%s", v.Name, d)
			}
			if id != v.Content {
				t.Errorf("Blocks(%s) content = %v, want %v", v.Name, id, v.Content)
			}
			var got []Block
			err := Chunk(iotest.HalfReader(bytes.NewReader(data)), func(b Block, d []byte) error {
				if Sum(d) != b.Hash || int64(len(d)) != b.Size {
					t.Errorf("Chunk(%s) passed data not matching block %+v", v.Name, b)
				}
				got = append(got, b)
				return nil
			})
			if err != nil {
				t.Fatalf("Chunk(%s) = %v", v.Name, err)
			}
			if d := cmp.Diff(v.Blocks, got); d != "" {
				t.Errorf("Chunk(%s) differs (-want +got):\n%s", v.Name, d)
			}
			size, hb, hid, err := h.HashReader(iotest.HalfReader(bytes.NewReader(data)))
			if err != nil || size != int64(v.Len) || hid != v.Content {
				t.Errorf("HashReader(%s) = %d, %v, %v, want %d, %v, nil", v.Name, size, hid, err, v.Len, v.Content)
			}
			if d := cmp.Diff(v.Blocks, hb); d != "" {
				t.Errorf("HashReader(%s) blocks differ (-want +got):\n%s", v.Name, d)
			}
		})
	}
}

func TestEmptyContentID(t *testing.T) {
	want := Hash(blake3.Sum256(make([]byte, 8)))
	if got := ContentID(0, nil); got != want {
		t.Errorf("ContentID(0, nil) = %v, want %v", got, want)
	}
}

func TestBlockBounds(t *testing.T) {
	data := gen("bounds", 40<<20)
	blocks, _ := Blocks(data)
	for i, b := range blocks {
		if b.Size > MaxBlockSize || (b.Size < MinBlockSize && i != len(blocks)-1) {
			t.Errorf("block %d size %d outside [%d, %d]", i, b.Size, MinBlockSize, MaxBlockSize)
		}
	}
	if avg := len(data) / len(blocks); avg < AvgBlockSize/2 || avg > 2*AvgBlockSize {
		t.Errorf("average block size %d, want about %d", avg, AvgBlockSize)
	}
}

// TestInsertLocality inserts 100 bytes at offset 1000 of a 64 MiB file: all
// but at most two blocks must keep their hashes.
func TestInsertLocality(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(d []byte) []byte
	}{
		{"insert 100 at 1000", func(d []byte) []byte {
			return append(append(append([]byte(nil), d[:1000]...), gen("ins", 100)...), d[1000:]...)
		}},
		{"remove 100 at 1000", func(d []byte) []byte { return append(append([]byte(nil), d[:1000]...), d[1100:]...) }},
		{"insert 100 at 20 MiB", func(d []byte) []byte {
			o := 20 << 20
			return append(append(append([]byte(nil), d[:o]...), gen("ins", 100)...), d[o:]...)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := gen("locality", 64<<20)
			before, _ := Blocks(data)
			after, _ := Blocks(tt.edit(data))
			old := map[Hash]bool{}
			for _, b := range before {
				old[b.Hash] = true
			}
			changed := 0
			for _, b := range after {
				if !old[b.Hash] {
					changed++
				}
			}
			if changed > 2 || len(after) < len(before)-2 {
				t.Errorf("%s: %d of %d blocks changed (before: %d blocks), want at most 2", tt.name, changed, len(after), len(before))
			}
		})
	}
}

func TestChunkErrors(t *testing.T) {
	boom := errors.New("boom")
	err := Chunk(iotest.ErrReader(boom), func(Block, []byte) error { return nil })
	if !errors.Is(err, boom) {
		t.Errorf("Chunk(error reader) = %v, want %v", err, boom)
	}
	err = Chunk(bytes.NewReader(gen("x", 10)), func(Block, []byte) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("Chunk(fn error) = %v, want %v", err, boom)
	}
	r := io.MultiReader(bytes.NewReader(gen("x", 20<<20)), iotest.ErrReader(boom))
	if _, _, _, err := NewHasher(2).HashReader(r); !errors.Is(err, boom) {
		t.Errorf("HashReader(error reader) = %v, want %v", err, boom)
	}
}

func TestHashFile(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 100, 9<<20 + 7} {
		data := gen("file", n)
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		size, blocks, id, err := HashFile(p)
		wantBlocks, wantID := Blocks(data)
		if err != nil || size != int64(n) || id != wantID || !cmp.Equal(blocks, wantBlocks) {
			t.Errorf("HashFile(%d bytes) = %d, %d blocks, %v, %v, want %d, %d blocks, %v", n, size, len(blocks), id, err, n, len(wantBlocks), wantID)
		}
	}
	if _, _, _, err := HashFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("HashFile(missing) = %v, want ErrNotExist", err)
	}
}

func TestParseHash(t *testing.T) {
	h := Sum([]byte("x"))
	tests := []struct {
		in   string
		want Hash
		ok   bool
	}{
		{h.String(), h, true},
		{strings.ToUpper(h.String()), h, true},
		{h.String()[:63], Hash{}, false},
		{h.String() + "0", Hash{}, false},
		{"g" + h.String()[1:], Hash{}, false},
	}
	for _, tt := range tests {
		got, err := ParseHash(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseHash(%q) = %v, %v, want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzChunk(f *testing.F) {
	f.Add([]byte("hello"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		blocks, id := Blocks(data)
		var got []Block
		r := iotest.OneByteReader(bytes.NewReader(data))
		if step%2 == 1 {
			r = bytes.NewReader(data)
		}
		if err := Chunk(r, func(b Block, _ []byte) error { got = append(got, b); return nil }); err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(blocks, got) || ContentID(int64(len(data)), got) != id {
			t.Fatalf("Chunk and Blocks disagree")
		}
	})
}

// cutRef is cutRange as protocol v1 states it: one byte at a time.
func cutRef(data []byte, fp uint64, i, end int, mask uint64) (uint64, int, bool) {
	for ; i < end; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&mask == 0 {
			return fp, i + 1, true
		}
	}
	return fp, end, false
}

// TestCutRangeChains compares cutRange, which rolls four chains in step, with
// one chain rolled byte by byte, from any start, over ranges up to 2 MiB,
// with masks that cut every few bytes to almost never.
func TestCutRangeChains(t *testing.T) {
	data := gen("x", 8<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range []uint64{maskS, maskL, 0xFFFF000000000000, 0xFFF0000000000000, 0xFF00000000000000, 0xF000000000000000} {
		for range 3000 {
			i := r.IntN(len(data))
			end := i + r.IntN(min(len(data)-i, 1<<r.IntN(22))+1)
			fp := r.Uint64()
			fa, ia, oa := cutRef(data, fp, i, end, m)
			fb, ib, ob := cutRange(data, fp, i, end, m)
			if fa != fb || ia != ib || oa != ob {
				t.Fatalf("mask %x [%d,%d): %x %d %v vs %x %d %v", m, i, end, fa, ia, oa, fb, ib, ob)
			}
		}
	}
}

// TestCutRangePartEdges places the first cut of a range at the first and
// last bytes of each of a round's four parts (where a chain's fresh fp
// starts and ends), and around the window, and compares with cutRef.
func TestCutRangePartEdges(t *testing.T) {
	data := gen("edges", 4<<20)
	const mask = 0xFFFF000000000000 // a cut every 64 KiB on average
	var cuts []int                  // positions after a cut, from fp 0 at 0
	for i, fp := 0, uint64(0); i < len(data); i++ {
		fp = fp<<1 + gear[data[i]]
		if i >= window && fp&mask == 0 {
			cuts = append(cuts, i+1)
		}
	}
	tried := 0
	for _, c := range cuts {
		for p := range 4 {
			for _, off := range []int{0, 1, 2, 3, 4, 5, window - 2, window - 1, window, window + 1, part - 2, part - 1} {
				i := c - 1 - p*part - off // so that the cut is after byte p*part+off of the range
				if i < window {
					continue
				}
				fp := roll(data[i-window : i])
				end := min(len(data), i+8*part+100)
				if _, k, ok := cutRef(data, fp, i, end, mask); !ok || k != c {
					continue // another cut comes first
				}
				tried++
				if f, k, ok := cutRange(data, fp, i, end, mask); !ok || k != c {
					t.Fatalf("range from %d, first cut at %d (part %d, offset %d): cutRange gave %x %d %v", i, c, p, off, f, k, ok)
				}
			}
		}
	}
	if tried < 1000 {
		t.Fatalf("only %d placements tried", tried)
	}
}

// roll returns the gear hash of b from fp 0.
func roll(b []byte) uint64 {
	var fp uint64
	for _, c := range b {
		fp = fp<<1 + gear[c]
	}
	return fp
}

// FuzzCutRange compares cutRange with cutRef on inputs up to 256 KiB built
// from the fuzzer's bytes, from any start and fp, with masks of 1 to 24 top
// bits (a cut every other byte to about one in 16 MiB).
func FuzzCutRange(f *testing.F) {
	f.Add([]byte("syncd"), uint32(100<<10), uint32(0), uint64(0), uint8(17))
	f.Add([]byte{0}, uint32(64<<10), uint32(3), uint64(1), uint8(0))
	f.Add([]byte("abc"), uint32(256<<10-1), uint32(40000), ^uint64(0), uint8(21))
	f.Fuzz(func(t *testing.T, seed []byte, n, start uint32, fp uint64, bits uint8) {
		if len(seed) == 0 {
			seed = []byte{0}
		}
		data := make([]byte, n%(256<<10)+1)
		for i := range data {
			data[i] = seed[i%len(seed)] ^ byte(i*131>>7)
		}
		i := int(start) % len(data)
		mask := ^uint64(0) << (64 - (int(bits)%24 + 1))
		fa, ia, oa := cutRef(data, fp, i, len(data), mask)
		fb, ib, ob := cutRange(data, fp, i, len(data), mask)
		if fa != fb || ia != ib || oa != ob {
			t.Fatalf("mask %x [%d,%d): want %x %d %v, got %x %d %v", mask, i, len(data), fa, ia, oa, fb, ib, ob)
		}
	})
}
