package main

// The control socket at its longest path, and status advice for an unnamed peer.

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-project/syncd/peer"
)

// TestControlSocketPathLimit: serveControl promises any socket path up
// to maxSocketPath (107) bytes, but it first binds a temporary path
// DIR/.sock-<random uint32>/s, up to 8 bytes longer than DIR/syncd.sock. A
// socket path of 100 to 107 bytes is then refused (at random for 100-106:
// it depends on how many digits MkdirTemp drew), with an error naming a path
// the user never chose.
func TestControlSocketPathLimit(t *testing.T) {
	base := t.TempDir()
	n := maxSocketPath - len(base) - len("/") - len("/syncd.sock")
	if n < 1 {
		t.Fatalf("temp dir %s too long for this test; set TMPDIR to a shorter one", base)
	}
	home := filepath.Join(base, strings.Repeat("h", n))
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(home, "syncd.sock")
	if len(sock) != maxSocketPath {
		t.Fatalf("socket path is %d bytes, want %d", len(sock), maxSocketPath)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveControl(ctx, sock, http.NotFoundHandler(), slog.New(slog.DiscardHandler)) }()
	select {
	case err := <-done:
		cancel()
		t.Fatalf("serveControl(%d-byte path, limit %d) = %v, want it served", len(sock), maxSocketPath, err)
	case <-time.After(500 * time.Millisecond):
		t.Logf("served at %s (%d bytes)", sock, len(sock))
	}
	cancel()
	<-done
}

// TestPeerActionWithoutName: a peer pinned with 'syncd peer add ID'
// (no --name; the documented default) or paired with a device whose name
// was all unprintable has Name "". Its status action then names no device.
func TestPeerActionWithoutName(t *testing.T) {
	for _, e := range []string{"127.0.0.1:1: connect: connection refused", "unknown peer: ABCDEFG"} {
		got := peerAction(peer.PeerStatus{ID: "ABCDEFG-HIJKLMN", Short: "ABCDEFG", Name: "", LastError: e})
		if strings.Contains(got, "  ") || !strings.Contains(got, "ABCDEFG") {
			t.Errorf("peerAction(unnamed peer, %q) = %q, want it to name the device (its short ID)", e, got)
		}
	}
}
