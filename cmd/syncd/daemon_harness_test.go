package main

// The process-level test harness: the real syncd binary, built once per test
// process, run as daemons with temp homes on 127.0.0.1 with discovery off
// (tailscale's TestTwoNodes). Each daemon's stderr is kept in memory and
// printed with t.Log when the test fails (always with SYNCD_TEST_LOGS=1).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// harnessDirPrefix names the temp directory the binary is built into; the
// process ID follows, so that a later test process can remove directories
// left by earlier ones (a test binary has no hook after its last test).
const harnessDirPrefix = "syncd-harness-"

var (
	buildOnce sync.Once
	builtBin  string // path of the built binary; "" if the build failed
	buildErr  error
)

// syncdBinary returns the path of the syncd binary built from this package,
// building it on first use.
func syncdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		removeStaleHarnessDirs()
		dir, err := os.MkdirTemp("", harnessDirPrefix+strconv.Itoa(os.Getpid())+"-")
		if err != nil {
			buildErr = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		bin := filepath.Join(dir, "syncd")
		out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		builtBin = bin
	})
	if buildErr != nil {
		t.Fatalf("build syncd: %v", buildErr)
	}
	return builtBin
}

// removeStaleHarnessDirs removes binaries built by test processes that have
// exited.
func removeStaleHarnessDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), harnessDirPrefix+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), harnessDirPrefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == nil || pid == os.Getpid() {
			continue // still running
		}
		os.RemoveAll(m)
	}
}

// lockedBuffer is a bytes.Buffer safe for a process writing and a test
// reading at once.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testDevice is one syncd home driven through the real binary: CLI commands
// and, between start and stop, a running daemon.
type testDevice struct {
	t    *testing.T
	name string
	bin  string
	home string
	addr string // 127.0.0.1:PORT, the same across restarts
	id   string // device ID printed by init
	log  *lockedBuffer

	mu     sync.Mutex // guards the fields below
	proc   *exec.Cmd  // nil when not running
	exited chan struct{}
	state  *os.ProcessState // of the last run, once exited
	runs   int
}

// newTestDevice creates a home (syncd init --name name) with a free port on
// 127.0.0.1. Its daemon, if running, is stopped and its log printed (on
// failure) when the test ends.
func newTestDevice(t *testing.T, name string) *testDevice {
	t.Helper()
	d := &testDevice{t: t, name: name, bin: syncdBinary(t), home: filepath.Join(t.TempDir(), name), addr: freeAddr(t), log: &lockedBuffer{}}
	out := d.mustSyncd("init", "--name", name)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	d.id = strings.TrimSpace(lines[len(lines)-1])
	t.Cleanup(func() {
		d.stopQuietly()
		if t.Failed() || os.Getenv("SYNCD_TEST_LOGS") == "1" {
			d.dumpLog()
		}
	})
	return d
}

