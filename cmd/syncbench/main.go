// Command syncbench measures syncd side by side with Syncthing, an rsync
// daemon and cp on the same data, on the same machine, in one run, and
// prints a Markdown table with ratios (issue 9).
//
// It needs root: everything that opens a socket runs in a network namespace
// whose only interface is loopback, which syncbench creates, runs itself
// in, and deletes at the end. Inside, each run of a case gets fresh folders
// and fresh daemons; every process is stopped by PID and its data removed.
//
//	go run ./cmd/syncbench --quick                  # 256 MiB big file, 10 s idle
//	go run ./cmd/syncbench --runs 5 --out r.json    # the full data sets
//
// It owns nothing of syncd: it drives the syncd binary through its command
// line (init, peer add, folder add, run, status --json) like a user would.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings.
type options struct {
	quick        bool
	runs         int
	cases        []string
	systems      []string
	seed         uint64
	keep         bool
	out          string
	dir          string // work directory; a new temporary one if empty
	idle         time.Duration
	disturbed    float64 // cores of foreign CPU use that mark a step disturbed
	timeout      time.Duration
	syncdBin     string
	syncthingBin string
	rsyncBin     string
	noInstall    bool
	syncdRev     string // git commit syncd was built from, for the JSON
}

// envNetns names the namespace the harness re-executed itself in.
const envNetns = "SYNCBENCH_NETNS"

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("syncbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cases, systems string
	var idle time.Duration
	fs.BoolVar(&o.quick, "quick", false, "256 MiB big file and a 10 s idle window")
	fs.IntVar(&o.runs, "runs", 3, "runs of each case per system")
	fs.StringVar(&cases, "cases", strings.Join(allCases, ","), "cases to run")
	fs.StringVar(&systems, "systems", strings.Join(allSystems, ","), "systems to compare")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the data sets")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (folders, homes, logs)")
	fs.StringVar(&o.out, "out", "", "write every run as JSON to this file (default: syncbench-TIME.json in the temp directory)")
	fs.StringVar(&o.dir, "dir", "", "work directory (default: a new one in the temp directory; needs space for twice the big file)")
	fs.DurationVar(&idle, "idle", 0, "idle window after the tree sync (default 60s, 10s with --quick)")
	fs.Float64Var(&o.disturbed, "disturbed", 0.25, "mark a step disturbed when the rest of the machine used more CPU cores than this on average")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on a step after this long")
	fs.StringVar(&o.syncdBin, "syncd", "", "syncd binary (default: built from ./cmd/syncd)")
	fs.StringVar(&o.syncthingBin, "syncthing-bin", "syncthing", "syncthing binary")
	fs.StringVar(&o.rsyncBin, "rsync-bin", "rsync", "rsync binary")
	fs.StringVar(&o.syncdRev, "syncd-rev", "", "the git commit of the syncd binary (recorded in the JSON; set when syncbench builds it)")
	fs.BoolVar(&o.noInstall, "no-install", false, "fail instead of installing missing syncthing/rsync with apt-get")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.runs < 1 || o.runs > 100 {
		return nil, fmt.Errorf("--runs %d: want 1 to 100", o.runs)
	}
	var err error
	if o.cases, err = list(cases, allCases); err != nil {
		return nil, fmt.Errorf("--cases: %w", err)
	}
	if o.systems, err = list(systems, allSystems); err != nil {
		return nil, fmt.Errorf("--systems: %w", err)
	}
	o.idle = idle
	if o.idle == 0 {
		o.idle = 60 * time.Second
		if o.quick {
			o.idle = 10 * time.Second
		}
	}
	if o.idle < time.Second || o.idle > time.Hour {
		return nil, fmt.Errorf("--idle %v: want 1s to 1h", o.idle)
	}
	if o.timeout < time.Second {
		return nil, fmt.Errorf("--timeout %v: want at least 1s", o.timeout)
	}
	if o.disturbed <= 0 {
		return nil, fmt.Errorf("--disturbed %v: want a positive number of cores", o.disturbed)
	}
	return o, nil
}

// list parses a comma-separated subset of known, keeping known's order.
func list(s string, known []string) ([]string, error) {
	want := make(map[string]bool)
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if !slices.Contains(known, v) {
			return nil, fmt.Errorf("unknown %q (want some of %s)", v, strings.Join(known, ","))
		}
		want[v] = true
	}
	var out []string
	for _, k := range known {
		if want[k] {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}

func mainErr(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "syncbench: %v\n", err)
		return 2
	}
	if ns := os.Getenv(envNetns); ns != "" {
		err = inside(o, ns, stdout, stderr)
	} else {
		err = outside(o, args, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "syncbench: %v\n", err)
		return 1
	}
	return 0
}

