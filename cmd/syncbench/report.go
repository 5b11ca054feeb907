package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// median returns the median of v (the mean of the middle two for an even
// count), or NaN for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of v,
// or NaN for none.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 || p <= 0 || p > 100 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// metric is one row's kind of figure.
type metric struct {
	Case  string // the case it comes from
	Label string // the row label
	Unit  string // "s", "ms" or "MiB"
	// value extracts the figure from one successful run.
	value func(r runResult) (float64, bool)
}

var metrics = []metric{
	{"big", "big file", "s", func(r runResult) (float64, bool) {
		return stepValue(r, 0, func(s stepResult) float64 { return s.Seconds })
	}},
	{"tree", "tree", "s", func(r runResult) (float64, bool) {
		return stepValue(r, 0, func(s stepResult) float64 { return s.Seconds })
	}},
	{"edit", "edit: 2nd sync", "s", func(r runResult) (float64, bool) {
		return stepValue(r, 1, func(s stepResult) float64 { return s.Seconds })
	}},
	{"edit", "edit: 2nd sync wire", "MiB", func(r runResult) (float64, bool) {
		return stepValue(r, 1, func(s stepResult) float64 { return float64(s.WireBytes) / (1 << 20) })
	}},
	{"rename", "rename: 2nd sync", "s", func(r runResult) (float64, bool) {
		return stepValue(r, 1, func(s stepResult) float64 { return s.Seconds })
	}},
	{"rename", "rename: wire", "MiB", func(r runResult) (float64, bool) {
		return stepValue(r, 1, func(s stepResult) float64 { return float64(s.WireBytes) / (1 << 20) })
	}},
	{"rename", "rename: receiver disk growth", "MiB", func(r runResult) (float64, bool) {
		return stepValue(r, 1, func(s stepResult) float64 { return float64(s.DiskGrowth) / (1 << 20) })
	}},
	{"latency", "latency p50", "ms", func(r runResult) (float64, bool) { return latency(r, 50) }},
	{"latency", "latency p95", "ms", func(r runResult) (float64, bool) { return latency(r, 95) }},
}

func stepValue(r runResult, i int, f func(stepResult) float64) (float64, bool) {
	if r.Error != "" || len(r.Steps) <= i {
		return 0, false
	}
	return f(r.Steps[i]), true
}

func latency(r runResult, p float64) (float64, bool) {
	if r.Error != "" || len(r.Steps) == 0 {
		return 0, false
	}
	var v []float64
	for _, s := range r.Steps {
		v = append(v, s.ArrivalSeconds*1000)
	}
	return percentile(v, p), true
}

// row is the aggregate of one metric for one system.
type row struct {
	Metric    metric
	System    string
	Values    []float64
	CPU       []float64 // CPU seconds of the measured step(s)
	PeakRSS   [][]int64
	Bytes     int64 // bytes of the measured step
	Files     int
	Runs      int // runs attempted
	Failed    int
	Disturbed int // successful runs with a disturbed step
}

// aggregate groups the results into rows, in the order of metrics and
// systems.
func aggregate(results []runResult, cases, systems []string) []row {
	var rows []row
	for _, m := range metrics {
		if !slices.Contains(cases, m.Case) {
			continue
		}
		for _, sys := range systems {
			rw := row{Metric: m, System: sys}
			for _, r := range results {
				if r.Case != m.Case || r.System != sys {
					continue
				}
				rw.Runs++
				v, ok := m.value(r)
				if !ok {
					rw.Failed++
					continue
				}
				rw.Values = append(rw.Values, v)
				var cpu float64
				disturbed := false
				for _, s := range r.Steps {
					cpu += s.CPUSeconds
					disturbed = disturbed || s.Disturbed
				}
				if m.Case == "edit" || m.Case == "rename" {
					cpu = r.Steps[1].CPUSeconds
					disturbed = r.Steps[1].Disturbed
				}
				rw.CPU = append(rw.CPU, cpu)
				rw.PeakRSS = append(rw.PeakRSS, r.PeakRSS)
				rw.Bytes, rw.Files = r.Steps[len(r.Steps)-1].Bytes, r.Steps[len(r.Steps)-1].Files
				if disturbed {
					rw.Disturbed++
				}
			}
			if rw.Runs > 0 {
				rows = append(rows, rw)
			}
		}
	}
	return rows
}

