package index

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// An edit made through one name of a file with hard links reaches the
// watcher under that name only, and its other names in the folder kept
// their old records until the next full scan (hourly). The scanner
// remembers, by inode, the names of the files it sees with more than one
// link; when a targeted scan records new content for such a file, it
// scans the other names too. (A full scan visits every name anyway, and
// each sees the inode's new change time.)

// maxLinkNames bounds the names remembered (a few MiB); past it no more
// are, and the other names of a file wait for the next full scan.
var maxLinkNames = 20_000 // a variable for tests

// maxLinkSearched bounds linkNames.searched; past it the map starts afresh.
const maxLinkSearched = 4096

// linkNames is the scanner's memory of hard-linked names.
type linkNames struct {
	mu    sync.Mutex
	names map[uint64][]string // inode -> folder paths seen with it
	n     int
	// searched holds the inodes whose other names a targeted scan looked
	// for in the records (findLinkNames), with their link count then.
	searched map[uint64]uint64
}

// unknownNames reports, in a targeted scan, whether inode ino (with
// nlink links) may have names in the folder that the memory lacks: fewer
// of its remembered names than nlink still hold it (a hard link made
// since the other name was scanned: ln a b reaches the watcher as b
// alone; names not noted for lack of room), and the records were not
// looked through for it at this link count already. Remembered names
// that hold another inode now are forgotten. The caller looks for the
// names in the records (findLinkNames). A file whose other links are
// outside the folder is looked for once per change of its link count, not
// at every edit.
func (l *linkNames) unknownNames(root string, ino, nlink uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.searched[ino]; ok && n == nlink {
		return false
	}
	names := l.names[ino]
	live := names[:0:0]
	for _, p := range names {
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(p)))
		if err == nil && fi.Mode().IsRegular() && inode(fi) == ino {
			live = append(live, p)
		}
	}
	if len(live) < len(names) {
		l.n -= len(names) - len(live)
		if len(live) == 0 {
			delete(l.names, ino)
		} else {
			l.names[ino] = live
		}
	}
	return uint64(len(live)) < nlink
}

// searchedAt notes that the records were looked through for the names of
// inode ino at link count nlink.
func (l *linkNames) searchedAt(ino, nlink uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.searched == nil || len(l.searched) >= maxLinkSearched {
		l.searched = map[uint64]uint64{}
	}
	l.searched[ino] = nlink
}

// note remembers that rel is a name of inode ino, which has other links.
func (l *linkNames) note(ino uint64, rel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if slices.Contains(l.names[ino], rel) || l.n >= maxLinkNames {
		return
	}
	if l.names == nil {
		l.names = map[uint64][]string{}
	}
	l.names[ino] = append(l.names[ino], rel)
	l.n++
}

// others returns the names of inode ino other than rel.
func (l *linkNames) others(ino uint64, rel string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, p := range l.names[ino] {
		if p != rel {
			out = append(out, p)
		}
	}
	return out
}

// reset forgets every name: a full scan notes again those still there, so
// that names of files long gone (a rotated snapshot of hard links) do not
// fill the memory for good.
func (l *linkNames) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names, l.n, l.searched = nil, 0, nil
}

// forget drops rel from inode ino's names (it holds another inode now).
func (l *linkNames) forget(ino uint64, rel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := l.names[ino]
	if i := slices.Index(names, rel); i >= 0 {
		names = slices.Delete(names, i, i+1)
		l.n--
		if len(names) == 0 {
			delete(l.names, ino)
		} else {
			l.names[ino] = names
		}
	}
}

// linkedChanged notes, in a targeted scan, that the file rel (inode ino,
// with other links) got new content: its other names are scanned at the
// end (scanLinked).
func (s *scan) linkedChanged(ino uint64, rel string) {
	if s.full || s.linkPass {
		return
	}
	others := s.sc.links.others(ino, rel)
	if len(others) == 0 {
		return
	}
	s.rmu.Lock()
	for _, p := range others {
		s.linked = append(s.linked, linkedName{ino, p})
	}
	s.rmu.Unlock()
}

// findLinkNames looks through the folder's records, once per targeted
// scan, for other names of the inodes in s.linkSearch, and scans them
// with the names of changed files (scanLinked): each notes its name, and
// one whose record is stale (its change time moved with the new link, or
// with an edit through it) is recorded anew.
func (s *scan) findLinkNames() {
	if len(s.linkSearch) == 0 {
		return
	}
	s.sc.linkSearches++
	err := s.sc.store.WalkLocal(s.sc.folder, func(r Record) error {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if _, ok := s.linkSearch[r.Inode]; ok && !r.Deleted && r.Kind == File && !s.isSeen(r.Path) {
			s.rmu.Lock()
			s.linked = append(s.linked, linkedName{r.Inode, r.Path})
			s.rmu.Unlock()
		}
		return nil
	})
	switch {
	case err == nil:
		for ino, n := range s.linkSearch {
			s.sc.links.searchedAt(ino, n)
		}
	case s.ctx.Err() == nil:
		s.sc.log.Warn("scan: could not look for the other names of hard-linked files", "err", err)
	}
	s.linkSearch = nil
}

// linkedName is another name of a file whose content changed.
type linkedName struct {
	ino uint64
	rel string
}

// scanLinked scans the other names of the hard-linked files this
// targeted scan found changed, those that still hold the same inode and
// were not scanned already.
func (s *scan) scanLinked() {
	if len(s.linked) == 0 {
		return
	}
	s.linkPass = true
	listings := map[string]map[string]bool{} // for listedSo
	s.withWorkers(func() {
		for _, l := range s.linked {
			if s.ctx.Err() != nil {
				break
			}
			if s.isSeen(l.rel) {
				continue
			}
			fi, err := os.Lstat(filepath.Join(s.sc.root, filepath.FromSlash(l.rel)))
			if err != nil || !fi.Mode().IsRegular() || inode(fi) != l.ino || s.caseless && !s.listedSo(l.rel, listings) {
				// Gone, another file, or (on a disk that ignores case) now
				// spelled otherwise: the lstat found the new spelling.
				s.sc.links.forget(l.ino, l.rel)
				continue
			}
			s.target(l.rel)
		}
	})
	s.linked = nil
}