// freeAddr returns a 127.0.0.1 address with a port nobody listens on now.
// The port is taken below the kernel's ephemeral range when possible, so
// that no outgoing connection of another daemon can hold it when a
// restarted daemon binds it again.
func freeAddr(t *testing.T) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	for i := 0; i < 50 && low > 20000; i++ {
		port := 10000 + rand.IntN(low-10000)
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			ln.Close()
			return ln.Addr().String()
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (d *testDevice) dumpLog() {
	d.t.Logf("=== log of %s (%s) ===\n%s=== end of log of %s ===", d.name, d.home, d.log.String(), d.name)
}

// syncd runs a syncd command on this home and returns its stdout, stderr
// and exit code (-1 if it could not run or was killed).
func (d *testDevice) syncd(args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, append([]string{"--home", d.home}, args...)...)
	cmd.Env = harnessEnv()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			d.t.Fatalf("%s: syncd %s: %v", d.name, strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}

// mustSyncd is syncd for a command that must succeed; it returns stdout.
func (d *testDevice) mustSyncd(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.syncd(args...)
	if code != 0 {
		d.t.Fatalf("%s: syncd %s: exit %d\nstdout: %s\nstderr: %s", d.name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// harnessEnv is the environment of every syncd process: no SYNCD_HOME or
// XDG directories leak in from the user's.
func harnessEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "SYNCD_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// pin pins other on d with its address (peer add --addr).
func (d *testDevice) pin(other *testDevice) {
	d.t.Helper()
	d.mustSyncd("peer", "add", other.id, "--name", other.name, "--addr", other.addr)
}

// pinEachOther pins a and b to each other.
func pinEachOther(a, b *testDevice) {
	a.pin(b)
	b.pin(a)
}

// addFolder shares dir as folder id with peers (folder add).
func (d *testDevice) addFolder(id, dir string, peers ...*testDevice) {
	d.t.Helper()
	args := []string{"folder", "add", id, dir}
	for _, p := range peers {
		args = append(args, "--peer", p.id)
	}
	d.mustSyncd(args...)
}

// start runs 'syncd run --listen ADDR --discovery off' plus extra flags and
// waits until its control socket answers status.
func (d *testDevice) start(extra ...string) {
	d.t.Helper()
	d.startNoWait(extra...)
	d.waitReady()
}

// startNoWait starts the daemon without waiting for it to be ready.
func (d *testDevice) startNoWait(extra ...string) {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		d.t.Fatalf("%s: already running", d.name)
	}
	d.runs++
	run := d.runs
	fmt.Fprintf(d.log, "--- run %d: syncd run %s ---\n", run, strings.Join(extra, " "))
	args := append([]string{"--home", d.home, "run", "--listen", d.addr, "--discovery", "off"}, extra...)
	cmd := exec.Command(d.bin, args...)
	cmd.Env = harnessEnv()
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("%s: start syncd run: %v", d.name, err)
	}
	exited := make(chan struct{})
	d.proc, d.exited, d.state = cmd, exited, nil
	go func() {
		cmd.Wait()
		d.mu.Lock()
		d.state = cmd.ProcessState
		d.mu.Unlock()
		fmt.Fprintf(d.log, "--- run %d exited: %v ---\n", run, cmd.ProcessState)
		close(exited)
	}()
}

// pid is the running daemon's process ID (0 if none).
func (d *testDevice) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return 0
	}
	return d.proc.Process.Pid
}

