package pair

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
)

// CodeLen is the number of significant characters of a code.
const CodeLen = 8

// CodeBits is the entropy of a code: 8 characters of 5 bits.
const CodeBits = CodeLen * 5

// codeAlphabet has 32 symbols and none of the look-alikes 0, O, I, L.
// The ten digits and 26 letters minus those four leave exactly 32 symbols,
// so the digit 1 stays; since I and L are never shown, ParseCode reads a
// typed I or L as 1.
const codeAlphabet = "123456789ABCDEFGHJKMNPQRSTUVWXYZ"

// ErrInvalidCode is wrapped by every ParseCode error.
var ErrInvalidCode = errors.New("invalid pairing code")

// Code is a short one-time pairing password: 8 characters from a 32-symbol
// alphabet (40 bits), shown as XXXX-XXXX. The zero Code is invalid.
type Code struct {
	c [CodeLen]byte // canonical upper-case symbols of codeAlphabet
}

// NewCode draws a fresh random code from crypto/rand.
func NewCode() (Code, error) { return newCode(rand.Reader) }

func newCode(r io.Reader) (Code, error) {
	var b [CodeBits / 8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return Code{}, fmt.Errorf("pairing code: %w", err)
	}
	// 40 bits, five at a time, most significant first.
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	var c Code
	for i := CodeLen - 1; i >= 0; i-- {
		c.c[i] = codeAlphabet[v&31]
		v >>= 5
	}
	return c, nil
}

// ParseCode reads a code as a person typed it: case does not matter, the
// dash and spaces are optional, and I or L are taken for 1. Anything else
// outside the alphabet, or a wrong length, is an error wrapping
// ErrInvalidCode that names the problem.
func ParseCode(s string) (Code, error) {
	var c Code
	n := 0
	for i, r := range s {
		switch r {
		case '-', ' ', '\t':
			continue
		case 'i', 'I', 'l', 'L':
			r = '1'
		}
		if r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		if r > 0x7f || strings.IndexByte(codeAlphabet, byte(r)) < 0 {
			hint := ""
			if r == '0' || r == 'O' {
				hint = " (codes never contain 0 or O)"
			}
			return Code{}, fmt.Errorf("%w: character %q at position %d is not used in codes%s", ErrInvalidCode, r, i+1, hint)
		}
		if n == CodeLen {
			return Code{}, fmt.Errorf("%w: more than %d characters", ErrInvalidCode, CodeLen)
		}
		c.c[n] = byte(r)
		n++
	}
	if n != CodeLen {
		return Code{}, fmt.Errorf("%w: %d characters, want %d (like 7KQ3-9XMD)", ErrInvalidCode, n, CodeLen)
	}
	return c, nil
}

// IsZero reports whether c is the zero (invalid) Code.
func (c Code) IsZero() bool { return c == Code{} }

// String returns the display form XXXX-XXXX.
func (c Code) String() string {
	if c.IsZero() {
		return ""
	}
	return string(c.c[:4]) + "-" + string(c.c[4:])
}

// prs is the CPace password-related string: the 8 canonical characters.
func (c Code) prs() []byte { return append([]byte(nil), c.c[:]...) }
