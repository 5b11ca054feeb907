package peer

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/syncd-project/syncd/index"
)

// getBlock asks d for block h of folder "f" as peer, and returns the body
// of a 200 answer (nil otherwise).
func getBlock(t *testing.T, d, peer *testDev, h index.Hash) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.srv.URL+"/v1/folders/f/blocks/"+h.String(), nil)
	req.Header.Set(testHeader, peer.id.String())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return body
}

// indexedBlock waits until d has scanned rel as one block and returns it.
func indexedBlock(t *testing.T, d *testDev, rel string) index.Hash {
	t.Helper()
	var rec index.Record
	waitFor(t, rel+" indexed", converge, func() bool {
		r, ok, _ := d.store.Local("f", rel)
		rec = r
		return ok && len(r.Blocks) == 1
	})
	return rec.Blocks[0].Hash
}

// TestIgnoredRewrittenFileNotServed: a peer that got app.conf knows its
// block hashes. The user then ignores app.conf and writes a secret into
// it, of the same size. The record stays (ignored paths keep theirs), but
// the file is no longer what it records, so its bytes are not served, by
// either kind of block request.
func TestIgnoredRewrittenFileNotServed(t *testing.T) {
	n := newTestNet(t)
	victim := n.addDevice("victim")
	evil := &testDev{net: n, name: "evil", id: deviceFromName("evil")}
	startDev(t, victim, evil)

	public := []byte("password=<set me>                       \n")
	victim.write("app.conf", public)
	victim.rescan()
	h := indexedBlock(t, victim, "app.conf")
	if got := getBlock(t, victim, evil, h); !bytes.Equal(got, public) {
		t.Fatalf("GET block of app.conf as scanned = %q, want its content", got)
	}

	secret := []byte("password=hunter2-my-real-bank-password!!\n")
	if len(secret) != len(public) {
		t.Fatalf("test setup: %d != %d", len(secret), len(public))
	}
	victim.write(".syncdignore", []byte("/app.conf\n"))
	victim.write("app.conf", secret)
	victim.write("other.txt", []byte("scanned with the new ignore file"))
	victim.rescan()
	waitFor(t, "the scan with the ignore file", converge, func() bool {
		_, ok, _ := victim.store.Local("f", "other.txt")
		return ok
	})

	if body := getBlock(t, victim, evil, h); bytes.Contains(body, []byte("hunter2")) {
		t.Errorf("GET block %s of the ignored file: served its private content %q", h.String()[:12], body)
	}
	req, _ := http.NewRequest(http.MethodPost, victim.srv.URL+"/v1/folders/f/blocks", bytes.NewReader(h[:]))
	req.Header.Set(testHeader, evil.id.String())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "hunter2") {
		t.Errorf("POST blocks [%s]: served the ignored file's private content %q", h.String()[:12], body)
	}
}

// TestAwayFolderNotServed: another disk mounted at the folder's path has a
// file at the same path as an indexed one; it is not what the record
// describes (another inode and mtime), so a peer asking for the indexed
// block gets nothing of it.
func TestAwayFolderNotServed(t *testing.T) {
	n := newTestNet(t)
	victim := n.addDevice("victim")
	evil := &testDev{net: n, name: "evil", id: deviceFromName("evil")}
	startDev(t, victim, evil)

	shared := bytes.Repeat([]byte("holiday photo "), 100)
	victim.write("DCIM/img0001.jpg", shared)
	victim.rescan()
	h := indexedBlock(t, victim, "DCIM/img0001.jpg")
	if got := getBlock(t, victim, evil, h); !bytes.Equal(got, shared) {
		t.Fatalf("GET block of the photo as scanned = %d bytes, want its content", len(got))
	}
	if err := os.Rename(victim.root, victim.root+".disk1"); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte("PRIVATE scan"), 200)[:len(shared)]
	victim.write("DCIM/img0001.jpg", other)
	if body := getBlock(t, victim, evil, h); bytes.Contains(body, []byte("PRIVATE")) {
		t.Errorf("GET block %s while the folder is away: served %d bytes of the other disk's file (%q...)", h.String()[:12], len(body), body[:24])
	}
}
