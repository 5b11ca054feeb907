package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/syncd-project/syncd/discovery"
	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/peer"
	"github.com/syncd-project/syncd/transport"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// memoryLimit is the soft memory limit of the daemon (GOMEMLIMIT overrides).
const memoryLimit = 80 << 20

// renewWithin is when run renews the leaf certificate: at start, and then
// every renewEvery while it runs (a daemon may run for longer than a leaf
// lives).
const renewWithin = 30 * 24 * time.Hour

var renewEvery = 24 * time.Hour // a variable for the tests

type runFlags struct {
	listen    string
	discovery string
	ifaces    []string
	sendRate  string
	recvRate  string
}

func runCommand(g globalFlags, args []string) int {
	err := runDaemon(g, args)
	code := reportError(g.Stderr, err)
	if code == exitUsage || errors.Is(err, errNoConfig) || errors.Is(err, transport.ErrNoIdentity) {
		// Restarting will not fix these; 'syncd init' or an edit does.
		code = exitConfig
	}
	return code
}

func runDaemon(g globalFlags, args []string) error {
	// A SIGHUP (reload the config) that comes while the daemon starts is
	// caught from here on, where its default would end the process, and
	// answered once the daemon runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var rf runFlags
	fs := newFlags("run")
	fs.StringVar(&rf.listen, "listen", "", "address for peer connections (default: the config's listen)")
	fs.StringVar(&rf.discovery, "discovery", "", "mdns or off (default: the config's discovery)")
	fs.Func("iface", "interface for mDNS (repeatable; default all multicast-capable)", func(s string) error {
		rf.ifaces = append(rf.ifaces, s)
		return validateIface(s)
	})
	fs.StringVar(&rf.sendRate, "max-send-rate", "", "limit of peer upload, e.g. 100MB (per second); 0 = unlimited")
	fs.StringVar(&rf.recvRate, "max-recv-rate", "", "limit of peer download, e.g. 100MB (per second); 0 = unlimited")
	pos, err := parseArgs(g, fs, "run [--listen ADDR] [--discovery mdns|off] [--iface NAME]... [--max-send-rate R] [--max-recv-rate R]", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usageErr("run", "unexpected argument %q", pos[0])
	}
	if rf.discovery != "" && rf.discovery != "mdns" && rf.discovery != "off" {
		return usageErr("run", "--discovery %q is neither mdns nor off", rf.discovery)
	}
	if rf.listen != "" {
		if err := validateAddr(rf.listen); err != nil {
			return usageErr("run", "--listen: %v", err)
		}
	}
	paths, err := g.paths()
	if err != nil {
		return err
	}
	if err := paths.checkSocket("run"); err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A background daemon should stay small: a soft limit makes the
		// garbage collector work harder near it instead of growing the heap
		// (the live heap may still exceed it; it is not a cap). It grows
		// with the live heap (softLimit).
		debug.SetMemoryLimit(memoryLimit)
	}
	if prof := os.Getenv("SYNCD_CPUPROFILE"); prof != "" {
		// Diagnostics: a CPU profile of the whole run, for benchmarks.
		f, err := os.Create(prof)
		if err != nil {
			return fmt.Errorf("SYNCD_CPUPROFILE: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("SYNCD_CPUPROFILE: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if prof := os.Getenv("SYNCD_MEMPROFILE"); prof != "" {
		// Diagnostics: the heap in use when the daemon stops.
		defer func() {
			f, err := os.Create(prof)
			if err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	d, err := newDaemon(g, paths, rf)
	if err != nil {
		return err
	}
	defer d.close()
	d.hup = hup
	return d.run()
}

// daemon is one running syncd: the wiring of transport, discovery, index and
// peer, plus the control API.
type daemon struct {
	g       globalFlags
	paths   Paths
	flags   runFlags
	log     *slog.Logger
	release func()
	id      *transport.Identity
	store   *index.Store
	book    *discovery.Book
	pins    *transport.Pins
	engine  *peer.Engine
	server  *transport.Server
	ln      net.Listener
	started time.Time
	devName string
	send    *rate.Limiter
	recv    *rate.Limiter

	mu     sync.Mutex // guards cfg and pair
	cfg    *Config
	pair   *pairing // nil unless a 'syncd pair' is waiting
	mdns   *discovery.MDNS
	reload chan struct{}
	hup    <-chan os.Signal // SIGHUP

	reloadMu sync.Mutex // serialises reloadConfig
}

func newDaemon(g globalFlags, paths Paths, rf runFlags) (_ *daemon, err error) {
	// d is not the named result: 'return nil, err' must not nil it before
	// the deferred close runs.
	d := &daemon{g: g, paths: paths, flags: rf, log: g.logger(), started: time.Now(), reload: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if _, err := os.Stat(paths.Config); errors.Is(err, os.ErrNotExist) {
		// Said before the lock, which cannot be made in a home that
		// does not exist yet.
		return nil, withHint(fmt.Errorf("%w at %s", errNoConfig, paths.Config), "run 'syncd init' first")
	}
	if d.release, err = acquireLock(paths.Lock); err != nil {
		return nil, err
	}
	if d.cfg, err = loadDaemonConfig(paths); err != nil {
		return nil, err
	}
	if d.id, err = transport.LoadIdentity(paths.Identity, time.Now()); err != nil {
		if errors.Is(err, transport.ErrNoIdentity) {
			return nil, withHint(fmt.Errorf("%w in %s", transport.ErrNoIdentity, paths.Home), "run 'syncd init' first")
		}
		return nil, err
	}
	d.devName = deviceName(d.cfg, d.id)
	if renewed, err := d.id.RenewIfNeeded(time.Now(), renewWithin); err != nil {
		return nil, fmt.Errorf("renew the device certificate: %w", err)
	} else if renewed {
		d.log.Info("renewed the device certificate", "until", d.id.Leaf().NotAfter.Format(time.DateOnly))
	}
	if d.store, err = index.Open(paths.Index, index.Options{Logger: d.log.With("part", "index")}); err != nil {
		return nil, withHint(fmt.Errorf("open the index in %s: %w", paths.Index, err), "check the disk and permissions; if it is damaged, move it away and syncd rescans")
	}
	d.send, d.recv = rate.NewLimiter(rate.Inf, 1<<20), rate.NewLimiter(rate.Inf, 1<<20)
	d.pins = transport.NewPins()
	d.book = discovery.NewBook(discovery.Options{Logger: d.log, Keep: d.pins.Has})
	listen := d.cfg.Listen
	if rf.listen != "" {
		listen = rf.listen
	}
	if d.ln, err = net.Listen("tcp", listen); err != nil {
		return nil, withHint(fmt.Errorf("listen on %s: %w", listen, err), "choose another address with --listen or the config's listen")
	}
	_, port, _ := net.SplitHostPort(d.ln.Addr().String())
	topts := d.transportOptions()
	d.engine = peer.New(peer.Options{
		ListenPort: atoiOr0(port), Self: d.id.ID, Name: d.name(), Store: d.store, Book: d.book,
		Identify: transport.RequestPeer,
		Client:   func(dev deviceid.ID, addr string) *http.Client { return transport.NewClient(topts, dev, addr) },
		// Blocks over HTTP/1.1 keep-alive connections: see
		// peer.Options.BlockClient and transport.DefaultHTTPVersion.
		BlockClient: func(dev deviceid.ID, addr string) *http.Client {
			o := topts
			o.HTTP = transport.HTTP1
			return transport.NewClient(o, dev, addr)
		},
		Logger: d.log, Watch: true, SendRate: d.send, RecvRate: d.recv,
		TrashKeep: time.Duration(d.cfg.TrashDays) * 24 * time.Hour,
		// The transport's HTTP/2 PING frames (after 5 s without traffic,
		// 5 s timeout) notice a dead peer, and a change of either side's
		// folders reaches the sessions at once (Configure, the hello
		// header); the engine's own ping, a request with its answer, is
		// only a backstop, and every 5 s it was most of an idle daemon's CPU.
		Ping:    30 * time.Second,
		NewRoot: checkRootMounted,
	})
	d.apply(d.cfg)
	d.server = transport.NewServer(topts, d.engine.Handler())
	return d, nil
}

func (d *daemon) transportOptions() transport.Options {
	return transport.Options{Identity: d.id, Pins: d.pins, Logger: d.log.With("part", "transport")}
}

// name is the device name shown to peers, fixed when the daemon starts.
func (d *daemon) name() string { return d.devName }

func deviceName(cfg *Config, id *transport.Identity) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	if id.Name != "" {
		return id.Name
	}
	h, _ := os.Hostname()
	return h
}

// apply makes a config take effect: pins, addresses, folders, limits.
func (d *daemon) apply(c *Config) {
	var ids []deviceid.ID
	var peers []peer.PeerConfig
	for _, p := range c.Peers {
		ids = append(ids, p.ID)
		peers = append(peers, peer.PeerConfig{ID: p.ID, Name: p.Name})
		d.book.SetStatic(p.ID, p.Addrs)
	}
	d.pins.Set(ids)
	if d.server != nil {
		d.server.DropUnpinned() // a removed peer is out at once
	}
	var folders []peer.FolderConfig
	for _, f := range c.Folders {
		folders = append(folders, peer.FolderConfig{ID: f.ID, Root: f.Path, Peers: f.Peers})
	}
	d.engine.Configure(peers, folders)
	setLimit(d.send, c.SendRate, d.flags.sendRate)
	setLimit(d.recv, c.RecvRate, d.flags.recvRate)
}

// setLimit sets a limiter from the config value, unless the command line
// overrides it.
func setLimit(l *rate.Limiter, fromConfig int64, flagValue string) {
	bps := fromConfig
	if flagValue != "" {
		if v, err := parseRate(flagValue); err == nil {
			bps = v
		}
	}
	if bps <= 0 {
		l.SetLimit(rate.Inf)
		return
	}
	l.SetBurst(int(min(bps, 4<<20)))
	l.SetLimit(rate.Limit(bps))
}

func (d *daemon) run() error {
	if d.flags.sendRate != "" {
		if _, err := parseRate(d.flags.sendRate); err != nil {
			return usageErr("run", "--max-send-rate: %v", err)
		}
	}
	if d.flags.recvRate != "" {
		if _, err := parseRate(d.flags.recvRate); err != nil {
			return usageErr("run", "--max-recv-rate: %v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	disc := d.cfg.Discovery
	if d.flags.discovery != "" {
		disc = d.flags.discovery
	}
	d.log.Info("syncd running", "id", d.id.ID.String(), "name", d.name(), "listen", d.ln.Addr().String(), "discovery", disc)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.engine.Run(ctx) })
	g.Go(func() error { return d.server.Run(ctx, d.ln) })
	g.Go(func() error { return serveControl(ctx, d.paths.Socket, d.controlHandler(), d.log) })
	g.Go(func() error { return d.store.RunGC(ctx, 10*time.Minute) })
	g.Go(func() error { return trimMemory(ctx, os.Getenv("GOMEMLIMIT") == "") })
	g.Go(func() error { d.renewLoop(ctx); return nil })
	if disc == "mdns" {
		_, port, _ := net.SplitHostPort(d.ln.Addr().String())
		p, _ := strconv.Atoi(port)
		ifaces := d.cfg.Ifaces
		if len(d.flags.ifaces) > 0 {
			ifaces = d.flags.ifaces
		}
		d.mu.Lock()
		d.mdns = discovery.NewMDNS(d.book, discovery.MDNSOptions{
			Logger: d.log.With("part", "discovery"), Self: d.id.ID, Name: d.name(), Port: p, Ifaces: ifaces,
			TXT: d.pairTXT,
		})
		m := d.mdns
		d.mu.Unlock()
		g.Go(func() error { return m.Run(ctx) })
	}
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-d.hup:
				d.log.Info("SIGHUP: reloading the config")
				d.reloadConfig()
			case <-d.reload:
				d.reloadConfig()
			}
		}
	})
	err := g.Wait()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	if serr := d.store.Sync(); serr != nil && err == nil {
		err = serr
	}
	d.log.Info("syncd stopped")
	return err
}

// renewLoop renews the device's leaf certificate when it nears its end,
// looking every renewEvery, until ctx ends. A failure is logged and tried
// again next time; the running daemon goes on with the old leaf.
func (d *daemon) renewLoop(ctx context.Context) {
	t := time.NewTicker(renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			renewed, err := d.id.RenewIfNeeded(time.Now(), renewWithin)
			switch {
			case err != nil:
				d.log.Error("could not renew the device certificate; peers refuse this device once it ends", "until", d.id.Leaf().NotAfter.Format(time.DateOnly), "err", err)
			case renewed:
				d.log.Info("renewed the device certificate", "until", d.id.Leaf().NotAfter.Format(time.DateOnly))
			}
		}
	}
}

