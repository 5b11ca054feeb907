package index

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/fsnotify/fsnotify"

	"github.com/syncd-project/syncd/index/chunk"
	"github.com/syncd-project/syncd/index/ignore"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// TempPrefix starts the names of syncd's own temporary files; the scanner
// and the watcher skip them anywhere in the folder.
const TempPrefix = ".syncd-tmp-"

// IsTemp reports whether a directory entry is one of syncd's temp files:
// a file being pulled, or a symlink about to take its place.
func IsTemp(de fs.DirEntry) bool {
	t := de.Type()
	return (t.IsRegular() || t&fs.ModeSymlink != 0) && strings.HasPrefix(de.Name(), TempPrefix)
}

// IgnoreFile is the name of the ignore file in the folder root.
const IgnoreFile = ".syncdignore"

// smallFile is the size up to which a worker reads a whole file and hashes
// it itself; larger files go to the shared parallel Hasher one at a time.
const smallFile = 8 << 20

// batchSize is how many records the scanner writes per PutLocal call.
const batchSize = 256

// ScanOptions configures a Scanner.
type ScanOptions struct {
	Logger  *slog.Logger     // nil: discard
	Self    uint64           // the local device's key (deviceid.ID.Key) for version bumps
	Workers int              // hashing goroutines; default runtime.GOMAXPROCS(0)
	Now     func() time.Time // clock for tombstone times; default time.Now
	// Present, if set, is asked whether the folder is really there (not an
	// unmounted drive's empty mount point) before a scan looks at anything
	// and again before it writes any tombstone. An error stops the scan
	// there, keeping every record, and Scan returns it.
	Present func() error
	// Temp, if set, is told of every syncd temp file (TempPrefix) a scan
	// walks past, by its folder path, so that one left behind (its
	// directory renamed while it was kept for a resume) can be removed.
	Temp func(rel string)
}

// ScanResult counts what a scan saw and did.
type ScanResult struct {
	Files, Dirs, Symlinks int   // entries seen (not ignored)
	Changed               int   // new or changed records written (not tombstones)
	Deleted               int   // tombstones written
	Errors                int   // paths that could not be read (logged, skipped)
	Unsyncable            int   // names no record can hold (ValidPath; logged, skipped)
	Special               int   // FIFOs, sockets and devices (logged, skipped)
	Busy                  int   // files that changed while hashed (retried next scan)
	Moved                 int   // new paths that took the blocks of a file buried lately (moved.go)
	Bytes                 int64 // bytes hashed
}

// scanHooks inject faults in tests; nil fields use the real thing.
type scanHooks struct {
	open func(name string) (*os.File, error)
	// readDir replaces a directory's listing and, with each entry's
	// Info, the walk's lstat of it.
	readDir   func(name string) ([]fs.DirEntry, error)
	afterHash func(rel string)
	// dirOpened runs when the walk is about to open directory abs
	// (opened false), and again once it has, before it lists it (opened
	// true).
	dirOpened func(abs string, opened bool)
}

// Scanner keeps the local records of one folder in step with its files.
type Scanner struct {
	store  *Store
	folder string
	root   string
	o      ScanOptions
	log    *slog.Logger
	hasher *chunk.Hasher
	hooks  scanHooks
	seed   maphash.Seed

	watching atomic.Pointer[fsnotify.Watcher] // the running Watch's watcher (WatchDir); nil when none
	// watched holds the directories the running Watch (or WatchDir) added,
	// by absolute path, with their inodes, guarded by watchedMu: fsnotify drops a watch from
	// its own table on some events of its own (a directory moved away),
	// which leaves its subdirectories' watches, named by the old paths.
	watchedMu sync.Mutex
	watched   map[string]uint64  // the inode watched, 0 if unknown
	rewatch   chan chan struct{} // Rewatch's requests to the running Watch

	mu      sync.Mutex        // held for the duration of a Scan; guards the fields below
	busy    map[string]bool   // paths that changed while hashed, rescanned next time
	errSeen map[string]string // path -> last error logged at warning level
	bufs    chan []byte       // small-file read buffers, one per worker

	links linkNames // names of files with hard links, by inode (links.go)
	// linkSearches counts findLinkNames's walks of the records (tests).
	linkSearches int

	movedMu     sync.Mutex // guards moved and movedBlocks (scan workers read them)
	moved       map[movedKey]movedFile
	movedBlocks int // blocks held in moved
}

// NewScanner returns a scanner of folder (the store's folder ID) rooted at
// the directory root.
func NewScanner(s *Store, folder, root string, o ScanOptions) *Scanner {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Scanner{
		store: s, folder: folder, root: root, o: o,
		log:     o.Logger.With("folder", folder),
		hasher:  chunk.NewHasher(o.Workers),
		seed:    maphash.MakeSeed(),
		busy:    map[string]bool{},
		errSeen: map[string]string{},
		bufs:    make(chan []byte, o.Workers),
		rewatch: make(chan chan struct{}),
	}
}

// builtinIgnored reports syncd's own files: .syncd/ at the root and temp
// files anywhere.
func builtinIgnored(rel string) bool {
	if rel == ".syncd" || strings.HasPrefix(rel, ".syncd/") || rel == IgnoreFile {
		// The ignore file is each device's own: a peer's patterns must
		// not replace the ones that keep this device's files private.
		return true
	}
	return strings.HasPrefix(path.Base(rel), TempPrefix)
}

