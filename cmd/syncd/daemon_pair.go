package main

// Pairing by short code (issue 7), daemon side and command line. The
// protocol itself is transport/pair; this file opens and closes the pairing
// endpoint, finds the host over mDNS, pins the result in config.toml and
// reloads it so the two devices connect at once.
//
// Control API (unix socket, see control.go). Both endpoints answer with a
// stream of JSON lines (NDJSON, 200 OK) so that long waits never hit a
// header timeout; a request that is refused at once gets a 4xx status and
// {"error": ..., "hint": ...} instead.
//
//	POST /v1/pair/host  {"timeout": "5m"}
//	    -> {"state": "waiting", "code": "7KQ3-9XMD", "expires": TIME}
//	    -> {"peer": {"id": ..., "name": ...}}  or  {"error": ..., "hint": ...}
//	POST /v1/pair/join  {"code": "7KQ3-9XMD", "addr": "HOST:PORT", "timeout": "1m"}
//	    -> {"state": "searching"}
//	    -> {"peer": {"id": ..., "name": ..., "addr": ...}}  or  {"error": ..., "hint": ...}
//
// The host's pairing endpoint (transport.Server.SetPairHandler) is open only
// while a host request waits, hands at most pairRate connections a second
// (burst pairBurst, pairConns at once) to the protocol, and closes as soon as
// the code's one attempt is over, it expires, or the 'syncd pair' command
// goes away (Ctrl-C).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/syncd-project/syncd/discovery"
	"github.com/syncd-project/syncd/transport"
	"github.com/syncd-project/syncd/transport/deviceid"
	"github.com/syncd-project/syncd/transport/pair"
)

// Pairing limits and defaults.
const (
	// defaultJoinTimeout bounds 'syncd pair CODE': finding the host and the
	// protocol run. The host's default is pair.DefaultTTL (5 minutes).
	defaultJoinTimeout = time.Minute
	// maxPairTimeout bounds --timeout on both sides.
	maxPairTimeout = time.Hour
	// pairRate and pairBurst limit the pairing connections per second that
	// reach the protocol; pairConns bounds those running at once. The code's
	// one attempt is the real protection; this keeps a flood cheap.
	pairRate  = 2
	pairBurst = 4
	pairConns = 4
	// pairBrowse is how long one mDNS browse for the host listens.
	pairBrowse = time.Second
	// cancelGrace bounds the wait for a running attempt after the host's
	// request went away (its connection is closed, so it ends at once).
	cancelGrace = 5 * time.Second
	// maxPairRequest bounds a pairing request body; maxPairLine one line of
	// the streamed answer.
	maxPairRequest = 4 << 10
	maxPairLine    = 64 << 10
)

// pairing is a 'syncd pair' waiting on this daemon: the code's host side and
// the pairing connections it is serving. d.pair points to it while it
// waits (pairTXT then announces pair=1).
type pairing struct {
	host *pair.Host
	lim  *rate.Limiter
	sem  chan struct{} // one token per connection in the protocol

	mu      sync.Mutex              // guards conns and evicted
	conns   map[*tls.Conn]time.Time // connections in the protocol now, by admission time
	evicted map[*tls.Conn]bool      // closed to make room; their slot went to another
}

// helloGrace is how long a pairing connection may sit without claiming the
// code before a newcomer may take its place (a real joiner sends its hello
// right after the TLS handshake).
const helloGrace = 2 * time.Second

func newPairing(h *pair.Host) *pairing {
	return &pairing{
		host:    h,
		lim:     rate.NewLimiter(pairRate, pairBurst),
		sem:     make(chan struct{}, pairConns),
		conns:   map[*tls.Conn]time.Time{},
		evicted: map[*tls.Conn]bool{},
	}
}

