package peer

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/syncd-project/syncd/discovery"
	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// ProtocolVersion is the version of the peer HTTP API.
const ProtocolVersion = 1

// FolderConfig is one shared folder as the config describes it.
type FolderConfig struct {
	ID    string
	Root  string // absolute
	Peers []deviceid.ID
}

// PeerConfig is one pinned peer.
type PeerConfig struct {
	ID   deviceid.ID
	Name string
}

// AddressBook is where the engine learns how to reach a device.
type AddressBook interface {
	Lookup(id deviceid.ID) []discovery.Address
}

// Options configure an Engine. Zero values take the documented defaults.
type Options struct {
	Self deviceid.ID
	Name string
	// ListenPort is the port this device accepts peers on, told to peers in
	// hello so that they can dial back (0: not told).
	ListenPort int
	Store      *index.Store
	Book       AddressBook
	// Identify returns the verified device of an inbound request
	// (transport.RequestPeer in the daemon).
	Identify func(*http.Request) (deviceid.ID, bool)
	// Client returns an HTTP client whose connections reach addr and prove
	// that the server is dev (transport.NewClient in the daemon).
	Client func(dev deviceid.ID, addr string) *http.Client
	// BlockClient, if set, returns the client for block requests to a
	// peer, whose connections are closed a few seconds after the last
	// block request (nil: blocks go through Client's). The daemon uses
	// HTTP/1.1 here: Go serves one HTTP/2 connection with one frame-writing
	// goroutine and reads it with one frame-reading goroutine, which held
	// parallel 1 MiB GETs over loopback to 557 MB/s, against 1252 MB/s over
	// HTTP/1.1 keep-alive connections (transport's BenchmarkHTTPBulkGet).
	BlockClient func(dev deviceid.ID, addr string) *http.Client
	// Scheme of peer URLs: "https" (default); tests of this package use
	// "http" with a fake identity.
	Scheme string
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
	// PollWait is how long a changes request waits when idle (default 25s).
	PollWait time.Duration
	// Ping is how often a connected peer is checked (default 5s); a peer that
	// fails a ping is disconnected.
	Ping time.Duration
	// StallTimeout is how long a peer may send nothing while an answer is
	// due (after the long-poll wait for changes, at any time for blocks)
	// before the request fails and, for changes, the session ends (default
	// 30s).
	StallTimeout time.Duration
	// Debounce groups file events (default 100ms); FullRescan is the period of
	// full rescans (default 1h).
	Debounce   time.Duration
	FullRescan time.Duration
	// Watch enables fsnotify (default on in the daemon; tests may turn it off
	// and call Rescan).
	Watch bool
	// PullWorkers is how many files are pulled at once (default 8) and
	// BlockWorkers how many blocks of one file (default 6).
	PullWorkers  int
	BlockWorkers int
	// MaxInflight bounds the bytes of blocks being fetched or copied at
	// once, over all pulls (default 32 MiB): the buffers they need are most
	// of a busy daemon's memory.
	MaxInflight int64
	// TrashKeep is how long deleted and overwritten content stays in
	// .syncd/trash (default 30 days).
	TrashKeep time.Duration
	// SendRate and RecvRate limit block traffic (nil = unlimited). The
	// limiters may be changed while running with SetLimit.
	SendRate *rate.Limiter
	RecvRate *rate.Limiter
	// NewRoot, if set, checks a folder's root before the folder's marker
	// is first made there (a folder that never synced here): an error
	// keeps the folder waiting, shown as its error, and NewRoot is asked
	// again every 10 seconds. The daemon refuses a root where /etc/fstab
	// mounts a disk that is not mounted: the folder would be synced onto
	// the disk under it, and its marker made there.
	NewRoot func(root string) error

	// hooks inject faults in tests; the zero value (production) does
	// nothing.
	hooks hooks
}

