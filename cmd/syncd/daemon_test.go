package main

// Process-level tests of the real daemon (issues 5, 6 and 8): two 'syncd
// run' processes with temp homes on 127.0.0.1, discovery off, pinned to each
// other with static addresses.
//
// Sizes are chosen so that the whole file stays well under a minute on a
// shared 2-core machine: the multi-block file is 20 MiB and the file of the
// crash test 256 MiB; SYNCD_BIG=1 makes the latter 1 GiB as in issue 6.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// syncTimeout bounds every wait for convergence; it is a failure bound, not
// a speed target.
const syncTimeout = 60 * time.Second

// writeRandomFile writes size bytes that do not repeat (so every block is
// distinct) and are the same for the same seed. It may be called from any
// goroutine: it reports with t.Error.
func writeRandomFile(t *testing.T, p string, size int64, seed uint64) {
	t.Helper()
	if err := putRandomFile(p, size, seed); err != nil {
		t.Error(err)
	}
}

func putRandomFile(p string, size int64, seed uint64) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	rng := rand.NewChaCha8(s)
	buf := make([]byte, 1<<20)
	for size > 0 {
		n := min(int64(len(buf)), size)
		rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		size -= n
	}
	return f.Close()
}

// writeFile writes content with mode (whatever the umask), creating parent
// directories. It may be called from any goroutine: it reports with t.Error.
func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	err := os.MkdirAll(filepath.Dir(p), 0o755)
	if err == nil {
		err = os.WriteFile(p, []byte(content), mode)
	}
	if err == nil {
		err = os.Chmod(p, mode)
	}
	if err != nil {
		t.Error(err)
	}
}

// twoDevices returns devices a and b pinned to each other and sharing
// folder "shared" at dirA and dirB, not yet running.
func twoDevices(t *testing.T) (a, b *testDevice, dirA, dirB string) {
	t.Helper()
	a, b = newTestDevice(t, "alpha"), newTestDevice(t, "beta")
	pinEachOther(a, b)
	dirA, dirB = filepath.Join(t.TempDir(), "A"), filepath.Join(t.TempDir(), "B")
	a.addFolder("shared", dirA, b)
	b.addFolder("shared", dirB, a)
	return a, b, dirA, dirB
}

// waitConnected waits until d's status shows peer connected.
func waitConnected(t *testing.T, d, peer *testDevice) {
	t.Helper()
	waitFor(t, syncTimeout, d.name+" connected to "+peer.name, func() string {
		r, err := d.statusErr()
		if err != nil {
			return err.Error()
		}
		for _, p := range r.Peers {
			if p.ID == peer.id {
				if p.Connected {
					return ""
				}
				return fmt.Sprintf("peer %s not connected (error %v)", p.ShortID, p.Error)
			}
		}
		return "peer not in status"
	})
}

// waitSameTrees waits until the two folders hold the same tree, want
// (paths relative to the folder) exist in both, and no temp file is left.
func waitSameTrees(t *testing.T, dirA, dirB string, want ...string) {
	t.Helper()
	waitFor(t, syncTimeout, "trees converge", func() string {
		for _, p := range want {
			for _, root := range []string{dirA, dirB} {
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					return err.Error()
				}
			}
		}
		if tmp := append(tempFiles(dirA), tempFiles(dirB)...); len(tmp) > 0 {
			return fmt.Sprintf("temp files left: %q", tmp)
		}
		return sameTrees(dirA, dirB)
	})
}