// entry is one path found on disk.
type entry struct {
	rel  string
	info fs.FileInfo
	old  Record
	had  bool
}

// scan is the state of one Scan call.
type scan struct {
	sc   *Scanner
	ctx  context.Context
	ign  *ignore.Matcher
	res  ScanResult
	full bool // a whole-folder scan: walkDir collects gone records
	// caseless: the folder ignores case (IgnoresCase): an entry is there
	// only under the spelling its directory lists.
	caseless bool
	seen     map[uint64]struct{} // targeted scans: maphash of paths present (or unreadable) on disk
	badDirs  []string            // directories that could not be read: keep their records
	gone     []Record            // full scans: records of paths not found on disk
	goneDir  []string            // full scans: paths whose records below path/ are all gone
	jobs     chan entry
	out      chan Record
	// devs are the peers with records of the folder (aboveOwnPast), read
	// once per scan when first needed.
	devs      []deviceid.ID
	devsKnown bool
	// intents are what pulls were installing when the daemon stopped
	// (intent.go), by path, nil if none; intentIDs their batches.
	intents   map[string]Record
	intentIDs []uint64
	rmu       sync.Mutex // guards res and sc.errSeen/busy during the scan
	// deferred are the large files a full scan found at paths new to their
	// inode, hashed after the tombstones (hashDeferred); mayDefer says the
	// folder had records before the scan (a first scan has no renames).
	deferred []entry
	mayDefer bool
	// linked are the other names of hard-linked files this targeted scan
	// found changed (links.go), guarded by rmu; linkPass is set while
	// they are scanned.
	linked   []linkedName
	linkPass bool
	// linkSearch holds the inodes whose other names findLinkNames looks
	// for, with their link counts, guarded by rmu.
	linkSearch map[uint64]uint64
}

// Scan brings the folder's local records up to date with the disk. With no
// paths it scans the whole folder; otherwise those paths (and the subtrees
// of directories). New and changed entries are written with their version
// bumped for Self; vanished ones become tombstones; unchanged entries (same
// kind, size, mtime, inode and mode) cost one lstat and write nothing.
// Per-path errors are logged once, counted and skipped. Scan calls are
// serialised.
func (sc *Scanner) Scan(ctx context.Context, paths ...string) (ScanResult, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.o.Present != nil {
		if err := sc.o.Present(); err != nil {
			return ScanResult{}, err
		}
	}
	// An idle daemon should not hold the hasher's buffers (up to 32 MiB).
	defer sc.hasher.Release()
	sc.movedMu.Lock()
	sc.pruneMovedLocked(sc.o.Now())
	sc.movedMu.Unlock()
	ign, err := sc.loadIgnore()
	if err != nil {
		return ScanResult{}, err
	}
	full := len(paths) == 0
	s := &scan{sc: sc, ctx: ctx, ign: ign, full: full, out: make(chan Record, batchSize)}
	if !full {
		s.seen = map[uint64]struct{}{}
	}
	if s.intents, s.intentIDs, err = sc.store.IntentsOf(sc.folder); err != nil {
		sc.log.Warn("scan: could not read the intents of unfinished pulls", "err", err)
	}
	targets := paths
	if !full {
		for p := range sc.busy {
			targets = append(targets, p)
		}
	}
	clear(sc.busy)
	var stale []string
	if s.caseless = IgnoresCase(sc.root); s.caseless && !full {
		targets, stale = s.storedSpellings(targets)
	}
	if !full {
		targets = outermost(targets)
	}

	commitErr := make(chan error, 1)
	go func() { commitErr <- s.commit() }()

	buried := map[string]bool{}
	s.withWorkers(func() {
		if full {
			s.mayDefer = sc.store.hasLocal(sc.folder)
			sc.links.reset() // the walk notes the names still there
			s.walkDir("", nil)
			return
		}
		buried = s.buryGoneTargets(targets)
		for _, p := range targets {
			if !buried[p] {
				s.target(p)
			}
		}
	})
	// Deletions only after every present path was seen, and only in a
	// folder that is there.
	var absent error
	if ctx.Err() == nil && sc.o.Present != nil {
		absent = sc.o.Present()
	}
	if ctx.Err() == nil && absent == nil {
		if full {
			s.tombstone()
			s.hashDeferred()
		} else {
			for _, p := range targets {
				if rel := cleanRel(p); !buried[p] && (rel == "" || ValidPath(rel) == nil) {
					s.vanished(rel)
				}
			}
			for _, p := range stale {
				s.vanished(p)
			}
			s.findLinkNames()
			s.scanLinked()
		}
	}
	close(s.out)
	if err := <-commitErr; err != nil {
		return s.res, err
	}
	if full && ctx.Err() == nil && absent == nil && len(s.intentIDs) > 0 {
		// Every file they were for has been seen.
		if err := sc.store.DropIntents(sc.folder, s.intentIDs...); err != nil {
			sc.log.Warn("scan: could not drop the intents of unfinished pulls", "err", err)
		}
	}
	if absent != nil {
		return s.res, absent
	}
	return s.res, ctx.Err()
}

func cleanRel(p string) string {
	p = path.Clean("/" + filepath.ToSlash(p))
	return strings.TrimPrefix(p, "/")
}