// hooks are fault-injection points for tests. Nil fields do nothing.
type hooks struct {
	// fullScan runs as a full scan of the folder starts.
	fullScan func()
	// beforeDelFlush runs as a batch of deletions is made durable and
	// recorded.
	beforeDelFlush func()
	// countWalk runs as a status count's walk of the index starts.
	countWalk func()
	// dialBackoff, if set, is a session's first wait after a failed dial
	// (default 1 s; it doubles up to 30 s).
	dialBackoff time.Duration
	// beforeFinalCheck runs in a commit when the new version of path
	// (folder-relative) is complete and synced in its temp file and its
	// directory is open, just before the final check of the target.
	beforeFinalCheck func(path string)
	// afterFinalCheck runs when the final check of path's target has kept
	// what was there, just before the new version takes its place.
	afterFinalCheck func(path string)
	// beforeMetaChange runs when applyMeta has found path as recorded,
	// just before it changes its mode and mtime.
	beforeMetaChange func(path string)
	// beforePull runs in the folder's loop before each pull pass.
	beforePull func()
	// beforeMoveQueued runs when a pull has found the file at path (a
	// move source or a trash entry) as recorded, just before it queues
	// the move of it to a new file's path for the commit.
	beforeMoveQueued func(path string)
	// beforeMoveRename runs in the commit of a move of the file at path,
	// just before its last check and the rename.
	beforeMoveRename func(path string)
	// afterMoveRename runs in the commit of a move to path, right after
	// the rename, before anything is recorded.
	afterMoveRename func(path string)
	// applyFile runs when a worker starts pulling path.
	applyFile func(path string)
	// beforeOpen runs once per open of a pull of path (its temp file, or
	// the file itself for a change of mode and mtime), just before its
	// directory is opened from the folder's root (openParent).
	beforeOpen func(path string)
	// beforeOpenRoot runs when a pull pass with work to do is about to
	// open the folder's root.
	beforeOpenRoot func()
	// afterMkdir runs when applyDir has made the directory dir (absolute),
	// before it watches it.
	afterMkdir func(dir string)
	// prefetchJob runs when the prefetcher turns to job i of a queue.
	prefetchJob func(i int)
	// prefetchBatch runs when the fetch of a queue's batch n starts.
	prefetchBatch func(n int)
	// blocksIdleAfter replaces blocksIdleAfter when set.
	blocksIdleAfter time.Duration
	// holdNone has every pull worker close its temp file itself, as past
	// the limit of temp files held open for their commits.
	holdNone bool
	// afterIndexSync runs when durableTop has synced the index.
	afterIndexSync func()
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Scheme == "" {
		o.Scheme = "https"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollWait <= 0 {
		o.PollWait = 25 * time.Second
	}
	if o.Ping <= 0 {
		o.Ping = 5 * time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.FullRescan <= 0 {
		o.FullRescan = time.Hour
	}
	if o.PullWorkers <= 0 {
		o.PullWorkers = 8
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 32 << 20
	}
	// One block must always fit, or its fetch would wait forever.
	o.MaxInflight = max(o.MaxInflight, index.MaxBlockSize)
	if o.BlockWorkers <= 0 {
		o.BlockWorkers = 6
	}
	if o.TrashKeep <= 0 {
		o.TrashKeep = 30 * 24 * time.Hour
	}
}

// Engine replicates the configured folders with the configured peers.
type Engine struct {
	o        Options
	inflight *semaphore.Weighted // MaxInflight bytes of block buffers
	// rollbackMu serialises checkRolledBack, so that the peers that find
	// a rollback at once give the folder one new epoch.
	rollbackMu sync.Mutex
	rolledBack map[string]bool // folders checkRolledBack gave a new epoch, guarded by rollbackMu

	mu      sync.Mutex            // guards the fields below
	peers   map[deviceid.ID]*conn // pinned peers and their sessions
	folders map[string]*folder    // by folder ID
	running context.Context       // nil until Run; the context children derive from
	wg      sync.WaitGroup        // goroutines started by Run and reconfigure
	started map[string]func()     // cancel funcs of running folder and peer goroutines, by key
	// lastTask is, by folder ID, closed when the last goroutine started
	// for that folder (its run, or the forgetting of its records) has
	// ended: the next one waits for it, so that two never overlap.
	lastTask map[string]chan struct{}
	// forgetting holds the folders whose records a task is forgetting.
	forgetting map[string]bool

	fetchedBytes atomic.Int64 // block bytes received from peers
	held         heldFiles    // temp files held open for their commits, in all folders

	// syncMu guards durable: by folder, the top local sequence known to
	// be on disk (durableTop).
	syncMu  sync.Mutex
	durable map[string]durableSeq

	// Requests being served (Handler): Run waits for them before it
	// returns, so that the store is never closed under one (a long poll
	// answered after a stop reached the closed index). life ends with Run
	// and cancels them.
	reqMu      sync.Mutex
	reqs       sync.WaitGroup
	ended      bool // guarded by reqMu: Run has ended; new requests get 503
	life       context.Context
	lifeCancel context.CancelFunc
}

// durableSeq is a folder's top local sequence on disk, in its epoch.
type durableSeq struct{ epoch, top uint64 }

// fetched returns the block bytes received from peers so far.
func (e *Engine) fetched() int64 { return e.fetchedBytes.Load() }

// New returns an engine; call Configure, then Run.
func New(o Options) *Engine {
	o.defaults()
	e := &Engine{
		o:        o,
		inflight: semaphore.NewWeighted(o.MaxInflight),
		peers:    map[deviceid.ID]*conn{},
		durable:  map[string]durableSeq{},
		folders:  map[string]*folder{},
		started:  map[string]func(){},
		lastTask: map[string]chan struct{}{},

		forgetting: map[string]bool{},
	}
	e.life, e.lifeCancel = context.WithCancel(context.Background())
	e.held.max = maxHeld()
	if o.hooks.holdNone {
		e.held.max = 0
	}
	return e
}

// Configure sets the pinned peers and the folders. It may be called again
// while the engine runs: new folders and peers start, removed ones stop.
func (e *Engine) Configure(peers []PeerConfig, folders []FolderConfig) {
	e.mu.Lock()
	defer e.mu.Unlock()
	keepP := map[deviceid.ID]bool{}
	for _, p := range peers {
		keepP[p.ID] = true
		if c, ok := e.peers[p.ID]; ok {
			c.setName(p.Name)
			continue
		}
		e.peers[p.ID] = newConn(e, p)
	}
	for id := range e.peers {
		if !keepP[id] {
			delete(e.peers, id)
		}
	}
	keepF := map[string]bool{}
	for _, fc := range folders {
		keepF[fc.ID] = true
		if f, ok := e.folders[fc.ID]; ok && f.cfg.Root == fc.Root {
			f.setPeers(fc.Peers)
			continue
		}
		e.folders[fc.ID] = newFolder(e, fc)
	}
	for id := range e.folders {
		if !keepF[id] {
			delete(e.folders, id)
		}
	}
	if e.running != nil {
		e.reconcileLocked()
	}
	// Sessions compare the folders shared both ways now, not at the next
	// ping; their hello tells each peer to do the same.
	for _, c := range e.peers {
		c.kick()
	}
}

// Run replicates until ctx is done, then waits for every goroutine.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	e.running = ctx
	e.reconcileLocked()
	e.mu.Unlock()
	if n, ok := e.o.Book.(notifier); ok {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.wakeOnNewAddress(ctx, n)
		}()
	}
	<-ctx.Done()
	e.mu.Lock()
	for k, cancel := range e.started {
		cancel()
		delete(e.started, k)
	}
	e.running = nil
	e.mu.Unlock()
	e.wg.Wait()
	e.reqMu.Lock()
	e.ended = true
	e.reqMu.Unlock()
	e.lifeCancel()
	e.reqs.Wait()
	return nil
}

