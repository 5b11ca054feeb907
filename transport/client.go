package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// Client limits.
const (
	dialTimeout            = 5 * time.Second
	handshakeTimeoutClient = 5 * time.Second
	// HTTP/1.1 needs one connection per parallel request; stay well under
	// the server's maxConnsPerIP.
	maxConnsPerPeerHTTP1 = 16
	// maxDialsPerPeer bounds a client's handshakes in progress: the server
	// refuses an address's handshakes beyond maxHandshakesPerIP (a burst of
	// 16 block connections got "connection reset by peer" for some), so
	// the rest wait here for their turn instead.
	maxDialsPerPeer = maxHandshakesPerIP / 2
	idleConnTimeout = 90 * time.Second
	h2FrameSize     = 256 << 10
	h2Window        = 4<<20 - 1
)

// netDialer dials with TCP keepalives tuned so that a vanished peer is
// noticed in about 11 s even on an idle HTTP/1.1 connection (long poll).
func netDialer() *net.Dialer {
	return &net.Dialer{
		Timeout: dialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     5 * time.Second,
			Interval: 2 * time.Second,
			Count:    3,
		},
	}
}

// NewClient returns an HTTP client for the peer API of device peer at addr.
// Every connection dials addr whatever the request URL's host (use any host,
// e.g. "https://"+peer.Short()), and verifies that the server is peer and
// that peer is pinned. The client has no overall timeout (long polls):
// callers bound requests with contexts. Dial and TLS handshake are bounded by
// 5 s each; dead peers are noticed by HTTP/2 pings or TCP keepalives within
// about 10 s.
func NewClient(o Options, peer deviceid.ID, addr string) *http.Client {
	return &http.Client{Transport: newTransport(o, peer, addr)}
}

func newTransport(o Options, peer deviceid.ID, addr string) *http.Transport {
	o = o.withDefaults()
	conf := ClientTLSConfig(o, peer)
	d := netDialer()
	dials := make(chan struct{}, maxDialsPerPeer)
	tr := &http.Transport{
		Proxy: nil,
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			select {
			case dials <- struct{}{}:
				defer func() { <-dials }()
			case <-ctx.Done():
				return nil, fmt.Errorf("dial %s at %s: %w", peer.Short(), addr, ctx.Err())
			}
			raw, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("dial %s at %s: %w", peer.Short(), addr, err)
			}
			if o.HTTP != HTTP2 {
				raw = &readBufConn{Conn: raw} // HTTP/1.1: bulk block bodies
			}
			tc := tls.Client(raw, conf)
			hctx, cancel := context.WithTimeout(ctx, handshakeTimeoutClient)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("TLS handshake with %s at %s: %w", peer.Short(), addr, err)
			}
			return tc, nil
		},
		TLSHandshakeTimeout:    handshakeTimeoutClient,
		IdleConnTimeout:        idleConnTimeout,
		DisableCompression:     true, // blocks are compressed or incompressible already
		MaxResponseHeaderBytes: maxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: pingAfter,
			PingTimeout:     pingTimeout,
			// Larger frames and windows for bulk block transfer.
			MaxReadFrameSize:              h2FrameSize,
			MaxReceiveBufferPerConnection: h2Window,
			MaxReceiveBufferPerStream:     h2Window,
		},
		Protocols: new(http.Protocols),
	}
	if o.HTTP == HTTP2 {
		tr.Protocols.SetHTTP2(true)
		tr.ForceAttemptHTTP2 = true
		tr.MaxIdleConnsPerHost = 2
	} else {
		tr.Protocols.SetHTTP1(true)
		tr.MaxIdleConnsPerHost = maxConnsPerPeerHTTP1
		tr.MaxConnsPerHost = maxConnsPerPeerHTTP1
	}
	return tr
}
