package index

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Bounds on records: a record (from a peer, or from disk) outside them is
// invalid.
const (
	MaxPathLen     = 4096    // bytes of Record.Path
	MaxTargetLen   = 4096    // bytes of a symlink target
	MaxCounters    = 1000    // counters in a version vector
	MaxBlocks      = 1 << 22 // blocks in one record (a 1 TiB file of minimum-size blocks)
	MaxRecordBytes = 192 << 20
	encVersion     = 1 // the record encoding version (field 0)
)

// Errors of this file. Every error of Validate wraps ErrInvalidRecord, every
// error of ValidPath wraps ErrInvalidPath, every error of DecodeRecord wraps
// ErrDecode.
var (
	ErrInvalidRecord = errors.New("invalid record")
	ErrInvalidPath   = errors.New("invalid path")
	ErrDecode        = errors.New("cannot decode record")
)

// ValidPath reports whether p is an acceptable record path: valid UTF-8,
// relative, slash-separated, clean, no "..", no empty segment, no
// backslash, drive letter or NUL, at most MaxPathLen bytes, not "." and
// not inside .syncd/. (Linux allows any bytes in a name; the records,
// CBOR text, hold UTF-8 only.)
func ValidPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidPath, truncate(p), why) }
	switch {
	case p == "" || p == ".":
		return bad("empty")
	case len(p) > MaxPathLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxPathLen))
	case strings.IndexByte(p, 0) >= 0:
		return bad("contains NUL")
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case strings.IndexByte(p, '\\') >= 0:
		return bad("contains a backslash")
	case p[0] == '/':
		return bad("absolute")
	case len(p) >= 2 && p[1] == ':' && isLetter(p[0]):
		return bad("starts with a drive letter")
	case path.Clean(p) != p:
		return bad("not clean")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "", ".", "..":
			return bad(fmt.Sprintf("has a %q segment", seg))
		}
	}
	if p == ".syncd" || strings.HasPrefix(p, ".syncd/") {
		return bad("inside .syncd/")
	}
	return nil
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// Validate checks the structure of r (not its meaning):
//   - Path passes ValidPath; Kind is known; Size >= 0; Mode has only 0o777 bits.
//   - Version has at most MaxCounters counters, strictly sorted by Device,
//     no zero Value.
//   - Target is empty except for symlinks; a live symlink has a non-empty
//     target of at most MaxTargetLen bytes without NUL.
//   - Only live files have blocks. A live file has HashVersion == HashVersion,
//     blocks contiguous from offset 0 adding up to Size, each of 1 to
//     MaxBlockSize bytes, at most Size/MinBlockSize+1 of them (none when Size
//     is 0), and Content == ContentID(Size, Blocks).
//   - Deleted records, directories and symlinks have no blocks; their Size
//     and Content are not checked.
func (r *Record) Validate() error {
	if err := ValidPath(r.Path); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidRecord, truncate(r.Path), fmt.Sprintf(format, a...))
	}
	if r.Kind > Symlink {
		return bad("unknown kind %d", r.Kind)
	}
	if r.Size < 0 {
		return bad("negative size %d", r.Size)
	}
	if r.Mode&^0o777 != 0 {
		return bad("mode %#o has bits outside 0o777", r.Mode)
	}
	if len(r.Version) > MaxCounters {
		return bad("version vector has %d counters, more than %d", len(r.Version), MaxCounters)
	}
	for i, c := range r.Version {
		if c.Value == 0 {
			return bad("version vector has a zero counter")
		}
		if i > 0 && r.Version[i-1].Device >= c.Device {
			return bad("version vector not sorted by device")
		}
	}
	if r.Modifier != 0 && r.Version.Counter(r.Modifier) == 0 {
		return bad("modifier %016x has no counter in the version", r.Modifier)
	}
	if len(r.Target) > MaxTargetLen {
		return bad("symlink target longer than %d bytes", MaxTargetLen)
	}
	if r.Kind != Symlink && r.Target != "" {
		return bad("%s with a symlink target", r.Kind)
	}
	if r.Kind == Symlink && !r.Deleted {
		if r.Target == "" {
			return bad("symlink without target")
		}
		if strings.IndexByte(r.Target, 0) >= 0 {
			return bad("symlink target contains NUL")
		}
	}
	if r.Kind != File || r.Deleted {
		if len(r.Blocks) != 0 {
			return bad("%d blocks on a deleted record, directory or symlink", len(r.Blocks))
		}
		return nil
	}
	if r.HashVersion != HashVersion {
		return bad("hash version %d, want %d", r.HashVersion, HashVersion)
	}
	if limit := r.Size/MinBlockSize + 1; int64(len(r.Blocks)) > limit || len(r.Blocks) > MaxBlocks {
		return bad("%d blocks for %d bytes", len(r.Blocks), r.Size)
	}
	if r.Size > 0 && len(r.Blocks) == 0 {
		return bad("%d bytes but no blocks", r.Size)
	}
	var off int64
	for i, b := range r.Blocks {
		if b.Offset != off {
			return bad("block %d at offset %d, want %d", i, b.Offset, off)
		}
		if b.Size <= 0 || b.Size > MaxBlockSize {
			return bad("block %d has size %d (want 1..%d)", i, b.Size, MaxBlockSize)
		}
		off += b.Size
	}
	if off != r.Size {
		return bad("blocks add up to %d bytes, size is %d", off, r.Size)
	}
	if ContentID(r.Size, r.Blocks) != r.Content {
		return bad("content ID does not match the blocks")
	}
	return nil
}

