package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxDirty is how many dirty paths the watcher collects before it asks
// for a full rescan instead.
const maxDirty = 10000

// WatchOptions configures Scanner.Watch.
type WatchOptions struct {
	Logger    *slog.Logger  // nil: the scanner's logger
	Debounce  time.Duration // quiet time before dirty paths are scanned; default 100 ms
	FullEvery time.Duration // full rescan interval; default 1 h; negative: none (the caller rescans)
	// Degraded, if set, is called once when watching falls back to periodic
	// rescans (no inotify, or the watch limit reached), for the status.
	Degraded func(err error)
}

// Watch watches every directory of the folder until ctx is done, then
// returns nil. Events are debounced into calls of scan with the dirty paths
// (relative, slash-separated); a nil slice asks for a full rescan, asked
// periodically (FullEvery), on overflow, on watcher errors and when
// .syncdignore changes. Watch does not scan at start: the caller does. The caller serialises scan with its other work and calls
// sc.Scan from it. syncd's temp files and .syncd/ never trigger a scan.
// When the inotify watch limit is reached it logs one warning and carries
// on with periodic full rescans only. scan is called from Watch's
// goroutine only.
func (sc *Scanner) Watch(ctx context.Context, o WatchOptions, scan func(ctx context.Context, paths []string)) error {
	log := o.Logger
	if log == nil {
		log = sc.log
	}
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.FullEvery == 0 {
		o.FullEvery = time.Hour
	}
	w := &watcher{sc: sc, log: log, dirty: map[string]bool{}, degraded: o.Degraded}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		args := []any{"err", err}
		if o.FullEvery > 0 {
			args = append(args, "every", o.FullEvery)
		}
		log.Warn("watcher unavailable; falling back to periodic full rescans", args...)
		if o.Degraded != nil {
			o.Degraded(err)
		}
	} else {
		w.fw = fw
		sc.watching.Store(fw)
		defer func() { _ = w.close() }()
		w.addTree("")
	}
	var fullC <-chan time.Time // nil: no periodic scans of its own
	if o.FullEvery > 0 {
		full := time.NewTicker(o.FullEvery)
		defer full.Stop()
		fullC = full.C
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	var first time.Time // when the oldest pending event arrived
	var events <-chan fsnotify.Event
	var errs <-chan error
	for {
		events, errs = nil, nil
		if w.fw != nil {
			events, errs = w.fw.Events, w.fw.Errors
		}
		select {
		case <-ctx.Done():
			return nil
		case done := <-sc.rewatch:
			sc.watchedMu.Lock()
			sc.watched = nil // other directories at those paths now
			sc.watchedMu.Unlock()
			w.addTree("")
			close(done)
		case <-fullC:
			clear(w.dirty)
			w.all = false
			scan(ctx, nil)
		case ev, ok := <-events:
			if !ok {
				w.forget()
				continue
			}
			if !w.event(ev) {
				continue
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			// Trailing debounce, but never more than 10 debounce periods late.
			wait := o.Debounce
			if late := first.Add(10 * o.Debounce).Sub(now); late < wait {
				wait = max(late, 0)
			}
			debounce.Reset(wait)
		case err, ok := <-errs:
			if !ok {
				w.forget()
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				log.Info("watcher overflow; full rescan")
			} else {
				log.Warn("watcher error; full rescan", "err", err)
			}
			w.all = true
			if first.IsZero() {
				first = time.Now()
			}
			debounce.Reset(o.Debounce)
		case <-debounce.C:
			first = time.Time{}
			if w.rootLost {
				w.rootLost = false
				w.addTree("")
			}
			var paths []string
			if !w.all {
				paths = make([]string, 0, len(w.dirty))
				for p := range w.dirty {
					paths = append(paths, p)
				}
				slices.Sort(paths)
			}
			clear(w.dirty)
			w.all = false
			scan(ctx, paths)
		}
	}
}

// watcher is the state of one Watch call, owned by its goroutine.
type watcher struct {
	sc       *Scanner
	log      *slog.Logger
	fw       *fsnotify.Watcher // nil when degraded to periodic rescans
	dirty    map[string]bool
	all      bool // a full rescan is pending
	limited  bool // the watch limit was hit (warned once)
	rootLost bool // the root was moved or removed: watch it again
	// degraded is WatchOptions.Degraded (may be nil).
	degraded func(error)
}

func (w *watcher) close() error {
	if w.fw == nil {
		return nil
	}
	err := w.fw.Close()
	w.forget()
	return err
}

// forget drops the fsnotify watcher (closed, or its channels closed).
func (w *watcher) forget() {
	w.sc.watching.CompareAndSwap(w.fw, nil)
	w.fw = nil
	w.sc.watchedMu.Lock()
	w.sc.watched = nil
	w.sc.watchedMu.Unlock()
}

// WatchDir watches directory rel (folder-relative) at once, without
// waiting for the running Watch to see it created, and reports whether it
// is watched now: every later change inside it is reported. It is for a
// directory the caller has just made and fills itself (the puller): a
// report of such a directory need not be answered by walking it, because
// nothing else can have written into it before it was watched except in
// the moment between its mkdir and this call, which the caller rules out
// by finding it still empty afterwards. False when Watch is not
// running or has fallen back to periodic rescans.
func (sc *Scanner) WatchDir(rel string) bool {
	fw := sc.watching.Load()
	if fw == nil {
		return false
	}
	abs := filepath.Join(sc.root, filepath.FromSlash(rel))
	fi, err := os.Lstat(abs)
	if err != nil {
		return false
	}
	// Added and noted at once: the Watch goroutine's unwatchTree (a parent
	// renamed) runs before or after both, never between.
	sc.watchedMu.Lock()
	defer sc.watchedMu.Unlock()
	if fw.Add(abs) != nil {
		return false
	}
	sc.noteWatchedLocked(abs, fi)
	return true
}

// noteWatched notes that directory abs (fi) is watched.
func (sc *Scanner) noteWatched(abs string, fi fs.FileInfo) {
	sc.watchedMu.Lock()
	defer sc.watchedMu.Unlock()
	sc.noteWatchedLocked(abs, fi)
}

func (sc *Scanner) noteWatchedLocked(abs string, fi fs.FileInfo) {
	var ino uint64
	if fi != nil {
		ino = inode(fi)
	}
	if sc.watched == nil {
		sc.watched = map[string]uint64{}
	}
	sc.watched[abs] = ino
}

// forgetWatched drops directory abs and those below it from the list of
// watched ones: they were removed, and inotify dropped their watches.
func (sc *Scanner) forgetWatched(abs string) {
	sc.watchedMu.Lock()
	defer sc.watchedMu.Unlock()
	if _, ok := sc.watched[abs]; !ok {
		return
	}
	prefix := abs + string(filepath.Separator)
	for p := range sc.watched {
		if p == abs || strings.HasPrefix(p, prefix) {
			delete(sc.watched, p)
		}
	}
}

// unwatchTree removes the watches of directory abs and of every directory
// noted below it, and reports whether abs was watched, unless the watch
// at abs is of inode keep (not 0): that directory is watched already.
func (w *watcher) unwatchTree(abs string, keep uint64) bool {
	sc := w.sc
	sc.watchedMu.Lock()
	defer sc.watchedMu.Unlock()
	ino, ok := sc.watched[abs]
	if !ok || keep != 0 && ino == keep {
		return false
	}
	prefix := abs + string(filepath.Separator)
	for p := range sc.watched {
		if p == abs || strings.HasPrefix(p, prefix) {
			if w.fw != nil {
				_ = w.fw.Remove(p) // gone already, if fsnotify dropped it
			}
			delete(sc.watched, p)
		}
	}
	return true
}

// Rewatch has the running Watch watch every directory of the folder again,
// as after the folder's disk was mounted again: the directories at its
// paths are other ones than those it watched. It returns once they are
// watched (or ctx ends), so that a scan after it misses no change; without
// a running Watch, or one fallen back to periodic rescans, it does nothing.
func (sc *Scanner) Rewatch(ctx context.Context) {
	if sc.watching.Load() == nil {
		return
	}
	done := make(chan struct{})
	select {
	case sc.rewatch <- done:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// addTree watches directory rel and every directory below it.
func (w *watcher) addTree(rel string) {
	if w.fw == nil {
		return
	}
	abs := filepath.Join(w.sc.root, filepath.FromSlash(rel))
	_ = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if w.fw == nil {
			return filepath.SkipAll
		}
		if err != nil || !d.IsDir() {
			return nil
		}
		r, rerr := filepath.Rel(w.sc.root, p)
		if rerr != nil {
			return nil
		}
		r = filepath.ToSlash(r)
		if r == "." {
			r = ""
		}
		if r != "" && builtinIgnored(r) {
			return filepath.SkipDir
		}
		err = w.fw.Add(p)
		if err == nil {
			fi, _ := d.Info()
			w.sc.noteWatched(p, fi)
		}
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) {
				if !w.limited {
					w.limited = true
					w.log.Warn("inotify watch limit reached (raise fs.inotify.max_user_watches); falling back to periodic full rescans",
						"err", err)
					if w.degraded != nil {
						w.degraded(fmt.Errorf("inotify watch limit reached: %w", err))
					}
				}
				// Events still queued are lost with the watcher, and so
				// would be the changes they report: rescan everything.
				w.all = true
				_ = w.close()
				return filepath.SkipAll
			}
			if !errors.Is(err, fs.ErrNotExist) {
				w.log.Debug("watch directory", "path", r, "err", err)
			}
		}
		return nil
	})
}

