package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// smallSizes is a data set small enough for tests.
var smallSizes = sizes{
	Big: 3<<20 + 17, TreeFiles: 50, TreeDirs: 7, TreeMin: 1, TreeMax: 3000,
	Edit: 1 << 20, EditAt: 4096, EditLen: 100, Small: 1 << 10, Writes: 3,
	Album: 5, AlbumFile: 5000,
}

func TestSizesValidate(t *testing.T) {
	if err := fullSizes.validate(); err != nil {
		t.Errorf("fullSizes.validate() = %v, want nil", err)
	}
	if err := quickSizes().validate(); err != nil || quickSizes().Big != 256<<20 {
		t.Errorf("quickSizes() = %+v, %v; want a valid 256 MiB set", quickSizes(), err)
	}
	bad := []func(*sizes){
		func(s *sizes) { s.Big = 0 },
		func(s *sizes) { s.TreeDirs = s.TreeFiles + 1 },
		func(s *sizes) { s.TreeMax = s.TreeMin - 1 },
		func(s *sizes) { s.EditAt = s.Edit + 1 },
		func(s *sizes) { s.Writes = 0 },
		func(s *sizes) { s.Album = 0 },
		func(s *sizes) { s.AlbumFile = 0 },
	}
	if err := smallSizes.validate(); err != nil {
		t.Fatalf("smallSizes.validate() = %v, want nil", err)
	}
	for i, f := range bad {
		s := smallSizes
		f(&s)
		if err := s.validate(); !errors.Is(err, errSizes) {
			t.Errorf("validate(case %d: %+v) = %v, want errSizes", i, s, err)
		}
	}
}

// TestDeterministic: the same seed gives the same files, another seed
// different ones, and every generated file verifies.
func TestDeterministic(t *testing.T) {
	gen := func(seed uint64) []entry {
		dir := t.TempDir()
		var all []entry
		for _, g := range []func(string) ([]entry, error){
			func(d string) ([]entry, error) { return genBig(d, smallSizes, seed) },
			func(d string) ([]entry, error) { return genTree(d, smallSizes, seed) },
			func(d string) ([]entry, error) { return genSmall(d, smallSizes, seed, 2) },
		} {
			e, err := g(dir)
			if err != nil {
				t.Fatalf("generate: %v", err)
			}
			all = append(all, e...)
		}
		if err := verify(dir, all); err != nil {
			t.Fatalf("verify(generated) = %v, want nil", err)
		}
		return all
	}
	a, b, c := gen(1), gen(1), gen(2)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("gen(1) twice differs (-first +second):\n%s", diff)
	}
	if cmp.Equal(a[0], c[0]) {
		t.Errorf("gen(1) and gen(2) give the same big file")
	}
	if got, want := len(a), 1+smallSizes.TreeFiles+1; got != want {
		t.Errorf("len(gen(1)) = %d, want %d", got, want)
	}
	for _, e := range a[1 : 1+smallSizes.TreeFiles] {
		if e.Size < smallSizes.TreeMin || e.Size > smallSizes.TreeMax {
			t.Errorf("tree file %s has %d bytes, want %d-%d", e.Path, e.Size, smallSizes.TreeMin, smallSizes.TreeMax)
		}
	}
	if got := topLevel(a); !cmp.Equal(got, []string{"big.bin", "lat02.bin", "tree"}) {
		t.Errorf("topLevel() = %v, want [big.bin lat02.bin tree]", got)
	}
}

func TestEditContent(t *testing.T) {
	before, after := editContent(smallSizes, 5)
	if got, want := int64(len(after)), smallSizes.Edit+int64(smallSizes.EditLen); got != want {
		t.Fatalf("len(after) = %d, want %d", got, want)
	}
	at := smallSizes.EditAt
	if !bytes.Equal(after[:at], before[:at]) || !bytes.Equal(after[at+int64(smallSizes.EditLen):], before[at:]) {
		t.Errorf("editContent: after is not before with an insert at %d", at)
	}
	if bytes.Equal(after[at:at+100], before[at:at+100]) {
		t.Errorf("editContent: the insert equals the original bytes")
	}
}

func TestArrivalAndVerify(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	want, err := genTree(src, smallSizes, 3)
	if err != nil {
		t.Fatal(err)
	}
	a := newArrival(dst, want)
	if done, err := a.poll(); done || err != nil {
		t.Fatalf("poll(empty) = %v, %v; want false, nil", done, err)
	}
	if err := os.Rename(filepath.Join(src, "tree"), filepath.Join(dst, "tree")); err != nil {
		t.Fatal(err)
	}
	// A file of the wrong size has not arrived.
	p := filepath.Join(dst, filepath.FromSlash(want[0].Path))
	good, _ := os.ReadFile(p)
	if err := os.WriteFile(p, append(good, 'x'), 0o644); err != nil {
		t.Fatal(err)
	}
	if done, err := a.poll(); done || err != nil || a.left != 1 {
		t.Fatalf("poll(one file too long) = %v, %v, left %d; want false, nil, 1", done, err, a.left)
	}
	// Same size, other content: arrived, but does not verify.
	bad := bytes.Clone(good)
	bad[0] ^= 1
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if done, err := a.poll(); !done || err != nil {
		t.Fatalf("poll(all there) = %v, %v; want true, nil", done, err)
	}
	if err := verify(dst, want); !errors.Is(err, errMismatch) {
		t.Errorf("verify(one byte flipped) = %v, want errMismatch", err)
	}
	if err := os.WriteFile(p, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verify(dst, want); err != nil {
		t.Errorf("verify(good) = %v, want nil", err)
	}
}

// TestAlbumRenamed: the album's entries under their new top-level name
// verify after the directory is renamed, and the destination's disk usage
// counts the album's blocks, trash-like hidden directories included.
func TestAlbumRenamed(t *testing.T) {
	dir := t.TempDir()
	album, err := genAlbum(dir, smallSizes, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(album) != smallSizes.Album || album[4].Path != "album/d0/f004.bin" {
		t.Fatalf("genAlbum() = %d entries, the fifth %q", len(album), album[4].Path)
	}
	du0, err := diskUsage(dir)
	if err != nil || du0 < int64(smallSizes.Album)*smallSizes.AlbumFile {
		t.Fatalf("diskUsage() = %d, %v; want at least the album's bytes", du0, err)
	}
	if err := os.Rename(filepath.Join(dir, "album"), filepath.Join(dir, "photos")); err != nil {
		t.Fatal(err)
	}
	if err := verify(dir, renamed(album, "album/", "photos/")); err != nil {
		t.Errorf("verify(renamed) = %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".syncd/trash"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := writeBytes(filepath.Join(dir, ".syncd/trash/x"), "x", make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	if du1, err := diskUsage(dir); err != nil || du1 <= du0 {
		t.Errorf("diskUsage() with a trash entry = %d, %v; want more than %d", du1, err, du0)
	}
}