func (sc *Scanner) loadIgnore() (*ignore.Matcher, error) {
	m, err := LoadIgnore(sc.root)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", sc.folder, err)
	}
	return m, nil
}

// LoadIgnore reads the ignore patterns of the folder at root (none
// without an ignore file). The puller uses them too: what this device
// ignores, it neither records nor pulls.
func LoadIgnore(root string) (*ignore.Matcher, error) {
	data, err := os.ReadFile(filepath.Join(root, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
	}
	m, err := ignore.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", IgnoreFile, err)
	}
	return m, nil
}

// Ignored reports whether path rel (a directory if isDir) is ignored by m
// or by syncd itself (its own directory, temp files, the ignore file).
func Ignored(m *ignore.Matcher, rel string, isDir bool) bool {
	return builtinIgnored(rel) || m.Match(rel, isDir)
}

func (s *scan) ignored(rel string, isDir bool) bool {
	return builtinIgnored(rel) || s.ign.Match(rel, isDir)
}

func (s *scan) markSeen(rel string) {
	if s.seen != nil {
		s.seen[maphash.String(s.sc.seed, rel)] = struct{}{}
	}
}

func (s *scan) isSeen(rel string) bool {
	_, ok := s.seen[maphash.String(s.sc.seed, rel)]
	return ok
}

// pathErr logs a per-path error once (until it changes) and counts it.
func (s *scan) pathErr(rel, op string, err error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.res.Errors++
	s.logOnce(rel, op, err)
}

// nameErr logs once, and counts, a path found on disk that no record can
// hold: a name that is not UTF-8 or holds a backslash, a path too long, a
// symlink's target that is not UTF-8. It is not synced; the user can
// rename it.
func (s *scan) nameErr(rel string, err error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.res.Unsyncable++
	s.logOnce(rel, "name", err)
}

// isSpecial reports a FIFO, a socket or a device: nothing a record holds.
func isSpecial(m fs.FileMode) bool {
	return m.Type()&(fs.ModeNamedPipe|fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice|fs.ModeIrregular) != 0
}

// special logs once, and counts, a FIFO, socket or device found at rel.
// It is not synced; a record of what was there before is buried, so that
// peers do not wait for blocks no one can serve.
func (s *scan) special(rel string, m fs.FileMode) {
	what := "device"
	switch {
	case m&fs.ModeNamedPipe != 0:
		what = "FIFO"
	case m&fs.ModeSocket != 0:
		what = "socket"
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.res.Special++
	s.logOnce(rel, "special", fmt.Errorf("a %s is not synced: only files, directories and symlinks are", what))
}

// logOnce logs a per-path error unless it is the one logged last for that
// path. Called with rmu held.
func (s *scan) logOnce(rel, op string, err error) {
	msg := err.Error()
	if s.sc.errSeen[rel] == msg {
		s.sc.log.Debug("scan: skipped", "path", rel, "op", op, "err", err)
		return
	}
	if len(s.sc.errSeen) < 10000 {
		s.sc.errSeen[rel] = msg
	}
	s.sc.log.Warn("scan: skipped", "path", rel, "op", op, "err", err)
}

func (s *scan) pathOK(rel string) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	delete(s.sc.errSeen, rel)
}

// target scans one requested path: lstat each parent so that a symlinked
// parent is never followed, then the path and (if a directory) its subtree.
func (s *scan) target(p string) {
	rel := cleanRel(p)
	if rel == "" {
		s.walkDir("", nil)
		return
	}
	if s.ignored(rel, false) {
		return
	}
	if err := ValidPath(rel); err != nil {
		if _, lerr := os.Lstat(filepath.Join(s.sc.root, filepath.FromSlash(rel))); lerr == nil {
			s.nameErr(rel, fmt.Errorf("%w; rename it to sync it", err))
		}
		return
	}
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/")
		fi, err := os.Lstat(filepath.Join(s.sc.root, filepath.FromSlash(dir)))
		if err != nil || !fi.IsDir() {
			return // gone (or not a directory): vanished() tombstones it
		}
		if s.ign.Match(dir, true) {
			return
		}
	}
	fi, err := os.Lstat(filepath.Join(s.sc.root, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		s.markSeen(rel)
		s.pathErr(rel, "lstat", err)
		return
	}
	if s.ignored(rel, fi.IsDir()) {
		return
	}
	if isSpecial(fi.Mode()) {
		s.special(rel, fi.Mode()) // not seen: vanished buries its record, if any
		return
	}
	old, had, err := s.sc.store.Local(s.sc.folder, rel)
	if err != nil {
		s.markSeen(rel)
		s.pathErr(rel, "read index", err)
		return
	}
	s.visit(rel, fi, old, had)
	if fi.IsDir() {
		s.walkDir(rel, nil)
	}
}

