package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-project/syncd/discovery"
	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// tlsDev is a device with a real identity, served over the transport's
// mutual TLS on 127.0.0.1, for benchmarks of the real wire path.
type tlsDev struct {
	root  string
	id    *transport.Identity
	store *index.Store
	eng   *Engine
	addr  string
	stop  func()
}

type staticBook map[deviceid.ID]string

func (b staticBook) Lookup(id deviceid.ID) []discovery.Address {
	return []discovery.Address{{Addr: b[id], Source: discovery.Source("static")}}
}

func newTLSPair(b *testing.B, http1 bool) (*tlsDev, *tlsDev) {
	b.Helper()
	devs := make([]*tlsDev, 2)
	lns := make([]net.Listener, 2)
	for i := range devs {
		dir := b.TempDir()
		id, err := transport.CreateIdentity(filepath.Join(dir, "identity"), fmt.Sprintf("dev%d", i), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		st, err := index.Open(filepath.Join(dir, "index"), index.Options{})
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns[i] = ln
		root := filepath.Join(dir, "folder")
		os.Mkdir(root, 0o755)
		devs[i] = &tlsDev{root: root, id: id, store: st, addr: ln.Addr().String()}
	}
	book := staticBook{devs[0].id.ID: devs[0].addr, devs[1].id.ID: devs[1].addr}
	for i, d := range devs {
		other := devs[1-i]
		topts := transport.Options{Identity: d.id, Pins: transport.NewPins(other.id.ID)}
		if http1 {
			topts.HTTP = transport.HTTP1
		}
		d.eng = New(Options{Self: d.id.ID, Name: d.id.Name, Store: d.store, Book: book,
			Identify: transport.RequestPeer,
			Client:   func(dev deviceid.ID, addr string) *http.Client { return transport.NewClient(topts, dev, addr) },
			Watch:    false})
		d.eng.Configure([]PeerConfig{{ID: other.id.ID}}, []FolderConfig{{ID: "f", Root: d.root, Peers: []deviceid.ID{other.id.ID}}})
		srv := transport.NewServer(topts, d.eng.Handler())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		go func() { d.eng.Run(ctx); done <- struct{}{} }()
		go func() { srv.Run(ctx, lns[i]); done <- struct{}{} }()
		d.stop = func() { cancel(); <-done; <-done; d.store.Close() }
		b.Cleanup(d.stop)
	}
	return devs[0], devs[1]
}

// BenchmarkPullOverTLS measures one big file from placement in A's folder
// (scan included) to its verified copy on B, over the real transport.
func BenchmarkPullOverTLS(b *testing.B) {
	for _, size := range []int{64 << 20, 256 << 20} {
		for _, proto := range []string{"h2", "http1"} {
			b.Run(fmt.Sprintf("%dMiB/%s", size>>20, proto), func(b *testing.B) {
				a, r := newTLSPair(b, proto == "http1")
				data := randBytes(7, size)
				want := sha256.Sum256(data)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					name := fmt.Sprintf("big%d.bin", i)
					t0 := time.Now()
					if err := os.WriteFile(filepath.Join(a.root, name), data, 0o644); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					seq0, _ := a.store.LocalSeq("f")
					a.eng.Rescan("f")
					for {
						if s, _ := a.store.LocalSeq("f"); s > seq0 {
							break
						}
						time.Sleep(time.Millisecond)
					}
					t2 := time.Now()
					waitFile(b, filepath.Join(r.root, name), want)
					if os.Getenv("SYNCD_BENCH_TRACE") != "" {
						b.Logf("write %v scan %v pull %v", t1.Sub(t0), t2.Sub(t1), time.Since(t2))
					}
				}
			})
		}
	}
}

func waitFile(b *testing.B, p string, want [32]byte) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		// The final name appears only complete (rename), so hash once it is there.
		if f, err := os.Open(p); err == nil {
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			var got [32]byte
			copy(got[:], h.Sum(nil))
			if got != want {
				b.Fatalf("%s arrived with the wrong content", p)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("%s did not arrive", p)
}

// BenchmarkBatchOverTLS measures answers to block batches of 64 small
// blocks (32 KiB) over the real transport (HTTP/1.1, as block clients
// use), and reports the CPU of both ends per GiB.
func BenchmarkBatchOverTLS(b *testing.B) {
	const files, size = 256, 32 << 10
	a, r := newTLSPair(b, true)
	var hashes []byte
	for i := range files {
		data := randBytes(uint64(1000+i), size)
		if err := os.WriteFile(filepath.Join(a.root, fmt.Sprintf("f%03d.bin", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
		h := hashOf(data)
		hashes = append(hashes, h[:]...)
	}
	a.eng.Rescan("f")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if s, _ := a.store.LocalSeq("f"); s >= files {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("alpha did not index its files")
		}
	}
	cl := transport.NewClient(transport.Options{Identity: r.id, Pins: transport.NewPins(a.id.ID), HTTP: transport.HTTP1}, a.id.ID, a.addr)
	defer cl.CloseIdleConnections()
	batch := func(body []byte) {
		resp, err := cl.Post("https://"+a.addr+"/v1/folders/f/blocks", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n < int64(len(body)/32*size) {
			b.Fatalf("batch: %s, %d bytes, %v", resp.Status, n, err)
		}
	}
	batch(hashes[:32]) // connect
	b.SetBytes(files * size)
	b.ResetTimer()
	cpu := cpuSeconds()
	for range b.N {
		for off := 0; off < len(hashes); off += maxBlockBatch * 32 {
			batch(hashes[off : off+maxBlockBatch*32])
		}
	}
	b.ReportMetric((cpuSeconds()-cpu)/(float64(b.N)*files*size/(1<<30)), "cpu-s/GiB")
}

// cpuSeconds is the process's user+system CPU time so far (both ends of a
// loopback benchmark).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkTreeOverTLS measures a tree of small files (1-64 KiB, 100 to a
// directory) from a rescan on A to the last file on B, over the real
// transport, and reports the CPU of both ends per file.
func BenchmarkTreeOverTLS(b *testing.B) {
	const files = 2000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a, r := newTLSPair(b, false)
		for k := range files {
			dir := filepath.Join(a.root, fmt.Sprintf("d%02d", k/100))
			os.MkdirAll(dir, 0o755)
			data := randBytes(uint64(k), 1<<10+int(uint64(k)*7919%(63<<10)))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", k)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		last := filepath.Join(r.root, fmt.Sprintf("d%02d", (files-1)/100), fmt.Sprintf("f%04d", files-1))
		b.StartTimer()
		cpu := cpuSeconds()
		a.eng.Rescan("f")
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Millisecond) {
			// The last file in path order comes last, or nearly: count only then.
			if _, err := os.Lstat(last); err == nil && countFiles(r.root) == files {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s did not arrive", last)
			}
		}
		b.ReportMetric((cpuSeconds()-cpu)/files*1e3, "cpu-ms/file")
	}
}

// countFiles counts the regular files below root outside .syncd.
func countFiles(root string) int {
	n := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == ".syncd" {
			return filepath.SkipDir
		}
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), index.TempPrefix) {
			n++
		}
		return nil
	})
	return n
}
