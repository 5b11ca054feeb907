package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/syncd-project/syncd/discovery"
	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// maxPollWait bounds the wait a caller may ask for.
const maxPollWait = 60 * time.Second

// Handler serves the peer API (doc.go, "Protocol") to authenticated peers.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hello", e.handleHello)
	mux.HandleFunc("GET /v1/folders/{folder}/changes", e.handleChanges)
	mux.HandleFunc("GET /v1/folders/{folder}/blocks/{hash}", e.handleBlock)
	mux.HandleFunc("POST /v1/folders/{folder}/blocks", e.handleBlocks)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dev, ok := e.o.Identify(r)
		if !ok || !e.pinned(dev) {
			http.Error(w, "unknown device", http.StatusForbidden)
			return
		}
		done, ok := e.serving()
		if !ok {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		defer done()
		ctx, cancel := context.WithCancel(context.WithValue(r.Context(), callerKey{}, dev))
		defer cancel()
		defer context.AfterFunc(e.life, cancel)()
		mux.ServeHTTP(w, r.WithContext(ctx))
	})
}

type callerKey struct{}

func caller(r *http.Request) deviceid.ID {
	id, _ := r.Context().Value(callerKey{}).(deviceid.ID)
	return id
}

func (e *Engine) pinned(dev deviceid.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.peers[dev]
	return ok
}

// listenPortHeader carries the caller's listening port in hello, so that a
// device that only knows the caller from its inbound connection (paired
// with --addr, no discovery) can dial it back.
const listenPortHeader = "Syncd-Listen-Port"

// foldersHeader carries, on hello, a digest of the folders the caller
// shares with us (folderSum), so that a change of its config reaches our
// session at once.
const foldersHeader = "Syncd-Folders"

// helloTimeout bounds one hello request.
const helloTimeout = 10 * time.Second

// seer is the part of the address book that learns addresses.
type seer interface {
	Seen(id deviceid.ID, addr string, src discovery.Source)
}

