package peer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"pgregory.net/rapid"

	"github.com/syncd-project/syncd/index"
)

// The model-based test: three devices in one process run random sequences
// of file operations, link cuts, restarts and rescans; when everything is
// connected and quiet again, all trees must be identical and every content
// ever written must still exist somewhere in the folder (as a file, a
// conflict copy or in .syncd/trash/ of some device).
//
// A write is released from that promise only when the user destroys it
// (overwrite, append, delete, rmdir, rename over it) while no other copy of
// it exists on any device: syncd cannot keep what it never saw.
//
// By default `go test` runs a few sequences (about 30 s); SYNCD_SOAK=N runs
// N sequences (the Makefile's soak target), and the usual -rapid.checks,
// -rapid.steps and -rapid.seed flags (or RAPID_* variables) apply.

// modelFiles and modelDirs are the names the operations draw from: few, so
// that devices often touch the same paths, and "x" is both a file and a
// directory name so that kinds collide too.
var (
	modelFiles = []string{"f", "g.txt", "x", "d/f", "d/g.txt", "d/e/f", "x/f", "x/g.txt"}
	modelDirs  = []string{"d", "d/e", "x", "n"}
)

// modelStats counts what all sequences of one test ran.
type modelStats struct {
	seqs, ops atomic.Int64
}

func TestModel(t *testing.T) {
	checks := 4
	timeout := 30 * time.Second
	if s := os.Getenv("SYNCD_SOAK"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("SYNCD_SOAK=%q: want a positive number of sequences", s)
		}
		checks, timeout = n, time.Minute
	}
	defer setRapidDefault("checks", checks)()
	defer setRapidDefault("steps", 300)()
	var stats modelStats
	start := time.Now()
	rapid.Check(t, func(rt *rapid.T) {
		m := newModel(t, rt, &stats, timeout)
		defer m.close()
		rt.Repeat(m.actions())
		m.finish()
	})
	t.Logf("model: %d sequences, %d operations in %v", stats.seqs.Load(), stats.ops.Load(), time.Since(start).Round(time.Second))
}

// setRapidDefault sets rapid's -rapid.NAME flag to v unless the command
// line or the environment (RAPID_NAME) chose it; it returns the undo.
func setRapidDefault(name string, v int) func() {
	if _, ok := os.LookupEnv("RAPID_" + strings.ToUpper(name)); ok {
		return func() {}
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid."+name })
	if set {
		return func() {}
	}
	f := flag.Lookup("rapid." + name)
	old := f.Value.String()
	f.Value.Set(strconv.Itoa(v))
	return func() { f.Value.Set(old) }
}

type model struct {
	t       *testing.T
	rt      *rapid.T
	stats   *modelStats
	timeout time.Duration
	dir     string
	net     *testNet
	devs    []*testDev
	watch   []bool
	running []bool
	// want maps the digest of every content that must survive to a
	// description of the write that made it.
	want     map[string]string
	released int
	seq      int
	stamp    time.Time // last mtime given to a write
	ops      []string  // what ran, for the failure report
}

func newModel(t *testing.T, rt *rapid.T, stats *modelStats, timeout time.Duration) *model {
	stats.seqs.Add(1)
	dir, err := os.MkdirTemp(t.TempDir(), "model")
	if err != nil {
		rt.Fatal(err)
	}
	m := &model{t: t, rt: rt, stats: stats, timeout: timeout, dir: dir,
		net: newTestNet(t), want: map[string]string{}}
	for i, name := range []string{"alpha", "bravo", "charlie"} {
		home := filepath.Join(dir, name)
		d := &testDev{net: m.net, name: name, id: deviceFromName(name), home: home,
			root: filepath.Join(home, "folder"), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
		if err := os.MkdirAll(d.root, 0o755); err != nil {
			rt.Fatal(err)
		}
		m.net.devs[d.id] = d
		m.devs = append(m.devs, d)
		m.watch = append(m.watch, rapid.Bool().Draw(rt, fmt.Sprintf("watch%d", i)))
		m.running = append(m.running, false)
	}
	for i, d := range m.devs {
		var peers []*testDev
		for j, p := range m.devs {
			if j != i {
				peers = append(peers, p)
			}
		}
		d.peers = peers
		m.start(i)
	}
	return m
}

func (m *model) start(i int) {
	watch := m.watch[i]
	if err := m.devs[i].startWith(func(o *Options) {
		o.Watch = watch
		o.Debounce = 30 * time.Millisecond
	}); err != nil {
		m.rt.Fatalf("start %s: %v", m.devs[i].name, err)
	}
	m.running[i] = true
}

func (m *model) close() {
	for _, d := range m.devs {
		d.stop()
		if d.srv != nil {
			d.srv.Close()
		}
	}
	os.RemoveAll(m.dir)
}

func (m *model) logf(format string, a ...any) {
	m.stats.ops.Add(1)
	m.ops = append(m.ops, fmt.Sprintf(format, a...))
}

func (m *model) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"write":   m.write,
		"write2":  m.write,
		"append":  m.append,
		"editAny": m.editAny,
		"delete":  m.delete,
		"rename":  m.rename,
		"mkdir":   m.mkdir,
		"rmdir":   m.rmdir,
		"cut":     m.cut,
		"restore": m.restore,
		"stop":    m.stop,
		"start":   m.startAction,
		"rescan":  m.rescan,
		"rescan2": m.rescan,
		"sleep":   m.sleep,
	}
}

