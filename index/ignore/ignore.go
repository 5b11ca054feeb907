// Package ignore owns the .syncdignore file: gitignore syntax (via go-git's
// plumbing/format/gitignore), read from the folder root only, matched
// against slash-separated paths relative to that root. It knows nothing of
// syncd's built-in ignores (the scanner adds those) nor of the store.
package ignore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// Limits on an ignore file: larger files are refused rather than trusted.
const (
	MaxBytes    = 1 << 20
	MaxPatterns = 10000
	MaxLineLen  = 4096
)

// ErrTooLarge is returned by Parse for a file beyond the limits.
var ErrTooLarge = errors.New("ignore file too large")

// Matcher matches paths against parsed patterns. The nil *Matcher and the
// zero Matcher ignore nothing.
type Matcher struct {
	m gitignore.Matcher // nil when there are no patterns
	n int
}

// Parse reads gitignore-syntax patterns: blank lines and lines starting with
// # are skipped, ! negates, a trailing / matches directories only, a
// leading or inner / anchors to the root, ** matches any number of
// directories.
func Parse(data []byte) (*Matcher, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(data), MaxBytes)
	}
	var ps []gitignore.Pattern
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark, as git skips it
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxLineLen+1)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(ps) >= MaxPatterns {
			return nil, fmt.Errorf("%w: more than %d patterns", ErrTooLarge, MaxPatterns)
		}
		ps = append(ps, gitignore.ParsePattern(bracketNegation(line), nil))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrTooLarge, MaxLineLen)
	}
	if len(ps) == 0 {
		return &Matcher{}, nil
	}
	return &Matcher{m: gitignore.NewMatcher(ps), n: len(ps)}, nil
}

// bracketNegation spells a bracket expression's negation "[!" as "[^":
// git takes both, the matcher below only the second (it reads "!" as a
// character of the class, the opposite of what was meant).
func bracketNegation(line string) string {
	if !strings.Contains(line, "[!") {
		return line
	}
	b := []byte(line)
	in := false // inside a bracket expression
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\\':
			i++ // the next byte is literal
		case !in && b[i] == '[':
			in = true
			if i+1 < len(b) && b[i+1] == '!' {
				b[i+1] = '^'
				i++
			}
			if i+1 < len(b) && b[i+1] == ']' {
				i++ // a leading ] is a member, not the end
			}
		case in && b[i] == ']':
			in = false
		}
	}
	return string(b)
}

// Len returns the number of patterns.
func (m *Matcher) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Match reports whether path (slash-separated, relative to the root) is
// ignored, either itself or because one of its parent directories is.
func (m *Matcher) Match(path string, isDir bool) bool {
	if m == nil || m.m == nil || path == "" {
		return false
	}
	parts := strings.Split(path, "/")
	for i := 1; i < len(parts); i++ {
		if m.m.Match(parts[:i], true) {
			return true
		}
	}
	return m.m.Match(parts, isDir)
}
