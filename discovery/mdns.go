package discovery

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"
	"github.com/syncd-project/syncd/transport/deviceid"
	"golang.org/x/time/rate"
)

// Timing of the mDNS loop.
const (
	// DefaultBrowse is the default interval between periodic browses.
	DefaultBrowse = 30 * time.Second
	// fastBrowse is the interval during the first minute of Run.
	fastBrowse = 5 * time.Second
	fastPeriod = time.Minute
	// queryTimeout is how long one browse listens for answers.
	queryTimeout = time.Second
	// pollEvery is how often interfaces are listed (to notice address
	// changes) and the book expired. Listing costs a few syscalls, no packet.
	pollEvery = 5 * time.Second
	// reactDelay and reactGap shape the browse that answers another
	// device's hello: shortly after it, at most one per reactGap.
	reactDelay = 100 * time.Millisecond
	reactGap   = 2 * time.Second
	// helloTimeout is how long a hello query listens (nobody answers it).
	helloTimeout = 100 * time.Millisecond
	// maxIPs bounds the addresses announced per interface.
	maxIPs = 8
)

// MDNSOptions configure MDNS.
type MDNSOptions struct {
	// Logger for discovery events; hashicorp/mdns's own log lines go to it
	// at debug level. Default: discard.
	Logger *slog.Logger
	// Now is the clock for the fast first minute and the rate limit of
	// hello-triggered browses (timers still use real time). Default: time.Now.
	Now func() time.Time
	// Self is this device's ID, announced in TXT "id" and never added to
	// the book. Required.
	Self deviceid.ID
	// Name is the device name, used (sanitised) in the instance name.
	Name string
	// Port is the TCP port peers dial. Required.
	Port int
	// Ifaces names the interfaces to announce and browse on. Empty: every
	// interface that is up, multicast-capable, not loopback and has an
	// address, re-listed every few seconds.
	Ifaces []string
	// Browse is the interval between periodic browses. Default 30 s; during
	// the first minute of Run it is at most 5 s.
	Browse time.Duration
	// Want, if set, filters which devices are added to the book (for
	// example only pinned peers). Nil: every valid device ID.
	Want func(deviceid.ID) bool
	// TXT, if set, returns extra TXT strings ("key=value", at most 255
	// bytes each, not "id" or "v"). It is evaluated when announcers start
	// and on Reannounce.
	TXT func() []string
}

// MDNS announces this device and browses for others on the chosen
// interfaces, feeding a Book. Create it with NewMDNS and call Run once.
type MDNS struct {
	book   *Book
	o      MDNSOptions
	log    *slog.Logger
	stdlog *log.Logger

	reannounce chan struct{} // capacity 1
	react      chan struct{} // capacity 1: another device's hello was seen
	hello      string        // our hello service name, see helloService

	queries atomic.Int64 // queries started, for tests and measurements
}

// NewMDNS returns an MDNS that feeds b. It sends nothing until Run.
func NewMDNS(b *Book, o MDNSOptions) *MDNS {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Browse <= 0 {
		o.Browse = DefaultBrowse
	}
	return &MDNS{
		book:       b,
		o:          o,
		log:        o.Logger,
		stdlog:     libLogger(o.Logger),
		reannounce: make(chan struct{}, 1),
		react:      make(chan struct{}, 1),
		hello:      helloService(o.Self),
	}
}

// Reannounce makes Run rebuild the announced records (for example after the
// TXT function's answer changed). It does not block.
func (m *MDNS) Reannounce() {
	select {
	case m.reannounce <- struct{}{}:
	default:
	}
}