// serving counts a request in (done counts it out), or reports false once
// Run has ended.
func (e *Engine) serving() (done func(), ok bool) {
	e.reqMu.Lock()
	defer e.reqMu.Unlock()
	if e.ended {
		return nil, false
	}
	e.reqs.Add(1)
	return e.reqs.Done, true
}

// reconcileLocked starts goroutines for configured folders and peers and
// stops the ones no longer configured. The local records of a folder no
// longer configured are forgotten once its run has ended: added again, at
// the same path or another, it starts over as on a new device (its files
// there are scanned, the rest comes from the peers) instead of finding
// records of files it no longer has, which would pause it (no marker) or
// delete them on every device. Called with mu held.
func (e *Engine) reconcileLocked() {
	want := map[string]func(context.Context){}
	folderOf := map[string]string{}
	for id, f := range e.folders {
		k := "f:" + id + "\x00" + f.cfg.Root
		want[k], folderOf[k] = f.run, id
	}
	for id, c := range e.peers {
		want["p:"+id.String()] = c.run
	}
	for k, cancel := range e.started {
		if _, ok := want[k]; !ok {
			cancel()
			delete(e.started, k)
		}
	}
	if e.o.Store != nil {
		ids, err := e.o.Store.LocalFolders()
		if err != nil {
			e.o.Logger.Warn("cannot list the index's folders", "err", err)
		}
		for _, id := range ids {
			if _, ok := e.folders[id]; !ok && !e.forgetting[id] {
				e.forgetting[id] = true
				e.startTask(context.Background(), id, func(context.Context) { e.forget(id) })
			}
		}
	}
	for k, run := range want {
		if _, ok := e.started[k]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(e.running)
		e.started[k] = cancel
		e.startTask(ctx, folderOf[k], run)
	}
}

