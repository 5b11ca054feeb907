package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd-project/syncd/discovery"
	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// testNet is an in-process network of devices over loopback HTTP, with the
// caller's identity in a header instead of a certificate, and links that a
// test can cut.
type testNet struct {
	t    *testing.T
	mu   sync.Mutex // guards cut, devs, subs, quiet
	cut  map[[2]deviceid.ID]bool
	devs map[deviceid.ID]*testDev
	// subs are the engines' subscriptions (notifier): a restored link
	// tells both ends that the other's address changed, as the daemon's
	// book does when mDNS sees a device again; quiet turns that off.
	subs  map[chan deviceid.ID]bool
	quiet bool
	// source is what Lookup says the addresses come from (default
	// static); verified gathers what the engines report as verified
	// (seer), as "device addr".
	source   discovery.Source
	verified []string
}

// Seen implements seer: it records verified addresses.
func (n *testNet) Seen(id deviceid.ID, addr string, src discovery.Source) {
	if src != discovery.SourceVerified {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if e := id.Short() + " " + addr; !slices.Contains(n.verified, e) {
		n.verified = append(n.verified, e)
	}
}

// Subscribe implements notifier.
func (n *testNet) Subscribe() (<-chan deviceid.ID, func()) {
	ch := make(chan deviceid.ID, 16)
	n.mu.Lock()
	n.subs[ch] = true
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.subs, ch)
		n.mu.Unlock()
	}
}

type testDev struct {
	late   lateHooks // holdPulls's devices only
	net    *testNet
	name   string
	id     deviceid.ID
	root   string
	home   string
	store  *index.Store
	eng    *Engine
	srv    *httptest.Server
	cancel context.CancelFunc
	done   chan struct{}
	logs   *bytes.Buffer
	logMu  *sync.Mutex
	peers  []*testDev
	// handler is the running engine's handler, nil while stopped.
	handler atomic.Pointer[http.Handler]
}

const testHeader = "X-Test-Device"

func newTestNet(t *testing.T) *testNet {
	return &testNet{t: t, cut: map[[2]deviceid.ID]bool{}, devs: map[deviceid.ID]*testDev{}, subs: map[chan deviceid.ID]bool{}}
}

func (n *testNet) linked(a, b deviceid.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.cut[[2]deviceid.ID{a, b}] && !n.cut[[2]deviceid.ID{b, a}]
}

// announceLocked tells every engine that the devices' addresses changed,
// as the daemon's book does when mDNS sees a device (unless quiet); n.mu
// is held.
func (n *testNet) announceLocked(ids ...deviceid.ID) {
	if n.quiet {
		return
	}
	for ch := range n.subs {
		for _, id := range ids {
			select {
			case ch <- id:
			default:
			}
		}
	}
}

// setLink cuts or restores the link between two devices, dropping the
// open connections when cutting.
func (n *testNet) setLink(a, b *testDev, up bool) {
	n.mu.Lock()
	n.cut[[2]deviceid.ID{a.id, b.id}] = !up
	if up {
		n.announceLocked(a.id, b.id)
	}
	n.mu.Unlock()
	if !up {
		a.srv.CloseClientConnections()
		b.srv.CloseClientConnections()
	}
}

func (n *testNet) Lookup(id deviceid.ID) []discovery.Address {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, ok := n.devs[id]
	if !ok || d.srv == nil {
		return nil
	}
	src := n.source
	if src == "" {
		src = discovery.SourceStatic
	}
	return []discovery.Address{{Addr: d.srv.Listener.Addr().String(), Source: src}}
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// addDevice creates a device with its own folder "f" and store.
func (n *testNet) addDevice(name string) *testDev {
	t := n.t
	home := t.TempDir()
	d := &testDev{net: n, name: name, id: deviceid.FromPublicKeyInfo([]byte(name)), home: home,
		root: filepath.Join(home, "folder"), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	if err := os.Mkdir(d.root, 0o755); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.devs[d.id] = d
	n.mu.Unlock()
	t.Cleanup(func() {
		// The engine first: a server closed under it waits for its
		// long polls.
		d.stop()
		if d.srv != nil {
			d.srv.Close()
		}
		if t.Failed() {
			d.logMu.Lock()
			t.Logf("log of %s:\n%s", d.name, d.logs.String())
			d.logMu.Unlock()
		}
	})
	return d
}

// start opens the store and runs the engine with folder "f" shared with
// peers.
func (d *testDev) start(peers ...*testDev) {
	if err := d.startWith(nil, peers...); err != nil {
		d.net.t.Fatal(err)
	}
}

// stop ends the engine and closes the store (a restart keeps the server's
// address).
func (d *testDev) stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	<-d.done
	d.cancel = nil
	d.handler.Store(nil)
	d.srv.CloseClientConnections()
	d.store.Close()
}

type headerTransport struct {
	id, to deviceid.ID
	net    *testNet
	rt     http.RoundTripper
}

func (h *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !h.net.linked(h.id, h.to) {
		return nil, fmt.Errorf("link %s-%s is cut", h.id.Short(), h.to.Short())
	}
	r = r.Clone(r.Context())
	r.Header.Set(testHeader, h.id.String())
	return h.rt.RoundTrip(r)
}

func (h *headerTransport) CloseIdleConnections() {
	if c, ok := h.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (d *testDev) rescan() { d.eng.Rescan("f") }

// syncedFile writes rel on a, has a scan it, and waits until b (and a)
// converge; it returns the tree.
func syncedFile(t *testing.T, a, b *testDev, rel string, data []byte) map[string]string {
	t.Helper()
	a.write(rel, data)
	a.rescan()
	return waitConverged(t, converge, a, b)
}

func (d *testDev) write(rel string, data []byte) {
	d.net.t.Helper()
	p := filepath.Join(d.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		d.net.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		d.net.t.Fatal(err)
	}
}

// tree describes a folder: path -> kind and content digest, excluding
// .syncd and temp files.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if rel == ".syncd" {
			return filepath.SkipDir
		}
		if strings.HasPrefix(de.Name(), index.TempPrefix) {
			out[rel] = "TEMP"
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			// Gone since the directory was read (a temp file renamed):
			// the next poll sees the tree as it is then.
			out[rel] = "VANISHED"
			return nil
		}
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link:" + target
		case de.IsDir():
			out[rel] = fmt.Sprintf("dir:%o", fi.Mode().Perm())
		default:
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file:%o:%d:%s", fi.Mode().Perm(), fi.ModTime().UnixNano(), hex.EncodeToString(sum[:8]))
		}
		return nil
	})
	return out
}

