package peer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncd-project/syncd/discovery"
	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// Hello is the answer of GET /v1/hello.
type Hello struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Protocol int      `json:"protocol"`
	Folders  []string `json:"folders"` // shared with the caller
}

// Errors of a session.
var (
	ErrBadBlock    = errors.New("block data does not match its hash")
	errStalled     = errors.New("peer stopped sending")
	errTooSlow     = errors.New("peer sends blocks too slowly; asking elsewhere")
	errReconnect   = errors.New("shared folders changed")
	errWrongDevice = errors.New("hello names another device")
)

// maxPerPoll bounds the records one changes response may carry; the server
// sends at most half of it.
const maxPerPoll = 100_000

// conn is the session with one pinned peer: it dials, polls changes for each
// shared folder and serves as a block source while connected.
type conn struct {
	e  *Engine
	id deviceid.ID

	mu       sync.Mutex // guards the fields below
	name     string
	client   *http.Client // nil while disconnected
	base     string       // "https://addr"
	addr     string
	up       bool
	since    time.Time // connected since, or last seen
	lastErr  string
	inflight int // block requests in flight
	// blocks is the client for block requests (Options.BlockClient, or
	// client), blocksIdle closes its connections once blocks have not been
	// asked for a while.
	blocks     *http.Client
	blocksIdle *time.Timer
	noBatch    bool          // the peer answered a batch request with 404: an older version
	wake       chan struct{} // a redial is worth trying now (wakeDial)
	loggedAt   map[string]bool
	// recheck asks the session to compare the folders shared both ways
	// now instead of at the next ping: our config changed, or the peer's
	// hello said that its folders for us are not the ones we saw.
	recheck chan struct{}
	seen    string // folderSum of the peer's folders for us, as of the session's hello
}

func newConn(e *Engine, p PeerConfig) *conn {
	return &conn{e: e, id: p.ID, name: p.Name, loggedAt: map[string]bool{},
		wake: make(chan struct{}, 1), recheck: make(chan struct{}, 1)}
}

// kick makes the session re-check the shared folders now.
func (c *conn) kick() {
	select {
	case c.recheck <- struct{}{}:
	default:
	}
}

// folderSum names a sorted list of folder IDs, for the folders header.
func folderSum(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *conn) setName(n string) {
	c.mu.Lock()
	c.name = n
	c.mu.Unlock()
}

// wakeDial ends the wait before the next dial of dev's session, if it is
// not connected: a dial is worth trying now (dev called us, or its
// addresses changed).
func (e *Engine) wakeDial(dev deviceid.ID) {
	e.mu.Lock()
	c := e.peers[dev]
	e.mu.Unlock()
	if c != nil && !c.connected() {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// notifier is an address book that tells which device's addresses changed
// (discovery.Book): a peer seen again on the LAN is dialled at once, not at
// the end of its backoff (up to 30 s).
type notifier interface {
	Subscribe() (<-chan deviceid.ID, func())
}

// wakeOnNewAddress wakes the session of each device whose addresses change
// until ctx is done.
func (e *Engine) wakeOnNewAddress(ctx context.Context, n notifier) {
	ch, unsubscribe := n.Subscribe()
	defer unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case dev, ok := <-ch:
			if !ok {
				return
			}
			e.wakeDial(dev)
		}
	}
}

func (c *conn) connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

func (c *conn) load() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight
}

// logOnce logs a problem with this peer once per distinct message until the
// peer reconnects, so a broken peer cannot flood the log.
func (c *conn) logOnce(msg string, args ...any) {
	c.mu.Lock()
	seen := c.loggedAt[msg]
	c.loggedAt[msg] = true
	c.mu.Unlock()
	if !seen {
		c.e.o.Logger.Warn(msg, append([]any{"peer", c.id.Short()}, args...)...)
	}
}

