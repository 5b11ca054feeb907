package ignore

import (
	"errors"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	const file = `# comment
*.tmp
/build/
node_modules
!keep.tmp
docs/**/*.pdf
secret.txt
`
	m, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"a.tmp", false, true},
		{"x/y/a.tmp", false, true},
		{"keep.tmp", false, false},
		{"build", true, true},
		{"build", false, false},
		{"build/out.o", false, true},
		{"src/build", true, false},
		{"node_modules", true, true},
		{"a/node_modules/x/y.js", false, true},
		{"docs/a/b/c.pdf", false, true},
		{"docs/c.pdf", false, true},
		{"c.pdf", false, false},
		{"secret.txt", false, true},
		{"notes/secret.txt", false, true},
		{"main.go", false, false},
		{".syncdignore", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := m.Match(tt.path, tt.isDir); got != tt.want {
				t.Errorf("Match(%q, dir=%v) = %v, want %v", tt.path, tt.isDir, got, tt.want)
			}
		})
	}
	var nilM *Matcher
	if nilM.Match("a", false) || nilM.Len() != 0 {
		t.Errorf("nil Matcher matches")
	}
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		name string
		data string
		ok   bool
	}{
		{"empty", "", true},
		{"crlf", "a\r\nb\r\n", true},
		{"huge", strings.Repeat("a\n", MaxBytes), false},
		{"many", strings.Repeat("a\n", MaxPatterns+1), false},
		{"long line", strings.Repeat("a", MaxLineLen+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data))
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrTooLarge)) {
				t.Errorf("Parse(%s) = %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
	m, _ := Parse([]byte("a\r\n"))
	if !m.Match("a", false) {
		t.Errorf("Parse(CRLF) did not strip the CR")
	}
}

func FuzzIgnore(f *testing.F) {
	f.Add([]byte("*.tmp\n/build/\n!keep\n**/x/**\n[a-\n\\!x"), "build/a.tmp", true)
	f.Fuzz(func(t *testing.T, data []byte, path string, isDir bool) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		_ = m.Match(path, isDir)
	})
}

// TestMatchLikeGit: a pattern decides for the path it matches, not for the
// paths below it; only an ignored directory takes everything below it
// along. Expectations checked with `git check-ignore --no-index` (git
// 2.47) on the same tree.
func TestMatchLikeGit(t *testing.T) {
	const file = `*.txt
!dir/
build/
!build/keep.o
/a/*
!a/b
foo/**
!foo/x/**
**/y
!y/**
`
	m, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"dir", true, false},
		{"dir/x.txt", false, true}, // !dir/ brings back the directory only
		{"dir/sub/x.txt", false, true},
		{"dir/sub", true, false},
		{"x.txt", false, true},
		{"notes", false, false},
		{"build", true, true},
		{"build/keep.o", false, true}, // below an ignored directory
		{"a/b", true, false},
		{"a/c", false, true},
		{"a/b/z", false, false},
		{"foo", true, false},
		{"foo/q", false, true},
		{"foo/x", true, true},
		{"foo/x/z", false, true},
		{"y", true, true},
		{"y/y", true, true},
		{"y/z", false, true},
		{"y/y/w", false, true},
	}
	for _, tt := range tests {
		if got := m.Match(tt.path, tt.isDir); got != tt.want {
			t.Errorf("Match(%q, dir=%v) = %v, want %v (as git)", tt.path, tt.isDir, got, tt.want)
		}
	}
}

// TestMatchBelowDirOnly: "x/**/" matches the directories below x, not
// its files (git check-ignore agrees).
func TestMatchBelowDirOnly(t *testing.T) {
	m, err := Parse([]byte("x/**/\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path  string
		isDir bool
		want  bool
	}{{"x", true, false}, {"x/d", true, true}, {"x/f", false, false}, {"x/d/f", false, true}} {
		if got := m.Match(tt.path, tt.isDir); got != tt.want {
			t.Errorf("Match(%q, dir=%v) = %v, want %v", tt.path, tt.isDir, got, tt.want)
		}
	}
}
