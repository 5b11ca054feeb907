package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// Server limits. Modest on purpose: a LAN peer needs a handful of
// connections, a scanner or a misbehaving host gets little.
const (
	handshakeTimeout = 10 * time.Second
	// helloTimeout bounds the wait for a ClientHello. Only a connection
	// whose ClientHello is in takes one of the maxHandshakes slots, so
	// sockets that say nothing cannot lock pinned peers out.
	helloTimeout       = 3 * time.Second
	maxConnsPerIP      = 32
	maxHandshakesPerIP = 8
	maxHandshakes      = 64
	// maxConns bounds the connections held at once, from all addresses:
	// many hosts (or one with many IPv6 addresses) must not use up the
	// process's descriptors, which the index and the folders need too.
	maxConns          = 1024
	maxHeaderBytes    = 64 << 10
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 5 * time.Minute
	shutdownGrace     = 5 * time.Second
	// Dead-peer detection on idle HTTP/2 connections: a ping after 5 s of
	// silence, the connection dropped 5 s later without an answer.
	pingAfter   = 5 * time.Second
	pingTimeout = 5 * time.Second
)

// PairHandler runs one pairing session. It owns conn until it returns (the
// Server closes conn afterwards and on shutdown). peerCA is the other side's
// device CA certificate (well-formed but not pinned), peerID its ID.
type PairHandler func(conn *tls.Conn, peerCA *x509.Certificate, peerID deviceid.ID)

// Server accepts peer connections: it does the TLS handshake itself (with
// timeouts and per-address limits), hands pairing connections to the pair
// handler and everything else to an http.Server running the peer API.
type Server struct {
	o       Options
	tlsConf *tls.Config
	hs      *http.Server
	unknown unknownLog
	hsSem   chan struct{} // global bound on concurrent handshakes

	baseCtx    context.Context // request contexts; cancelled on shutdown
	cancelBase context.CancelFunc

	mu        sync.Mutex
	pair      PairHandler               // guarded by mu; nil = pairing closed
	perIP     map[string]*ipState       // guarded by mu
	pending   map[net.Conn]string       // guarded by mu: conns in handshake or pairing, by IP
	served    map[net.Conn]string       // guarded by mu: conns handed to HTTP, by IP
	peerOf    map[net.Conn]deviceid.ID  // guarded by mu: the device of each served peer API conn
	listeners map[net.Listener]struct{} // guarded by mu
	closed    bool                      // guarded by mu
	conns     int                       // guarded by mu: connections admitted and not released
	maxConns  int                       // maxConns (a field for tests)

	wg sync.WaitGroup // handshake and pairing goroutines, HTTP serve loops
}

type ipState struct{ conns, handshakes int }

// NewServer returns a Server for the peer HTTP API h. Requests reach h only
// from pinned peers; RequestPeer gives the caller's device ID.
func NewServer(o Options, h http.Handler) *Server {
	o = o.withDefaults()
	s := &Server{
		o:         o,
		hsSem:     make(chan struct{}, maxHandshakes),
		maxConns:  maxConns,
		perIP:     map[string]*ipState{},
		pending:   map[net.Conn]string{},
		served:    map[net.Conn]string{},
		peerOf:    map[net.Conn]deviceid.ID{},
		listeners: map[net.Listener]struct{}{},
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.tlsConf = serverConfig(o, s.pairOpen, &s.unknown)
	choose := s.tlsConf.GetConfigForClient
	s.tlsConf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		// The ClientHello is in: the rest of the handshake costs CPU, so
		// it takes a slot (handle gives it back).
		if raw, ok := hello.Conn.(*coalesceConn); ok && !raw.hsSlot {
			select {
			case s.hsSem <- struct{}{}:
				raw.hsSlot = true
			case <-hello.Context().Done():
				return nil, hello.Context().Err()
			}
			_ = raw.SetReadDeadline(time.Time{})
		}
		return choose(hello)
	}
	s.hs = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
				cs := tc.ConnectionState()
				if id, err := PeerID(&cs); err == nil {
					return context.WithValue(ctx, peerKey{}, id)
				}
			}
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				s.release(c)
			}
		},
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 256,
			SendPingTimeout:      pingAfter,
			PingTimeout:          pingTimeout,
			MaxReadFrameSize:     h2FrameSize,
		},
	}
	s.hs.Protocols = new(http.Protocols)
	s.hs.Protocols.SetHTTP1(true)
	s.hs.Protocols.SetHTTP2(true)
	return s
}

type peerKey struct{}

// RequestPeer returns the verified device ID of the peer that sent r to a
// Server's handler.
func RequestPeer(r *http.Request) (deviceid.ID, bool) {
	id, ok := r.Context().Value(peerKey{}).(deviceid.ID)
	return id, ok
}

// SetPairHandler opens pairing (h != nil) or closes it (nil). While open,
// ClientHellos offering ProtoPair complete a handshake against any
// well-formed device chain and the connection goes to h; while closed they
// are refused in the handshake. Pinned HTTP connections never reach h.
func (s *Server) SetPairHandler(h func(conn *tls.Conn, peer *x509.Certificate, peerID deviceid.ID)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pair = h
}

func (s *Server) pairOpen() bool { return s.pairHandler() != nil }