// run keeps a session with the peer until ctx is done.
func (c *conn) run(ctx context.Context) {
	first := time.Second
	if b := c.e.o.hooks.dialBackoff; b > 0 {
		first = b
	}
	backoff := first
	for ctx.Err() == nil {
		client, base, addr, hello, err := c.dial(ctx)
		if err != nil {
			c.mu.Lock()
			c.lastErr = err.Error()
			c.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			case <-c.wake:
			}
			backoff = min(backoff*2, max(30*time.Second, first))
			continue
		}
		backoff = first
		c.mu.Lock()
		c.client, c.base, c.addr, c.up, c.since, c.lastErr = client, base, addr, true, c.e.o.Now(), ""
		c.blocks, c.noBatch = client, false
		if c.e.o.BlockClient != nil {
			c.blocks = c.e.o.BlockClient(c.id, addr)
		}
		clear(c.loggedAt)
		c.mu.Unlock()
		c.e.o.Logger.Info("peer connected", "peer", c.id.Short(), "name", hello.Name, "addr", addr)
		c.e.kickFolders(c.id)

		err = c.session(ctx, client, base, hello)

		// A new session for a change of the shared folders is no
		// failure: nothing to show the user, no pause before it.
		reconnect := errors.Is(err, errReconnect)
		c.mu.Lock()
		blocks := c.blocks
		c.client, c.blocks, c.up, c.since = nil, nil, false, c.e.o.Now()
		if err != nil && ctx.Err() == nil && !reconnect {
			c.lastErr = err.Error()
		}
		c.mu.Unlock()
		client.CloseIdleConnections()
		blocks.CloseIdleConnections()
		if reconnect && ctx.Err() == nil {
			c.e.o.Logger.Info("reconnecting to peer: shared folders changed", "peer", c.id.Short())
		} else if ctx.Err() == nil {
			c.e.o.Logger.Info("peer disconnected", "peer", c.id.Short(), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// dial tries the peer's known addresses in order and returns the first that
// answers hello as the expected device.
func (c *conn) dial(ctx context.Context) (*http.Client, string, string, Hello, error) {
	var addrs []discovery.Address
	if c.e.o.Book != nil {
		addrs = c.e.o.Book.Lookup(c.id)
	}
	if len(addrs) == 0 {
		return nil, "", "", Hello{}, errors.New("no known address")
	}
	var lastErr error
	for _, a := range addrs {
		addr := a.Addr
		client := c.e.o.Client(c.id, addr)
		// A link-local IPv6 address's zone ("[fe80::1%eth0]:22027") is
		// written %25 in a URL; the transport dials addr itself.
		base := c.e.scheme() + "://" + strings.ReplaceAll(addr, "%", "%25")
		h, err := c.hello(ctx, client, base)
		if err == nil {
			// The device answered there over TLS: keep the address where
			// forged mDNS answers cannot push it out.
			if b, ok := c.e.o.Book.(seer); ok && a.Source != discovery.SourceStatic {
				b.Seen(c.id, addr, discovery.SourceVerified)
			}
			return client, base, addr, h, nil
		}
		client.CloseIdleConnections()
		lastErr = fmt.Errorf("%s: %w", addr, err)
	}
	return nil, "", "", Hello{}, lastErr
}

func (c *conn) hello(ctx context.Context, client *http.Client, base string) (Hello, error) {
	ctx, cancel := context.WithTimeout(ctx, min(c.e.o.Ping, helloTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/hello", nil)
	if err != nil {
		return Hello{}, err
	}
	if p := c.e.o.ListenPort; p > 0 {
		req.Header.Set(listenPortHeader, strconv.Itoa(p))
	}
	req.Header.Set(foldersHeader, folderSum(c.e.sharedIDs(c.id)))
	resp, err := client.Do(req)
	if err != nil {
		return Hello{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Hello{}, fmt.Errorf("hello: %s", resp.Status)
	}
	var h Hello
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxHelloBytes)).Decode(&h); err != nil {
		return Hello{}, fmt.Errorf("hello: %w", err)
	}
	if id, err := deviceid.Parse(h.ID); err != nil || id != c.id {
		return Hello{}, errWrongDevice
	}
	if len(h.Folders) > 10_000 {
		return Hello{}, fmt.Errorf("hello: %d folders", len(h.Folders))
	}
	slices.Sort(h.Folders)
	// One poll per folder, however often a peer lists it.
	h.Folders = slices.Compact(h.Folders)
	return h, nil
}

// session polls every folder shared both ways and pings the peer; the first
// failure ends it.
func (c *conn) session(ctx context.Context, client *http.Client, base string, h Hello) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	local := c.e.sharedIDs(c.id)
	c.mu.Lock()
	c.seen = folderSum(h.Folders)
	c.mu.Unlock()
	for _, fid := range h.Folders {
		if c.e.sharedWith(fid, c.id) == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.poll(ctx, client, base, fid); err != nil {
				cancel(fmt.Errorf("folder %s: %w", fid, err))
			}
		}()
	}
	t := time.NewTicker(c.e.o.Ping)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		case <-c.recheck:
		}
		h2, err := c.hello(ctx, client, base)
		if err != nil {
			cancel(fmt.Errorf("ping: %w", err))
			continue
		}
		// Either side's folders for the other changed: a new session
		// polls the right ones.
		if !slices.Equal(h.Folders, h2.Folders) || !slices.Equal(local, c.e.sharedIDs(c.id)) {
			cancel(errReconnect)
		}
	}
}

