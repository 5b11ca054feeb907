package caseless_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/peer/internal/caseless"
)

// names returns the sorted names in dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

func wantNames(t *testing.T, dir string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantContent(t *testing.T, p, want string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("read %s: %v", p, err)
		return
	}
	if string(b) != want {
		t.Errorf("%s holds %q, want %q", p, b, want)
	}
}

func wantErrno(t *testing.T, what string, err error, want unix.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLookupAnyCase(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	write(t, filepath.Join(backing, "a.txt"), "hello")

	want, err := os.Stat(filepath.Join(mnt, "a.txt"))
	must(t, err)
	for _, name := range []string{"A.txt", "A.TXT", "a.TxT"} {
		fi, err := os.Stat(filepath.Join(mnt, name))
		if err != nil {
			t.Errorf("stat %s: %v", name, err)
			continue
		}
		if !os.SameFile(fi, want) {
			t.Errorf("stat %s is not the same file as stat a.txt", name)
		}
		wantContent(t, filepath.Join(mnt, name), "hello")
	}
	// The view's inode numbers are the backing directory's.
	bfi, err := os.Stat(filepath.Join(backing, "a.txt"))
	must(t, err)
	if got, want := want.Sys().(*syscall.Stat_t).Ino, bfi.Sys().(*syscall.Stat_t).Ino; got != want {
		t.Errorf("st_ino %d in the view, %d in the backing directory", got, want)
	}
	_, err = os.Stat(filepath.Join(mnt, "b.txt"))
	wantErrno(t, "stat b.txt", err, unix.ENOENT)
	// Exact spelling wins where the backing directory holds both.
	write(t, filepath.Join(backing, "A.txt"), "upper")
	wantContent(t, filepath.Join(mnt, "a.txt"), "hello")
	wantContent(t, filepath.Join(mnt, "A.txt"), "upper")
}

func TestReaddirStoredNames(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	write(t, filepath.Join(mnt, "MixedCase.TXT"), "m")
	must(t, os.Mkdir(filepath.Join(mnt, "SubDir"), 0o755))
	write(t, filepath.Join(backing, "lower.txt"), "l")
	// Looked up under other spellings first: readdir still lists the
	// stored names.
	for _, p := range []string{"mixedcase.txt", "SUBDIR", "LOWER.TXT"} {
		_, err := os.Stat(filepath.Join(mnt, p))
		must(t, err)
	}
	wantNames(t, mnt, "MixedCase.TXT", "SubDir", "lower.txt")
	wantNames(t, backing, "MixedCase.TXT", "SubDir", "lower.txt")
}

func TestCreateExisting(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	write(t, filepath.Join(backing, "a.txt"), "old")
	must(t, os.Mkdir(filepath.Join(backing, "photos"), 0o755))

	_, err := os.OpenFile(filepath.Join(mnt, "A.txt"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	wantErrno(t, "O_CREAT|O_EXCL A.txt", err, unix.EEXIST)

	// Plain O_CREAT opens a.txt.
	write(t, filepath.Join(mnt, "A.txt"), "new")
	wantContent(t, filepath.Join(backing, "a.txt"), "new")

	wantErrno(t, "mkdir Photos", os.Mkdir(filepath.Join(mnt, "Photos"), 0o755), unix.EEXIST)
	wantErrno(t, "mkdir A.TXT", os.Mkdir(filepath.Join(mnt, "A.TXT"), 0o755), unix.EEXIST)
	wantErrno(t, "symlink PHOTOS", os.Symlink("x", filepath.Join(mnt, "PHOTOS")), unix.EEXIST)
	wantErrno(t, "link a.txt A.TXT", os.Link(filepath.Join(mnt, "a.txt"), filepath.Join(mnt, "A.TXT")), unix.EEXIST)
	wantErrno(t, "mkfifo A.Txt", unix.Mkfifo(filepath.Join(mnt, "A.Txt"), 0o644), unix.EEXIST)
	wantNames(t, backing, "a.txt", "photos")
}

// TestCreateRace creates names equal under case folding from many
// goroutines at once, which the kernel's lookups do not serialize:
// exactly one of them may create.
func TestCreateRace(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	spellings := []string{"race.txt", "RACE.TXT", "Race.txt", "rACE.txt", "race.TXT", "RaCe.TxT", "RACE.txt", "race.Txt"}
	for round := range 20 {
		dir := filepath.Join(mnt, "d"+strconv.Itoa(round))
		must(t, os.Mkdir(dir, 0o755))
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created int
		)
		for _, s := range spellings {
			wg.Go(func() {
				f, err := os.OpenFile(filepath.Join(dir, s), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				if err == nil {
					f.Close()
					mu.Lock()
					created++
					mu.Unlock()
				} else if !errors.Is(err, unix.EEXIST) {
					t.Errorf("create %s: %v", s, err)
				}
			})
		}
		wg.Wait()
		if created != 1 {
			t.Errorf("round %d: %d creates succeeded, want 1", round, created)
		}
		if got := names(t, filepath.Join(backing, "d"+strconv.Itoa(round))); len(got) != 1 {
			t.Errorf("round %d: backing directory holds %q", round, got)
		}
	}
}

func TestRenameOntoOtherSpelling(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	write(t, filepath.Join(backing, "a.txt"), "a")
	write(t, filepath.Join(backing, "x"), "x")

	// RENAME_NOREPLACE refuses.
	err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(mnt, "x"), unix.AT_FDCWD, filepath.Join(mnt, "A.txt"), unix.RENAME_NOREPLACE)
	wantErrno(t, "renameat2(x, A.txt, RENAME_NOREPLACE)", err, unix.EEXIST)
	wantNames(t, backing, "a.txt", "x")

	// RENAME_EXCHANGE exchanges with a.txt; the names stay.
	must(t, unix.Renameat2(unix.AT_FDCWD, filepath.Join(mnt, "x"), unix.AT_FDCWD, filepath.Join(mnt, "A.TXT"), unix.RENAME_EXCHANGE))
	wantNames(t, backing, "a.txt", "x")
	wantContent(t, filepath.Join(backing, "a.txt"), "x")
	wantContent(t, filepath.Join(backing, "x"), "a")

	// A plain rename replaces a.txt, which keeps its stored name.
	must(t, os.Rename(filepath.Join(mnt, "x"), filepath.Join(mnt, "A.txt")))
	wantNames(t, backing, "a.txt")
	wantContent(t, filepath.Join(backing, "a.txt"), "a")
	wantContent(t, filepath.Join(mnt, "A.txt"), "a")

	// Into a directory named in another case.
	must(t, os.Mkdir(filepath.Join(backing, "photos"), 0o755))
	write(t, filepath.Join(mnt, "y"), "y")
	must(t, os.Rename(filepath.Join(mnt, "y"), filepath.Join(mnt, "PHOTOS", "Y.jpg")))
	wantNames(t, filepath.Join(backing, "photos"), "Y.jpg")

	// A directory onto an empty one named in another case.
	must(t, os.Mkdir(filepath.Join(mnt, "d"), 0o755))
	write(t, filepath.Join(mnt, "d", "f"), "f")
	must(t, os.Mkdir(filepath.Join(backing, "empty"), 0o755))
	// (os.Rename refuses to replace a directory.)
	must(t, unix.Rename(filepath.Join(mnt, "d"), filepath.Join(mnt, "EMPTY")))
	wantNames(t, backing, "a.txt", "empty", "photos")
	wantContent(t, filepath.Join(backing, "empty", "f"), "f")
}

func TestRenameCaseOnly(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	write(t, filepath.Join(backing, "a.txt"), "a")

	// Open under the old name across the rename.
	f, err := os.Open(filepath.Join(mnt, "a.txt"))
	must(t, err)
	defer f.Close()

	err = unix.Renameat2(unix.AT_FDCWD, filepath.Join(mnt, "a.txt"), unix.AT_FDCWD, filepath.Join(mnt, "A.txt"), unix.RENAME_NOREPLACE)
	wantErrno(t, "renameat2(a.txt, A.txt, RENAME_NOREPLACE)", err, unix.EEXIST)
	wantNames(t, backing, "a.txt")

	must(t, os.Rename(filepath.Join(mnt, "a.txt"), filepath.Join(mnt, "A.txt")))
	wantNames(t, backing, "A.txt")
	wantNames(t, mnt, "A.txt")
	wantContent(t, filepath.Join(mnt, "a.txt"), "a")
	b := make([]byte, 8)
	n, err := f.Read(b)
	if err != nil || string(b[:n]) != "a" {
		t.Errorf("read the file open across the rename: %q, %v", b[:n], err)
	}

	// And back, by a spelling that is neither.
	must(t, os.Rename(filepath.Join(mnt, "A.TXT"), filepath.Join(mnt, "a.txt")))
	wantNames(t, backing, "a.txt")

	// Renaming to the same name changes nothing.
	must(t, os.Rename(filepath.Join(mnt, "a.txt"), filepath.Join(mnt, "a.txt")))
	wantNames(t, backing, "a.txt")
}

// TestOpenUnderTwoSpellings renames a file open under two spellings
// through one of them: the other one's descriptor still reaches it, also
// for what the kernel does by path (fchmod).
func TestOpenUnderTwoSpellings(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	write(t, filepath.Join(backing, "a.txt"), "a")
	lower, err := os.OpenFile(filepath.Join(mnt, "a.txt"), os.O_RDWR, 0)
	must(t, err)
	defer lower.Close()
	upper, err := os.OpenFile(filepath.Join(mnt, "A.TXT"), os.O_RDWR, 0)
	must(t, err)
	defer upper.Close()
	ls, err := lower.Stat()
	must(t, err)
	us, err := upper.Stat()
	must(t, err)
	if !os.SameFile(ls, us) {
		t.Errorf("a.txt and A.TXT open are not the same file")
	}

	must(t, os.Rename(filepath.Join(mnt, "A.TXT"), filepath.Join(mnt, "b")))
	write(t, filepath.Join(mnt, "A.txt"), "new a")
	must(t, lower.Chmod(0o600))
	must(t, upper.Chmod(0o640))
	if _, err := lower.WriteAt([]byte("L"), 1); err != nil {
		t.Error(err)
	}
	if _, err := upper.WriteAt([]byte("U"), 2); err != nil {
		t.Error(err)
	}
	wantNames(t, backing, "A.txt", "b")
	wantContent(t, filepath.Join(backing, "b"), "aLU")
	wantContent(t, filepath.Join(backing, "A.txt"), "new a")
	for p, want := range map[string]os.FileMode{"b": 0o640, "A.txt": 0o644} {
		fi, err := os.Stat(filepath.Join(backing, p))
		must(t, err)
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// TestRenameDirCaseOnly records that a directory cannot change case by
// rename: the kernel finds source and target to be the same inode and
// returns success without asking the file system (as it does for ext4
// casefold or vfat).
func TestRenameDirCaseOnly(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	must(t, os.Mkdir(filepath.Join(backing, "photos"), 0o755))
	must(t, os.Rename(filepath.Join(mnt, "photos"), filepath.Join(mnt, "Photos")))
	wantNames(t, backing, "photos")
	// Through another name it does.
	must(t, os.Rename(filepath.Join(mnt, "photos"), filepath.Join(mnt, "tmp")))
	must(t, os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "Photos")))
	wantNames(t, backing, "Photos")
}

func TestRemoveAnyCase(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	write(t, filepath.Join(backing, "a.txt"), "a")
	must(t, os.Mkdir(filepath.Join(backing, "photos"), 0o755))
	// Known to the kernel under the stored name first.
	_, err := os.Stat(filepath.Join(mnt, "a.txt"))
	must(t, err)

	must(t, os.Remove(filepath.Join(mnt, "A.txt")))
	must(t, os.Remove(filepath.Join(mnt, "PHOTOS")))
	wantNames(t, backing)
	_, err = os.Stat(filepath.Join(mnt, "a.txt"))
	wantErrno(t, "stat a.txt after unlink A.txt", err, unix.ENOENT)
	wantErrno(t, "unlink A.txt again", os.Remove(filepath.Join(mnt, "A.txt")), unix.ENOENT)

	// A new file under the old name is not the old one.
	write(t, filepath.Join(mnt, "a.txt"), "new")
	wantContent(t, filepath.Join(mnt, "A.TXT"), "new")
}

func TestPathsThroughDirs(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	must(t, os.MkdirAll(filepath.Join(backing, "photos", "sub"), 0o755))

	write(t, filepath.Join(mnt, "Photos", "x.jpg"), "x")
	wantNames(t, filepath.Join(backing, "photos"), "sub", "x.jpg")
	write(t, filepath.Join(mnt, "PHOTOS", "SUB", "Deep.txt"), "d")
	wantContent(t, filepath.Join(backing, "photos", "sub", "Deep.txt"), "d")
	wantContent(t, filepath.Join(mnt, "photos", "Sub", "deep.TXT"), "d")
	must(t, os.MkdirAll(filepath.Join(mnt, "Photos", "Sub", "New", "Dir"), 0o755))
	if _, err := os.Stat(filepath.Join(backing, "photos", "sub", "New", "Dir")); err != nil {
		t.Error(err)
	}
	// Used under two spellings, in turn and open at once.
	d, err := os.Open(filepath.Join(mnt, "PHOTOS"))
	must(t, err)
	defer d.Close()
	for i := range 3 {
		for _, p := range []string{"photos", "Photos", "PHOTOS"} {
			write(t, filepath.Join(mnt, p, "f"), p+strconv.Itoa(i))
			wantContent(t, filepath.Join(mnt, "photos", "F"), p+strconv.Itoa(i))
		}
	}
	got, err := d.Readdirnames(-1)
	must(t, err)
	slices.Sort(got)
	if want := []string{"f", "sub", "x.jpg"}; !slices.Equal(got, want) {
		t.Errorf("readdir of the open PHOTOS: %q, want %q", got, want)
	}
}

// TestConcurrentSpellings uses a directory under several spellings from
// several goroutines at once (the kernel moves the one dentry it has for
// it between the names).
func TestConcurrentSpellings(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	must(t, os.MkdirAll(filepath.Join(backing, "photos", "sub"), 0o755))
	spellings := []string{"photos", "Photos", "PHOTOS", "pHOTOS"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				rel := filepath.Join(spellings[(g+i)%len(spellings)], []string{"sub", "SUB"}[i%2], "f"+strconv.Itoa(g))
				name, dir := filepath.Join(mnt, rel), filepath.Dir(filepath.Join(mnt, rel))
				if err := os.WriteFile(name, []byte(strconv.Itoa(i)), 0o644); err != nil {
					t.Errorf("write %s: %v", name, err)
					return
				}
				if _, err := os.ReadDir(dir); err != nil {
					t.Errorf("readdir %s: %v", dir, err)
					return
				}
				if _, err := os.Stat(filepath.Join(mnt, strings.ToUpper(rel))); err != nil {
					t.Errorf("stat %s: %v", strings.ToUpper(rel), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := names(t, filepath.Join(backing, "photos", "sub")); len(got) != 8 {
		t.Errorf("backing photos/sub holds %q, want f0 to f7", got)
	}
	wantNames(t, backing, "photos")
}

// TestBackingChangesSeen: the kernel caches no entries or attributes, so
// changes made in the backing directory show at once.
func TestBackingChangesSeen(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	for i := range 20 {
		name := "f" + strconv.Itoa(i)
		_, err := os.Stat(filepath.Join(mnt, strings.ToUpper(name)))
		wantErrno(t, "stat before create", err, unix.ENOENT)
		write(t, filepath.Join(backing, name), name)
		wantContent(t, filepath.Join(mnt, strings.ToUpper(name)), name)
		write(t, filepath.Join(backing, name), name+"-longer")
		fi, err := os.Stat(filepath.Join(mnt, name))
		must(t, err)
		if fi.Size() != int64(len(name+"-longer")) {
			t.Errorf("size %d after the backing file grew to %d", fi.Size(), len(name+"-longer"))
		}
		must(t, os.Rename(filepath.Join(backing, name), filepath.Join(backing, name+".moved")))
		_, err = os.Stat(filepath.Join(mnt, name))
		wantErrno(t, "stat after rename in backing", err, unix.ENOENT)
		wantContent(t, filepath.Join(mnt, strings.ToUpper(name)+".MOVED"), name+"-longer")
	}
	// Names added in the backing directory right after a lookup of
	// another spelling there (which reads and caches its listing).
	for i := range 200 {
		name := "g" + strconv.Itoa(i)
		_, err := os.Stat(filepath.Join(mnt, strings.ToUpper(name)))
		wantErrno(t, "stat before create", err, unix.ENOENT)
		write(t, filepath.Join(backing, name), name)
		if _, err := os.Stat(filepath.Join(mnt, strings.ToUpper(name))); err != nil {
			t.Errorf("stat %s right after creating %s in the backing directory: %v", strings.ToUpper(name), name, err)
		}
		must(t, os.Remove(filepath.Join(backing, name)))
		_, err = os.Stat(filepath.Join(mnt, strings.ToUpper(name)))
		wantErrno(t, "stat after remove in backing", err, unix.ENOENT)
	}
}

// TestSyscalls runs what syncd does to its folders, on the view.
func TestSyscalls(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	must(t, os.MkdirAll(filepath.Join(backing, "photos", "sub"), 0o755))
	write(t, filepath.Join(backing, "photos", "sub", "x.jpg"), "0123456789")
	must(t, os.Symlink("sub", filepath.Join(backing, "photos", "link")))

	root, err := unix.Open(mnt, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(root)

	how := func(flags uint64) *unix.OpenHow {
		return &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	}

	t.Run("openat2", func(t *testing.T) {
		fd, err := unix.Openat2(root, "PHOTOS/Sub/X.JPG", how(unix.O_RDONLY))
		must(t, err)
		b := make([]byte, 16)
		n, err := unix.Read(fd, b)
		unix.Close(fd)
		if err != nil || string(b[:n]) != "0123456789" {
			t.Errorf("read: %q, %v", b[:n], err)
		}
		_, err = unix.Openat2(root, "photos/LINK/x.jpg", how(unix.O_RDONLY))
		wantErrno(t, "openat2 through a symlink", err, unix.ELOOP)
		_, err = unix.Openat2(root, "../x", how(unix.O_RDONLY))
		wantErrno(t, "openat2 ../x", err, unix.EXDEV)
		fd, err = unix.Openat2(root, "Photos/New.txt", &unix.OpenHow{Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_CLOEXEC, Mode: 0o600, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
		must(t, err)
		unix.Close(fd)
		wantContent(t, filepath.Join(backing, "photos", "New.txt"), "")
		_, err = unix.Openat2(root, "PHOTOS/NEW.TXT", &unix.OpenHow{Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_CLOEXEC, Mode: 0o600, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
		wantErrno(t, "openat2 O_CREAT|O_EXCL of another spelling", err, unix.EEXIST)
	})

	// O_PATH directory descriptors, as syncd holds them.
	dir, err := unix.Openat2(root, "Photos/SUB", how(unix.O_PATH|unix.O_DIRECTORY))
	must(t, err)
	defer unix.Close(dir)
	proc := func(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

	t.Run("fstatat", func(t *testing.T) {
		var st unix.Stat_t
		must(t, unix.Fstatat(dir, "X.jpg", &st, unix.AT_SYMLINK_NOFOLLOW))
		if st.Size != 10 || st.Mode&unix.S_IFMT != unix.S_IFREG {
			t.Errorf("fstatat: size %d mode %o", st.Size, st.Mode)
		}
		var lst unix.Stat_t
		must(t, unix.Fstatat(root, "photos/link", &lst, unix.AT_SYMLINK_NOFOLLOW))
		if lst.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("fstatat of a symlink: mode %o", lst.Mode)
		}
	})

	t.Run("statx btime", func(t *testing.T) {
		var sx unix.Statx_t
		must(t, unix.Statx(unix.AT_FDCWD, filepath.Join(mnt, "photos", "sub", "X.JPG"), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME|unix.STATX_BASIC_STATS, &sx))
		var bx unix.Statx_t
		must(t, unix.Statx(unix.AT_FDCWD, filepath.Join(backing, "photos", "sub", "x.jpg"), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &bx))
		if bx.Mask&unix.STATX_BTIME != 0 && (sx.Mask&unix.STATX_BTIME == 0 || sx.Btime != bx.Btime) {
			t.Errorf("statx btime: mask %#x %v, backing %v", sx.Mask, sx.Btime, bx.Btime)
		}
	})

	t.Run("O_PATH file, chmod and utimensat through /proc", func(t *testing.T) {
		fd, err := unix.Openat(dir, "x.JPG", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		must(t, err)
		defer unix.Close(fd)
		must(t, unix.Chmod(proc(fd), 0o600))
		mt := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, proc(fd), ts, 0))
		fi, err := os.Stat(filepath.Join(backing, "photos", "sub", "x.jpg"))
		must(t, err)
		if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mt) {
			t.Errorf("backing file: mode %v mtime %v, want 0600 %v", fi.Mode(), fi.ModTime(), mt)
		}
	})

	t.Run("utimensat and fchmodat at a directory", func(t *testing.T) {
		mt := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mt.UnixNano())}
		must(t, unix.UtimesNanoAt(dir, "X.jpg", ts, unix.AT_SYMLINK_NOFOLLOW))
		must(t, unix.Fchmodat(dir, "X.JPG", 0o640, 0))
		fi, err := os.Stat(filepath.Join(backing, "photos", "sub", "x.jpg"))
		must(t, err)
		if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mt) {
			t.Errorf("backing file: mode %v mtime %v, want 0640 %v", fi.Mode(), fi.ModTime(), mt)
		}
	})

	t.Run("write, fchmod, fsync, fadvise, sync_file_range, fallocate, ftruncate", func(t *testing.T) {
		fd, err := unix.Openat(dir, "Tmp.partial", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		must(t, err)
		defer unix.Close(fd)
		data := bytes.Repeat([]byte("abcdefgh"), 8192)
		if _, err := unix.Pwrite(fd, data, 0); err != nil {
			t.Fatal(err)
		}
		must(t, unix.SyncFileRange(fd, 0, int64(len(data)), unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER))
		must(t, unix.Fadvise(fd, 0, int64(len(data)), unix.FADV_DONTNEED))
		must(t, unix.Fsync(fd))
		must(t, unix.Fdatasync(fd))
		must(t, unix.Fchmod(fd, 0o644))
		must(t, unix.Fallocate(fd, 0, 0, 1<<20))
		must(t, unix.Ftruncate(fd, int64(len(data))))
		var st unix.Stat_t
		must(t, unix.Fstat(fd, &st))
		if st.Size != int64(len(data)) || st.Mode&0o777 != 0o644 {
			t.Errorf("fstat: size %d mode %o", st.Size, st.Mode)
		}
		b, err := os.ReadFile(filepath.Join(backing, "photos", "sub", "Tmp.partial"))
		must(t, err)
		if !bytes.Equal(b, data) {
			t.Errorf("backing file differs")
		}
	})

	t.Run("copy_file_range", func(t *testing.T) {
		in, err := os.Open(filepath.Join(mnt, "PHOTOS", "sub", "x.jpg"))
		must(t, err)
		defer in.Close()
		out, err := os.Create(filepath.Join(mnt, "photos", "Copy.jpg"))
		must(t, err)
		defer out.Close()
		n, err := unix.CopyFileRange(int(in.Fd()), nil, int(out.Fd()), nil, 100, 0)
		if err != nil || n != 10 {
			t.Errorf("copy_file_range: %d, %v", n, err)
		}
		wantContent(t, filepath.Join(backing, "photos", "Copy.jpg"), "0123456789")
	})

	t.Run("fsync directory and syncfs", func(t *testing.T) {
		fd, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		must(t, err)
		defer unix.Close(fd)
		must(t, unix.Fsync(fd))
		must(t, unix.Syncfs(fd))
	})

	t.Run("renameat2 and linkat at O_PATH directories", func(t *testing.T) {
		write(t, filepath.Join(mnt, "photos", "sub", "t1"), "t1")
		photos, err := unix.Openat2(root, "PHOTOS", how(unix.O_PATH|unix.O_DIRECTORY))
		must(t, err)
		defer unix.Close(photos)
		must(t, unix.Renameat2(dir, "T1", photos, "Moved", unix.RENAME_NOREPLACE))
		wantErrno(t, "renameat2 NOREPLACE onto MOVED", unix.Renameat2(photos, "copy.jpg", photos, "MOVED", unix.RENAME_NOREPLACE), unix.EEXIST)
		must(t, unix.Linkat(photos, "moved", dir, "Hard", 0))
		wantErrno(t, "linkat onto HARD", unix.Linkat(photos, "moved", dir, "HARD", 0), unix.EEXIST)
		wantContent(t, filepath.Join(backing, "photos", "sub", "Hard"), "t1")
		wantContent(t, filepath.Join(backing, "photos", "Moved"), "t1")
		must(t, unix.Renameat2(photos, "MOVED", dir, "hard", unix.RENAME_EXCHANGE))
	})

	t.Run("symlinks", func(t *testing.T) {
		must(t, os.Symlink("../target", filepath.Join(mnt, "Photos", "New-Link")))
		got, err := os.Readlink(filepath.Join(mnt, "photos", "NEW-LINK"))
		if err != nil || got != "../target" {
			t.Errorf("readlink: %q, %v", got, err)
		}
		got, err = os.Readlink(filepath.Join(backing, "photos", "New-Link"))
		if err != nil || got != "../target" {
			t.Errorf("readlink in backing: %q, %v", got, err)
		}
	})

	t.Run("xattrs", func(t *testing.T) {
		p := filepath.Join(mnt, "PHOTOS", "SUB", "X.JPG")
		err := unix.Lsetxattr(p, "user.test", []byte("v"), 0)
		if errors.Is(err, unix.ENOTSUP) {
			t.Skip("the backing file system has no user xattrs")
		}
		must(t, err)
		b := make([]byte, 16)
		n, err := unix.Lgetxattr(p, "user.test", b)
		if err != nil || string(b[:n]) != "v" {
			t.Errorf("getxattr: %q, %v", b[:n], err)
		}
		_, err = unix.Lgetxattr(p, "user.none", b)
		wantErrno(t, "getxattr of a missing one", err, unix.ENODATA)
		n, err = unix.Llistxattr(p, make([]byte, 256))
		if err != nil || n == 0 {
			t.Errorf("listxattr: %d, %v", n, err)
		}
		must(t, unix.Lremovexattr(p, "user.test"))
	})

	t.Run("ioctl", func(t *testing.T) {
		f, err := os.Open(filepath.Join(mnt, "photos", "sub", "x.jpg"))
		must(t, err)
		defer f.Close()
		// Whatever the answer, it is an answer, and the file still
		// reads.
		_, err = unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
		t.Logf("FS_IOC_GETFLAGS: %v", err)
		b := make([]byte, 4)
		if _, err := f.ReadAt(b, 0); err != nil || string(b) != "0123" {
			t.Errorf("read after ioctl: %q, %v", b, err)
		}
	})

	t.Run("O_TMPFILE", func(t *testing.T) {
		fd, err := unix.Open(filepath.Join(mnt, "PHOTOS"), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Skipf("O_TMPFILE: %v", err)
		}
		defer unix.Close(fd)
		if _, err := unix.Write(fd, []byte("tmp")); err != nil {
			t.Error(err)
		}
	})
}

// TestUnmountBusy: the unmount function succeeds with files open in the
// mount, and the mount is gone after it.
func TestUnmountBusy(t *testing.T) {
	backing, mnt := t.TempDir(), t.TempDir()
	unmount, err := caseless.Mount(backing, mnt)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { unmount() })
	write(t, filepath.Join(mnt, "open.txt"), "open")
	f, err := os.Open(filepath.Join(mnt, "open.txt"))
	must(t, err)
	defer f.Close()
	d, err := os.Open(mnt)
	must(t, err)
	defer d.Close()

	must(t, unmount())
	must(t, unmount()) // again: nothing to do
	if mounted(t, mnt) {
		t.Errorf("%s is still mounted", mnt)
	}
	// What was open stays usable until closed.
	b := make([]byte, 8)
	if n, err := f.ReadAt(b, 0); string(b[:n]) != "open" {
		t.Errorf("read after lazy unmount: %q, %v", b[:n], err)
	}
}

func TestUnmountIdle(t *testing.T) {
	backing, mnt := t.TempDir(), t.TempDir()
	unmount, err := caseless.Mount(backing, mnt)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	write(t, filepath.Join(mnt, "f"), "f")
	must(t, unmount())
	if mounted(t, mnt) {
		t.Errorf("%s is still mounted", mnt)
	}
	wantContent(t, filepath.Join(backing, "f"), "f")
	wantNames(t, mnt)
}

func TestMountErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := caseless.Mount(filepath.Join(dir, "missing"), dir); err == nil {
		t.Error("Mount of a missing backing directory succeeded")
	}
	write(t, filepath.Join(dir, "file"), "")
	if _, err := caseless.Mount(filepath.Join(dir, "file"), dir); err == nil {
		t.Error("Mount of a file succeeded")
	}
}

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestVfatNames: with VfatNames, names with a character vfat refuses
// cannot be made (EINVAL) nor found, and trailing dots and spaces are
// dropped, when making a name and when looking one up.
func TestVfatNames(t *testing.T) {
	mnt, backing := caseless.MountForTestWith(t, caseless.Options{VfatNames: true})
	for _, bad := range []string{"what?.mp3", "a:b", `x"y`, "a*", "l<r>", `back\slash`, "pi|pe", "tab\t", "..."} {
		err := os.WriteFile(filepath.Join(mnt, bad), nil, 0o644)
		wantErrno(t, "create "+bad, err, unix.EINVAL)
		wantErrno(t, "mkdir "+bad, os.Mkdir(filepath.Join(mnt, bad), 0o755), unix.EINVAL)
	}
	write(t, filepath.Join(mnt, "Track 1. "), "one")
	must(t, os.Mkdir(filepath.Join(mnt, "dir."), 0o755))
	wantNames(t, backing, "Track 1", "dir")
	wantContent(t, filepath.Join(mnt, "track 1..."), "one")
	must(t, os.Rename(filepath.Join(mnt, "Track 1"), filepath.Join(mnt, "dir.", "t.")))
	wantNames(t, filepath.Join(backing, "dir"), "t")
	wantErrno(t, "rename to a bad name", os.Rename(filepath.Join(mnt, "dir", "t"), filepath.Join(mnt, "t?")), unix.EINVAL)
	_, err := os.Lstat(filepath.Join(mnt, "a?"))
	wantErrno(t, "lstat a bad name", err, unix.ENOENT)
	// Without the option such names are ordinary.
	plain, plainBacking := caseless.MountForTest(t)
	write(t, filepath.Join(plain, "what?."), "q")
	wantNames(t, plainBacking, "what?.")
}
