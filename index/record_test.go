package index

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"a", true},
		{"a/b/c.txt", true},
		{".syncdignore", true},
		{".syncdx/a", true},
		{"a/.syncd/b", true},
		{"ab:c", true},
		{"a:b", false},
		{"", false},
		{".", false},
		{"..", false},
		{"../a", false},
		{"a/../b", false},
		{"a/..", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{"./a", false},
		{"a/./b", false},
		{"a\\b", false},
		{"C:/x", false},
		{"c:", false},
		{"a\x00b", false},
		{"caf\xe9.mp3", false},
		{"d/caf\xc3", false},
		{"caf\u00e9/\u00e9t\u00e9.mp3", true},
		{".syncd", false},
		{".syncd/trash/x", false},
		{strings.Repeat("a", MaxPathLen), true},
		{strings.Repeat("a", MaxPathLen+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := ValidPath(tt.path)
			if (err == nil) != tt.ok {
				t.Errorf("ValidPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidPath) {
				t.Errorf("ValidPath(%q) = %v, want wrapping ErrInvalidPath", tt.path, err)
			}
		})
	}
}

// fileRecord returns a valid file record of size bytes with blocks of at
// most bs bytes (fake hashes).
func fileRecord(path string, size, bs int64) Record {
	r := Record{Path: path, Kind: File, Size: size, Mode: 0o644, ModTime: 1700000000123456789, HashVersion: HashVersion,
		Version: Vector{{Device: 7, Value: 3}, {Device: 9, Value: 1}}, Sequence: 42, Inode: 1234, Ctime: 1700000000987654321}
	for off := int64(0); off < size; off += bs {
		n := min(bs, size-off)
		var h Hash
		h[0], h[1] = byte(off), byte(n)
		r.Blocks = append(r.Blocks, Block{Offset: off, Size: n, Hash: h})
	}
	r.Content = ContentID(size, r.Blocks)
	return r
}

func TestValidate(t *testing.T) {
	good := fileRecord("a/b", 3*MaxBlockSize+5, MaxBlockSize)
	tests := []struct {
		name string
		mod  func(r *Record)
		ok   bool
	}{
		{"file", func(r *Record) {}, true},
		{"empty file", func(r *Record) { *r = fileRecord("e", 0, 1) }, true},
		{"small file", func(r *Record) { *r = fileRecord("e", 10, 10) }, true},
		{"dir", func(r *Record) { *r = Record{Path: "d", Kind: Dir, Mode: 0o755, Version: r.Version} }, true},
		{"symlink", func(r *Record) { *r = Record{Path: "l", Kind: Symlink, Target: "../x"} }, true},
		{"tombstone", func(r *Record) { r.Deleted = true; r.Blocks = nil }, true},
		{"deleted symlink", func(r *Record) { *r = Record{Path: "l", Kind: Symlink, Deleted: true} }, true},
		{"bad path", func(r *Record) { r.Path = "../x" }, false},
		{"bad kind", func(r *Record) { r.Kind = 3 }, false},
		{"negative size", func(r *Record) { r.Size = -1 }, false},
		{"mode bits", func(r *Record) { r.Mode = 0o4755 }, false},
		{"zero counter", func(r *Record) { r.Version = Vector{{1, 0}} }, false},
		{"unsorted vector", func(r *Record) { r.Version = Vector{{2, 1}, {1, 1}} }, false},
		{"duplicate device", func(r *Record) { r.Version = Vector{{1, 1}, {1, 2}} }, false},
		{"modifier in version", func(r *Record) { r.Version = Vector{{1, 1}, {2, 2}}; r.Modifier = 1 }, true},
		{"modifier not in version", func(r *Record) { r.Version = Vector{{1, 1}}; r.Modifier = 2 }, false},
		{"long vector", func(r *Record) {
			r.Version = nil
			for i := range MaxCounters + 1 {
				r.Version = append(r.Version, Counter{uint64(i + 1), 1})
			}
		}, false},
		{"target on file", func(r *Record) { r.Target = "x" }, false},
		{"symlink no target", func(r *Record) { *r = Record{Path: "l", Kind: Symlink} }, false},
		{"symlink long target", func(r *Record) {
			*r = Record{Path: "l", Kind: Symlink, Target: strings.Repeat("x", MaxTargetLen+1)}
		}, false},
		{"symlink NUL target", func(r *Record) { *r = Record{Path: "l", Kind: Symlink, Target: "a\x00"} }, false},
		{"dir with blocks", func(r *Record) { r.Kind = Dir }, false},
		{"tombstone with blocks", func(r *Record) { r.Deleted = true }, false},
		{"hash version", func(r *Record) { r.HashVersion = 2 }, false},
		{"gap", func(r *Record) { r.Blocks[1].Offset++ }, false},
		{"short sum", func(r *Record) { r.Size++; r.Content = ContentID(r.Size, r.Blocks) }, false},
		{"big block", func(r *Record) { *r = fileRecord("b", MaxBlockSize+1, MaxBlockSize+1) }, false},
		{"zero block", func(r *Record) {
			r.Blocks = append(r.Blocks, Block{Offset: r.Size})
			r.Content = ContentID(r.Size, r.Blocks)
		}, false},
		{"too many blocks", func(r *Record) { *r = fileRecord("b", MinBlockSize*2, MinBlockSize/2) }, false},
		{"no blocks", func(r *Record) { r.Blocks = nil; r.Content = ContentID(r.Size, nil) }, false},
		{"empty with block", func(r *Record) { *r = fileRecord("e", 0, 1); r.Blocks = []Block{{Size: 0}} }, false},
		{"content", func(r *Record) { r.Content[0]++ }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			r.Blocks = append([]Block(nil), good.Blocks...)
			tt.mod(&r)
			err := r.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate(%s) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("Validate(%s) = %v, want wrapping ErrInvalidRecord", tt.name, err)
			}
		})
	}
}

