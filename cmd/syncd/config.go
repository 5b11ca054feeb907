package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// Defaults written by init and assumed for keys missing from config.toml.
const (
	// defaultListen accepts peer connections on every address, IPv4 and
	// IPv6, on syncd's port. Tests always pass --listen 127.0.0.1:PORT.
	defaultListen    = ":22027"
	defaultDiscovery = "mdns"
	defaultTrashDays = 30
)

// Bounds on config.toml: it is edited by hand, so it is untrusted input.
const (
	maxConfigSize = 1 << 20
	maxPeers      = 1024
	maxFolders    = 1024
	maxAddrs      = 32
	maxIfaces     = 32
	maxNameLen    = 64
	maxTrashDays  = 36500
)

// Config is the content of config.toml, validated. run.go reads it with
// loadConfig; init, peer and folder write it with save (via updateConfig).
type Config struct {
	Name      string   // name shown to peers; "" means the hostname
	Listen    string   // HOST:PORT for peer connections
	Discovery string   // "mdns" or "off"
	Ifaces    []string // interfaces for mDNS; empty means all multicast-capable ones

	MaxSendRate string // as written: "0" (unlimited), "100MB", "2MiB", ...
	MaxRecvRate string
	SendRate    int64 // MaxSendRate in bytes per second; 0 = unlimited
	RecvRate    int64 // MaxRecvRate in bytes per second; 0 = unlimited

	TrashDays int // days deleted/overwritten files stay in .syncd/trash/ (1-36500)

	Peers   []PeerConfig
	Folders []FolderConfig
}

// PeerConfig is one [[peer]]: a pinned device.
type PeerConfig struct {
	ID    deviceid.ID
	Name  string
	Addrs []string // static HOST:PORT addresses, tried besides discovery
}

// FolderConfig is one [[folder]]: a directory shared with some peers.
type FolderConfig struct {
	ID    string        // 1-64 of [A-Za-z0-9._-], not only dots
	Path  string        // absolute and clean
	Peers []deviceid.ID // each one is in Config.Peers
}

// defaultConfig is the config init writes.
func defaultConfig(name string) *Config {
	return &Config{
		Name:        name,
		Listen:      defaultListen,
		Discovery:   defaultDiscovery,
		MaxSendRate: "0",
		MaxRecvRate: "0",
		TrashDays:   defaultTrashDays,
	}
}

// peer returns the pinned peer with the given ID.
func (c *Config) peer(id deviceid.ID) (*PeerConfig, bool) {
	for i := range c.Peers {
		if c.Peers[i].ID == id {
			return &c.Peers[i], true
		}
	}
	return nil, false
}

// folder returns the folder with the given ID.
func (c *Config) folder(id string) (*FolderConfig, bool) {
	for i := range c.Folders {
		if c.Folders[i].ID == id {
			return &c.Folders[i], true
		}
	}
	return nil, false
}

// configError is a problem in config.toml at a line (0 when unknown).
type configError struct {
	File string
	Line int
	Msg  string
}

func (e *configError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func (e *configError) Hint() string { return "edit " + e.File + " to fix it" }

// errNoConfig is wrapped when config.toml does not exist.
var errNoConfig = errors.New("no config")

// loadConfig reads and validates path. A missing file wraps errNoConfig;
// invalid content is a *configError naming the line.
func loadConfig(path string) (*Config, error) {
	// O_NONBLOCK: a FIFO in its place must not hang the daemon (a reload
	// would hold every later one) or a command; it is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, withHint(fmt.Errorf("%w at %s", errNoConfig, path), "run 'syncd init' first")
	}
	if err != nil {
		return nil, withHint(fmt.Errorf("read config: %w", err), "check the permissions of "+path)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, &configError{File: path, Msg: fmt.Sprintf("not a file (%s); move it away and put the config file there (syncd init writes a new one if none is there)", kindOf(fi.Mode()))}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, withHint(fmt.Errorf("read config: %w", err), "check "+path)
	}
	if len(data) > maxConfigSize {
		return nil, &configError{File: path, Msg: fmt.Sprintf("larger than %d bytes", maxConfigSize)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// syncd never writes one: a save cut short (a crash, a full
		// disk). Taken as the defaults, it would unpin every peer and
		// forget every folder.
		return nil, &configError{File: path, Msg: "empty; restore it from a backup, or move it away and run 'syncd init' for a new one"}
	}
	return parseConfig(path, data)
}

// kindOf names a file type for messages.
func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// firstInvalidUTF8Line is the 1-based line of the first byte that is not
// valid UTF-8 in data, or 0 if all of it is.
func firstInvalidUTF8Line(data []byte) int {
	line := 1
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if r == utf8.RuneError && n == 1 {
			return line
		}
		if r == '\n' {
			line++
		}
		data = data[n:]
	}
	return 0
}