// poll replicates one folder's changes from the peer until ctx is done.
func (c *conn) poll(ctx context.Context, client *http.Client, base, fid string) error {
	st := c.e.o.Store
	var seen uint64 // highest sequence read, valid or not (skips records we refuse)
	for ctx.Err() == nil {
		epoch, seq, err := st.Progress(fid, c.id)
		if err != nil {
			return err
		}
		since := max(seq, seen)
		u := fmt.Sprintf("%s/v1/folders/%s/changes?since=%d&epoch=%d&wait=%s", base, url.PathEscape(fid), since, epoch, c.e.o.PollWait)
		rctx, stop := c.watchdog(ctx, c.e.o.PollWait+c.e.o.StallTimeout)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			return stop(err)
		}
		resp.Body = rctx.wrap(resp.Body)
		newEpoch, n, maxSeq, err := c.readChanges(resp, fid, epoch)
		resp.Body.Close()
		if err := stop(err); err != nil {
			return fmt.Errorf("changes: %w", err)
		}
		if newEpoch != epoch {
			seen = 0
		}
		seen = max(seen, maxSeq)
		if n > 0 {
			c.e.kickFolders(c.id)
		}
	}
	return ctx.Err()
}

// readChanges stores the records of one changes response in batches.
func (c *conn) readChanges(resp *http.Response, fid string, epoch uint64) (newEpoch uint64, n int, maxSeq uint64, err error) {
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("changes: %s", resp.Status)
	}
	newEpoch, err = strconv.ParseUint(resp.Header.Get("Syncd-Epoch"), 10, 64)
	if err != nil || newEpoch == 0 {
		return 0, 0, 0, errors.New("changes: missing epoch")
	}
	st := c.e.o.Store
	f := c.e.folder(fid)
	if f == nil {
		return newEpoch, 0, 0, nil
	}
	if newEpoch != epoch {
		// Index reset on the peer: forget its old records first.
		if err := st.PutRemote(fid, c.id, newEpoch); err != nil {
			return 0, 0, 0, err
		}
	}
	fr := newFrameReader(resp.Body)
	batch := make([]index.Record, 0, maxBatch)
	var paths []string
	blocks := 0 // of the records in batch
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := st.PutRemote(fid, c.id, newEpoch, batch...); err != nil {
			return err
		}
		f.markDirty(paths...)
		clear(batch) // no decoded record stays reachable
		batch, paths, blocks = batch[:0], paths[:0], 0
		return nil
	}
	for {
		rec, err := fr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, 0, err
		}
		n++
		if n > maxPerPoll {
			c.logOnce("peer sends too many records in one response", "folder", fid)
			break
		}
		maxSeq = max(maxSeq, rec.Sequence)
		if err := checkRecord(&rec); err != nil {
			// One line per kind of refusal, not per record.
			msg := "refusing an invalid record from peer"
			if errors.Is(err, ErrUnsafePath) {
				msg = "refusing a record with an unsafe path from peer"
			}
			c.logOnce(msg, "folder", fid, "err", err)
			continue
		}
		batch = append(batch, rec)
		paths = append(paths, rec.Path)
		blocks += len(rec.Blocks)
		if len(batch) == maxBatch || blocks >= maxBatchBlocks {
			if err := flush(); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	return newEpoch, n, maxSeq, flush()
}

// checkRecord validates a record from a peer before it is stored.
func checkRecord(r *index.Record) error {
	if err := checkRemotePath(r.Path); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%s: %w", r.Path, err)
	}
	if n := len(r.Version); n > index.MaxPeerCounters {
		return fmt.Errorf("%s: version vector of %d counters, more than %d", r.Path, n, index.MaxPeerCounters)
	}
	if top := r.Version.Top(); top > index.MaxPeerCounter {
		return fmt.Errorf("%s: version counter %d above %d", r.Path, top, uint64(index.MaxPeerCounter))
	}
	if r.Sequence == 0 {
		return fmt.Errorf("%s: no sequence", r.Path)
	}
	r.Inode, r.Ctime = 0, 0
	return nil
}

