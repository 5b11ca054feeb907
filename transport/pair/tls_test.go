package pair

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// device is a test identity: one self-signed certificate standing for the
// device CA (the real transport presents a leaf under it; pairing only
// cares about the CA's ID).
type device struct {
	name string
	cert tls.Certificate
	id   deviceid.ID
}

func newDevice(t testing.TB, name string) device {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return device{
		name: name,
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c},
		id:   deviceid.FromPublicKeyInfo(c.RawSubjectPublicKeyInfo),
	}
}

func (d device) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{d.cert},
		ClientAuth:   tls.RequireAnyClientCert, // no pinning while pairing
		NextProtos:   []string{ALPN},
		MinVersion:   tls.VersionTLS13,
	}
}

func (d device) clientConfig() *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{d.cert},
		InsecureSkipVerify: true, // no pinning while pairing: CPace authenticates
		NextProtos:         []string{ALPN},
		MinVersion:         tls.VersionTLS13,
	}
}

// binding builds d's Binding from its side of a TLS connection, as the
// transport's pair handler and DialPair caller will.
func (d device) binding(c *tls.Conn) (Binding, error) {
	if err := c.Handshake(); err != nil {
		return Binding{}, fmt.Errorf("%s: handshake: %w", d.name, err)
	}
	cs := c.ConnectionState()
	if cs.NegotiatedProtocol != ALPN {
		return Binding{}, fmt.Errorf("%s: ALPN %q, want %q", d.name, cs.NegotiatedProtocol, ALPN)
	}
	exp, err := Exporter(cs)
	if err != nil {
		return Binding{}, err
	}
	peer := deviceid.FromPublicKeyInfo(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
	return Binding{Exporter: exp, Local: d.id, Peer: peer, Name: d.name}, nil
}

func listen(t *testing.T, cfg *tls.Config) net.Listener {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// serveOnce runs the host's side on the first connection of l.
func serveOnce(l net.Listener, host device, h *Host, out chan<- outcome) {
	c, err := l.Accept()
	if err != nil {
		out <- outcome{err: err}
		return
	}
	defer c.Close()
	b, err := host.binding(c.(*tls.Conn))
	if err != nil {
		out <- outcome{err: err}
		return
	}
	r, err := h.Accept(c.(*tls.Conn), b)
	out <- outcome{r, err}
}

func joinOver(addr string, joiner device, code Code) outcome {
	c, err := tls.Dial("tcp", addr, joiner.clientConfig())
	if err != nil {
		return outcome{err: err}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b, err := joiner.binding(c)
	if err != nil {
		return outcome{err: err}
	}
	r, err := Join(c, code, b)
	return outcome{r, err}
}

func TestPairOverTLS(t *testing.T) {
	hostDev, joinDev := newDevice(t, "home server"), newDevice(t, "laptop")
	for _, tc := range []struct {
		name      string
		code      string
		wantErr   error
		wantPairs bool
	}{
		{"right code", "7KQ3-9XMD", nil, true},
		{"wrong code", "7KQ3-9XME", ErrWrongCode, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, hostDev.serverConfig())
			h := newHost(t, Options{Code: mustCode(t, "7KQ3-9XMD")})
			hostOut := make(chan outcome, 1)
			go serveOnce(l, hostDev, h, hostOut)
			jo := joinOver(l.Addr().String(), joinDev, mustCode(t, tc.code))
			ho := <-hostOut
			if !errors.Is(ho.err, tc.wantErr) || !errors.Is(jo.err, tc.wantErr) {
				t.Fatalf("errors = host %v, joiner %v, want %v on both", ho.err, jo.err, tc.wantErr)
			}
			if !tc.wantPairs {
				return
			}
			if want := (Result{PeerID: joinDev.id, PeerName: "laptop"}); ho.res != want {
				t.Errorf("Accept() = %+v, want %+v", ho.res, want)
			}
			if want := (Result{PeerID: hostDev.id, PeerName: "home server"}); jo.res != want {
				t.Errorf("Join() = %+v, want %+v", jo.res, want)
			}
		})
	}
}

// mitm terminates TLS on both sides with its own identity and relays the
// plaintext: the pairing messages pass through unchanged.
func mitm(t *testing.T, mallet device, hostAddr string) (addr string, stop func()) {
	t.Helper()
	l := listen(t, mallet.serverConfig())
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		up, err := tls.Dial("tcp", hostAddr, mallet.clientConfig())
		if err != nil {
			t.Errorf("mitm: dial host: %v", err)
			return
		}
		defer up.Close()
		var relay sync.WaitGroup
		relay.Go(func() { io.Copy(up, c); up.CloseWrite() })
		relay.Go(func() { io.Copy(c, up); c.(*tls.Conn).CloseWrite() })
		relay.Wait()
	})
	return l.Addr().String(), func() { l.Close(); wg.Wait() }
}