// waitConverged waits until every device's tree is identical and returns it.
func waitConverged(t *testing.T, timeout time.Duration, devs ...*testDev) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		first := tree(t, devs[0].root)
		same := true
		var diff string
		for _, d := range devs[1:] {
			if other := tree(t, d.root); !equalTrees(first, other) {
				same = false
				diff = treeDiff(devs[0].name, first, d.name, other)
				break
			}
		}
		if same {
			return first
		}
		if time.Now().After(deadline) {
			t.Fatalf("devices did not converge within %v:\n%s", timeout, diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func equalTrees(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func treeDiff(an string, a map[string]string, bn string, b map[string]string) string {
	var sb strings.Builder
	for k, v := range a {
		if b[k] != v {
			fmt.Fprintf(&sb, "  %s: %s=%q %s=%q\n", k, an, v, bn, b[k])
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			fmt.Fprintf(&sb, "  %s: %s=<none> %s=%q\n", k, an, bn, v)
		}
	}
	return sb.String()
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func deviceFromName(name string) deviceid.ID { return deviceid.FromPublicKeyInfo([]byte(name)) }

// startWith is start with a hook that adjusts the engine's options (Watch,
// fault-injection hooks) before the engine is created. It returns an error
// instead of failing the test, for use inside rapid properties.
func (d *testDev) startWith(mod func(*Options), peers ...*testDev) error {
	if peers == nil {
		peers = d.peers
	}
	d.peers = peers
	st, err := index.Open(filepath.Join(d.home, "index"), index.Options{})
	if err != nil {
		return err
	}
	d.store = st
	logger := slog.New(slog.NewTextHandler(syncWriter{d.logMu, d.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("dev", d.name)
	o := Options{
		Self: d.id, Name: d.name, Store: st, Book: d.net, Scheme: "http", Logger: logger,
		Identify: func(r *http.Request) (deviceid.ID, bool) {
			id, err := deviceid.Parse(r.Header.Get(testHeader))
			return id, err == nil && d.net.linked(id, d.id)
		},
		Client: func(dev deviceid.ID, addr string) *http.Client {
			return &http.Client{Transport: &headerTransport{id: d.id, to: dev, net: d.net, rt: &http.Transport{MaxIdleConnsPerHost: 16}}}
		},
		PollWait: 2 * time.Second, Ping: 500 * time.Millisecond,
	}
	if mod != nil {
		mod(&o)
	}
	d.eng = New(o)
	var pc []PeerConfig
	var ids []deviceid.ID
	for _, p := range peers {
		pc = append(pc, PeerConfig{ID: p.id, Name: p.name})
		ids = append(ids, p.id)
	}
	d.eng.Configure(pc, []FolderConfig{{ID: "f", Root: d.root, Peers: ids}})
	h := d.eng.Handler()
	d.handler.Store(&h)
	if d.srv == nil {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h := d.handler.Load(); h != nil {
				(*h).ServeHTTP(w, r)
				return
			}
			http.Error(w, "stopped", http.StatusServiceUnavailable)
		}))
		d.net.mu.Lock() // Lookup reads srv
		d.srv = srv
		d.net.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		d.eng.Run(ctx)
	}()
	// The others dial it now rather than at the end of their backoff, as
	// when discovery sees a device come up.
	d.net.mu.Lock()
	d.net.announceLocked(d.id)
	d.net.mu.Unlock()
	return nil
}

// converged reports whether every device's tree is identical, with the
// tree and otherwise a description of the first difference.
func converged(t *testing.T, devs ...*testDev) (map[string]string, string, bool) {
	first := tree(t, devs[0].root)
	for _, d := range devs[1:] {
		if other := tree(t, d.root); !equalTrees(first, other) {
			return nil, treeDiff(devs[0].name, first, d.name, other), false
		}
	}
	return first, "", true
}

// logText returns what the device logged so far.
func (d *testDev) logText() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.logs.String()
}

// walkFiles calls fn for every regular file under dir.
func walkFiles(dir string, fn func(string, os.FileInfo)) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			fn(p, fi)
		}
		return nil
	})
}
