package peer

import (
	"slices"
	"strings"
	"testing"

	"github.com/syncd-project/syncd/discovery"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// TestDialRecordsVerifiedAddress: an mDNS address where the peer answered
// over the transport is reported to the book as verified, so that forged
// mDNS answers cannot push it out; a static one is left as it is.
func TestDialRecordsVerifiedAddress(t *testing.T) {
	for _, src := range []discovery.Source{discovery.SourceMDNS, discovery.SourceStatic} {
		t.Run(string(src), func(t *testing.T) {
			n := newTestNet(t)
			n.source = src
			a, b := n.addDevice("alpha"), n.addDevice("bravo")
			a.start(b)
			b.start(a)
			syncedFile(t, a, b, "a.txt", []byte("a"))
			n.mu.Lock()
			got := slices.Clone(n.verified)
			n.mu.Unlock()
			want := b.id.Short() + " " + b.srv.Listener.Addr().String()
			if has := slices.Contains(got, want); has != (src == discovery.SourceMDNS) {
				t.Errorf("verified addresses = %v; want %q among them: %v", got, want, src == discovery.SourceMDNS)
			}
		})
	}
}

// TestFolderChangeReconnectIsNoError: a change of the shared folders ends
// the session with a peer on purpose, to poll the new set; status shows
// no error for it (it sent the user to check a firewall) and the peer is
// back at once.
func TestFolderChangeReconnectIsNoError(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "a.txt", []byte("a"))
	g := t.TempDir()
	a.eng.Configure([]PeerConfig{{ID: b.id, Name: b.name}}, []FolderConfig{
		{ID: "f", Root: a.root, Peers: []deviceid.ID{b.id}},
		{ID: "g", Root: g, Peers: []deviceid.ID{b.id}},
	})
	waitFor(t, "alpha to end the session for the new folder", converge, func() bool {
		return strings.Contains(a.logText(), "shared folders changed")
	})
	for _, p := range a.eng.Status().Peers {
		if p.LastError != "" {
			t.Errorf("alpha's status of %s after a folder change: %q, want no error", p.Name, p.LastError)
		}
	}
	waitFor(t, "bravo connected again", converge, func() bool {
		for _, p := range a.eng.Status().Peers {
			if !p.Connected {
				return false
			}
		}
		return true
	})
}
