package index

import (
	"os"
	"path"
	"path/filepath"
	"strings"
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

// storedSpellings returns paths (folder-relative) with each name that
// exists spelled as the file system stores it. On a file system that
// ignores case the watcher reports a name as the program that changed it
// spelled it (README.MD for readme.md): scanned so, it would become a
// second record of the same file, and peers would get a copy under that
// name, deleted again by the next full scan. A directory is listed once
// per call, and again when a name that exists is not in its listing (new
// since).
func storedSpellings(root string, paths []string) []string {
	listings := map[string]map[string]bool{}
	list := func(dir string) map[string]bool {
		d, err := os.Open(filepath.Join(root, filepath.FromSlash(dir)))
		if err != nil {
			return nil
		}
		defer d.Close()
		all, err := d.Readdirnames(-1)
		if err != nil {
			return nil
		}
		names := make(map[string]bool, len(all))
		for _, n := range all {
			names[n] = true
		}
		listings[dir] = names
		return names
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		rel := cleanRel(p)
		if rel == "" || ValidPath(rel) != nil {
			out = append(out, p)
			continue
		}
		segs := strings.Split(rel, "/")
		dir := "."
		for i, seg := range segs {
			names, ok := listings[dir]
			if !ok {
				names = list(dir)
			}
			if !names[seg] {
				if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(path.Join(dir, seg)))); err != nil {
					break // missing: nothing below it to spell
				}
				if names = list(dir); !names[seg] {
					if n := StoredName(names, seg); n != "" {
						segs[i] = n
					}
				}
			}
			dir = path.Join(dir, segs[i])
		}
		out = append(out, strings.Join(segs, "/"))
	}
	return out
}