func recordSamples() []Record {
	return []Record{
		fileRecord("a/b.txt", 3*MaxBlockSize+5, MaxBlockSize),
		fileRecord("empty", 0, 1),
		{Path: "d", Kind: Dir, Mode: 0o755, ModTime: -5, Version: Vector{{1, 1}}, Modifier: 1},
		{Path: "l", Kind: Symlink, Target: "x/y", Sequence: 1 << 60},
		{Path: "gone", Kind: File, Deleted: true, Version: Vector{{^uint64(0), ^uint64(0)}}},
		{Path: "ünïcode/ファイル", Kind: File, Size: 1, Blocks: []Block{{Size: 1}}, HashVersion: 1},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range recordSamples() {
		t.Run(r.Path, func(t *testing.T) {
			b, err := EncodeRecord(&r)
			if err != nil {
				t.Fatalf("EncodeRecord(%q) = %v", r.Path, err)
			}
			b2, _ := EncodeRecord(&r)
			if !bytes.Equal(b, b2) {
				t.Errorf("EncodeRecord(%q) not deterministic", r.Path)
			}
			got, err := DecodeRecord(b)
			if err != nil {
				t.Fatalf("DecodeRecord(EncodeRecord(%q)) = %v", r.Path, err)
			}
			if d := cmp.Diff(r, got); d != "" {
				t.Errorf("DecodeRecord(EncodeRecord(%q)) differs (-want +got):\n%s", r.Path, d)
			}
		})
	}
}

func TestEncodeNonContiguous(t *testing.T) {
	r := fileRecord("a", 10, 4)
	r.Blocks[1].Offset = 5
	if _, err := EncodeRecord(&r); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("EncodeRecord(gap) = %v, want ErrInvalidRecord", err)
	}
}

func TestDecodeRecordBad(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not a map", []byte{0x01}},
		{"no version", []byte{0xa1, 0x01, 0x61, 'a'}},
		{"version 2", []byte{0xa2, 0x00, 0x02, 0x01, 0x61, 'a'}},
		{"short content", []byte{0xa2, 0x00, 0x01, 0x08, 0x41, 0x00}},
		{"dup key", []byte{0xa3, 0x00, 0x01, 0x01, 0x61, 'a', 0x01, 0x61, 'b'}},
		{"huge array", []byte{0xa2, 0x00, 0x01, 0x09, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"indefinite", []byte{0xbf, 0x00, 0x01, 0xff}},
		{"tag", []byte{0xc1, 0xa1, 0x00, 0x01}},
		{"block hash", []byte{0xa2, 0x00, 0x01, 0x09, 0x81, 0x82, 0x01, 0x41, 0x00}},
		{"block size", []byte{0xa2, 0x00, 0x01, 0x09, 0x81, 0x82, 0x00, 0x58, 0x20,
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"bad utf8", []byte{0xa2, 0x00, 0x01, 0x01, 0x61, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeRecord(tt.in); !errors.Is(err, ErrDecode) {
				t.Errorf("DecodeRecord(%x) = %v, want ErrDecode", tt.in, err)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range recordSamples() {
		b, err := EncodeRecord(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		_ = r.Validate()
		b2, err := EncodeRecord(&r)
		if err != nil {
			t.Fatalf("EncodeRecord(DecodeRecord(%x)) = %v", b, err)
		}
		r2, err := DecodeRecord(b2)
		if err != nil {
			t.Fatalf("DecodeRecord(re-encoded) = %v", err)
		}
		if d := cmp.Diff(r, r2); d != "" {
			t.Fatalf("re-decode differs:\n%s", d)
		}
	})
}

func FuzzValidPath(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../a", "/a", ".syncd/x", "a//b", "C:/x", "a\\b", "caf\xe9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidPath(p) != nil {
			return
		}
		if strings.Contains("/"+p+"/", "/../") || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
			t.Fatalf("ValidPath(%q) = nil for an unsafe path", p)
		}
		// Every valid path can be stored: its record decodes again.
		r := Record{Path: p, Kind: Dir, Mode: 0o755, ModTime: 1, Version: Vector{{Device: 1, Value: 1}}, HashVersion: HashVersion}
		b, err := EncodeRecord(&r)
		if err != nil {
			t.Fatalf("EncodeRecord(%q) = %v", p, err)
		}
		if got, err := DecodeRecord(b); err != nil || got.Path != p {
			t.Fatalf("DecodeRecord of %q = %q, %v", p, got.Path, err)
		}
	})
}
