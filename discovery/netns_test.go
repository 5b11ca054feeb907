package discovery

// Integration tests in network namespaces. Every multicast packet of these
// tests stays inside namespaces created here: each device gets a namespace
// with one veth, whose peer sits on a bridge in a separate "switch"
// namespace with no uplink. Addresses are from 198.18.0.0/15. The test binary
// re-executes itself inside a namespace (TestHelperProcess) to run a daemon.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

const helperEnv = "SYNCD_DISCOVERY_HELPER"

var lanSeq atomic.Int32

// needRoot skips (or fails under CI=true) when namespaces cannot be made.
func needRoot(t testing.TB) {
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

// lan is a bridge in its own namespace plus one namespace per device.
type lan struct {
	t      testing.TB
	prefix string
	sw     string   // switch namespace
	ns     []string // device namespaces
	ips    []string // 198.18.0.(i+1)
	veth   string   // name of the veth inside each device namespace
}

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newLAN(t testing.TB, n int) *lan {
	t.Helper()
	needRoot(t)
	l := &lan{
		t:      t,
		prefix: fmt.Sprintf("sd%d-%d", os.Getpid()%100000, lanSeq.Add(1)),
		veth:   "sd0",
	}
	l.sw = l.prefix + "s"
	t.Cleanup(func() {
		for _, ns := range l.ns {
			exec.Command("ip", "netns", "del", ns).Run()
		}
		exec.Command("ip", "netns", "del", l.sw).Run()
	})
	run(t, "ip", "netns", "add", l.sw)
	run(t, "ip", "-n", l.sw, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", l.sw, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("%sn%d", l.prefix, i)
		ip := fmt.Sprintf("198.18.0.%d", i+1)
		l.ns = append(l.ns, ns)
		l.ips = append(l.ips, ip)
		port := fmt.Sprintf("%sp%d", l.prefix, i)
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "link", "add", port, "type", "veth", "peer", "name", l.veth, "netns", ns)
		run(t, "ip", "link", "set", port, "netns", l.sw)
		run(t, "ip", "-n", l.sw, "link", "set", port, "master", "br0")
		run(t, "ip", "-n", l.sw, "link", "set", port, "up")
		run(t, "ip", "-n", ns, "addr", "add", ip+"/24", "dev", l.veth)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", ns, "link", "set", l.veth, "up")
		run(t, "ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", l.veth)
	}
	return l
}

// proc is a process running in a namespace; its stdout lines arrive on
// lines, its stderr is kept for the error-level check and for failures.
type proc struct {
	name  string
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	errb  bytes.Buffer // guarded by mu
	done  chan struct{}
	began time.Time // just before the process was started
	seen  []string  // lines read so far; owned by the test goroutine
	stdin io.WriteCloser
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.errb.Write(b)
}

func (l *lan) start(i int, name string, env []string, args ...string) *proc {
	t := l.t
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns[i]}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{name: name, cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	cmd.Stderr = lockedWriter{p}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	p.began = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", name, l.ns[i], err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { p.stop() })
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SYNCD_TEST_DUMP") != "" {
			t.Logf("stderr of %s:\n%s", name, tail(p.stderr(), 4000))
		}
	})
	return p
}

// stop kills the process by PID and waits for it.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
	}
	p.cmd.Wait()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// startDaemon runs MDNS in namespace i via TestHelperProcess.
func (l *lan) startDaemon(i int, id deviceid.ID, port int, extra ...string) *proc {
	l.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	env := append([]string{helperEnv + "=daemon", "HELPER_ID=" + id.String(), "HELPER_PORT=" + strconv.Itoa(port),
		"HELPER_NAME=dev " + strconv.Itoa(i), "HELPER_IFACE=" + l.veth}, extra...)
	return l.start(i, "daemon "+id.Short(), env, exe, "-test.run=^TestHelperProcess$")
}

// startZeroconf runs testdata/zc.py in namespace i.
func (l *lan) startZeroconf(i int, mode string) *proc {
	l.t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import zeroconf").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			l.t.Fatalf("CI=true: python3-zeroconf missing: %v", err)
		}
		l.t.Skipf("python3-zeroconf missing: %v", err)
	}
	script, err := filepath.Abs("testdata/zc.py")
	if err != nil {
		l.t.Fatal(err)
	}
	return l.start(i, "zeroconf "+mode, nil, py, "-u", script, mode, l.ips[i])
}

