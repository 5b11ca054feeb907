package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// Valid device IDs for tests (deviceid.FromPublicKeyInfo of fixed strings).
const (
	idA = "JM4XU2P-XGM5SIF-WQJRT4Q-LB3V3AH-K6PHLTL-MTT5336-U3UBQNL-SS2MRAP"
	idB = "DYRZSES-IRSFPJK-TBEFLAM-HAO3V5Z-ZNGOXPV-D7ZJAD5-XUS4GTD-TQOMQQV"
	idC = "ZN5AITA-ZU4BHLH-KK563EF-UMBDKHL-WREEWGP-TGR6EY4-EKFCSR6-5GEFRA3"
	// idTypo is idB with one character changed.
	idTypo = "DYRZSES-IRSFPJK-TBEFLAM-HAO3V5Z-ZNGOXPV-D7ZJAD5-XUS4GTD-TQOMQQW"
)

func mustID(t testing.TB, s string) deviceid.ID {
	t.Helper()
	id, err := deviceid.Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q) = %v", s, err)
	}
	return id
}

const goodConfig = `# a comment
name = "laptop"
listen = "127.0.0.1:22027"
discovery = "off"
ifaces = ["eth0"]
max_send_rate = "10MB"
max_recv_rate = 1000
trash_days = 7

[[peer]]
id = "` + idA + `"
name = "desktop"
addrs = ["192.168.1.20:22027", "[::1]:22027"]

[[peer]]
id = "` + idB + `"

[[folder]]
id = "photos"
path = "/home/me/Photos"
peers = ["` + idA + `", "` + idB + `"]

[[folder]]
id = "docs"
path = "/home/me/Documents/"
`

func TestParseConfigGood(t *testing.T) {
	c, err := parseConfig("config.toml", []byte(goodConfig))
	if err != nil {
		t.Fatalf("parseConfig(good) = %v", err)
	}
	a, b := mustID(t, idA), mustID(t, idB)
	want := &Config{
		Name: "laptop", Listen: "127.0.0.1:22027", Discovery: "off", Ifaces: []string{"eth0"},
		MaxSendRate: "10MB", SendRate: 10_000_000, MaxRecvRate: "1000", RecvRate: 1000,
		TrashDays: 7,
		Peers: []PeerConfig{
			{ID: a, Name: "desktop", Addrs: []string{"192.168.1.20:22027", "[::1]:22027"}},
			{ID: b},
		},
		Folders: []FolderConfig{
			{ID: "photos", Path: "/home/me/Photos", Peers: []deviceid.ID{a, b}},
			{ID: "docs", Path: "/home/me/Documents"},
		},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("parseConfig(good) mismatch (-want +got):\n%s", diff)
	}
}

