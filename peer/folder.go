package peer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// Folder states shown by status.
const (
	StateStarting = "starting"
	StateScanning = "scanning"
	StateSyncing  = "syncing"
	StateIdle     = "idle"
	StateError    = "error"
)

// folder runs one shared folder: it serialises scans and pulls, so the
// scanner and the puller never race on the same index records.
type folder struct {
	e   *Engine
	cfg FolderConfig // Root and ID never change; Peers is guarded by mu

	scanReq chan []string // from the watcher and Rescan; nil slice = full scan
	commits *commits      // pending records of pulled files
	kickc   chan struct{} // remote records arrived or a peer connected
	dirtied chan struct{} // markDirty ran: for a pass waiting for more work

	mu          sync.Mutex // guards the fields below
	peers       map[deviceid.ID]bool
	dirty       map[string]bool // paths whose remote records changed since the last pull
	allDirty    bool            // evaluate every known path
	state       string
	lastErr     string
	needFiles   int
	needBytes   int64
	doneBytes   int64
	conflicts   int
	localFiles  int64
	localBytes  int64
	pullStart   time.Time
	countsStale bool
	scanErr     string // per-path problems of the last scan, shown until a full scan has none
	watchErr    string // why file events are not watched, if they are not
	lastSync    time.Time
	errLogged   map[string]bool
	temps       map[string]uint64 // temp files kept for a resumed pull (absolute path -> pass)
	pass        uint64            // pull passes started
	// pf fetches small files' blocks ahead while a wave of files is pulled
	// (set by applyFiles before its workers start, nil otherwise).
	pf *prefetcher
	// rootFD is the folder's root directory, open (O_PATH) during a pull
	// pass, for openParent; -1 otherwise or when it could not be opened.
	rootFD  int
	rootErr error // why rootFD is -1 during a pass
	// own notes the files and directories the puller installed, so that
	// the watcher's reports of them cost no scan (ownwrites.go).
	own ownWrites
	// sc is the folder's scanner, set by run before anything else
	// (applyDir has it watch the directories it makes).
	sc *index.Scanner
}

func newFolder(e *Engine, fc FolderConfig) *folder {
	f := &folder{
		e:           e,
		cfg:         fc,
		scanReq:     make(chan []string, 64),
		kickc:       make(chan struct{}, 1),
		dirtied:     make(chan struct{}, 1),
		dirty:       map[string]bool{},
		allDirty:    true,
		countsStale: true,
		state:       StateStarting,
		errLogged:   map[string]bool{},
		temps:       map[string]uint64{},
		rootFD:      -1,
	}
	f.commits = newCommits(f)
	f.setPeers(fc.Peers)
	return f
}

func (f *folder) setPeers(ids []deviceid.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = map[deviceid.ID]bool{}
	for _, id := range ids {
		f.peers[id] = true
	}
}

func (f *folder) hasPeer(id deviceid.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peers[id]
}

func (f *folder) kick() {
	select {
	case f.kickc <- struct{}{}:
	default:
	}
}

func (f *folder) markDirty(paths ...string) {
	f.mu.Lock()
	for _, p := range paths {
		f.dirty[p] = true
	}
	f.mu.Unlock()
	select {
	case f.dirtied <- struct{}{}:
	default:
	}
	f.kick()
}

func (f *folder) setState(s string) {
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
}

// fail records an error a user must see; each distinct message is logged
// once until the folder recovers.
func (f *folder) fail(err error) {
	msg := err.Error()
	f.mu.Lock()
	f.state, f.lastErr = StateError, msg
	seen := f.errLogged[msg]
	f.errLogged[msg] = true
	f.mu.Unlock()
	if !seen {
		f.e.o.Logger.Error("folder problem", "folder", f.cfg.ID, "err", msg)
	}
}

// markerDir is the folder's marker: syncd's own directory at its root,
// which also holds the trash. A folder whose marker is gone is taken to be
// not there (a drive not mounted, a share not connected, leaving an empty
// mount point): it is neither scanned for deletions nor pulled into, so
// that its files are not deleted on every other device and nothing is
// written onto the disk below the mount point.
func markerDir(root string) string { return nativePath(root, ".syncd") }

