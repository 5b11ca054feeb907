package index

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScanAdoptsIntent: a file that holds exactly what a pull intended to
// install (a crash between its rename and its record) takes the intended
// version, not a new one of this device; a file that differs in anything
// (content, mode, mtime) is a local edit as before. A full scan drops the
// intents it read; a targeted one keeps them.
func TestScanAdoptsIntent(t *testing.T) {
	e := newScanEnv(t)
	e.write("old.txt", "v1")
	e.scan()
	v1 := e.rec("old.txt").Version

	pulled := func(rel, data string) Record {
		e.write(rel, data)
		fi, err := os.Lstat(filepath.Join(e.root, rel))
		if err != nil {
			t.Fatal(err)
		}
		blocks, id := chunkBlocks([]byte(data))
		return Record{Path: rel, Kind: File, Size: int64(len(data)), Mode: 0o644, ModTime: fi.ModTime().UnixNano(),
			Blocks: blocks, Content: id, Version: Vector{{99, 7}}, Modifier: 99, HashVersion: HashVersion}
	}
	over := pulled("old.txt", "v2 from 99")
	over.Version = v1.Merge(Vector{{99, 7}})
	fresh := pulled("new.txt", "new from 99")
	edited := pulled("edited.txt", "the pull's")
	e.write("edited.txt", "the user's") // same size and, likely, mtime: the content differs
	chmodded := pulled("chmod.txt", "same bytes")
	if err := os.Chmod(filepath.Join(e.root, "chmod.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PutIntents("f", []Record{over, fresh}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PutIntents("f", []Record{edited, chmodded}); err != nil {
		t.Fatal(err)
	}
	if got, ids, err := e.st.IntentsOf("f"); err != nil || len(got) != 4 || len(ids) != 2 || got["new.txt"].Content != fresh.Content {
		t.Fatalf("IntentsOf = %d intents, %d batches, %v; want 4 in 2", len(got), len(ids), err)
	}

	e.scan("new.txt") // targeted: adopts, keeps the intents
	if r := e.rec("new.txt"); !cmp.Equal(r.Version, fresh.Version) || r.Modifier != 99 {
		t.Errorf("new.txt after a targeted scan: version %v modifier %d, want %v 99", r.Version, r.Modifier, fresh.Version)
	}
	if got, _, _ := e.st.IntentsOf("f"); len(got) != 4 {
		t.Errorf("a targeted scan left %d intents, want 4", len(got))
	}
	e.scan()
	if r := e.rec("old.txt"); !cmp.Equal(r.Version, over.Version) || r.Modifier != 99 {
		t.Errorf("old.txt: version %v modifier %d, want the intended %v 99", r.Version, r.Modifier, over.Version)
	}
	for _, rel := range []string{"edited.txt", "chmod.txt"} {
		if r := e.rec(rel); r.Version.Counter(self) == 0 || r.Modifier != self {
			t.Errorf("%s, not what the pull intended: version %v modifier %d, want a local edit", rel, r.Version, r.Modifier)
		}
	}
	if got, ids, err := e.st.IntentsOf("f"); err != nil || got != nil || ids != nil {
		t.Errorf("after a full scan IntentsOf = %v, %v, %v; want none", got, ids, err)
	}

	// DropIntents drops a batch; ForgetLocal drops them all.
	id, err := e.st.PutIntents("f", []Record{fresh})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.DropIntents("f", id); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.st.IntentsOf("f"); got != nil {
		t.Errorf("after DropIntents: %d intents", len(got))
	}
	if _, err := e.st.PutIntents("f", []Record{fresh}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.ForgetLocal("f"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.st.IntentsOf("f"); got != nil {
		t.Errorf("after ForgetLocal: %d intents", len(got))
	}
}
