package main

// Problems a first-time user met on the command line: a home too long for
// the control socket, a config grown past what syncd reads, 'folder remove'
// with no daemon running, 'init' after config.toml was removed, and what a
// failed 'folder add' leaves behind.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// A home whose control socket path is longer than a unix socket allows can
// never run a daemon: init and run refuse it up front (exit 2, 78 for run; one line
// saying to choose a shorter --home), and a command that asks the daemon
// finds none there, instead of a socket errno and a log to check.
func TestLongHome(t *testing.T) {
	base := t.TempDir()
	home := filepath.Join(base, strings.Repeat("h", maxSocketPath-len(base)))
	for _, args := range [][]string{{"init", "--name", "x"}, {"run", "--discovery", "off", "--listen", "127.0.0.1:1"}} {
		var out, errb bytes.Buffer
		code := realMain(append([]string{"--home", home}, args...), &out, &errb)
		want := exitUsage
		if args[0] == "run" {
			want = exitConfig
		}
		if code != want || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), "shorter --home") {
			t.Errorf("%s on a home too long: exit %d, stderr %q; want %d and one line saying to choose a shorter --home", args[0], code, errb.String(), want)
		}
	}
	paths, err := resolvePaths(home)
	if err != nil {
		t.Fatal(err)
	}
	if err := callDaemon(paths, "GET", "/v1/status", nil, nil); !errors.Is(err, errNoDaemon) {
		t.Errorf("callDaemon on a home too long = %v, want no daemon", err)
	}
}

// nearlyFullConfig fills home's config to within 5 KB of maxConfigSize
// with 300 peers (within maxPeers) and folders shared with all of them;
// it returns the peers.
func nearlyFullConfig(t *testing.T, home string) []deviceid.ID {
	t.Helper()
	var out, errb bytes.Buffer
	if code := realMain([]string{"--home", home, "init", "--name", "x"}, &out, &errb); code != 0 {
		t.Fatalf("init: %d %s", code, errb.String())
	}
	paths, _ := resolvePaths(home)
	c, err := loadConfig(paths.Config)
	if err != nil {
		t.Fatal(err)
	}
	var ids []deviceid.ID
	for i := range 300 {
		id := deviceid.FromPublicKeyInfo(fmt.Appendf(nil, "review peer %d", i))
		ids = append(ids, id)
		c.Peers = append(c.Peers, PeerConfig{ID: id, Name: fmt.Sprintf("peer-%d", i), Addrs: []string{fmt.Sprintf("192.168.%d.%d:22027", i/250, i%250+1)}})
	}
	for i := 0; ; i++ {
		c.Folders = append(c.Folders, FolderConfig{ID: fmt.Sprintf("f%d", i), Path: filepath.Join(filepath.Dir(home), filepath.Base(home)+"-f", fmt.Sprint(i)), Peers: ids})
		data, _ := c.render()
		if len(data) > maxConfigSize-5_000 {
			c.Folders = c.Folders[:i]
			break
		}
	}
	if err := c.save(paths.Config); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(paths.Config); err != nil {
		t.Fatalf("setup: the config should still load: %v", err)
	}
	return ids
}

// folderAddAll is the arguments of 'folder add ID DIR' shared with ids.
func folderAddAll(home, id, dir string, ids []deviceid.ID) []string {
	args := []string{"--home", home, "folder", "add", id, dir}
	for _, p := range ids {
		args = append(args, "--peer", p.String())
	}
	return args
}

// TestConfigSavedLargerThanLoadable: a change that would make the config
// larger than syncd reads (1 MiB) is refused in one line, and the config
// stays as it was, loadable by every later command and by the daemon.
func TestConfigSavedLargerThanLoadable(t *testing.T) {
	home := t.TempDir()
	ids := nearlyFullConfig(t, home)
	var out, errb bytes.Buffer
	addCode := realMain(folderAddAll(home, "last", filepath.Join(t.TempDir(), "last"), ids), &out, &errb)
	if addCode == 0 || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), "more than") {
		t.Errorf("folder add past the config's size: exit %d, stderr %q; want a failure saying the config would be too large", addCode, errb.String())
	}
	errb.Reset()
	if code := realMain([]string{"--home", home, "folder", "list"}, &out, &errb); code != 0 {
		t.Errorf("folder list after the refused add: exit %d, %s", code, strings.TrimSpace(errb.String()))
	}
}

