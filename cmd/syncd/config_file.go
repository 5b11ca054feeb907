package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/google/renameio/v2"
)

// lineIndex maps key paths ("name", "peer[2]", "peer[2].id") to the line
// where they are written, for line-precise errors. BurntSushi/toml keeps
// positions only for its own errors, and one position per key name (not per
// array-table entry), so the file is scanned here. The scan understands
// table headers, bare keys and multi-line strings; a key it cannot place
// falls back to its table's header line.
type lineIndex map[string]int

var (
	arrayHeaderRe = regexp.MustCompile(`^\[\[\s*([A-Za-z0-9_-]+)\s*\]\]`)
	tableHeaderRe = regexp.MustCompile(`^\[\s*([A-Za-z0-9_-]+)\s*\]`)
	bareKeyRe     = regexp.MustCompile(`^([A-Za-z0-9_-]+)\s*=`)
)

func indexLines(text string) lineIndex {
	idx := lineIndex{}
	counts := map[string]int{}
	prefix := ""
	inString := "" // the delimiter of the open multi-line string, if any
	n := 0
	for line := range strings.Lines(text) {
		n++
		t := strings.TrimSpace(line)
		if inString != "" {
			if strings.Count(t, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		if m := arrayHeaderRe.FindStringSubmatch(t); m != nil {
			prefix = fmt.Sprintf("%s[%d]", m[1], counts[m[1]])
			counts[m[1]]++
			idx.set(prefix, n)
			idx.set(m[1], n) // the array itself, at its first table (an unknown one is named so)
			continue
		}
		if m := tableHeaderRe.FindStringSubmatch(t); m != nil {
			prefix = m[1]
			idx.set(prefix, n)
			continue
		}
		if m := bareKeyRe.FindStringSubmatch(t); m != nil {
			key := m[1]
			if prefix != "" {
				key = prefix + "." + key
			}
			idx.set(key, n)
		}
		for _, delim := range []string{`"""`, `'''`} {
			if strings.Count(t, delim)%2 == 1 {
				inString = delim
				break
			}
		}
	}
	return idx
}

func (idx lineIndex) set(key string, line int) {
	if _, ok := idx[key]; !ok {
		idx[key] = line
	}
}

// line returns the line of key, else of its nearest enclosing table, else 0.
func (idx lineIndex) line(key string) int {
	for {
		if n, ok := idx[key]; ok {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
}

// configTemplate renders config.toml. The comments are part of the template
// so they survive every rewrite; comments a user adds by hand do not (the
// header says so).
var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{
	"q":  tomlString,
	"qs": tomlStrings,
}).Parse(`# syncd configuration: https://github.com/syncd-project/syncd
#
# Edit it by hand or with 'syncd peer ...' and 'syncd folder ...'. A running
# daemon rereads it on SIGHUP and after those commands. syncd rewrites this
# file from a template: keep values here, notes elsewhere (your own comments
# are not kept).

# The name other devices show for this device ("" = the host name).
name = {{q .Name}}

# TCP address for connections from peers, HOST:PORT.
# ":22027" accepts on every address, IPv4 and IPv6.
listen = {{q .Listen}}

# How peers on the local network are found: "mdns" (multicast DNS) or "off"
# (only the static addrs of each [[peer]]).
discovery = {{q .Discovery}}

# Network interfaces used for mDNS, e.g. ["wlan0"]; [] = every interface that
# supports multicast.
ifaces = {{qs .Ifaces}}

# Bandwidth limits for traffic with peers, per second, all peers together.
# "0" = unlimited; else a number with a unit: B, KB, MB, GB (powers of 1000)
# or KiB, MiB, GiB (powers of 1024), e.g. "10MB".
max_send_rate = {{q .MaxSendRate}}
max_recv_rate = {{q .MaxRecvRate}}

# Days that deleted or overwritten files stay in each folder's .syncd/trash/
# (1 to 36500).
trash_days = {{.TrashDays}}

# Pinned peers: the only devices allowed to connect. Add one with
# 'syncd peer add ID' or 'syncd pair'. Example:
#
#   [[peer]]
#   id = "JM4XU2P-XGM5SIF-WQJRT4Q-LB3V3AH-K6PHLTL-MTT5336-U3UBQNL-SS2MRAP"
#   name = "desktop"
#   addrs = ["192.168.1.20:22027"]   # optional static addresses
{{range .Peers}}
[[peer]]
id = {{q .ID.String}}
name = {{q .Name}}
addrs = {{qs .Addrs}}
{{end}}
# Shared folders. Add one with 'syncd folder add FOLDER-ID PATH --peer ID'.
# Example:
#
#   [[folder]]
#   id = "photos"
#   path = "/home/me/Photos"
#   peers = ["JM4XU2P-XGM5SIF-WQJRT4Q-LB3V3AH-K6PHLTL-MTT5336-U3UBQNL-SS2MRAP"]
{{range .Folders}}
[[folder]]
id = {{q .ID}}
path = {{q .Path}}
peers = [{{range $i, $p := .Peers}}{{if $i}}, {{end}}{{q $p.String}}{{end}}]
{{end}}`))

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// render returns the config file content for c.
func (c *Config) render() ([]byte, error) {
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return b.Bytes(), nil
}

// save writes c to path atomically (temp file, fsync, rename), mode 0600.
// It refuses to write a config that loadConfig would reject.
func (c *Config) save(path string) error {
	data, err := c.render()
	if err != nil {
		return err
	}
	if len(data) > maxConfigSize {
		return withHint(fmt.Errorf("the config would be %d bytes, more than the %d syncd reads", len(data), maxConfigSize),
			"remove peers or folders first, or share fewer folders with each peer")
	}
	if _, err := parseConfig(path, data); err != nil {
		return fmt.Errorf("refusing to save an invalid config: %w", err)
	}
	// A config.toml that is a symlink (into a dotfiles repository, say)
	// stays one: its target is replaced, not the link.
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	if err := renameio.WriteFile(path, data, 0o600); err != nil {
		return withHint(fmt.Errorf("write config: %w", err), "check the permissions of "+filepath.Dir(path))
	}
	return nil
}

// updateConfig loads the config at path, applies change and saves the
// result, holding an exclusive lock on the config's directory so that two
// commands editing the config at once do not lose either change. The daemon
// (run.go, pairing) should edit the config through it too.
func updateConfig(path string, change func(*Config) error) error {
	unlock, err := lockDir(filepath.Dir(path), 10*time.Second)
	if err != nil {
		return err
	}
	defer unlock()
	c, err := loadConfig(path)
	if err != nil {
		return err
	}
	if err := change(c); err != nil {
		return err
	}
	return c.save(path)
}

// lockDir takes an exclusive flock on dir, retrying for up to wait.
func lockDir(dir string, wait time.Duration) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, withHint(fmt.Errorf("lock %s: %w", dir, err), "run 'syncd init' first")
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, withHint(fmt.Errorf("lock %s to edit the config: %w", dir, err),
				"another syncd command is editing the config; retry")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeNewConfig writes c to path only if no file is there yet.
func writeNewConfig(path string, c *Config) (created bool, err error) {
	if fi, err := os.Lstat(path); err == nil {
		if _, serr := os.Stat(path); fi.Mode()&os.ModeSymlink != 0 && errors.Is(serr, os.ErrNotExist) {
			target, _ := os.Readlink(path)
			return false, withHint(fmt.Errorf("%s is a symlink to %s, which does not exist", path, target),
				"remove the link, or put the config it should lead to in place, then run 'syncd init' again")
		}
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, withHint(fmt.Errorf("check config: %w", err), "check the permissions of "+path)
	}
	return true, c.save(path)
}

// quoteIfNeeded is strconv.Quote for names in messages.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"'") {
		return strconv.Quote(s)
	}
	return s
}
