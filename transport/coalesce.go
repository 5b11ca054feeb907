package transport

import (
	"crypto/tls"
	"net"
	"sync"
)

// A tls.Conn writes every record (at most 16 KiB of plaintext) with its own
// write to the connection below. On loopback and fast LANs that per-write
// cost dominates a bulk transfer: sending 2 GiB over loopback TCP in 16 KiB
// writes costs about 2 CPU-seconds (both ends), in 256 KiB writes about 1.
// So a served HTTP/1.1 connection, which carries block bodies, gathers the
// records of one large Write and sends them in writes of up to
// coalesceSize; everything else (handshake, alerts, small writes) goes out
// as before, at once.
const (
	coalesceSize = 256 << 10
	// coalesceMin is the smallest Write worth gathering: below it a
	// tls.Conn writes one or two records anyway.
	coalesceMin = 32 << 10
)

var coalescePool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceSize); return &b }}

// coalesceConn is the raw connection under a tls.Conn. Between begin and
// end it gathers writes; otherwise it passes them through.
type coalesceConn struct {
	net.Conn
	// hsSlot: the server's handshake holds one of its global slots (set
	// and read by the handshake's goroutine only).
	hsSlot   bool
	mu       sync.Mutex
	batching bool
	buf      *[]byte // from coalescePool while batching
}

func (c *coalesceConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.batching {
		return c.Conn.Write(p)
	}
	if len(*c.buf)+len(p) > coalesceSize {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > coalesceSize {
			return c.Conn.Write(p)
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

func (c *coalesceConn) flushLocked() error {
	b := *c.buf
	*c.buf = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := c.Conn.Write(b)
	return err
}

func (c *coalesceConn) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = true
	c.buf = coalescePool.Get().(*[]byte)
}

// end sends what was gathered and stops gathering.
func (c *coalesceConn) end() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.flushLocked()
	c.batching = false
	coalescePool.Put(c.buf)
	c.buf = nil
	return err
}

// coalescedTLS is a served TLS connection whose large writes go out in few
// large TCP writes. It is what http.Server sees instead of the *tls.Conn;
// ConnectionState (through the embedded *tls.Conn) still names the peer.
type coalescedTLS struct {
	*tls.Conn
	raw *coalesceConn
}

func (c *coalescedTLS) Write(p []byte) (int, error) {
	if len(p) < coalesceMin {
		return c.Conn.Write(p)
	}
	c.raw.begin()
	n, err := c.Conn.Write(p)
	if ferr := c.raw.end(); err == nil && ferr != nil {
		// The records are gone with the connection: the peer sees a
		// broken stream, never a short one.
		err = ferr
	}
	return n, err
}

// readBufConn is the raw connection under a client's HTTP/1.1 tls.Conn. A
// tls.Conn reads at most the rest of a record at a time; readBufConn turns
// those small reads into reads of up to coalesceSize, into a pooled buffer
// that it holds only while it has bytes the tls.Conn has not taken yet.
type readBufConn struct {
	net.Conn
	buf  *[]byte // from coalescePool, or nil
	r, w int     // unread bytes are (*buf)[r:w]
}

func (c *readBufConn) Read(p []byte) (int, error) {
	if c.buf == nil {
		if len(p) >= coalesceSize/4 {
			return c.Conn.Read(p)
		}
		c.buf = coalescePool.Get().(*[]byte)
		n, err := c.Conn.Read((*c.buf)[:coalesceSize])
		c.r, c.w = 0, n
		if n == 0 {
			c.release()
			return 0, err
		}
		// A read error after data comes back on the next call.
	}
	n := copy(p, (*c.buf)[c.r:c.w])
	c.r += n
	if c.r == c.w {
		c.release()
	}
	return n, nil
}

func (c *readBufConn) release() {
	coalescePool.Put(c.buf)
	c.buf = nil
}