// 'folder remove' with no daemon running does not make syncd forget the
// folder: added again (same ID, another path) before the daemon starts,
// the folder is paused as "its disk is not mounted" and status counts the
// old folder's files, although the README says a removed folder that is
// added again starts over.
func TestFolderRemoveReAddWhileStopped(t *testing.T) {
	a := newTestDevice(t, "a")
	dir1 := filepath.Join(t.TempDir(), "one")
	os.MkdirAll(dir1, 0o700)
	os.WriteFile(filepath.Join(dir1, "old.txt"), []byte("old"), 0o600)
	a.addFolder("music", dir1)
	a.start()
	waitFor(t, 20*time.Second, "first folder scanned", func() string {
		if f := a.folderStatus("music"); f.LocalFiles != 1 || f.State != folderIdle {
			return fmt.Sprintf("%+v", f)
		}
		return ""
	})
	a.stop()
	a.mustSyncd("folder", "remove", "music")
	dir2 := filepath.Join(t.TempDir(), "two")
	os.MkdirAll(dir2, 0o700)
	os.WriteFile(filepath.Join(dir2, "new1.txt"), []byte("n1"), 0o600)
	os.WriteFile(filepath.Join(dir2, "new2.txt"), []byte("n2"), 0o600)
	a.addFolder("music", dir2)
	a.start()
	var last statusFolder
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		last = a.folderStatus("music")
		if last.State == folderIdle && last.LocalFiles == 2 && last.Error == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	msg := ""
	if last.Error != nil {
		msg = last.Error.Message
	}
	t.Errorf("removed and added again while stopped: state %q, local_files %d (want idle, 2), error %q", last.State, last.LocalFiles, msg)
}

// 'syncd init --name N' on a home that has an identity but no config.toml
// writes a new config.toml, yet says "nothing changed", and the new config
// silently takes the identity's old name instead of N.
func TestInitRewritesConfigSaysNothingChanged(t *testing.T) {
	home := t.TempDir()
	var out, errb bytes.Buffer
	if code := realMain([]string{"--home", home, "init", "--name", "one"}, &out, &errb); code != 0 {
		t.Fatalf("init: %d %s", code, errb.String())
	}
	paths, _ := resolvePaths(home)
	os.Remove(paths.Config)
	out.Reset()
	code := realMain([]string{"--home", home, "init", "--name", "two"}, &out, &errb)
	_, statErr := os.Stat(paths.Config)
	if code != 0 || statErr != nil {
		t.Fatalf("second init: exit %d, config %v", code, statErr)
	}
	if strings.Contains(out.String(), "nothing changed") {
		t.Errorf("init wrote %s but printed %q", paths.Config, out.String())
	}
	c, err := loadConfig(paths.Config)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "two" {
		t.Errorf("init --name two wrote name = %q, silently dropping --name", c.Name)
	}
}

// TestFolderAddFailedSaveLeavesDir: a 'folder add' whose config cannot be
// saved (here: it would be too large) removes the directories it created
// for the folder: the command failed, and nothing of it stays.
func TestFolderAddFailedSaveLeavesDir(t *testing.T) {
	home := t.TempDir()
	ids := nearlyFullConfig(t, home)
	dir := filepath.Join(t.TempDir(), "new", "folder")
	var out, errb bytes.Buffer
	if code := realMain(folderAddAll(home, "docs", dir, ids), &out, &errb); code == 0 {
		t.Fatalf("setup: folder add succeeded")
	}
	if _, err := os.Stat(filepath.Dir(dir)); err == nil {
		t.Errorf("folder add failed (%s) but left %s created", strings.TrimSpace(errb.String()), filepath.Dir(dir))
	}
}
