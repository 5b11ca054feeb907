package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestMedianPercentile(t *testing.T) {
	tests := []struct {
		in       []float64
		med, p95 float64
	}{
		{[]float64{3, 1, 2}, 2, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 4},
		{[]float64{5}, 5, 5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.med {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.med)
		}
		if got := percentile(tt.in, 95); got != tt.p95 {
			t.Errorf("percentile(%v, 95) = %v, want %v", tt.in, got, tt.p95)
		}
	}
	var twenty []float64
	for i := range 20 {
		twenty = append(twenty, float64(20-i))
	}
	if got := percentile(twenty, 95); got != 19 {
		t.Errorf("percentile(1..20, 95) = %v, want 19", got)
	}
	if !math.IsNaN(median(nil)) || !math.IsNaN(percentile(nil, 50)) {
		t.Errorf("median(nil), percentile(nil) want NaN")
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"cp,syncd", "syncd,cp", false},
		{"syncd, syncd", "syncd", false},
		{"", "", true},
		{"scp", "", true},
	}
	for _, tt := range tests {
		got, err := list(tt.in, allSystems)
		if (err != nil) != tt.err || strings.Join(got, ",") != tt.want {
			t.Errorf("list(%q) = %v, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--quick", "--runs", "2", "--cases", "tree"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !o.quick || o.runs != 2 || len(o.cases) != 1 || o.idle.Seconds() != 10 || len(o.systems) != 4 {
		t.Errorf("parseFlags() = %+v", o)
	}
	for _, bad := range [][]string{{"--runs", "0"}, {"--cases", "huge"}, {"--idle", "1ms"}, {"extra"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) = nil error, want one", bad)
		}
	}
}

// TestWriteTable renders made-up runs: ratios are syncd's median over the
// other system's, failed and disturbed runs are counted, and the targets
// are judged.
func TestWriteTable(t *testing.T) {
	run := func(c, sys string, secs float64, disturbed bool, steps int) runResult {
		r := runResult{Case: c, System: sys, PeakRSS: []int64{10 << 20, 20 << 20}}
		for range steps {
			r.Steps = append(r.Steps, stepResult{Seconds: secs, ArrivalSeconds: secs, Bytes: 1e9, Files: 1, CPUSeconds: 1, Disturbed: disturbed, WireBytes: 1 << 20})
		}
		return r
	}
	results := []runResult{
		run("big", "syncd", 1, false, 1), run("big", "syncd", 3, true, 1), run("big", "syncd", 2, false, 1),
		run("big", "syncthing", 8, false, 1), {Case: "big", System: "syncthing", Error: "boom"},
		run("latency", "syncd", 0.1, false, 20),
		run("tree", "syncd", 1.5, false, 1),
	}
	results[len(results)-1].IdleRSS = []int64{30 << 20, 40 << 20}
	results[len(results)-1].IdleCPU = []float64{0, 0.01}
	results[len(results)-1].IdleSeconds = 60
	var b bytes.Buffer
	writeTable(&b, results, allCases, []string{"syncd", "syncthing"})
	out := b.String()
	for _, want := range []string{
		"| big file | syncd | 2.00 s | 1.00 | 3.00 | 1.00 | 500 MB/s | 1.00 | 10/20 | 3 (0, 1) |",
		"| big file | syncthing | 8.00 s | 8.00 | 8.00 | 0.25 | 125 MB/s | 1.00 | 10/20 | 2 (1, 0) |",
		"| latency p50 | syncd | 100 ms |",
		"| big file throughput | >= 650 MB/s (3x Syncthing) | 500 MB/s | **missed** |",
		"| big file vs Syncthing | >= 3x | 4.00x | met |",
		"| tree of 10,000 files | < 2 s | 1.50 s | met |",
		"| idle RSS after the tree | < 50 MiB | 30/40 MiB | met |",
		"| syncd | 30/40 | 0.00/0.01 over 60 s |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("writeTable() lacks %q; got:\n%s", want, out)
		}
	}
}
