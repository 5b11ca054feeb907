package discovery

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/mdns"
)

func TestParseEntry(t *testing.T) {
	id := testID(1)
	name := instanceName("Büro laptop", id) + "." + serviceFQDN
	good := func() *mdns.ServiceEntry {
		return &mdns.ServiceEntry{
			Name:         name,
			AddrV4:       net.IPv4(198, 18, 0, 1),
			AddrV6IPAddr: &net.IPAddr{IP: net.ParseIP("fe80::1"), Zone: "sd0"},
			Port:         22000,
			InfoFields:   []string{"id=" + id.String(), "v=1", "V=2", "pair=1", "flag", "=x"},
		}
	}
	tests := []struct {
		name    string
		edit    func(e *mdns.ServiceEntry)
		want    Found
		wantErr error
	}{
		{"good", func(*mdns.ServiceEntry) {}, Found{
			ID: id, Name: "B-ro-laptop",
			Addrs: []string{"198.18.0.1:22000", "[fe80::1%sd0]:22000"},
			TXT:   map[string]string{"id": id.String(), "v": "1", "pair": "1", "flag": ""},
		}, nil},
		{"lower-case id, no v6", func(e *mdns.ServiceEntry) {
			e.AddrV6IPAddr = nil
			e.InfoFields = []string{"ID=" + strings.ToLower(id.String())}
		}, Found{ID: id, Name: "B-ro-laptop", Addrs: []string{"198.18.0.1:22000"},
			TXT: map[string]string{"id": strings.ToLower(id.String())}}, nil},
		{"escaped instance", func(e *mdns.ServiceEntry) {
			e.Name = `my\.box\032x.` + serviceFQDN
			e.AddrV6IPAddr = nil
			e.InfoFields = e.InfoFields[:1]
		}, Found{ID: id, Name: "my.box x", Addrs: []string{"198.18.0.1:22000"},
			TXT: map[string]string{"id": id.String()}}, nil},
		{"other service", func(e *mdns.ServiceEntry) { e.Name = "printer._http._tcp.local." }, Found{}, ErrNotSyncd},
		{"bare service name", func(e *mdns.ServiceEntry) { e.Name = serviceFQDN }, Found{}, ErrNotSyncd},
		{"no id", func(e *mdns.ServiceEntry) { e.InfoFields = []string{"v=1"} }, Found{}, ErrNotSyncd},
		{"bad id", func(e *mdns.ServiceEntry) { e.InfoFields = []string{"id=garbage"} }, Found{}, ErrNotSyncd},
		{"bad check character", func(e *mdns.ServiceEntry) {
			s := []byte(id.String())
			s[0] ^= 1
			e.InfoFields = []string{"id=" + string(s)}
		}, Found{}, ErrNotSyncd},
		{"port 0", func(e *mdns.ServiceEntry) { e.Port = 0 }, Found{}, ErrNotSyncd},
		{"port too big", func(e *mdns.ServiceEntry) { e.Port = 70000 }, Found{}, ErrNotSyncd},
		{"loopback only", func(e *mdns.ServiceEntry) {
			e.AddrV4 = net.IPv4(127, 0, 0, 1)
			e.AddrV6IPAddr = &net.IPAddr{IP: net.IPv6loopback}
		}, Found{}, ErrNotSyncd},
		{"no address", func(e *mdns.ServiceEntry) { e.AddrV4, e.AddrV6IPAddr = nil, nil }, Found{}, ErrNotSyncd}, // Over IPv4 the library gives a link-local address no zone: it is
		// the interface the answer came on.
		{"link-local without zone", func(e *mdns.ServiceEntry) {
			e.AddrV6IPAddr = &net.IPAddr{IP: net.ParseIP("fe80::1")}
		}, Found{ID: id, Name: "B-ro-laptop", Addrs: []string{"198.18.0.1:22000", "[fe80::1%eth0]:22000"},
			TXT: map[string]string{"id": id.String(), "v": "1", "pair": "1", "flag": ""}}, nil},
		{"global v6 only", func(e *mdns.ServiceEntry) {
			e.AddrV4 = nil
			e.AddrV6IPAddr = &net.IPAddr{IP: net.ParseIP("2001:db8::1")}
		}, Found{ID: id, Name: "B-ro-laptop", Addrs: []string{"[2001:db8::1]:22000"},
			TXT: map[string]string{"id": id.String(), "v": "1", "pair": "1", "flag": ""}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := good()
			tc.edit(e)
			got, err := parseEntry(e, "eth0")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("parseEntry(%s) error = %v, want %v", tc.name, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseEntry(%s) mismatch (-want +got):\n%s", tc.name, diff)
			}
		})
	}
}

