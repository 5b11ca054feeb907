package index

import (
	"io"

	"github.com/syncd-project/syncd/index/chunk"
)

// Hash is a BLAKE3-256 digest (block hash or content ID); String is
// lowercase hex. It is chunk.Hash.
type Hash = chunk.Hash

// Block is one content-defined chunk of a file. It is chunk.Block.
type Block = chunk.Block

// HashVersion is the hashing protocol version written into new records.
const HashVersion = chunk.Version

// Block size bounds of hashing protocol v1.
const (
	MinBlockSize = chunk.MinBlockSize
	MaxBlockSize = chunk.MaxBlockSize
)

// ParseHash reads the 64-character hex form of a hash.
func ParseHash(s string) (Hash, error) { return chunk.ParseHash(s) }

// ContentID names a file by its size and block hashes (protocol v1).
func ContentID(size int64, blocks []Block) Hash { return chunk.ContentID(size, blocks) }

// Chunk splits r into protocol v1 blocks; data is valid only during fn.
func Chunk(r io.Reader, fn func(b Block, data []byte) error) error { return chunk.Chunk(r, fn) }

// Kind is the type of a record.
type Kind uint8

// The kinds of record.
const (
	File    Kind = 0
	Dir     Kind = 1
	Symlink Kind = 2
)

func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	}
	return "kind(" + itoa(uint64(k)) + ")"
}

// Record is the index entry of one path on one device.
type Record struct {
	Path    string // slash-separated, relative to the folder root, clean (see ValidPath)
	Kind    Kind
	Size    int64
	Mode    uint32 // permission bits only (0o777)
	ModTime int64  // Unix ns
	Deleted bool
	Target  string // symlink target (Kind == Symlink)
	Content Hash   // content ID (files only)
	Blocks  []Block
	Version Vector
	// Modifier is the device (vector key) that made this content; 0 when
	// unknown (the holder of Version's highest counter then).
	Modifier    uint64
	Sequence    uint64 // assigned by the store for local records; the sender's for remote ones
	HashVersion uint8
	Inode       uint64 // local only: never trust one from a peer
	// Ctime is the inode's change time (Unix ns) when the record was made,
	// local only like Inode; 0 if unknown. A write changes it even when
	// the writer puts size and mtime back, as photo and music taggers can.
	Ctime int64
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