// TestDaemonsSyncBothWays: two real daemons sync a tree both ways — files,
// nested and empty directories, modes, a multi-block file, an edit and a
// deletion — and end byte-identical.
func TestDaemonsSyncBothWays(t *testing.T) {
	t.Parallel()
	a, b, dirA, dirB := twoDevices(t)
	a.start()
	b.start()
	waitConnected(t, a, b)
	waitConnected(t, b, a)

	// A and B write different things at the same time.
	var wg sync.WaitGroup
	wg.Go(func() {
		writeFile(t, filepath.Join(dirA, "notes.txt"), "from alpha\n", 0o644)
		writeFile(t, filepath.Join(dirA, "docs/deep/nested/readme.md"), "# nested\n", 0o600)
		writeFile(t, filepath.Join(dirA, "docs/script.sh"), "#!/bin/sh\necho hi\n", 0o755)
		writeFile(t, filepath.Join(dirA, "empty-file"), "", 0o644)
		if err := os.MkdirAll(filepath.Join(dirA, "empty/dir"), 0o755); err != nil {
			t.Error(err)
		}
		writeRandomFile(t, filepath.Join(dirA, "big/multi-block.bin"), 20<<20, 1)
	})
	wg.Go(func() {
		writeFile(t, filepath.Join(dirB, "from-beta.txt"), "from beta\n", 0o644)
		writeFile(t, filepath.Join(dirB, "doomed.txt"), "to be deleted\n", 0o644)
		writeRandomFile(t, filepath.Join(dirB, "photos/2026/img.raw"), 3<<20+12345, 2)
	})
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitSameTrees(t, dirA, dirB, "notes.txt", "docs/deep/nested/readme.md", "empty/dir", "empty-file",
		"big/multi-block.bin", "from-beta.txt", "doomed.txt", "photos/2026/img.raw")

	// An edit on B of A's file, and a deletion on A of B's file.
	writeFile(t, filepath.Join(dirB, "notes.txt"), "from alpha\nedited on beta\n", 0o644)
	if err := os.Remove(filepath.Join(dirA, "doomed.txt")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, syncTimeout, "edit and deletion propagate", func() string {
		if _, err := os.Lstat(filepath.Join(dirB, "doomed.txt")); err == nil {
			return "doomed.txt still on beta"
		}
		got, _ := os.ReadFile(filepath.Join(dirA, "notes.txt"))
		if !bytes.Contains(got, []byte("edited on beta")) {
			return fmt.Sprintf("notes.txt on alpha = %q", got)
		}
		return sameTrees(dirA, dirB)
	})

	// Nothing is lost: the deleted content is in beta's trash, alpha's old
	// notes.txt in alpha's.
	if !trashHolds(t, dirB, "doomed.txt", "to be deleted\n") {
		t.Errorf("beta's trash has no doomed.txt with its content")
	}
	if !trashHolds(t, dirA, "notes.txt", "from alpha\n") {
		t.Errorf("alpha's trash has no notes.txt with its old content")
	}

	// status --json agrees with the disk.
	tree, err := snapshotTree(dirA)
	if err != nil {
		t.Fatal(err)
	}
	var files, bytes int64
	for _, e := range tree {
		if e.kind == "file" {
			files, bytes = files+1, bytes+e.size
		}
	}
	for _, pair := range [][2]*testDevice{{a, b}, {b, a}} {
		d, other := pair[0], pair[1]
		waitFor(t, 10*time.Second, d.name+"'s status settles", func() string {
			f := d.folderStatus("shared")
			if f.State != folderIdle || f.NeedFiles != 0 || f.NeedBytes != 0 || f.Error != nil ||
				f.LocalFiles != files || f.LocalBytes != bytes || f.GlobalFiles != files || f.GlobalBytes != bytes {
				return fmt.Sprintf("folder %+v; want idle, %d files and %d bytes local and global, nothing needed, no error", f, files, bytes)
			}
			return ""
		})
		if got := d.folderStatus("shared").Peers; !slices.Equal(got, []string{other.id}) {
			t.Errorf("%s: status folder peers = %q, want [%s]", d.name, got, other.id)
		}
		r := d.status()
		if len(r.Peers) != 1 || r.Peers[0].ID != other.id || !r.Peers[0].Connected || r.Peers[0].Address != other.addr {
			t.Errorf("%s: status peers = %+v, want %s connected at %s", d.name, r.Peers, other.id, other.addr)
		}
	}
	a.stop()
	b.stop()
}

// trashHolds reports whether root's .syncd/trash holds a version of rel with
// content.
func trashHolds(t *testing.T, root, rel, content string) bool {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(root, ".syncd", "trash", rel+"~*"))
	for _, m := range matches {
		if got, err := os.ReadFile(m); err == nil && string(got) == content {
			return true
		}
	}
	return false
}

// crashFileSize is the file of the crash test: 256 MiB, 1 GiB with
// SYNCD_BIG=1.
func crashFileSize() int64 {
	if os.Getenv("SYNCD_BIG") == "1" {
		return 1 << 30
	}
	return 256 << 20
}

// finalNameWatcher polls a path until stopped and records any sighting of
// it with a size other than want: the final name must never show a partial
// file.
type finalNameWatcher struct {
	path string
	want int64
	stop chan struct{}
	done chan struct{}
	once sync.Once // closes stop

	bad   atomic.Value // string: the first wrong sighting
	seen  atomic.Bool  // the path existed at some point
	polls atomic.Int64
}

