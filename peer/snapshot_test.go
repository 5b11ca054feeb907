package peer

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWholeDeviceSnapshotRestored: bravo's index and its folder
// (with .syncd, so .syncd/served too) are restored together from one
// snapshot (a VM or file-system snapshot rolled back, a whole-disk
// backup restored). checkServed cannot tell: the served file went back
// with the index. The epoch is the same, bravo's sequence counter is
// below what alpha was served, and alpha keeps asking for records above
// its old progress: bravo's new records reuse sequences alpha believes it
// has, and new.txt never reaches alpha. handleChanges has the proof in
// hand: a caller of the current epoch asking since a sequence above the
// index's top was served records this index no longer has.
func TestWholeDeviceSnapshotRestored(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "snap")
	_, a, b := startTwo(t, nil)
	syncedFile(t, b, a, "base.txt", []byte("base"))
	b.stop()
	if err := os.Mkdir(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	snapshotDir(t, filepath.Join(b.home, "index"), filepath.Join(snap, "index"))
	snapshotDir(t, b.root, filepath.Join(snap, "folder"))
	b.start(a)
	for i := 0; i < 5; i++ {
		syncedFile(t, b, a, "draft.txt", []byte(strings.Repeat("draft ", i+1)))
	}
	if err := os.Remove(filepath.Join(b.root, "draft.txt")); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	waitConverged(t, converge, a, b)
	_, seenBefore, _ := a.store.Progress("f", b.id)
	b.stop()
	// The whole device goes back to the snapshot.
	snapshotDir(t, filepath.Join(snap, "index"), filepath.Join(b.home, "index"))
	snapshotDir(t, filepath.Join(snap, "folder"), b.root)
	b.start(a)
	b.write("new.txt", []byte("written after the restore"))
	b.rescan()
	waitFor(t, "bravo to record new.txt", converge, func() bool {
		_, ok, err := b.store.Local("f", "new.txt")
		return err == nil && ok
	})
	seqB, _ := b.store.LocalSeq("f")
	t.Logf("alpha had seen bravo up to seq %d; bravo's restored index is at seq %d", seenBefore, seqB)
	if _, diff, ok := convergedWithin(t, 10*time.Second, a, b); !ok {
		t.Errorf("no convergence after the snapshot was restored:\n%s", diff)
	}
	if !fileIs(a, "new.txt", "written after the restore") {
		t.Error("new.txt, written on bravo after the snapshot was restored, never reached alpha")
	}
}

// TestPeerCannotForceEpochs: a peer that asks for the current epoch
// above the index's top (a rolled-back device, as far as this one can
// tell) gives the folder a new epoch once per run, not at every such
// request: each new epoch costs every peer a refetch of every record of
// the folder. A peer that miscounts (a bug, another version) or asks so
// on purpose gets one.
func TestPeerCannotForceEpochs(t *testing.T) {
	_, a, b := startTwo(t, nil)
	syncedFile(t, a, b, "base.txt", []byte("base"))
	first, _ := a.store.Epoch("f")
	epoch := first
	resets := 0
	for i := 0; i < 5; i++ {
		u := fmt.Sprintf("%s/v1/folders/f/changes?since=%d&epoch=%d&wait=0s", a.srv.URL, uint64(1)<<40, epoch)
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set(testHeader, b.id.String())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		now, _ := a.store.Epoch("f")
		if now != epoch {
			resets++
		}
		epoch = now
	}
	if resets > 1 {
		t.Errorf("5 requests of one peer asking above the top gave alpha %d new epochs, want at most 1 (each makes every peer fetch every record again)", resets)
	}
}
