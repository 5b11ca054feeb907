package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport"
)

// TestDaemonRefusesFolderAroundHome: a folder written into config.toml by
// hand at the parent of syncd's home (which holds its private keys) is
// refused when the daemon starts, in one line, exit 2 (a config mistake),
// as 'folder add' refuses it.
func TestDaemonRefusesFolderAroundHome(t *testing.T) {
	a, b := newTestDevice(t, "alpha"), newTestDevice(t, "beta")
	pinEachOther(a, b)
	parent := filepath.Dir(a.home)
	if _, _, code := a.syncd("folder", "add", "leak", parent, "--peer", b.id); code == 0 {
		t.Fatal("folder add accepted the parent of the home")
	}
	f, err := os.OpenFile(filepath.Join(a.home, "config.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[folder]]\nid = \"leak\"\npath = %q\npeers = [%q]\n", parent, b.id)
	f.Close()
	a.startNoWait()
	st := a.signalAndWait(0, 10*time.Second)
	if st == nil || st.ExitCode() != exitConfig {
		t.Fatalf("syncd run with a folder around its home: %v, want exit %d", st, exitConfig)
	}
	want := `folder "leak": ` + parent + " contains syncd's own directory"
	if log := a.log.String(); !strings.Contains(log, want) || strings.Count(log, "syncd: ") != 1 {
		t.Errorf("log = %q, want one line with %q", log, want)
	}
}

func TestCheckFolderPlaces(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	paths := Paths{Home: home, Config: filepath.Join(home, "config.toml"), Identity: filepath.Join(home, "identity"), Index: filepath.Join(home, "index")}
	photos, music := filepath.Join(dir, "photos"), filepath.Join(dir, "music")
	for _, p := range []string{home, photos, music} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(home, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(photos, "2019"), 0o700); err != nil {
		t.Fatal(err)
	}
	inPhotos := filepath.Join(dir, "into-photos")
	if err := os.Symlink(filepath.Join(photos, "2019"), inPhotos); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		paths []string
		want  string // "" for no error
	}{
		{"elsewhere", []string{photos, music}, ""},
		{"the parent of the home", []string{dir}, "contains syncd's own directory " + home},
		{"the identity", []string{paths.Identity}, "is inside syncd's own directory " + home},
		{"inside the index", []string{filepath.Join(paths.Index, "x")}, "is inside syncd's own directory"},
		{"the home through a symlink", []string{link}, "is syncd's own directory"},
		{"one inside another through a symlink", []string{photos, inPhotos}, "once symlinks are resolved) is inside folder \"f0\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{}
			for i, p := range tc.paths {
				c.Folders = append(c.Folders, FolderConfig{ID: "f" + strconv.Itoa(i), Path: p})
			}
			checkErr(t, checkFolderPlaces(c, paths), tc.want)
		})
	}
}

// TestConfigManyDots: a key of thousands of dotted parts (the TOML
// decoder's time and memory grow with their square) is refused before it is
// decoded; dots in strings, comments and multi-line strings do not count.
func TestConfigManyDots(t *testing.T) {
	long := strings.Repeat("a.", 3000) + "b = 1\n"
	for _, tc := range []struct {
		text string
		line int
	}{
		{long, 1},
		{"name = \"x\"\n[" + strings.Repeat("t.", 100) + "u]\n", 2},
		{"name = \"" + strings.Repeat(".", 100) + "\"\n", 0},
		{"# " + strings.Repeat(".", 100) + "\nname = 'x'\n", 0},
		{"name = '''\n" + strings.Repeat(".", 100) + "\n'''\n" + strings.Repeat("a.", 70) + "b = 1\n", 4},
		{"name = \"a\\\"" + strings.Repeat(".", 100) + "\"\n", 0},
	} {
		if got := manyDots(tc.text); got != tc.line {
			t.Errorf("manyDots(%.40q...) = %d, want %d", tc.text, got, tc.line)
		}
	}
	start := time.Now()
	_, err := parseConfig("config.toml", []byte(long))
	if err == nil || !strings.Contains(err.Error(), "config.toml:1: more than 64 dots") {
		t.Errorf("parseConfig of a long dotted key = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("parseConfig took %v", d) // 28 s and 5 GB before the check
	}
}

// holdsFile reports whether process pid has name open.
func holdsFile(pid int, name string) bool {
	fds := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, _ := os.ReadDir(fds)
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && l == name {
			return true
		}
	}
	return false
}