func (m *model) drawDev(t *rapid.T) int { return rapid.IntRange(0, len(m.devs)-1).Draw(t, "dev") }

func (m *model) abs(i int, rel string) string {
	return filepath.Join(m.devs[i].root, filepath.FromSlash(rel))
}

// content makes the bytes of a new write: unique (the write's number leads)
// and of a drawn size, now and then over a block.
func (m *model) content(t *rapid.T, i int, rel string) ([]byte, string) {
	m.seq++
	size := rapid.IntRange(0, 4096).Draw(t, "size")
	if rapid.IntRange(0, 9).Draw(t, "big") == 0 {
		size = rapid.IntRange(200<<10, 1200<<10).Draw(t, "bigsize")
	}
	desc := fmt.Sprintf("write #%d on %s at %s (%d bytes)", m.seq, m.devs[i].name, rel, size)
	return append([]byte(desc+"\n"), randBytes(uint64(m.seq), size)...), desc
}

// touch gives a written file a fresh mtime, later than any before, so that
// every change is visible to the scanner even on a coarse-grained clock.
func (m *model) touch(p string) {
	now := m.nextStamp()
	os.Chtimes(p, now, now)
}

// touchFD is touch through an open descriptor of the file.
func (m *model) touchFD(fd *os.File) {
	now := unix.NsecToTimespec(m.nextStamp().UnixNano())
	unix.UtimesNanoAt(unix.AT_FDCWD, procFD(int(fd.Fd())), []unix.Timespec{now, now}, 0)
}

func (m *model) nextStamp() time.Time {
	now := time.Now()
	if !now.After(m.stamp) {
		now = m.stamp.Add(time.Millisecond)
	}
	m.stamp = now
	return now
}

func (m *model) write(t *rapid.T) {
	i, rel := m.drawDev(t), rapid.SampledFrom(modelFiles).Draw(t, "path")
	m.writeAt(t, i, rel)
}

func (m *model) writeAt(t *rapid.T, i int, rel string) {
	p := m.abs(i, rel)
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		t.Skip("not a regular file")
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Skip("parent is not a directory")
	}
	data, desc := m.content(t, i, rel)
	m.destroying(i, rel, true)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Skip(err.Error())
	}
	m.touch(p)
	m.want[digest(data)] = desc
	m.logf("%s", desc)
}

func (m *model) editAny(t *rapid.T) {
	i := m.drawDev(t)
	files := listFiles(m.devs[i].root, false)
	if len(files) == 0 {
		t.Skip("no files")
	}
	m.writeAt(t, i, files[rapid.IntRange(0, len(files)-1).Draw(t, "which")%len(files)])
}

