package main

// Tests of 'syncd pair': name and timeout helpers, then process-level tests
// with the real binary: two daemons on 127.0.0.1 paired with --addr, and two
// daemons in network namespaces paired through mDNS with no address given.
// Every daemon is stopped by PID and its log shown when a test fails.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/syncd-project/syncd/transport/pair"
)

func TestConfigName(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain", "laptop", "laptop"},
		{"unicode", "Zoë's Mac", "Zoë's Mac"},
		{"empty", "", ""},
		{"control chars dropped", "a\x00b\nc\x7fd", "abcd"},
		{"format chars dropped", "a\u200eb\u202ec", "abc"},
		{"invalid utf-8 dropped", "a\xffb", "ab"},
		{"spaces trimmed", "  x  ", "x"},
		{"truncated at 64 bytes", strings.Repeat("a", 100), strings.Repeat("a", 64)},
		{"truncated on a rune boundary", strings.Repeat("é", 40), strings.Repeat("é", 32)},
		{"not split inside a rune", "a" + strings.Repeat("é", 40), "a" + strings.Repeat("é", 31)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := configName(tc.in)
			if got != tc.want {
				t.Errorf("configName(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if err := validateName(got); err != nil {
				t.Errorf("validateName(configName(%q)) = %v, want nil", tc.in, err)
			}
		})
	}
}

// FuzzConfigName: whatever name a peer sends, the result is accepted by the
// config (else pinning would fail after a successful pairing).
func FuzzConfigName(f *testing.F) {
	for _, s := range []string{"", "laptop", "a\x00b", "\xff\xfe", strings.Repeat("é", 80), "\u202e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := configName(s)
		if err := validateName(got); err != nil {
			t.Fatalf("validateName(configName(%q)) = %v, want nil (got %q)", s, err, got)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("configName(%q) = %q, not valid UTF-8", s, got)
		}
	})
}

func TestParsePairTimeout(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 7 * time.Second, false},
		{"90s", 90 * time.Second, false},
		{"1h", time.Hour, false},
		{"1h1s", 0, true},
		{"0s", 0, true},
		{"-5s", 0, true},
		{"soon", 0, true},
	}
	for _, tc := range cases {
		got, err := parsePairTimeout(tc.in, 7*time.Second)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parsePairTimeout(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPairUsage(t *testing.T) {
	home := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		err  string // prefix of the one stderr line
	}{
		{"no daemon (host)", []string{"pair"}, exitFailure, "syncd: no syncd daemon is running for " + home + "; start it with 'syncd run'\n"},
		{"no daemon (joiner)", []string{"pair", "7KQ3-9XMD", "--addr", "127.0.0.1:9"}, exitFailure, "syncd: no syncd daemon is running for "},
		{"bad code", []string{"pair", "7KQ0-9XMD"}, exitUsage, "syncd: pair: invalid pairing code: character '0' at position 4 is not used in codes (codes never contain 0 or O); type the code"},
		{"short code", []string{"pair", "7KQ3"}, exitUsage, "syncd: pair: invalid pairing code: 4 characters, want 8"},
		{"two codes", []string{"pair", "7KQ3-9XMD", "7KQ3-9XMD"}, exitUsage, "syncd: pair: want at most one code"},
		{"addr without code", []string{"pair", "--addr", "127.0.0.1:9"}, exitUsage, "syncd: pair: --addr needs a code; run 'syncd pair' on the device"},
		{"bad addr", []string{"pair", "7KQ3-9XMD", "--addr", "nowhere"}, exitUsage, "syncd: pair: --addr \"nowhere\""},
		{"timeout too long", []string{"pair", "--timeout", "2h"}, exitUsage, "syncd: pair: --timeout 2h0m0s: want 1s to 1h0m0s"},
		{"timeout too short", []string{"pair", "--timeout", "1ms"}, exitUsage, "syncd: pair: --timeout 1ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--home", home}, tc.args...)
			code := realMain(args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("realMain(%q) = %d, want %d (stderr %q)", args, code, tc.code, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), tc.err) || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("realMain(%q) stderr = %q, want one line starting %q", args, stderr.String(), tc.err)
			}
			if stdout.Len() != 0 {
				t.Errorf("realMain(%q) stdout = %q, want nothing", args, stdout.String())
			}
		})
	}
}

