package index

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestFoldKey: two names get one key exactly when strings.EqualFold
// takes them as equal (a pull pass's claims and a scan's stale spellings compare names so), also for
// letters with three case variants, and U+FFFD against bytes that are
// not UTF-8 (which EqualFold reads as U+FFFD).
func TestFoldKey(t *testing.T) {
	alphabet := []string{"k", "K", "\u212a", "s", "S", "\u017f", "σ", "ς", "Σ", "é", "É", "\ufffd", "\xff", "\xef", "a", "ß", "ẞ", "1"}
	r := rand.New(rand.NewPCG(7, 11))
	word := func() string {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	equal := 0
	for range 20000 {
		a, b := word(), word()
		if got, want := FoldKey(a) == FoldKey(b), strings.EqualFold(a, b); got != want {
			t.Fatalf("FoldKey(%q) == FoldKey(%q) is %v, strings.EqualFold says %v", a, b, got, want)
		}
		if strings.EqualFold(a, b) && a != b {
			equal++
		}
	}
	if equal < 100 {
		t.Fatalf("only %d pairs of different spellings that fold equal: the test checks too little", equal)
	}
}
