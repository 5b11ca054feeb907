package pair

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestNewCode(t *testing.T) {
	seen := map[Code]bool{}
	for range 100 {
		c, err := NewCode()
		if err != nil {
			t.Fatal(err)
		}
		s := c.String()
		if len(s) != 9 || s[4] != '-' {
			t.Fatalf("NewCode().String() = %q, want XXXX-XXXX", s)
		}
		for _, r := range strings.ReplaceAll(s, "-", "") {
			if !strings.ContainsRune(codeAlphabet, r) {
				t.Fatalf("NewCode() = %q has %q outside the alphabet", s, r)
			}
		}
		back, err := ParseCode(s)
		if err != nil || back != c {
			t.Fatalf("ParseCode(%q) = %v, %v, want %v", s, back, err, c)
		}
		seen[c] = true
	}
	if len(seen) < 99 {
		t.Errorf("100 NewCode() gave %d distinct codes", len(seen))
	}
}

func TestCodeAlphabet(t *testing.T) {
	if len(codeAlphabet) != 32 {
		t.Fatalf("len(codeAlphabet) = %d, want 32", len(codeAlphabet))
	}
	for _, bad := range "0OIL" {
		if strings.ContainsRune(codeAlphabet, bad) {
			t.Errorf("codeAlphabet contains look-alike %q", bad)
		}
	}
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{make([]byte, 5), "1111-1111"},
		{bytes.Repeat([]byte{0xff}, 5), "ZZZZ-ZZZZ"},
		{[]byte{0x00, 0x44, 0x32, 0x14, 0xc7}, "1234-5678"}, // 5-bit groups 0..7
	} {
		c, err := newCode(bytes.NewReader(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.String(); got != tc.want {
			t.Errorf("newCode(%x) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := newCode(bytes.NewReader([]byte{1, 2})); err == nil {
		t.Error("newCode(short reader) error = nil, want error")
	}
}

func TestParseCode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		wantErr string // substring; "" means success
	}{
		{"7KQ3-9XMD", "7KQ3-9XMD", ""},
		{"7kq3-9xmd", "7KQ3-9XMD", ""},
		{"7KQ39XMD", "7KQ3-9XMD", ""},
		{" 7kq3 9xmd ", "7KQ3-9XMD", ""},
		{"7K-Q3-9X-MD", "7KQ3-9XMD", ""},
		{"IL11-2345", "1111-2345", ""}, // I and L read as 1
		{"7KQ3-9XM0", "", "0 or O"},
		{"7KQ3-9XMO", "", "0 or O"},
		{"7KQ3-9XM!", "", `'!'`},
		{"7KQ3-9XMé", "", `'é'`},
		{"7KQ3-9XM", "", "7 characters"},
		{"7KQ3-9XMDA", "", "more than 8"},
		{"", "", "0 characters"},
		{"--------", "", "0 characters"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := ParseCode(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalidCode) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseCode(%q) error = %v, want ErrInvalidCode mentioning %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || c.String() != tc.want {
				t.Errorf("ParseCode(%q) = %v, %v, want %s", tc.in, c, err, tc.want)
			}
		})
	}
	if (Code{}).String() != "" || !(Code{}).IsZero() {
		t.Error("zero Code is not empty and zero")
	}
}

func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"7KQ3-9XMD", "7kq39xmd", "IL11-2345", "0000-0000", "", "é", "7KQ3-9XMDA", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("ParseCode(%q) error %v does not wrap ErrInvalidCode", s, err)
			}
			return
		}
		if c.IsZero() {
			t.Fatalf("ParseCode(%q) = zero code without error", s)
		}
		back, err := ParseCode(c.String())
		if err != nil || back != c {
			t.Fatalf("ParseCode(%q) round trip = %v, %v, want %v", c.String(), back, err, c)
		}
	})
}