// Run announces on every chosen interface, browses at start, periodically and
// when interface addresses change, and expires the book. It returns nil when
// ctx is done, after stopping every responder and query, or an error when the
// options are unusable or a named interface does not exist at start.
func (m *MDNS) Run(ctx context.Context) error {
	if m.o.Self.IsZero() {
		return fmt.Errorf("%w: Self is the zero device ID", ErrBadOptions)
	}
	if m.o.Port < 1 || m.o.Port > 65535 {
		return fmt.Errorf("%w: port %d", ErrBadOptions, m.o.Port)
	}
	ifs, missing := listIfaces(m.o.Ifaces)
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (not found, down, or without multicast)", ErrNoInterface, strings.Join(missing, ", "))
	}

	ann := make(map[string]*announcer)
	defer func() {
		for _, a := range ann {
			a.stop()
		}
	}()
	start := m.o.Now()
	m.syncAnnouncers(ann, ifs)
	m.browse(ctx, ifs, true)

	browseT := time.NewTimer(m.interval(start))
	defer browseT.Stop()
	pollT := time.NewTicker(pollEvery)
	defer pollT.Stop()
	reactT := time.NewTimer(time.Hour)
	reactT.Stop()
	defer reactT.Stop()
	reactArmed := false
	var lastReact time.Time

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-pollT.C:
			m.book.Expire()
			now, missing := listIfaces(m.o.Ifaces)
			if len(missing) > 0 {
				m.log.Debug("discovery: interfaces unavailable", "ifaces", missing)
			}
			if ifaceSig(now) != ifaceSig(ifs) {
				m.log.Info("discovery: interface addresses changed, re-announcing and browsing", "ifaces", ifaceNames(now))
				ifs = now
				m.syncAnnouncers(ann, ifs)
				m.browse(ctx, ifs, true)
			}
		case <-m.reannounce:
			txt := m.txt()
			for _, a := range ann {
				a.update(m.service(a.ifc, txt))
			}
			m.log.Debug("discovery: re-announced", "txt", txt)
		case <-browseT.C:
			m.browse(ctx, ifs, false)
			browseT.Reset(m.interval(start))
		case <-m.react:
			if reactArmed {
				continue
			}
			d := reactDelay
			if wait := lastReact.Add(reactGap).Sub(m.o.Now()); wait > d {
				d = wait
			}
			reactT.Reset(d)
			reactArmed = true
		case <-reactT.C:
			reactArmed = false
			lastReact = m.o.Now()
			m.browse(ctx, ifs, false)
		}
	}
}

// interval is the time to the next periodic browse.
func (m *MDNS) interval(start time.Time) time.Duration {
	if m.o.Now().Sub(start) < fastPeriod && m.o.Browse > fastBrowse {
		return fastBrowse
	}
	return m.o.Browse
}

func (m *MDNS) txt() []string {
	var extra []string
	if m.o.TXT != nil {
		extra = m.o.TXT()
	}
	return txtRecords(m.o.Self, extra, m.log)
}

// service builds the records announced on one interface.
func (m *MDNS) service(ifc netIface, txt []string) *mdns.MDNSService {
	svc, err := mdns.NewMDNSService(instanceName(m.o.Name, m.o.Self), ServiceType, serviceDomain+".",
		hostName(m.o.Self), m.o.Port, ifc.ips, txt)
	if err != nil {
		// Unreachable: every argument is set and checked above.
		m.log.Error("discovery: building the mDNS service", "iface", ifc.ifi.Name, "err", err)
		return nil
	}
	return svc
}

// syncAnnouncers starts, restarts and stops responders to match ifs.
func (m *MDNS) syncAnnouncers(ann map[string]*announcer, ifs []netIface) {
	want := make(map[string]netIface, len(ifs))
	for _, ifc := range ifs {
		want[ifc.ifi.Name] = ifc
	}
	for name, a := range ann {
		if ifc, ok := want[name]; !ok || ifc.sig() != a.ifc.sig() {
			a.stop()
			delete(ann, name)
		}
	}
	txt := m.txt()
	for name, ifc := range want {
		if ann[name] != nil {
			continue
		}
		a := &announcer{ifc: ifc}
		a.zone.svc.Store(m.service(ifc, txt))
		a.zone.hello = m.hello + "." + serviceDomain + "."
		a.zone.onHello = m.onHello
		ifi := ifc.ifi
		srv, err := mdns.NewServer(&mdns.Config{Zone: &a.zone, Iface: &ifi, Logger: m.stdlog})
		if err != nil {
			m.log.Warn("discovery: cannot announce", "iface", name, "err", err)
			continue
		}
		a.srv = srv
		ann[name] = a
		m.log.Debug("discovery: announcing", "iface", name, "ips", ifc.ips, "port", m.o.Port)
	}
}

// onHello runs in a responder goroutine when another device's hello
// question arrives: that device just started or its addresses changed, so
// browse now rather than at the next periodic browse.
func (m *MDNS) onHello() {
	m.log.Debug("discovery: hello from another device")
	select {
	case m.react <- struct{}{}:
	default:
	}
}