func (s *Server) pairHandler() PairHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pair
}

// Serve accepts connections on ln (plain TCP; the Server does TLS) until ln
// fails or the Server is closed. It returns http.ErrServerClosed after Close
// or Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	hl := &handoffListener{addr: ln.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
	defer hl.Close()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(hl) // returns when hl is closed or on Close/Shutdown
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Anything else (out of descriptors, buffers or memory, an
			// aborted connection) passes: the daemon keeps serving, as
			// net/http does.
			if backoff == 0 {
				s.o.Logger.Warn("accepting peer connections failed; retrying", "err", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		ip := remoteIP(c)
		if !s.admit(c, ip) {
			s.o.Logger.Debug("refused connection: too many from this address", "remote", ip)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c, ip, hl)
		}()
	}
}

// Run serves ln until ctx is done, then shuts down gracefully (open requests
// get a few seconds; long polls see their context cancelled). It returns nil
// after a clean stop.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := s.Shutdown(sctx)
	<-errc
	if errors.Is(err, context.DeadlineExceeded) {
		return nil // stragglers were closed by Shutdown
	}
	return err
}

// Shutdown stops accepting, cancels request contexts, waits for open
// requests until ctx is done, then closes everything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	err := s.hs.Shutdown(ctx)
	if err != nil {
		s.hs.Close()
	}
	s.closeAll()
	s.wg.Wait()
	return err
}

// Close stops the Server at once, closing every connection.
func (s *Server) Close() error {
	s.stop()
	err := s.hs.Close()
	s.closeAll()
	s.wg.Wait()
	return err
}

func (s *Server) stop() {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.cancelBase()
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.pending {
		c.Close()
	}
	for c := range s.served {
		c.Close()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// admit counts c against its address's limits.
func (s *Server) admit(c net.Conn, ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	st := s.perIP[ip]
	if st == nil {
		st = &ipState{}
		s.perIP[ip] = st
	}
	if st.conns >= maxConnsPerIP || st.handshakes >= maxHandshakesPerIP || s.conns >= s.maxConns {
		if st.conns == 0 {
			delete(s.perIP, ip)
		}
		return false
	}
	st.conns++
	st.handshakes++
	s.conns++
	s.pending[c] = ip
	return true
}

// handshakeDone ends c's handshake count; if keep, c moves to served.
func (s *Server) handshakeDone(c, key net.Conn, ip string, keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.perIP[ip]; st != nil {
		st.handshakes--
	}
	delete(s.pending, c)
	if keep {
		s.served[key] = ip
	}
}

// DropUnpinned closes the peer connections of devices that are no longer
// pinned: removing a peer takes effect at once, not when its connections
// end by themselves.
func (s *Server) DropUnpinned() {
	s.mu.Lock()
	var drop []net.Conn
	for c, id := range s.peerOf {
		if !s.o.Pins.Has(id) {
			drop = append(drop, c)
		}
	}
	s.mu.Unlock()
	for _, c := range drop {
		c.Close()
	}
}

// release forgets a closed connection. Safe to call more than once.
func (s *Server) release(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ip, ok := s.served[c]
	if !ok {
		return
	}
	delete(s.served, c)
	delete(s.peerOf, c)
	s.conns--
	if st := s.perIP[ip]; st != nil {
		st.conns--
		if st.conns <= 0 && st.handshakes <= 0 {
			delete(s.perIP, ip)
		}
	}
}

// handle does the TLS handshake of c and routes it.
func (s *Server) handle(c net.Conn, ip string, hl *handoffListener) {
	raw := &coalesceConn{Conn: c}
	tc := tls.Server(raw, s.tlsConf)
	ctx, cancel := context.WithTimeout(s.baseCtx, handshakeTimeout)
	defer cancel()
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	err := tc.HandshakeContext(ctx)
	if raw.hsSlot {
		<-s.hsSem
	}
	if err != nil {
		s.o.Logger.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		s.handshakeDone(c, tc, ip, true)
		c.Close()
		s.release(tc)
		return
	}
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol == ProtoPair {
		s.handshakeDone(c, tc, ip, true)
		s.runPair(tc, &cs)
		s.release(tc)
		return
	}
	var served net.Conn = tc
	if cs.NegotiatedProtocol != ProtoHTTP2 {
		served = &coalescedTLS{Conn: tc, raw: raw} // HTTP/1.1: block bodies
	}
	s.handshakeDone(c, served, ip, true)
	if id, err := PeerID(&cs); err == nil {
		s.mu.Lock()
		if _, ok := s.served[served]; ok {
			s.peerOf[served] = id
		}
		s.mu.Unlock()
	}
	select {
	case hl.ch <- served: // http.Server owns it now; ConnState releases it
	case <-hl.done:
		served.Close()
		s.release(served)
	}
}

func (s *Server) runPair(tc *tls.Conn, cs *tls.ConnectionState) {
	defer tc.Close()
	h := s.pairHandler()
	if h == nil || len(cs.PeerCertificates) != 2 {
		return // pairing closed between ClientHello and now
	}
	id, err := PeerID(cs)
	if err != nil {
		return
	}
	h(tc, cs.PeerCertificates[1], id)
}

func remoteIP(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// handoffListener feeds handshaken connections to an http.Server.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