// outside prepares the tools, creates the namespace, runs the harness
// inside it, and deletes the namespace.
func outside(o *options, args []string, stderr io.Writer) error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("needs Linux (network namespaces, /proc)")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to create a network namespace; run it as root (e.g. sudo make bench-compare)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("needs the ip command (iproute2): %w", err)
	}
	ctx := context.Background()
	var extra []string
	for _, sys := range o.systems {
		var pkg, bin string
		switch sys {
		case "syncthing":
			pkg, bin = "syncthing", "syncthing"
		case "rsync":
			pkg, bin = "rsync", "rsync"
		default:
			continue
		}
		path, err := exec.LookPath(bin)
		if err != nil {
			if o.noInstall {
				return fmt.Errorf("%s is not installed (apt-get install -y %s)", bin, pkg)
			}
			fmt.Fprintf(stderr, "installing %s: apt-get install -y %s\n", bin, pkg)
			if out, err := exec.Command("apt-get", "install", "-y", pkg).CombinedOutput(); err != nil {
				return fmt.Errorf("apt-get install -y %s: %w\n%s", pkg, err, out)
			}
			if path, err = exec.LookPath(bin); err != nil {
				return err
			}
		}
		extra = append(extra, "--"+bin+"-bin="+path)
	}
	if slices.Contains(o.systems, "syncd") && o.syncdBin == "" {
		dir, err := os.MkdirTemp("", "syncbench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.syncdBin = filepath.Join(dir, "syncd")
		fmt.Fprintf(stderr, "building syncd: go build -o %s ./cmd/syncd\n", o.syncdBin)
		cmd := exec.Command("go", "build", "-o", o.syncdBin, "./cmd/syncd")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build syncd (run syncbench from the repository root, or pass --syncd): %w", err)
		}
		extra = append(extra, "--syncd="+o.syncdBin)
		if rev, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
			extra = append(extra, "--syncd-rev="+strings.TrimSpace(string(rev)))
		}
	}
	ns := fmt.Sprintf("sb%d", os.Getpid())
	if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("create the network namespace: %w", err)
	}
	defer deleteNetns(ns, stderr)
	if _, err := run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, self}, append(extra, args...)...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, stderr
	cmd.Env = append(os.Environ(), envNetns+"="+ns)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sig:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			if err != nil {
				return fmt.Errorf("the harness in namespace %s: %w", ns, err)
			}
			return nil
		}
	}
}

// deleteNetns kills, by PID, whatever the harness left in its namespace
// and deletes it.
func deleteNetns(ns string, stderr io.Writer) {
	ctx := context.Background()
	if out, err := run(ctx, "ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
				fmt.Fprintf(stderr, "syncbench: killing leftover pid %d in %s\n", pid, ns)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for range 50 {
		if _, err := run(ctx, "ip", "netns", "del", ns); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "syncbench: could not delete network namespace %s; run 'ip netns del %s'\n", ns, ns)
}

// inside runs the cases in the namespace.
func inside(o *options, ns string, stdout, stderr io.Writer) error {
	devs, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return err
	}
	m, err := parseNetDev(devs)
	if err != nil {
		return err
	}
	if _, ok := m["lo"]; !ok || len(m) != 1 {
		return fmt.Errorf("namespace %s must have lo as its only interface, has %d: refusing to run", ns, len(m))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "syncbench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(o.dir)
		}
	} else if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(os.TempDir(), "syncbench-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	}
	sz := fullSizes
	if o.quick {
		sz = quickSizes()
	}
	h := &harness{o: o, sz: sz, log: stderr}
	fmt.Fprintf(stderr, "syncbench: namespace %s, work directory %s, %d run(s) of %v with %v\n", ns, o.dir, o.runs, o.cases, o.systems)
	results := h.runAll(ctx, o.cases, o.systems)
	if err := writeJSON(o, sz, results); err != nil {
		return err
	}
	writeTable(stdout, results, o.cases, o.systems)
	fmt.Fprintf(stderr, "syncbench: every run in %s\n", o.out)
	if o.keep {
		fmt.Fprintf(stderr, "syncbench: kept %s\n", o.dir)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted")
	}
	for _, r := range results {
		if r.Error != "" {
			return fmt.Errorf("%s with %s (run %d) failed", r.Case, r.System, r.Run+1)
		}
	}
	return nil
}

// report is the JSON file.
type report struct {
	Version   int         `json:"version"`
	Started   time.Time   `json:"started"`
	Quick     bool        `json:"quick"`
	Seed      uint64      `json:"seed"`
	Sizes     sizes       `json:"sizes"`
	CPUs      int         `json:"cpus"`
	Disturbed float64     `json:"disturbed_threshold_cores"`
	Tools     []string    `json:"tools"`
	Runs      []runResult `json:"runs"`
}

func writeJSON(o *options, sz sizes, results []runResult) error {
	r := report{Version: 1, Quick: o.quick, Seed: o.seed, Sizes: sz, CPUs: runtime.NumCPU(), Disturbed: o.disturbed, Runs: results}
	if len(results) > 0 {
		r.Started = results[0].Started
	}
	if o.syncdBin != "" {
		r.Tools = append(r.Tools, "syncd "+o.syncdRev)
	}
	for _, v := range [][]string{{o.syncthingBin, "--version"}, {o.rsyncBin, "--version"}} {
		if v[0] == "" {
			continue
		}
		out, _ := exec.Command(v[0], v[1]).CombinedOutput()
		line, _, _ := strings.Cut(string(out), "\n")
		r.Tools = append(r.Tools, strings.TrimSpace(line))
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(o.out, append(b, '\n'), 0o644)
}
