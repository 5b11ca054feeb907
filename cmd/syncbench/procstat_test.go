package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want procStat
		err  bool
	}{
		{"plain", "1234 (syncd) S 99 1234 1234 0 -1 4194560 100 0 0 0 250 75 3 4 20 0 12 0 500 1000 200 18446744073709551615",
			procStat{PPID: 99, Utime: 250, Stime: 75, Cutime: 3, Cstime: 4}, false},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 10 20 30 40 20 0 1 0",
			procStat{PPID: 1, Utime: 10, Stime: 20, Cutime: 30, Cstime: 40}, false},
		{"no name", "7 syncd R 1 7", procStat{}, true},
		{"short", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 10", procStat{}, true},
		{"bad number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 ten 20 30 40 20", procStat{}, true},
		{"negative cutime", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 10 20 -30 40 20", procStat{}, true},
		{"bad ppid", "7 (x) R -1 7 7 0 -1 0 0 0 0 0 10 20 30 40 20", procStat{}, true},
		{"empty", "", procStat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("parseStat(%q) error = %v, want error %v", tt.in, err, tt.err)
			}
			if err != nil && !errors.Is(err, errProcFormat) {
				t.Errorf("parseStat(%q) error = %v, want errProcFormat", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("parseStat(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want procMem
		err  bool
	}{
		{"both", "Name:\tsyncd\nVmPeak:\t 100 kB\nVmHWM:\t   43460 kB\nVmRSS:\t   40000 kB\nThreads:\t7\n", procMem{RSS: 40000 << 10, HWM: 43460 << 10}, false},
		{"kernel thread", "Name:\tkthreadd\nState:\tS\n", procMem{}, true},
		{"no unit", "VmHWM:\t1\nVmRSS:\t1\n", procMem{}, true},
		{"negative", "VmHWM:\t-1 kB\nVmRSS:\t1 kB\n", procMem{}, true},
		{"huge", "VmHWM:\t99999999999999 kB\nVmRSS:\t1 kB\n", procMem{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("parseStatus(%q) error = %v, want error %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("parseStatus(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

const netDevSample = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 269749046   12387    0    0    0     0          0         0 269749046   12387    0    0    0     0       0          0
  eth0:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
`

func TestParseNetDev(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]netDev
		err  bool
	}{
		{"two", netDevSample, map[string]netDev{"lo": {269749046, 269749046}, "eth0": {1000, 2000}}, false},
		{"headers only", netDevSample[:strings.Index(netDevSample, "    lo")], nil, true},
		{"short line", "lo: 1 2 3\n", nil, true},
		{"twice", "lo: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\nlo: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n", nil, true},
		{"bad counter", "lo: x 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNetDev([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("parseNetDev(%q) error = %v, want error %v", tt.in, err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseNetDev(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseCPUTotal(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want cpuTotal
		err  bool
	}{
		{"ten fields", "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 50 2 25 500 3 1 1 0 0 0\n", cpuTotal{Busy: 161, All: 1168}, false},
		{"eight fields", "cpu 1 2 3 4 5 6 7 8\n", cpuTotal{Busy: 1 + 2 + 3 + 6 + 7 + 8, All: 36}, false},
		{"only per-cpu", "cpu0 1 2 3 4 5 6 7 8\n", cpuTotal{}, true},
		{"short", "cpu 1 2 3\n", cpuTotal{}, true},
		{"bad", "cpu 1 2 3 x 5 6 7 8\n", cpuTotal{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUTotal([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("parseCPUTotal(%q) error = %v, want error %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("parseCPUTotal(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestSampleTreesSelf samples this test process: a live tree must have
// memory and one process at least; an exited PID gives a zero sample.
func TestSampleTreesSelf(t *testing.T) {
	got, err := sampleTrees([]int{os.Getpid(), 1 << 30})
	if err != nil {
		t.Fatalf("sampleTrees() error = %v", err)
	}
	if got[0].Procs < 1 || got[0].RSS <= 0 || got[0].HWM < got[0].RSS {
		t.Errorf("sampleTrees(self) = %+v, want a process with RSS <= HWM", got[0])
	}
	if got[1] != (treeSample{}) {
		t.Errorf("sampleTrees(no such pid) = %+v, want zero", got[1])
	}
	if _, err := readLo(); err != nil {
		t.Errorf("readLo() error = %v", err)
	}
	if c, err := readCPUTotal(); err != nil || c.All < c.Busy {
		t.Errorf("readCPUTotal() = %+v, %v", c, err)
	}
}

func FuzzParseProc(f *testing.F) {
	f.Add([]byte(netDevSample))
	f.Add([]byte("1234 (syncd) S 99 1234 1234 0 -1 4194560 100 0 0 0 250 75 3 4 20 0 12 0"))
	f.Add([]byte("VmHWM:\t   43460 kB\nVmRSS:\t   40000 kB\n"))
	f.Add([]byte("cpu  100 5 50 1000 7 3 2 1 0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := parseStat(b); err == nil && s.ticks() < s.Utime {
			t.Errorf("parseStat(%q) = %+v: ticks overflow", b, s)
		}
		if m, err := parseStatus(b); err == nil && (m.RSS < 0 || m.HWM < 0) {
			t.Errorf("parseStatus(%q) = %+v: negative", b, m)
		}
		if m, err := parseNetDev(b); err == nil && len(m) == 0 {
			t.Errorf("parseNetDev(%q) = empty map without error", b)
		}
		if c, err := parseCPUTotal(b); err == nil && c.All < c.Busy {
			t.Errorf("parseCPUTotal(%q) = %+v: busy above all", b, c)
		}
	})
}