// medianOf returns the median figure of the row for the system, if any.
func medianOf(rows []row, label, system string) (float64, bool) {
	for _, r := range rows {
		if r.Metric.Label == label && r.System == system && len(r.Values) > 0 {
			return median(r.Values), true
		}
	}
	return 0, false
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func mibs(v []int64) string {
	var s []string
	for _, n := range v {
		s = append(s, fmt.Sprintf("%.0f", float64(n)/(1<<20)))
	}
	return strings.Join(s, "/")
}

func fig(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case unit == "ms" || v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 0.01 || v == 0:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.4f", v)
}

// peakRSS renders the median peak RSS of each daemon of a row.
func peakRSS(rss [][]int64) string {
	if len(rss) == 0 || len(rss[0]) == 0 {
		return "-"
	}
	var out []int64
	for i := range rss[0] {
		var v []float64
		for _, r := range rss {
			if i < len(r) {
				v = append(v, float64(r[i]))
			}
		}
		out = append(out, int64(median(v)))
	}
	return mibs(out)
}

// writeTable writes the Markdown report.
func writeTable(w io.Writer, results []runResult, cases, systems []string) {
	rows := aggregate(results, cases, systems)
	fmt.Fprintln(w, "| case | system | median | min | max | syncd/system (< 1: syncd better) | rate | CPU s | peak RSS MiB (send/recv) | runs (failed, disturbed) |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		u := r.Metric.Unit
		med := median(r.Values)
		ratio := "-"
		if sd, ok := medianOf(rows, r.Metric.Label, "syncd"); ok && len(r.Values) > 0 && med > 0 {
			ratio = fmt.Sprintf("%.2f", sd/med)
		}
		rate := "-"
		if len(r.Values) > 0 && med > 0 {
			switch r.Metric.Case {
			case "big":
				rate = fmt.Sprintf("%.0f MB/s", float64(r.Bytes)/med/1e6)
			case "tree":
				rate = fmt.Sprintf("%.0f files/s", float64(r.Files)/med)
			}
		}
		lo, hi := math.NaN(), math.NaN()
		if len(r.Values) > 0 {
			lo, hi = slices.Min(r.Values), slices.Max(r.Values)
		}
		fmt.Fprintf(w, "| %s | %s | %s %s | %s | %s | %s | %s | %s | %s | %d (%d, %d) |\n",
			r.Metric.Label, r.System, fig(med, u), u, fig(lo, u), fig(hi, u), ratio, rate,
			fig(median(r.CPU), "s"), peakRSS(r.PeakRSS), r.Runs, r.Failed, r.Disturbed)
	}
	writeIdle(w, results, systems)
	writeTargets(w, rows, results)
}

// idleFigures returns the median idle RSS and CPU of each daemon of a
// system, and the idle window.
func idleFigures(results []runResult, system string) (rss []int64, cpu []float64, window float64, ok bool) {
	var rs [][]int64
	var cs [][]float64
	for _, r := range results {
		if r.System == system && r.Case == "tree" && r.Error == "" && len(r.IdleRSS) > 0 {
			rs = append(rs, r.IdleRSS)
			cs = append(cs, r.IdleCPU)
			window = r.IdleSeconds
		}
	}
	if len(rs) == 0 {
		return nil, nil, 0, false
	}
	for i := range rs[0] {
		var rv, cv []float64
		for j := range rs {
			if i < len(rs[j]) && i < len(cs[j]) {
				rv = append(rv, float64(rs[j][i]))
				cv = append(cv, cs[j][i])
			}
		}
		rss = append(rss, int64(median(rv)))
		cpu = append(cpu, median(cv))
	}
	return rss, cpu, window, true
}

func writeIdle(w io.Writer, results []runResult, systems []string) {
	var lines []string
	for _, sys := range systems {
		rss, cpu, window, ok := idleFigures(results, sys)
		if !ok {
			continue
		}
		var cs []string
		for _, c := range cpu {
			cs = append(cs, fig(c, "s"))
		}
		lines = append(lines, fmt.Sprintf("| %s | %s | %s over %.0f s |", sys, mibs(rss), strings.Join(cs, "/"), window))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprint(w, "\nAfter the tree sync (medians):\n\n")
	fmt.Fprintln(w, "| system | idle RSS MiB (send/recv) | idle CPU s (send/recv) |")
	fmt.Fprintln(w, "|---|--:|--:|")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// writeTargets compares syncd's medians with the targets of issue 5.
func writeTargets(w io.Writer, rows []row, results []runResult) {
	type target struct{ what, goal, got, verdict string }
	var ts []target
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	if v, ok := medianOf(rows, "big file", "syncd"); ok {
		for _, r := range rows {
			if r.Metric.Case == "big" && r.System == "syncd" {
				mbs := float64(r.Bytes) / v / 1e6
				ts = append(ts, target{"big file throughput", ">= 650 MB/s (3x Syncthing)", fmt.Sprintf("%.0f MB/s", mbs), verdict(mbs >= 650)})
			}
		}
		if st, ok := medianOf(rows, "big file", "syncthing"); ok {
			ts = append(ts, target{"big file vs Syncthing", ">= 3x", fmt.Sprintf("%.2fx", st/v), verdict(st/v >= 3)})
		}
		if rs, ok := medianOf(rows, "big file", "rsync"); ok {
			ts = append(ts, target{"big file vs rsync daemon (moonshot)", "faster", fmt.Sprintf("%.2fx", rs/v), verdict(rs/v >= 1)})
		}
	}
	if v, ok := medianOf(rows, "tree", "syncd"); ok {
		ts = append(ts, target{"tree of 10,000 files", "< 2 s", fmt.Sprintf("%.2f s", v), verdict(v < 2)})
		if st, ok := medianOf(rows, "tree", "syncthing"); ok {
			ts = append(ts, target{"tree vs Syncthing", ">= 10x", fmt.Sprintf("%.2fx", st/v), verdict(st/v >= 10)})
		}
	}
	if v, ok := medianOf(rows, "latency p50", "syncd"); ok {
		ts = append(ts, target{"latency p50", "< 300 ms", fmt.Sprintf("%.0f ms", v), verdict(v < 300)})
	}
	if v, ok := medianOf(rows, "latency p95", "syncd"); ok {
		ts = append(ts, target{"latency p95", "< 1000 ms", fmt.Sprintf("%.0f ms", v), verdict(v < 1000)})
	}
	if rss, cpu, window, ok := idleFigures(results, "syncd"); ok {
		top := slices.Max(rss)
		ts = append(ts, target{"idle RSS after the tree", "< 50 MiB", mibs(rss) + " MiB", verdict(top < 50<<20)})
		// "No measurable idle CPU": under one clock tick per 10 s.
		c := slices.Max(cpu)
		ts = append(ts, target{"idle CPU", fmt.Sprintf("none measurable (< %.2f s over %.0f s)", window/1000, window), fmt.Sprintf("%.2f s", c), verdict(c < window/1000)})
	}
	if len(ts) == 0 {
		return
	}
	fmt.Fprint(w, "\nsyncd against the targets of issue 5 (medians):\n\n")
	fmt.Fprintln(w, "| target | goal | syncd | |")
	fmt.Fprintln(w, "|---|---|--:|---|")
	for _, t := range ts {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.what, t.goal, t.got, t.verdict)
	}
}
