package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// ALPN protocol names. A connection offering ProtoPair is a pairing attempt
// and never reaches HTTP; the others carry the peer HTTP API.
const (
	ProtoPair  = "syncd-pair/1"
	ProtoHTTP2 = "h2"
	ProtoHTTP1 = "http/1.1"
)

// HTTPVersion selects what a Client offers by ALPN.
type HTTPVersion int

const (
	// HTTPDefault is the version chosen by benchmark (see DefaultHTTPVersion).
	HTTPDefault HTTPVersion = iota
	// HTTP1 offers only http/1.1 (one request per connection at a time).
	HTTP1
	// HTTP2 offers only h2 (all requests multiplexed on one connection).
	HTTP2
)

// DefaultHTTPVersion is what HTTPDefault means: HTTP/2, for a peer's
// session (hello, the changes long polls): one connection, one handshake,
// one slot of the server's per-address limit, and PINGs that notice a dead
// peer. Bulk block transfer is another matter: BenchmarkHTTPBulkGet over
// loopback on this quiet 2-core machine (-benchtime 3x) ran 64 block-sized
// 1 MiB GETs 8 at a time at 557 MB/s over HTTP/2 and 1252 MB/s over
// HTTP/1.1 (8 connections), and one 64 MiB GET at 552 and 927 MB/s: Go
// writes all of an HTTP/2 connection's frames from one goroutine and reads
// them in another, with a copy in between. The daemon therefore asks for
// blocks with an HTTP1 client (peer.Options.BlockClient). Since HTTP/1.1
// connections gather TLS records into large TCP writes and reads
// (coalesce.go), the same benchmark (-benchtime 20x) gives 1921 against
// 707 MB/s for the parallel case, at 1.0 against 2.9 CPU-s per GiB. An earlier run
// of the same benchmark on a loaded machine had favoured HTTP/2 (266 against
// 202 MB/s for the parallel case).
const DefaultHTTPVersion = HTTP2

// Options configure the TLS configs, Server and Client of this package.
type Options struct {
	// Identity is this device's certificate. Required.
	Identity *Identity
	// Pins are the devices accepted as peers. nil pins nothing.
	Pins *Pins
	// Logger receives handshake failures (debug) and rejected unknown
	// devices (info, once per device ID). Default: discard.
	Logger *slog.Logger
	// Now is the clock certificates are checked against. Default time.Now.
	Now func() time.Time
	// HTTP selects HTTP/1.1 or HTTP/2 for Clients. Default HTTPDefault.
	HTTP HTTPVersion
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTP == HTTPDefault {
		o.HTTP = DefaultHTTPVersion
	}
	return o
}

// The TLS policy (DESIGN.md): ECDHE only, AES-GCM only.
var (
	// tls12Suites are the only TLS 1.2 suites; the certificates are ECDSA so
	// no RSA suite could be negotiated anyway.
	tls12Suites = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	}
	tls13Suites = []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384}
	// curves: the post-quantum hybrid first, then X25519 and P-256. The
	// P-256 and P-384 ML-KEM hybrids and P-384/P-521 are left out: every
	// syncd peer speaks X25519MLKEM768, and fewer choices are fewer surprises
	// for an external scanner.
	curves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}
)

// allowedSuite reports whether version/suite is inside the policy.
func allowedSuite(version, suite uint16) bool {
	switch version {
	case tls.VersionTLS13:
		return slices.Contains(tls13Suites, suite)
	case tls.VersionTLS12:
		return slices.Contains(tls12Suites, suite)
	}
	return false
}

// checkNegotiated is the last line of the policy, run on both ends in
// VerifyConnection: whatever the ClientHello said, only policy suites,
// versions and (for TLS 1.3, where it is known on both ends) curves pass.
func checkNegotiated(cs tls.ConnectionState) error {
	if !allowedSuite(cs.Version, cs.CipherSuite) {
		return fmt.Errorf("%w: negotiated %s with %s", ErrPolicy, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	}
	if cs.Version == tls.VersionTLS13 && !slices.Contains(curves, cs.CurveID) {
		return fmt.Errorf("%w: negotiated key exchange %v", ErrPolicy, cs.CurveID)
	}
	if cs.DidResume {
		// Tickets are off on our servers; refuse anything else's resumption.
		return fmt.Errorf("%w: session resumption", ErrPolicy)
	}
	return nil
}

// aesGCMHardware mirrors crypto/tls's hasAESGCMHardwareSupport: when false, a
// Go server prefers ChaCha20 in TLS 1.3 whatever the client says.
var aesGCMHardware = (cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41 && cpu.X86.HasSSSE3) ||
	(cpu.ARM64.HasAES && cpu.ARM64.HasPMULL) ||
	(cpu.S390X.HasAES && cpu.S390X.HasAESCTR && cpu.S390X.HasGHASH) ||
	runtime.GOARCH == "ppc64" || runtime.GOARCH == "ppc64le"

// knownSuites are the suite IDs crypto/tls implements (both lists include
// the TLS 1.3 suites).
var knownSuites = func() map[uint16]bool {
	m := map[uint16]bool{}
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		m[s.ID] = true
	}
	return m
}()