// fetchBlock reads one block from the peer into buf and verifies it.
func (c *conn) fetchBlock(ctx context.Context, fid string, b index.Block, buf []byte) error {
	client, base, err := c.blockRequest(false)
	if err != nil {
		return err
	}
	defer c.blockDone(client)
	u := fmt.Sprintf("%s/v1/folders/%s/blocks/%s", base, url.PathEscape(fid), b.Hash)
	dctx, cancel := c.blockDeadline(ctx, int64(len(buf)))
	defer cancel()
	rctx, stop := c.watchdog(dctx, c.e.o.StallTimeout)
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("block %s: %w", b.Hash, tooSlow(dctx, stop(err)))
	}
	body := rctx.wrap(resp.Body)
	defer body.Close()
	if resp.StatusCode != http.StatusOK {
		stop(nil)
		return fmt.Errorf("block %s: %s", b.Hash, resp.Status)
	}
	_, err = io.ReadFull(body, buf)
	if err := tooSlow(dctx, stop(err)); err != nil {
		return fmt.Errorf("block %s: %w", b.Hash, err)
	}
	if n, _ := body.Read(make([]byte, 1)); n != 0 {
		return fmt.Errorf("block %s: longer than %d bytes", b.Hash, len(buf))
	}
	return c.accept(ctx, fid, b, buf)
}

// blockRequest returns the client and base URL for a block request and
// counts it in flight (the caller ends it with blockDone). With batch, a
// peer known not to serve batches gives errNoBatch.
func (c *conn) blockRequest(batch bool) (*http.Client, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.blocks == nil:
		return nil, "", errors.New("not connected")
	case batch && c.noBatch:
		return nil, "", errNoBatch
	}
	c.inflight++
	return c.blocks, c.base, nil
}

// accept takes a received block after the receive rate limit: verified
// against its hash, or ErrBadBlock.
func (c *conn) accept(ctx context.Context, fid string, b index.Block, buf []byte) error {
	if err := waitN(ctx, c.e.o.RecvRate, len(buf)); err != nil {
		return err
	}
	if hashOf(buf) != b.Hash {
		// Also what an honest peer does when its file changed after it
		// was scanned: it reads the new bytes at the old block's place.
		c.logOnce("peer sent a block that does not match its hash; it was discarded and is fetched again (the file may have changed on that device since it was scanned)", "folder", fid)
		return ErrBadBlock
	}
	c.e.fetchedBytes.Add(int64(len(buf)))
	return nil
}

// errNoBatch means the peer does not serve batch requests (an older
// version): its blocks are asked for one by one.
var errNoBatch = errors.New("peer does not serve block batches")

// fetchBatch asks the peer for several blocks in one request (handleBlocks)
// into bufs (len(bufs[i]) == blocks[i].Size). It returns one error per
// block, nil for a block verified and in its buffer; a failed request fails
// the blocks not yet received.
func (c *conn) fetchBatch(ctx context.Context, fid string, blocks []index.Block, bufs [][]byte) []error {
	errs := make([]error, len(blocks))
	fail := func(from int, err error) []error {
		for i := from; i < len(errs); i++ {
			errs[i] = err
		}
		return errs
	}
	client, base, err := c.blockRequest(true)
	if err != nil {
		return fail(0, err)
	}
	defer c.blockDone(client)

	body := make([]byte, 0, len(blocks)*len(index.Hash{}))
	for _, b := range blocks {
		body = append(body, b.Hash[:]...)
	}
	u := fmt.Sprintf("%s/v1/folders/%s/blocks", base, url.PathEscape(fid))
	var total int64
	for _, b := range bufs {
		total += int64(len(b))
	}
	dctx, cancel := c.blockDeadline(ctx, total)
	defer cancel()
	rctx, stop0 := c.watchdog(dctx, c.e.o.StallTimeout)
	stop := func(err error) error { return tooSlow(dctx, stop0(err)) }
	req, _ := http.NewRequestWithContext(rctx, http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	// Reading blocks changes nothing: the transport may send the request
	// again on a new connection when a kept-alive one turns out closed.
	req.Header["X-Idempotency-Key"] = nil
	resp, err := client.Do(req)
	if err != nil {
		return fail(0, fmt.Errorf("block batch: %w", stop(err)))
	}
	rbody := rctx.wrap(resp.Body)
	defer rbody.Close()
	if resp.StatusCode != http.StatusOK {
		stop(nil)
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			c.mu.Lock()
			c.noBatch = true
			c.mu.Unlock()
			return fail(0, errNoBatch)
		}
		return fail(0, fmt.Errorf("block batch: %s", resp.Status))
	}
	br := batchReaders.Get().(*bufio.Reader)
	br.Reset(rbody)
	defer func() {
		br.Reset(nil)
		batchReaders.Put(br)
	}()
	for i, b := range blocks {
		n, err := binary.ReadUvarint(br)
		switch {
		case err != nil:
			return fail(i, fmt.Errorf("block batch: %w", stop(err)))
		case n == 0:
			errs[i] = fmt.Errorf("block %s: %w", b.Hash, errNotThere)
			continue
		case n != uint64(len(bufs[i])):
			stop(nil)
			return fail(i, fmt.Errorf("block %s: peer sent %d bytes for a block of %d", b.Hash, n, len(bufs[i])))
		}
		if _, err := io.ReadFull(br, bufs[i]); err != nil {
			return fail(i, fmt.Errorf("block batch: %w", stop(err)))
		}
		if errs[i] = c.accept(ctx, fid, b, bufs[i]); errs[i] != nil && !errors.Is(errs[i], ErrBadBlock) {
			stop(nil)
			return fail(i, errs[i])
		}
	}
	_, err = br.ReadByte()
	stop(nil)
	if err != io.EOF {
		return fail(0, errors.New("block batch: longer than asked for"))
	}
	return errs
}

