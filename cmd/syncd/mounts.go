package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A folder added where a disk would be mounted but is not would be synced
// onto the disk under it (usually the system's): the whole library from the
// other devices would fill it, and the folder's marker would be made there,
// so the real disk, once mounted, would look like another copy. 'folder add'
// refuses two such places.
var (
	fstabPath     = "/etc/fstab"
	mountinfoPath = "/proc/self/mountinfo"
	// mediaParents are where removable disks get a directory of their
	// own while they are mounted (udisks: /media/USER/LABEL or
	// /run/media/USER/LABEL, whose USER directory goes too; by hand or
	// pmount: /mnt/NAME, /media/NAME).
	mediaParents     = []string{"/mnt", "/media", "/run/media"}
	mediaUserParents = []string{"/media", "/run/media"}
)

// maxMountTable bounds what is read of /etc/fstab and of the mount table.
const maxMountTable = 16 << 20

// checkMounted refuses a folder at or below a mount point that /etc/fstab
// names but where nothing is mounted now, a folder whose first missing
// directory would be made where removable disks get theirs (a disk that is
// not mounted, or not yet) unless a disk is mounted right there, and a
// folder through a symlink to something missing. Tables that cannot be
// read refuse nothing.
func checkMounted(cmd, path string) error {
	if target, ok := dangling(path); ok {
		return danglingErr(cmd, path, target)
	}
	if mp := fstabUnmounted(path); mp != "" {
		return withHint(fmt.Errorf("%s: %s is where /etc/fstab mounts a disk, but none is mounted there now", cmd, mp),
			"mount it first (mount "+mp+"), then add the folder; a folder there now would be synced onto the disk under it")
	}
	missing := firstMissing(resolveExisting(path))
	if missing == "" {
		return nil
	}
	parent := filepath.Dir(missing)
	if target, ok := dangling(parent); ok {
		return danglingErr(cmd, parent, target)
	}
	if mounted, err := mountPoints(mountinfoPath, 4); err == nil && mounted[parent] {
		return nil // a disk is mounted right there
	}
	for _, m := range mediaParents {
		if parent == m {
			return mediaErr(cmd, missing)
		}
	}
	for _, m := range mediaUserParents {
		if filepath.Dir(parent) == m {
			return mediaErr(cmd, missing)
		}
	}
	return nil
}

// checkRootMounted is the daemon's peer.Options.NewRoot: a folder that
// never synced here gets its marker, and its files, only once the disk
// that /etc/fstab mounts at or above its path is mounted. It catches what
// 'folder add' cannot: a folder added while its disk was mounted, and the
// daemon started before the disk (at boot), or a folder added to
// config.toml by hand.
func checkRootMounted(root string) error {
	if mp := fstabUnmounted(root); mp != "" {
		return fmt.Errorf("%s is where /etc/fstab mounts a disk, but none is mounted there now; this folder waits until one is (mount %s): synced now, it would fill the disk under it", mp, mp)
	}
	return nil
}

// fstabUnmounted returns the mount point of /etc/fstab that path is at or
// below and where nothing is mounted now, or "" (see unmountedFstabMount).
func fstabUnmounted(path string) string {
	mounted, err := mountPoints(mountinfoPath, 4)
	if err != nil {
		return "" // unknown: the fstab rule refuses nothing
	}
	return unmountedFstabMount(resolveExisting(path), mounted)
}

func mediaErr(cmd, missing string) error {
	return withHint(fmt.Errorf("%s: %s does not exist; is its disk mounted?", cmd, missing),
		"mount the disk first, then add the folder; if the folder is meant to be on this system's disk, create "+missing+" yourself first")
}

func danglingErr(cmd, link, target string) error {
	return withHint(fmt.Errorf("%s: %s is a symlink to %s, which does not exist; is its disk mounted?", cmd, link, target),
		"mount the disk first, or create "+target+", or pick another path")
}

// dangling reports whether p is a symlink whose target does not exist, and
// the target.
func dangling(p string) (string, bool) {
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return "", false
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	target, err := os.Readlink(p)
	return target, err == nil
}

// firstMissing returns the shortest prefix of the clean absolute path p
// that does not exist, or "" when p exists.
func firstMissing(p string) string {
	missing := ""
	for cur := p; ; cur = filepath.Dir(cur) {
		if _, err := os.Lstat(cur); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return missing
		}
		missing = cur
		if filepath.Dir(cur) == cur {
			return missing
		}
	}
}

// unmountedFstabMount returns the mount point of /etc/fstab (other than /)
// that p is at or below and where nothing is mounted, or "". It stops at
// the first mount point up from p: what is mounted there is p's disk,
// whatever is (or is not) mounted further up. mounted nil refuses nothing.
func unmountedFstabMount(p string, mounted map[string]bool) string {
	if mounted == nil {
		return ""
	}
	fstab, err := mountPoints(fstabPath, 1)
	if err != nil {
		return ""
	}
	for cur := p; cur != "/" && cur != "."; cur = filepath.Dir(cur) {
		if mounted[cur] {
			return ""
		}
		if fstab[cur] {
			return cur
		}
	}
	return ""
}

// errTableTooLarge is returned for a mount table over maxMountTable.
var errTableTooLarge = errors.New("mount table too large")

// mountPoints reads the set of absolute paths in column col (from 0, split
// on spaces and tabs) of the table at name, skipping comments. Both
// /etc/fstab and /proc/self/mountinfo escape spaces and the like as \ooo.
// A table that cannot be read whole is an error.
func mountPoints(name string, col int) (map[string]bool, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lr := &io.LimitedReader{R: f, N: maxMountTable + 1}
	set := make(map[string]bool)
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(fields) <= col {
			continue
		}
		if p := unescapeOctal(fields[col]); filepath.IsAbs(p) {
			set[filepath.Clean(p)] = true
		}
	}
	if lr.N == 0 {
		return nil, errTableTooLarge
	}
	return set, sc.Err()
}

// unescapeOctal undoes the \ooo escapes of fstab and mountinfo.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
