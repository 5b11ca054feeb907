package index

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScanMerge covers the ordered merge of a directory listing with its
// records: names that sort around "dir/" keys, a directory replaced by a
// file, a file replaced by a directory, and a vanished deep subtree.
func TestScanMerge(t *testing.T) {
	e := newScanEnv(t)
	for _, p := range []string{"a/b/c/f1", "a/b/g", "a/h", "a.txt", "a0", "k/l/m", "z", "q"} {
		e.write(p, p)
	}
	checkRes(t, "first", e.scan(), ScanResult{Files: 8, Dirs: 5, Changed: 13})
	checkRes(t, "unchanged", e.scan(), ScanResult{Files: 8, Dirs: 5})

	if err := os.RemoveAll(filepath.Join(e.root, "a/b")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.root, "k")); err != nil {
		t.Fatal(err)
	}
	e.write("k", "now a file")
	if err := os.Remove(filepath.Join(e.root, "q")); err != nil {
		t.Fatal(err)
	}
	e.write("q/inside", "q is a directory now")
	// Changed: k (dir -> file), q (file -> dir), q/inside. Deleted: a/b,
	// a/b/c, a/b/c/f1, a/b/g, k/l, k/l/m.
	checkRes(t, "replaced", e.scan(), ScanResult{Files: 6, Dirs: 2, Changed: 3, Deleted: 6})
	for _, tc := range []struct {
		path    string
		deleted bool
		kind    Kind
	}{
		{"a/b", true, Dir}, {"a/b/c", true, Dir}, {"a/b/c/f1", true, File}, {"a/b/g", true, File},
		{"k/l", true, Dir}, {"k/l/m", true, File}, {"k", false, File}, {"q", false, Dir},
		{"q/inside", false, File}, {"a/h", false, File}, {"a.txt", false, File}, {"a0", false, File},
	} {
		r := e.rec(tc.path)
		if r.Deleted != tc.deleted || r.Kind != tc.kind {
			t.Errorf("Local(%q) = deleted %v kind %v, want deleted %v kind %v", tc.path, r.Deleted, r.Kind, tc.deleted, tc.kind)
		}
	}
	checkRes(t, "settled", e.scan(), ScanResult{Files: 6, Dirs: 2})
}

func TestLocalDir(t *testing.T) {
	st := openTest(t, "")
	var recs []Record
	for _, p := range []string{"a", "a.b", "a/x", "a/y/z", "a0", "b/c", "c"} {
		recs = append(recs, fileRecord(p, 1, 1))
	}
	if _, err := st.PutLocal("f", recs...); err != nil {
		t.Fatal(err)
	}
	names := func(rs []Record) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Path)
		}
		return out
	}
	for _, tc := range []struct {
		dir      string
		recs     []string
		subtrees []string
	}{
		{"", []string{"a", "a.b", "a0", "c"}, []string{"a", "b"}},
		{"a", []string{"a/x"}, []string{"y"}},
		{"a/y", []string{"a/y/z"}, nil},
		{"b", []string{"b/c"}, nil},
		{"none", nil, nil},
	} {
		got, err := st.localDir("f", tc.dir)
		if err != nil {
			t.Fatalf("localDir(%q) = %v", tc.dir, err)
		}
		if d := cmp.Diff(tc.recs, names(got.recs)); d != "" {
			t.Errorf("localDir(%q) records differ (-want +got):\n%s", tc.dir, d)
		}
		if d := cmp.Diff(tc.subtrees, got.subtrees); d != "" {
			t.Errorf("localDir(%q) subtrees differ (-want +got):\n%s", tc.dir, d)
		}
		for _, r := range got.recs {
			if len(r.Blocks) != 0 || !r.Content.IsZero() || r.Size != 1 || len(r.Version) == 0 {
				t.Errorf("localDir(%q) record %+v, want stat fields and version, no blocks", tc.dir, r)
			}
		}
	}
}

// FuzzDecodeStat checks that decodeStat never panics and agrees with
// DecodeRecord on everything but the content ID and blocks.
func FuzzDecodeStat(f *testing.F) {
	for _, r := range recordSamples() {
		b, err := EncodeRecord(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, serr := decodeStat(b)
		r, err := DecodeRecord(b)
		if err != nil {
			return // decodeStat may accept what DecodeRecord refuses (bad blocks)
		}
		if serr != nil {
			t.Fatalf("decodeStat(%x) = %v, DecodeRecord accepted it", b, serr)
		}
		r.Blocks, r.Content = nil, Hash{}
		if d := cmp.Diff(r, st); d != "" {
			t.Fatalf("decodeStat differs from DecodeRecord (-want +got):\n%s", d)
		}
	})
}

// TestLocalStat: the stat part of a local record, without its blocks.
func TestLocalStat(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := Record{Path: "a/big.bin", Kind: File, Size: 3, Mode: 0o644, ModTime: 7, Inode: 9, Ctime: 11,
		Version: Vector{{Device: 1, Value: 1}}, HashVersion: HashVersion}
	r.Blocks = []Block{{Offset: 0, Size: 3, Hash: Hash{1}}}
	r.Content = ContentID(3, r.Blocks)
	if _, err := st.PutLocal("f", r); err != nil {
		t.Fatal(err)
	}
	got, ok, err := st.LocalStat("f", "a/big.bin")
	if err != nil || !ok || got.Size != 3 || got.ModTime != 7 || got.Inode != 9 || got.Ctime != 11 || got.Blocks != nil {
		t.Errorf("LocalStat = %+v, %v, %v; want the stat of the record, no blocks", got, ok, err)
	}
	if _, ok, err := st.LocalStat("f", "nope"); ok || err != nil {
		t.Errorf("LocalStat of a missing path = %v, %v", ok, err)
	}
}
