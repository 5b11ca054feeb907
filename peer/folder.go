package peer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/index/ignore"
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
	sent  meter     // block bytes served to peers, for status
	stats statCache // what block serving checks files against (api.go)
	e     *Engine
	cfg   FolderConfig // Root and ID never change; Peers is guarded by mu

	scanReq chan []string // from the watcher and Rescan; nil slice = full scan
	// scanOverflow: a request found scanReq full; the next drain scans all.
	scanOverflow atomic.Bool
	commits      *commits        // pending records of pulled files
	dels         *delBatch       // deletions of the running pass not yet recorded (pull's goroutine only)
	rmdirLater   map[string]bool // directories a deletion found not empty (pull's goroutine only)
	revive       map[string]bool // directories to scan when the pass ends (reviveParents), guarded by mu
	ign          *ignore.Matcher // this device's ignore patterns, read at each pass's start (pull's goroutine only)
	kickc        chan struct{}   // remote records arrived or a peer connected
	dirtied      chan struct{}   // markDirty ran: for a pass waiting for more work

	mu         sync.Mutex // guards the fields below
	peers      map[deviceid.ID]bool
	dirty      map[string]bool // paths whose remote records changed since the last pull
	allDirty   bool            // evaluate every known path
	state      string
	lastErr    string
	needFiles  int // changes of the running pass still to apply: files and symlinks (needCount)
	needDirs   int // directories
	needDels   int // deletions
	needBytes  int64
	doneBytes  int64
	conflicts  int
	localFiles int64
	localBytes int64
	pullStart  time.Time
	// What the pass's files add to the local totals once recorded
	// (passFiles, passBytes) and what of it the commits have recorded.
	passFiles, passBytes           int64
	committedFiles, committedBytes int64
	counting                       chan struct{} // closed when the running first count ends; nil when none runs
	counted                        bool          // localFiles, localBytes and conflicts are the index's totals
	countFailed                    time.Time     // when the last count failed
	scanErr                        string        // per-path problems of the last scan, shown until a full scan has none
	watchErr                       string        // why file events are not watched, if they are not
	lastSync                       time.Time
	errLogged                      map[string]bool
	// caseHeld holds the paths the running or last pass did not pull
	// because their names clash in a folder that ignores case (casefold.go);
	// caseSaid those logged (bounded).
	caseHeld map[string]bool
	caseSaid map[string]bool
	// nameFit caches, for unportable names (pull.go), whether the
	// folder's file system takes them; tooLong holds those said not to,
	// and badNames the peers' paths not pulled for one (all bounded).
	nameFitsMu sync.Mutex
	nameFit    map[string]bool
	tooLong    map[string]bool
	badNames   map[string]bool
	temps      map[string]uint64 // temp files kept for a resumed pull (absolute path -> pass)
	// sources are the files the running pull pass deletes, by content, for
	// new files to take by a hard link (move.go).
	sources map[index.Hash][]moveSource
	// trashed are the trash entries of files deleted lately, by content,
	// as move sources too; trashQ holds them oldest first.
	trashed map[index.Hash][]*trashSource
	trashQ  []*trashSource
	moves   int    // new files that took a move source (for the pass's log line)
	pass    uint64 // pull passes started
	// pf fetches small files' blocks ahead while a wave of files is pulled
	// (set by applyFiles before its workers start, nil otherwise).
	pf *prefetcher
	// cases is the pass's view of the names here when the folder ignores
	// case (casefold.go), nil otherwise.
	cases *caseView
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
	// markerMu serialises checkMarker, which may write the marker file.
	markerMu sync.Mutex
	// root identifies the root directory watched (run's goroutine only),
	// and awaySeen is the error of a scan that found the folder away
	// (likewise): either tells run to watch again and scan in full.
	root     fileID
	awaySeen string
}