// errNoMarker is wrapped by present when the root is there but its marker
// is not.
var errNoMarker = errors.New("folder marker missing")

// present reports whether the folder's root and its marker are there. It
// is the scanner's Present guard, asked before any tombstone is written.
func (f *folder) present() error {
	fi, err := os.Stat(f.cfg.Root)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("folder path %s is missing or not a directory; create it or fix the path in the config", f.cfg.Root)
	}
	if fi, err := os.Lstat(markerDir(f.cfg.Root)); err == nil && fi.IsDir() {
		return nil
	}
	return fmt.Errorf("%w: %s is gone, as if its disk were not mounted; syncing this folder is paused so that no file is deleted on other devices; mount the disk, or create that directory to sync the folder as it is now",
		errNoMarker, markerDir(f.cfg.Root))
}

// waitPresent returns once the folder is present, or false when ctx ends.
// It looks again every 10 seconds, and at once on a rescan request or news
// from a peer. A folder that never had a record here (new, or never
// scanned) gets its marker made.
func (f *folder) waitPresent(ctx context.Context) bool {
	for ctx.Err() == nil {
		err := f.present()
		if errors.Is(err, errNoMarker) {
			if seq, serr := f.e.o.Store.LocalSeq(f.cfg.ID); serr == nil && seq == 0 {
				if err = os.Mkdir(markerDir(f.cfg.Root), 0o700); err == nil {
					continue
				}
				err = fmt.Errorf("cannot make the folder marker %s (%w); check the folder's permissions", markerDir(f.cfg.Root), err)
			}
		}
		if err == nil {
			return true
		}
		f.fail(err)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		case <-f.scanReq: // the full scan after the wait covers it
		case <-f.kickc:
		}
	}
	return false
}

// requestScan asks the run loop for a scan of paths (nil = everything).
func (f *folder) requestScan(paths []string) {
	select {
	case f.scanReq <- paths:
	default:
		// Queue full: fall back to a full scan, which covers everything queued.
		select {
		case f.scanReq <- nil:
		default:
		}
	}
}

// run is the folder's loop: scan, then pull what the peers have, then wait
// for file events, remote changes or the periodic rescan.
func (f *folder) run(ctx context.Context) {
	st := f.e.o.Store
	sc := index.NewScanner(st, f.cfg.ID, f.cfg.Root, index.ScanOptions{Logger: f.e.o.Logger, Self: f.e.o.Self.Key(), Now: f.e.o.Now, Present: f.present})
	f.sc = sc
	if !f.waitPresent(ctx) {
		return
	}
	os.MkdirAll(trashDir(f.cfg.Root), 0o700)
	f.findTemps()

	var wg sync.WaitGroup
	defer wg.Wait()
	if f.e.o.Watch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			degraded := func(err error) {
				f.mu.Lock()
				f.watchErr = fmt.Sprintf("watching for changes stopped (%v); changes are found by periodic rescans only", err)
				f.mu.Unlock()
			}
			err := sc.Watch(ctx, index.WatchOptions{Logger: f.e.o.Logger, Debounce: f.e.o.Debounce, FullEvery: f.e.o.FullRescan, Degraded: degraded},
				func(ctx context.Context, paths []string) { f.requestScan(paths) })
			if err != nil && ctx.Err() == nil {
				f.fail(fmt.Errorf("watching for changes stopped (%v); changes are picked up by periodic rescans", err))
			}
		}()
	}
	f.scan(ctx, sc, nil)
	f.cleanTrash()
	full := time.NewTicker(f.e.o.FullRescan)
	defer full.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := time.Second
	for ctx.Err() == nil {
		if f.present() != nil {
			if !f.waitPresent(ctx) {
				return
			}
			sc.Rewatch()         // a disk mounted again has other directories
			f.scan(ctx, sc, nil) // catch up with what changed while it was away
		}
		failed := f.pull(ctx)
		if ctx.Err() == nil {
			f.dropTemps()
		}
		if failed > 0 {
			retry.Reset(backoff)
			backoff = min(backoff*2, time.Minute)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case paths := <-f.scanReq:
			f.scan(ctx, sc, f.drainScans(paths))
		case <-f.kickc:
		case <-retry.C:
			f.mu.Lock()
			f.allDirty = true
			f.mu.Unlock()
		case <-full.C:
			f.scan(ctx, sc, nil)
			f.cleanTrash()
			f.mu.Lock()
			f.allDirty = true
			f.mu.Unlock()
		}
	}
}

