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
	ps []rule
}

// rule is one pattern and what Match needs to know of its text.
type rule struct {
	p gitignore.Pattern
	// simple: no slash but a trailing one, so the pattern matches a name
	// at any depth.
	simple bool
	// below: the pattern ends in "/**", so it matches everything below
	// what its part before that matches, at any depth.
	below bool
}

// Parse reads gitignore-syntax patterns: blank lines and lines starting with
// # are skipped, ! negates, a trailing / matches directories only, a
// leading or inner / anchors to the root, ** matches any number of
// directories.
func Parse(data []byte) (*Matcher, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(data), MaxBytes)
	}
	var ps []rule
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
		ps = append(ps, newRule(bracketNegation(line)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrTooLarge, MaxLineLen)
	}
	return &Matcher{ps: ps}, nil
}

// newRule parses one pattern line.
func newRule(line string) rule {
	body := strings.TrimPrefix(line, "!")
	if !strings.HasSuffix(body, "\\ ") {
		body = strings.TrimRight(body, " ")
	}
	body = strings.TrimSuffix(body, "/")
	return rule{
		p:      gitignore.ParsePattern(line, nil),
		simple: !strings.Contains(body, "/"),
		below:  strings.HasSuffix(body, "/**"),
	}
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
	return len(m.ps)
}

// Match reports whether path (slash-separated, relative to the root) is
// ignored, either itself or because one of its parent directories is. As
// in git, the last pattern that matches a path decides for it, and a
// pattern matches a path itself, not the paths below what it matches: a
// negated directory pattern (!dir/) brings back the directory, not the
// files in it that another pattern ignores.
func (m *Matcher) Match(path string, isDir bool) bool {
	if m == nil || len(m.ps) == 0 || path == "" {
		return false
	}
	parts := strings.Split(path, "/")
	probe := make([]string, len(parts))
	for i := 1; i < len(parts); i++ {
		if m.decide(parts[:i], probe[:i], true) {
			return true
		}
	}
	return m.decide(parts, probe, isDir)
}

// noName is a path component no pattern component matches: no file name
// holds a slash, and * and ? never match one.
const noName = "////////////////"

// decide applies the last pattern that matches parts itself. probe is
// scratch space as long as parts.
func (m *Matcher) decide(parts, probe []string, isDir bool) bool {
	n := len(parts)
	copy(probe, parts[:n-1])
	probe[n-1] = noName
	for i := len(m.ps) - 1; i >= 0; i-- {
		r := &m.ps[i]
		var res gitignore.MatchResult
		switch {
		case r.simple:
			// go-git matches a name pattern against every component;
			// only the last one is the path itself.
			res = r.p.Match(parts[n-1:], isDir)
		case r.below:
			// go-git also matches "x/**" against x itself; it matches
			// what is below x.
			if n > 1 {
				res = r.p.Match(parts[:n-1], isDir)
			}
		default:
			// go-git matches a path when the pattern matches one of its
			// parents; that is the path itself only if the match needs
			// the last component.
			if res = r.p.Match(parts, isDir); res != gitignore.NoMatch && r.p.Match(probe, true) != gitignore.NoMatch {
				res = gitignore.NoMatch
			}
		}
		if res != gitignore.NoMatch {
			return res == gitignore.Exclude
		}
	}
	return false
}
