package deviceid

import (
	"errors"
	"strings"
	"testing"
)

func sample() ID { return FromPublicKeyInfo([]byte("example SPKI")) }

func TestRoundTrip(t *testing.T) {
	id := sample()
	s := id.String()
	if len(s) != 63 || strings.Count(s, "-") != 7 {
		t.Fatalf("String() = %q, want 8 groups of 7", s)
	}
	for _, in := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", ""), strings.ReplaceAll(s, "-", " ")} {
		got, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", in, err)
		}
		if got != id {
			t.Fatalf("Parse(%q) = %v, want %v", in, got, id)
		}
	}
	if id.Short() != strings.ReplaceAll(s, "-", "")[:7] {
		t.Errorf("Short() = %q, want prefix of %q", id.Short(), s)
	}
}

func TestParseRejects(t *testing.T) {
	s := sample().String()
	typo := []byte(s)
	if typo[3] == 'A' {
		typo[3] = 'B'
	} else {
		typo[3] = 'A'
	}
	swap := []byte(s)
	swap[1], swap[2] = swap[2], swap[1]
	cases := map[string]string{
		"empty":    "",
		"short":    s[:20],
		"typo":     string(typo),
		"bad char": strings.Replace(s, s[:1], "1", 1),
		"too long": strings.Repeat("A", 200),
		"zero":     ID{}.String(),
		"extra":    s + "A",
	}
	if swap[1] != swap[2] {
		cases["transposed"] = string(swap)
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(in); !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) = %v, want ErrInvalid", in, err)
			}
		})
	}
}

func TestEveryTypoCaught(t *testing.T) {
	s := strings.ReplaceAll(sample().String(), "-", "")
	for i := 0; i < len(s); i++ {
		for _, c := range alphabet {
			if byte(c) == s[i] {
				continue
			}
			b := []byte(s)
			b[i] = byte(c)
			if _, err := Parse(string(b)); err == nil {
				t.Fatalf("single substitution at %d (%c) accepted", i, c)
			}
		}
	}
}

func TestText(t *testing.T) {
	id := sample()
	b, _ := id.MarshalText()
	var got ID
	if err := got.UnmarshalText(b); err != nil || got != id {
		t.Fatalf("UnmarshalText = %v, %v; want %v", got, err, id)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample().String())
	f.Add(strings.ToLower(sample().String()))
	f.Add("")
	f.Add("AAAA-")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(id.String())
		if err != nil || again != id {
			t.Fatalf("round trip of %q: %v %v", s, again, err)
		}
	})
}