// event records an fsnotify event as a dirty path; it reports whether the
// event should trigger a scan.
func (w *watcher) event(ev fsnotify.Event) bool {
	r, err := filepath.Rel(w.sc.root, ev.Name)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return false
	}
	rel := filepath.ToSlash(r)
	if rel == "." {
		if ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
			// The root itself was moved (or removed): fsnotify dropped its
			// watch. Watch it again before the full rescan; if it is away,
			// that scan finds it so and the caller's Rewatch follows.
			w.rootLost = true
			w.all = true
			return true
		}
		return false
	}
	if rel == IgnoreFile {
		w.all = true
		return true
	}
	if builtinIgnored(rel) {
		return false
	}
	if ev.Has(fsnotify.Rename) && w.fw != nil && w.unwatchTree(ev.Name, 0) {
		// A watched directory renamed (or moved out): inotify's watches
		// follow the inodes, and fsnotify keeps naming their events by the
		// old paths. Drop them, whether or not fsnotify dropped the
		// directory's own already (it does when the move reaches it
		// first); the Create of the new name watches the tree afresh. A
		// directory at the old name again (two swapped at once: mv
		// --exchange) is watched afresh too. (A renamed file was not
		// watched: a save's rename costs a map lookup.)
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			w.addTree(rel)
		}
	}
	if ev.Has(fsnotify.Remove) {
		w.sc.forgetWatched(ev.Name)
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			// Watches left at this name by another directory (swapped
			// away) would name this one's events wrongly, or go. One of
			// this very directory (WatchDir's) stays: removed, it would
			// miss what is written in it before it is added again.
			w.unwatchTree(ev.Name, inode(fi))
			w.addTree(rel)
		}
	}
	if w.all {
		return true
	}
	if len(w.dirty) >= maxDirty {
		w.all = true
		return true
	}
	w.dirty[rel] = true
	return true
}
