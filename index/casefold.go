package index

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// IgnoresCase reports whether the folder at root is on a file system that
// ignores case (a vfat or exFAT disk, ext4 with casefold): its marker
// directory is found as ".SYNCD" too, the same directory. ext4 casefold
// is set per directory, and directories made below one that has it
// inherit it, so the root's answer holds for the folder.
func IgnoresCase(root string) bool {
	lower, err := os.Lstat(filepath.Join(root, ".syncd"))
	if err != nil {
		return false
	}
	upper, err := os.Lstat(filepath.Join(root, ".SYNCD"))
	return err == nil && os.SameFile(lower, upper)
}

// StoredName returns the name in names that seg matches under case
// folding (strings.EqualFold), the first in byte order, or "" when none
// does.
func StoredName(names map[string]bool, seg string) string {
	found := ""
	for n := range names {
		if strings.EqualFold(n, seg) && (found == "" || n < found) {
			found = n
		}
	}
	return found
}

// FoldKey is s under Unicode simple case folding, as strings.EqualFold
// compares: each letter as the smallest of its case variants (a byte
// that is not UTF-8 as U+FFFD; paths are UTF-8). Two names have one key
// exactly when strings.EqualFold takes them as equal.
func FoldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for c := unicode.SimpleFold(r); c != r; c = unicode.SimpleFold(c) {
			m = min(m, c)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// caseNames is what a targeted scan of a folder that ignores case knows
// of its directories: their listings (names as stored) and which
// recorded names fold to which key, each read once per scan.
type caseNames struct {
	s        *scan
	listings map[string]map[string]bool     // directory ("." the root) -> names on disk
	recorded map[string]map[string][]string // directory -> FoldKey -> live recorded names
}

// list reads the names in dir, again if fresh.
func (c *caseNames) list(dir string, fresh bool) map[string]bool {
	if names, ok := c.listings[dir]; ok && !fresh {
		return names
	}
	names, err := ListNames(filepath.Join(c.s.sc.root, filepath.FromSlash(dir)))
	if err != nil {
		names = nil
	}
	c.listings[dir] = names
	return names
}

// ListNames returns the names in the directory dir.
func ListNames(dir string) (map[string]bool, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	all, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(all))
	for _, n := range all {
		names[n] = true
	}
	return names, nil
}

// stale returns the recorded paths of dir's children that are seg under
// case folding but are not on disk so spelled (names): names the file
// system no longer holds, whatever the watcher reported.
func (c *caseNames) stale(dir, seg string, names map[string]bool) []string {
	if names == nil {
		return nil // not listed: nothing known of what is there
	}
	byKey, ok := c.recorded[dir]
	if !ok {
		d := dir
		if d == "." {
			d = ""
		}
		recs, err := c.s.sc.store.localDir(c.s.sc.folder, d)
		if err != nil {
			c.s.pathErr(d, "read index", err)
			return nil
		}
		byKey = map[string][]string{}
		for _, r := range recs.recs {
			if !r.Deleted {
				name := path.Base(r.Path)
				byKey[FoldKey(name)] = append(byKey[FoldKey(name)], name)
			}
		}
		c.recorded[dir] = byKey
	}
	var out []string
	for _, name := range byKey[FoldKey(seg)] {
		if !names[name] {
			out = append(out, path.Join(dir, name))
		}
	}
	return out
}

// storedSpellings returns the targets of a scan (folder-relative) with each
// name that exists spelled as the file system stores it, and the recorded
// paths that the targets name under another spelling and that are not on
// disk so spelled (stale: for vanished). On a file system that ignores
// case the watcher reports a name as the program that changed it spelled
// it: README.MD for readme.md. Scanned so, a write was a second record of
// the same file (peers got a copy under that name), and a deletion or a
// rename found no record to bury (peers kept the file). A rename that
// changes only the case leaves the old spelling recorded but found on
// disk; it is stale too.
func (s *scan) storedSpellings(paths []string) (out, stale []string) {
	c := &caseNames{s: s, listings: map[string]map[string]bool{}, recorded: map[string]map[string][]string{}}
	out = make([]string, 0, len(paths))
	for _, p := range paths {
		rel := cleanRel(p)
		if rel == "" || ValidPath(rel) != nil {
			out = append(out, p)
			continue
		}
		segs := strings.Split(rel, "/")
		dir := "."
		for i, seg := range segs {
			names := c.list(dir, false)
			if !names[seg] {
				_, err := os.Lstat(filepath.Join(s.sc.root, filepath.FromSlash(path.Join(dir, seg))))
				exists := err == nil
				if exists {
					names = c.list(dir, true) // new since it was listed, or spelled otherwise
				}
				if !names[seg] {
					stale = append(stale, c.stale(dir, seg, names)...)
					if !exists {
						break // nothing below it to spell
					}
					if n := StoredName(names, seg); n != "" {
						segs[i] = n
					}
				}
			}
			dir = path.Join(dir, segs[i])
		}
		out = append(out, strings.Join(segs, "/"))
	}
	slices.Sort(stale)
	return out, slices.Compact(stale)
}

// listedSo reports whether rel and each directory above it are in their
// directories' listings as spelled, or a directory on the way cannot be
// listed (a folder that ignores case finds them
// under any spelling: Docs/a.txt after Docs was renamed DOCS). listings
// caches the directories read, for one bury.
func (s *scan) listedSo(rel string, listings map[string]map[string]bool) bool {
	dir := "."
	for seg := range strings.SplitSeq(rel, "/") {
		names, ok := listings[dir]
		if !ok {
			names, _ = ListNames(filepath.Join(s.sc.root, filepath.FromSlash(dir)))
			listings[dir] = names
		}
		if names == nil {
			return true // not readable: nothing known, so nothing buried
		}
		if !names[seg] {
			return false
		}
		dir = path.Join(dir, seg)
	}
	return true
}