// reloadConfig re-reads the config; a broken config is reported and the
// running one kept.
func (d *daemon) reloadConfig() error {
	// One at a time (SIGHUP, the control API, a pairing): a config read
	// before another is never applied after it.
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	c, err := loadDaemonConfig(d.paths)
	if err != nil {
		d.log.Error("config not reloaded; the running config stays in force", "err", err)
		return err
	}
	d.mu.Lock()
	if later := keepRunning(d.cfg, c); len(later) > 0 {
		d.log.Warn("config reloaded; these settings take effect when syncd starts next, the running ones stay", "settings", strings.Join(later, ", "))
	}
	d.cfg = c
	d.mu.Unlock()
	d.apply(c)
	return nil
}

// keepRunning puts into c the settings of running that only a start of the
// daemon applies (the listener, discovery, the device name and the trash
// period are set up once), so that status shows what runs, and names those
// that c changed.
func keepRunning(running, c *Config) (later []string) {
	if c.Name != running.Name {
		later = append(later, "name")
	}
	if c.Listen != running.Listen {
		later = append(later, "listen")
	}
	if c.Discovery != running.Discovery {
		later = append(later, "discovery")
	}
	if !slices.Equal(c.Ifaces, running.Ifaces) {
		later = append(later, "ifaces")
	}
	if c.TrashDays != running.TrashDays {
		later = append(later, "trash_days")
	}
	c.Name, c.Listen, c.Discovery, c.Ifaces, c.TrashDays = running.Name, running.Listen, running.Discovery, running.Ifaces, running.TrashDays
	return later
}

// loadDaemonConfig is loadConfig with the checks of what only the daemon
// can do harm with (checkFolderPlaces).
func loadDaemonConfig(paths Paths) (*Config, error) {
	c, err := loadConfig(paths.Config)
	if err != nil {
		return nil, err
	}
	if err := checkFolderPlaces(c, paths); err != nil {
		return nil, err
	}
	return c, nil
}

func (d *daemon) close() {
	if d.ln != nil {
		d.ln.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
	if d.release != nil {
		d.release()
	}
}

func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