// parseConfig decodes and validates the content of a config file; file
// names it in errors.
func parseConfig(file string, data []byte) (*Config, error) {
	if line := firstInvalidUTF8Line(data); line > 0 {
		return nil, &configError{File: file, Line: line, Msg: "not valid UTF-8 (save the file as UTF-8)"}
	}
	if line := manyDots(string(data)); line > 0 {
		return nil, &configError{File: file, Line: line, Msg: fmt.Sprintf("more than %d dots outside quotes on one line (a key of that many parts)", maxLineDots)}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &configError{File: file, Line: pe.Position.Line, Msg: "TOML syntax: " + pe.Message}
		}
		return nil, &configError{File: file, Msg: "TOML: " + err.Error()}
	}
	d := &configDecoder{file: file, lines: indexLines(string(data))}
	c := d.decode(raw)
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

// maxLineDots bounds the dots outside quoted strings on one line of the
// config: the TOML decoder's time and memory grow with the square of a
// dotted key's parts (BurntSushi/toml issue #496: a 40 KB key took 5 GB),
// and no key of syncd's config has more than two.
const maxLineDots = 64

// manyDots returns the first line (from 1) with more than maxLineDots dots
// outside quoted strings and comments, or 0. Multi-line strings are
// skipped.
func manyDots(text string) int {
	var multi string // the delimiter of the multi-line string open, or ""
	for i, line := range strings.Split(text, "\n") {
		dots := 0
		for j := 0; j < len(line); j++ {
			if multi != "" {
				if strings.HasPrefix(line[j:], multi) {
					j += len(multi) - 1
					multi = ""
				}
				continue
			}
			switch c := line[j]; c {
			case '#':
				j = len(line)
			case '.':
				dots++
			case '"', '\'':
				if q := strings.Repeat(string(c), 3); strings.HasPrefix(line[j:], q) {
					multi = q
					j += 2
					continue
				}
				for j++; j < len(line) && line[j] != c; j++ {
					if c == '"' && line[j] == '\\' {
						j++
					}
				}
			}
		}
		if dots > maxLineDots {
			return i + 1
		}
	}
	return 0
}

// configDecoder turns the generic TOML map into a Config, keeping the first
// error with its line.
type configDecoder struct {
	file  string
	lines lineIndex
	err   *configError // the first problem, by line
}

// fail records an error at key (a path such as "peer[2].id").
func (d *configDecoder) fail(key, format string, args ...any) {
	e := &configError{File: d.file, Line: d.lines.line(key), Msg: fmt.Sprintf(format, args...)}
	// Keys are visited in sorted order; report the problem nearest the top.
	if d.err == nil || (e.Line > 0 && (d.err.Line == 0 || e.Line < d.err.Line)) {
		d.err = e
	}
}

func (d *configDecoder) decode(raw map[string]any) *Config {
	c := defaultConfig("")
	for _, k := range sortedKeys(raw) {
		v := raw[k]
		switch k {
		case "name":
			c.Name = d.str(k, v)
			if err := validateName(c.Name); err != nil {
				d.fail(k, "name %q: %v", c.Name, err)
			}
		case "listen":
			c.Listen = d.str(k, v)
			if err := validateAddr(c.Listen); err != nil {
				d.fail(k, "listen %q: %v", c.Listen, err)
			}
		case "discovery":
			c.Discovery = d.str(k, v)
			if c.Discovery != "mdns" && c.Discovery != "off" {
				d.fail(k, "discovery %q: want \"mdns\" or \"off\"", c.Discovery)
			}
		case "ifaces":
			c.Ifaces = d.strs(k, v, maxIfaces)
			for _, iface := range c.Ifaces {
				if err := validateIface(iface); err != nil {
					d.fail(k, "ifaces %q: %v", iface, err)
				}
			}
		case "max_send_rate":
			c.MaxSendRate, c.SendRate = d.rate(k, v)
		case "max_recv_rate":
			c.MaxRecvRate, c.RecvRate = d.rate(k, v)
		case "trash_days":
			n, ok := v.(int64)
			if !ok {
				d.fail(k, "trash_days: want an integer, got %s", tomlType(v))
			} else if n < 1 || n > maxTrashDays {
				d.fail(k, "trash_days %d: want 1 to %d", n, maxTrashDays)
			}
			c.TrashDays = int(n)
		case "peer":
			c.Peers = d.peers(v)
		case "folder":
			c.Folders = d.folders(v)
		default:
			d.fail(k, "unknown key %q", k)
		}
	}
	if d.err == nil {
		d.crossCheck(c)
	}
	return c
}