// admit takes conn into the protocol, unless that is over the limits. A
// connection arriving after the code was used up is admitted too: the
// protocol tells the joiner why it cannot pair (used, expired) at once.
func (p *pairing) admit(conn *tls.Conn) bool {
	if !p.lim.Allow() {
		return false
	}
	select {
	case p.sem <- struct{}{}:
	default:
		// Full. While nobody has claimed the code, every connection in
		// the protocol is one that has not sent a hello: the oldest one
		// idle for helloGrace gives its slot to conn, so idle strangers
		// cannot lock the real joiner out.
		victim := p.takeIdleSlot(conn)
		if victim == nil {
			return false
		}
		victim.Close() // outside mu: a close may wait on the network
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[conn] = time.Now()
	return true
}

// takeIdleSlot gives the slot of the oldest connection idle for helloGrace
// to conn and returns that connection, for the caller to close; nil when
// there is none or the code is claimed.
func (p *pairing) takeIdleSlot(conn *tls.Conn) *tls.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var victim *tls.Conn
	var since time.Time
	for c, t := range p.conns {
		if victim == nil || t.Before(since) {
			victim, since = c, t
		}
	}
	if victim == nil || time.Since(since) < helloGrace || !p.host.Open() {
		return nil
	}
	delete(p.conns, victim)
	p.evicted[victim] = true
	p.conns[conn] = time.Now()
	return victim
}

func (p *pairing) release(conn *tls.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.evicted[conn] {
		delete(p.evicted, conn) // its slot belongs to the newcomer now
		return
	}
	delete(p.conns, conn)
	<-p.sem
}