// wireRecord is encoding version 1 of a record: a CBOR map with small
// integer keys. Block offsets are implied (blocks are contiguous from 0).
type wireRecord struct {
	Enc         uint8         `cbor:"0,keyasint"`
	Path        string        `cbor:"1,keyasint"`
	Kind        uint8         `cbor:"2,keyasint,omitempty"`
	Size        int64         `cbor:"3,keyasint,omitempty"`
	Mode        uint32        `cbor:"4,keyasint,omitempty"`
	ModTime     int64         `cbor:"5,keyasint,omitempty"`
	Deleted     bool          `cbor:"6,keyasint,omitempty"`
	Target      string        `cbor:"7,keyasint,omitempty"`
	Content     []byte        `cbor:"8,keyasint,omitempty"`
	Blocks      []wireBlock   `cbor:"9,keyasint,omitempty"`
	Version     []wireCounter `cbor:"10,keyasint,omitempty"`
	Sequence    uint64        `cbor:"11,keyasint,omitempty"`
	HashVersion uint8         `cbor:"12,keyasint,omitempty"`
	Inode       uint64        `cbor:"13,keyasint,omitempty"`
	Ctime       int64         `cbor:"14,keyasint,omitempty"`
	Modifier    uint64        `cbor:"15,keyasint,omitempty"`
}

type wireBlock struct {
	_    struct{} `cbor:",toarray"`
	Size int64
	Hash []byte
}

type wireCounter struct {
	_      struct{} `cbor:",toarray"`
	Device uint64
	Value  uint64
}

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  8,
		MaxArrayElements: MaxBlocks,
		MaxMapPairs:      64,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err) // static options
	}
	return dm
}

// EncodeRecord returns the deterministic CBOR encoding of r (encoding
// version 1; see doc.go). It does not validate r, except that blocks must
// be contiguous from offset 0 (offsets are implied by the encoding).
func EncodeRecord(r *Record) ([]byte, error) {
	w := wireRecord{
		Enc: encVersion, Path: r.Path, Kind: uint8(r.Kind), Size: r.Size, Mode: r.Mode,
		ModTime: r.ModTime, Deleted: r.Deleted, Target: r.Target, Sequence: r.Sequence,
		HashVersion: r.HashVersion, Inode: r.Inode, Ctime: r.Ctime, Modifier: r.Modifier,
	}
	if !r.Content.IsZero() {
		w.Content = r.Content[:]
	}
	if len(r.Blocks) > 0 {
		w.Blocks = make([]wireBlock, len(r.Blocks))
		var off int64
		for i := range r.Blocks {
			if r.Blocks[i].Offset != off {
				return nil, fmt.Errorf("%w: encode %q: block %d at offset %d, want %d (blocks must be contiguous)",
					ErrInvalidRecord, truncate(r.Path), i, r.Blocks[i].Offset, off)
			}
			off += r.Blocks[i].Size
			w.Blocks[i] = wireBlock{Size: r.Blocks[i].Size, Hash: r.Blocks[i].Hash[:]}
		}
	}
	if len(r.Version) > 0 {
		w.Version = make([]wireCounter, len(r.Version))
		for i, c := range r.Version {
			w.Version[i] = wireCounter{Device: c.Device, Value: c.Value}
		}
	}
	return encMode.Marshal(&w)
}

// DecodeRecord decodes the output of EncodeRecord. b is untrusted: it is
// bounded (MaxRecordBytes, MaxBlocks, nesting) and never panics, but the
// result is not validated beyond its encoding — call Validate on records
// from peers.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) > MaxRecordBytes {
		return Record{}, fmt.Errorf("%w: %d bytes, more than %d", ErrDecode, len(b), MaxRecordBytes)
	}
	var w wireRecord
	if err := decMode.Unmarshal(b, &w); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if w.Enc != encVersion {
		return Record{}, fmt.Errorf("%w: encoding version %d, want %d", ErrDecode, w.Enc, encVersion)
	}
	if len(w.Version) > MaxCounters {
		return Record{}, fmt.Errorf("%w: %d version counters, more than %d", ErrDecode, len(w.Version), MaxCounters)
	}
	r := Record{
		Path: w.Path, Kind: Kind(w.Kind), Size: w.Size, Mode: w.Mode, ModTime: w.ModTime,
		Deleted: w.Deleted, Target: w.Target, Sequence: w.Sequence, HashVersion: w.HashVersion,
		Inode: w.Inode, Ctime: w.Ctime, Modifier: w.Modifier,
	}
	switch len(w.Content) {
	case 0:
	case len(r.Content):
		copy(r.Content[:], w.Content)
	default:
		return Record{}, fmt.Errorf("%w: content ID of %d bytes", ErrDecode, len(w.Content))
	}
	if len(w.Blocks) > 0 {
		r.Blocks = make([]Block, len(w.Blocks))
		var off int64
		for i, wb := range w.Blocks {
			if len(wb.Hash) != len(r.Blocks[i].Hash) {
				return Record{}, fmt.Errorf("%w: block %d hash of %d bytes", ErrDecode, i, len(wb.Hash))
			}
			if wb.Size <= 0 || wb.Size > MaxBlockSize {
				return Record{}, fmt.Errorf("%w: block %d of %d bytes", ErrDecode, i, wb.Size)
			}
			r.Blocks[i] = Block{Offset: off, Size: wb.Size}
			copy(r.Blocks[i].Hash[:], wb.Hash)
			off += wb.Size // cannot overflow: MaxBlocks*MaxBlockSize < 2^63
		}
	}
	if len(w.Version) > 0 {
		r.Version = make(Vector, len(w.Version))
		for i, c := range w.Version {
			r.Version[i] = Counter{Device: c.Device, Value: c.Value}
		}
	}
	return r, nil
}