// batchReaders buffer batch answers (a block's length, then the block).
var batchReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// errNotThere is a peer's answer that it does not have a block.
var errNotThere = errors.New("peer does not have it")

// blocksIdleAfter is how long the block connections stay open after the
// last block request: open keep-alive connections cost both sides memory.
const blocksIdleAfter = 5 * time.Second

// blockDone ends a block request made with client; the last one arms the
// timer that closes the idle block connections.
func (c *conn) blockDone(client *http.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	if c.inflight > 0 || client == c.client {
		return
	}
	after := blocksIdleAfter
	if h := c.e.o.hooks.blocksIdleAfter; h > 0 {
		after = h
	}
	if c.blocksIdle == nil {
		c.blocksIdle = time.AfterFunc(after, func() {
			c.mu.Lock()
			blocks := c.blocks
			idle := c.inflight == 0 && blocks != c.client
			c.mu.Unlock()
			if idle && blocks != nil {
				blocks.CloseIdleConnections()
			}
		})
	} else {
		c.blocksIdle.Reset(after)
	}
}

// stallCtx is the context of one request to a peer, cancelled with
// errStalled when the peer sends nothing for too long.
type stallCtx struct {
	context.Context
	timer   *time.Timer
	idle    time.Duration
	stopped atomic.Bool // a read after stop must not re-arm the timer
}

// minBlockRate is the slowest a block answer may come, on average over
// the whole answer, after a grace of twice StallTimeout (a variable for the
// tests). A peer that sends a byte now and then never trips the idle
// watchdog; without a bound on the whole answer it would hold a pull pass,
// and with it every other peer's changes, for as long as it likes. 16 KiB/s
// leaves room for a slow uplink shared by six block requests: a block of 4
// MiB may take 5 minutes.
var minBlockRate int64 = 16 << 10

// blockDeadline bounds a block answer of n bytes: the context it returns
// ends with errTooSlow after twice StallTimeout plus n at minBlockRate.
func (c *conn) blockDeadline(ctx context.Context, n int64) (context.Context, context.CancelFunc) {
	d := 2*c.e.o.StallTimeout + time.Duration(n)*time.Second/time.Duration(minBlockRate)
	return context.WithTimeoutCause(ctx, d, errTooSlow)
}

// tooSlow is errTooSlow if the deadline of blockDeadline ended ctx, else err.
func tooSlow(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errTooSlow) {
		return errTooSlow
	}
	return err
}

// watchdog returns a context for one request that is cancelled when no
// answer starts within first, or when the body (read through wrap) sends
// nothing for StallTimeout. stop ends the watchdog and returns err, or
// errStalled if the watchdog fired.
func (c *conn) watchdog(ctx context.Context, first time.Duration) (*stallCtx, func(err error) error) {
	rctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(first, func() { cancel(errStalled) })
	sc := &stallCtx{Context: rctx, timer: t, idle: c.e.o.StallTimeout}
	stop := func(err error) error {
		sc.stopped.Store(true)
		t.Stop()
		stalled := errors.Is(context.Cause(rctx), errStalled)
		cancel(nil)
		if stalled {
			return errStalled
		}
		return err
	}
	return sc, stop
}

// wrap returns body whose every read restarts the idle timer.
func (s *stallCtx) wrap(body io.ReadCloser) io.ReadCloser {
	s.timer.Reset(s.idle)
	return stallBody{body, s}
}

type stallBody struct {
	io.ReadCloser
	s *stallCtx
}

func (b stallBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.s.stopped.Load() {
		b.s.timer.Reset(b.s.idle)
	}
	return n, err
}
