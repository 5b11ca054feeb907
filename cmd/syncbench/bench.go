package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// allCases are the cases in their default order.
var allCases = []string{"big", "tree", "edit", "latency", "rename"}

// daemonCases are the cases that only daemons run: a rename is one only
// to a system that keeps the two sides in sync (rsync -a and cp -a would
// copy everything again and keep the old names).
var daemonCases = []string{"rename"}

// stepResult is one measured transfer: data placed into the source folder
// until the destination holds it and the receiver has settled.
type stepResult struct {
	Name           string  `json:"name"`
	Seconds        float64 `json:"seconds"`         // placement to complete copy and receiver settled
	ArrivalSeconds float64 `json:"arrival_seconds"` // placement to every file complete at the destination
	Files          int     `json:"files"`
	Bytes          int64   `json:"bytes"`              // bytes placed
	WireBytes      uint64  `json:"wire_bytes"`         // bytes through the namespace's loopback until the arrival
	WireBytesAll   uint64  `json:"wire_bytes_settled"` // the same until settled (includes Syncthing REST polls)
	CPUSeconds     float64 `json:"cpu_seconds"`        // CPU of the system's processes and commands
	OtherCores     float64 `json:"other_cpu_cores"`    // average cores used by the rest of the machine
	Disturbed      bool    `json:"disturbed"`          // OtherCores above the threshold
	SenderCPU      float64 `json:"sender_cpu_seconds"` // of the sending daemon (0 for one-shot tools)
	DiskGrowth     int64   `json:"disk_growth_bytes"`  // growth of the destination's allocated bytes (rename)
}

// runResult is one case run by one system.
type runResult struct {
	Case        string       `json:"case"`
	System      string       `json:"system"`
	Run         int          `json:"run"`
	Started     time.Time    `json:"started"`
	Steps       []stepResult `json:"steps"`
	PeakRSS     []int64      `json:"peak_rss_bytes,omitempty"`      // VmHWM of each daemon (sender, receiver)
	IdleRSS     []int64      `json:"idle_rss_bytes,omitempty"`      // VmRSS of each daemon after the idle window
	IdleCPU     []float64    `json:"idle_cpu_seconds,omitempty"`    // CPU of each daemon over the idle window
	IdleSeconds float64      `json:"idle_window_seconds,omitempty"` // length of the idle window
	Error       string       `json:"error,omitempty"`
}

// harness runs the cases.
type harness struct {
	o        *options
	sz       sizes
	log      io.Writer
	portNext int
	edit     [2][]byte // the edit file before and after the insert; nil until needed
	later    []string  // run directories to remove once every run is done
}

// manyFiles is how many files a run may leave before its directory waits
// for the end of all runs. ext4 without a journal (this machine's root)
// does not reuse an inode freed less than 60 s ago (360 s while its inode
// table block is dirty), and it looks each skipped one up when it allocates
// a new inode (fs/ext4/ialloc.c, find_inode_bit and recently_deleted):
// creating 10,000 files with 8 goroutines took 0.35 CPU-s, and 2.7-3.3
// CPU-s right after 20,000 were removed. Removing a tree run at once
// charged that to whichever run came next: cp -a of the tree took
// 1.84-3.03 s then, and 0.54-0.64 s with this.
const manyFiles = 1000

// snapshot is the machine's and the system's counters at one instant.
type snapshot struct {
	t     time.Time
	cpu   cpuTotal
	trees []treeSample
	self  uint64
	lo    netDev
}

func takeSnapshot(pids []int) (snapshot, error) {
	var s snapshot
	var err error
	if s.trees, err = sampleTrees(pids); err != nil {
		return s, err
	}
	if s.self, err = selfTicks(); err != nil {
		return s, err
	}
	if s.lo, err = readLo(); err != nil {
		return s, err
	}
	if s.cpu, err = readCPUTotal(); err != nil {
		return s, err
	}
	s.t = time.Now()
	return s, nil
}