func FuzzParseEntry(f *testing.F) {
	id := testID(1)
	f.Add(instanceName("laptop", id)+"."+serviceFQDN, "id="+id.String(), "v=1", 22000, []byte{198, 18, 0, 1})
	f.Add(`a\.b\255\999.`+serviceFQDN, "id=x", "=", 1, []byte{0, 0, 0, 0})
	f.Add("x._http._tcp.local.", "", "", -1, []byte{})
	f.Fuzz(func(t *testing.T, name, txt1, txt2 string, port int, ip []byte) {
		e := &mdns.ServiceEntry{Name: name, Port: port, InfoFields: []string{txt1, txt2}}
		if len(ip) == 4 || len(ip) == 16 {
			e.AddrV4 = net.IP(ip)
			e.AddrV6IPAddr = &net.IPAddr{IP: net.IP(ip), Zone: "z"}
		}
		got, err := parseEntry(e, "eth0")
		if err != nil {
			return
		}
		if got.ID.IsZero() || len(got.Addrs) == 0 {
			t.Fatalf("parseEntry(%q) = %+v, want a device and an address", name, got)
		}
		for _, a := range got.Addrs {
			if err := CheckAddr(a, true); err != nil {
				t.Errorf("parseEntry(%q) address %q: %v", name, a, err)
			}
		}
	})
}

func TestInstanceName(t *testing.T) {
	id := testID(1)
	s := "-" + id.Short()
	tests := []struct{ in, want string }{
		{"laptop", "laptop" + s},
		{"  My Laptop (2)!", "My-Laptop-2" + s},
		{"Büro", "B-ro" + s},
		{"", "syncd" + s},
		{"日本", "syncd" + s},
		{strings.Repeat("a", 100), strings.Repeat("a", maxNameLen) + s},
		{"a.b\\c", "a-b-c" + s},
	}
	for _, tc := range tests {
		if got := instanceName(tc.in, id); got != tc.want {
			t.Errorf("instanceName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := instanceName(tc.in, id); len(got) > 63 {
			t.Errorf("instanceName(%q) = %d bytes, want a DNS label (<= 63)", tc.in, len(got))
		}
	}
}

func TestTXTRecords(t *testing.T) {
	id := testID(1)
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	got := txtRecords(id, []string{"pair=1", "", "id=evil", "V=9", strings.Repeat("x", 256), "ok"}, logger)
	want := []string{"id=" + id.String(), "v=" + ProtocolVersion, "pair=1", "ok"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("txtRecords mismatch (-want +got):\n%s", diff)
	}
	if n := strings.Count(buf.String(), "level=WARN"); n != 4 {
		t.Errorf("txtRecords logged %d warnings, want 4:\n%s", n, buf.String())
	}
	many := make([]string, 20)
	for i := range many {
		many[i] = "k=v"
	}
	if got, want := len(txtRecords(id, many, logger)), 2+maxExtraTXT; got != want {
		t.Errorf("len(txtRecords(20 extras)) = %d, want %d", got, want)
	}
}

func TestLibLoggerIsDebug(t *testing.T) {
	var buf bytes.Buffer
	l := libLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("[ERR] mdns: Failed to unpack packet: %s", strings.Repeat("x", 1000))
	out := buf.String()
	if !strings.Contains(out, "level=DEBUG") || strings.Contains(out, "level=ERROR") {
		t.Errorf("library log line = %q, want debug level", out)
	}
	if len(out) > 500 {
		t.Errorf("library log line is %d bytes, want truncated", len(out))
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	b := NewBook(Options{})
	tests := []struct {
		name string
		o    MDNSOptions
		want error
	}{
		{"zero self", MDNSOptions{Port: 1}, ErrBadOptions},
		{"no port", MDNSOptions{Self: testID(1)}, ErrBadOptions},
		{"unknown iface", MDNSOptions{Self: testID(1), Port: 1, Ifaces: []string{"no-such-iface0"}}, ErrNoInterface},
		// lo exists but is loopback: never used, so nothing is sent.
		{"loopback iface", MDNSOptions{Self: testID(1), Port: 1, Ifaces: []string{"lo"}}, ErrNoInterface},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := NewMDNS(b, tc.o).Run(t.Context())
			if !errors.Is(err, tc.want) {
				t.Errorf("Run(%s) = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if _, err := BrowseOnce(t.Context(), []string{"lo"}, 0, nil); !errors.Is(err, ErrNoInterface) {
		t.Errorf("BrowseOnce(lo) = %v, want %v", err, ErrNoInterface)
	}
}

// TestParseEntryControlChars: a name from the network keeps no control
// characters (escape sequences would reach the user's terminal through
// pairing's messages) and no invalid UTF-8.
func TestParseEntryControlChars(t *testing.T) {
	id := testID(1)
	e := &mdns.ServiceEntry{
		Name:       `\027]0;owned\007\027[2J-` + id.Short() + "." + serviceFQDN,
		AddrV4:     net.IPv4(198, 18, 0, 1),
		Port:       22000,
		InfoFields: []string{"id=" + id.String(), "pair=1"},
	}
	f, err := parseEntry(e, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "]0;owned[2J" {
		t.Errorf("Found.Name = %q, want the printable rest", f.Name)
	}
}
