// Package chunk owns hashing protocol v1: content-defined chunking of a byte
// stream into blocks (FastCDC-style with normalized chunking), the BLAKE3-256
// name of every block, and the content ID of a whole file. It knows nothing
// of files on disk beyond HashFile, nor of the index or the network.
//
// Protocol v1, identical on every device:
//
//   - Blocks are at least MinBlockSize (256 KiB), on average about
//     AvgBlockSize (1 MiB), at most MaxBlockSize (4 MiB). Input shorter than
//     or equal to MinBlockSize is one block; the last block may be short.
//   - A cut point is searched from MinBlockSize bytes into the block with a
//     gear rolling hash fp = fp<<1 + gear[b] (fp starts at 0 at MinBlockSize),
//     cutting after the byte where fp&mask == 0. Up to AvgBlockSize the mask
//     is the top 22 bits (harder), after it the top 18 bits (easier); the cut
//     is forced at MaxBlockSize.
//   - The gear table is the first 2048 bytes of the BLAKE3 extendable output
//     of the string "syncd chunk gear table v1", read as 256 little-endian
//     uint64s.
//   - A block is named by BLAKE3-256 of its bytes.
//   - The content ID of a file is BLAKE3-256 of its size as an 8-byte
//     big-endian integer followed by the 32-byte hashes of its blocks in
//     order. The empty file (no blocks) has ID BLAKE3-256(8 zero bytes).
//
// testdata/vectors.json pins all of this: any change fails the tests.
package chunk

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/zeebo/blake3"
)

// Protocol v1 parameters.
const (
	Version      = 1
	MinBlockSize = 256 << 10
	AvgBlockSize = 1 << 20
	MaxBlockSize = 4 << 20

	maskS = uint64(0xFFFFFC0000000000) // top 22 bits: before AvgBlockSize
	maskL = uint64(0xFFFFC00000000000) // top 18 bits: after AvgBlockSize
)

// Hash is a BLAKE3-256 digest: a block hash or a content ID.
type Hash [32]byte

// ErrBadHash is returned by ParseHash.
var ErrBadHash = errors.New("invalid hash")

// String returns the lowercase hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText implements encoding.TextMarshaler (lowercase hex).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash reads the 64-character hex form (either case).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, fmt.Errorf("%w: %d characters, want 64 hex digits", ErrBadHash, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("%w: not hex", ErrBadHash)
	}
	return h, nil
}

// Sum returns the BLAKE3-256 hash of data (the name of a block).
func Sum(data []byte) Hash { return Hash(blake3.Sum256(data)) }

// Block is one content-defined chunk of a file.
type Block struct {
	Offset int64
	Size   int64
	Hash   Hash
}