// walkDir visits the entries of directory rel ("" is the root) depth first.
// It reads the records of the directory's children in one ordered pass of
// the store and merges them with the sorted listing, so an unchanged entry
// costs its lstat only. In a full scan the records that have no entry on
// disk are collected for tombstone.
//
// parent is the directory holding rel, open (nil: rel is opened from the
// folder's root). Each directory is opened from its parent and its
// entries are looked at through it (dirHandle), so that a directory
// replaced by a symlink while the walk is in it is not listed through the
// symlink, and what the symlink points to is never recorded as the
// folder's (outside it, perhaps).
func (s *scan) walkDir(rel string, parent *dirHandle) {
	if s.ctx.Err() != nil {
		return
	}
	abs := filepath.Join(s.sc.root, filepath.FromSlash(rel))
	name := rel
	if rel == "" {
		name = "."
	}
	d, ents, replaced, err := s.openDir(rel, abs, parent)
	if replaced {
		s.replacedDir(rel)
		return
	}
	if err != nil {
		s.pathErr(name, "readdir", err)
		s.badDirs = append(s.badDirs, rel)
		return
	}
	defer d.Close()
	dr, err := s.sc.store.localDir(s.sc.folder, rel)
	if err != nil {
		s.pathErr(name, "read index", err)
		s.badDirs = append(s.badDirs, rel) // keep its records, retry next scan
		return
	}
	recs, subs := dr.recs, dr.subtrees
	prefix := ""
	if rel != "" {
		prefix = rel + "/"
	}
	if s.full {
		// What the listing lacks is gone: its tombstones go first
		// (buryEarly), before any new entry of this directory is walked.
		// (recs and subs are this call's own: localDir makes them.)
		listed := func(name string) bool {
			_, ok := slices.BinarySearchFunc(ents, name, func(de fs.DirEntry, n string) int { return strings.Compare(de.Name(), n) })
			return ok
		}
		recs = slices.DeleteFunc(recs, func(r Record) bool {
			if listed(r.Path[len(prefix):]) {
				return false
			}
			s.goneRec(r, true)
			return true
		})
		subs = slices.DeleteFunc(subs, func(n string) bool {
			if listed(n) {
				return false
			}
			s.goneTree(prefix + n)
			return true
		})
		s.buryEarly()
	}
	// next returns the record of name if there is one, and (full scan)
	// collects the records of names before it as gone.
	next := func(name string) (Record, bool) {
		for len(recs) > 0 {
			rn := recs[0].Path[len(prefix):]
			if rn >= name {
				if rn == name {
					r := recs[0]
					recs = recs[1:]
					return r, true
				}
				break
			}
			s.goneRec(recs[0], true)
			recs = recs[1:]
		}
		return Record{}, false
	}
	// walked records whether the subtree of name is accounted for (walked,
	// or unreadable); else (full scan) its records are gone.
	walked := func(name string, ok bool) {
		for len(subs) > 0 && subs[0] <= name {
			if subs[0] < name || !ok {
				s.goneTree(prefix + subs[0])
			}
			subs = subs[1:]
		}
	}
	for _, de := range ents {
		if s.ctx.Err() != nil {
			return
		}
		name := de.Name()
		child := prefix + name
		old, had := next(name)
		if s.sc.o.Temp != nil && IsTemp(de) {
			s.sc.o.Temp(child)
		}
		if s.ignored(child, de.IsDir()) {
			s.goneRec(old, had)
			walked(name, false)
			continue
		}
		if err := ValidPath(child); err != nil {
			s.nameErr(child, fmt.Errorf("%w; rename it to sync it", err))
			s.goneRec(old, had)
			walked(name, false)
			continue
		}
		var fi fs.FileInfo
		if s.sc.hooks.readDir != nil {
			fi, err = de.Info()
		} else {
			fi, err = d.lstat(name)
		}
		if errors.Is(err, fs.ErrNotExist) {
			s.goneRec(old, had)
			walked(name, false)
			continue
		}
		if err != nil {
			s.markSeen(child)
			s.pathErr(child, "lstat", err)
			walked(name, true)
			continue
		}
		if isSpecial(fi.Mode()) {
			s.special(child, fi.Mode())
			s.goneRec(old, had)
			walked(name, false)
			continue
		}
		s.visit(child, fi, old, had)
		walked(name, fi.IsDir())
		if fi.IsDir() {
			s.buryEarly()
			s.walkDir(child, d)
		}
	}
	for _, r := range recs {
		s.goneRec(r, true)
	}
	for _, n := range subs {
		s.goneTree(prefix + n)
	}
	s.buryEarly()
}

// openDir opens directory rel for walkDir and lists it, sorted by name:
// the root by path (it may be a symlink the user made), any other
// directory from parent (nil: from the root) without following a symlink
// (dirHandle). A directory no longer there as one (replaced: a symlink or
// a file took its place since the caller looked, or it is gone) is
// scanned again next time.
func (s *scan) openDir(rel, abs string, parent *dirHandle) (d *dirHandle, ents []fs.DirEntry, replaced bool, err error) {
	if h := s.sc.hooks.dirOpened; h != nil {
		h(abs, false)
	}
	if rel == "" {
		d, err = openWalkRoot(abs)
	} else if parent != nil {
		d, replaced, err = parent.openDir(path.Base(rel))
	} else {
		var root *dirHandle
		if root, err = openWalkRoot(s.sc.root); err == nil {
			d, replaced, err = root.openDir(rel)
			root.Close()
		}
	}
	if err != nil {
		return nil, nil, replaced, err
	}
	if h := s.sc.hooks.dirOpened; h != nil {
		h(abs, true)
	}
	if h := s.sc.hooks.readDir; h != nil {
		ents, err = h(abs)
	} else {
		ents, err = d.list()
	}
	if err != nil {
		d.Close()
		return nil, nil, false, err
	}
	return d, sortEntries(ents), false, nil
}

