package index

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// Key prefixes of the badger store (see doc.go).
const (
	pLocal    = 'L' // L folder path -> record
	pSeq      = 'S' // S folder seq(8) -> path
	pSeqTop   = 'Q' // Q folder -> highest local sequence (8)
	pEpoch    = 'E' // E folder -> local epoch (8)
	pRemote   = 'R' // R folder dev(32) path -> record
	pProgress = 'P' // P folder dev(32) -> epoch(8) seq(8)
	pBlock    = 'B' // B hash(32) folder path -> offset(8) size(8)
	pMarker   = 'K' // K folder -> the token of the folder's marker on disk
	pForget   = 'F' // F folder -> (empty): a ForgetLocal of the folder has not finished
	pIntent   = 'I' // I folder id(8) -> records a pull is installing (intent.go)
)

// MaxFolderLen bounds a folder ID.
const MaxFolderLen = 1024

// pageSize is how many records the walk methods read per transaction, so
// that callbacks never run inside a long transaction.
const pageSize = 256

// Errors of the store.
var (
	ErrBadFolder = errors.New("invalid folder ID")
	ErrCorrupt   = errors.New("corrupt index entry")
)

// Options configures a Store. The zero value is a sensible on-disk store.
type Options struct {
	Logger     *slog.Logger // nil: discard
	InMemory   bool         // keep everything in memory (tests); dir is ignored
	SyncWrites bool         // fsync every commit (else call Sync at commit points)
	// CacheSize is the badger block cache in bytes (default none); the
	// index cache is half of it. Without caches, tables are read straight
	// from their memory maps (they are not compressed), and the store runs
	// no cache goroutines: each of badger's caches wakes every 2.5 s, which
	// was measurable CPU for an idle daemon.
	CacheSize int64
}

// Store is the badger-backed index of one device: its own records per
// folder, every remote device's records, and the block index.
type Store struct {
	db  *badger.DB
	log *slog.Logger
	dir string // "" in memory

	lifeMu sync.RWMutex // Sync holds it for reading, Close for writing
	closed bool         // guarded by lifeMu

	broken atomic.Pointer[error] // set by broke

	wmu sync.Mutex // serialises local writes (sequence assignment and block index)

	// totals caches LocalTotals per folder once a load has begun, and is
	// changed with every local write (made under wmu).
	tmu    sync.Mutex
	totals map[string]*totals // guarded by tmu

	mu      sync.Mutex               // guards changed
	changed map[string]chan struct{} // folder -> closed at the next PutLocal

	// devs caches Devices: folder -> the devices with remote records
	// there, loaded from disk once per folder and then kept up to date
	// by putRemote and dropRemote. (Every PutRemote rewrites the device's
	// progress key, and an iterator over those keys steps over each old
	// version badger has not compacted yet: reading them from disk at
	// every pull pass cost time that grew with the batches received.)
	devMu sync.Mutex
	devs  map[string]map[deviceid.ID]bool // guarded by devMu

	writes      chan struct{} // a write committed (compact.go)
	quit        chan struct{} // closed by Close
	closeOnce   sync.Once
	compactDone chan struct{} // closed when compactLoop returns
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cache := max(o.CacheSize, 0)
	// Sized for a background daemon's peak RSS: badger's table builders
	// (memtable flushes and compactions, several at once) allocate about
	// twice their table size each, and they, not the caches, make the peak
	// of a first scan. 4 MiB memtables and 1 MiB tables took the peak RSS
	// of a first scan of 100k files from ~230 MB to ~145 MB (see
	// BenchmarkScanRSS); the largest transaction is 15% of a memtable
	// (~600 KiB), well above a scanner batch.
	bo := badger.DefaultOptions(dir).
		WithInMemory(o.InMemory).
		WithSyncWrites(o.SyncWrites).
		WithLogger(badgerLogger{log.With("component", "badger")}).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(level0Tables).
		WithNumLevelZeroTablesStall(level0Stall).
		WithBaseTableSize(1 << 20).
		WithValueThreshold(16 << 10).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(cache).
		WithIndexCacheSize(cache / 2).
		WithNumCompactors(0). // compactLoop runs them (compact.go)
		// Compression needs a block cache (badger panics without one).
		WithCompression(options.None).
		WithDetectConflicts(false)
	if o.InMemory {
		bo.Dir, bo.ValueDir, dir = "", "", ""
	} else if err := checkTables(dir, bo); err != nil {
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	s := &Store{db: db, log: log, dir: dir, changed: map[string]chan struct{}{}, totals: map[string]*totals{},
		writes: make(chan struct{}, 1), quit: make(chan struct{}), compactDone: make(chan struct{})}
	go s.compactLoop()
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.quit) })
	<-s.compactDone
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.brokenErr(); err != nil {
		return err // badger's Close would crash on its missing memtable
	}
	if err := s.room(); IsDiskFull(err) {
		// badger's Close writes its memtable out as a table, through a
		// memory map: on a full disk a SIGBUS. It is left unwritten: its
		// log holds the same, read again at the next open.
		return fmt.Errorf("%w; the last changes stay in its log, read again at the next start", err)
	}
	return s.db.Close()
}

