package index

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// dirRecs is what a scan needs of the local records of one directory:
// the stat part of each direct child (no blocks, no content ID), in name
// (byte) order, and the names of children that have records below them.
type dirRecs struct {
	recs     []Record // direct children, by name; Blocks and Content left empty
	subtrees []string // names n with records under dir/n/, by name
}

// wireStat is wireRecord without the content ID and blocks: decoding it
// skips (but still checks) those fields, so that comparing a file with its
// record costs no allocation per block.
type wireStat struct {
	Enc         uint8         `cbor:"0,keyasint"`
	Path        string        `cbor:"1,keyasint"`
	Kind        uint8         `cbor:"2,keyasint,omitempty"`
	Size        int64         `cbor:"3,keyasint,omitempty"`
	Mode        uint32        `cbor:"4,keyasint,omitempty"`
	ModTime     int64         `cbor:"5,keyasint,omitempty"`
	Deleted     bool          `cbor:"6,keyasint,omitempty"`
	Target      string        `cbor:"7,keyasint,omitempty"`
	Version     []wireCounter `cbor:"10,keyasint,omitempty"`
	Sequence    uint64        `cbor:"11,keyasint,omitempty"`
	HashVersion uint8         `cbor:"12,keyasint,omitempty"`
	Inode       uint64        `cbor:"13,keyasint,omitempty"`
	Ctime       int64         `cbor:"14,keyasint,omitempty"`
	Modifier    uint64        `cbor:"15,keyasint,omitempty"`
}

// decodeStat decodes a record like DecodeRecord but leaves out its content
// ID and blocks (the scanner compares stat fields only).
func decodeStat(b []byte) (Record, error) {
	if len(b) > MaxRecordBytes {
		return Record{}, fmt.Errorf("%w: %d bytes, more than %d", ErrDecode, len(b), MaxRecordBytes)
	}
	var w wireStat
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
	if len(w.Version) > 0 {
		r.Version = make(Vector, len(w.Version))
		for i, c := range w.Version {
			r.Version[i] = Counter{Device: c.Device, Value: c.Value}
		}
	}
	return r, nil
}

// localDir reads the local records of the direct children of directory dir
// ("" is the root) of folder in one ordered iteration of one read
// transaction: records deeper down are skipped with one seek per
// subdirectory, so the cost is that of the directory, not of its subtree.
// Memory is bounded by the directory's size (like its listing).
func (s *Store) localDir(folder, dir string) (dirRecs, error) {
	if err := checkFolder(folder); err != nil {
		return dirRecs{}, err
	}
	prefix := key(pLocal, folder)
	base := len(prefix) // keys are base | path
	if dir != "" {
		prefix = append(append(prefix, dir...), '/')
	}
	var out dirRecs
	err := s.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false // values are small and read at once
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		var seek []byte
		for it.Seek(prefix); it.ValidForPrefix(prefix); {
			item := it.Item()
			name := item.Key()[len(prefix):]
			if i := bytes.IndexByte(name, '/'); i >= 0 {
				// A record under subdirectory name[:i]: note it and jump
				// past dir/name[:i]/ ('/'+1 is '0').
				out.subtrees = append(out.subtrees, string(name[:i]))
				seek = append(append(append(seek[:0], prefix...), name[:i]...), '/'+1)
				it.Seek(seek)
				continue
			}
			var r Record
			err := item.Value(func(v []byte) error {
				var err error
				r, err = decodeStat(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("%w: %q: %w", ErrCorrupt, item.Key(), err)
			}
			r.Path = string(item.Key()[base:]) // the key is authoritative
			out.recs = append(out.recs, r)
			it.Next()
		}
		return nil
	})
	if err != nil {
		return dirRecs{}, fmt.Errorf("read index of %s/%s: %w", folder, dir, err)
	}
	return out, nil
}