// runOne runs one case with one system in fresh folders and fresh daemons.
func (h *harness) runOne(ctx context.Context, caseName, sysName string, run int) (res runResult) {
	res = runResult{Case: caseName, System: sysName, Run: run, Started: time.Now().UTC()}
	fail := func(err error) runResult {
		res.Error = err.Error()
		return res
	}
	sys, err := newSystem(sysName, h.o)
	if err != nil {
		return fail(err)
	}
	env := &runEnv{Dir: filepath.Join(h.o.dir, fmt.Sprintf("%s-%s-%d", caseName, sysName, run))}
	env.Src, env.Dst, env.Stage = filepath.Join(env.Dir, "src"), filepath.Join(env.Dir, "dst"), filepath.Join(env.Dir, "stage")
	// Fresh ports per run: no TIME_WAIT or slow exit of the last run can
	// stand in the way.
	env.Port = 20000 + (h.portNext%400)*10
	h.portNext++
	for _, d := range []string{env.Src, env.Dst, env.Stage} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
	}
	if !h.o.keep {
		defer func() {
			files := 0
			for _, st := range res.Steps {
				files += st.Files
			}
			if caseName == "tree" {
				files = max(files, h.sz.TreeFiles) // also when the run failed
			}
			h.dispose(env.Dir, files)
		}()
	}
	defer func() {
		if err := sys.Stop(); err != nil && res.Error == "" {
			res.Error = err.Error()
		}
	}()
	if err := sys.Start(ctx, env); err != nil {
		return fail(fmt.Errorf("start: %w\n%s", err, sys.Logs()))
	}
	step := func(name string, interval time.Duration, gen func(stage string) ([]entry, error)) error {
		sr, err := h.step(ctx, sys, env, name, interval, gen)
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, sys.Logs())
		}
		res.Steps = append(res.Steps, sr)
		return nil
	}
	switch caseName {
	case "big":
		err = step("sync", 10*time.Millisecond, func(stage string) ([]entry, error) { return genBig(stage, h.sz, h.o.seed) })
	case "tree":
		err = step("sync", 25*time.Millisecond, func(stage string) ([]entry, error) { return genTree(stage, h.sz, h.o.seed) })
		if err == nil && len(sys.PIDs()) == 2 {
			err = h.idle(ctx, sys, &res)
		}
	case "edit":
		if h.edit[0] == nil {
			h.edit[0], h.edit[1] = editContent(h.sz, h.o.seed)
		}
		err = step("initial", 10*time.Millisecond, func(stage string) ([]entry, error) { return genEdit(stage, h.edit[0]) })
		if err == nil {
			// Let both sides finish what follows a sync (index
			// updates, the sender's bookkeeping) before the edit.
			sleep(ctx, 2*time.Second)
			err = step("edit", 5*time.Millisecond, func(stage string) ([]entry, error) { return genEdit(stage, h.edit[1]) })
		}
	case "rename":
		var album []entry
		err = step("initial", 25*time.Millisecond, func(stage string) ([]entry, error) {
			es, gerr := genAlbum(stage, h.sz, h.o.seed)
			album = es
			return es, gerr
		})
		if err == nil {
			sleep(ctx, 2*time.Second)
			var du0 int64
			if du0, err = diskUsage(env.Dst); err != nil {
				break
			}
			err = h.stepAct(ctx, sys, env, "rename", 10*time.Millisecond, &res, func() ([]entry, []string, error) {
				return renamed(album, "album/", "photos/"), []string{"album"},
					os.Rename(filepath.Join(env.Src, "album"), filepath.Join(env.Src, "photos"))
			})
			if err == nil {
				du1, derr := diskUsage(env.Dst)
				err = derr
				res.Steps[len(res.Steps)-1].DiskGrowth = du1 - du0
			}
		}
	case "latency":
		for i := range h.sz.Writes {
			err = step(fmt.Sprintf("write%02d", i), 2*time.Millisecond, func(stage string) ([]entry, error) { return genSmall(stage, h.sz, h.o.seed, i) })
			if err != nil {
				break
			}
			sleep(ctx, 300*time.Millisecond)
		}
	default:
		err = fmt.Errorf("unknown case %q (want one of %v)", caseName, allCases)
	}
	if err != nil {
		return fail(err)
	}
	if trees, err := sampleTrees(sys.PIDs()); err == nil {
		for _, t := range trees {
			res.PeakRSS = append(res.PeakRSS, t.HWM)
		}
	}
	return res
}