// startTask runs fn(ctx) in a goroutine of the engine; for a folder (id
// not empty), only once the last one started for that folder has ended.
// Called with mu held.
func (e *Engine) startTask(ctx context.Context, id string, fn func(context.Context)) {
	var after, done chan struct{}
	if id != "" {
		after, done = e.lastTask[id], make(chan struct{})
		e.lastTask[id] = done
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if done != nil {
			defer close(done)
		}
		if after != nil {
			<-after // cancelled or ending: never long
		}
		fn(ctx)
	}()
}

// forget drops the local records of a folder that is no longer configured
// (a run of it configured again meanwhile waits for this).
func (e *Engine) forget(id string) {
	defer func() {
		e.mu.Lock()
		delete(e.forgetting, id)
		e.mu.Unlock()
	}()
	if err := e.o.Store.ForgetLocal(id); err != nil {
		e.o.Logger.Warn("cannot forget the index of a removed folder; it is tried again at the next start", "folder", id, "err", err)
		return
	}
	e.o.Logger.Info("forgot the index of a folder no longer configured; added again, it starts over", "folder", id)
}

// folder returns the folder with that ID, or nil.
func (e *Engine) folder(id string) *folder {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.folders[id]
}

// sharedWith reports whether folder id is shared with dev by this device.
func (e *Engine) sharedWith(id string, dev deviceid.ID) *folder {
	f := e.folder(id)
	if f == nil || !f.hasPeer(dev) {
		return nil
	}
	return f
}

// sources returns the connected peers that share folder id, in a rotating
// order so that load spreads over them.
func (e *Engine) sources(id string) []*conn {
	e.mu.Lock()
	f := e.folders[id]
	var out []*conn
	for _, c := range e.peers {
		if f != nil && f.hasPeer(c.id) && c.connected() {
			out = append(out, c)
		}
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b *conn) int { return a.load() - b.load() })
	return out
}

// roots maps folder IDs to their roots, for reading local blocks.
func (e *Engine) root(id string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, ok := e.folders[id]
	if !ok {
		return "", false
	}
	return f.cfg.Root, true
}

// kickFolders tells the folders shared with dev that new records arrived or
// that dev connected (so blocks may now be available).
func (e *Engine) kickFolders(dev deviceid.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.folders {
		if f.hasPeer(dev) {
			f.kick()
		}
	}
}

func (e *Engine) scheme() string { return e.o.Scheme }