// waitLine returns the first stdout line of p (from the start, including
// lines an earlier wait read past) for which match is true.
func waitLine(t testing.TB, p *proc, d time.Duration, what string, match func(string) bool) string {
	t.Helper()
	for _, s := range p.seen {
		if match(s) {
			return s
		}
	}
	deadline := time.After(d)
	for {
		select {
		case s := <-p.lines:
			p.seen = append(p.seen, s)
			if match(s) {
				return s
			}
		case <-p.done:
			t.Fatalf("%s exited while waiting for %s", p.name, what)
		case <-deadline:
			t.Fatalf("%s: no %s within %v", p.name, what, d)
		}
	}
}

// found is one FOUND line of a helper daemon: FOUND ID UNIXNANO ADDR,...
type found struct {
	id    string
	at    time.Time
	addrs []string
}

func parseFound(s string) (found, bool) {
	f := strings.Fields(s)
	if len(f) != 4 || f[0] != "FOUND" {
		return found{}, false
	}
	ns, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return found{}, false
	}
	return found{id: f[1], at: time.Unix(0, ns), addrs: strings.Split(f[3], ",")}, true
}

func waitFound(t testing.TB, p *proc, id deviceid.ID, addr string, d time.Duration) found {
	t.Helper()
	var got found
	waitLine(t, p, d, "FOUND "+id.Short()+" at "+addr, func(s string) bool {
		f, ok := parseFound(s)
		if !ok || f.id != id.String() {
			return false
		}
		for _, a := range f.addrs {
			if a == addr {
				got = f
				return true
			}
		}
		return false
	})
	t.Logf("%s found %s at %s after %v", p.name, id.Short(), addr, got.at.Sub(p.began).Round(time.Millisecond))
	return got
}

// noErrors fails when a helper logged at error level.
func noErrors(t *testing.T, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		for _, line := range strings.Split(p.stderr(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) {
				t.Errorf("%s logged at error level: %s", p.name, line)
			}
		}
	}
}

// TestHelperProcess is not a test: it is the daemon that the namespace tests
// run inside a namespace (the test binary re-executes itself).
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		return
	}
	os.Exit(helperMain())
}

func helperMain() int {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ifaces := strings.Fields(os.Getenv("HELPER_IFACE"))
	if os.Getenv(helperEnv) == "browseonce" {
		fs, err := BrowseOnce(ctx, ifaces, 2*time.Second, logger)
		if err != nil {
			logger.Error("browse", "err", err)
			return 1
		}
		enc := json.NewEncoder(os.Stdout)
		for _, f := range fs {
			enc.Encode(map[string]any{"id": f.ID.String(), "name": f.Name, "addrs": f.Addrs, "txt": f.TXT})
		}
		fmt.Println("DONE")
		return 0
	}
	id, err := deviceid.Parse(os.Getenv("HELPER_ID"))
	if err != nil {
		logger.Error("helper id", "err", err)
		return 2
	}
	port, _ := strconv.Atoi(os.Getenv("HELPER_PORT"))
	book := NewBook(Options{Logger: logger})
	ch, unsub := book.Subscribe()
	defer unsub()
	go func() {
		for id := range ch {
			var as []string
			for _, a := range book.Lookup(id) {
				as = append(as, a.Addr)
			}
			if len(as) > 0 {
				fmt.Printf("FOUND %s %d %s\n", id, time.Now().UnixNano(), strings.Join(as, ","))
			}
		}
	}()
	var (
		mu  sync.Mutex
		txt = strings.Fields(os.Getenv("HELPER_TXT")) // guarded by mu
	)
	m := NewMDNS(book, MDNSOptions{
		Logger: logger, Self: id, Name: os.Getenv("HELPER_NAME"), Port: port, Ifaces: ifaces,
		TXT: func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(txt)
		},
	})
	go func() {
		// Each stdin line "txt K=V ..." replaces the extra TXT strings.
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] == "txt" {
				mu.Lock()
				txt = f[1:]
				mu.Unlock()
				m.Reannounce()
			}
		}
	}()
	fmt.Println("STARTED")
	if err := m.Run(ctx); err != nil {
		logger.Error("run", "err", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "QUERIES %d\n", m.queries.Load())
	return 0
}

func TestNetnsTwoAnnouncersFoundByBrowser(t *testing.T) {
	l := newLAN(t, 3)
	a, b, c := testID(101), testID(102), testID(103)
	pa := l.startDaemon(0, a, 22001)
	pb := l.startDaemon(1, b, 22002)
	pc := l.startDaemon(2, c, 22003)
	waitFound(t, pc, a, l.ips[0]+":22001", 20*time.Second)
	waitFound(t, pc, b, l.ips[1]+":22002", 20*time.Second)
	// And the other way round: every daemon finds every other one.
	waitFound(t, pa, c, l.ips[2]+":22003", 20*time.Second)
	waitFound(t, pb, a, l.ips[0]+":22001", 20*time.Second)
	noErrors(t, pa, pb, pc)
}