// A relaying man in the middle cannot complete a pairing even when the user
// types the right code: the two TLS sessions have different exporters (and
// the sides see the attacker's CA), so both confirmations fail, both sides
// say "wrong code", nothing is pinned, and the code is used up.
func TestRelayingManInTheMiddle(t *testing.T) {
	hostDev, joinDev, mallet := newDevice(t, "home server"), newDevice(t, "laptop"), newDevice(t, "mallet")
	for _, tc := range []struct {
		name string
		// trueIDs replaces the IDs the sides saw with the honest ones, as if
		// the attacker could present the right CAs: the exporter alone must
		// still defeat the relay.
		trueIDs bool
		// unbound is the control: both sides get the honest IDs and the
		// same constant exporter, as if the binding were broken. Then the
		// relay must succeed, which shows the relay is transparent and
		// that the binding is what stops the attack.
		unbound bool
	}{
		{"attacker's certificates", false, false},
		{"honest IDs, different TLS sessions", true, false},
		{"control: no session binding", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, hostDev.serverConfig())
			h := newHost(t, Options{})
			hostOut := make(chan outcome, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					hostOut <- outcome{err: err}
					return
				}
				defer c.Close()
				b, err := hostDev.binding(c.(*tls.Conn))
				if err != nil {
					hostOut <- outcome{err: err}
					return
				}
				if b.Peer != mallet.id {
					t.Errorf("host sees peer %v, want the attacker %v", b.Peer, mallet.id)
				}
				if tc.trueIDs {
					b.Peer = joinDev.id
				}
				if tc.unbound {
					b.Exporter = exporter(7)
				}
				r, err := h.Accept(c.(*tls.Conn), b)
				hostOut <- outcome{r, err}
			}()
			addr, stop := mitm(t, mallet, l.Addr().String())
			defer stop()

			c, err := tls.Dial("tcp", addr, joinDev.clientConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			jb, err := joinDev.binding(c)
			if err != nil {
				t.Fatal(err)
			}
			if tc.trueIDs {
				jb.Peer = hostDev.id
			}
			if tc.unbound {
				jb.Exporter = exporter(7)
			}
			jr, jerr := Join(c, h.Code(), jb) // the right code
			ho := <-hostOut
			if tc.unbound {
				if ho.err != nil || jerr != nil {
					t.Errorf("control: errors = host %v, joiner %v, want nil (relay not transparent?)", ho.err, jerr)
				}
				return
			}
			if !errors.Is(ho.err, ErrWrongCode) || !errors.Is(jerr, ErrWrongCode) {
				t.Errorf("errors = host %v, joiner %v, want ErrWrongCode on both", ho.err, jerr)
			}
			if ho.res != (Result{}) || jr != (Result{}) {
				t.Errorf("results = host %+v, joiner %+v, want none", ho.res, jr)
			}
			select {
			case <-h.Done():
			default:
				t.Error("code still open after a relayed attempt")
			}
		})
	}
}

func BenchmarkPairOverTLS(b *testing.B) {
	hostDev, joinDev := newDevice(b, "home server"), newDevice(b, "laptop")
	l, err := tls.Listen("tcp", "127.0.0.1:0", hostDev.serverConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for b.Loop() {
		h, _ := NewHost(Options{})
		out := make(chan outcome, 1)
		go serveOnce(l, hostDev, h, out)
		jo := joinOver(l.Addr().String(), joinDev, h.Code())
		if ho := <-out; ho.err != nil || jo.err != nil {
			b.Fatal(ho.err, jo.err)
		}
	}
}