func TestPairingAdmit(t *testing.T) {
	h, err := pair.NewHost(pair.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*tls.Conn, pairConns+2)
	others := make([]net.Conn, len(conns)) // the far ends
	for i := range conns {
		c, o := net.Pipe()
		t.Cleanup(func() { c.Close(); o.Close() })
		conns[i], others[i] = tls.Client(c, &tls.Config{}), o
	}

	// The rate limit: a burst of pairBurst, then nothing until tokens refill.
	p := newPairing(h)
	p.sem = make(chan struct{}, len(conns)) // take the concurrency bound out
	for i := range pairBurst {
		if !p.admit(conns[i]) {
			t.Fatalf("admit(conn %d) = false within the burst, want true", i)
		}
	}
	if p.admit(conns[pairBurst]) {
		t.Errorf("admit(conn %d) = true past the burst of %d, want false", pairBurst, pairBurst)
	}

	// The concurrency bound: pairConns at once, a place freed by release.
	p = newPairing(h)
	p.lim = rate.NewLimiter(rate.Inf, 0) // take the rate limit out
	for i := range pairConns {
		if !p.admit(conns[i]) {
			t.Fatalf("admit(conn %d) = false below %d at once, want true", i, pairConns)
		}
	}
	if p.admit(conns[pairConns]) {
		t.Errorf("admit(conn %d) = true with %d running, want false", pairConns, pairConns)
	}
	p.release(conns[0])
	if !p.admit(conns[pairConns]) {
		t.Errorf("admit after a release = false, want true")
	}

	// Aborting closes the connections in the protocol.
	p.release(conns[1])
	p.abort()
	for i := 2; i <= pairConns; i++ {
		others[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := others[i].Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("conn %d after close: read = %v, want closed", i, err)
		}
	}
}

// --- process-level tests ---

// buildPairBinary builds the real binary into a temporary directory, with
// the race detector when SYNCD_TEST_RACE=1 (a daemon that saw a race then
// exits with status 66, which stop reports).
func buildPairBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "syncd")
	args := []string{"build", "-o", bin}
	if os.Getenv("SYNCD_TEST_RACE") == "1" {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// pairBuf is an io.Writer safe for a process's output and the test.
type pairBuf struct {
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

func (s *pairBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *pairBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// device is one syncd home, with its daemon once started.
type pairDev struct {
	t    *testing.T
	bin  string
	name string
	home string
	id   string
	addr string // the daemon's --listen
	log  *pairBuf
	cmd  *exec.Cmd
	done chan struct{}
}

// newPairDev runs 'syncd init' in a fresh home.
func newPairDev(t *testing.T, bin, name string) *pairDev {
	t.Helper()
	d := &pairDev{t: t, bin: bin, name: name, home: filepath.Join(t.TempDir(), name)}
	if out, errOut, code := d.syncd("init", "--name", name); code != 0 {
		t.Fatalf("%s: init: exit %d\n%s%s", name, code, out, errOut)
	}
	out, _, code := d.syncd("id")
	if code != 0 {
		t.Fatalf("%s: id: exit %d", name, code)
	}
	d.id = strings.TrimSpace(out)
	return d
}

// syncd runs one CLI command against d's home and returns its output and
// exit code.
func (d *pairDev) syncd(args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, append([]string{"--home", d.home}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		d.t.Fatalf("%s: syncd %s: %v", d.name, strings.Join(args, " "), err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// start runs 'syncd run' (inside wrap, e.g. ip netns exec NS) and waits
// until its control socket answers.
func (d *pairDev) start(wrap []string, args ...string) {
	t := d.t
	t.Helper()
	argv := append(append(append([]string{}, wrap...), d.bin, "--home", d.home, "--log-level", "debug", "run"), args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.log = &pairBuf{}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.done = make(chan struct{})
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("%s: start daemon: %v", d.name, err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s's daemon:\n%s", d.name, d.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", filepath.Join(d.home, "syncd.sock")); err == nil {
			c.Close()
			return
		}
		select {
		case <-d.done:
			t.Fatalf("%s: daemon exited: %v\n%s", d.name, d.cmd.ProcessState, d.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: daemon's control socket never answered\n%s", d.name, d.log.String())
		}
	}
}

// stop ends the daemon by PID: SIGTERM, then SIGKILL after 10 s. A daemon
// that does not exit cleanly fails the test.
func (d *pairDev) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			d.t.Errorf("%s: daemon exited with status %d after SIGTERM, want 0", d.name, code)
		}
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("%s: daemon did not stop on SIGTERM", d.name)
	}
}

// pairHostCmd is a running 'syncd pair' (no code).
type pairHostCmd struct {
	cmd    *exec.Cmd
	code   string
	stdout *pairBuf
	stderr *pairBuf
	done   chan struct{}
}

// pairHost starts 'syncd pair ARGS...' on d and returns once it printed the
// code on its first line.
func (d *pairDev) pairHost(args ...string) *pairHostCmd {
	t := d.t
	t.Helper()
	cmd := exec.Command(d.bin, append([]string{"--home", d.home, "pair"}, args...)...)
	h := &pairHostCmd{cmd: cmd, stdout: &pairBuf{}, stderr: &pairBuf{}, done: make(chan struct{})}
	cmd.Stderr = h.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		defer close(h.done)
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		h.stdout.Write([]byte(line))
		first <- strings.TrimSuffix(line, "\n")
		br.WriteTo(h.stdout)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			_ = cmd.Process.Kill()
			<-h.done
		}
	})
	select {
	case h.code = <-first:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: 'syncd pair' printed no code; stderr %q", d.name, h.stderr.String())
	}
	if len(h.code) != 9 || h.code[4] != '-' {
		t.Fatalf("%s: 'syncd pair' first line = %q, want a code like 7KQ3-9XMD; stderr %q", d.name, h.code, h.stderr.String())
	}
	return h
}

// wait returns the command's exit code, its stdout after the code line, and
// its stderr.
func (h *pairHostCmd) wait(t *testing.T) (code int, stdout, stderr string) {
	t.Helper()
	select {
	case <-h.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("'syncd pair' did not finish; stderr %q", h.stderr.String())
	}
	out := h.stdout.String()
	_, rest, _ := strings.Cut(out, "\n")
	return h.cmd.ProcessState.ExitCode(), rest, h.stderr.String()
}

// peers returns d's pinned peers from 'syncd peer list --json'.
func (d *pairDev) peers() []peerJSON {
	d.t.Helper()
	out, errOut, code := d.syncd("peer", "list", "--json")
	if code != 0 {
		d.t.Fatalf("%s: peer list: exit %d: %s", d.name, code, errOut)
	}
	var ps []peerJSON
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		d.t.Fatalf("%s: peer list --json: %v\n%s", d.name, err, out)
	}
	return ps
}

