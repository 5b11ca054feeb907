package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

const streamSize = 256 << 20

// benchPair returns two devices pinning each other.
func benchPair(b *testing.B) (srvOpts, cliOpts Options, srvID deviceid.ID) {
	S, C := newTestIdentity(b, "S"), newTestIdentity(b, "C")
	now := fixedNow(testNow)
	return Options{Identity: S, Pins: NewPins(C.ID), Now: now}, Options{Identity: C, Pins: NewPins(S.ID), Now: now}, S.ID
}

// sink accepts connections on ln, wraps them with wrap, and per request
// reads size bytes then answers one byte.
func sink(b *testing.B, ln net.Listener, wrap func(net.Conn) net.Conn, size int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := wrap(raw)
				defer c.Close()
				for {
					if _, err := io.CopyN(io.Discard, c, size); err != nil {
						return
					}
					if _, err := c.Write([]byte{1}); err != nil {
						return
					}
				}
			}()
		}
	}()
	return &wg
}

// BenchmarkThroughput is one stream on loopback, client to server. The
// TLS13-AES256 figure needs a client that can prefer AES-256 (a Go client
// cannot), so it and an AES-128 twin use openssl s_client as the sender;
// compare those two with each other and the Go ones with TCP.
func BenchmarkThroughput(b *testing.B) {
	srvOpts, cliOpts, sid := benchPair(b)
	buf := make([]byte, 1<<20)
	goCases := []struct {
		name string
		cli  func(net.Conn) net.Conn
		srv  func(net.Conn) net.Conn
	}{
		{"TCP", func(c net.Conn) net.Conn { return c }, func(c net.Conn) net.Conn { return c }},
		{"TLS13-AES128", func(c net.Conn) net.Conn { return tls.Client(c, ClientTLSConfig(cliOpts, sid)) },
			func(c net.Conn) net.Conn { return tls.Server(c, ServerTLSConfig(srvOpts)) }},
		{"TLS12-AES256", func(c net.Conn) net.Conn {
			conf := ClientTLSConfig(cliOpts, sid)
			conf.MaxVersion, conf.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
			return tls.Client(c, conf)
		}, func(c net.Conn) net.Conn { return tls.Server(c, ServerTLSConfig(srvOpts)) }},
	}
	for _, tc := range goCases {
		b.Run(tc.name, func(b *testing.B) {
			ln, addr := listenLocal(b)
			wg := sink(b, ln, tc.srv, streamSize)
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c := tc.cli(raw)
			ack := make([]byte, 1)
			b.SetBytes(streamSize)
			b.ResetTimer()
			for range b.N {
				for n := 0; n < streamSize; n += len(buf) {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := io.ReadFull(c, ack); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.Close()
			ln.Close()
			wg.Wait()
		})
	}
	for _, suite := range []struct{ name, openssl string }{
		{"openssl-TLS13-AES128", "TLS_AES_128_GCM_SHA256"},
		{"openssl-TLS13-AES256", "TLS_AES_256_GCM_SHA384"},
	} {
		b.Run(suite.name, func(b *testing.B) {
			openssl, err := exec.LookPath("openssl")
			if err != nil {
				b.Skip("openssl not installed")
			}
			ln, addr := listenLocal(b)
			// A sink that counts bytes and reports when size arrived.
			got := make(chan struct{}, 1)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				raw, err := ln.Accept()
				if err != nil {
					return
				}
				c := tls.Server(raw, ServerTLSConfig(srvOpts))
				defer c.Close()
				for {
					if _, err := io.CopyN(io.Discard, c, streamSize); err != nil {
						return
					}
					got <- struct{}{}
				}
			}()
			leaf, _, ca, key := writePEMs(b, cliOpts.Identity)
			cmd := exec.Command(openssl, "s_client", "-connect", addr, "-quiet", "-tls1_3",
				"-ciphersuites", suite.openssl, "-cert", leaf, "-cert_chain", ca, "-key", key)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() {
				stdin.Close()
				cmd.Process.Kill()
				cmd.Wait()
				ln.Close()
				wg.Wait()
			}()
			b.SetBytes(streamSize)
			b.ResetTimer()
			for range b.N {
				for n := 0; n < streamSize; n += len(buf) {
					if _, err := stdin.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-got:
				case <-time.After(time.Minute):
					b.Fatal("openssl stream stalled")
				}
			}
			b.StopTimer()
		})
	}
}

// BenchmarkHandshake measures full mutual-TLS handshakes (no resumption),
// one at a time, each confirmed by a byte from the server after its checks.
func BenchmarkHandshake(b *testing.B) {
	srvOpts, cliOpts, sid := benchPair(b)
	for _, tc := range []struct {
		name   string
		curves []tls.CurveID
		max    uint16
	}{
		{"TLS13-X25519MLKEM768", nil, tls.VersionTLS13},
		{"TLS13-X25519", []tls.CurveID{tls.X25519}, tls.VersionTLS13},
		{"TLS12-X25519", []tls.CurveID{tls.X25519}, tls.VersionTLS12},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ln, addr := listenLocal(b)
			srvConf := ServerTLSConfig(srvOpts)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					raw, err := ln.Accept()
					if err != nil {
						return
					}
					c := tls.Server(raw, srvConf)
					if c.Handshake() == nil {
						c.Write([]byte{1})
					}
					c.Close()
				}
			}()
			conf := ClientTLSConfig(cliOpts, sid)
			conf.MaxVersion = tc.max
			if tc.curves != nil {
				conf.CurvePreferences = tc.curves
			}
			one := make([]byte, 1)
			b.ResetTimer()
			for range b.N {
				c, err := tls.Dial("tcp", addr, conf)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			ln.Close()
			wg.Wait()
		})
	}
}