// waitReady waits up to 20 s for the daemon to answer status; it fails the
// test if the daemon exits first.
func (d *testDevice) waitReady() {
	d.t.Helper()
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := d.statusErr(); err == nil {
			return
		}
		select {
		case <-exited:
			d.t.Fatalf("%s: syncd run exited before it was ready: %v", d.name, d.exitState())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: syncd run did not answer status within 20 s", d.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *testDevice) exitState() *os.ProcessState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// signalAndWait sends sig and waits up to timeout for the daemon to exit.
// It returns the exit state, or nil if the daemon did not exit in time.
func (d *testDevice) signalAndWait(sig syscall.Signal, timeout time.Duration) *os.ProcessState {
	d.mu.Lock()
	proc, exited := d.proc, d.exited
	d.mu.Unlock()
	if proc == nil {
		return nil
	}
	_ = proc.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(timeout):
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.proc = nil
	return d.state
}

// hup sends SIGHUP to the running daemon.
func (d *testDevice) hup() {
	d.t.Helper()
	d.mu.Lock()
	proc := d.proc
	d.mu.Unlock()
	if proc == nil {
		d.t.Fatalf("%s: SIGHUP: not running", d.name)
	}
	if err := proc.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatalf("%s: SIGHUP: %v", d.name, err)
	}
}

// stop sends SIGTERM, waits up to 10 s, then SIGKILL; the test fails unless
// the daemon exited by itself with status 0.
func (d *testDevice) stop() {
	d.t.Helper()
	st := d.signalAndWait(syscall.SIGTERM, 10*time.Second)
	if st == nil {
		d.kill()
		d.t.Fatalf("%s: syncd run did not exit within 10 s of SIGTERM", d.name)
	}
	if !st.Success() {
		d.t.Fatalf("%s: syncd run after SIGTERM: %v, want exit status 0", d.name, st)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *testDevice) kill() {
	d.t.Helper()
	if d.signalAndWait(syscall.SIGKILL, 10*time.Second) == nil && d.pid() != 0 {
		d.t.Fatalf("%s: syncd run survived SIGKILL for 10 s", d.name)
	}
}

// stopQuietly is stop for cleanup: SIGTERM, then SIGKILL, no verdict.
func (d *testDevice) stopQuietly() {
	if d.pid() == 0 {
		return
	}
	if d.signalAndWait(syscall.SIGTERM, 10*time.Second) == nil {
		d.signalAndWait(syscall.SIGKILL, 10*time.Second)
	}
}

// statusErr asks the running daemon for its status over the control socket
// (the code path of 'syncd status --json').
func (d *testDevice) statusErr() (statusReport, error) {
	var r statusReport
	paths, err := resolvePaths(d.home)
	if err != nil {
		return r, err
	}
	out, err := fetchStatus(context.Background(), paths, true)
	if err != nil {
		return r, err
	}
	err = json.Unmarshal(out, &r)
	return r, err
}

// status is statusErr for a daemon that must answer.
func (d *testDevice) status() statusReport {
	d.t.Helper()
	r, err := d.statusErr()
	if err != nil {
		d.t.Fatalf("%s: status: %v", d.name, err)
	}
	return r
}

// folderStatus returns the status of folder id.
func (d *testDevice) folderStatus(id string) statusFolder {
	d.t.Helper()
	for _, f := range d.status().Folders {
		if f.ID == id {
			return f
		}
	}
	d.t.Fatalf("%s: status has no folder %q", d.name, id)
	return statusFolder{}
}

// waitFor polls cond every 50 ms until it returns "" or timeout passes; then
// the test fails with cond's last answer (what is still missing).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		miss := cond()
		if miss == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %v: %s", what, timeout, miss)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// treeEntry is what a tree comparison looks at for one path.
type treeEntry struct {
	kind string      // "file", "dir" or "symlink"
	perm fs.FileMode // permission bits
	sum  string      // SHA-256 of a file, target of a symlink
	size int64
}

func (e treeEntry) String() string {
	return fmt.Sprintf("%s %v %d %.12s", e.kind, e.perm, e.size, e.sum)
}

// snapshotTree describes every path under root except syncd's own .syncd
// directory. Temp files of the puller are included, so that a comparison
// shows any left behind.
func snapshotTree(root string) (map[string]treeEntry, error) {
	tree := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == ".syncd" {
			return filepath.SkipDir
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		e := treeEntry{perm: fi.Mode().Perm()}
		switch {
		case fi.IsDir():
			e.kind = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			e.kind = "symlink"
			e.sum, err = os.Readlink(p)
		case fi.Mode().IsRegular():
			e.kind, e.size = "file", fi.Size()
			e.sum, err = fileSum(p)
		default:
			e.kind = fi.Mode().Type().String()
		}
		tree[rel] = e
		return err
	})
	return tree, err
}

// fileSum is the hex SHA-256 of a file's content.
func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// treeDiff lists the differences between two snapshots ("" if none), at
// most 20 lines.
func treeDiff(a, b map[string]treeEntry) string {
	var lines []string
	for p, ea := range a {
		eb, ok := b[p]
		switch {
		case !ok:
			lines = append(lines, fmt.Sprintf("only in the first: %s (%v)", p, ea))
		case ea != eb:
			lines = append(lines, fmt.Sprintf("differs: %s: %v vs %v", p, ea, eb))
		}
	}
	for p, eb := range b {
		if _, ok := a[p]; !ok {
			lines = append(lines, fmt.Sprintf("only in the second: %s (%v)", p, eb))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	slices.Sort(lines)
	if len(lines) > 20 {
		lines = append(lines[:20], fmt.Sprintf("... and %d more", len(lines)-20))
	}
	return strings.Join(lines, "\n")
}

// sameTrees returns "" when the two folders hold the same tree.
func sameTrees(rootA, rootB string) string {
	a, err := snapshotTree(rootA)
	if err != nil {
		return err.Error()
	}
	b, err := snapshotTree(rootB)
	if err != nil {
		return err.Error()
	}
	return treeDiff(a, b)
}

// tempFiles lists the puller's temp files (index.TempPrefix) under root.
func tempFiles(root string) []string {
	var found []string
	filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(de.Name(), ".syncd-tmp-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// procIO reads a counter ("wchar", "rchar", "write_bytes", ...) of
// /proc/PID/io.
func procIO(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && k == field {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io has no %s", pid, field)
}