func (e *Engine) handleHello(w http.ResponseWriter, r *http.Request) {
	dev := caller(r)
	e.learnAddress(dev, r)
	h := Hello{ID: e.o.Self.String(), Name: e.o.Name, Protocol: ProtocolVersion, Folders: e.sharedIDs(dev)}
	// The caller's folders for us are not the ones our session with it
	// saw (its config changed): have the session look again now.
	if sum := r.Header.Get(foldersHeader); sum != "" {
		e.mu.Lock()
		c := e.peers[dev]
		e.mu.Unlock()
		if c != nil {
			c.mu.Lock()
			stale := c.up && c.seen != sum
			c.mu.Unlock()
			if stale {
				c.kick()
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(h)
}

// sharedIDs returns the sorted IDs of the folders shared with dev.
func (e *Engine) sharedIDs(dev deviceid.ID) []string {
	ids := []string{}
	e.mu.Lock()
	for id, f := range e.folders {
		if f.hasPeer(dev) {
			ids = append(ids, id)
		}
	}
	e.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// handleChanges streams this device's records of the folder with sequence
// above since; when there are none it waits up to wait for the next change.
func (e *Engine) handleChanges(w http.ResponseWriter, r *http.Request) {
	fid := r.PathValue("folder")
	if e.sharedWith(fid, caller(r)) == nil {
		http.NotFound(w, r) // the same answer as for a folder that does not exist
		return
	}
	q := r.URL.Query()
	since, err1 := strconv.ParseUint(q.Get("since"), 10, 64)
	epoch, err2 := strconv.ParseUint(q.Get("epoch"), 10, 64)
	wait, err3 := time.ParseDuration(q.Get("wait"))
	if err1 != nil || err2 != nil || err3 != nil || wait < 0 {
		http.Error(w, "bad since, epoch or wait", http.StatusBadRequest)
		return
	}
	wait = min(wait, maxPollWait)
	st := e.o.Store
	cur, err := st.Epoch(fid)
	if err != nil {
		http.Error(w, "index unavailable", http.StatusServiceUnavailable)
		return
	}
	if epoch == cur && since > 0 {
		if cur, err = e.checkRolledBack(fid, cur, since); err != nil {
			http.Error(w, "index unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	if epoch != cur {
		since = 0
	}
	changed := st.Changed(fid) // before reading, so no change slips between
	w.Header().Set("Syncd-Epoch", strconv.FormatUint(cur, 10))
	w.Header().Set("Content-Type", "application/x-syncd-records")
	bw := bufio.NewWriterSize(w, 64<<10)
	n, err := e.writeChanges(bw, fid, cur, since)
	if err == nil && n == 0 && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-changed:
			t.Stop()
			_, err = e.writeChanges(bw, fid, cur, since)
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if err == nil {
		bw.Flush()
	}
}

// checkRolledBack gives the folder a new epoch, and returns it, when a
// peer asks for its records of epoch cur above since while the index's
// top is below since: the peer was served records this index no longer
// has, so it was rolled back with the folder's .syncd (a snapshot of the
// whole device restored), which checkServed cannot tell. Its new records
// would reuse sequences the peer believes it has.
//
// A peer's word is all it takes, so it is taken once per folder per run
// (a restored device restarts): a peer that miscounts, or any peer
// asking so on purpose, cannot make every peer fetch every record again
// and again.
func (e *Engine) checkRolledBack(fid string, cur, since uint64) (uint64, error) {
	e.rollbackMu.Lock()
	defer e.rollbackMu.Unlock()
	st := e.o.Store
	now, err := st.Epoch(fid)
	if err != nil || now != cur {
		return now, err // another request gave it a new one already
	}
	top, err := st.LocalSeq(fid)
	if err != nil || since <= top || e.rolledBack[fid] {
		return cur, err
	}
	e.o.Logger.Warn("a peer was sent records of this folder that the index no longer has (restored from a snapshot?); peers will fetch its records again",
		"folder", fid, "index_top", top, "sent_top", since)
	if err := st.ResetEpoch(fid); err != nil {
		return cur, err // a later request tries again
	}
	if e.rolledBack == nil {
		e.rolledBack = map[string]bool{}
	}
	e.rolledBack[fid] = true
	return st.Epoch(fid)
}

var errEnoughForNow = errors.New("enough records for one response")

// writeChanges writes the folder's local records above since, of epoch,
// that are on disk: up to durableTop.
func (e *Engine) writeChanges(w *bufio.Writer, fid string, epoch, since uint64) (int, error) {
	top, err := e.durableTop(fid, epoch)
	if err != nil || top <= since {
		return 0, err
	}
	n := 0
	err = e.o.Store.LocalSince(fid, since, func(rec index.Record) error {
		if n >= maxPerPoll/2 || rec.Sequence > top {
			return errEnoughForNow
		}
		rec.Inode, rec.Ctime = 0, 0
		n++
		return writeFrame(w, &rec)
	})
	if errors.Is(err, errEnoughForNow) {
		err = nil
	}
	return n, err
}

// durableTop returns the folder's top local sequence once every record up
// to it is on disk. A peer remembers the last sequence it was served: were
// a served record lost in a power cut (the index syncs to disk only at
// such points), its sequence would be handed out again to another record,
// which that peer would never ask for. The index is synced at most once
// per change, whatever the number of peers asking.
func (e *Engine) durableTop(fid string, epoch uint64) (uint64, error) {
	top, err := e.o.Store.LocalSeq(fid)
	if err != nil {
		return 0, err
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if d, ok := e.durable[fid]; ok && d.epoch == epoch && d.top >= top {
		return top, nil
	}
	if err := e.o.Store.Sync(); err != nil {
		return 0, fmt.Errorf("sync the index: %w", err)
	}
	if h := e.o.hooks.afterIndexSync; h != nil {
		h()
	}
	e.durable[fid] = durableSeq{epoch, top}
	e.noteServed(fid, epoch, top)
	return top, nil
}

// handleBlock serves a block of the folder by hash, from any local file of
// that folder that holds it.
func (e *Engine) handleBlock(w http.ResponseWriter, r *http.Request) {
	fid := r.PathValue("folder")
	f := e.sharedWith(fid, caller(r))
	if f == nil {
		http.NotFound(w, r)
		return
	}
	h, err := index.ParseHash(r.PathValue("hash"))
	if err != nil {
		http.Error(w, "bad hash", http.StatusBadRequest)
		return
	}
	buf, ok := e.readLocalBlock(fid, index.Block{Hash: h}, false)
	if !ok {
		http.NotFound(w, r)
		return
	}
	defer putBuf(buf)
	if err := waitN(r.Context(), e.o.SendRate, len(buf)); err != nil {
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.Header().Set("Content-Type", "application/octet-stream")
	n, _ := w.Write(buf)
	f.sent.add(time.Now(), int64(n))
}

// maxBlockBatch bounds the blocks one batch request may ask for.
const maxBlockBatch = 64

// A batch answer is written through a batchBuf buffer: written block by
// block, every small block cost the connection three or four writes (the
// chunk header, the rest of a 4 KiB buffer, the block, each its own TLS
// record and syscall). Gathered, the answer leaves in writes of batchBuf,
// which the transport sends in large TCP writes (transport/coalesce.go).
const batchBuf = 256 << 10

var batchWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, batchBuf) }}

// handleBlocks serves several blocks in one answer, for the small files of
// a pull (one request per file was most of the cost of 10,000 small
// files). The body is 1 to maxBlockBatch hashes of 32 bytes; the answer holds,
// for each in order, a uvarint length (0: not here) and that many bytes.
func (e *Engine) handleBlocks(w http.ResponseWriter, r *http.Request) {
	fid := r.PathValue("folder")
	f := e.sharedWith(fid, caller(r))
	if f == nil {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(maxBlockBatch*len(index.Hash{})+1)))
	if err != nil || len(body) == 0 || len(body)%len(index.Hash{}) != 0 || len(body) > maxBlockBatch*len(index.Hash{}) {
		http.Error(w, fmt.Sprintf("want 1 to %d hashes of %d bytes", maxBlockBatch, len(index.Hash{})), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	bw := batchWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Flush()
		bw.Reset(nil)
		batchWriters.Put(bw)
	}()
	hs := make([]index.Hash, len(body)/len(index.Hash{}))
	for i := range hs {
		copy(hs[i][:], body[i*len(index.Hash{}):])
	}
	locs, err := e.o.Store.BlockLocationsOf(hs, maxLocations)
	if err != nil {
		locs = make([][]index.Location, len(hs)) // answered as not here
	}
	fr := e.folderReader(fid)
	defer fr.close()
	var hdr [binary.MaxVarintLen64]byte
	for i, h := range hs {
		buf, ok := fr.read(locs[i], index.Block{Hash: h}, false)
		if !ok {
			if _, err := bw.Write(hdr[:binary.PutUvarint(hdr[:], 0)]); err != nil {
				return
			}
			continue
		}
		err := waitN(r.Context(), e.o.SendRate, len(buf))
		if err == nil {
			_, err = bw.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(buf)))])
		}
		if err == nil {
			_, err = bw.Write(buf)
		}
		if err == nil {
			f.sent.add(time.Now(), int64(len(buf)))
		}
		if err == nil && limited(e.o.SendRate) {
			// Under a send rate the buffer would fill slowly: each block
			// goes out once it is paid for, as the receiver's stall timer
			// expects.
			if err = bw.Flush(); err == nil {
				if ferr := http.NewResponseController(w).Flush(); !errors.Is(ferr, http.ErrNotSupported) {
					err = ferr
				}
			}
		}
		putBuf(buf)
		if err != nil {
			return
		}
	}
}

// readLocalBlock reads block b from a local file of folder fid that the
// index says holds it. When verify is set (the puller reusing local data),
// the bytes are checked against the hash. The returned buffer comes from
// the pool.
func (e *Engine) readLocalBlock(fid string, b index.Block, verify bool) ([]byte, bool) {
	locs, err := e.o.Store.BlockLocations(b.Hash, maxLocations)
	if err != nil {
		return nil, false
	}
	r := e.folderReader(fid)
	defer r.close()
	return r.read(locs, b, verify)
}

// maxLocations is how many places of a block readLocalBlock tries.
const maxLocations = 4

// folderReader reads blocks from the files of one folder by their indexed
// paths. The folder's root is opened once, on the first read, and each
// file from it through plain directories only (openat2 with
// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS, or a walk of its parents where
// openat2 is missing): a directory that someone replaced by a symlink
// since the scan is refused, not followed. Following it served a peer the
// bytes of whatever file sat at the same path and offset outside the
// folder.
type folderReader struct {
	store  *index.Store
	stats  *statCache // the folder's; nil when the folder is not here
	fid    string
	root   string
	ok     bool // the folder exists here
	rootFD int  // -1 until opened
	failed bool // the root could not be opened
}

// statCache keeps the stat part of a folder's local records that block
// serving checked files against: every block of a large file, each its
// own request, would read and decode its record again. It is dropped at
// the folder's next local write (Store.Changed); an entry the file does
// not match is read again before a block is refused (RefreshLocal writes
// a new change time without that signal).
type statCache struct {
	mu      sync.Mutex
	changed <-chan struct{}         // guarded by mu
	recs    map[string]index.Record // guarded by mu; nil: empty
}

// maxStatCache bounds the entries of a statCache.
const maxStatCache = 4096

func (e *Engine) folderReader(fid string) *folderReader {
	r := &folderReader{store: e.o.Store, fid: fid, rootFD: -1}
	if f := e.folder(fid); f != nil {
		r.root, r.ok, r.stats = f.cfg.Root, true, &f.stats
	}
	return r
}

func (r *folderReader) close() {
	if r.rootFD >= 0 {
		unix.Close(r.rootFD)
		r.rootFD = -1
	}
}

// read is readLocalBlock from the places locs that the index gave, those
// in r's folder only.
func (r *folderReader) read(locs []index.Location, b index.Block, verify bool) ([]byte, bool) {
	for _, l := range locs {
		if l.Folder != r.fid || !r.ok || l.Size <= 0 || l.Size > index.MaxBlockSize || checkRemotePath(l.Path) != nil {
			continue
		}
		buf := getBuf(int(l.Size))
		if r.readAt(l.Path, buf, l.Offset, !verify) && (!verify || hashOf(buf) == b.Hash) {
			return buf, true
		}
		putBuf(buf)
	}
	return nil, false
}

// readAt reads exactly len(buf) bytes at off from the regular file rel
// (folder-relative). Anything else put where the index has a file is
// refused; the open does not wait for a FIFO's writer (O_NONBLOCK). With
// asRecorded, the file must also be as its record says (recorded), else
// nothing is read: a file changed since its scan is not served unread and
// unhashed, since it may now hold anything (a secret written into a file
// the user has since ignored, another disk's file mounted at the folder's
// path); the peer takes the block from elsewhere or after the next scan.
func (r *folderReader) readAt(rel string, buf []byte, off int64, asRecorded bool) bool {
	if r.rootFD < 0 {
		if r.failed {
			return false
		}
		fd, err := openRoot(r.root)
		if err != nil {
			r.failed = true
			return false
		}
		r.rootFD = fd
	}
	fd, err := openBeneath(r.rootFD, r.root, rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err != nil {
		return false
	}
	file := os.NewFile(uintptr(fd), nativePath(r.root, rel))
	defer file.Close()
	fi, err := file.Stat()
	if err != nil || !fi.Mode().IsRegular() || asRecorded && !r.recorded(rel, fi) {
		return false
	}
	_, err = file.ReadAt(buf, off)
	return err == nil
}

// recorded reports whether fi, the open file rel, is what the folder's
// record of rel describes: size, mtime, inode and change time (those the
// record has).
func (r *folderReader) recorded(rel string, fi fs.FileInfo) bool {
	if r.stats == nil {
		return false
	}
	if rec, ok := r.stats.get(rel); ok && matchesRecord(fi, rec) {
		return true
	}
	rec, ok := r.stats.load(r.store, r.fid, rel)
	return ok && matchesRecord(fi, rec)
}

// matchesRecord reports whether fi is the live file rec describes.
func matchesRecord(fi fs.FileInfo, rec index.Record) bool {
	return !rec.Deleted && rec.Kind == index.File && fi.Size() == rec.Size && fi.ModTime().UnixNano() == rec.ModTime &&
		(rec.Inode == 0 || inodeOf(fi) == rec.Inode) && (rec.Ctime == 0 || index.Ctime(fi) == rec.Ctime)
}

// get returns the cached record of rel, if the folder has not been
// written since it was cached.
func (c *statCache) get(rel string) (index.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		return index.Record{}, false
	}
	select {
	case <-c.changed:
		c.changed, c.recs = nil, nil
		return index.Record{}, false
	default:
	}
	rec, ok := c.recs[rel]
	return rec, ok
}

// load reads the record of rel from the store and caches it.
func (c *statCache) load(st *index.Store, fid, rel string) (index.Record, bool) {
	ch := st.Changed(fid) // before the read: a write after it drops the entry
	rec, ok, err := st.LocalStat(fid, rel)
	if err != nil || !ok {
		return index.Record{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed != ch || len(c.recs) >= maxStatCache {
		c.changed, c.recs = ch, make(map[string]index.Record)
	}
	c.recs[rel] = rec
	return rec, true
}

// limited reports whether lim limits anything.
func limited(lim *rate.Limiter) bool { return lim != nil && lim.Limit() != rate.Inf }

// waitN takes n bytes from a limiter in steps no larger than its burst.
func waitN(ctx context.Context, lim *rate.Limiter, n int) error {
	if !limited(lim) {
		return nil
	}
	for n > 0 {
		step := min(n, lim.Burst())
		if err := lim.WaitN(ctx, step); err != nil {
			return err
		}
		n -= step
	}
	return nil
}

// learnAddress records where the caller listens (its IP as seen here and the
// port it announces) as a verified address (it came over a pinned TLS
// connection), and wakes a session to it that waits to redial.
func (e *Engine) learnAddress(dev deviceid.ID, r *http.Request) {
	port, err := strconv.Atoi(r.Header.Get(listenPortHeader))
	if err != nil || port <= 0 || port > 65535 {
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return
	}
	if b, ok := e.o.Book.(seer); ok {
		b.Seen(dev, net.JoinHostPort(host, strconv.Itoa(port)), discovery.SourceVerified)
	}
	e.wakeDial(dev)
}