// update runs fn in a read-write transaction and tells compactLoop.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	if err := s.room(); err != nil {
		return err
	}
	err := s.broke(s.db.Update(fn))
	s.wrote()
	return err
}

// view runs fn in a read-only transaction. A panic of badger's read path
// (its memtable gone since a write broke it, a race with broke) is
// ErrIndexBroken, not the end of the process.
func (s *Store) view(fn func(txn *badger.Txn) error) (err error) {
	if err := s.brokenErr(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			if err = s.brokenErr(); err == nil {
				panic(r)
			}
		}
	}()
	return s.db.View(fn)
}

// Sync flushes written data to disk (a commit point when SyncWrites is off).
// After Close it returns badger.ErrDBClosed: badger's own Sync then
// dereferences a memtable Close has dropped, or waits for ever.
func (s *Store) Sync() error {
	s.lifeMu.RLock()
	defer s.lifeMu.RUnlock()
	if s.closed {
		return badger.ErrDBClosed
	}
	if err := s.brokenErr(); err != nil {
		return err
	}
	return s.db.Sync()
}

// Size returns badger's on-disk sizes (LSM tree and value log) in bytes, as
// last computed by badger (refreshed about once a minute).
func (s *Store) Size() (lsm, vlog int64) { return s.db.Size() }

func checkFolder(folder string) error {
	if folder == "" || len(folder) > MaxFolderLen {
		return fmt.Errorf("%w: %d bytes (want 1..%d)", ErrBadFolder, len(folder), MaxFolderLen)
	}
	return nil
}