// sortEntries sorts a directory listing by name (os.ReadDir's is sorted
// already; a descriptor's is not).
func sortEntries(ents []fs.DirEntry) []fs.DirEntry {
	cmp := func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) }
	if !slices.IsSortedFunc(ents, cmp) {
		ents = slices.Clone(ents)
		slices.SortFunc(ents, cmp)
	}
	return ents
}

// replacedDir notes that directory rel was replaced (by a symlink, a file
// or another directory) while the walk listed it: its records are kept,
// and it is scanned again next time.
func (s *scan) replacedDir(rel string) {
	s.rmu.Lock()
	s.res.Busy++
	s.sc.busy[rel] = true
	s.rmu.Unlock()
	s.badDirs = append(s.badDirs, rel)
	s.sc.log.Debug("scan: directory replaced while listed, retrying later", "path", rel)
}

// buryEarly writes the tombstones a full scan has collected so far, before
// it goes into the next directory, if the folder is there (Present). What
// was renamed then reaches the peers deleted before its new path is
// walked, as with the watcher's targeted scans (buryGoneTargets), and the
// peers move their file instead of copying it. A path absent from its
// directory's listing is gone whatever the rest of the walk finds (bury
// checks it again); what was not written here is written at the end.
func (s *scan) buryEarly() {
	if len(s.gone)+len(s.goneDir) == 0 || s.ctx.Err() != nil {
		return
	}
	if s.sc.o.Present != nil && s.sc.o.Present() != nil {
		return // the end decides
	}
	s.tombstone()
	s.gone, s.goneDir = s.gone[:0], s.goneDir[:0]
}

// goneRec notes (in a full scan) a record whose path was not found on
// disk; tombstone decides at the end of the scan.
func (s *scan) goneRec(r Record, had bool) {
	if s.full && had && !r.Deleted { // a tombstone is gone already
		s.gone = append(s.gone, r)
	}
}

// goneTree notes (in a full scan) that no record under rel/ was found on
// disk.
func (s *scan) goneTree(rel string) {
	if s.full {
		s.goneDir = append(s.goneDir, rel)
	}
}

// visit handles one present path: compare with its record, write dirs and
// symlinks directly, send changed files to the hashing workers.
func (s *scan) visit(rel string, fi fs.FileInfo, old Record, had bool) {
	s.markSeen(rel)
	ino := inode(fi)
	mode := uint32(fi.Mode().Perm())
	mtime := fi.ModTime().UnixNano()
	live := had && !old.Deleted
	switch {
	case fi.Mode().IsRegular():
		s.count(func(r *ScanResult) { r.Files++ })
		if n := nlink(fi); n > 1 {
			s.sc.links.note(ino, rel)
			if !s.full && !s.linkPass && ino != 0 && s.sc.links.unknownNames(s.sc.root, ino, n) {
				s.rmu.Lock()
				if s.linkSearch == nil {
					s.linkSearch = map[uint64]uint64{}
				}
				s.linkSearch[ino] = n
				s.rmu.Unlock()
			}
		}
		if live && old.Kind == File && old.Size == fi.Size() && old.ModTime == mtime && old.Inode == ino && old.Mode == mode &&
			(old.Ctime == 0 || old.Ctime == Ctime(fi)) {
			if ct := Ctime(fi); old.Ctime == 0 && ct != 0 {
				// Recorded before change times were: learn it in place,
				// so that from now on an edit that puts size and mtime
				// back is seen.
				s.refresh(rel, old.Version, old.Inode, ct)
			}
			return
		}
		e := entry{rel: rel, info: fi, old: old, had: had}
		if s.mayDefer && fi.Size() >= movedMinSize && (!live || old.Inode != ino) && len(s.deferred) < movedMaxDeferred {
			// Perhaps a file moved here from a path walked later: hashed
			// once the gone paths are buried and their blocks known.
			s.deferred = append(s.deferred, e)
			return
		}
		select {
		case s.jobs <- e:
		case <-s.ctx.Done():
		}
	case fi.IsDir():
		s.count(func(r *ScanResult) { r.Dirs++ })
		if live && old.Kind == Dir && old.Mode == mode {
			return
		}
		s.emit(old, had, Record{Path: rel, Kind: Dir, Mode: mode, ModTime: mtime, Inode: ino, HashVersion: HashVersion})
	case fi.Mode()&fs.ModeSymlink != 0:
		s.count(func(r *ScanResult) { r.Symlinks++ })
		target, err := os.Readlink(filepath.Join(s.sc.root, filepath.FromSlash(rel)))
		if err != nil {
			s.pathErr(rel, "readlink", err)
			return
		}
		if len(target) > MaxTargetLen || strings.IndexByte(target, 0) >= 0 || target == "" {
			s.pathErr(rel, "readlink", fmt.Errorf("target of %d bytes not storable", len(target)))
			return
		}
		if !utf8.ValidString(target) {
			s.nameErr(rel, fmt.Errorf("the symlink's target %q is not valid UTF-8; point it elsewhere to sync it", target))
			return
		}
		if live && old.Kind == Symlink && old.Target == target {
			return
		}
		s.emit(old, had, Record{Path: rel, Kind: Symlink, Mode: mode, ModTime: mtime, Inode: ino, Target: target, HashVersion: HashVersion})
	default:
		s.special(rel, fi.Mode()) // walkDir and target do not come here with one
	}
}