func watchFinalName(p string, want int64) *finalNameWatcher {
	w := &finalNameWatcher{path: p, want: want, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			w.polls.Add(1)
			if fi, err := os.Lstat(p); err == nil {
				w.seen.Store(true)
				if fi.Size() != want || !fi.Mode().IsRegular() {
					w.bad.CompareAndSwap(nil, fmt.Sprintf("%s seen with size %d mode %v, want a regular file of %d bytes", p, fi.Size(), fi.Mode(), want))
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return w
}

func (w *finalNameWatcher) finish() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// TestDaemonReceiverKilledMidTransfer (issue 6, process level): the
// receiver is killed with SIGKILL in the middle of a large transfer, then
// restarted. It converges; the final name never shows a partial file; no
// temp file is left; and the restarted receiver fetches less than the whole
// file (verified blocks of the temp file are reused).
//
// The sender is throttled with --max-send-rate so that the kill lands in the
// middle of the transfer. What the restarted receiver fetches is measured on
// the sender as the growth of wchar in /proc/PID/io between the kill and the
// end: every byte sent to the receiver passes through the sender's write
// calls (TLS records on the socket), so that figure is an upper bound of
// the block bytes sent; the sender's own logs and index writes only make it
// larger, which errs on the side of failing.
func TestDaemonReceiverKilledMidTransfer(t *testing.T) {
	t.Parallel()
	size := crashFileSize()
	rate := size / 6 // about 6 s for the whole file
	a, b, dirA, dirB := twoDevices(t)
	writeRandomFile(t, filepath.Join(dirA, "big.bin"), size, 7)
	wantSum, err := fileSum(filepath.Join(dirA, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dirB, "big.bin")
	w := watchFinalName(target, size)
	defer w.finish()

	a.start("--max-send-rate", fmt.Sprint(rate))
	b.start()

	// Kill the receiver once it has between 25% and 75% of the file.
	var needAtKill int64
	waitFor(t, syncTimeout, "beta pulls a quarter of big.bin", func() string {
		f := b.folderStatus("shared")
		if f.State != folderSyncing || f.NeedBytes <= 0 || f.NeedBytes > size*3/4 {
			return fmt.Sprintf("state %s, need %d of %d bytes", f.State, f.NeedBytes, f.GlobalBytes)
		}
		needAtKill = f.NeedBytes
		return ""
	})
	if needAtKill < size/4 {
		t.Fatalf("beta needed only %d of %d bytes when it was to be killed: the transfer went too fast for the test", needAtKill, size)
	}
	b.kill()
	sentBefore, err := procIO(a.pid(), "wchar")
	if err != nil {
		t.Fatalf("read the sender's I/O counters: %v", err)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Fatalf("big.bin exists on beta under its final name after the kill, with %d of %d bytes still needed", needAtKill, size)
	}
	if tmp := tempFiles(dirB); len(tmp) != 1 {
		t.Errorf("temp files after the kill = %q, want one (kept for resume)", tmp)
	}

	b.start()
	waitFor(t, syncTimeout, "beta completes big.bin after the restart", func() string {
		if _, err := os.Lstat(target); err != nil {
			return err.Error()
		}
		if tmp := tempFiles(dirB); len(tmp) > 0 {
			return fmt.Sprintf("temp files left: %q", tmp)
		}
		if f := b.folderStatus("shared"); f.State != folderIdle || f.NeedFiles != 0 {
			return fmt.Sprintf("state %s, need %d files", f.State, f.NeedFiles)
		}
		return ""
	})
	sentAfter, err := procIO(a.pid(), "wchar")
	if err != nil {
		t.Fatalf("read the sender's I/O counters: %v", err)
	}
	w.finish()
	if bad, _ := w.bad.Load().(string); bad != "" {
		t.Errorf("the final name showed a partial file: %s", bad)
	}
	if !w.seen.Load() {
		t.Errorf("the watcher never saw %s (%d polls)", target, w.polls.Load())
	}
	if got, err := fileSum(target); err != nil || got != wantSum {
		t.Errorf("sha256(beta's big.bin) = %s, %v; want %s", got, err, wantSum)
	}
	resent := sentAfter - sentBefore
	t.Logf("size %d; beta still needed %d at the kill; the sender wrote %d bytes after it (%.0f%% of the file)",
		size, needAtKill, resent, 100*float64(resent)/float64(size))
	if resent >= size {
		t.Errorf("the sender wrote %d bytes after the kill, want less than the file's %d: the restarted pull did not resume", resent, size)
	}
	a.stop()
	b.stop()
}

// TestDaemonCommands (issue 8) pins the command line's behaviour with a real
// daemon: status with and without one, a second daemon on the same home,
// peer add and folder add taking effect without a restart, SIGHUP, and
// SIGTERM during a transfer followed by a restart that completes it.
func TestDaemonCommands(t *testing.T) {
	t.Parallel()
	a, b := newTestDevice(t, "alpha"), newTestDevice(t, "beta")

	// No daemon: one line, exit 1, for both forms.
	for _, args := range [][]string{{"status"}, {"status", "--json"}} {
		out, errOut, code := a.syncd(args...)
		want := "syncd: no syncd daemon is running for " + a.home + "; start it with 'syncd run'\n"
		if code != exitFailure || out != "" || errOut != want {
			t.Errorf("without a daemon, syncd %s = exit %d, stdout %q, stderr %q; want exit 1, no output, stderr %q",
				strings.Join(args, " "), code, out, errOut, want)
		}
	}

	before := time.Now().Add(-time.Second) // the daemon's clock vs ours: same host
	a.start()
	b.start()
	out := a.mustSyncd("status")
	for _, want := range []string{
		"This device  alpha (" + a.id[:7] + ")\n",
		"listening on " + a.addr + ", discovery off",
		"Peers (0)\n", "Folders (0)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("syncd status = %q, want it to contain %q", out, want)
		}
	}
	checkStatusJSON(t, a, before)

	// A folder shared with nobody yet lists its peers as [], not null or
	// nothing (what a script iterating over them expects).
	b.addFolder("solo", filepath.Join(t.TempDir(), "solo"))
	waitFor(t, 10*time.Second, "beta runs folder solo", func() string {
		if r := b.status(); len(r.Folders) != 1 {
			return fmt.Sprintf("%d folders", len(r.Folders))
		}
		return ""
	})
	var raw struct {
		Folders []map[string]json.RawMessage `json:"folders"`
	}
	if out := b.mustSyncd("status", "--json"); json.Unmarshal([]byte(out), &raw) != nil || len(raw.Folders) != 1 ||
		string(raw.Folders[0]["peers"]) != "[]" {
		t.Errorf("status --json of a folder with no peers = %s, want \"peers\": []", out)
	}

	// A second daemon on the same home is refused; the first keeps working.
	pidA := a.pid()
	out, errOut, code := a.syncd("run", "--listen", freeAddr(t), "--discovery", "off")
	wantErr := fmt.Sprintf("syncd: another syncd is already running with home %s (pid %d); ", a.home, pidA)
	if code != exitFailure || out != "" || !strings.HasPrefix(errOut, wantErr) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("second syncd run = exit %d, stdout %q, stderr %q; want exit 1 and one line starting %q", code, out, errOut, wantErr)
	}
	if got := a.status().Device.ID; got != a.id || a.pid() != pidA {
		t.Errorf("after the refused second run: status ID %s, pid %d; want %s, %d", got, a.pid(), a.id, pidA)
	}

	// peer add and folder add while running take effect without a restart.
	pidB := b.pid()
	pinEachOther(a, b)
	waitConnected(t, a, b)
	waitConnected(t, b, a)
	dirA, dirB := filepath.Join(t.TempDir(), "A"), filepath.Join(t.TempDir(), "B")
	a.addFolder("live", dirA, b)
	b.addFolder("live", dirB, a)
	writeFile(t, filepath.Join(dirA, "hello.txt"), "added while running\n", 0o644)
	waitSameTrees(t, dirA, dirB, "hello.txt")
	if a.pid() != pidA || b.pid() != pidB {
		t.Errorf("pids changed: alpha %d -> %d, beta %d -> %d; want no restart", pidA, a.pid(), pidB, b.pid())
	}

	// SIGHUP rereads the config: a broken one is refused and the running
	// one kept, then a good one takes effect (alpha's upload limit).
	cfgPath := filepath.Join(a.home, "config.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const rateLine = `max_send_rate = "0"`
	if !bytes.Contains(cfg, []byte(rateLine)) {
		t.Fatalf("config.toml has no line %s:\n%s", rateLine, cfg)
	}
	if err := os.WriteFile(cfgPath, append(bytes.Clone(cfg), "this is not toml\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	a.hup()
	waitFor(t, 10*time.Second, "alpha logs the broken config", func() string {
		if !strings.Contains(a.log.String(), "config not reloaded") {
			return "no 'config not reloaded' in the log"
		}
		return ""
	})
	if r := a.status(); len(r.Peers) != 1 || len(r.Folders) != 1 {
		t.Errorf("after a broken config and SIGHUP: %d peers, %d folders; want the running 1 and 1", len(r.Peers), len(r.Folders))
	}
	const limit = 16_000_000
	cfg = bytes.Replace(cfg, []byte(rateLine), []byte(fmt.Sprintf(`max_send_rate = "%dMB"`, limit/1_000_000)), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	a.hup()
	waitFor(t, 10*time.Second, "SIGHUP sets alpha's upload limit", func() string {
		if got := a.status().Device.SendLimit; got != limit {
			return fmt.Sprintf("send_limit %d, want %d", got, limit)
		}
		return ""
	})

	// SIGTERM during a transfer (throttled by that limit): exit 0 promptly,
	// the partial file is kept as a temp file, and a restart completes it.
	const size = 32 << 20
	writeRandomFile(t, filepath.Join(dirA, "transfer.bin"), size, 3)
	wantSum, err := fileSum(filepath.Join(dirA, "transfer.bin"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, syncTimeout, "beta starts pulling transfer.bin", func() string {
		f := b.folderStatus("live")
		if f.State != folderSyncing || f.NeedBytes <= 0 || f.NeedBytes > size*9/10 {
			return fmt.Sprintf("state %s, need %d bytes", f.State, f.NeedBytes)
		}
		return ""
	})
	start := time.Now()
	st := b.signalAndWait(syscall.SIGTERM, 10*time.Second)
	took := time.Since(start)
	t.Logf("beta exited %v after SIGTERM", took.Round(time.Millisecond))
	if st == nil {
		b.kill()
		t.Fatalf("beta did not exit within 10 s of SIGTERM during a transfer")
	}
	if !st.Success() {
		t.Errorf("beta after SIGTERM during a transfer: %v, want exit status 0", st)
	}
	if fi, err := os.Lstat(filepath.Join(dirB, "transfer.bin")); err == nil && fi.Size() != size {
		t.Errorf("transfer.bin on beta after SIGTERM: %d bytes under its final name, want none or %d", fi.Size(), size)
	}
	if tmp := tempFiles(dirB); len(tmp) > 1 {
		t.Errorf("temp files after SIGTERM = %q, want at most one", tmp)
	}
	sentBefore, err := procIO(a.pid(), "wchar") // see TestDaemonReceiverKilledMidTransfer
	if err != nil {
		t.Fatalf("read the sender's I/O counters: %v", err)
	}
	b.start()
	waitSameTrees(t, dirA, dirB, "transfer.bin")
	sentAfter, err := procIO(a.pid(), "wchar")
	if err != nil {
		t.Fatalf("read the sender's I/O counters: %v", err)
	}
	if resent := sentAfter - sentBefore; resent >= size {
		t.Errorf("alpha wrote %d bytes after beta's restart, want less than the file's %d: the pull stopped by SIGTERM did not resume", resent, size)
	}
	if got, err := fileSum(filepath.Join(dirB, "transfer.bin")); err != nil || got != wantSum {
		t.Errorf("sha256(beta's transfer.bin) = %s, %v; want %s", got, err, wantSum)
	}
	a.stop()
	b.stop()
	if n := strings.Count(a.log.String(), "SIGHUP: reloading the config"); n != 2 {
		t.Errorf("alpha logged %d SIGHUP reloads, want 2", n)
	}
}

// checkStatusJSON checks 'syncd status --json' of a running daemon with no
// peers or folders: the documented fields, with sane values.
func checkStatusJSON(t *testing.T, d *testDevice, started time.Time) {
	t.Helper()
	out := d.mustSyncd("status", "--json")
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"version", "device", "peers", "folders"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status --json has no %q: %s", k, out)
		}
	}
	if p, ok := raw["peers"].([]any); !ok || len(p) != 0 {
		t.Errorf("status --json peers = %v, want []", raw["peers"])
	}
	if f, ok := raw["folders"].([]any); !ok || len(f) != 0 {
		t.Errorf("status --json folders = %v, want []", raw["folders"])
	}
	var r statusReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	dev := r.Device
	if r.Version != statusVersion || dev.ID != d.id || dev.ShortID != d.id[:7] || dev.Name != d.name ||
		!slices.Equal(dev.Listen, []string{d.addr}) || dev.Discovery != "off" || dev.SendLimit != 0 || dev.RecvLimit != 0 {
		t.Errorf("status --json = version %d, device %+v; want version %d, id %s, short %s, name %s, listen [%s], discovery off, no limits",
			r.Version, dev, statusVersion, d.id, d.id[:7], d.name, d.addr)
	}
	if dev.Started.Before(started) || dev.Started.After(time.Now()) {
		t.Errorf("status --json started = %v, want between %v and now", dev.Started, started)
	}
}

// needRoot skips a test that needs root, except under CI=true where it
// fails: CI runs as root, so a skip there would hide a broken setup.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs root (mount), and CI=true")
	}
	t.Skip("needs root (mount)")
}

// mountTmpfs mounts a tmpfs of size bytes at a new directory and unmounts
// it when the test ends; register it before anything that must stop using
// it first (cleanups run last-in, first-out).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "syncd-test", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// resizeTmpfs changes the size of the tmpfs at dir.
func resizeTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v: %s", dir, err, out)
	}
}

// usedBytes is what the file system holding dir uses.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// TestDaemonDiskFull (issue 6): the receiver's folder is a 32 MiB tmpfs and
// a 48 MiB file arrives. The pull stops with a clear error in the log (once)
// and in status, the temp file is removed, other files still sync, and once
// the tmpfs is enlarged the pull resumes by itself and completes.
func TestDaemonDiskFull(t *testing.T) {
	t.Parallel()
	needRoot(t)
	const small, big = 32 << 20, 48 << 20
	dirB := mountTmpfs(t, small)
	a, b := newTestDevice(t, "alpha"), newTestDevice(t, "beta")
	pinEachOther(a, b)
	dirA := filepath.Join(t.TempDir(), "A")
	a.addFolder("shared", dirA, b)
	b.addFolder("shared", dirB, a)
	a.start()
	b.start()
	waitConnected(t, b, a)

	writeRandomFile(t, filepath.Join(dirA, "too-big.bin"), big, 4)
	wantSum, err := fileSum(filepath.Join(dirA, "too-big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, syncTimeout, "beta reports the full disk", func() string {
		f := b.folderStatus("shared")
		if f.State != folderError || f.Error == nil || !strings.Contains(f.Error.Message, "disk full") {
			return fmt.Sprintf("state %q, error %+v", f.State, f.Error)
		}
		if !strings.Contains(b.log.String(), "no space left on device") {
			return "the log does not say 'no space left on device'"
		}
		return ""
	})
	// The temp file goes: between retries nothing of it is left, and the
	// space is free again.
	waitFor(t, syncTimeout, "the temp file is removed", func() string {
		if tmp := tempFiles(dirB); len(tmp) > 0 {
			return fmt.Sprintf("temp files %q", tmp)
		}
		if used := usedBytes(t, dirB); used > 4<<20 {
			return fmt.Sprintf("the tmpfs still uses %d bytes", used)
		}
		return ""
	})
	if _, err := os.Lstat(filepath.Join(dirB, "too-big.bin")); err == nil {
		t.Errorf("too-big.bin exists on beta under its final name with the disk full")
	}

	// Other files still sync while the big one cannot.
	writeFile(t, filepath.Join(dirA, "small.txt"), "fits\n", 0o644)
	writeRandomFile(t, filepath.Join(dirA, "sub/medium.bin"), 2<<20, 5)
	waitFor(t, syncTimeout, "small files reach beta", func() string {
		for _, p := range []string{"small.txt", "sub/medium.bin"} {
			sa, err := fileSum(filepath.Join(dirA, p))
			if err != nil {
				return err.Error()
			}
			if sb, err := fileSum(filepath.Join(dirB, p)); err != nil || sb != sa {
				return fmt.Sprintf("%s on beta: %v", p, err)
			}
		}
		return ""
	})
	if n := strings.Count(b.log.String(), "no space left on device"); n != 1 {
		t.Errorf("beta logged 'no space left on device' %d times, want once", n)
	}

	// Space comes back: the pull resumes by itself.
	resizeTmpfs(t, dirB, 128<<20)
	waitFor(t, 2*syncTimeout, "too-big.bin completes after the tmpfs grew", func() string {
		got, err := fileSum(filepath.Join(dirB, "too-big.bin"))
		if err != nil {
			return err.Error()
		}
		if got != wantSum {
			return "wrong content"
		}
		if f := b.folderStatus("shared"); f.State != folderIdle || f.Error != nil {
			return fmt.Sprintf("state %q, error %+v", f.State, f.Error)
		}
		return ""
	})
	waitSameTrees(t, dirA, dirB, "too-big.bin", "small.txt", "sub/medium.bin")
	a.stop()
	b.stop()
}
