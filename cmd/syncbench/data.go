package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// entry is one file the destination must hold: a slash-separated path
// relative to the folder root, its size and its SHA-256.
type entry struct {
	Path string
	Size int64
	Sum  [sha256.Size]byte
}

// sizes are the data-set dimensions; the full and quick sets differ only in
// Big.
type sizes struct {
	Big       int64 // bytes of the big file
	TreeFiles int   // files in the tree
	TreeDirs  int   // directories they are spread over
	TreeMin   int64 // smallest tree file
	TreeMax   int64 // largest tree file
	Edit      int64 // bytes of the edit file before the insert
	EditAt    int64 // offset of the insert
	EditLen   int   // bytes inserted
	Small     int64 // bytes of each latency write
	Writes    int   // latency writes
	Album     int   // files in the renamed album
	AlbumFile int64 // bytes of each
}

// fullSizes are the data sets of issue 9.
var fullSizes = sizes{
	Big: 2 << 30, TreeFiles: 10000, TreeDirs: 100, TreeMin: 1 << 10, TreeMax: 64 << 10,
	Edit: 64 << 20, EditAt: 4096, EditLen: 100, Small: 1 << 10, Writes: 20,
	Album: 256, AlbumFile: 4 << 20,
}

// quickSizes are fullSizes with a 256 MiB big file and album.
func quickSizes() sizes {
	s := fullSizes
	s.Big = 256 << 20
	s.Album = 64
	return s
}

// errSizes is returned for dimensions no data set can have.
var errSizes = errors.New("invalid data-set sizes")

func (s sizes) validate() error {
	switch {
	case s.Big <= 0 || s.Edit <= 0 || s.Small <= 0:
		return fmt.Errorf("file sizes must be positive: %w", errSizes)
	case s.TreeFiles <= 0 || s.TreeDirs <= 0 || s.TreeDirs > s.TreeFiles:
		return fmt.Errorf("tree of %d files in %d directories: %w", s.TreeFiles, s.TreeDirs, errSizes)
	case s.TreeMin <= 0 || s.TreeMax < s.TreeMin:
		return fmt.Errorf("tree file sizes %d-%d: %w", s.TreeMin, s.TreeMax, errSizes)
	case s.EditAt < 0 || s.EditAt > s.Edit || s.EditLen <= 0:
		return fmt.Errorf("insert of %d bytes at %d: %w", s.EditLen, s.EditAt, errSizes)
	case s.Writes <= 0:
		return fmt.Errorf("%d latency writes: %w", s.Writes, errSizes)
	case s.Album <= 0 || s.AlbumFile <= 0:
		return fmt.Errorf("album of %d files of %d bytes: %w", s.Album, s.AlbumFile, errSizes)
	}
	return nil
}

// rng returns the generator for one data set: the same seed and name give
// the same bytes on every machine and Go version (ChaCha8 is specified).
func rng(seed uint64, name string) *rand.ChaCha8 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	return rand.NewChaCha8(sha256.Sum256(append(b[:], "syncbench/"+name...)))
}

// writeRandom writes size bytes from r to path and returns their hash.
func writeRandom(path string, size int64, r io.Reader) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return sum, err
	}
	h := sha256.New()
	buf := make([]byte, min(size, 4<<20))
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			f.Close()
			return sum, err
		}
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return sum, err
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// writeBytes writes b to path and returns its entry under rel.
func writeBytes(path, rel string, b []byte) (entry, error) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return entry{}, err
	}
	return entry{Path: rel, Size: int64(len(b)), Sum: sha256.Sum256(b)}, nil
}

// genBig writes big.bin into stage.
func genBig(stage string, s sizes, seed uint64) ([]entry, error) {
	sum, err := writeRandom(filepath.Join(stage, "big.bin"), s.Big, rng(seed, "big"))
	if err != nil {
		return nil, fmt.Errorf("generate big.bin: %w", err)
	}
	return []entry{{Path: "big.bin", Size: s.Big, Sum: sum}}, nil
}

// treeName is the path of tree file i.
func treeName(s sizes, i int) string {
	return fmt.Sprintf("tree/d%03d/f%05d.bin", i%s.TreeDirs, i)
}