func TestNetnsZeroconfSeesOurAnnouncement(t *testing.T) {
	l := newLAN(t, 2)
	a := testID(201)
	zc := l.startZeroconf(1, "browse")
	pa := l.startDaemon(0, a, 22010)
	line := waitLine(t, zc, 30*time.Second, "FOUND with our id", func(s string) bool {
		return strings.HasPrefix(s, "FOUND ") && strings.HasSuffix(s, " "+a.String())
	})
	f := strings.Fields(line)
	if want := instanceName("dev 0", a) + "." + serviceFQDN; f[1] != want {
		t.Errorf("python-zeroconf instance = %q, want %q", f[1], want)
	}
	if f[2] != "22010" {
		t.Errorf("python-zeroconf port = %s, want 22010", f[2])
	}
	noErrors(t, pa)
}

// browseOnce runs BrowseOnce in namespace i and returns its results by ID.
func browseOnce(t *testing.T, l *lan, i int) map[string]map[string]any {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	po := l.start(i, "browseonce", []string{helperEnv + "=browseonce", "HELPER_IFACE=" + l.veth}, exe, "-test.run=^TestHelperProcess$")
	got := map[string]map[string]any{}
	waitLine(t, po, 20*time.Second, "DONE", func(s string) bool { return s == "DONE" })
	for _, s := range po.seen {
		if s == "DONE" {
			break
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			t.Fatalf("BrowseOnce output %q: %v", s, err)
		}
		got[r["id"].(string)] = r
	}
	po.stop()
	noErrors(t, po)
	return got
}

func TestNetnsReannounceChangesTXT(t *testing.T) {
	l := newLAN(t, 2)
	a := testID(501)
	pa := l.startDaemon(0, a, 22051)
	waitLine(t, pa, 10*time.Second, "STARTED", func(s string) bool { return s == "STARTED" })
	txtOf := func() map[string]any {
		for range 5 {
			if r := browseOnce(t, l, 1)[a.String()]; r != nil {
				return r["txt"].(map[string]any)
			}
		}
		t.Fatalf("BrowseOnce never found %s", a.Short())
		return nil
	}
	if txt := txtOf(); txt["pair"] != nil {
		t.Fatalf("TXT before pairing = %v, want no pair key", txt)
	}
	fmt.Fprintln(pa.stdin, "txt pair=1")
	deadline := time.Now().Add(15 * time.Second)
	for {
		txt := txtOf()
		if txt["pair"] == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TXT after Reannounce = %v, want pair=1", txt)
		}
	}
	noErrors(t, pa)
}

func TestNetnsForeignServicesDoNotBreakDiscovery(t *testing.T) {
	l := newLAN(t, 4)
	a, b := testID(301), testID(302)
	zc := l.startZeroconf(2, "publish")
	waitLine(t, zc, 20*time.Second, "PUBLISHED", func(s string) bool { return s == "PUBLISHED" })
	pa := l.startDaemon(0, a, 22021)
	pb := l.startDaemon(1, b, 22022, "HELPER_TXT=pair=1")
	waitFound(t, pa, b, l.ips[1]+":22022", 20*time.Second)
	waitFound(t, pb, a, l.ips[0]+":22021", 20*time.Second)

	// BrowseOnce sees both devices with their TXT, and nothing foreign.
	got := browseOnce(t, l, 3)
	if len(got) != 2 || got[a.String()] == nil || got[b.String()] == nil {
		t.Fatalf("BrowseOnce found %v, want exactly %s and %s", got, a.Short(), b.Short())
	}
	if txt := got[b.String()]["txt"].(map[string]any); txt["pair"] != "1" || txt["v"] != ProtocolVersion {
		t.Errorf("BrowseOnce TXT of %s = %v, want pair=1 and v=%s", b.Short(), txt, ProtocolVersion)
	}
	if name := got[a.String()]["name"]; name != "dev-0" {
		t.Errorf("BrowseOnce name of %s = %v, want dev-0", a.Short(), name)
	}
	// Let a few periodic browses (5 s apart) meet the foreign answers.
	time.Sleep(6 * time.Second)
	noErrors(t, pa, pb)
	// python-zeroconf's answers carry NSEC records that miekg/dns refuses:
	// hashicorp/mdns reports them, and they must land at debug level.
	if !strings.Contains(pa.stderr()+pb.stderr(), `"level":"DEBUG","msg":"discovery: hashicorp/mdns"`) {
		t.Errorf("no daemon logged hashicorp/mdns lines at debug level; want the foreign packets seen")
	}
}