// crossCheck validates what spans entries: duplicates, nesting, references.
func (d *configDecoder) crossCheck(c *Config) {
	seenPeer := map[deviceid.ID]bool{}
	for i, p := range c.Peers {
		if seenPeer[p.ID] {
			d.fail(fmt.Sprintf("peer[%d].id", i), "peer id %s: listed twice", p.ID)
		}
		seenPeer[p.ID] = true
	}
	seenFolder := map[string]bool{}
	for i, f := range c.Folders {
		if seenFolder[f.ID] {
			d.fail(fmt.Sprintf("folder[%d].id", i), "folder id %q: listed twice", f.ID)
		}
		seenFolder[f.ID] = true
		for j, g := range c.Folders[:i] {
			if rel := nestedPaths(f.Path, g.Path); rel != "" {
				d.fail(fmt.Sprintf("folder[%d].path", i), "folder %q path %s %s folder %q (%s)", f.ID, f.Path, rel, g.ID, c.Folders[j].Path)
			}
		}
		for _, id := range f.Peers {
			if !seenPeer[id] {
				d.fail(fmt.Sprintf("folder[%d].peers", i), "folder %q: peer %s is not a [[peer]]; pin it with 'syncd peer add' first", f.ID, id)
			}
		}
	}
}

func (d *configDecoder) peers(v any) []PeerConfig {
	tables, ok := asTables(v)
	if !ok {
		d.fail("peer", "peer: want [[peer]] tables, got %s", tomlType(v))
		return nil
	}
	if len(tables) > maxPeers {
		d.fail(fmt.Sprintf("peer[%d]", maxPeers), "more than %d peers", maxPeers)
		return nil
	}
	out := make([]PeerConfig, 0, len(tables))
	for i, t := range tables {
		at := func(k string) string { return fmt.Sprintf("peer[%d].%s", i, k) }
		var p PeerConfig
		if _, ok := t["id"]; !ok {
			d.fail(fmt.Sprintf("peer[%d]", i), "peer: no id")
		}
		for _, k := range sortedKeys(t) {
			v := t[k]
			switch k {
			case "id":
				s := d.str(at(k), v)
				id, err := deviceid.Parse(s)
				if err != nil {
					d.fail(at(k), "peer id %q: %v", s, err)
				}
				p.ID = id
			case "name":
				p.Name = d.str(at(k), v)
				if err := validateName(p.Name); err != nil {
					d.fail(at(k), "peer name %q: %v", p.Name, err)
				}
			case "addrs":
				p.Addrs = d.strs(at(k), v, maxAddrs)
				for _, a := range p.Addrs {
					if err := validateAddr(a); err != nil {
						d.fail(at(k), "peer address %q: %v", a, err)
					}
				}
			default:
				d.fail(at(k), "peer: unknown key %q", k)
			}
		}
		out = append(out, p)
	}
	return out
}