func (s *scan) count(f func(*ScanResult)) {
	s.rmu.Lock()
	f(&s.res)
	s.rmu.Unlock()
}

// emit bumps the version of a new or changed record and queues it.
func (s *scan) emit(old Record, had bool, r Record) {
	var v Vector
	if had {
		v = old.Version
	}
	r.Version = v.Update(s.sc.o.Self)
	r.Modifier = s.sc.o.Self
	s.count(func(res *ScanResult) {
		if r.Deleted {
			res.Deleted++
		} else {
			res.Changed++
		}
	})
	s.out <- r
}

// withWorkers runs the hashing workers on a new job queue while queue
// sends them work (visit), and waits for them.
func (s *scan) withWorkers(queue func()) {
	s.jobs = make(chan entry, 4*s.sc.o.Workers)
	var wg sync.WaitGroup
	for range s.sc.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range s.jobs {
				if s.ctx.Err() == nil {
					s.hashEntry(e)
				}
			}
		}()
	}
	queue()
	close(s.jobs)
	wg.Wait()
}

// hashEntry hashes one file and re-stats it: a file that changed meanwhile
// is left for the next scan.
func (s *scan) hashEntry(e entry) {
	abs := filepath.Join(s.sc.root, filepath.FromSlash(e.rel))
	open := s.sc.hooks.open
	if open == nil {
		open = func(name string) (*os.File, error) {
			// O_NONBLOCK: a FIFO put in the file's place since the walk's
			// lstat would block the open until a writer came.
			return OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		}
	}
	f, err := open(abs)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.pathErr(e.rel, "open", err)
		}
		return
	}
	var size, read int64
	var blocks []Block
	var content Hash
	moved := false
	if ofi, serr := f.Stat(); serr != nil || !ofi.Mode().IsRegular() {
		// Not the file the walk saw (a FIFO, a device): never read it; the
		// re-stat below leaves it to the next scan.
		size = -1
	} else {
		if m, ok := s.sc.movedBlocksOf(e); ok && ofi.Size() == m.size {
			blocks, read, moved = s.takeMoved(f, m)
			size, content = m.size, m.content
		}
		if !moved {
			var n int64
			n, blocks, content, err = s.sc.hashOpen(f, e.info.Size())
			size, read = n, read+n
			if errors.Is(err, errChangedMidHash) {
				// Being written (a video copied in): left for the scan
				// its next change brings, as below.
				size, err = -1, nil
			}
		}
	}
	f.Close()
	if err != nil {
		s.pathErr(e.rel, "read", err)
		return
	}
	if h := s.sc.hooks.afterHash; h != nil {
		h(e.rel)
	}
	fi, err := os.Lstat(abs)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != e.info.Size() || size != e.info.Size() ||
		!fi.ModTime().Equal(e.info.ModTime()) || inode(fi) != inode(e.info) || Ctime(fi) != Ctime(e.info) {
		s.rmu.Lock()
		s.res.Busy++
		s.sc.busy[e.rel] = true
		s.rmu.Unlock()
		s.sc.log.Debug("scan: file changed while hashing, retrying later", "path", e.rel)
		return
	}
	s.pathOK(e.rel)
	s.count(func(r *ScanResult) {
		r.Bytes += read
		if moved {
			r.Moved++
		}
	})
	r := Record{
		Path: e.rel, Kind: File, Size: size, Mode: uint32(fi.Mode().Perm()), ModTime: fi.ModTime().UnixNano(),
		Content: content, Blocks: blocks, HashVersion: HashVersion, Inode: inode(fi), Ctime: Ctime(fi),
	}
	if s.sameFile(e, r) {
		// Only its inode or change time moved (a chmod to the same mode, a
		// hard link, the same bytes saved again): the record takes the new
		// stat and keeps its version and sequence; peers see no change.
		s.refresh(e.rel, e.old.Version, r.Inode, r.Ctime)
		return
	}
	if in, ok := s.intents[e.rel]; ok && in.Kind == File && !in.Deleted && in.Content == r.Content &&
		in.Size == r.Size && in.Mode == r.Mode && in.ModTime == r.ModTime && in.HashVersion == r.HashVersion &&
		(!e.had || e.old.Version.Compare(in.Version) == Lesser || e.old.Version.Compare(in.Version) == Concurrent) {
		// What a pull renamed into place before the daemon stopped, and
		// did not record: the version it installed (with the one it beat,
		// after a conflict), not a local edit. Not over a record as new
		// as the intent, left by a later pull: the same bytes are then an
		// older version put back (from the trash, say), a local edit that
		// must go above what peers hold.
		r.Version, r.Modifier = in.Version, in.Modifier
		if e.had {
			r.Version = e.old.Version.Merge(in.Version)
		}
		s.count(func(res *ScanResult) { res.Changed++ })
		s.out <- r
		return
	}
	if nlink(fi) > 1 {
		s.linkedChanged(r.Inode, e.rel)
	}
	s.emit(e.old, e.had, r)
}

// refresh writes a file's new inode and change time into its record if
// the record still has version v (RefreshLocal). A failure is logged; the
// next scan hashes the file again.
func (s *scan) refresh(rel string, v Vector, inode uint64, ct int64) {
	if _, err := s.sc.store.RefreshLocal(s.sc.folder, rel, v, inode, ct); err != nil {
		s.sc.log.Warn("scan: could not update a record", "path", rel, "err", err)
	}
}

