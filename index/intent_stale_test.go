package index

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStaleIntentGivesNewerVersionToOldContent: a pull's intents
// stay after its record could not be written (PutLocal failed: index disk
// full) until the next full scan (an hour). Meanwhile the file takes a
// newer version from a peer (V3, content C3), and the user restores the
// older version (C2) from syncd's trash with mv (same bytes, mode, mtime).
// The scan matches the stale intent and records C2 under Merge(V3, V2) =
// V3: the same version peers hold for C3. The restore never propagates and
// the devices disagree for ever with equal versions.
func TestStaleIntentGivesNewerVersionToOldContent(t *testing.T) {
	e := newScanEnv(t)
	e.write("x.txt", "v1 local")
	e.scan()
	v1 := e.rec("x.txt").Version
	abs := filepath.Join(e.root, "x.txt")

	// The pull of V2 renames C2 into place; PutLocal fails, the intent stays.
	const c2 = "v2 from peer 99"
	e.write("x.txt", c2)
	m2 := time.Unix(1_700_000_000, 0)
	os.Chtimes(abs, m2, m2)
	b2, id2 := chunkBlocks([]byte(c2))
	v2 := v1.Merge(Vector{{99, 1}})
	if _, err := e.st.PutIntents("f", []Record{{Path: "x.txt", Kind: File, Size: int64(len(c2)), Mode: 0o644,
		ModTime: m2.UnixNano(), Blocks: b2, Content: id2, Version: v2, Modifier: 99, HashVersion: HashVersion}}); err != nil {
		t.Fatal(err)
	}
	e.scan("x.txt") // the watcher's scan of the rename: adopts V2 (as designed)
	if r := e.rec("x.txt"); r.Version.Compare(v2) != Equal {
		t.Fatalf("after the adopting scan: %v, want %v", r.Version, v2)
	}

	// Later the peer's V3 (C3) is pulled and recorded normally; C2 goes to
	// the trash (same inode, mtime, mode).
	trash := filepath.Join(t.TempDir(), "x.txt~trash")
	if err := os.Rename(abs, trash); err != nil {
		t.Fatal(err)
	}
	const c3 = "v3 from peer 99, longer"
	e.write("x.txt", c3)
	fi, _ := os.Lstat(abs)
	b3, id3 := chunkBlocks([]byte(c3))
	v3 := v2.Merge(Vector{{99, 2}})
	if _, err := e.st.PutLocal("f", Record{Path: "x.txt", Kind: File, Size: int64(len(c3)), Mode: 0o644,
		ModTime: fi.ModTime().UnixNano(), Blocks: b3, Content: id3, Version: v3, Modifier: 99, HashVersion: HashVersion,
		Inode: inode(fi), Ctime: Ctime(fi)}); err != nil {
		t.Fatal(err)
	}

	// The user restores C2 from the trash.
	if err := os.Rename(trash, abs); err != nil {
		t.Fatal(err)
	}
	e.scan("x.txt")
	r := e.rec("x.txt")
	t.Logf("record after the restore: content==C2 %v, version %v (peers hold C3 at %v), modifier %d",
		r.Content == id2, r.Version, v3, r.Modifier)
	if r.Content == id2 && r.Version.Compare(v3) != Greater {
		t.Errorf("restored C2 recorded at version %v, not above peers' C3 at %v: it never reaches them", r.Version, v3)
	}
}

// TestStaleIntentRestoredDeletion: the same stale intent, then the
// peer deletes the file (tombstone V3, the file goes to the trash), and the
// user restores it from the trash: the scan records the live file at V3,
// the version of peers' tombstone, so the restore never reaches them.
func TestStaleIntentRestoredDeletion(t *testing.T) {
	e := newScanEnv(t)
	e.write("x.txt", "v1 local")
	e.scan()
	v1 := e.rec("x.txt").Version
	abs := filepath.Join(e.root, "x.txt")
	const c2 = "v2 from peer 99"
	e.write("x.txt", c2)
	m2 := time.Unix(1_700_000_000, 0)
	os.Chtimes(abs, m2, m2)
	b2, id2 := chunkBlocks([]byte(c2))
	v2 := v1.Merge(Vector{{99, 1}})
	if _, err := e.st.PutIntents("f", []Record{{Path: "x.txt", Kind: File, Size: int64(len(c2)), Mode: 0o644,
		ModTime: m2.UnixNano(), Blocks: b2, Content: id2, Version: v2, Modifier: 99, HashVersion: HashVersion}}); err != nil {
		t.Fatal(err)
	}
	e.scan("x.txt")
	// The peer's deletion V3: the file goes to the trash, the tombstone is recorded.
	trash := filepath.Join(t.TempDir(), "x.txt~trash")
	if err := os.Rename(abs, trash); err != nil {
		t.Fatal(err)
	}
	v3 := v2.Merge(Vector{{99, 2}})
	if _, err := e.st.PutLocal("f", Record{Path: "x.txt", Kind: File, Deleted: true, Mode: 0o644, ModTime: 5,
		Version: v3, Modifier: 99, HashVersion: HashVersion}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(trash, abs); err != nil { // restored from the trash
		t.Fatal(err)
	}
	e.scan("x.txt")
	r := e.rec("x.txt")
	t.Logf("after the restore: deleted %v, version %v (peers' tombstone %v), modifier %d", r.Deleted, r.Version, v3, r.Modifier)
	if !r.Deleted && r.Version.Compare(v3) != Greater {
		t.Errorf("restored file recorded at %v, not above peers' tombstone %v: peers keep it deleted", r.Version, v3)
	}
}