func TestParseConfigInlineTables(t *testing.T) {
	in := "peer = [{id = \"" + idA + "\"}]\nfolder = [{id = \"a\", path = \"/a\", peers = [\"" + idA + "\"]}]\n"
	c, err := parseConfig("config.toml", []byte(in))
	if err != nil {
		t.Fatalf("parseConfig(inline) = %v", err)
	}
	if len(c.Peers) != 1 || len(c.Folders) != 1 || c.Folders[0].Peers[0] != c.Peers[0].ID {
		t.Errorf("parseConfig(inline) = %+v, want one peer and one folder shared with it", c)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig("config.toml", []byte("# empty\n"))
	if err != nil {
		t.Fatalf("parseConfig(empty) = %v", err)
	}
	if diff := cmp.Diff(defaultConfig(""), c); diff != "" {
		t.Errorf("parseConfig(empty) mismatch (-want +got):\n%s", diff)
	}
}

func TestParseConfigErrors(t *testing.T) {
	peer := func(id string) string { return "[[peer]]\nid = \"" + id + "\"\n" }
	cases := []struct {
		name, in string
		line     int
		msg      string // substring of the message
	}{
		{"syntax", "name = \"x\"\nlisten = \n", 2, "TOML syntax"},
		{"unterminated", "name = \"x\n", 1, "TOML syntax"},
		{"unknown key", "name = \"x\"\n\nnmae = \"y\"\n", 3, `unknown key "nmae"`},
		{"wrong type", "trash_days = \"30\"\n", 1, "trash_days: want an integer, got a string"},
		{"trash range", "\ntrash_days = 0\n", 2, "trash_days 0: want 1 to 36500"},
		{"listen no port", "listen = \"localhost\"\n", 1, `listen "localhost": want HOST:PORT`},
		{"listen port 0", "listen = \"127.0.0.1:0\"\n", 1, "want a number from 1 to 65535"},
		{"listen port big", "listen = \"127.0.0.1:70000\"\n", 1, "want a number from 1 to 65535"},
		{"discovery", "discovery = \"avahi\"\n", 1, `discovery "avahi": want "mdns" or "off"`},
		{"iface", "ifaces = [\"a/b\"]\n", 1, `ifaces "a/b"`},
		{"ifaces type", "ifaces = \"eth0\"\n", 1, "ifaces: want an array of strings, got a string"},
		{"rate unit", "\n\nmax_send_rate = \"10 parsecs\"\n", 3, `max_send_rate "10 parsecs": unknown unit`},
		{"rate negative", "max_recv_rate = -5\n", 1, "max_recv_rate"},
		{"rate float type", "max_recv_rate = 1.5\n", 1, "want a string"},
		{"name control", "name = \"a\\u0007b\"\n", 1, "unprintable"},
		{"name long", "name = \"" + strings.Repeat("x", 65) + "\"\n", 1, "65 bytes, at most 64"},
		{"peer bad id third", peer(idA) + peer(idB) + "\n[[peer]]\nname = \"x\"\nid = \"" + idTypo + "\"\n", 8,
			`peer id "` + idTypo + `": invalid device ID: check character of group 4`},
		{"peer no id", peer(idA) + "[[peer]]\nname = \"x\"\n", 3, "peer: no id"},
		{"peer dup", peer(idA) + peer(idB) + peer(idA), 6, "listed twice"},
		{"peer addr", peer(idA) + "addrs = [\"1.2.3.4\"]\n", 3, `peer address "1.2.3.4"`},
		{"peer unknown key", peer(idA) + "adrs = []\n", 3, `peer: unknown key "adrs"`},
		{"peer not table", "peer = 3\n", 1, "want [[peer]] tables"},
		{"peer array of strings", "\npeer = [\"x\"]\n", 2, "want [[peer]] tables, got an array"},
		{"folder bad id", "[[folder]]\nid = \"a b\"\npath = \"/x\"\n", 2, `folder id "a b"`},
		{"folder dots", "[[folder]]\nid = \"..\"\npath = \"/x\"\n", 2, "only dots"},
		{"folder relative", "[[folder]]\nid = \"a\"\npath = \"x/y\"\n", 3, "not an absolute path"},
		{"folder no path", "[[folder]]\nid = \"a\"\n", 1, "folder: no path"},
		{"folder nested", "[[folder]]\nid = \"a\"\npath = \"/x\"\n[[folder]]\nid = \"b\"\npath = \"/x/y\"\n", 6, `folder "b" path /x/y is inside folder "a"`},
		{"folder contains", "[[folder]]\nid = \"a\"\npath = \"/x/y\"\n[[folder]]\nid = \"b\"\npath = \"/x\"\n", 6, "contains"},
		{"folder same", "[[folder]]\nid = \"a\"\npath = \"/x\"\n[[folder]]\nid = \"b\"\npath = \"/x/\"\n", 6, "/x is folder"},
		{"folder dup id", "[[folder]]\nid = \"a\"\npath = \"/x\"\n[[folder]]\nid = \"a\"\npath = \"/y\"\n", 5, "listed twice"},
		{"folder unknown peer", peer(idA) + "[[folder]]\nid = \"a\"\npath = \"/x\"\npeers = [\"" + idB + "\"]\n", 6, "is not a [[peer]]"},
		{"folder bad peer", "[[folder]]\nid = \"a\"\npath = \"/x\"\npeers = [\"nope\"]\n", 4, `folder peer "nope"`},
		{"first error by line", "trash_days = 0\nname = 5\n", 1, "trash_days"},
		{"unknown array table", "name = \"x\"\n\n[[folders]]\nid = \"a\"\n", 3, `unknown key "folders"`},
		{"unknown array table second", peer(idA) + "[[peers]]\nid = \"a\"\n[[peers]]\n", 3, `unknown key "peers"`},
		{"not utf8", "name = \"\xff\"\n", 1, "not valid UTF-8"},
		{"not utf8 third line", "# caf\u00e9\n\nname = \"caf\xe9\"\n", 3, "not valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("config.toml", []byte(tc.in))
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("parseConfig(%q) = %v, want a *configError", tc.in, err)
			}
			if ce.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("parseConfig(%q) = line %d %q, want line %d containing %q", tc.in, ce.Line, ce.Msg, tc.line, tc.msg)
			}
			if tc.line > 0 && !strings.HasPrefix(err.Error(), "config.toml:") {
				t.Errorf("parseConfig(%q) error = %q, want prefix config.toml:LINE:", tc.in, err)
			}
		})
	}
}