// sameFile reports whether r, just hashed, is the file e.old records
// (content, size, mode and mtime). e.old comes from a directory listing
// of the store without its content ID, so the full record is read, only
// when the rest matches.
func (s *scan) sameFile(e entry, r Record) bool {
	old := e.old
	if !e.had || old.Deleted || old.Kind != File || old.Size != r.Size || old.Mode != r.Mode || old.ModTime != r.ModTime {
		return false
	}
	if old.Content.IsZero() {
		full, ok, err := s.sc.store.Local(s.sc.folder, e.rel)
		if err != nil || !ok || full.Version.Compare(old.Version) != Equal {
			return false
		}
		old = full
	}
	return old.Content == r.Content
}

// HashOpen hashes the open regular file f, of the size its stat gave, the
// way a scan does: n is the bytes read (fewer if it shrank; a caller
// re-stats to catch one that grew), content its protocol v1 content ID.
// The puller uses it to tell whether a file whose change time moved still
// holds the content recorded for it. It waits for a running scan.
func (sc *Scanner) HashOpen(f *os.File, size int64) (n int64, content Hash, err error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	defer sc.hasher.Release()
	n, _, content, err = sc.hashOpen(f, size)
	return n, content, err
}

func (sc *Scanner) hashOpen(f *os.File, size int64) (int64, []Block, Hash, error) {
	if size > smallFile {
		r := &stableReader{f: f, left: size}
		n, blocks, content, err := sc.hasher.HashReader(r)
		if r.changed {
			err = errChangedMidHash
		}
		return n, blocks, content, err
	}
	var buf []byte
	select {
	case buf = <-sc.bufs:
	default:
		buf = make([]byte, 0, 64<<10)
	}
	defer func() {
		select {
		case sc.bufs <- buf[:0]:
		default:
		}
	}()
	// Read the size the walk saw, in one read, without a second read for
	// EOF: a file that grew or shrank meanwhile has a new size or mtime,
	// which the re-stat after hashing notices.
	if int64(cap(buf)) < size {
		buf = make([]byte, 0, size)
	}
	buf = buf[:size]
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, nil, Hash{}, err
	}
	blocks, content := chunk.Blocks(buf[:n])
	return int64(n), blocks, content, nil
}

// errChangedMidHash: a large file changed while it was being hashed.
var errChangedMidHash = errors.New("changed while hashed")

// stableCheck is how much of a large file is read between two looks at
// whether it is still the file it was.
var stableCheck int64 = 64 << 20 // a variable for tests

// stableReader reads the size the walk saw of a large file, no more, and
// stops early when the file changes (size, mtime or change time) while
// it is read: a file being written, hashed to its end at every scan, cost
// several times its size in reads and hashing. The caller's re-stat after
// hashing still decides; this only stops sooner.
type stableReader struct {
	f       *os.File
	left    int64 // bytes still to read of the size seen
	since   int64 // bytes read since the last look
	first   fs.FileInfo
	changed bool
}

func (r *stableReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if r.first == nil {
		fi, err := r.f.Stat()
		if err != nil {
			return 0, err
		}
		r.first = fi
	}
	if r.since >= stableCheck {
		r.since = 0
		fi, err := r.f.Stat()
		if err != nil {
			return 0, err
		}
		if fi.Size() != r.first.Size() || !fi.ModTime().Equal(r.first.ModTime()) || Ctime(fi) != Ctime(r.first) {
			r.changed = true
			return 0, errChangedMidHash
		}
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.f.Read(p)
	r.left -= int64(n)
	r.since += int64(n)
	return n, err
}

// vanished tombstones live records at or under prefix ("" = all) whose paths
// were not seen, except ignored ones and those under unreadable directories.
func (s *scan) vanished(prefix string) {
	var gone []Record
	err := s.sc.store.walkLocalPrefix(s.sc.folder, prefix, func(r Record) error {
		if s.isSeen(r.Path) {
			return nil
		}
		if s.goneOK(r) {
			r.Blocks = nil
			gone = append(gone, r)
		}
		return nil
	})
	if err != nil {
		s.pathErr(prefix, "walk index", err)
		return
	}
	s.bury(gone)
}

// buryGoneTargets writes the tombstones of the targets of a scan that are
// gone from the disk (with everything the index has under them) before the
// other targets are walked, and returns them. A rename's old path then
// reaches the peers before its new one, and the peers move the file they
// have instead of copying it (peer: the trash as a move source). The
// targets are disjoint (outermost), so nothing under a gone one can be
// seen by the walk of another; the folder must be there (Present), as for
// the tombstones written after the walk.
func (s *scan) buryGoneTargets(targets []string) map[string]bool {
	var gone []string
	for _, p := range targets {
		rel := cleanRel(p)
		if rel == "" || ValidPath(rel) != nil {
			continue
		}
		if _, err := os.Lstat(filepath.Join(s.sc.root, filepath.FromSlash(rel))); errors.Is(err, fs.ErrNotExist) {
			gone = append(gone, p)
		}
	}
	buried := map[string]bool{}
	if len(gone) == 0 || s.sc.o.Present != nil && s.sc.o.Present() != nil {
		return buried
	}
	for _, p := range gone {
		s.vanished(cleanRel(p))
		buried[p] = true
	}
	return buried
}

// tombstone ends a full scan: the records collected by walkDir, and those
// under vanished directories, become tombstones.
func (s *scan) tombstone() {
	gone := s.gone[:0]
	for _, r := range s.gone {
		if s.goneOK(r) {
			gone = append(gone, r)
		}
	}
	for _, dir := range s.goneDir {
		err := s.sc.store.walk(key(pLocal, s.sc.folder, []byte(dir+"/")), func(r Record) error {
			if s.goneOK(r) {
				r.Blocks = nil
				gone = append(gone, r)
			}
			return nil
		})
		if err != nil {
			s.pathErr(dir, "walk index", err)
		}
	}
	s.bury(gone)
}

// goneOK reports whether a record not seen on disk may become a tombstone.
func (s *scan) goneOK(r Record) bool {
	if r.Deleted || s.ignored(r.Path, r.Kind == Dir) || s.underBadDir(r.Path) {
		return false
	}
	s.rmu.Lock() // workers mark busy paths as the walk buries (buryEarly)
	defer s.rmu.Unlock()
	return !s.sc.busy[r.Path]
}

// bury writes tombstones for gone records whose paths are still absent
// (or hold what is never synced: a FIFO, a socket, a device).
func (s *scan) bury(gone []Record) {
	now := s.sc.o.Now().UnixNano()
	listings := map[string]map[string]bool{} // for listedSo
	for _, old := range gone {
		if fi, err := os.Lstat(filepath.Join(s.sc.root, filepath.FromSlash(old.Path))); err == nil && !isSpecial(fi.Mode()) && !s.parentBroken(old.Path) &&
			(!s.caseless || s.listedSo(old.Path, listings)) {
			continue // appeared after the walk: the next scan sees it
		}
		s.rememberMoved(old)
		s.emit(old, true, Record{Path: old.Path, Kind: old.Kind, Deleted: true, Mode: old.Mode, ModTime: now, HashVersion: old.HashVersion})
	}
}

// parentBroken reports whether some parent directory of rel is missing or
// not a directory (so rel is gone from the folder's point of view).
func (s *scan) parentBroken(rel string) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		fi, err := os.Lstat(filepath.Join(s.sc.root, filepath.FromSlash(strings.Join(parts[:i], "/"))))
		if err != nil || !fi.IsDir() {
			return true
		}
	}
	return false
}