// key builds prefix | len(folder) (2 bytes) | folder | parts...
func key(prefix byte, folder string, parts ...[]byte) []byte {
	n := 3 + len(folder)
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	k = append(k, prefix, byte(len(folder)>>8), byte(len(folder)))
	k = append(k, folder...)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func blockKey(h Hash, folder, path string) []byte {
	k := make([]byte, 0, 1+32+2+len(folder)+len(path))
	k = append(k, pBlock)
	k = append(k, h[:]...)
	k = append(k, byte(len(folder)>>8), byte(len(folder)))
	k = append(k, folder...)
	return append(k, path...)
}

func getU64(txn *badger.Txn, k []byte) (uint64, bool, error) {
	it, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var v uint64
	err = it.Value(func(b []byte) error {
		if len(b) < 8 {
			return fmt.Errorf("%w: %q", ErrCorrupt, k)
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, true, err
}

func getRecord(txn *badger.Txn, k []byte) (Record, bool, error) {
	it, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	var r Record
	err = it.Value(func(b []byte) error {
		var err error
		r, err = DecodeRecord(b)
		return err
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return r, true, nil
}

func randomEpoch() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // never fails (crypto/rand contract since Go 1.24)
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// Epoch returns the folder's index epoch: random, created on first use,
// stable across reopen, changed only by ResetEpoch.
func (s *Store) Epoch(folder string) (uint64, error) {
	if err := checkFolder(folder); err != nil {
		return 0, err
	}
	var e uint64
	var ok bool
	err := s.view(func(txn *badger.Txn) error {
		var err error
		e, ok, err = getU64(txn, key(pEpoch, folder))
		return err
	})
	if err != nil || ok {
		// A read: it goes on when the index's disk is low (room).
		return e, err
	}
	err = s.update(func(txn *badger.Txn) error {
		k := key(pEpoch, folder)
		v, ok, err := getU64(txn, k)
		if err != nil || ok {
			e = v
			return err
		}
		e = randomEpoch()
		return txn.Set(k, u64(e))
	})
	return e, err
}

// ResetEpoch gives the folder a new random epoch, so that peers start over.
func (s *Store) ResetEpoch(folder string) error {
	if err := checkFolder(folder); err != nil {
		return err
	}
	return s.update(func(txn *badger.Txn) error {
		return txn.Set(key(pEpoch, folder), u64(randomEpoch()))
	})
}

// Local returns the local record of path in folder.
func (s *Store) Local(folder, path string) (Record, bool, error) {
	if err := checkFolder(folder); err != nil {
		return Record{}, false, err
	}
	var (
		r  Record
		ok bool
	)
	err := s.view(func(txn *badger.Txn) error {
		var err error
		r, ok, err = getRecord(txn, key(pLocal, folder, []byte(path)))
		return err
	})
	return r, ok, err
}

// LocalStat is Local without the record's content ID and blocks: the
// stat part only, which costs no decoding per block (a large file's
// record has thousands).
func (s *Store) LocalStat(folder, path string) (Record, bool, error) {
	if err := checkFolder(folder); err != nil {
		return Record{}, false, err
	}
	var (
		r  Record
		ok bool
	)
	err := s.view(func(txn *badger.Txn) error {
		it, err := txn.Get(key(pLocal, folder, []byte(path)))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ok = true
		return it.Value(func(b []byte) error {
			var err error
			if r, err = decodeStat(b); err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			return nil
		})
	})
	return r, ok && err == nil, err
}

// RefreshLocal gives the local record of path the inode and change time
// of its file (both local only) if it still has version v, and keeps its
// sequence, so that peers see no change. ok is false when the record is
// gone or has another version (then nothing is written).
func (s *Store) RefreshLocal(folder, path string, v Vector, inode uint64, ctime int64) (ok bool, err error) {
	if err := checkFolder(folder); err != nil {
		return false, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err = s.update(func(txn *badger.Txn) error {
		lk := key(pLocal, folder, []byte(path))
		r, found, err := getRecord(txn, lk)
		if err != nil || !found || r.Deleted || r.Version.Compare(v) != Equal {
			ok = false
			return err
		}
		r.Inode, r.Ctime = inode, ctime
		b, err := EncodeRecord(&r)
		if err != nil {
			return err
		}
		ok = true
		return txn.Set(lk, b)
	})
	if err != nil {
		return false, fmt.Errorf("refresh local %s: %w", folder, err)
	}
	return ok, nil
}

// LocalSeq returns the highest sequence assigned in folder (0 if none).
func (s *Store) LocalSeq(folder string) (uint64, error) {
	if err := checkFolder(folder); err != nil {
		return 0, err
	}
	var v uint64
	err := s.view(func(txn *badger.Txn) error {
		var err error
		v, _, err = getU64(txn, key(pSeqTop, folder))
		return err
	})
	return v, err
}

// LocalFolders lists, sorted, the folders that have local state here for
// ForgetLocal to drop: local records (or had: a sequence counter exists),
// a marker token, or a forget that did not finish.
func (s *Store) LocalFolders() ([]string, error) {
	var ids []string
	for _, p := range []byte{pSeqTop, pMarker, pForget} {
		err := s.scanKeys([]byte{p}, func(k []byte) error {
			if len(k) < 3 || int(k[1])<<8|int(k[2]) != len(k)-3 {
				return fmt.Errorf("%w: %q", ErrCorrupt, k)
			}
			ids = append(ids, string(k[3:]))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// ForgetLocal drops every local record of folder with its sequences and
// block locations, and gives the folder a new epoch: this device starts
// over in the folder as a new one would, and peers start over with it. No
// file and no peer's record is touched; no tombstone is written; the
// marker's token (MarkerToken) goes too. A new epoch comes first, with a
// note that a forget is under way (ForgetPending), so that after a crash
// part way peers start over with what is left and a later ForgetLocal
// finishes, whether or not the folder is configured again (the folder also
// stays listed by LocalFolders, whose sequence counter goes last, with the
// note); another epoch comes
// after the records are gone, so that a peer served records meanwhile
// starts over again. Sequences go before records, so that a reader of
// LocalSince meanwhile finds fewer records, never a sequence without its
// record. The store is synced at the end.
func (s *Store) ForgetLocal(folder string) error {
	if err := checkFolder(folder); err != nil {
		return err
	}
	err := s.update(func(txn *badger.Txn) error {
		if err := txn.Set(key(pForget, folder), nil); err != nil {
			return err
		}
		return txn.Set(key(pEpoch, folder), u64(randomEpoch()))
	})
	if err != nil {
		return fmt.Errorf("forget the local records of %s: %w", folder, err)
	}
	if forgetHook != nil {
		if err := forgetHook(); err != nil {
			return err
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.tmu.Lock()
	delete(s.totals, folder) // counted again from what is left
	s.tmu.Unlock()
	del := func(prefix []byte) error {
		if err := s.room(); err != nil {
			return err
		}
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		if err := s.scanKeys(prefix, func(k []byte) error { return wb.Delete(k) }); err != nil {
			return err
		}
		return s.broke(wb.Flush())
	}
	err = del(key(pSeq, folder))
	if err == nil {
		err = del(key(pIntent, folder))
	}
	if err == nil {
		err = s.room()
	}
	if err == nil {
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		err = s.walk(key(pLocal, folder), func(r Record) error {
			for _, b := range r.Blocks {
				if err := wb.Delete(blockKey(b.Hash, folder, r.Path)); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = s.broke(wb.Flush())
		}
	}
	if err == nil {
		err = del(key(pLocal, folder))
	}
	if err == nil {
		err = s.update(func(txn *badger.Txn) error {
			if err := txn.Set(key(pEpoch, folder), u64(randomEpoch())); err != nil {
				return err
			}
			for _, k := range [][]byte{key(pSeqTop, folder), key(pMarker, folder)} {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return txn.Delete(key(pForget, folder))
		})
	}
	if err == nil {
		err = s.Sync()
	}
	if err != nil {
		return fmt.Errorf("forget the local records of %s: %w", folder, err)
	}
	s.wrote()
	s.notify(folder)
	return nil
}

// forgetHook, if set (tests), runs in ForgetLocal after its first step; an
// error stops it there, as a crash would.
var forgetHook func() error

// ForgetPending reports whether a ForgetLocal of folder began and did not
// finish (a crash, an error): the folder's records are partly gone, and
// ForgetLocal must run again before the folder is used.
func (s *Store) ForgetPending(folder string) (bool, error) {
	if err := checkFolder(folder); err != nil {
		return false, err
	}
	var ok bool
	err := s.view(func(txn *badger.Txn) error {
		_, err := txn.Get(key(pForget, folder))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	return ok, err
}

// MarkerToken returns the token of the folder's marker that this device
// syncs (see peer's markers), or "" if none is recorded: a new folder, one
// whose records were forgotten, or one synced before markers had tokens.
func (s *Store) MarkerToken(folder string) (string, error) {
	if err := checkFolder(folder); err != nil {
		return "", err
	}
	var tok string
	err := s.view(func(txn *badger.Txn) error {
		it, err := txn.Get(key(pMarker, folder))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		b, err := it.ValueCopy(nil)
		tok = string(b)
		return err
	})
	return tok, err
}

// SetMarkerToken records the token of the folder's marker; ForgetLocal
// drops it.
func (s *Store) SetMarkerToken(folder, token string) error {
	if err := checkFolder(folder); err != nil {
		return err
	}
	if token == "" || len(token) > 256 {
		return fmt.Errorf("marker token of %d bytes", len(token))
	}
	return s.update(func(txn *badger.Txn) error { return txn.Set(key(pMarker, folder), []byte(token)) })
}

// PutLocal stores local records: each gets the next sequence of the folder
// (the given Sequence is ignored), keeps its Version as given, and replaces
// the path's previous record. The records and their sequences are written
// in one transaction (a call too large for one fails with
// badger.ErrTxnTooBig; the scanner writes in batches of a few hundred). The
// block index is updated right after, in its own batches: after a crash it
// may miss or keep stale locations, which is safe because readers re-verify
// block hashes. It returns the stored records.
func (s *Store) PutLocal(folder string, recs ...Record) ([]Record, error) {
	if err := checkFolder(folder); err != nil {
		return nil, err
	}
	for i := range recs {
		if err := recs[i].Validate(); err != nil {
			return nil, fmt.Errorf("put local %s: %w", folder, err)
		}
	}
	if len(recs) == 0 {
		return nil, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	out := make([]Record, len(recs))
	type loc struct {
		h    Hash
		path string
	}
	var dels []loc
	var delta totals
	s.tmu.Lock()
	if c := s.totals[folder]; c != nil {
		delta.mark = c.mark
	}
	s.tmu.Unlock()
	err := s.update(func(txn *badger.Txn) error {
		dels = dels[:0]
		delta.Totals = Totals{}
		topKey := key(pSeqTop, folder)
		seq, _, err := getU64(txn, topKey)
		if err != nil {
			return err
		}
		for i, r := range recs {
			lk := key(pLocal, folder, []byte(r.Path))
			old, ok, err := getRecord(txn, lk)
			if err != nil {
				return err
			}
			if ok {
				if err := txn.Delete(key(pSeq, folder, u64(old.Sequence))); err != nil {
					return err
				}
				for _, b := range old.Blocks {
					dels = append(dels, loc{b.Hash, old.Path})
				}
				delta.add(&old, -1)
			}
			delta.add(&r, 1)
			seq++
			r.Sequence = seq
			v, err := EncodeRecord(&r)
			if err != nil {
				return err
			}
			if err := txn.Set(lk, v); err != nil {
				return err
			}
			if err := txn.Set(key(pSeq, folder, u64(seq)), []byte(r.Path)); err != nil {
				return err
			}
			out[i] = r
		}
		return txn.Set(topKey, u64(seq))
	})
	if err != nil {
		return nil, fmt.Errorf("put local %s: %w", folder, err)
	}
	s.tmu.Lock()
	if c := s.totals[folder]; c != nil {
		c.plus(delta.Totals)
	}
	s.tmu.Unlock()
	// Block index: final state per path is the last record of that path.
	last := map[string]*Record{}
	for i := range out {
		last[out[i].Path] = &out[i]
	}
	adds := map[string][]byte{}
	for _, r := range last {
		if r.Kind != File || r.Deleted {
			continue
		}
		for _, b := range r.Blocks {
			var v [16]byte
			binary.BigEndian.PutUint64(v[:8], uint64(b.Offset))
			binary.BigEndian.PutUint64(v[8:], uint64(b.Size))
			adds[string(blockKey(b.Hash, folder, r.Path))] = v[:]
		}
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, d := range dels {
		k := blockKey(d.h, folder, d.path)
		if _, ok := adds[string(k)]; ok {
			continue
		}
		if err := wb.Delete(k); err != nil {
			return nil, fmt.Errorf("put local %s: block index: %w", folder, err)
		}
	}
	for k, v := range adds {
		if err := wb.Set([]byte(k), v); err != nil {
			return nil, fmt.Errorf("put local %s: block index: %w", folder, err)
		}
	}
	if err := s.broke(wb.Flush()); err != nil {
		return nil, fmt.Errorf("put local %s: block index: %w", folder, err)
	}
	s.notify(folder)
	return out, nil
}

func (s *Store) notify(folder string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.changed[folder]; ok {
		close(ch)
		delete(s.changed, folder)
	}
}

// Changed returns a channel that is closed at the next PutLocal on folder.
// Call it again after it fires (and before reading, to miss nothing).
func (s *Store) Changed(folder string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.changed[folder]
	if !ok {
		ch = make(chan struct{})
		s.changed[folder] = ch
	}
	return ch
}

// scan calls fn for each item whose key starts with prefix, from start
// (inclusive, >= prefix), reading values for records. It reads pageSize
// items per transaction and calls fn outside of transactions.
func (s *Store) scan(prefix, start []byte, fn func(k, v []byte) error) error {
	type kv struct{ k, v []byte }
	seek := start
	for {
		var page []kv
		err := s.view(func(txn *badger.Txn) error {
			opt := badger.DefaultIteratorOptions
			opt.PrefetchValues = false
			opt.Prefix = prefix
			it := txn.NewIterator(opt)
			defer it.Close()
			for it.Seek(seek); it.ValidForPrefix(prefix) && len(page) < pageSize; it.Next() {
				item := it.Item()
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				page = append(page, kv{item.KeyCopy(nil), v})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range page {
			if err := fn(p.k, p.v); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		seek = append(page[len(page)-1].k, 0) // the next key after the last one
	}
}

// LocalSince calls fn for every local record of folder with Sequence >
// since, in sequence order (each path once, at its latest sequence).
func (s *Store) LocalSince(folder string, since uint64, fn func(Record) error) error {
	if err := checkFolder(folder); err != nil {
		return err
	}
	prefix := key(pSeq, folder)
	for since < ^uint64(0) {
		var page []Record
		err := s.view(func(txn *badger.Txn) error {
			opt := badger.DefaultIteratorOptions
			opt.PrefetchValues = false
			opt.Prefix = prefix
			it := txn.NewIterator(opt)
			defer it.Close()
			for it.Seek(key(pSeq, folder, u64(since+1))); it.Valid() && len(page) < pageSize; it.Next() {
				item := it.Item()
				path, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				r, ok, err := getRecord(txn, key(pLocal, folder, path))
				if err != nil {
					return err
				}
				if !ok || r.Sequence != binary.BigEndian.Uint64(item.Key()[len(prefix):]) {
					return fmt.Errorf("%w: sequence entry %q without its record", ErrCorrupt, path)
				}
				page = append(page, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		since = page[len(page)-1].Sequence
	}
	return nil
}

// WalkLocal calls fn for every local record of folder in path (byte) order.
func (s *Store) WalkLocal(folder string, fn func(Record) error) error {
	if err := checkFolder(folder); err != nil {
		return err
	}
	return s.walk(key(pLocal, folder), fn)
}

func (s *Store) walk(prefix []byte, fn func(Record) error) error {
	return s.scan(prefix, prefix, func(k, v []byte) error {
		r, err := DecodeRecord(v)
		if err != nil {
			return fmt.Errorf("%w: %q: %w", ErrCorrupt, k, err)
		}
		return fn(r)
	})
}

// Progress returns the epoch and highest sequence received from dev for
// folder (0, 0 if none).
func (s *Store) Progress(folder string, dev deviceid.ID) (epoch, seq uint64, err error) {
	if err := checkFolder(folder); err != nil {
		return 0, 0, err
	}
	err = s.view(func(txn *badger.Txn) error {
		epoch, seq, err = getProgress(txn, folder, dev)
		return err
	})
	return epoch, seq, err
}

func getProgress(txn *badger.Txn, folder string, dev deviceid.ID) (epoch, seq uint64, err error) {
	it, err := txn.Get(key(pProgress, folder, dev[:]))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	err = it.Value(func(b []byte) error {
		if len(b) != 16 {
			return fmt.Errorf("%w: progress of %s", ErrCorrupt, dev.Short())
		}
		epoch, seq = binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
		return nil
	})
	return epoch, seq, err
}

// PutRemote stores records received from dev for folder, as given. If
// epoch differs from the stored one, dev's records for the folder are
// dropped first. Progress becomes (epoch, max(seq, each record's
// Sequence)). Records are validated. A call too large for one transaction
// is split in order, each part committed with its progress, so progress
// never runs ahead of stored records.
func (s *Store) PutRemote(folder string, dev deviceid.ID, epoch uint64, recs ...Record) error {
	if err := checkFolder(folder); err != nil {
		return err
	}
	for i := range recs {
		if err := recs[i].Validate(); err != nil {
			return fmt.Errorf("put remote %s from %s: %w", folder, dev.Short(), err)
		}
	}
	var oldEpoch uint64
	var had bool
	err := s.view(func(txn *badger.Txn) error {
		e, _, err := getProgress(txn, folder, dev)
		oldEpoch, had = e, err == nil && e != 0
		return err
	})
	if err != nil {
		return err
	}
	if had && oldEpoch != epoch {
		if err := s.dropRemote(folder, dev); err != nil {
			return fmt.Errorf("put remote %s from %s: drop old epoch: %w", folder, dev.Short(), err)
		}
	}
	if err := s.putRemote(folder, dev, epoch, recs); err != nil {
		return fmt.Errorf("put remote %s from %s: %w", folder, dev.Short(), err)
	}
	return nil
}

func (s *Store) putRemote(folder string, dev deviceid.ID, epoch uint64, recs []Record) error {
	err := s.update(func(txn *badger.Txn) error {
		e, seq, err := getProgress(txn, folder, dev)
		if err != nil {
			return err
		}
		if e != epoch {
			seq = 0
		}
		for i := range recs {
			v, err := EncodeRecord(&recs[i])
			if err != nil {
				return err
			}
			if err := txn.Set(key(pRemote, folder, dev[:], []byte(recs[i].Path)), v); err != nil {
				return err
			}
			seq = max(seq, recs[i].Sequence)
		}
		var p [16]byte
		binary.BigEndian.PutUint64(p[:8], epoch)
		binary.BigEndian.PutUint64(p[8:], seq)
		return txn.Set(key(pProgress, folder, dev[:]), p[:])
	})
	if err == nil && len(recs) > 0 {
		s.noteDevice(folder, dev, true)
	}
	if errors.Is(err, badger.ErrTxnTooBig) && len(recs) > 1 {
		half := len(recs) / 2
		if err := s.putRemote(folder, dev, epoch, recs[:half]); err != nil {
			return err
		}
		return s.putRemote(folder, dev, epoch, recs[half:])
	}
	return err
}

func (s *Store) dropRemote(folder string, dev deviceid.ID) error {
	if err := s.room(); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.scanKeys(key(pRemote, folder, dev[:]), func(k []byte) error { return wb.Delete(k) })
	if err != nil {
		return err
	}
	if err := wb.Delete(key(pProgress, folder, dev[:])); err != nil {
		return err
	}
	defer s.wrote()
	if err := s.broke(wb.Flush()); err != nil {
		return err
	}
	s.noteDevice(folder, dev, false)
	return nil
}

// noteDevice records in the Devices cache, after a commit, whether dev has
// remote records in folder (a folder not loaded yet is left to its load).
func (s *Store) noteDevice(folder string, dev deviceid.ID, has bool) {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	if m, ok := s.devs[folder]; ok {
		if has {
			m[dev] = true
		} else {
			delete(m, dev)
		}
	}
}

// scanKeys calls fn with a copy of every key under prefix (one transaction).
func (s *Store) scanKeys(prefix []byte, fn func(k []byte) error) error {
	return s.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := fn(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Remote returns dev's record of path in folder.
func (s *Store) Remote(folder string, dev deviceid.ID, path string) (Record, bool, error) {
	if err := checkFolder(folder); err != nil {
		return Record{}, false, err
	}
	var (
		r  Record
		ok bool
	)
	err := s.view(func(txn *badger.Txn) error {
		var err error
		r, ok, err = getRecord(txn, key(pRemote, folder, dev[:], []byte(path)))
		return err
	})
	return r, ok, err
}

// WalkRemote calls fn for each of dev's records in folder in path order.
func (s *Store) WalkRemote(folder string, dev deviceid.ID, fn func(Record) error) error {
	if err := checkFolder(folder); err != nil {
		return err
	}
	return s.walk(key(pRemote, folder, dev[:]), fn)
}

// Devices returns the remote devices that have records in folder, in
// order.
func (s *Store) Devices(folder string) ([]deviceid.ID, error) {
	if err := checkFolder(folder); err != nil {
		return nil, err
	}
	// Held while loading, so that a write's noteDevice, which runs after
	// its commit, applies after the load.
	s.devMu.Lock()
	defer s.devMu.Unlock()
	m, ok := s.devs[folder]
	if !ok {
		devs, err := s.loadDevices(folder)
		if err != nil {
			return nil, err
		}
		m = make(map[deviceid.ID]bool, len(devs))
		for _, d := range devs {
			m[d] = true
		}
		if s.devs == nil {
			s.devs = make(map[string]map[deviceid.ID]bool)
		}
		s.devs[folder] = m
	}
	out := make([]deviceid.ID, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b deviceid.ID) int { return bytes.Compare(a[:], b[:]) })
	return out, nil
}

// loadDevices reads from disk the devices with remote records in folder.
func (s *Store) loadDevices(folder string) ([]deviceid.ID, error) {
	prefix := key(pProgress, folder)
	var devs []deviceid.ID
	err := s.scanKeys(prefix, func(k []byte) error {
		if len(k) != len(prefix)+deviceid.Size {
			return nil
		}
		devs = append(devs, deviceid.ID(k[len(prefix):]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := devs[:0]
	for _, d := range devs {
		has := false
		err := s.scanKeys(key(pRemote, folder, d[:]), func([]byte) error { has = true; return errStop })
		if err != nil && !errors.Is(err, errStop) {
			return nil, err
		}
		if has {
			out = append(out, d)
		}
	}
	return out, nil
}

var errStop = errors.New("stop")

// RemoteTops returns, for each of paths, the largest counter in the
// records of it that devs sent which carry self's counter (0 if none
// does). A new local record of such a path must go above it: these are
// versions this device wrote before its records were forgotten or lost,
// and would otherwise dominate the new one or equal it.
func (s *Store) RemoteTops(folder string, self uint64, devs []deviceid.ID, paths []string) ([]uint64, error) {
	if err := checkFolder(folder); err != nil {
		return nil, err
	}
	tops := make([]uint64, len(paths))
	if len(devs) == 0 {
		return tops, nil
	}
	err := s.view(func(txn *badger.Txn) error {
		for i, p := range paths {
			for _, d := range devs {
				r, ok, err := getRecord(txn, key(pRemote, folder, d[:], []byte(p)))
				if err != nil {
					return err
				}
				if !ok || r.Version.Counter(self) == 0 {
					continue
				}
				for _, c := range r.Version {
					tops[i] = max(tops[i], c.Value)
				}
			}
		}
		return nil
	})
	return tops, err
}

// Location is a place in a local file that holds a block.
type Location struct {
	Folder, Path string
	Offset, Size int64
}

// BlockLocations returns up to max local places holding block h (all if
// max <= 0). Callers re-verify the hash of what they read.
func (s *Store) BlockLocations(h Hash, max int) ([]Location, error) {
	locs, err := s.BlockLocationsOf([]Hash{h}, max)
	if err != nil {
		return nil, err
	}
	return locs[0], nil
}

// BlockLocationsOf is BlockLocations for several blocks: locs[i] holds up
// to max places of hs[i]. One transaction and one iterator serve them all,
// which costs a fraction of a lookup each (a batch of blocks asked for by
// a peer).
func (s *Store) BlockLocationsOf(hs []Hash, max int) ([][]Location, error) {
	locs := make([][]Location, len(hs))
	order := make([]int, len(hs))
	for i := range order {
		order[i] = i
	}
	// In key order, so that the iterator only moves forward.
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(hs[a][:], hs[b][:]) })
	err := s.view(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = []byte{pBlock}
		it := txn.NewIterator(opt)
		defer it.Close()
		prefix := make([]byte, 1+len(Hash{}))
		prefix[0] = pBlock
		for _, i := range order {
			copy(prefix[1:], hs[i][:])
			for it.Seek(prefix); it.ValidForPrefix(prefix) && (max <= 0 || len(locs[i]) < max); it.Next() {
				l, err := blockLocation(it.Item(), len(prefix))
				if err != nil {
					return err
				}
				locs[i] = append(locs[i], l)
			}
		}
		return nil
	})
	return locs, err
}

// blockLocation decodes a block index entry whose key prefix (pBlock and
// the hash) is n bytes long.
func blockLocation(item *badger.Item, n int) (Location, error) {
	k := item.Key()[n:]
	if len(k) < 2 || len(k) < 2+int(k[0])<<8|int(k[1]) {
		return Location{}, fmt.Errorf("%w: block key", ErrCorrupt)
	}
	fl := int(k[0])<<8 | int(k[1])
	l := Location{Folder: string(k[2 : 2+fl]), Path: string(k[2+fl:])}
	err := item.Value(func(v []byte) error {
		if len(v) != 16 {
			return fmt.Errorf("%w: block location", ErrCorrupt)
		}
		l.Offset, l.Size = int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
		return nil
	})
	return l, err
}

// RunGC reclaims value-log space every interval (default 10 minutes) until
// ctx is done; it then returns nil.
func (s *Store) RunGC(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = 10 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n := 0
		for ctx.Err() == nil && s.room() == nil {
			err := s.db.RunValueLogGC(0.5)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					s.log.Warn("index value log GC", "err", err)
				}
				break
			}
			n++
		}
		if n > 0 {
			s.log.Debug("index value log GC", "rewritten", n)
		}
	}
}

// badgerLogger routes badger's log to slog: errors and warnings as
// warnings, the rest at debug level.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Warn(string(bytes.TrimSpace([]byte(fmt.Sprintf(f, a...)))))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(string(bytes.TrimSpace([]byte(fmt.Sprintf(f, a...)))))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(string(bytes.TrimSpace([]byte(fmt.Sprintf(f, a...)))))
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(string(bytes.TrimSpace([]byte(fmt.Sprintf(f, a...)))))
}