var aesGCMSuites = map[uint16]bool{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:   true,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:   true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: true,
	tls.TLS_AES_128_GCM_SHA256:                  true,
	tls.TLS_AES_256_GCM_SHA384:                  true,
}

// tls13PicksAESGCM reports whether a Go TLS 1.3 server would pick an AES-GCM
// suite for a client offering suites (in the client's order). crypto/tls
// picks ChaCha20 whenever the client offers it unless the server has AES
// hardware and the client's first suite that crypto/tls knows is AES-GCM
// (crypto/tls's isAESGCMPreferred). The client must of course offer an
// AES-GCM TLS 1.3 suite at all.
func tls13PicksAESGCM(suites []uint16) bool {
	if !slices.Contains(suites, tls.TLS_AES_128_GCM_SHA256) && !slices.Contains(suites, tls.TLS_AES_256_GCM_SHA384) {
		return false
	}
	if !slices.Contains(suites, tls.TLS_CHACHA20_POLY1305_SHA256) {
		return true
	}
	if !aesGCMHardware {
		return false
	}
	for _, s := range suites {
		if knownSuites[s] {
			return aesGCMSuites[s]
		}
	}
	return false
}

// errPairClosed refuses a pairing ClientHello when no pair handler is set.
var errPairClosed = errors.New("pairing is not open")

// unknownLog remembers which unknown devices were already logged at info.
type unknownLog struct {
	mu   sync.Mutex
	seen map[deviceid.ID]struct{} // guarded by mu; bounded by maxUnknownLogged
}

const maxUnknownLogged = 1024

// first reports whether id is logged for the first time.
func (u *unknownLog) first(id deviceid.ID) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.seen[id]; ok {
		return false
	}
	if u.seen == nil {
		u.seen = map[deviceid.ID]struct{}{}
	}
	if len(u.seen) >= maxUnknownLogged {
		return false
	}
	u.seen[id] = struct{}{}
	return true
}

// baseConfig is what every config of this package shares.
func baseConfig(o Options) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		MaxVersion:       tls.VersionTLS13,
		CipherSuites:     slices.Clone(tls12Suites),
		CurvePreferences: slices.Clone(curves),
		// Tickets off: every connection is a full handshake with a fresh
		// chain check. Connections are pooled, so this costs little.
		SessionTicketsDisabled: true,
		Renegotiation:          tls.RenegotiateNever,
	}
}

// ServerTLSConfig returns the server side of the policy: a client
// certificate chain [leaf, CA] is required, its CA must be pinned, and
// ClientHellos that would end on anything but AES-GCM are capped at TLS 1.2
// (GCM-only). Pairing ClientHellos (ALPN ProtoPair) are refused; Server
// accepts them while a pair handler is set.
func ServerTLSConfig(o Options) *tls.Config {
	return serverConfig(o.withDefaults(), func() bool { return false }, &unknownLog{})
}