func (s *scan) underBadDir(rel string) bool {
	for _, d := range s.badDirs {
		if d == "" || rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// commit writes queued records in batches.
func (s *scan) commit() error {
	var batch []Record
	var firstErr error
	flush := func() {
		if len(batch) == 0 || firstErr != nil {
			batch = batch[:0]
			return
		}
		if err := s.aboveOwnPast(batch); err != nil {
			firstErr = fmt.Errorf("scan %s: %w", s.sc.folder, err)
			return
		}
		if _, err := s.sc.store.PutLocal(s.sc.folder, batch...); err != nil {
			firstErr = fmt.Errorf("scan %s: %w", s.sc.folder, err)
		}
		batch = batch[:0]
	}
	nblocks := 0
	for r := range s.out {
		batch = append(batch, r)
		nblocks += len(r.Blocks)
		if len(batch) >= batchSize || nblocks >= 4096 {
			flush()
			nblocks = 0
		}
	}
	flush()
	return firstErr
}

// aboveOwnPast gives each record of a path that had no local record (its
// version is this device's first, {Self: 1}) a counter above every version
// of it that peers hold from this device, if any: after the device's
// records of the folder were forgotten (the folder removed and added again)
// or lost (the index moved away), its new files and edits would otherwise
// lose to, or equal, what it wrote before, and be replaced or never sent.
func (s *scan) aboveOwnPast(batch []Record) error {
	self := s.sc.o.Self
	var idx []int
	var paths []string
	for i, r := range batch {
		if len(r.Version) == 1 && r.Version[0] == (Counter{Device: self, Value: 1}) {
			idx = append(idx, i)
			paths = append(paths, r.Path)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	if !s.devsKnown {
		devs, err := s.sc.store.Devices(s.sc.folder)
		if err != nil {
			return err
		}
		s.devs, s.devsKnown = devs, true
	}
	tops, err := s.sc.store.RemoteTops(s.sc.folder, self, s.devs, paths)
	if err != nil {
		return err
	}
	for j, i := range idx {
		if tops[j] > 0 {
			batch[i].Version = Vector{{Device: self, Value: tops[j] + 1}}
		}
	}
	return nil
}

// walkLocalPrefix walks local records at or under prefix ("" = all).
func (s *Store) walkLocalPrefix(folder, prefix string, fn func(Record) error) error {
	if prefix == "" {
		return s.WalkLocal(folder, fn)
	}
	r, ok, err := s.Local(folder, prefix)
	if err != nil {
		return err
	}
	if ok {
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := checkFolder(folder); err != nil {
		return err
	}
	return s.walk(key(pLocal, folder, []byte(prefix+"/")), fn)
}

// outermost returns the cleaned paths without duplicates and without those
// under another one: a target directory is walked whole, so a file below
// it listed too would be visited (and hashed) twice.
func outermost(paths []string) []string {
	set := make(map[string]bool, len(paths))
	for _, p := range paths {
		set[cleanRel(p)] = true
	}
	if set[""] {
		return []string{""}
	}
	out := make([]string, 0, len(set))
next:
	for p := range set {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if set[d] {
				continue next
			}
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