func TestSaveRoundTrip(t *testing.T) {
	c, err := parseConfig("config.toml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	c.Name = "we\"ird \\ name \u00e9"
	c.Folders[1].Path = "/home/me/with \"quotes\" and \\ and \x7f\t\n"
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := c.save(path); err != nil {
		t.Fatalf("save = %v", err)
	}
	got, err := loadConfig(path)
	if err != nil {
		t.Fatalf("loadConfig(saved) = %v", err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("loadConfig(save(c)) mismatch (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "# Bandwidth limits") {
		t.Errorf("saved config lost the template comments:\n%s", data)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("Stat(config).Mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestSaveRefusesInvalid(t *testing.T) {
	c := defaultConfig("x")
	c.Listen = "nope"
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := c.save(path); err == nil {
		t.Fatalf("save(invalid) = nil, want an error")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat after failed save = %v, want not exist", err)
	}
}

func TestLoadConfigMissing(t *testing.T) {
	_, err := loadConfig(filepath.Join(t.TempDir(), "config.toml"))
	if !errors.Is(err, errNoConfig) {
		t.Errorf("loadConfig(missing) = %v, want errNoConfig", err)
	}
}

func TestLoadConfigTooBig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("# "+strings.Repeat("x", maxConfigSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ce *configError
	if _, err := loadConfig(path); !errors.As(err, &ce) {
		t.Errorf("loadConfig(huge) = %v, want a *configError", err)
	}
}

func TestUpdateConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := defaultConfig("a").save(path); err != nil {
		t.Fatal(err)
	}
	if err := updateConfig(path, func(c *Config) error { c.TrashDays = 9; return nil }); err != nil {
		t.Fatalf("updateConfig = %v", err)
	}
	boom := errors.New("boom")
	if err := updateConfig(path, func(c *Config) error { c.TrashDays = 1; return boom }); !errors.Is(err, boom) {
		t.Fatalf("updateConfig(failing change) = %v, want boom", err)
	}
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.TrashDays != 9 {
		t.Errorf("TrashDays = %d, want 9 (the failed change must not be saved)", c.TrashDays)
	}
}

func TestValidateFolderID(t *testing.T) {
	cases := map[string]bool{
		"photos": true, "a.b_c-D9": true, strings.Repeat("x", 64): true, ".hidden": true,
		"": false, ".": false, "..": false, "a/b": false, "a b": false, strings.Repeat("x", 65): false, "é": false,
	}
	for in, ok := range cases {
		if err := validateFolderID(in); (err == nil) != ok {
			t.Errorf("validateFolderID(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestValidateAddr(t *testing.T) {
	cases := map[string]bool{
		"127.0.0.1:1": true, "host:65535": true, "[::1]:22027": true, ":22027": true,
		"host": false, "host:0": false, "host:65536": false, "host:x": false, "[::1]": false, "a b:1": false,
	}
	for in, ok := range cases {
		if err := validateAddr(in); (err == nil) != ok {
			t.Errorf("validateAddr(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestIndexLines(t *testing.T) {
	text := "a = 1\n[[peer]]\nid = 2\n  name = 3\n[[peer]]\nid = 4\n[tbl]\nk = '''\nx = 1\n'''\nz = 1\n"
	idx := indexLines(text)
	cases := map[string]int{
		"a": 1, "peer[0]": 2, "peer[0].id": 3, "peer[0].name": 4, "peer[1]": 5, "peer[1].id": 6,
		"peer[1].name": 5, "tbl": 7, "tbl.k": 8, "tbl.x": 7, "tbl.z": 11, "nope": 0,
	}
	for key, want := range cases {
		if got := idx.line(key); got != want {
			t.Errorf("line(%q) = %d, want %d", key, got, want)
		}
	}
}

// FuzzParseConfig: any input gives a config or an error, never a panic, and
// a config that parses survives save and load unchanged.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("name = \"x\"\n[[peer]]\nid = \"" + idA + "\"\n"))
	f.Add([]byte("[[folder]]\nid = \"a\"\npath = \"/x\"\n"))
	f.Add([]byte("trash_days = 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig("config.toml", data)
		if err != nil {
			return
		}
		out, err := c.render()
		if err != nil {
			t.Fatalf("render = %v", err)
		}
		c2, err := parseConfig("config.toml", out)
		if err != nil {
			t.Fatalf("parseConfig(render(c)) = %v\n%s", err, out)
		}
		if diff := cmp.Diff(c, c2); diff != "" {
			t.Fatalf("round trip mismatch (-want +got):\n%s", diff)
		}
	})
}