// browse queries every interface at once and feeds the answers to the book.
// With hello it also sends our hello question (see helloService), which makes
// the other syncd daemons browse at once and so find us.
func (m *MDNS) browse(ctx context.Context, ifs []netIface, hello bool) {
	m.log.Debug("discovery: browsing", "ifaces", ifaceNames(ifs), "hello", hello)
	var wg sync.WaitGroup
	for _, ifc := range ifs {
		if hello {
			wg.Go(func() {
				m.queries.Add(1)
				err := query(ctx, ifc, m.hello, helloTimeout, m.stdlog, func(*mdns.ServiceEntry) {})
				if err != nil && ctx.Err() == nil {
					m.log.Debug("discovery: hello failed", "iface", ifc.ifi.Name, "err", err)
				}
			})
		}
		wg.Go(func() {
			m.queries.Add(1)
			err := query(ctx, ifc, ServiceType, queryTimeout, m.stdlog, func(e *mdns.ServiceEntry) {
				m.log.Debug("discovery: mDNS answer", "iface", ifc.ifi.Name, "name", e.Name, "addr", e.AddrV4, "port", e.Port)
				f, err := parseEntry(e, ifc.ifi.Name)
				if err != nil {
					m.log.Debug("discovery: ignoring mDNS answer", "iface", ifc.ifi.Name, "err", err)
					return
				}
				if f.ID == m.o.Self || (m.o.Want != nil && !m.o.Want(f.ID)) {
					return
				}
				for _, a := range f.Addrs {
					m.book.Seen(f.ID, a, SourceMDNS)
				}
			})
			if err != nil && ctx.Err() == nil {
				m.log.Debug("discovery: browse failed", "iface", ifc.ifi.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// query sends one browse for service (without domain) on one interface and
// calls fn for every answer until timeout. It asks over IPv4 when the
// interface has an IPv4 address, else over IPv6 (one packet, not two: the
// answers carry both families' addresses anyway); when that fails it tries
// the other family.
func query(ctx context.Context, ifc netIface, service string, timeout time.Duration, stdlog *log.Logger, fn func(*mdns.ServiceEntry)) error {
	v6 := !ifc.v4
	err := query1(ctx, ifc, service, timeout, v6, stdlog, fn)
	if err != nil && ifc.v4 && ifc.v6 && ctx.Err() == nil {
		err = query1(ctx, ifc, service, timeout, !v6, stdlog, fn)
	}
	return err
}

func query1(ctx context.Context, ifc netIface, service string, timeout time.Duration, v6 bool, stdlog *log.Logger, fn func(*mdns.ServiceEntry)) error {
	entries := make(chan *mdns.ServiceEntry, 64) // the library drops answers when full
	ifi := ifc.ifi
	params := &mdns.QueryParam{
		Service:             service,
		Domain:              serviceDomain,
		Timeout:             timeout,
		Interface:           &ifi,
		Entries:             entries,
		WantUnicastResponse: true, // hashicorp responders answer by unicast anyway
		DisableIPv4:         v6,
		DisableIPv6:         !v6,
		Logger:              stdlog,
	}
	done := make(chan error, 1)
	go func() { done <- mdns.QueryContext(ctx, params) }()
	for {
		select {
		case e := <-entries:
			fn(e)
		case err := <-done:
			for {
				select {
				case e := <-entries:
					fn(e)
				default:
					return err
				}
			}
		}
	}
}

// BrowseOnce queries the given interfaces (empty: all usable ones) once and
// returns the syncd devices that answered within timeout (default 1 s),
// merged by device ID. Pairing uses it to find a device announcing pair=1.
func BrowseOnce(ctx context.Context, ifaces []string, timeout time.Duration, logger *slog.Logger) ([]Found, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if timeout <= 0 {
		timeout = queryTimeout
	}
	ifs, missing := listIfaces(ifaces)
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s (not found, down, or without multicast)", ErrNoInterface, strings.Join(missing, ", "))
	}
	if len(ifs) == 0 {
		return nil, ErrNoInterface
	}
	stdlog := libLogger(logger)
	var (
		mu    sync.Mutex
		found = make(map[deviceid.ID]*Found) // guarded by mu
		order []deviceid.ID                  // guarded by mu
		errs  []error                        // guarded by mu
		wg    sync.WaitGroup
	)
	for _, ifc := range ifs {
		wg.Go(func() {
			err := query(ctx, ifc, ServiceType, timeout, stdlog, func(e *mdns.ServiceEntry) {
				f, err := parseEntry(e, ifc.ifi.Name)
				if err != nil {
					logger.Debug("discovery: ignoring mDNS answer", "iface", ifc.ifi.Name, "err", err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if old := found[f.ID]; old != nil {
					for _, a := range f.Addrs {
						if !slices.Contains(old.Addrs, a) && len(old.Addrs) < MaxAddrs {
							old.Addrs = append(old.Addrs, a)
						}
					}
					return
				}
				if len(found) < MaxMDNSDevices {
					found[f.ID] = &f
					order = append(order, f.ID)
				}
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("browse on %s: %w", ifc.ifi.Name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(errs) == len(ifs) {
		return nil, errs[0]
	}
	out := make([]Found, 0, len(order))
	for _, id := range order {
		out = append(out, *found[id])
	}
	return out, nil
}

// announcer is one responder on one interface.
type announcer struct {
	ifc  netIface
	zone zone
	srv  *mdns.Server
}

func (a *announcer) update(svc *mdns.MDNSService) {
	if svc != nil {
		a.zone.svc.Store(svc)
	}
}

func (a *announcer) stop() {
	if a.srv != nil {
		a.srv.Shutdown() // only closes sockets; never fails
	}
}

// zone serves the current records and reports hello questions of other
// devices. Records runs in the responder's goroutines.
type zone struct {
	svc     atomic.Pointer[mdns.MDNSService]
	hello   string // our own hello question name, ignored; set before the responder starts
	onHello func() // set before the responder starts
	gate    answerGate
}

func (z *zone) Records(q dns.Question) []dns.RR {
	if q.Qtype == dns.TypePTR && isHello(q.Name) && !strings.EqualFold(q.Name, z.hello) {
		z.onHello()
	}
	svc := z.svc.Load()
	if svc == nil {
		return nil
	}
	rrs := svc.Records(q)
	if len(rrs) == 0 || !z.gate.allow(q, time.Now()) {
		return nil
	}
	return rrs
}

// The responder answers every question of a query and sends the whole
// answer to the query's source address, which anyone can forge: a small
// packet holding one question many times would make it a reflector of
// many times the traffic towards a victim. answerGate does not answer a
// question (by name, ignoring case, and type) asked again within
// answerGap of its last asking, which folds the copies of one packet (the
// library handles a packet's questions back to back, microseconds apart)
// however many there are, while two devices' queries (this device's own
// included: it hears its own browse) are rarely that close; and it answers
// at most maxAnswers questions a second overall.
const (
	answerGap  = 200 * time.Microsecond
	maxAnswers = 64
)

type answerGate struct {
	mu   sync.Mutex
	last map[gateKey]time.Time // guarded by mu: when each was last asked; only questions with answers, so bounded by the records
	lim  *rate.Limiter         // guarded by mu; nil until first use
}

type gateKey struct {
	name  string
	qtype uint16
}

func (g *answerGate) allow(q dns.Question, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lim == nil {
		g.lim = rate.NewLimiter(maxAnswers, maxAnswers)
		g.last = make(map[gateKey]time.Time)
	}
	k := gateKey{strings.ToLower(q.Name), q.Qtype}
	t, ok := g.last[k]
	g.last[k] = now
	if ok && now.Sub(t) < answerGap && !now.Before(t) {
		return false
	}
	return g.lim.AllowN(now, 1)
}

// helloService is the question a daemon asks when it starts or its addresses
// change: a DNS-SD subtype of our service named after the short device ID,
// "_<short>._sub._syncd._tcp.local.". Nobody answers it (the library's
// responders match only exact service names); other syncd daemons take it as
// a cue to browse at once, so a new device is found in well under a second
// instead of at their next periodic browse, at the cost of one packet.
func helloService(id deviceid.ID) string {
	return "_" + strings.ToLower(id.Short()) + "._sub." + ServiceType
}

const helloSuffix = "._sub." + serviceFQDN

func isHello(name string) bool {
	n := len(name) - len(helloSuffix)
	return n > 1 && name[0] == '_' && strings.EqualFold(name[n:], helloSuffix)
}

// netIface is an interface chosen for mDNS with its addresses.
type netIface struct {
	ifi    net.Interface
	ips    []net.IP
	v4, v6 bool
}

func (n netIface) sig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d", n.ifi.Name, n.ifi.Index)
	for _, ip := range n.ips {
		b.WriteString(" " + ip.String())
	}
	return b.String()
}

func ifaceSig(ifs []netIface) string {
	var parts []string
	for _, n := range ifs {
		parts = append(parts, n.sig())
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

func ifaceNames(ifs []netIface) []string {
	var names []string
	for _, n := range ifs {
		names = append(names, n.ifi.Name)
	}
	return names
}

// listIfaces returns the usable interfaces among names (all when empty) and
// the names that are not usable.
func listIfaces(names []string) (ifs []netIface, missing []string) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, names
	}
	byName := make(map[string]net.Interface, len(all))
	for _, ifi := range all {
		byName[ifi.Name] = ifi
	}
	usable := func(ifi net.Interface) (netIface, bool) {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0 {
			return netIface{}, false
		}
		n := netIface{ifi: ifi}
		addrs, err := ifi.Addrs()
		if err != nil {
			return netIface{}, false
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || len(n.ips) == maxIPs {
				continue
			}
			if ipn.IP.To4() != nil {
				n.v4 = true
			} else {
				n.v6 = true
			}
			n.ips = append(n.ips, ipn.IP)
		}
		return n, len(n.ips) > 0
	}
	if len(names) == 0 {
		for _, ifi := range all {
			if n, ok := usable(ifi); ok {
				ifs = append(ifs, n)
			}
		}
		return ifs, nil
	}
	for _, name := range names {
		ifi, ok := byName[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		n, ok := usable(ifi)
		if !ok {
			missing = append(missing, name)
			continue
		}
		ifs = append(ifs, n)
	}
	return ifs, missing
}