func (m *model) append(t *rapid.T) {
	i, rel := m.drawDev(t), rapid.SampledFrom(modelFiles).Draw(t, "path")
	p := m.abs(i, rel)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Skip("no such file")
	}
	more, desc := m.content(t, i, rel)
	m.destroying(i, rel, true)
	// The old content is read through the descriptor that appends: a pull
	// may put a new version at p at any time, and what is appended to is
	// the file that was read, wherever syncd keeps it.
	fd, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Skip(err.Error())
	}
	old, err := io.ReadAll(fd)
	if err != nil {
		fd.Close()
		t.Skip(err.Error())
	}
	fd.Write(more)
	m.touchFD(fd)
	fd.Close()
	m.want[digest(append(old, more...))] = "append: " + desc
	m.logf("append %s", desc)
}

func (m *model) delete(t *rapid.T) {
	i, rel := m.drawDev(t), rapid.SampledFrom(modelFiles).Draw(t, "path")
	p := m.abs(i, rel)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Skip("no such file")
	}
	m.destroying(i, rel, false)
	os.Remove(p)
	m.logf("delete %s on %s", rel, m.devs[i].name)
}

func (m *model) rename(t *rapid.T) {
	i := m.drawDev(t)
	names := append(slices.Clone(modelFiles), modelDirs...)
	from := rapid.SampledFrom(names).Draw(t, "from")
	to := rapid.SampledFrom(names).Draw(t, "to")
	src, dst := m.abs(i, from), m.abs(i, to)
	sfi, err := os.Lstat(src)
	if err != nil || from == to || strings.HasPrefix(to+"/", from+"/") {
		t.Skip("nothing to rename")
	}
	if dfi, err := os.Lstat(dst); err == nil {
		if sfi.IsDir() || !dfi.Mode().IsRegular() {
			t.Skip("target exists")
		}
		m.destroying(i, to, false)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Skip("parent is not a directory")
	}
	if err := os.Rename(src, dst); err != nil {
		t.Skip(err.Error())
	}
	m.logf("rename %s to %s on %s", from, to, m.devs[i].name)
}

func (m *model) mkdir(t *rapid.T) {
	i, rel := m.drawDev(t), rapid.SampledFrom(modelDirs).Draw(t, "dir")
	if err := os.MkdirAll(m.abs(i, rel), 0o755); err != nil {
		t.Skip(err.Error())
	}
	m.logf("mkdir %s on %s", rel, m.devs[i].name)
}

func (m *model) rmdir(t *rapid.T) {
	i, rel := m.drawDev(t), rapid.SampledFrom(modelDirs).Draw(t, "dir")
	p := m.abs(i, rel)
	if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
		t.Skip("no such directory")
	}
	for _, f := range listFiles(p, false) {
		m.destroying(i, rel+"/"+f, false)
	}
	os.RemoveAll(p)
	m.logf("rmdir %s on %s", rel, m.devs[i].name)
}

func (m *model) pair(t *rapid.T) (*testDev, *testDev) {
	a := m.drawDev(t)
	b := (a + rapid.IntRange(1, len(m.devs)-1).Draw(t, "other")) % len(m.devs)
	return m.devs[a], m.devs[b]
}

func (m *model) cut(t *rapid.T) {
	a, b := m.pair(t)
	m.net.setLink(a, b, false)
	m.logf("cut %s-%s", a.name, b.name)
}

func (m *model) restore(t *rapid.T) {
	a, b := m.pair(t)
	m.net.setLink(a, b, true)
	m.logf("restore %s-%s", a.name, b.name)
}

func (m *model) stop(t *rapid.T) {
	i := m.drawDev(t)
	if !m.running[i] {
		t.Skip("stopped")
	}
	m.devs[i].stop()
	m.running[i] = false
	m.logf("stop %s", m.devs[i].name)
}

func (m *model) startAction(t *rapid.T) {
	i := m.drawDev(t)
	if m.running[i] {
		t.Skip("running")
	}
	m.start(i)
	m.logf("start %s", m.devs[i].name)
}

func (m *model) rescan(t *rapid.T) {
	i := m.drawDev(t)
	if !m.running[i] {
		t.Skip("stopped")
	}
	m.devs[i].rescan()
	m.logf("rescan %s", m.devs[i].name)
}