func newFolder(e *Engine, fc FolderConfig) *folder {
	f := &folder{
		e:          e,
		cfg:        fc,
		scanReq:    make(chan []string, 64),
		kickc:      make(chan struct{}, 1),
		dirtied:    make(chan struct{}, 1),
		dirty:      map[string]bool{},
		allDirty:   true,
		state:      StateStarting,
		errLogged:  map[string]bool{},
		caseHeld:   map[string]bool{},
		caseSaid:   map[string]bool{},
		badNames:   map[string]bool{},
		rmdirLater: map[string]bool{},
		temps:      map[string]uint64{},
		rootFD:     -1,
	}
	f.commits = newCommits(f)
	f.setPeers(fc.Peers)
	return f
}

func (f *folder) setPeers(ids []deviceid.ID) {
	f.mu.Lock()
	old := f.peers
	f.peers = map[deviceid.ID]bool{}
	for _, id := range ids {
		f.peers[id] = true
	}
	changed := !maps.Equal(old, f.peers)
	if changed {
		// A device added back may hold records this device has and
		// skipped while it was out of the folder; one taken out may have
		// held the winner of a path. Its records are not sent again (the
		// stream resumes where it was): every path is evaluated anew.
		f.allDirty = true
	}
	f.mu.Unlock()
	if changed {
		select {
		case f.dirtied <- struct{}{}:
		default:
		}
		f.kick()
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
// away (a drive not mounted, a share not connected, leaving an empty mount
// point), not emptied: it is neither scanned nor pulled into, so that its
// files are not deleted on every other device and nothing is written onto
// the disk below the mount point. Only waitPresent makes a marker.
func markerDir(root string) string { return nativePath(root, ".syncd") }

// presenceEvery is how often a folder that is away is looked at again, and
// an idle one checked for being away.
var presenceEvery = 10 * time.Second // a variable for the tests

// awayError says why a folder is taken to be away; its text is for the
// user.
type awayError struct {
	msg      string
	noMarker bool // the root is there, its marker does not exist
}

func (e *awayError) Error() string { return e.msg }

// present reports whether the folder's root and its marker are there (an
// *awayError if not). It is also the scanner's Present guard.
func (f *folder) present() error {
	fi, err := os.Stat(f.cfg.Root)
	if err == nil && !fi.IsDir() {
		return &awayError{msg: fmt.Sprintf("folder path %s is not a directory; move what is there away or fix the path in the config", f.cfg.Root)}
	}
	if err != nil {
		return &awayError{msg: fmt.Sprintf("folder path %s is missing or not a directory; create it or fix the path in the config", f.cfg.Root)}
	}
	m := markerDir(f.cfg.Root)
	fi, err = os.Lstat(m)
	switch {
	case err == nil && fi.IsDir():
		return f.checkMarker()
	case errors.Is(err, fs.ErrNotExist):
		return &awayError{noMarker: true, msg: fmt.Sprintf("%s is gone, as if the folder's disk were not mounted; syncing this folder is paused so that nothing is deleted on other devices; mount the disk, or if the folder was moved here, move its .syncd along; only if it was emptied on purpose, create that directory (what is missing here is then deleted on every device)", m)}
	case err == nil:
		return &awayError{msg: fmt.Sprintf("%s is not a directory; syncd keeps the folder's trash there and uses it to tell that the folder's disk is mounted; syncing this folder is paused until it is a directory again", m)}
	default:
		return &awayError{msg: fmt.Sprintf("cannot check the folder marker %s (%v); syncing this folder is paused until it can", m, errnoOf(err))}
	}
}

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

// rootIdentity is root's fileID, zero if it cannot be had.
func rootIdentity(root string) fileID {
	fi, err := os.Stat(root)
	if err != nil {
		return fileID{}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{uint64(st.Dev), st.Ino}
}

// rootRemounted reports whether the folder's root is now another directory
// than the one run watches: a disk unmounted and mounted again between two
// looks, whose directories the watcher no longer sees.
func (f *folder) rootRemounted() bool {
	id := rootIdentity(f.cfg.Root)
	return id != fileID{} && f.root != fileID{} && id != f.root
}

// waitPresent returns once the folder is present, or false when ctx ends.
// It looks again every presenceEvery, and at once on a rescan request or
// news from a peer. A folder that never had a record here (new, or never
// scanned) gets its marker made. The error it showed is cleared when the
// folder is back.
func (f *folder) waitPresent(ctx context.Context) bool {
	var shown string
	for ctx.Err() == nil {
		err := f.present()
		if ae, ok := err.(*awayError); ok && ae.noMarker {
			if f.neverSynced() {
				err = f.makeMarker()
				if err == nil {
					continue
				}
			}
		}
		if err == nil {
			if shown != "" {
				f.cleared(shown)
				f.e.o.Logger.Info("folder is back; syncing resumes", "folder", f.cfg.ID)
			}
			return true
		}
		shown = err.Error()
		f.fail(err)
		select {
		case <-ctx.Done():
		case <-time.After(presenceEvery):
		case <-f.scanReq: // the full scan after the wait covers it
		case <-f.kickc:
		}
	}
	return false
}

// makeMarker makes the marker of a folder that never synced here, once
// Options.NewRoot accepts its root.
func (f *folder) makeMarker() error {
	if check := f.e.o.NewRoot; check != nil {
		if err := check(f.cfg.Root); err != nil {
			return err
		}
	}
	if err := os.Mkdir(markerDir(f.cfg.Root), 0o700); err != nil {
		return fmt.Errorf("cannot make the folder marker %s (%v); check the folder's permissions", markerDir(f.cfg.Root), errnoOf(err))
	}
	return nil
}

// finishForget completes a forget of the folder's records that a crash or
// an error cut short (index.Store.ForgetPending) before the folder runs on
// what is left of them; it tries again every presenceEvery while that
// fails, and returns false when ctx ends. A folder's runs and forgets never
// overlap (Engine.startTask).
func (f *folder) finishForget(ctx context.Context) bool {
	st := f.e.o.Store
	var shown string
	for ctx.Err() == nil {
		pending, err := st.ForgetPending(f.cfg.ID)
		if err == nil && pending {
			if err = st.ForgetLocal(f.cfg.ID); err == nil {
				f.e.o.Logger.Info("finished forgetting the folder's old index; it starts over", "folder", f.cfg.ID)
			}
		}
		if err == nil {
			if shown != "" {
				f.cleared(shown)
			}
			return true
		}
		err = fmt.Errorf("the index of this folder was being forgotten and that cannot be finished (%v); syncing this folder waits for it", err)
		shown = err.Error()
		f.fail(err)
		select {
		case <-ctx.Done():
		case <-time.After(presenceEvery):
		}
	}
	return false
}

// neverSynced reports whether the folder has neither a local record nor a
// marker token here: new, or added again after a removal. Only such a
// folder gets a marker made; one that had a marker is away without it.
func (f *folder) neverSynced() bool {
	st := f.e.o.Store
	seq, err := st.LocalSeq(f.cfg.ID)
	if err != nil || seq != 0 {
		return false
	}
	tok, err := st.MarkerToken(f.cfg.ID)
	return err == nil && tok == ""
}

// cleared takes back the error msg that fail showed, if it is still the
// one shown; a later failure with the same message is logged again.
func (f *folder) cleared(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lastErr == msg {
		f.state, f.lastErr = StateIdle, ""
	}
	delete(f.errLogged, msg)
}

// requestScan asks the run loop for a scan of paths (nil = everything).
func (f *folder) requestScan(paths []string) {
	select {
	case f.scanReq <- paths:
	default:
		// Queue full: fall back to a full scan, which covers everything
		// queued. The flag is set before the second try: if that fails too,
		// the queue is still full and drainScans, which reads the flag after
		// taking an entry, sees it.
		f.scanOverflow.Store(true)
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
	sc := index.NewScanner(st, f.cfg.ID, f.cfg.Root, index.ScanOptions{Logger: f.e.o.Logger, Self: f.e.o.Self.Key(), Now: f.e.o.Now, Present: f.present, Temp: f.foundTemp})
	f.sc = sc
	if !f.finishForget(ctx) || !f.waitPresent(ctx) {
		return
	}
	os.Mkdir(trashDir(f.cfg.Root), 0o700) // never .syncd: only waitPresent makes that
	f.checkServed()
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
			err := sc.Watch(ctx, index.WatchOptions{Logger: f.e.o.Logger, Debounce: f.e.o.Debounce, FullEvery: -1, Degraded: degraded},
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
	presence := time.NewTicker(presenceEvery)
	defer presence.Stop()
	f.root = rootIdentity(f.cfg.Root)
	for ctx.Err() == nil {
		if err := f.present(); err != nil || f.awaySeen != "" || f.rootRemounted() {
			// Away, or away for a while unnoticed here (a scan saw it,
			// or the root is another directory: a quick remount).
			if err != nil && !f.waitPresent(ctx) {
				return
			}
			if f.awaySeen != "" {
				f.cleared(f.awaySeen)
				f.awaySeen = ""
			}
			sc.Rewatch(ctx) // a disk mounted again has other directories
			f.root = rootIdentity(f.cfg.Root)
			f.scan(ctx, sc, nil) // catch up with what changed while it was away
			if f.awaySeen != "" {
				continue // gone again
			}
		}
		if h := f.e.o.hooks.beforePull; h != nil {
			h()
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
		for wait := true; wait; {
			wait = false
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
			case <-presence.C:
				// Still there: nothing to do. Away or remounted: the loop
				// pauses (and status says why) or watches again without
				// waiting for an event.
				wait = f.present() == nil && !f.rootRemounted() && f.awaySeen == ""
			}
		}
	}
}

// drainScans merges queued scan requests; any full request makes it full.
func (f *folder) drainScans(first []string) []string {
	if first == nil || f.scanOverflow.Swap(false) {
		return nil
	}
	paths := slices.Clone(first)
	for {
		select {
		case more := <-f.scanReq:
			if more == nil || f.scanOverflow.Swap(false) {
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
		if h := f.e.o.hooks.fullScan; h != nil {
			h()
		}
		f.own.reset()
	} else if paths = f.own.filter(f.cfg.Root, paths); len(paths) == 0 {
		return // only our own writes
	}
	f.setState(StateScanning)
	res, err := sc.Scan(ctx, paths...)
	if err != nil {
		var away *awayError
		switch {
		case ctx.Err() != nil:
		case errors.As(err, &away):
			f.fail(err) // as waitPresent says it next
			f.awaySeen = err.Error()
		default:
			f.fail(fmt.Errorf("scan: %w", err))
		}
		return
	}
	if res.Changed+res.Deleted > 0 {
		f.e.o.Logger.Debug("scanned", "folder", f.cfg.ID, "changed", res.Changed, "deleted", res.Deleted, "moved", res.Moved, "bytes", res.Bytes)
	}
	f.mu.Lock()
	switch {
	case res.Errors+res.Unsyncable+res.Special > 0:
		var what []string
		if res.Errors > 0 {
			what = append(what, fmt.Sprintf("%d paths could not be read (permission denied, or a path too long: the log says which)", res.Errors))
		}
		if res.Unsyncable > 0 {
			what = append(what, fmt.Sprintf("%d names cannot be synced (not UTF-8, a backslash, too long; rename them)", res.Unsyncable))
		}
		if res.Special > 0 {
			what = append(what, fmt.Sprintf("%d special files (FIFOs, sockets, devices) cannot be synced", res.Special))
		}
		f.scanErr = strings.Join(what, " and ") + ": they are not synced; the log names them"
	case paths == nil:
		f.scanErr = ""
	}
	f.mu.Unlock()
	f.setState(StateIdle)
	f.mu.Lock()
	first := !f.counted && f.counting == nil
	f.mu.Unlock()
	if first && paths == nil {
		// The totals of a large library take a while to count: the first
		// count starts once the folder's records are scanned, so that the
		// first status after a start shows them, not "counting".
		f.count(false)
	}
}

// count refreshes the local totals shown by status from the index, which
// keeps them up to date with every write once it has counted the folder's
// records. That first count walks them all, which takes a second or more
// in a large library: it runs in the background, once (again at most every
// countRetry after a failure), and status waits up to countWait for it
// (with wait) and otherwise shows that it runs (counted is false).
func (f *folder) count(wait bool) {
	if f.readCounts() {
		return
	}
	// The walk is one of the engine's goroutines (Run waits for it before
	// the store closes, and ends it); none starts once Run is ending.
	e := f.e
	e.mu.Lock()
	ctx := e.running
	if ctx != nil {
		e.wg.Add(1)
	}
	e.mu.Unlock()
	started := false
	f.mu.Lock()
	done := f.counting
	if ctx != nil && done == nil && time.Since(f.countFailed) >= countRetry {
		started = true
		done = make(chan struct{})
		f.counting = done
		go func() {
			defer e.wg.Done()
			f.loadCounts(ctx, done)
		}()
	}
	f.mu.Unlock()
	if ctx != nil && !started {
		e.wg.Done()
	}
	if done != nil && wait {
		select {
		case <-done:
			f.readCounts()
		case <-time.After(countWait):
		}
	}
}

// countWait bounds how long status waits for the first count, and
// countRetry paces counts after a failed one (variables for tests).
var (
	countWait  = 200 * time.Millisecond
	countRetry = time.Minute
)

// readCounts takes the index's totals if it has them.
func (f *folder) readCounts() bool {
	t, ok, err := f.e.o.Store.LocalTotals(context.Background(), f.cfg.ID, isConflictCopy, false)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted = ok && err == nil
	if f.counted {
		f.localFiles, f.localBytes, f.conflicts = t.Files, t.Bytes, int(t.Marked)
	}
	return f.counted
}

// loadCounts has the index count the folder's records, and closes done.
func (f *folder) loadCounts(ctx context.Context, done chan struct{}) {
	defer close(done)
	if h := f.e.o.hooks.countWalk; h != nil {
		h()
	}
	_, _, err := f.e.o.Store.LocalTotals(ctx, f.cfg.ID, isConflictCopy, true)
	f.mu.Lock()
	f.counting = nil
	if err != nil {
		f.countFailed = time.Now()
	}
	f.mu.Unlock()
	if err != nil {
		f.e.o.Logger.Warn("could not count the folder's files for status; trying again in a minute", "folder", f.cfg.ID, "err", err)
	}
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

// cleanTrash removes trash entries older than TrashKeep: files, symlinks
// and whole directories (a folder that was replaced), named NAME~STAMP,
// and then the directories that held them, once empty. Anything without a
// stamp is not syncd's and stays. A stamp before minTrashStamp or more than
// a day ahead was written by a wrong clock (a device without a battery-
// backed clock, before it set its time): the entry is stamped again with
// the time now instead of being judged by it, so that a version trashed
// then is still kept for TrashKeep.
func (f *folder) cleanTrash() {
	now := f.e.o.Now()
	cutoff := now.Add(-f.e.o.TrashKeep)
	root := trashDir(f.cfg.Root)
	var dirs []string // unstamped directories, parents first
	_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == root {
			return nil
		}
		stamp, ok := trashStamp(p)
		switch {
		case !ok:
			if de.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		case stamp.Before(minTrashStamp) || stamp.After(now.Add(24*time.Hour)):
			restamp(p, now)
		case stamp.Before(cutoff):
			if err := os.RemoveAll(p); err != nil {
				f.e.o.Logger.Warn("could not remove an old trash entry", "folder", f.cfg.ID, "path", p, "err", err)
			}
		}
		if de.IsDir() {
			return fs.SkipDir // a trashed directory goes, or stays, whole
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = unix.Rmdir(dirs[i]) // fails unless empty
	}
}

// minTrashStamp is earlier than any trash entry syncd can have made with a
// right clock.
var minTrashStamp = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// restamp renames the trash entry p to carry the stamp of now; if that
// name is taken, p stays as it is (and is kept).
func restamp(p string, now time.Time) {
	i := strings.LastIndex(p, "~")
	np := p[:i+1] + now.UTC().Format(trashStampLayout)
	_ = unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, np, unix.RENAME_NOREPLACE)
}

const trashStampLayout = "20060102-150405.000000000"

// trashStamp is the time in the name of the trash entry p (NAME~STAMP).
func trashStamp(p string) (time.Time, bool) {
	base := filepath.Base(p)
	i := strings.LastIndex(base, "~")
	if i < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(trashStampLayout, base[i+1:])
	return t, err == nil
}