// waitConnected waits until d's daemon reports peer connected.
func (d *pairDev) waitConnected(peer string, within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		out, _, code := d.syncd("status", "--json")
		if code == 0 {
			var st statusReport
			if err := json.Unmarshal([]byte(out), &st); err == nil {
				for _, p := range st.Peers {
					if p.ID == peer && p.Connected {
						return
					}
				}
			}
		}
		last = out
		time.Sleep(200 * time.Millisecond)
	}
	d.t.Fatalf("%s: not connected to %s within %v; last status:\n%s", d.name, peer, within, last)
}

// checkPairLine checks that s is exactly one line containing want.
func checkPairLine(t *testing.T, what, s, want string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasPrefix(s, "syncd: ") || !strings.Contains(s, want) {
		t.Errorf("%s stderr = %q, want one line 'syncd: ...' containing %q", what, s, want)
	}
}

func pairFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// otherPairCode returns a valid code that differs from code in one character.
func otherPairCode(code string) string {
	b := []byte(code)
	if b[0] == '2' {
		b[0] = '3'
	} else {
		b[0] = '2'
	}
	return string(b)
}

// TestPairDaemons pairs two daemons on 127.0.0.1 with --addr: refusals
// first (wrong code, expiry, a second 'syncd pair', Ctrl-C), then success,
// after which they connect and a shared folder syncs without a restart.
func TestPairDaemons(t *testing.T) {
	t.Parallel() // mostly waiting on processes
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildPairBinary(t)
	// The shared folders outlive the daemons (cleanups run last first):
	// a subtest's TempDir would be removed under running daemons.
	folders := t.TempDir()
	a, b := newPairDev(t, bin, "alpha"), newPairDev(t, bin, "beta")
	a.addr, b.addr = pairFreeAddr(t), pairFreeAddr(t)
	a.start(nil, "--listen", a.addr, "--discovery", "off")
	b.start(nil, "--listen", b.addr, "--discovery", "off")

	nothingPinned := func(t *testing.T) {
		t.Helper()
		for _, d := range []*pairDev{a, b} {
			if ps := d.peers(); len(ps) != 0 {
				t.Errorf("%s pinned %v, want nothing", d.name, ps)
			}
		}
	}

	t.Run("wrong code burns it", func(t *testing.T) {
		h := a.pairHost("--timeout", "1m")
		_, errOut, code := b.syncd("pair", otherPairCode(h.code), "--addr", a.addr)
		if code != exitFailure {
			t.Errorf("joiner with a wrong code: exit %d, want %d", code, exitFailure)
		}
		checkPairLine(t, "joiner with a wrong code", errOut, "wrong pairing code")
		hcode, hout, herr := h.wait(t)
		if hcode != exitFailure || hout != "" {
			t.Errorf("host after a wrong code: exit %d, stdout %q; want %d and only the code", hcode, hout, exitFailure)
		}
		checkPairLine(t, "host after a wrong code", herr, "wrong pairing code")
		// The code is used up: the right code now finds nobody waiting.
		_, errOut, code = b.syncd("pair", h.code, "--addr", a.addr)
		if code != exitFailure {
			t.Errorf("joiner with the burnt code: exit %d, want %d", code, exitFailure)
		}
		checkPairLine(t, "joiner with the burnt code", errOut, "is not waiting to pair")
		nothingPinned(t)
	})

	t.Run("expired", func(t *testing.T) {
		h := a.pairHost("--timeout", "1s")
		hcode, _, herr := h.wait(t)
		if hcode != exitFailure {
			t.Errorf("host with an expired code: exit %d, want %d", hcode, exitFailure)
		}
		checkPairLine(t, "host with an expired code", herr, "pairing code expired")
		_, errOut, code := b.syncd("pair", h.code, "--addr", a.addr)
		if code != exitFailure {
			t.Errorf("joiner with an expired code: exit %d, want %d", code, exitFailure)
		}
		checkPairLine(t, "joiner with an expired code", errOut, "is not waiting to pair")
		nothingPinned(t)
	})

	t.Run("one code at a time, Ctrl-C cancels", func(t *testing.T) {
		h := a.pairHost()
		_, errOut, code := a.syncd("pair")
		if code != exitFailure {
			t.Errorf("second 'syncd pair': exit %d, want %d", code, exitFailure)
		}
		checkPairLine(t, "second 'syncd pair'", errOut, "already waiting")
		if err := h.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		hcode, _, herr := h.wait(t)
		if hcode != exitFailure {
			t.Errorf("interrupted 'syncd pair': exit %d, want %d", hcode, exitFailure)
		}
		checkPairLine(t, "interrupted 'syncd pair'", herr, "interrupted")
		// The daemon closed the endpoint (the command's request ended).
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, errOut, code = b.syncd("pair", h.code, "--addr", a.addr)
			if strings.Contains(errOut, "is not waiting to pair") || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code != exitFailure {
			t.Errorf("joiner after Ctrl-C on the host: exit %d, want %d", code, exitFailure)
		}
		checkPairLine(t, "joiner after Ctrl-C on the host", errOut, "is not waiting to pair")
		nothingPinned(t)
	})

	t.Run("discovery off needs --addr", func(t *testing.T) {
		_, errOut, code := b.syncd("pair", "7KQ3-9XMD", "--timeout", "5s")
		if code != exitFailure {
			t.Errorf("pair without --addr: exit %d, want %d", code, exitFailure)
		}
		checkPairLine(t, "pair without --addr", errOut, "give --addr")
	})

	if t.Failed() {
		return
	}
	t.Run("right code pairs both", func(t *testing.T) {
		h := a.pairHost()
		out, errOut, code := b.syncd("pair", strings.ToLower(h.code), "--addr", a.addr)
		if code != 0 {
			t.Fatalf("joiner: exit %d, stderr %q", code, errOut)
		}
		if want := fmt.Sprintf("paired with alpha (%s)\n", a.id); out != want {
			t.Errorf("joiner stdout = %q, want %q", out, want)
		}
		hcode, hout, herr := h.wait(t)
		if hcode != 0 {
			t.Fatalf("host: exit %d, stderr %q", hcode, herr)
		}
		if want := fmt.Sprintf("paired with beta (%s)\n", b.id); hout != want {
			t.Errorf("host stdout after the code = %q, want %q", hout, want)
		}
		if diff := cmp.Diff([]peerJSON{{ID: b.id, Name: "beta", Addrs: []string{}}}, a.peers()); diff != "" {
			t.Errorf("host's peers (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]peerJSON{{ID: a.id, Name: "alpha", Addrs: []string{a.addr}}}, b.peers()); diff != "" {
			t.Errorf("joiner's peers (-want +got):\n%s", diff)
		}
		// No restart: the joiner's daemon connects to the host at once.
		b.waitConnected(a.id, 20*time.Second)
	})

	if t.Failed() {
		return
	}
	t.Run("shared folder syncs", func(t *testing.T) {
		dirA, dirB := filepath.Join(folders, "docs-a"), filepath.Join(folders, "docs-b")
		for _, dir := range []string{dirA, dirB} {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		want := []byte("paired, then synced\n")
		if err := os.WriteFile(filepath.Join(dirA, "hello.txt"), want, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			d    *pairDev
			dir  string
			peer string
		}{{a, dirA, b.id}, {b, dirB, a.id}} {
			if _, errOut, code := c.d.syncd("folder", "add", "docs", c.dir, "--peer", c.peer); code != 0 {
				t.Fatalf("%s: folder add: exit %d: %s", c.d.name, code, errOut)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := os.ReadFile(filepath.Join(dirB, "hello.txt"))
			if err == nil && bytes.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("hello.txt did not reach beta within 30 s (read: %q, %v)", got, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	if t.Failed() {
		return
	}
	t.Run("two joiners, one wins", func(t *testing.T) {
		c, d := newPairDev(t, bin, "gamma"), newPairDev(t, bin, "delta")
		for _, x := range []*pairDev{c, d} {
			x.addr = pairFreeAddr(t)
			x.start(nil, "--listen", x.addr, "--discovery", "off")
		}
		h := a.pairHost()
		type outcome struct {
			code           int
			stdout, stderr string
		}
		res := make([]outcome, 2)
		var wg sync.WaitGroup
		for i, x := range []*pairDev{c, d} {
			wg.Go(func() {
				o, e, code := x.syncd("pair", h.code, "--addr", a.addr)
				res[i] = outcome{code, o, e}
			})
		}
		wg.Wait()
		if hcode, _, herr := h.wait(t); hcode != 0 {
			t.Errorf("host: exit %d, stderr %q", hcode, herr)
		}
		winner, loser := c, d
		if res[0].code != 0 {
			winner, loser = d, c
			res[0], res[1] = res[1], res[0]
		}
		if res[0].code != 0 || res[1].code != exitFailure {
			t.Fatalf("joiners' exit codes %d and %d, want one 0 and one %d (%+v)", res[0].code, res[1].code, exitFailure, res)
		}
		if !strings.Contains(res[1].stderr, "being tried by another device") && !strings.Contains(res[1].stderr, "already used") &&
			!strings.Contains(res[1].stderr, "is not waiting to pair") {
			t.Errorf("losing joiner's stderr = %q, want busy, used or not waiting", res[1].stderr)
		}
		checkPairLine(t, "losing joiner", res[1].stderr, "")
		t.Logf("%s lost: %s", loser.name, strings.TrimSpace(res[1].stderr))
		if diff := cmp.Diff([]peerJSON{{ID: a.id, Name: "alpha", Addrs: []string{a.addr}}}, winner.peers()); diff != "" {
			t.Errorf("winner's peers (-want +got):\n%s", diff)
		}
		if ps := loser.peers(); len(ps) != 0 {
			t.Errorf("loser pinned %v, want nothing", ps)
		}
		var ids []string
		for _, p := range a.peers() {
			ids = append(ids, p.ID)
		}
		if want := []string{b.id, winner.id}; !cmp.Equal(ids, want) {
			t.Errorf("host's peers = %v, want %v (beta and the winner %s)", ids, want, winner.name)
		}
	})
}

// --- pairing through mDNS, in network namespaces ---

// pairNeedRoot skips when namespaces cannot be made, or fails under
// CI=true, where root is provided.
func pairNeedRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root for network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2 (ip)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s", why)
	}
	t.Skip(why)
}

// pairLAN is a bridge with no uplink in its own namespace plus one
// namespace per device, each with one veth (named veth) on the bridge and
// an address from 198.18.0.0/15 (DESIGN.md, "Testing without leaving the
// machine"). Multicast from the daemons never reaches the root namespace.
type pairLAN struct {
	ns   []string // device namespaces
	ips  []string
	veth string
}

func pairIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newPairLAN(t *testing.T, n int) *pairLAN {
	t.Helper()
	pairNeedRoot(t)
	prefix := fmt.Sprintf("sdpr%d", os.Getpid()%100000) // interface names stay under 16 bytes
	sw := prefix + "s"
	l := &pairLAN{veth: "sd0"}
	t.Cleanup(func() {
		for _, ns := range l.ns {
			exec.Command("ip", "netns", "del", ns).Run()
		}
		exec.Command("ip", "netns", "del", sw).Run()
	})
	pairIP(t, "netns", "add", sw)
	pairIP(t, "-n", sw, "link", "add", "br0", "type", "bridge")
	pairIP(t, "-n", sw, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("%sn%d", prefix, i)
		port := fmt.Sprintf("%sp%d", prefix, i)
		ip := fmt.Sprintf("198.18.0.%d", i+1)
		l.ns = append(l.ns, ns)
		l.ips = append(l.ips, ip)
		pairIP(t, "netns", "add", ns)
		pairIP(t, "-n", ns, "link", "add", port, "type", "veth", "peer", "name", l.veth)
		pairIP(t, "-n", ns, "link", "set", port, "netns", sw)
		pairIP(t, "-n", sw, "link", "set", port, "master", "br0")
		pairIP(t, "-n", sw, "link", "set", port, "up")
		pairIP(t, "-n", ns, "addr", "add", ip+"/24", "dev", l.veth)
		pairIP(t, "-n", ns, "link", "set", "lo", "up")
		pairIP(t, "-n", ns, "link", "set", l.veth, "up")
		pairIP(t, "-n", ns, "route", "add", "224.0.0.0/4", "dev", l.veth)
	}
	return l
}

// TestPairMDNS pairs two daemons in network namespaces with no address
// given: the joiner finds the host by its pair=1 announcement.
func TestPairMDNS(t *testing.T) {
	t.Parallel() // mostly waiting on processes
	if testing.Short() {
		t.Skip("builds and runs the binary in network namespaces")
	}
	lan := newPairLAN(t, 2)
	bin := buildPairBinary(t)
	a, b := newPairDev(t, bin, "alpha"), newPairDev(t, bin, "beta")
	for i, d := range []*pairDev{a, b} {
		d.addr = net.JoinHostPort(lan.ips[i], "22027")
		d.start([]string{"ip", "netns", "exec", lan.ns[i]}, "--listen", d.addr, "--discovery", "mdns", "--iface", lan.veth)
	}

	h := a.pairHost()
	out, errOut, code := b.syncd("pair", h.code, "--timeout", "30s")
	if code != 0 {
		t.Fatalf("joiner: exit %d, stderr %q", code, errOut)
	}
	if want := fmt.Sprintf("paired with alpha (%s)\n", a.id); out != want {
		t.Errorf("joiner stdout = %q, want %q", out, want)
	}
	hcode, hout, herr := h.wait(t)
	if hcode != 0 {
		t.Fatalf("host: exit %d, stderr %q", hcode, herr)
	}
	if want := fmt.Sprintf("paired with beta (%s)\n", b.id); hout != want {
		t.Errorf("host stdout after the code = %q, want %q", hout, want)
	}
	if diff := cmp.Diff([]peerJSON{{ID: b.id, Name: "beta", Addrs: []string{}}}, a.peers()); diff != "" {
		t.Errorf("host's peers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]peerJSON{{ID: a.id, Name: "alpha", Addrs: []string{a.addr}}}, b.peers()); diff != "" {
		t.Errorf("joiner's peers (-want +got):\n%s", diff)
	}
	// Both connect without a restart: the joiner through the pinned
	// address, the host through what mDNS told it.
	b.waitConnected(a.id, 20*time.Second)
	a.waitConnected(b.id, 20*time.Second)

	// With the host no longer pairing, a joiner finds nobody.
	_, errOut, code = b.syncd("pair", h.code, "--timeout", "3s")
	if code != exitFailure {
		t.Errorf("joiner with no host waiting: exit %d, want %d", code, exitFailure)
	}
	checkPairLine(t, "joiner with no host waiting", errOut, "no device waiting to pair was found")
}