func (m *model) sleep(t *rapid.T) {
	d := time.Duration(rapid.IntRange(0, 300).Draw(t, "ms")) * time.Millisecond
	time.Sleep(d)
	m.logf("sleep %v", d)
}

// destroying is called before the user destroys the file rel of device i
// (inPlace: its inode is rewritten, so hard links to it go too): a content
// that exists nowhere else is released from the promise.
func (m *model) destroying(i int, rel string, inPlace bool) {
	p := m.abs(i, rel)
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return
	}
	sum := digest(data)
	if _, ok := m.want[sum]; !ok {
		return
	}
	for _, d := range m.devs {
		found := false
		walkFiles(d.root, func(q string, qfi os.FileInfo) {
			if found || q == p || (inPlace && os.SameFile(fi, qfi)) || strings.HasPrefix(filepath.Base(q), index.TempPrefix) {
				return
			}
			if b, err := os.ReadFile(q); err == nil && digest(b) == sum {
				found = true
			}
		})
		if found {
			return
		}
	}
	delete(m.want, sum)
	m.released++
}

// finish reconnects everything, waits until the devices agree and are
// quiet, and checks that no write was lost.
func (m *model) finish() {
	t := m.rt
	for i := range m.devs {
		if !m.running[i] {
			m.start(i)
		}
		for j := range m.devs {
			if j != i {
				m.net.setLink(m.devs[i], m.devs[j], true)
			}
		}
	}
	deadline := time.Now().Add(m.timeout)
	var last map[string]string
	var diff string
	lastScan := time.Time{}
	for {
		if time.Since(lastScan) > 2*time.Second {
			for _, d := range m.devs {
				d.rescan()
			}
			lastScan = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
		got, why, ok := converged(m.t, m.devs...)
		if ok && last != nil && equalTrees(got, last) {
			break
		}
		if ok {
			last = got
		} else {
			last, diff = nil, why
		}
		if time.Now().After(deadline) {
			m.fail("devices did not converge within %v:\n%s", m.timeout, diff)
		}
	}
	for p, v := range last {
		if v == "TEMP" {
			m.fail("temp file %s left after convergence", p)
		}
	}
	have := map[string]bool{}
	for _, d := range m.devs {
		walkFiles(d.root, func(q string, _ os.FileInfo) {
			if b, err := os.ReadFile(q); err == nil {
				have[digest(b)] = true
			}
		})
	}
	var lost []string
	for sum, desc := range m.want {
		if !have[sum] {
			lost = append(lost, desc)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		m.fail("%d writes lost:\n  %s", len(lost), strings.Join(lost, "\n  "))
	}
	t.Logf("converged: %d entries, %d writes kept, %d released by the user", len(last), len(m.want), m.released)
}

// fail reports the devices' logs and files and what ran. rapid shows the
// output of its replay, which may pass where the first run failed, so with
// SYNCD_MODEL_DUMP=DIR the report of every failing run is also written to
// a file in DIR.
func (m *model) fail(format string, a ...any) {
	var b strings.Builder
	for _, d := range m.devs {
		fmt.Fprintf(&b, "log of %s (watch=%v):\n%s\n", d.name, m.watch[slices.Index(m.devs, d)], tail(d.logText(), 400))
		fmt.Fprintf(&b, "files of %s:\n  %s\n", d.name, strings.Join(listFiles(d.root, true), "\n  "))
	}
	fmt.Fprintf(&b, "operations:\n  %s\n", strings.Join(m.ops, "\n  "))
	if dir := os.Getenv("SYNCD_MODEL_DUMP"); dir != "" {
		f, err := os.CreateTemp(dir, "model-fail-*.txt")
		if err == nil {
			fmt.Fprintf(f, format+"\n\n%s", append(a, b.String())...)
			f.Close()
		}
	}
	m.rt.Logf("%s", b.String())
	m.rt.Fatalf(format, a...)
}

// listFiles returns the regular files under root as slash paths, without
// .syncd (unless withSyncd) and temp files.
func listFiles(root string, withSyncd bool) []string {
	var out []string
	filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == ".syncd" && !withSyncd {
			return filepath.SkipDir
		}
		if de.Type().IsRegular() && !strings.HasPrefix(de.Name(), index.TempPrefix) {
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