func (d *configDecoder) folders(v any) []FolderConfig {
	tables, ok := asTables(v)
	if !ok {
		d.fail("folder", "folder: want [[folder]] tables, got %s", tomlType(v))
		return nil
	}
	if len(tables) > maxFolders {
		d.fail(fmt.Sprintf("folder[%d]", maxFolders), "more than %d folders", maxFolders)
		return nil
	}
	out := make([]FolderConfig, 0, len(tables))
	for i, t := range tables {
		at := func(k string) string { return fmt.Sprintf("folder[%d].%s", i, k) }
		var f FolderConfig
		for _, k := range []string{"id", "path"} {
			if _, ok := t[k]; !ok {
				d.fail(fmt.Sprintf("folder[%d]", i), "folder: no %s", k)
			}
		}
		for _, k := range sortedKeys(t) {
			v := t[k]
			switch k {
			case "id":
				f.ID = d.str(at(k), v)
				if err := validateFolderID(f.ID); err != nil {
					d.fail(at(k), "folder id %q: %v", f.ID, err)
				}
			case "path":
				f.Path = d.str(at(k), v)
				if !filepath.IsAbs(f.Path) {
					d.fail(at(k), "folder path %q: not an absolute path", f.Path)
				}
				f.Path = filepath.Clean(f.Path)
			case "peers":
				for _, s := range d.strs(at(k), v, maxPeers) {
					id, err := deviceid.Parse(s)
					if err != nil {
						d.fail(at(k), "folder peer %q: %v", s, err)
					} else if slices.Contains(f.Peers, id) {
						d.fail(at(k), "folder peer %s: listed twice", id)
					}
					f.Peers = append(f.Peers, id)
				}
			default:
				d.fail(at(k), "folder: unknown key %q", k)
			}
		}
		out = append(out, f)
	}
	return out
}

// asTables accepts an array of tables written as [[x]] sections or inline
// (x = [{...}, {...}]).
func asTables(v any) ([]map[string]any, bool) {
	switch v := v.(type) {
	case []map[string]any:
		return v, true
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, false
			}
			out = append(out, m)
		}
		return out, true
	}
	return nil, false
}

func (d *configDecoder) str(key string, v any) string {
	s, ok := v.(string)
	if !ok {
		d.fail(key, "%s: want a string, got %s", lastKey(key), tomlType(v))
	}
	return s
}

func (d *configDecoder) strs(key string, v any, limit int) []string {
	arr, ok := v.([]any)
	if !ok {
		d.fail(key, "%s: want an array of strings, got %s", lastKey(key), tomlType(v))
		return nil
	}
	if len(arr) > limit {
		d.fail(key, "%s: more than %d entries", lastKey(key), limit)
		return nil
	}
	var out []string // nil when empty, like a missing key
	for _, e := range arr {
		out = append(out, d.str(key, e))
	}
	return out
}

// rate reads a rate written as a string ("100MB") or an integer (bytes/s).
func (d *configDecoder) rate(key string, v any) (string, int64) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case int64:
		s = strconv.FormatInt(v, 10)
	default:
		d.fail(key, "%s: want a string such as \"10MB\", got %s", key, tomlType(v))
		return "0", 0
	}
	n, err := parseRate(s)
	if err != nil {
		d.fail(key, "%s %q: %v", key, s, err)
	}
	return s, n
}

// lastKey returns the key name of a path such as "peer[2].id".
func lastKey(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date"
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validateName checks a device or peer name: at most 64 bytes of printable
// UTF-8.
func validateName(s string) error {
	if len(s) > maxNameLen {
		return fmt.Errorf("%d bytes, at most %d", len(s), maxNameLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("contains the unprintable character %U", r)
		}
	}
	return nil
}

// validateAddr checks HOST:PORT with a port from 1 to 65535.
func validateAddr(s string) error {
	if len(s) > 300 {
		return errors.New("too long")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want HOST:PORT: %v", strings.TrimPrefix(err.Error(), "address "+s+": "))
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("host %q is not a host name or IP address", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return nil
}

func validateIface(s string) error {
	if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t\n") {
		return errors.New("not an interface name")
	}
	return nil
}

var folderIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// validateFolderID checks 1-64 characters of [A-Za-z0-9._-], not only dots
// (the ID appears in URL paths, where "." and ".." are special).
func validateFolderID(s string) error {
	if !folderIDRe.MatchString(s) {
		return errors.New("want 1 to 64 letters, digits, '.', '_' or '-'")
	}
	if strings.Trim(s, ".") == "" {
		return errors.New("must not be only dots")
	}
	return nil
}

// nestedPaths describes how clean absolute paths a and b overlap: "is" (the
// same), "is inside" (a within b), "contains" (b within a), or "".
func nestedPaths(a, b string) string {
	switch {
	case a == b:
		return "is"
	case within(a, b):
		return "is inside"
	case within(b, a):
		return "contains"
	}
	return ""
}

// within reports whether path is strictly inside dir (both clean, absolute).
func within(path, dir string) bool {
	if dir == string(filepath.Separator) {
		return path != dir
	}
	return strings.HasPrefix(path, dir+string(filepath.Separator))
}