// TestSIGHUPWhileStarting: a SIGHUP (a reload) that comes while the daemon
// starts (it holds its lock, and opens its index next) does not end it.
func TestSIGHUPWhileStarting(t *testing.T) {
	a := newTestDevice(t, "alpha")
	a.startNoWait()
	pid := a.pid()
	lock := filepath.Join(a.home, "syncd.lock")
	for end := time.Now().Add(10 * time.Second); !holdsFile(pid, lock); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(end) {
			t.Fatal("the daemon never took its lock")
		}
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	a.waitReady()
	time.Sleep(200 * time.Millisecond)
	if st := a.exitState(); st != nil {
		t.Fatalf("syncd run got SIGHUP while starting and exited: %v", st)
	}
}

// TestRunBrokenConfigExitCode: a config mistake exits 2, which the systemd
// unit does not restart on.
func TestRunBrokenConfigExitCode(t *testing.T) {
	home := t.TempDir()
	var out, errb bytes.Buffer
	if code := realMain([]string{"--home", home, "init"}, &out, &errb); code != exitOK {
		t.Fatal(errb.String())
	}
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte("trash_days = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := realMain([]string{"--home", home, "run", "--discovery", "off", "--listen", freeAddr(t)}, &out, &errb); code != exitConfig || !strings.Contains(errb.String(), "trash_days 0") {
		t.Errorf("syncd run with a broken config = exit %d (%q), want %d", code, errb.String(), exitConfig)
	}
}

// TestReloadKeepsStartOnlySettings: settings that only a start applies
// (discovery, listen, name, ifaces, trash_days) do not change on a reload:
// status shows what runs, and the log says a restart applies them.
func TestReloadKeepsStartOnlySettings(t *testing.T) {
	a := newTestDevice(t, "alpha")
	a.start()
	p := filepath.Join(a.home, "config.toml")
	cfg, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.status().Device.Discovery; got != "off" {
		t.Fatalf("status says discovery %q before the reload, want off (--discovery off)", got)
	}
	cfg = bytes.Replace(cfg, []byte("trash_days = 30"), []byte("trash_days = 7"), 1)
	if err := os.WriteFile(p, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	a.hup()
	waitFor(t, 10*time.Second, "the reload's warning", func() string {
		if !strings.Contains(a.log.String(), "take effect when syncd starts next") {
			return "not logged"
		}
		return ""
	})
	if log := a.log.String(); !strings.Contains(log, "settings=trash_days") {
		t.Errorf("the warning does not name trash_days: %q", log)
	}
}

// TestSymlinkedConfigKept: a config.toml that is a symlink (into a
// dotfiles repository) stays one when syncd edits the config: the file it
// leads to is updated.
func TestSymlinkedConfigKept(t *testing.T) {
	home, dot := t.TempDir(), t.TempDir()
	var out, errb bytes.Buffer
	if code := realMain([]string{"--home", home, "init"}, &out, &errb); code != exitOK {
		t.Fatal(errb.String())
	}
	cfg, target := filepath.Join(home, "config.toml"), filepath.Join(dot, "syncd.toml")
	if err := os.Rename(cfg, target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, cfg); err != nil {
		t.Fatal(err)
	}
	if code := realMain([]string{"--home", home, "peer", "add", idB}, &out, &errb); code != exitOK {
		t.Fatal(errb.String())
	}
	fi, err := os.Lstat(cfg)
	data, _ := os.ReadFile(target)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 || !bytes.Contains(data, []byte(idB)) {
		t.Errorf("after peer add: config.toml %v (%v), its target holds the peer: %v; want the link kept and its target updated", fi.Mode(), err, bytes.Contains(data, []byte(idB)))
	}
}

// TestDanglingConfigSymlink: 'syncd init' where config.toml is a symlink
// to nothing says so, instead of succeeding with no config.
func TestDanglingConfigSymlink(t *testing.T) {
	home := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing.toml")
	if err := os.Symlink(missing, filepath.Join(home, "config.toml")); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := realMain([]string{"--home", home, "init"}, &out, &errb)
	if code == exitOK || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), "is a symlink to "+missing+", which does not exist") {
		t.Errorf("init with a dangling config symlink: exit %d, %q", code, errb.String())
	}
}

// TestRenewWhileRunning: a running daemon renews its leaf certificate when
// it nears its end, not only when it starts.
func TestRenewWhileRunning(t *testing.T) {
	old := renewEvery
	renewEvery = 10 * time.Millisecond
	t.Cleanup(func() { renewEvery = old })
	made := time.Now().Add(-(transport.LeafLifetime - 10*24*time.Hour)) // 10 days left
	id, err := transport.CreateIdentity(t.TempDir(), "a", made)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{id: id, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.renewLoop(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 5*time.Second, "the leaf to be renewed", func() string {
		if until := id.Leaf().NotAfter; until.Before(time.Now().Add(300 * 24 * time.Hour)) {
			return "leaf ends " + until.Format(time.DateOnly)
		}
		return ""
	})
}
