package peer

import (
	"path"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/syncd-project/syncd/index"
)

func rec(mtime int64, deleted bool, content byte, v ...index.Counter) index.Record {
	r := index.Record{Path: "a.txt", ModTime: mtime, Deleted: deleted, Version: v}
	r.Content[0] = content
	return r
}

func withModifier(r index.Record, m uint64) index.Record {
	r.Modifier = m
	return r
}

func TestWinner(t *testing.T) {
	c := func(dev uint64, val uint64) index.Counter { return index.Counter{Device: dev, Value: val} }
	for _, tc := range []struct {
		name  string
		cands []candidate
		want  int
	}{
		{"none", nil, -1},
		{"one", []candidate{{1, rec(1, false, 1, c(1, 1))}}, 0},
		{"dominates", []candidate{{1, rec(9, false, 1, c(1, 1))}, {2, rec(1, false, 2, c(1, 1), c(2, 2))}}, 1},
		{"concurrent newer mtime", []candidate{{1, rec(5, false, 1, c(1, 2))}, {2, rec(9, false, 2, c(2, 2))}}, 1},
		{"concurrent live beats delete", []candidate{{1, rec(9, true, 0, c(1, 3))}, {2, rec(1, false, 2, c(2, 2))}}, 1},
		{"tie broken by modifier", []candidate{{2, rec(5, false, 1, c(2, 2))}, {1, rec(5, false, 2, c(1, 2))}}, 0},
		// Two losers of a three-way conflict, each holding the winner
		// (device 3's) merged with its own: all else equal, the larger
		// vector.
		{"merged twins broken by version", []candidate{{1, withModifier(rec(5, false, 3, c(1, 4), c(3, 9)), 3)}, {2, withModifier(rec(5, false, 3, c(2, 4), c(3, 9)), 3)}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := winner(tc.cands); got != tc.want {
				t.Errorf("winner() = %d, want %d", got, tc.want)
			}
			// The same set in reverse order picks the same record.
			if len(tc.cands) == 2 {
				rev := []candidate{tc.cands[1], tc.cands[0]}
				if got := winner(rev); got != 1-tc.want {
					t.Errorf("winner(reversed) = %d, want %d", got, 1-tc.want)
				}
			}
		})
	}
}

// TestWinnerEqualVersions: records with equal versions (after a lost
// index) are ordered as concurrent ones, whatever their order: two with the
// same content and different mtimes, and a third with other content, give
// the same winner in every order.
func TestWinnerEqualVersions(t *testing.T) {
	v := index.Counter{Device: 9, Value: 1}
	a := candidate{1, rec(1, false, 1, v)}
	a2 := candidate{2, rec(5, false, 1, v)}
	b := candidate{3, rec(3, false, 2, v)}
	for _, order := range [][]candidate{{a, a2, b}, {a2, a, b}, {b, a, a2}, {b, a2, a}, {a, b, a2}, {a2, b, a}} {
		w := winner(order)
		if w < 0 || order[w].Device != a2.Device {
			t.Errorf("winner of %v = %d, want the newest (device %d)", order, w, a2.Device)
		}
	}
	// Different contents alone: the newer wins, in either order.
	if w := winner([]candidate{a, b}); w != 1 {
		t.Errorf("winner(a, b) = %d, want b (newer, other content)", w)
	}
	if w := winner([]candidate{b, a}); w != 0 {
		t.Errorf("winner(b, a) = %d, want b", w)
	}
}