// drainScans merges queued scan requests; any full request makes it full.
func (f *folder) drainScans(first []string) []string {
	if first == nil {
		return nil
	}
	paths := slices.Clone(first)
	for {
		select {
		case more := <-f.scanReq:
			if more == nil {
				return nil
			}
			paths = append(paths, more...)
		default:
			slices.Sort(paths)
			return slices.Compact(paths)
		}
	}
}

func (f *folder) scan(ctx context.Context, sc *index.Scanner, paths []string) {
	if paths == nil {
		f.own.reset()
	} else if paths = f.own.filter(f.cfg.Root, paths); len(paths) == 0 {
		return // only our own writes
	}
	f.setState(StateScanning)
	res, err := sc.Scan(ctx, paths...)
	if err != nil {
		if ctx.Err() == nil {
			f.fail(fmt.Errorf("scan: %w", err))
		}
		return
	}
	if res.Changed+res.Deleted > 0 {
		f.e.o.Logger.Debug("scanned", "folder", f.cfg.ID, "changed", res.Changed, "deleted", res.Deleted)
	}
	f.mu.Lock()
	switch {
	case res.Errors > 0:
		f.scanErr = fmt.Sprintf("%d paths could not be read (permission denied?) and are not synced; the log names them", res.Errors)
	case paths == nil:
		f.scanErr = ""
	}
	f.mu.Unlock()
	f.setState(StateIdle)
	if res.Changed+res.Deleted > 0 {
		f.staleCounts()
	}
}

func (f *folder) staleCounts() {
	f.mu.Lock()
	f.countsStale = true
	f.mu.Unlock()
}

// count refreshes the local totals shown by status when the index changed
// since the last count; status is the only reader, so the walk over the
// folder's records costs nothing while nobody looks.
func (f *folder) count() {
	f.mu.Lock()
	if !f.countsStale {
		f.mu.Unlock()
		return
	}
	f.countsStale = false
	f.mu.Unlock()
	var files, bytes int64
	conflicts := 0
	err := f.e.o.Store.WalkLocal(f.cfg.ID, func(r index.Record) error {
		if r.Deleted || r.Kind != index.File {
			return nil
		}
		files++
		bytes += r.Size
		if isConflictCopy(r.Path) {
			conflicts++
		}
		return nil
	})
	if err != nil {
		return
	}
	f.mu.Lock()
	f.localFiles, f.localBytes, f.conflicts = files, bytes, conflicts
	f.mu.Unlock()
}

// Rescan asks the folder to scan paths (all when none); for tests and the
// control API.
func (e *Engine) Rescan(folderID string, paths ...string) {
	if f := e.folder(folderID); f != nil {
		if len(paths) == 0 {
			paths = nil
		}
		f.requestScan(paths)
	}
}

// trashDir is where deleted and overwritten content is kept.
func trashDir(root string) string { return nativePath(root, ".syncd/trash") }

// cleanTrash removes trash entries older than TrashKeep.
func (f *folder) cleanTrash() {
	cutoff := f.e.o.Now().Add(-f.e.o.TrashKeep)
	dir := trashDir(f.cfg.Root)
	_ = walkFiles(dir, func(p string, fi os.FileInfo) {
		if stamp, ok := trashStamp(p); ok && stamp.Before(cutoff) {
			os.Remove(p)
		}
	})
}

const trashStampLayout = "20060102-150405.000000000"

func trashStamp(p string) (time.Time, bool) {
	i := strings.LastIndex(p, "~")
	if i < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(trashStampLayout, p[i+1:])
	return t, err == nil
}
