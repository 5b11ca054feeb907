package index

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Intents close the window between a pull's rename and its record. The
// puller renames a batch of pulled files into place, makes the renames
// durable, and only then writes their records; a crash in between leaves
// files that hold a peer's version with no record of it, and the next
// scan took each for a local edit, with a new version of this device
// concurrent with the peer's: a conflict copy of the peer's own write, and
// with a later edit of the peer that had an older mtime, the stale version
// winning everywhere. So the puller first writes what it is about to
// install (PutIntents), and the scan gives a file that holds exactly that
// (content, size, mode, mtime) the intended version instead of a new one
// (IntentsOf). The puller drops the batch's intents once its records are
// written; the folder drops all of them after its first full scan.
//
// A batch is one key, pIntent folder id(8), whose value is each record,
// without its blocks, as a uvarint length and its encoding.

// intentSeq makes intent batch IDs unique within a process; the high bits
// are the time the process started, so that they are unique across restarts.
var intentSeq atomic.Uint64

func init() { intentSeq.Store(uint64(time.Now().UnixNano()) &^ 0xFFFFF) }

// PutIntents records that the records recs are about to be installed in
// folder, and returns the batch's ID for DropIntents. The store is synced
// before it returns, so that the intents are on disk before the renames.
func (s *Store) PutIntents(folder string, recs []Record) (uint64, error) {
	if err := checkFolder(folder); err != nil {
		return 0, err
	}
	var val []byte
	for i := range recs {
		r := recs[i]
		r.Blocks = nil
		b, err := EncodeRecord(&r)
		if err != nil {
			return 0, err
		}
		val = binary.AppendUvarint(val, uint64(len(b)))
		val = append(val, b...)
	}
	id := intentSeq.Add(1)
	err := s.update(func(txn *badger.Txn) error { return txn.Set(key(pIntent, folder, u64(id)), val) })
	if err == nil {
		err = s.Sync()
	}
	if err != nil {
		return 0, fmt.Errorf("record the intents of a pull in %s: %w", folder, err)
	}
	return id, nil
}

// DropIntents forgets the intents of the batches ids (PutIntents).
func (s *Store) DropIntents(folder string, ids ...uint64) error {
	if err := checkFolder(folder); err != nil {
		return err
	}
	return s.update(func(txn *badger.Txn) error {
		for _, id := range ids {
			if err := txn.Delete(key(pIntent, folder, u64(id))); err != nil {
				return err
			}
		}
		return nil
	})
}

// IntentsOf returns the intents of folder by path (of the latest batch
// where batches disagree), nil if there are none (the usual case), and the
// IDs of their batches.
func (s *Store) IntentsOf(folder string) (map[string]Record, []uint64, error) {
	if err := checkFolder(folder); err != nil {
		return nil, nil, err
	}
	var out map[string]Record
	var ids []uint64
	prefix := key(pIntent, folder)
	err := s.scan(prefix, prefix, func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("%w: %q", ErrCorrupt, k)
		}
		ids = append(ids, binary.BigEndian.Uint64(k[len(prefix):]))
		for len(v) > 0 {
			n, w := binary.Uvarint(v)
			if w <= 0 || n > uint64(len(v)-w) {
				return fmt.Errorf("%w: intents %q", ErrCorrupt, k)
			}
			r, err := DecodeRecord(v[w : w+int(n)])
			if err != nil {
				return fmt.Errorf("%w: intents %q: %w", ErrCorrupt, k, err)
			}
			if out == nil {
				out = map[string]Record{}
			}
			out[r.Path] = r
			v = v[w+int(n):]
		}
		return nil
	})
	return out, ids, err
}