// genTree writes tree/dNNN/fNNNNN.bin into stage: s.TreeFiles files of
// s.TreeMin to s.TreeMax bytes (uniform) over s.TreeDirs directories.
func genTree(stage string, s sizes, seed uint64) ([]entry, error) {
	r := rng(seed, "tree")
	for d := range s.TreeDirs {
		if err := os.MkdirAll(filepath.Join(stage, "tree", fmt.Sprintf("d%03d", d)), 0o755); err != nil {
			return nil, err
		}
	}
	out := make([]entry, 0, s.TreeFiles)
	buf := make([]byte, s.TreeMax)
	sizeRNG := rand.New(rng(seed, "tree-sizes"))
	for i := range s.TreeFiles {
		n := s.TreeMin + sizeRNG.Int64N(s.TreeMax-s.TreeMin+1)
		r.Read(buf[:n])
		rel := treeName(s, i)
		e, err := writeBytes(filepath.Join(stage, filepath.FromSlash(rel)), rel, buf[:n])
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", rel, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// genAlbum writes album/dN/fNNN.bin into stage: s.Album files of
// s.AlbumFile bytes in four directories (the rename case's photos).
func genAlbum(stage string, s sizes, seed uint64) ([]entry, error) {
	r := rng(seed, "album")
	out := make([]entry, 0, s.Album)
	for i := range s.Album {
		rel := fmt.Sprintf("album/d%d/f%03d.bin", i%4, i)
		p := filepath.Join(stage, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		sum, err := writeRandom(p, s.AlbumFile, r)
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", rel, err)
		}
		out = append(out, entry{Path: rel, Size: s.AlbumFile, Sum: sum})
	}
	return out, nil
}

// renamed returns the entries with the top-level directory from renamed
// to to.
func renamed(es []entry, from, to string) []entry {
	out := make([]entry, len(es))
	for i, e := range es {
		e.Path = to + strings.TrimPrefix(e.Path, from)
		out[i] = e
	}
	return out
}

// diskUsage returns the bytes allocated to the files under root (st_blocks,
// hidden directories such as a trash or versions included).
func diskUsage(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && de.Type().IsRegular() {
			n += st.Blocks * 512
		}
		return nil
	})
	return n, err
}

// editContent returns the edit file before and after the insert.
func editContent(s sizes, seed uint64) (before, after []byte) {
	before = make([]byte, s.Edit)
	rng(seed, "edit").Read(before)
	ins := make([]byte, s.EditLen)
	rng(seed, "edit-insert").Read(ins)
	after = make([]byte, 0, s.Edit+int64(s.EditLen))
	after = append(after, before[:s.EditAt]...)
	after = append(after, ins...)
	after = append(after, before[s.EditAt:]...)
	return before, after
}

// genEdit writes edit.bin (the content of one step) into stage.
func genEdit(stage string, content []byte) ([]entry, error) {
	e, err := writeBytes(filepath.Join(stage, "edit.bin"), "edit.bin", content)
	if err != nil {
		return nil, fmt.Errorf("generate edit.bin: %w", err)
	}
	return []entry{e}, nil
}

// smallName is the name of latency write i.
func smallName(i int) string { return fmt.Sprintf("lat%02d.bin", i) }

// genSmall writes latency file i into stage.
func genSmall(stage string, s sizes, seed uint64, i int) ([]entry, error) {
	b := make([]byte, s.Small)
	rng(seed, fmt.Sprintf("small-%d", i)).Read(b)
	e, err := writeBytes(filepath.Join(stage, smallName(i)), smallName(i), b)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", smallName(i), err)
	}
	return []entry{e}, nil
}

// arrival tracks which expected files are not yet complete in a
// destination. Syncd, Syncthing and rsync all write a temporary file and
// rename it, so a file with the expected name and size is complete; its
// content is verified afterwards by verify.
type arrival struct {
	root    string
	pending map[string]map[string]int64 // directory (slash) -> name -> size
	left    int
}

func newArrival(root string, want []entry) *arrival {
	a := &arrival{root: root, pending: make(map[string]map[string]int64)}
	for _, e := range want {
		dir, name := pathSplit(e.Path)
		if a.pending[dir] == nil {
			a.pending[dir] = make(map[string]int64)
		}
		a.pending[dir][name] = e.Size
		a.left++
	}
	return a
}

func pathSplit(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	return p[:i], p[i+1:]
}

// poll checks the pending files and reports whether all have arrived. It
// reads each pending directory once, so a poll of 10,000 files in 100
// directories costs 100 getdents and a stat per newly seen name.
func (a *arrival) poll() (bool, error) {
	for dir, names := range a.pending {
		ents, err := os.ReadDir(filepath.Join(a.root, filepath.FromSlash(dir)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		for _, de := range ents {
			want, ok := names[de.Name()]
			if !ok || !de.Type().IsRegular() {
				continue
			}
			fi, err := de.Info()
			if err != nil || fi.Size() != want {
				continue
			}
			delete(names, de.Name())
			a.left--
		}
		if len(names) == 0 {
			delete(a.pending, dir)
		}
	}
	return a.left == 0, nil
}

// errMismatch is returned when a destination file differs from the source.
var errMismatch = errors.New("content differs from the source")

// verify hashes every expected file under root.
func verify(root string, want []entry) error {
	h := sha256.New()
	for _, e := range want {
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(e.Path)))
		if err != nil {
			return err
		}
		h.Reset()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", e.Path, err)
		}
		if n != e.Size || !bytes.Equal(h.Sum(nil), e.Sum[:]) {
			return fmt.Errorf("%s (%d bytes): %w", e.Path, n, errMismatch)
		}
	}
	return nil
}

// topLevel returns the distinct first path elements of the entries: what is
// renamed from the staging directory into the folder.
func topLevel(want []entry) []string {
	seen := make(map[string]bool)
	var out []string
	for _, e := range want {
		first, _, _ := strings.Cut(e.Path, "/")
		if !seen[first] {
			seen[first] = true
			out = append(out, first)
		}
	}
	sort.Strings(out)
	return out
}