// abort closes the connections in the protocol (after the code was
// cancelled: a running attempt then fails and uses the code up).
func (p *pairing) abort() {
	p.mu.Lock()
	conns := make([]*tls.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// pairHostRequest is the body of POST /v1/pair/host.
type pairHostRequest struct {
	Timeout string `json:"timeout,omitempty"` // Go duration; "" = pair.DefaultTTL
}

// pairJoinRequest is the body of POST /v1/pair/join.
type pairJoinRequest struct {
	Code    string `json:"code"`
	Addr    string `json:"addr,omitempty"`    // HOST:PORT; "" = find the host over mDNS
	Timeout string `json:"timeout,omitempty"` // Go duration; "" = defaultJoinTimeout
}

// pairEvent is one line of a pairing answer. The last line has Peer or
// Error.
type pairEvent struct {
	State   string     `json:"state,omitempty"` // "waiting" (host), "searching" (joiner)
	Code    string     `json:"code,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
	Peer    *pairPeer  `json:"peer,omitempty"`
	Error   string     `json:"error,omitempty"`
	Hint    string     `json:"hint,omitempty"`
}

// pairPeer is the other device of a successful pairing, as pinned.
type pairPeer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Addr string `json:"addr,omitempty"` // the address pinned (joiner side)
}

// pairRoutes adds the pairing endpoints of the control API.
func (d *daemon) pairRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/pair/host", d.handlePairHost)
	mux.HandleFunc("POST /v1/pair/join", d.handlePairJoin)
}

// pairTXT is the extra mDNS TXT while a pairing code waits.
func (d *daemon) pairTXT() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pair != nil {
		return []string{"pair=1"}
	}
	return nil
}

// pairName is this device's name as sent in the pairing protocol.
func (d *daemon) pairName() string {
	d.mu.Lock()
	name := d.cfg.Name
	d.mu.Unlock()
	if name == "" {
		name = d.id.Name
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	return configName(name)
}

func (d *daemon) handlePairHost(w http.ResponseWriter, r *http.Request) {
	var req pairHostRequest
	if err := readPairRequest(r, &req); err != nil {
		writePairError(w, http.StatusBadRequest, err)
		return
	}
	ttl, err := parsePairTimeout(req.Timeout, pair.DefaultTTL)
	if err != nil {
		writePairError(w, http.StatusBadRequest, err)
		return
	}
	host, err := pair.NewHost(pair.Options{TTL: ttl})
	if err != nil {
		writePairError(w, http.StatusInternalServerError, err)
		return
	}
	p := newPairing(host)
	d.mu.Lock()
	if d.pair != nil {
		d.mu.Unlock()
		writePairError(w, http.StatusConflict, withHint(errors.New("pair: another 'syncd pair' is already waiting on this device"),
			"use the code it shows, or stop it (Ctrl-C) first"))
		return
	}
	d.pair = p
	m := d.mdns
	d.mu.Unlock()
	d.server.SetPairHandler(func(conn *tls.Conn, _ *x509.Certificate, peerID deviceid.ID) {
		d.servePair(p, conn, peerID)
	})
	var endOnce sync.Once
	end := func() {
		endOnce.Do(func() {
			d.server.SetPairHandler(nil)
			d.mu.Lock()
			if d.pair == p {
				d.pair = nil
			}
			m := d.mdns // it may have started meanwhile, announcing pair=1
			d.mu.Unlock()
			if m != nil {
				m.Reannounce()
			}
		})
	}
	defer end()
	if m != nil {
		m.Reannounce()
	}
	d.log.Info("pairing: waiting for another device to join", "expires", host.Expires().Format(time.TimeOnly))

	st := newPairStream(w)
	exp := host.Expires()
	st.send(pairEvent{State: "waiting", Code: host.Code().String(), Expires: &exp})
	res, err := d.waitHost(r.Context(), p)
	end() // close the endpoint before the (slower) pinning
	if err != nil {
		d.log.Warn("pairing failed", "err", err)
		st.fail(err, hostHint(err))
		return
	}
	name := configName(res.PeerName)
	if err := d.pinPeer(res.PeerID, name, ""); err != nil {
		d.log.Error("pairing: paired but could not pin the peer", "peer", res.PeerID.String(), "err", err)
		st.fail(fmt.Errorf("pair: paired with %s but could not pin it: %w", res.PeerID, err), "check the config file, then pin it with 'syncd peer add "+res.PeerID.String()+"'")
		return
	}
	d.log.Info("paired", "peer", res.PeerID.String(), "name", name)
	st.send(pairEvent{Peer: &pairPeer{ID: res.PeerID.String(), Name: name}})
}

// waitHost waits for the outcome of p's code. When ctx ends first (the
// command was interrupted or the daemon stops) the code is cancelled and a
// running attempt is aborted; if that attempt had already succeeded, the
// success is returned all the same, since the other device pins us.
func (d *daemon) waitHost(ctx context.Context, p *pairing) (pair.Result, error) {
	res, err := p.host.Wait(ctx)
	if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		return res, err
	}
	p.host.Cancel()
	p.abort()
	t := time.NewTimer(cancelGrace)
	defer t.Stop()
	select {
	case <-p.host.Done():
	case <-t.C:
		return pair.Result{}, pair.ErrCanceled
	}
	return p.host.Wait(context.WithoutCancel(ctx))
}

// servePair runs the host's protocol on one pairing connection (called by
// the transport server, which closes conn afterwards).
func (d *daemon) servePair(p *pairing, conn *tls.Conn, peerID deviceid.ID) {
	remote := conn.RemoteAddr().String()
	if !p.admit(conn) {
		d.log.Debug("pairing: connection refused (rate limit)", "remote", remote)
		return
	}
	defer p.release(conn)
	exp, err := pair.Exporter(conn.ConnectionState())
	if err != nil {
		d.log.Warn("pairing: no TLS exporter", "remote", remote, "err", err)
		return
	}
	_, err = p.host.Accept(conn, pair.Binding{Exporter: exp, Local: d.id.ID, Peer: peerID, Name: d.pairName()})
	if err != nil {
		d.log.Debug("pairing attempt failed", "remote", remote, "peer", peerID.String(), "err", err)
	}
}

func (d *daemon) handlePairJoin(w http.ResponseWriter, r *http.Request) {
	var req pairJoinRequest
	if err := readPairRequest(r, &req); err != nil {
		writePairError(w, http.StatusBadRequest, err)
		return
	}
	code, err := pair.ParseCode(req.Code)
	if err != nil {
		writePairError(w, http.StatusBadRequest, err)
		return
	}
	if req.Addr != "" {
		if err := validateAddr(req.Addr); err != nil {
			writePairError(w, http.StatusBadRequest, fmt.Errorf("addr %q: %w", req.Addr, err))
			return
		}
	}
	timeout, err := parsePairTimeout(req.Timeout, defaultJoinTimeout)
	if err != nil {
		writePairError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	st := newPairStream(w)
	st.send(pairEvent{State: "searching"})
	res, addr, err := d.join(ctx, code, req.Addr, timeout)
	if err != nil {
		d.log.Warn("pairing failed", "err", err)
		st.fail(err, joinHint(err))
		return
	}
	name := configName(res.PeerName)
	if err := d.pinPeer(res.PeerID, name, addr); err != nil {
		d.log.Error("pairing: paired but could not pin the peer", "peer", res.PeerID.String(), "err", err)
		st.fail(fmt.Errorf("pair: paired with %s but could not pin it: %w", res.PeerID, err),
			"check the config file, then pin it with 'syncd peer add "+res.PeerID.String()+" --addr "+addr+"'")
		return
	}
	d.log.Info("paired", "peer", res.PeerID.String(), "name", name, "addr", addr)
	st.send(pairEvent{Peer: &pairPeer{ID: res.PeerID.String(), Name: name, Addr: addr}})
}

// errNotWaiting is wrapped when the device dialled does not accept pairing.
var errNotWaiting = errors.New("is not waiting to pair")

// join finds the host (at addr, or over mDNS), dials it and runs the
// joiner's protocol. It returns the host and the address it was reached at.
func (d *daemon) join(ctx context.Context, code pair.Code, addr string, timeout time.Duration) (pair.Result, string, error) {
	var (
		addrs []string
		want  deviceid.ID // the ID announced over mDNS; zero with --addr
	)
	if addr != "" {
		addrs = []string{addr}
	} else {
		f, err := d.findPairingHost(ctx, timeout)
		if err != nil {
			return pair.Result{}, "", err
		}
		addrs, want = f.Addrs, f.ID
	}
	conn, addr, err := d.dialPair(ctx, addrs)
	if err != nil {
		return pair.Result{}, "", err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cs := conn.ConnectionState()
	peerID, err := transport.PeerID(&cs)
	if err != nil {
		return pair.Result{}, "", fmt.Errorf("pair with %s: %w", addr, err)
	}
	if !want.IsZero() && peerID != want {
		return pair.Result{}, "", fmt.Errorf("pair: the device at %s presented the ID %s, not the %s it announced", addr, peerID, want)
	}
	if peerID == d.id.ID {
		return pair.Result{}, "", withHint(fmt.Errorf("pair: %s is this device itself", addr), "run 'syncd pair CODE' on the other device")
	}
	exp, err := pair.Exporter(cs)
	if err != nil {
		return pair.Result{}, "", fmt.Errorf("pair with %s: %w", addr, err)
	}
	deadline := time.Now().Add(pair.DefaultAttemptTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	res, err := pair.Join(conn, code, pair.Binding{Exporter: exp, Local: d.id.ID, Peer: peerID, Name: d.pairName()})
	if err != nil {
		switch {
		case isPairSentinel(err):
			return pair.Result{}, "", err
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return pair.Result{}, "", fmt.Errorf("pair with %s: no answer within %v: %w", addr, timeout, err)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			// The host closed the connection: its pairing ended meanwhile.
			return pair.Result{}, "", fmt.Errorf("pair: the device at %s %w any more (%v)", addr, errNotWaiting, err)
		}
		return pair.Result{}, "", err
	}
	return res, addr, nil
}

// dialPair connects to the first of addrs that accepts a pairing
// connection.
func (d *daemon) dialPair(ctx context.Context, addrs []string) (*tls.Conn, string, error) {
	var errs []error
	for _, a := range addrs {
		c, err := transport.DialPair(ctx, d.transportOptions(), a)
		if err == nil {
			return c, a, nil
		}
		d.log.Debug("pairing: dial failed", "addr", a, "err", err)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", fmt.Errorf("pair: the device at %s %w (%w)", strings.Join(addrs, ", "), errNotWaiting, errors.Join(errs...))
}

// findPairingHost browses mDNS until exactly one other device announces
// pair=1, or ctx ends.
func (d *daemon) findPairingHost(ctx context.Context, timeout time.Duration) (discovery.Found, error) {
	d.mu.Lock()
	m, ifaces := d.mdns, d.cfg.Ifaces
	d.mu.Unlock()
	if len(d.flags.ifaces) > 0 {
		ifaces = d.flags.ifaces
	}
	if m == nil {
		return discovery.Found{}, withHint(errors.New("pair: no --addr given and this device's discovery is off"),
			"give --addr HOST:PORT of the device showing the code (its 'syncd status' shows the address)")
	}
	log := d.log.With("part", "discovery")
	for {
		found, err := discovery.BrowseOnce(ctx, ifaces, pairBrowse, log)
		if ctx.Err() != nil {
			return discovery.Found{}, withHint(fmt.Errorf("pair: no device waiting to pair was found on the local network within %v", timeout),
				"check that 'syncd pair' shows a code on the other device and that both are on the same network, or give --addr HOST:PORT")
		}
		if errors.Is(err, discovery.ErrNoInterface) {
			return discovery.Found{}, withHint(fmt.Errorf("pair: find the other device: %w", err), "give --addr HOST:PORT")
		}
		var hosts []discovery.Found
		for _, f := range found {
			if f.TXT["pair"] == "1" && f.ID != d.id.ID {
				hosts = append(hosts, f)
			}
		}
		switch {
		case len(hosts) == 1:
			return hosts[0], nil
		case len(hosts) > 1:
			var names []string
			for _, h := range hosts {
				names = append(names, fmt.Sprintf("%s (%s, %s)", nameOr(h.Name, "?"), h.ID.Short(), strings.Join(h.Addrs, " ")))
			}
			return discovery.Found{}, withHint(fmt.Errorf("pair: several devices are waiting to pair: %s", strings.Join(names, "; ")),
				"give --addr HOST:PORT of the one showing your code")
		}
		if err != nil {
			d.log.Debug("pairing: browse failed", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(pairBrowse / 2):
			}
		}
	}
}

// pinPeer pins id (adding addr to its static addresses) in config.toml
// and makes the running daemon use it at once.
func (d *daemon) pinPeer(id deviceid.ID, name, addr string) error {
	err := updateConfig(d.paths.Config, func(c *Config) error {
		p, ok := c.peer(id)
		if !ok {
			if len(c.Peers) >= maxPeers {
				return withHint(fmt.Errorf("already %d peers", maxPeers), "remove one with 'syncd peer remove ID'")
			}
			c.Peers = append(c.Peers, PeerConfig{ID: id})
			p = &c.Peers[len(c.Peers)-1]
		}
		if name != "" {
			p.Name = name
		}
		if addr != "" {
			addrs := []string{addr}
			for _, a := range p.Addrs {
				if a != addr && len(addrs) < maxAddrs {
					addrs = append(addrs, a)
				}
			}
			p.Addrs = addrs
		}
		return nil
	})
	if err != nil {
		return err
	}
	return d.reloadConfig()
}

// configName makes a name received from a peer fit config.toml's rules
// (validateName): printable characters only, at most maxNameLen bytes.
func configName(s string) string {
	s = strings.ToValidUTF8(s, "")
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsPrint(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxNameLen {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// parsePairTimeout parses a --timeout value sent to the daemon.
func parsePairTimeout(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	t, err := time.ParseDuration(s)
	if err != nil || t <= 0 || t > maxPairTimeout {
		return 0, fmt.Errorf("pair: timeout %q: want a duration from 1s to %v", s, maxPairTimeout)
	}
	return t, nil
}

func isPairSentinel(err error) bool {
	for _, s := range []error{pair.ErrWrongCode, pair.ErrExpired, pair.ErrBurnt, pair.ErrBusy, pair.ErrCanceled, pair.ErrProtocol} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// hostHint is what the user of 'syncd pair' (no code) should do after err.
func hostHint(err error) string {
	switch {
	case errors.Is(err, pair.ErrWrongCode):
		return "nothing was pinned and the code is used up; run 'syncd pair' again for a new code"
	case errors.Is(err, pair.ErrExpired):
		return "nothing was pinned; run 'syncd pair' again (--timeout sets how long a code waits)"
	case errors.Is(err, pair.ErrCanceled):
		return "nothing was pinned; run 'syncd pair' again"
	}
	return "nothing was pinned and the code is used up; run 'syncd pair' again for a new code"
}

// joinHint is what the user of 'syncd pair CODE' should do after err.
func joinHint(err error) string {
	var h hinter
	if errors.As(err, &h) {
		return h.Hint()
	}
	switch {
	case errors.Is(err, pair.ErrWrongCode):
		return "nothing was pinned; the code is used up: run 'syncd pair' again on the other device and type the new code"
	case errors.Is(err, pair.ErrExpired), errors.Is(err, pair.ErrBurnt), errors.Is(err, pair.ErrCanceled):
		return "nothing was pinned; run 'syncd pair' again on the other device for a new code"
	case errors.Is(err, pair.ErrBusy):
		return "another device is trying this code right now; wait, or run 'syncd pair' again on the other device"
	case errors.Is(err, errNotWaiting):
		return "run 'syncd pair' on the other device first (a code allows one attempt and expires) and check the address"
	}
	return "nothing was pinned; check both daemons' logs and run 'syncd pair' again"
}

// readPairRequest decodes a bounded JSON request body.
func readPairRequest(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxPairRequest+1))
	if err != nil {
		return fmt.Errorf("pair: read request: %w", err)
	}
	if len(data) > maxPairRequest {
		return fmt.Errorf("pair: request larger than %d bytes", maxPairRequest)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("pair: request: %w", err)
	}
	return nil
}

// writePairError answers a refused pairing request with its hint.
func writePairError(w http.ResponseWriter, code int, err error) {
	ev := pairEvent{Error: err.Error()}
	var h hinter
	if errors.As(err, &h) {
		ev.Hint = h.Hint()
	}
	writeJSON(w, code, ev)
}

// pairStream writes the NDJSON lines of a pairing answer, each flushed.
type pairStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder
}

func newPairStream(w http.ResponseWriter) *pairStream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	return &pairStream{w: w, rc: http.NewResponseController(w), enc: json.NewEncoder(w)}
}

func (s *pairStream) send(ev pairEvent) {
	_ = s.enc.Encode(ev) // the command went away; the daemon carries on
	_ = s.rc.Flush()
}

func (s *pairStream) fail(err error, hint string) {
	s.send(pairEvent{Error: err.Error(), Hint: hint})
}

// pairCommand is 'syncd pair [CODE] [--addr HOST:PORT] [--timeout D]'.
func pairCommand(g globalFlags, args []string) int {
	return reportError(g.Stderr, runPair(g, args))
}

func runPair(g globalFlags, args []string) error {
	const cmd = "pair"
	fs := newFlags(cmd)
	addr := fs.String("addr", "", "HOST:PORT of the device showing the code (default: find it over mDNS)")
	timeout := fs.Duration("timeout", 0, "how long the code waits (default 5m), or how long joining may take (default 1m)")
	pos, err := parseArgs(g, fs, "pair [CODE] [--addr HOST:PORT] [--timeout D]", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 1 {
		return usageErr(cmd, "want at most one code, got %d arguments", len(pos))
	}
	if *timeout < 0 || *timeout > maxPairTimeout || (*timeout > 0 && *timeout < time.Second) {
		return usageErr(cmd, "--timeout %v: want 1s to %v", *timeout, maxPairTimeout)
	}
	var tmo string
	if *timeout > 0 {
		tmo = timeout.String()
	}
	if len(pos) == 0 && *addr != "" {
		return &usageError{cmd: cmd, msg: "--addr needs a code",
			hint: "run 'syncd pair' on the device that shows the code, and 'syncd pair CODE --addr HOST:PORT' on the other"}
	}
	var code pair.Code
	if len(pos) == 1 {
		if code, err = pair.ParseCode(pos[0]); err != nil {
			return &usageError{cmd: cmd, msg: err.Error(), hint: "type the code exactly as the other device shows it, like 7KQ3-9XMD"}
		}
	}
	if *addr != "" {
		if err := validateAddr(*addr); err != nil {
			return usageErr(cmd, "--addr %q: %v", *addr, err)
		}
	}
	paths, err := g.paths()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var peer pairPeer
	if code.IsZero() {
		printed := false
		peer, err = streamPair(ctx, paths, "/v1/pair/host", pairHostRequest{Timeout: tmo}, func(ev pairEvent) {
			if ev.Code != "" && !printed {
				fmt.Fprintln(g.Stdout, ev.Code)
				printed = true
			}
		})
	} else {
		peer, err = streamPair(ctx, paths, "/v1/pair/join", pairJoinRequest{Code: code.String(), Addr: *addr, Timeout: tmo}, nil)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "paired with %s (%s)\n", quoteIfNeeded(peer.Name), peer.ID)
	return nil
}

// streamPair posts body to the daemon's pairing endpoint path and reads
// the answer's lines, calling progress (if set) for each one before the
// last; it returns the peer of the last line or its error.
func streamPair(ctx context.Context, paths Paths, path string, body any, progress func(pairEvent)) (pairPeer, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return pairPeer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "http://syncd"+path, bytes.NewReader(data))
	if err != nil {
		return pairPeer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	client := controlClient(paths.Socket)
	defer client.CloseIdleConnections()
	interrupted := withHint(errors.New("pair: interrupted"), "nothing was pinned; run 'syncd pair' again")
	resp, err := client.Do(req)
	if err != nil {
		if isNoDaemon(err) {
			return pairPeer{}, &noDaemonError{home: paths.Home}
		}
		if ctx.Err() != nil {
			return pairPeer{}, interrupted
		}
		return pairPeer{}, withHint(fmt.Errorf("talk to the daemon (POST %s): %w", path, err), "check the daemon's log")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxPairLine))
		var ev pairEvent
		if json.Unmarshal(b, &ev) != nil || ev.Error == "" {
			if resp.StatusCode == http.StatusNotFound {
				return pairPeer{}, withHint(errors.New("pair: the running daemon does not support pairing"), "restart it with this version of syncd")
			}
			return pairPeer{}, withHint(fmt.Errorf("daemon: POST %s: %s", path, resp.Status), "check the daemon's log")
		}
		return pairPeer{}, eventError(ev)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxPairLine)
	for sc.Scan() {
		var ev pairEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return pairPeer{}, withHint(fmt.Errorf("the daemon's answer to POST %s: %w", path, err),
				"make sure 'syncd' and the running daemon are the same version")
		}
		switch {
		case ev.Error != "":
			return pairPeer{}, eventError(ev)
		case ev.Peer != nil:
			return *ev.Peer, nil
		case progress != nil:
			progress(ev)
		}
	}
	if ctx.Err() != nil {
		return pairPeer{}, interrupted
	}
	err = sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return pairPeer{}, withHint(fmt.Errorf("pair: the daemon ended without an answer: %w", err), "check the daemon's log")
}

func eventError(ev pairEvent) error {
	hint := ev.Hint
	if hint == "" {
		hint = "check the daemon's log"
	}
	return withHint(errors.New(ev.Error), hint)
}