// BenchmarkNetnsIdlePackets counts, with tshark inside the namespace, the
// mDNS packets that one daemon sends in 60 s while idle (two daemons on the
// link, after a 65 s warm-up that skips the fast first minute). It takes
// about two minutes per iteration:
//
//	go test -run '^$' -bench NetnsIdlePackets -benchtime=1x -v ./discovery/
//
// SYNCD_MEASURE_WARMUP=0s measures the first minute instead.
func BenchmarkNetnsIdlePackets(b *testing.B) {
	if _, err := exec.LookPath("tshark"); err != nil {
		b.Skip("needs tshark")
	}
	warm := 65 * time.Second
	if d, err := time.ParseDuration(os.Getenv("SYNCD_MEASURE_WARMUP")); err == nil {
		warm = d
	}
	secs := "60"
	for range b.N {
		n := idlePackets(b, warm, secs)
		b.ReportMetric(float64(n), "packets/min")
	}
}

func idlePackets(t testing.TB, warm time.Duration, secs string) int {
	l := newLAN(t, 2)
	out, err := exec.Command("ip", "-n", l.ns[0], "-o", "link", "show", l.veth).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	hw := ""
	for i, s := range f {
		if s == "link/ether" && i+1 < len(f) {
			hw = f[i+1]
		}
	}
	capture := func(name string) *proc {
		return l.start(0, name, nil, "tshark", "-l", "-n", "-i", l.veth, "-f", "udp port 5353 and ether src "+hw,
			"-a", "duration:"+secs, "-T", "fields", "-e", "frame.time_relative", "-e", "frame.len", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "dns.flags.response", "-e", "dns.qry.name")
	}
	var tp *proc
	if warm == 0 {
		tp = capture("tshark")
		time.Sleep(2 * time.Second) // tshark start-up
	}
	pa := l.startDaemon(0, testID(401), 22031)
	defer pa.stop()
	l.startDaemon(1, testID(402), 22032)
	waitFound(t, pa, testID(402), l.ips[1]+":22032", 20*time.Second)
	if warm > 0 {
		time.Sleep(warm)
		tp = capture("tshark")
	}
	n := 0
	for {
		select {
		case s := <-tp.lines:
			n++
			t.Logf("packet %s", s)
			continue
		case <-tp.done:
		}
		break
	}
	t.Logf("daemon A sent %d mDNS packets in %s s (warm-up %v)", n, secs, warm)
	return n
}

// BenchmarkNetnsDiscoveryLatency measures, in network namespaces, the time
// from starting a daemon (exec of the process) to it appearing in the book
// of a daemon already running on the LAN ("existing-sees-new") and to the
// running daemon appearing in its own book ("new-sees-existing"). Medians
// are reported (ns/op includes a pause of reactGap per newcomer); run it
// with -benchtime=10x:
//
//	go test -run '^$' -bench NetnsDiscoveryLatency -benchtime=10x ./discovery/
func BenchmarkNetnsDiscoveryLatency(b *testing.B) {
	l := newLAN(b, 2)
	old := testID(600)
	pb := l.startDaemon(1, old, 22041)
	waitLine(b, pb, 10*time.Second, "STARTED", func(s string) bool { return s == "STARTED" })
	time.Sleep(3 * time.Second) // past its startup browse
	var seen, sees []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := testID(700 + i)
		pa := l.startDaemon(0, id, 22040)
		f := waitFound(b, pb, id, l.ips[0]+":22040", 20*time.Second)
		seen = append(seen, f.at.Sub(pa.began))
		g := waitFound(b, pa, old, l.ips[1]+":22041", 20*time.Second)
		sees = append(sees, g.at.Sub(pa.began))
		pa.stop()
		time.Sleep(reactGap) // one newcomer at a time, as on a real LAN
	}
	b.StopTimer()
	med := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / float64(time.Millisecond)
	}
	b.Logf("existing-sees-new: %v", seen)
	b.Logf("new-sees-existing: %v", sees)
	b.ReportMetric(med(seen), "ms-existing-sees-new")
	b.ReportMetric(med(sees), "ms-new-sees-existing")
}
