package peer

import (
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/syncd-project/syncd/index"
	"golang.org/x/sys/unix"
)

// A folder on a file system that ignores case (a vfat or exFAT disk, ext4
// with casefold) holds one of the names "a.txt" and "A.txt", and a peer
// on another file system may have both. Written as it comes, the second
// lands on the first: "A.txt" replaces a.txt's content, "Photos/x.jpg"
// goes into photos/, and the next scan here reports the peer's spelling
// as deleted and the local one as new, to every device. A pull pass on
// such a folder therefore checks each path first (caseView): a path that
// would land on an entry spelled otherwise here, or on a path another
// pull of the same pass makes, is not pulled. It stays needed, is tried
// again at every pass (it syncs once one of the names is changed), is
// logged once and counted in status. A deletion of such a path deletes
// nothing here: the peer's spelling does not exist.

// caseView is one pull pass's view of the names in a folder that ignores
// case.
type caseView struct {
	rootFD int
	root   string
	mu     sync.Mutex
	// names holds directories' listings as read (folder-relative, "."
	// the root); a name missing from one that exists all the same makes
	// it read again.
	names map[string]map[string]bool
	// claims maps the folded spelling of each path this pass makes, and
	// of each directory above it, to that path.
	claims map[string]string
}

func newCaseView(rootFD int, root string) *caseView {
	return &caseView{rootFD: rootFD, root: root, names: map[string]map[string]bool{}, claims: map[string]string{}}
}

// clash returns what p, or a directory above it, would land on: an entry
// spelled otherwise here, or a path that another pull of this pass makes;
// "" when nothing. With claim, a p that lands on nothing claims its
// spellings for this pass (a deletion claims nothing).
func (v *caseView) clash(p string, claim bool) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c := v.onDisk(p); c != "" {
		return c
	}
	for q := p; q != "."; q = path.Dir(q) {
		if c, ok := v.claims[index.FoldKey(q)]; ok && c != q {
			return c
		}
	}
	if !claim {
		return ""
	}
	for q := p; q != "."; q = path.Dir(q) {
		v.claims[index.FoldKey(q)] = q
	}
	return ""
}

// onDisk returns the entry spelled otherwise that p or a directory above
// it is here, or "" when each of them is missing or spelled so.
func (v *caseView) onDisk(p string) string {
	dir := "."
	for seg := range strings.SplitSeq(p, "/") {
		cur := seg
		if dir != "." {
			cur = dir + "/" + seg
		}
		names, ok := v.names[dir]
		if !ok {
			names = v.list(dir)
		}
		if !names[seg] {
			if !v.exists(dir, seg) {
				return "" // nothing below it either
			}
			// Made since it was listed, or spelled otherwise.
			if names = v.list(dir); names == nil {
				return "" // not readable: the pull finds out why
			}
			if !names[seg] {
				return otherSpelling(dir, seg, names)
			}
		}
		dir = cur
	}
	return ""
}

// list reads the names in dir (nil when it cannot be read: the pull then
// finds out why).
func (v *caseView) list(dir string) map[string]bool {
	fd, err := openBeneath(v.rootFD, v.root, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		delete(v.names, dir)
		return nil
	}
	d := os.NewFile(uintptr(fd), nativePath(v.root, dir))
	defer d.Close()
	all, err := d.Readdirnames(-1)
	if err != nil {
		delete(v.names, dir)
		return nil
	}
	names := make(map[string]bool, len(all))
	for _, n := range all {
		names[n] = true
	}
	v.names[dir] = names
	return names
}

// exists reports whether seg is found in dir, under any spelling.
func (v *caseView) exists(dir, seg string) bool {
	dirfd := v.rootFD
	if dir != "." {
		fd, err := openBeneath(v.rootFD, v.root, dir, dirOpen)
		if err != nil {
			return false
		}
		defer unix.Close(fd)
		dirfd = fd
	}
	var st unix.Stat_t
	return unix.Fstatat(dirfd, seg, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// otherSpelling names the entry of dir that seg found: the one equal to
// it under case folding, or a description when none is (the file system
// also folds what Go does not, such as Unicode normalization).
func otherSpelling(dir, seg string, names map[string]bool) string {
	name := index.StoredName(names, seg)
	if name == "" {
		name = seg + " (spelled otherwise)"
	}
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// caseFilter checks a pass's jobs against f.cases (in path order; dirs,
// then files, then deletions): a deletion of a path spelled otherwise
// here deletes nothing (caseGone), and the other jobs that clash are held
// (holdCase) and left out.
func (f *folder) caseFilter(js []job) []job {
	out := js[:0]
	for _, j := range js {
		if j.win.Deleted {
			j.caseGone = f.cases.clash(j.path, false) != ""
		} else if f.holdCase(j) {
			continue
		}
		out = append(out, j)
	}
	return out
}

// holdCase reports whether j (not a deletion) clashes with a name here or
// of this pass; it is then not pulled, but is counted for status, logged
// once, and dirty again once the pass ends (holdDirty), for the next one.
func (f *folder) holdCase(j job) bool {
	c := f.cases.clash(j.path, true)
	if c == "" {
		return false
	}
	f.mu.Lock()
	f.caseHeld[j.path] = true
	said := f.caseSaid[j.path]
	if !said && len(f.caseSaid) < maxCaseSaid {
		f.caseSaid[j.path] = true
	}
	f.mu.Unlock()
	if !said {
		f.e.o.Logger.Warn("a peer's file is not synced here: this folder's file system ignores case, and the name differs only in case from one here; rename one of them on either device and it syncs",
			"folder", f.cfg.ID, "path", j.path, "here", c)
	}
	return true
}

// maxCaseSaid bounds the paths whose clash was logged.
const maxCaseSaid = 10000

// holdDirty marks the paths held by the pass (caseHeld, badNames) dirty
// again, quietly: the next pass, whatever starts it, tries them again.
// Not during the pass: its refills would evaluate them each time.
func (f *folder) holdDirty() {
	f.nameFitsMu.Lock()
	bad := slices.Collect(maps.Keys(f.badNames))
	f.nameFitsMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := range f.caseHeld {
		f.dirty[p] = true
	}
	for _, p := range bad {
		f.dirty[p] = true
	}
}

// frees reports whether one of the paths deleted is, under case folding,
// a held path or a directory above one: the next pass may pull it now.
func (f *folder) frees(deleted []string) bool {
	if len(deleted) == 0 {
		return false
	}
	keys := map[string]bool{}
	f.mu.Lock()
	for p := range f.caseHeld {
		for q := p; q != "."; q = path.Dir(q) {
			keys[index.FoldKey(q)] = true
		}
	}
	f.mu.Unlock()
	for _, p := range deleted {
		if keys[index.FoldKey(p)] {
			return true
		}
	}
	return false
}