// BenchmarkHTTPBulkGet compares HTTP/1.1 and HTTP/2 over Server and Client:
// one 64 MiB GET, and 64 block-sized (1 MiB) GETs, 8 at a time.
func BenchmarkHTTPBulkGet(b *testing.B) {
	srvOpts, cliOpts, sid := benchPair(b)
	blob := make([]byte, 1<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("mib"))
		if err != nil || n < 1 || n > 1024 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n<<20))
		for range n {
			if _, err := w.Write(blob); err != nil {
				return
			}
		}
	})
	_, addr := startServer(b, srvOpts, h)
	get := func(cl *http.Client, mib int) error {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", fmt.Sprintf("https://peer/blob?mib=%d", mib), nil)
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != int64(mib)<<20 {
			err = fmt.Errorf("got %d bytes, want %d", n, mib<<20)
		}
		return err
	}
	for _, v := range []struct {
		name string
		http HTTPVersion
	}{{"HTTP1", HTTP1}, {"HTTP2", HTTP2}} {
		o := cliOpts
		o.HTTP = v.http
		b.Run(v.name+"-1x64MiB", func(b *testing.B) {
			cl := NewClient(o, sid, addr)
			defer cl.CloseIdleConnections()
			if err := get(cl, 1); err != nil { // connect outside the timer
				b.Fatal(err)
			}
			b.SetBytes(64 << 20)
			b.ResetTimer()
			cpu := cpuTime()
			for range b.N {
				if err := get(cl, 64); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
		b.Run(v.name+"-64x1MiB-par8", func(b *testing.B) {
			cl := NewClient(o, sid, addr)
			defer cl.CloseIdleConnections()
			b.SetBytes(64 << 20)
			b.ResetTimer()
			cpu := cpuTime()
			defer reportCPU(b, cpu)
			for range b.N {
				var wg sync.WaitGroup
				errs := make(chan error, 64)
				sem := make(chan struct{}, 8)
				for range 64 {
					wg.Add(1)
					sem <- struct{}{}
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						if err := get(cl, 1); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpuTime is the process's user+system CPU time so far: both ends of a
// loopback benchmark, steadier than wall time on a loaded machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU seconds per GiB moved since cpu, for
// benchmarks that move 64 MiB per iteration.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric((cpuTime()-cpu).Seconds()/(float64(b.N)/16), "cpu-s/GiB")
}