// dispose removes a finished run's directory, at once if it holds few
// files, else once every run is done (manyFiles).
func (h *harness) dispose(dir string, files int) {
	if files > manyFiles {
		h.later = append(h.later, dir)
		return
	}
	os.RemoveAll(dir)
}

// removeLater removes the directories that dispose kept.
func (h *harness) removeLater() {
	for _, d := range h.later {
		os.RemoveAll(d)
	}
	h.later = nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// stepAct is a step whose change is act in the source folder (not data
// staged and renamed in): act returns the files the destination must then
// hold and the top-level names it must no longer hold.
func (h *harness) stepAct(ctx context.Context, sys system, env *runEnv, name string, interval time.Duration, res *runResult, act func() ([]entry, []string, error)) error {
	sr, err := h.measure(ctx, sys, env, name, interval, nil, act)
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, sys.Logs())
	}
	res.Steps = append(res.Steps, sr)
	return nil
}

// step stages data with gen, renames it into the source folder, and
// measures until the destination holds a verified copy and the receiver
// reports nothing left to do.
func (h *harness) step(ctx context.Context, sys system, env *runEnv, name string, interval time.Duration, gen func(string) ([]entry, error)) (stepResult, error) {
	return h.measure(ctx, sys, env, name, interval, gen, nil)
}

// measure runs a step: the data of gen renamed in, or act.
func (h *harness) measure(ctx context.Context, sys system, env *runEnv, name string, interval time.Duration, gen func(string) ([]entry, error), act func() ([]entry, []string, error)) (stepResult, error) {
	sr := stepResult{Name: name}
	var want []entry
	var err error
	if gen != nil {
		if want, err = gen(env.Stage); err != nil {
			return sr, err
		}
		for _, e := range want {
			sr.Files++
			sr.Bytes += e.Size
		}
	}
	// The data is on disk before the clock starts: writeback of the
	// staged data must not be charged to the system under test.
	syscall.Sync()
	before, err := takeSnapshot(sys.PIDs())
	if err != nil {
		return sr, err
	}
	t0 := time.Now()
	var gone []string
	if act != nil {
		if want, gone, err = act(); err != nil {
			return sr, err
		}
		for _, e := range want {
			sr.Files++
			sr.Bytes += e.Size
		}
	}
	for _, top := range topLevel(want) {
		if act != nil {
			break
		}
		if err := os.Rename(filepath.Join(env.Stage, top), filepath.Join(env.Src, top)); err != nil {
			return sr, err
		}
	}
	copyCPU, err := sys.Copy(ctx)
	if err != nil {
		return sr, err
	}
	arr := newArrival(env.Dst, want)
	if err := waitFor(ctx, h.o.timeout, interval, "every file at the destination", func() (bool, error) {
		if err := sys.Alive(); err != nil {
			return false, err
		}
		for _, g := range gone {
			if _, err := os.Lstat(filepath.Join(env.Dst, g)); err == nil {
				return false, nil // the old name is still there
			}
		}
		return arr.poll()
	}); err != nil {
		return sr, fmt.Errorf("%w (%d of %d files missing)", err, arr.left, len(want))
	}
	sr.ArrivalSeconds = time.Since(t0).Seconds()
	// Bytes on the wire are counted until the arrival: after it the
	// harness polls Syncthing's REST API on the same loopback.
	arrLo, err := readLo()
	if err != nil {
		return sr, err
	}
	sr.WireBytes = arrLo.TxBytes - before.lo.TxBytes
	if err := waitFor(ctx, h.o.timeout, 20*time.Millisecond, "receiver reports nothing left to do", func() (bool, error) {
		return sys.Settled(ctx)
	}); err != nil {
		return sr, err
	}
	sr.Seconds = time.Since(t0).Seconds()
	after, err := takeSnapshot(sys.PIDs())
	if err != nil {
		return sr, err
	}
	if err := verify(env.Dst, want); err != nil {
		return sr, err
	}
	sr.WireBytesAll = after.lo.TxBytes - before.lo.TxBytes
	var sysTicks uint64
	for i := range after.trees {
		d := after.trees[i].Ticks - min(after.trees[i].Ticks, before.trees[i].Ticks)
		sysTicks += d
		if i == 0 && len(after.trees) == 2 {
			sr.SenderCPU = float64(d) / clockTicks
		}
	}
	sr.CPUSeconds = float64(sysTicks)/clockTicks + copyCPU.Seconds()
	busy := after.cpu.Busy - before.cpu.Busy
	own := sysTicks + (after.self - before.self)
	if busy > own {
		sr.OtherCores = float64(busy-own) / clockTicks / after.t.Sub(before.t).Seconds()
	}
	sr.Disturbed = sr.OtherCores > h.o.disturbed
	fmt.Fprintf(h.log, "    %s/%s %s: %.3f s (arrival %.3f s), wire %s, cpu %.2f s, other %.2f cores%s\n",
		sys.Name(), env.Dir[len(h.o.dir)+1:], name, sr.Seconds, sr.ArrivalSeconds, mib(int64(sr.WireBytes)), sr.CPUSeconds, sr.OtherCores, mark(sr.Disturbed))
	// Clear the staging directory for the next step.
	if err := os.RemoveAll(env.Stage); err != nil {
		return sr, err
	}
	return sr, os.MkdirAll(env.Stage, 0o755)
}