func serverConfig(o Options, pairOpen func() bool, unknown *unknownLog) *tls.Config {
	id := o.Identity
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.Certificate(), nil }

	peer := baseConfig(o)
	peer.GetCertificate = getCert
	peer.ClientAuth = tls.RequireAnyClientCert
	peer.NextProtos = []string{ProtoHTTP2, ProtoHTTP1}
	peer.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkNegotiated(cs); err != nil {
			return err
		}
		pid, _, err := verifyChain(cs.PeerCertificates, o.Now(), x509.ExtKeyUsageClientAuth)
		if err != nil {
			return err
		}
		if !o.Pins.Has(pid) {
			if unknown.first(pid) {
				o.Logger.Info("refused connection from unknown device", "device", pid.String())
			}
			return fmt.Errorf("%w: %s", ErrUnknownPeer, pid.Short())
		}
		return nil
	}

	pair := baseConfig(o)
	pair.GetCertificate = getCert
	pair.ClientAuth = tls.RequireAnyClientCert
	pair.NextProtos = []string{ProtoPair}
	pair.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkNegotiated(cs); err != nil {
			return err
		}
		if cs.NegotiatedProtocol != ProtoPair {
			return fmt.Errorf("%w: pairing connection negotiated %q", ErrPolicy, cs.NegotiatedProtocol)
		}
		_, _, err := verifyChain(cs.PeerCertificates, o.Now(), x509.ExtKeyUsageClientAuth)
		return err
	}

	capped := func(c *tls.Config) *tls.Config {
		c = c.Clone()
		c.MaxVersion = tls.VersionTLS12
		return c
	}
	peer12, pair12 := capped(peer), capped(pair)

	outer := peer.Clone()
	outer.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		isPair := slices.Contains(hello.SupportedProtos, ProtoPair)
		if isPair && !pairOpen() {
			return nil, errPairClosed
		}
		aes13 := tls13PicksAESGCM(hello.CipherSuites)
		switch {
		case isPair && aes13:
			return pair, nil
		case isPair:
			return pair12, nil
		case aes13:
			return peer, nil
		default:
			return peer12, nil
		}
	}
	return outer
}

// ClientTLSConfig returns the client side of the policy for dialling the
// device expect: the server's chain must be [leaf, CA] with the CA's ID equal
// to expect, and expect must be pinned. The negotiated suite is checked
// against the policy. Hostnames play no part.
func ClientTLSConfig(o Options, expect deviceid.ID) *tls.Config {
	o = o.withDefaults()
	c := clientBase(o)
	switch o.HTTP {
	case HTTP2:
		c.NextProtos = []string{ProtoHTTP2}
	default:
		c.NextProtos = []string{ProtoHTTP1}
	}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkNegotiated(cs); err != nil {
			return err
		}
		pid, _, err := verifyChain(cs.PeerCertificates, o.Now(), x509.ExtKeyUsageServerAuth)
		if err != nil {
			return err
		}
		if pid != expect {
			return fmt.Errorf("%w: dialled %s but reached %s", ErrUnknownPeer, expect.Short(), pid.Short())
		}
		if !o.Pins.Has(pid) {
			return fmt.Errorf("%w: %s is not pinned", ErrUnknownPeer, pid.Short())
		}
		return nil
	}
	return c
}

// clientBase is a client config presenting the identity. The chain is given
// by GetClientCertificate, which Go calls whatever acceptable CAs the server
// lists (our servers list none: peers are pinned by ID, not by CA file).
func clientBase(o Options) *tls.Config {
	c := baseConfig(o)
	id := o.Identity
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return id.Certificate(), nil
	}
	// Verification is done by VerifyConnection against the pinned ID.
	c.InsecureSkipVerify = true
	return c
}

// pairClientConfig accepts any well-formed device chain: pairing itself
// authenticates the other side, bound to this TLS session.
func pairClientConfig(o Options) *tls.Config {
	c := clientBase(o)
	c.NextProtos = []string{ProtoPair}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkNegotiated(cs); err != nil {
			return err
		}
		if cs.NegotiatedProtocol != ProtoPair {
			return fmt.Errorf("%w: server did not agree to pair (ALPN %q)", ErrPolicy, cs.NegotiatedProtocol)
		}
		_, _, err := verifyChain(cs.PeerCertificates, o.Now(), x509.ExtKeyUsageServerAuth)
		return err
	}
	return c
}

// DialPair connects to addr for pairing: the TLS handshake checks the
// server's chain is a well-formed device chain and that it agreed to
// ProtoPair, but pins nothing. The caller runs the pairing protocol on the
// returned connection (binding it with ExportKeyingMaterial) and closes it.
// In TLS 1.3 the server may still reject this device's certificate after
// DialPair returns; the caller learns it on its first read.
func DialPair(ctx context.Context, o Options, addr string) (*tls.Conn, error) {
	o = o.withDefaults()
	d := &tls.Dialer{NetDialer: netDialer(), Config: pairClientConfig(o)}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout+handshakeTimeoutClient)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial pair %s: %w", addr, err)
	}
	return c.(*tls.Conn), nil
}
