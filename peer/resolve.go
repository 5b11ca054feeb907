package peer

import (
	"bytes"
	"encoding/base32"
	"encoding/binary"
	"path"
	"strings"
	"time"

	"github.com/syncd-project/syncd/index"
)

// candidate is one device's record of a path. Device is the version-vector
// key of the device that holds it (deviceid.ID.Key()).
type candidate struct {
	Device uint64
	Rec    index.Record
}

// winner picks the global version of a path among the candidates: the
// record whose version vector dominates; between concurrent records the
// rules of doc.go ("Conflicts") decide. Every device, given the same set of
// records, picks the same winner, whatever their order: the records that
// another one dominates are out first, and only then do those rules choose
// among the rest (one pass with a running best is not enough: a record
// that loses to a concurrent one by the rules, and is then dominated by a
// newer version, would make the choice depend on the order). It returns -1
// for no candidates.
func winner(cands []candidate) int {
	best := -1
	for i, c := range cands {
		dominated := false
		for j, o := range cands {
			if j != i && c.Rec.Version.Compare(o.Rec.Version) == index.Lesser {
				dominated = true
				break
			}
		}
		if dominated {
			continue
		}
		// Equal versions with different contents come only from a device
		// whose records were lost (its first scan gave an edit a version it
		// had used before): they are ordered as concurrent ones, and so are
		// equal ones with the same content, so that which came first never
		// decides.
		if best < 0 || beats(c, cands[best]) {
			best = i
		}
	}
	return best
}

// beats orders concurrent versions: a live file beats a deletion (the
// modification wins and the file comes back), then the newer mtime wins,
// then the higher last-modifier key, then the larger content ID, so that the
// choice is a total order that does not depend on who evaluates it.
func beats(a, b candidate) bool {
	if a.Rec.Deleted != b.Rec.Deleted {
		return !a.Rec.Deleted
	}
	if a.Rec.ModTime != b.Rec.ModTime {
		return a.Rec.ModTime > b.Rec.ModTime
	}
	am, bm := modifierOf(a.Rec), modifierOf(b.Rec)
	if am != bm {
		return am > bm
	}
	if c := bytes.Compare(a.Rec.Content[:], b.Rec.Content[:]); c != 0 {
		return c > 0
	}
	if a.Rec.Mode != b.Rec.Mode {
		return a.Rec.Mode > b.Rec.Mode // equal versions of a lost index: one mode wins
	}
	// The same version made twice: after a conflict among three devices,
	// two losers each record the winner merged with their own ({A,C} and
	// {B,C}). The larger vector wins everywhere, and the other device
	// takes it merged with its own, so that the versions converge (else
	// each keeps its own, and a later deletion that extends one of them
	// is concurrent with the other, which comes back).
	return compareVectors(a.Rec.Version, b.Rec.Version) > 0
}

// compareVectors orders version vectors (sorted by device) as sequences
// of (device, counter) pairs: a total order, for ties only.
func compareVectors(a, b index.Vector) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].Device != b[i].Device {
			if a[i].Device < b[i].Device {
				return -1
			}
			return 1
		}
		if a[i].Value != b[i].Value {
			if a[i].Value < b[i].Value {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

// sameMeta reports whether two records with the same content also have the
// same mode (a directory's owner bits aside: the puller adds them) and, for
// files, the same mtime.
func sameMeta(a, b index.Record) bool {
	if a.Deleted || b.Deleted {
		return true
	}
	ma, mb := a.Mode, b.Mode
	if a.Kind == index.Dir {
		ma, mb = ma|0o700, mb|0o700
	}
	return ma == mb && (a.Kind != index.File || a.ModTime == b.ModTime)
}

// modifierOf is the device that made r's content: its Modifier, or for a
// record without one the last modifier of its version.
func modifierOf(r index.Record) uint64 {
	if r.Modifier != 0 {
		return r.Modifier
	}
	return lastModifier(r.Version)
}

// lastModifier is the device that made the latest change of a version: the
// holder of the highest counter (Update sets the updater's counter above all
// others).
func lastModifier(v index.Vector) uint64 {
	var dev, max uint64
	for _, c := range v {
		if c.Value > max || (c.Value == max && c.Device > dev) {
			dev, max = c.Device, c.Value
		}
	}
	return dev
}

var shortEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

// shortKey renders a version-vector key the way deviceid.ID.Short renders
// the full ID (the first seven base32 characters depend only on the first
// 35 bits, which the key holds).
func shortKey(k uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], k)
	return shortEnc.EncodeToString(b[:])[:7]
}

// conflictName is where the losing version of p is kept:
// NAME.sync-conflict-YYYYMMDD-HHMMSS-<short id>.EXT, with the loser's mtime
// (UTC) and last modifier, so that every device derives the same name.
// NAME is shortened (at a character boundary) when the whole would not fit
// in a file name of maxNameLen bytes.
func conflictName(p string, loser index.Record) string {
	return conflictNameTagged(p, loser, "")
}

// conflictNameByContent is conflictName with the first 8 hex digits of
// the loser's content after the short ID: the name of a losing version
// whose conflictName another version (the same mtime second and
// modifier) took already. Every device derives the same one.
func conflictNameByContent(p string, loser index.Record) string {
	return conflictNameTagged(p, loser, "-"+loser.Content.String()[:8])
}

func conflictNameTagged(p string, loser index.Record, tag string) string {
	dir, base := path.Split(p)
	ext := path.Ext(base)
	if ext == base || len(ext) > 16 { // ".bashrc" or no real extension
		ext = ""
	}
	stem := strings.TrimSuffix(base, ext)
	ts := time.Unix(0, loser.ModTime).UTC().Format("20060102-150405")
	suffix := ".sync-conflict-" + ts + "-" + shortKey(modifierOf(loser)) + tag + ext
	return dir + shortName(stem, maxNameLen-len(suffix)) + suffix
}

// maxNameLen is the longest file name (bytes) of Linux's file systems.
const maxNameLen = 255

// isConflictCopy reports whether p is a conflict copy name.
func isConflictCopy(p string) bool {
	return strings.Contains(path.Base(p), ".sync-conflict-")
}

// sameContent reports whether two records describe the same thing on disk,
// ignoring versions and sequences.
func sameContent(a, b index.Record) bool {
	if a.Deleted || b.Deleted {
		return a.Deleted == b.Deleted
	}
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case index.File:
		return a.Size == b.Size && a.Content == b.Content
	case index.Symlink:
		return a.Target == b.Target
	default:
		return true
	}
}