func mark(disturbed bool) string {
	if disturbed {
		return " DISTURBED"
	}
	return ""
}

// idle measures the daemons' CPU over the idle window after a short
// settling time, and their resident memory at its end.
func (h *harness) idle(ctx context.Context, sys system, res *runResult) error {
	sleep(ctx, 5*time.Second)
	before, err := sampleTrees(sys.PIDs())
	if err != nil {
		return err
	}
	t0 := time.Now()
	sleep(ctx, h.o.idle)
	if err := ctx.Err(); err != nil {
		return err
	}
	after, err := sampleTrees(sys.PIDs())
	if err != nil {
		return err
	}
	res.IdleSeconds = time.Since(t0).Seconds()
	for i := range after {
		res.IdleRSS = append(res.IdleRSS, after[i].RSS)
		res.IdleCPU = append(res.IdleCPU, float64(after[i].Ticks-min(after[i].Ticks, before[i].Ticks))/clockTicks)
	}
	fmt.Fprintf(h.log, "    %s idle %.0f s: rss %v, cpu %v s\n", sys.Name(), res.IdleSeconds, mibs(res.IdleRSS), res.IdleCPU)
	return nil
}

// runAll runs every case with every system, runs times, alternating the
// order of the systems from run to run.
func (h *harness) runAll(ctx context.Context, cases, systems []string) []runResult {
	defer h.removeLater()
	var out []runResult
	for run := range h.o.runs {
		for _, c := range cases {
			for k := range systems {
				s := systems[(k+run)%len(systems)]
				if ctx.Err() != nil {
					return out
				}
				if slices.Contains(daemonCases, c) && (s == "rsync" || s == "cp") {
					continue
				}
				fmt.Fprintf(h.log, "run %d/%d: %s with %s\n", run+1, h.o.runs, c, s)
				r := h.runOne(ctx, c, s, run)
				if r.Error != "" {
					fmt.Fprintf(h.log, "    FAILED: %s\n", r.Error)
				}
				out = append(out, r)
			}
		}
	}
	return out
}
