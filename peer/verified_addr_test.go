package peer

import (
	"slices"
	"testing"

	"github.com/syncd-project/syncd/discovery"
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
