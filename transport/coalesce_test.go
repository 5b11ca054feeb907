package transport

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// countingListener counts the writes on the connections it accepts, and
// how many of them were larger than one TLS record.
type countingListener struct {
	net.Listener
	writes, large atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1)
	if len(p) > 17<<10 {
		c.l.large.Add(1)
	}
	return c.Conn.Write(p)
}

// TestCoalescedWrites checks that a large HTTP/1.1 response body leaves the
// server in few large writes, arrives intact, and that small responses
// (which are not gathered) and HTTP/2 still work on the same server.
func TestCoalescedWrites(t *testing.T) {
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	body := make([]byte, 4<<20)
	for i := range body {
		body[i] = byte(i * 7 / 3)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := RequestPeer(r); !ok {
			http.Error(w, "no peer", http.StatusForbidden)
			return
		}
		if r.URL.Path == "/small" {
			w.Write([]byte("ok"))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s := NewServer(Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(testNow)}, h)
	done := make(chan error, 1)
	go func() { done <- s.Serve(cl) }()
	defer func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve() = %v", err)
		}
	}()
	get := func(c *http.Client, path string) []byte {
		t.Helper()
		resp, err := c.Get("https://" + S.ID.Short() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s, %v", path, resp.Status, err)
		}
		return b
	}
	for _, v := range []HTTPVersion{HTTP1, HTTP2} {
		c := NewClient(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow), HTTP: v}, S.ID, ln.Addr().String())
		for range 3 {
			if got := get(c, "/small"); string(got) != "ok" {
				t.Fatalf("small answer %q", got)
			}
		}
		w0 := cl.writes.Load()
		if got := get(c, "/big"); !bytes.Equal(got, body) {
			t.Fatalf("HTTP version %d: the 4 MiB body arrived changed (%d bytes)", v, len(got))
		}
		writes := cl.writes.Load() - w0
		t.Logf("HTTP version %d: 4 MiB in %d writes", v, writes)
		// 4 MiB is 256 TLS records; gathered into 256 KiB writes it is 16
		// and a few more for the header and the last partial write.
		if v == HTTP1 && writes > 32 {
			t.Errorf("HTTP/1.1: 4 MiB took %d writes, want at most 32", writes)
		}
		c.CloseIdleConnections()
	}
	if cl.large.Load() == 0 {
		t.Error("no write was larger than one TLS record")
	}
}

// chunkedConn returns at most max bytes per Read of the data behind it.
type chunkedConn struct {
	net.Conn
	r     io.Reader
	max   int
	reads int
}

func (c *chunkedConn) Read(p []byte) (int, error) {
	c.reads++
	if len(p) > c.max {
		p = p[:c.max]
	}
	return c.r.Read(p)
}

func TestReadBufConn(t *testing.T) {
	data := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	under := &chunkedConn{r: bytes.NewReader(data), max: 200 << 10}
	c := &readBufConn{Conn: under}
	var got []byte
	small := 0
	for {
		// Reads the way a tls.Conn makes them: mostly up to a record,
		// sometimes larger than the buffer's threshold.
		n := 1 + rng.IntN(17<<10)
		if rng.IntN(8) == 0 {
			n = 100 << 10
		} else {
			small++
		}
		p := make([]byte, n)
		k, err := c.Read(p)
		got = append(got, p[:k]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
	if c.buf != nil {
		t.Error("the buffer is still held after everything was read")
	}
	if under.reads*4 > small {
		t.Errorf("%d reads below for %d small reads above: not gathered", under.reads, small)
	}
}

// TestCoalesceConnConcurrent checks that writes from other goroutines (a
// tls.Conn's alerts) during a gathered write are neither lost nor reordered
// within themselves.
func TestCoalesceConnConcurrent(t *testing.T) {
	a, b := net.Pipe()
	c := &coalesceConn{Conn: a}
	var got bytes.Buffer
	readDone := make(chan struct{})
	go func() { io.Copy(&got, b); close(readDone) }()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.begin()
		for range 100 {
			c.Write(bytes.Repeat([]byte{'x'}, 10<<10))
		}
		if err := c.end(); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			c.Write([]byte{'y'})
		}
	}()
	wg.Wait()
	a.Close()
	<-readDone
	if x, y := bytes.Count(got.Bytes(), []byte{'x'}), bytes.Count(got.Bytes(), []byte{'y'}); x != 100*10<<10 || y != 100 {
		t.Errorf("got %d x and %d y, want %d and 100", x, y, 100*10<<10)
	}
}
