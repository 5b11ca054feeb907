package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc. It is 100 on
// every Linux architecture Go supports; the standard library has no sysconf.
const clockTicks = 100

// errProcFormat is returned when a /proc file does not look as expected.
var errProcFormat = errors.New("unexpected /proc format")

// procStat holds the fields of /proc/PID/stat that the harness uses, in
// clock ticks.
type procStat struct {
	PPID   int
	Utime  uint64 // user time of the process
	Stime  uint64 // system time of the process
	Cutime uint64 // user time of its waited-for children
	Cstime uint64 // system time of its waited-for children
}

// ticks is the CPU time of the process and its reaped children.
func (s procStat) ticks() uint64 { return s.Utime + s.Stime + s.Cutime + s.Cstime }

// parseStat parses /proc/PID/stat. The command name is in parentheses and
// may hold spaces and parentheses itself, so fields are counted from the
// last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("stat: no command name: %w", errProcFormat)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := bytes.Fields(b[i+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("stat: %d fields: %w", len(f), errProcFormat)
	}
	var s procStat
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil || ppid < 0 {
		return procStat{}, fmt.Errorf("stat: ppid %q: %w", f[1], errProcFormat)
	}
	s.PPID = ppid
	for j, dst := range []*uint64{&s.Utime, &s.Stime, &s.Cutime, &s.Cstime} {
		// cutime and cstime are signed in the kernel; they are never negative.
		v, err := strconv.ParseUint(string(f[11+j]), 10, 63)
		if err != nil {
			return procStat{}, fmt.Errorf("stat: field %d %q: %w", 14+j, f[11+j], errProcFormat)
		}
		*dst = v
	}
	return s, nil
}

// procMem holds the memory figures of /proc/PID/status, in bytes.
type procMem struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: peak resident since the process started
}

// parseStatus parses VmRSS and VmHWM from /proc/PID/status. Kernel threads
// have neither; that is an error here since only user processes are sampled.
func parseStatus(b []byte) (procMem, error) {
	var m procMem
	var seen int
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &m.RSS
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &m.HWM
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) != 3 || string(f[2]) != "kB" {
			return procMem{}, fmt.Errorf("status: %q: %w", line, errProcFormat)
		}
		v, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil || v < 0 || v > 1<<40 {
			return procMem{}, fmt.Errorf("status: %q: %w", line, errProcFormat)
		}
		*dst = v * 1024
		seen++
	}
	if seen != 2 {
		return procMem{}, fmt.Errorf("status: VmRSS or VmHWM missing: %w", errProcFormat)
	}
	return m, nil
}

// netDev is the byte counters of one interface in /proc/net/dev.
type netDev struct {
	RxBytes, TxBytes uint64
}

// parseNetDev parses /proc/net/dev into a map from interface name to
// counters.
func parseNetDev(b []byte) (map[string]netDev, error) {
	out := make(map[string]netDev)
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue // the two header lines and the trailing empty line
		}
		n := string(bytes.TrimSpace(name))
		if n == "" || bytes.Contains(name, []byte("|")) {
			return nil, fmt.Errorf("net/dev: %q: %w", line, errProcFormat)
		}
		f := bytes.Fields(rest)
		if len(f) != 16 {
			return nil, fmt.Errorf("net/dev: %s: %d fields: %w", n, len(f), errProcFormat)
		}
		rx, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		tx, err2 := strconv.ParseUint(string(f[8]), 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("net/dev: %s: counters: %w", n, errProcFormat)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("net/dev: %s twice: %w", n, errProcFormat)
		}
		out[n] = netDev{RxBytes: rx, TxBytes: tx}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("net/dev: no interfaces: %w", errProcFormat)
	}
	return out, nil
}

// cpuTotal is the machine-wide CPU time of /proc/stat, in clock ticks.
type cpuTotal struct {
	Busy uint64 // user+nice+system+irq+softirq+steal
	All  uint64 // Busy plus idle and iowait
}

// parseCPUTotal parses the aggregate "cpu" line of /proc/stat.
func parseCPUTotal(b []byte) (cpuTotal, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		if len(f) < 9 {
			return cpuTotal{}, fmt.Errorf("stat: cpu line has %d fields: %w", len(f), errProcFormat)
		}
		var v [8]uint64 // user nice system idle iowait irq softirq steal
		for i := range v {
			n, err := strconv.ParseUint(string(f[1+i]), 10, 62)
			if err != nil {
				return cpuTotal{}, fmt.Errorf("stat: cpu field %d %q: %w", i+1, f[1+i], errProcFormat)
			}
			v[i] = n
		}
		// guest and guest_nice are already included in user and nice.
		busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		return cpuTotal{Busy: busy, All: busy + v[3] + v[4]}, nil
	}
	return cpuTotal{}, fmt.Errorf("stat: no cpu line: %w", errProcFormat)
}

// readCPUTotal reads /proc/stat.
func readCPUTotal() (cpuTotal, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTotal{}, err
	}
	return parseCPUTotal(b)
}

// readLo reads the loopback counters of the current network namespace.
func readLo() (netDev, error) {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return netDev{}, err
	}
	m, err := parseNetDev(b)
	if err != nil {
		return netDev{}, err
	}
	lo, ok := m["lo"]
	if !ok {
		return netDev{}, fmt.Errorf("net/dev: no lo: %w", errProcFormat)
	}
	return lo, nil
}

// treeSample is the summed CPU time and memory of a process and all its
// descendants.
type treeSample struct {
	Ticks uint64 // CPU, including reaped children
	RSS   int64
	HWM   int64 // sum of each process's own peak: an upper bound of the tree's peak
	Procs int
}

// sampleTrees samples each root PID with its descendants. A root that has
// exited yields a zero sample.
func sampleTrees(roots []int) ([]treeSample, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	stats := make(map[int]procStat)
	children := make(map[int][]int)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		s, err := parseStat(b)
		if err != nil {
			continue
		}
		stats[pid] = s
		children[s.PPID] = append(children[s.PPID], pid)
	}
	out := make([]treeSample, len(roots))
	for i, root := range roots {
		if _, ok := stats[root]; !ok {
			continue
		}
		queue := []int{root}
		for len(queue) > 0 {
			pid := queue[0]
			queue = queue[1:]
			out[i].Ticks += stats[pid].ticks()
			out[i].Procs++
			if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status")); err == nil {
				if m, err := parseStatus(b); err == nil {
					out[i].RSS += m.RSS
					out[i].HWM += m.HWM
				}
			}
			queue = append(queue, children[pid]...)
		}
	}
	return out, nil
}

// selfTicks is the CPU time of this process and its reaped children (the
// short commands it ran).
func selfTicks() (uint64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	s, err := parseStat(b)
	if err != nil {
		return 0, err
	}
	return s.ticks(), nil
}
