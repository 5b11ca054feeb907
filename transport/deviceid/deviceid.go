// Package deviceid is the one word that transport, discovery, index and peer
// share: the identifier of a device. It imports only the standard library so
// that every layer may depend on it without depending on each other.
//
// A device ID is the SHA-256 of the DER SubjectPublicKeyInfo of the device's
// CA certificate. Renewing the leaf certificate never changes it.
//
// Text form: the 32 bytes in RFC 4648 base32 without padding (52 characters),
// cut into four groups of 13, each followed by a Luhn mod 32 check character
// (56 characters), printed in eight dash-separated groups of seven:
//
//	MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-ONSGYYL-TMRWGC4
//
// Parsing accepts lower case, missing dashes and spaces, and rejects a
// mistyped ID by its check characters.
package deviceid

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Size is the length of an ID in bytes.
const Size = sha256.Size

// ShortLen is the number of characters of the short form.
const ShortLen = 7

// ID identifies a device. The zero ID is not a valid device.
type ID [Size]byte

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid device ID")

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

var enc = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

// FromPublicKeyInfo derives the ID from a DER-encoded SubjectPublicKeyInfo
// (x509.Certificate.RawSubjectPublicKeyInfo of the device CA).
func FromPublicKeyInfo(spki []byte) ID {
	return ID(sha256.Sum256(spki))
}

// String returns the full grouped form with check characters.
func (id ID) String() string {
	raw := enc.EncodeToString(id[:]) // 52 characters
	var withCheck strings.Builder
	for i := 0; i < 4; i++ {
		g := raw[i*13 : (i+1)*13]
		withCheck.WriteString(g)
		withCheck.WriteByte(luhn32(g))
	}
	s := withCheck.String() // 56 characters
	var out strings.Builder
	out.Grow(63)
	for i := 0; i < 8; i++ {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(s[i*7 : (i+1)*7])
	}
	return out.String()
}

// Short returns the first seven characters, for logs and file names.
func (id ID) Short() string {
	return enc.EncodeToString(id[:])[:ShortLen]
}

// Key returns the first eight bytes as an integer: a compact key for version
// vectors. Collisions need 2^32 devices sharing one folder.
func (id ID) Key() uint64 {
	return binary.BigEndian.Uint64(id[:8])
}

// IsZero reports whether id is the zero value.
func (id ID) IsZero() bool { return id == ID{} }

// Parse reads an ID in its text form. Case, dashes and spaces are ignored.
func Parse(s string) (ID, error) {
	if len(s) > 128 {
		return ID{}, fmt.Errorf("%w: too long (%d characters; an ID has 56 letters and digits)", ErrInvalid, len(s))
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || r == ' ':
			continue
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case (r >= 'A' && r <= 'Z') || (r >= '2' && r <= '7'):
			b.WriteRune(r)
		default:
			return ID{}, fmt.Errorf("%w: character %q is not used in device IDs (A-Z, 2-7)", ErrInvalid, r)
		}
	}
	c := b.String()
	if len(c) != 56 {
		return ID{}, fmt.Errorf("%w: has %d letters and digits, want 56", ErrInvalid, len(c))
	}
	var raw strings.Builder
	for i := 0; i < 4; i++ {
		g := c[i*14 : i*14+13]
		if luhn32(g) != c[i*14+13] {
			return ID{}, fmt.Errorf("%w: check character of group %d does not match (a typo in characters %d-%d?)", ErrInvalid, i+1, i*14+1, i*14+14)
		}
		raw.WriteString(g)
	}
	buf, err := enc.DecodeString(raw.String())
	if err != nil || len(buf) != Size {
		return ID{}, fmt.Errorf("%w: not valid base32", ErrInvalid)
	}
	var id ID
	copy(id[:], buf)
	if id.IsZero() {
		return ID{}, fmt.Errorf("%w: the zero ID", ErrInvalid)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// luhn32 is the Luhn mod N algorithm over the base32 alphabet.
func luhn32(s string) byte {
	factor, sum, n := 1, 0, len(alphabet)
	for i := 0; i < len(s); i++ {
		cp := strings.IndexByte(alphabet, s[i])
		addend := factor * cp
		if factor == 2 {
			factor = 1
		} else {
			factor = 2
		}
		addend = addend/n + addend%n
		sum += addend
	}
	rem := sum % n
	return alphabet[(n-rem)%n]
}
