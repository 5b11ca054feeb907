package discovery

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/mdns"
	"github.com/syncd-project/syncd/transport/deviceid"
)

const (
	// ServiceType is the DNS-SD service type syncd announces and browses.
	ServiceType = "_syncd._tcp"
	// ProtocolVersion is announced in the TXT record "v".
	ProtocolVersion = "1"

	serviceDomain = "local"
	serviceFQDN   = ServiceType + "." + serviceDomain + "."

	// maxTXT bounds the TXT strings read from an answer.
	maxTXT = 32
	// maxExtraTXT bounds the extra TXT strings announced (MDNSOptions.TXT).
	maxExtraTXT = 8
	// maxNameLen bounds the sanitised device name in the instance name.
	maxNameLen = 40
)

// Errors returned by this package.
var (
	// ErrNotSyncd is wrapped when an mDNS answer is not a syncd service.
	ErrNotSyncd = errors.New("not a syncd announcement")
	// ErrNoInterface is returned when no usable multicast interface exists.
	ErrNoInterface = errors.New("no usable multicast interface")
	// ErrBadOptions is wrapped when MDNSOptions are unusable.
	ErrBadOptions = errors.New("invalid mDNS options")
)

// Found is one syncd device seen in an mDNS answer. It is only a hint: the
// TLS handshake proves the ID.
type Found struct {
	ID    deviceid.ID
	Name  string            // device name taken from the instance name
	Addrs []string          // host:port, IP literals
	TXT   map[string]string // keys lower-cased; the first of duplicate keys wins
}

// parseEntry turns an answer assembled by hashicorp/mdns into a Found. The
// answer comes from anyone on the LAN: everything is checked. iface is the
// interface it arrived on: the zone of a link-local IPv6 address (the
// library takes the zone from the answer's source address, which has none
// when the answer came over IPv4).
func parseEntry(e *mdns.ServiceEntry, iface string) (Found, error) {
	suffix := "." + serviceFQDN
	if len(e.Name) <= len(suffix) || !strings.EqualFold(e.Name[len(e.Name)-len(suffix):], suffix) {
		return Found{}, fmt.Errorf("%w: name %.80q", ErrNotSyncd, e.Name)
	}
	instance := unescapeLabel(e.Name[:len(e.Name)-len(suffix)])
	txt := make(map[string]string)
	for i, f := range e.InfoFields {
		if i == maxTXT {
			break
		}
		k, v, _ := strings.Cut(f, "=")
		k = strings.ToLower(k)
		if k == "" {
			continue
		}
		if _, dup := txt[k]; !dup {
			txt[k] = v
		}
	}
	idText, ok := txt["id"]
	if !ok {
		return Found{}, fmt.Errorf("%w: %.80q has no TXT id", ErrNotSyncd, instance)
	}
	id, err := deviceid.Parse(idText)
	if err != nil {
		return Found{}, fmt.Errorf("%w: %.80q: TXT id: %w", ErrNotSyncd, instance, err)
	}
	if e.Port < 1 || e.Port > 65535 {
		return Found{}, fmt.Errorf("%w: %.80q: port %d", ErrNotSyncd, instance, e.Port)
	}
	port := strconv.Itoa(e.Port)
	f := Found{ID: id, TXT: txt, Name: instance}
	if n, ok := strings.CutSuffix(instance, "-"+id.Short()); ok && n != "" {
		f.Name = n
	}
	f.Name = printable(f.Name)
	if ip := e.AddrV4; ip != nil && ip.To4() != nil {
		f.addAddr(ip.String(), port)
	}
	if a := e.AddrV6IPAddr; a != nil && a.IP.To4() == nil {
		ip := *a
		if ip.IP.IsLinkLocalUnicast() && ip.Zone == "" {
			ip.Zone = iface
		}
		f.addAddr(ip.String(), port)
	}
	if len(f.Addrs) == 0 {
		return Found{}, fmt.Errorf("%w: %.80q: no usable address", ErrNotSyncd, instance)
	}
	return f, nil
}

// addAddr appends host:port unless host is not a unicast, non-loopback IP
// (a link-local one without a zone cannot be dialled) or the address is
// already listed.
func (f *Found) addAddr(host, port string) {
	ip := net.ParseIP(hostWithoutZone(host))
	if ip == nil || ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() && ip.To4() == nil && !strings.Contains(host, "%") {
		return
	}
	a := net.JoinHostPort(host, port)
	for _, x := range f.Addrs {
		if x == a {
			return
		}
	}
	f.Addrs = append(f.Addrs, a)
}

// unescapeLabel undoes miekg/dns's presentation escapes (\. and \DDD).
func unescapeLabel(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n < 256 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return strings.ToValidUTF8(b.String(), "?")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// printable keeps what a name from the network may show on a terminal:
// valid UTF-8 without control characters (an escape sequence in a name
// would reach the user's terminal in pairing's messages), at most 63 bytes.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	for len(s) > 63 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// instanceName is the DNS-SD instance label: the device name reduced to
// letters, digits and '-', then the short device ID, so that two laptops
// called "laptop" do not collide.
func instanceName(name string, id deviceid.ID) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		if b.Len() >= maxNameLen {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	n := strings.TrimRight(b.String(), "-")
	if n == "" {
		n = "syncd"
	}
	return n + "-" + id.Short()
}

// hostName is the host name announced in SRV records: ours alone, so that no
// hostname lookup is ever needed.
func hostName(id deviceid.ID) string {
	return "syncd-" + strings.ToLower(id.Short()) + "." + serviceDomain + "."
}

// txtRecords returns the TXT strings to announce. Extra strings that are
// empty, longer than 255 bytes, or reuse the keys id and v are dropped with a
// warning.
func txtRecords(id deviceid.ID, extra []string, logger *slog.Logger) []string {
	txt := []string{"id=" + id.String(), "v=" + ProtocolVersion}
	for _, s := range extra {
		k, _, _ := strings.Cut(s, "=")
		k = strings.ToLower(k)
		switch {
		case len(txt) == 2+maxExtraTXT:
			logger.Warn("discovery: too many extra TXT strings, ignoring the rest", "max", maxExtraTXT)
			return txt
		case k == "" || len(s) > 255 || k == "id" || k == "v":
			logger.Warn("discovery: ignoring extra TXT string", "txt", fmt.Sprintf("%.80q", s))
			continue
		}
		txt = append(txt, s)
	}
	return txt
}

// libLogger routes hashicorp/mdns's log.Logger into slog at debug level:
// foreign packets on a real LAN make it print [ERR] lines that are not ours
// to report.
func libLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	if w.l.Enabled(context.Background(), slog.LevelDebug) {
		msg := strings.TrimSpace(string(p))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		w.l.Debug("discovery: hashicorp/mdns", "msg", msg)
	}
	return len(p), nil
}