func TestConflictName(t *testing.T) {
	mt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	loser := index.Record{ModTime: mt, Version: index.Vector{{Device: 0x0123456789abcdef, Value: 7}, {Device: 5, Value: 1}}}
	for _, tc := range []struct{ in, want string }{
		{"photo.jpg", "photo.sync-conflict-20260102-030405-" + shortKey(0x0123456789abcdef) + ".jpg"},
		{"dir/archive.tar.gz", "dir/archive.tar.sync-conflict-20260102-030405-" + shortKey(0x0123456789abcdef) + ".gz"},
		{".bashrc", ".bashrc.sync-conflict-20260102-030405-" + shortKey(0x0123456789abcdef)},
		{"noext", "noext.sync-conflict-20260102-030405-" + shortKey(0x0123456789abcdef)},
		// Too long with the suffix: the stem is cut at a character (é is 2
		// bytes; a cut at 212 bytes would split one).
		{"d/x" + strings.Repeat("é", 110) + ".flac", "d/x" + strings.Repeat("é", 105) + ".sync-conflict-20260102-030405-" + shortKey(0x0123456789abcdef) + ".flac"},
	} {
		if got := conflictName(tc.in, loser); got != tc.want {
			t.Errorf("conflictName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if base := path.Base(conflictName(tc.in, loser)); len(base) > maxNameLen || !utf8.ValidString(base) {
			t.Errorf("conflictName(%q) has a name of %d bytes (valid UTF-8: %v)", tc.in, len(base), utf8.ValidString(base))
		}
		if !isConflictCopy(conflictName(tc.in, loser)) {
			t.Errorf("isConflictCopy(conflictName(%q)) = false", tc.in)
		}
	}
	loser.Content = index.Hash{0xde, 0xad, 0xbe, 0xef, 0x01}
	tagged := conflictNameByContent("dir/photo.jpg", loser)
	if want := "dir/photo.sync-conflict-20260102-030405-" + shortKey(0x0123456789abcdef) + "-deadbeef.jpg"; tagged != want || !isConflictCopy(tagged) {
		t.Errorf("conflictNameByContent = %q, want %q (a conflict copy name)", tagged, want)
	}
}

func TestShortKeyMatchesShortID(t *testing.T) {
	for _, name := range []string{"a", "b", "laptop"} {
		id := deviceFromName(name)
		if got := shortKey(id.Key()); got != id.Short() {
			t.Errorf("shortKey(%s) = %q, want %q", name, got, id.Short())
		}
	}
}

func TestCheckRemotePath(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"a/b.txt", true},
		{"photos/2024/IMG 1.jpg", true},
		{"../etc/passwd", false},
		{"/etc/passwd", false},
		{"a/../../b", false},
		{"a//b", false},
		{"a/./b", false},
		{"", false},
		{".", false},
		{"a\x00b", false},
		{`C:\x`, false},
		{"c:/x", false},
		{".syncd/trash/x", false},
		{"a/.SYNCD/x", false},
		{"a/" + index.TempPrefix + "x", false},
		{strings.Repeat("a", 5000), false},
	} {
		err := checkRemotePath(tc.p)
		if (err == nil) != tc.ok {
			t.Errorf("checkRemotePath(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

// TestWinnerAnyOrder: the winner does not depend on the order of the
// records. Y (A's file) loses by the rules to nothing here, X (A's
// deletion) dominates Y, and Z (B's edit, older mtime) is concurrent with
// both: the live Z must win from every order (a deletion never beats a
// concurrent modification), not X or the superseded Y.
func TestWinnerAnyOrder(t *testing.T) {
	c := func(dev, val uint64) index.Counter { return index.Counter{Device: dev, Value: val} }
	y := candidate{3, rec(100, false, 1, c(1, 1))}
	x := candidate{1, rec(200, true, 0, c(1, 2))}
	z := candidate{2, rec(50, false, 2, c(2, 1))}
	for _, order := range [][]candidate{{x, y, z}, {x, z, y}, {y, x, z}, {y, z, x}, {z, x, y}, {z, y, x}} {
		if w := winner(order); order[w].Device != z.Device {
			t.Errorf("winner(devices %d,%d,%d) = device %d (deleted %v), want device 2, the live concurrent version",
				order[0].Device, order[1].Device, order[2].Device, order[w].Device, order[w].Rec.Deleted)
		}
	}
}