// ContentID names a file by its size and block hashes.
func ContentID(size int64, blocks []Block) Hash {
	h := blake3.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(size))
	_, _ = h.Write(b[:])
	for i := range blocks {
		_, _ = h.Write(blocks[i].Hash[:])
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// gear is the fixed table of protocol v1 (see the package comment).
var gear = makeGear()

func makeGear() [256]uint64 {
	h := blake3.New()
	_, _ = h.WriteString("syncd chunk gear table v1")
	var buf [256 * 8]byte
	if _, err := io.ReadFull(h.Digest(), buf[:]); err != nil {
		panic("blake3 XOF: " + err.Error()) // cannot happen: the XOF is unbounded
	}
	var g [256]uint64
	for i := range g {
		g[i] = binary.LittleEndian.Uint64(buf[i*8:])
	}
	return g
}

// Cut returns the length of the first block of data. data holds the rest of
// the input from the block start (at least MaxBlockSize bytes unless the
// input ends within data).
func Cut(data []byte) int {
	n := len(data)
	if n <= MinBlockSize {
		return n
	}
	if n > MaxBlockSize {
		n = MaxBlockSize
	}
	normal := AvgBlockSize
	if n < normal {
		normal = n
	}
	fp, i, ok := cutRange(data, 0, MinBlockSize, normal, maskS)
	if ok {
		return i
	}
	if _, i, ok = cutRange(data, fp, i, n, maskL); ok {
		return i
	}
	return n
}

// window is how many bytes the gear hash remembers: fp<<1 per byte shifts a
// byte's contribution out after 64 bytes, so fp at any position is a
// function of the 64 bytes before it, once 64 bytes have been rolled.
const window = 64

// part is the length of each of cutRange's four chains in a round.
const part = 8 << 10

// cutRange rolls the gear hash fp over data[i:end] and returns the position
// after the first byte where fp&mask == 0 (ok), or fp and end.
//
// The dependency chain through fp (a shift and an add per byte) would set
// the speed, so cutRange takes the range in rounds of four parts of part
// bytes, rolled in step as four chains: the first from fp, the others from
// a fresh fp rolled over the window before their part, which equals the
// true one (see window). A round with a cut is rolled again on one chain
// to find its first. Short parts keep what a cut early in a round wastes
// small.
func cutRange(data []byte, fp uint64, i, end int, mask uint64) (uint64, int, bool) {
	const h = part
	data = data[:end]
	for ; i+4*h <= end; i += 4 * h {
		f0, f1, f2, f3 := fp, uint64(0), uint64(0), uint64(0)
		for k := i + h - window; k < i+h; k++ {
			f1 = f1<<1 + gear[data[k]]
			f2 = f2<<1 + gear[data[k+h]]
			f3 = f3<<1 + gear[data[k+2*h]]
		}
		for j := i; j < i+h; j += 4 {
			d0 := data[j : j+4 : j+4]
			d1 := data[j+h : j+h+4 : j+h+4]
			d2 := data[j+2*h : j+2*h+4 : j+2*h+4]
			d3 := data[j+3*h : j+3*h+4 : j+3*h+4]
			a0 := f0<<1 + gear[d0[0]]
			b0 := f1<<1 + gear[d1[0]]
			c0 := f2<<1 + gear[d2[0]]
			e0 := f3<<1 + gear[d3[0]]
			a1 := a0<<1 + gear[d0[1]]
			b1 := b0<<1 + gear[d1[1]]
			c1 := c0<<1 + gear[d2[1]]
			e1 := e0<<1 + gear[d3[1]]
			a2 := a1<<1 + gear[d0[2]]
			b2 := b1<<1 + gear[d1[2]]
			c2 := c1<<1 + gear[d2[2]]
			e2 := e1<<1 + gear[d3[2]]
			f0 = a2<<1 + gear[d0[3]]
			f1 = b2<<1 + gear[d1[3]]
			f2 = c2<<1 + gear[d2[3]]
			f3 = e2<<1 + gear[d3[3]]
			if a0&mask == 0 || a1&mask == 0 || a2&mask == 0 || f0&mask == 0 ||
				b0&mask == 0 || b1&mask == 0 || b2&mask == 0 || f1&mask == 0 ||
				c0&mask == 0 || c1&mask == 0 || c2&mask == 0 || f2&mask == 0 ||
				e0&mask == 0 || e1&mask == 0 || e2&mask == 0 || f3&mask == 0 {
				return cutSerial(data, fp, i, i+4*h, mask) // finds the round's first cut
			}
		}
		fp = f3
	}
	return cutSerial(data, fp, i, end, mask)
}

// cutSerial is cutRange on one chain, four bytes at a time.
func cutSerial(data []byte, fp uint64, i, end int, mask uint64) (uint64, int, bool) {
	data = data[:end]
	for ; i+4 <= end; i += 4 {
		d := data[i : i+4 : i+4]
		g0, g1, g2, g3 := gear[d[0]], gear[d[1]], gear[d[2]], gear[d[3]]
		a := fp<<1 + g0
		b := fp<<2 + (g0<<1 + g1)
		c := fp<<3 + (g0<<2 + g1<<1 + g2)
		fp = fp<<4 + (g0<<3 + g1<<2 + g2<<1 + g3)
		if (a&mask == 0) || (b&mask == 0) || (c&mask == 0) || (fp&mask == 0) {
			switch {
			case a&mask == 0:
				return a, i + 1, true
			case b&mask == 0:
				return b, i + 2, true
			case c&mask == 0:
				return c, i + 3, true
			}
			return fp, i + 4, true
		}
	}
	for ; i < end; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&mask == 0 {
			return fp, i + 1, true
		}
	}
	return fp, end, false
}

// Chunk splits r into blocks and calls fn for each in order with the block
// (offset, size, hash) and its bytes; data is valid only during the call.
// An error from fn or r stops Chunk and is returned. Chunk uses one goroutine
// and a buffer of 2*MaxBlockSize.
func Chunk(r io.Reader, fn func(b Block, data []byte) error) error {
	return chunkBuf(r, make([]byte, 2*MaxBlockSize), fn)
}

// chunkBuf is Chunk with a caller-provided buffer of at least MaxBlockSize.
func chunkBuf(r io.Reader, buf []byte, fn func(b Block, data []byte) error) error {
	var (
		start, end int   // unconsumed data is buf[start:end]
		off        int64 // file offset of buf[start]
		eof        bool
	)
	for {
		if !eof && end-start < MaxBlockSize {
			if start > 0 {
				end = copy(buf, buf[start:end])
				start = 0
			}
			for end < len(buf) {
				n, err := r.Read(buf[end:])
				end += n
				if err == io.EOF {
					eof = true
					break
				}
				if err != nil {
					return err
				}
			}
		}
		if start == end {
			if eof {
				return nil
			}
			continue
		}
		n := Cut(buf[start:end])
		if !eof && n == end-start && n < MaxBlockSize {
			continue // need more data before cutting (short read)
		}
		data := buf[start : start+n]
		b := Block{Offset: off, Size: int64(n), Hash: Sum(data)}
		if err := fn(b, data); err != nil {
			return err
		}
		start += n
		off += int64(n)
	}
}
