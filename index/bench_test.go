package index

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// benchN is the size of the large benchmarks: small by default, the
// figures of the report with SYNCD_BENCH_BIG=1.
func benchN(small, big int) int {
	if os.Getenv("SYNCD_BENCH_BIG") == "1" {
		return big
	}
	return small
}

func maxRSSMiB() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // Linux: KiB
}

// cpuTime is the process's user+system CPU time so far: on this shared,
// loaded machine it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// makeTree writes n files of 1-64 KiB in directories of 100. With
// SYNCD_BENCH_TREE=DIR the tree is made once in DIR/tree-N and reused by
// later runs (the caller removes DIR).
func makeTree(b *testing.B, n int) string {
	root := b.TempDir()
	if d := os.Getenv("SYNCD_BENCH_TREE"); d != "" {
		root = filepath.Join(d, fmt.Sprintf("tree-%d", n))
		if _, err := os.Stat(root + ".done"); err == nil {
			return root
		}
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		defer func() {
			if !b.Failed() {
				_ = os.WriteFile(root+".done", nil, 0o644)
			}
		}()
	}
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i*7 + i>>8)
	}
	for i := range n {
		d := filepath.Join(root, fmt.Sprintf("d%04d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		size := 1024 + (i*7919)%(63<<10)
		buf[0], buf[1], buf[2] = byte(i), byte(i>>8), byte(i>>16)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), buf[:size], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkScan: first scan and unchanged rescan of 10k (100k with
// SYNCD_BENCH_BIG=1) small files into an on-disk store.
func BenchmarkScan(b *testing.B) {
	n := benchN(10000, 100000)
	root := makeTree(b, n)
	b.Run(fmt.Sprintf("first-%d", n), func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			st, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			sc := NewScanner(st, "f", root, ScanOptions{Self: 1})
			b.StartTimer()
			res, err := sc.Scan(context.Background())
			if err != nil || res.Files != n || res.Changed != n+n/100 {
				b.Fatalf("Scan = %+v, %v", res, err)
			}
			b.StopTimer()
			_ = st.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
		b.ReportMetric(maxRSSMiB(), "maxRSS-MiB")
	})
	b.Run(fmt.Sprintf("rescan-%d", n), func(b *testing.B) {
		st, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		sc := NewScanner(st, "f", root, ScanOptions{Self: 1})
		if _, err := sc.Scan(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		cpu := cpuTime()
		for b.Loop() {
			res, err := sc.Scan(context.Background())
			if err != nil || res.Changed != 0 || res.Deleted != 0 {
				b.Fatalf("rescan = %+v, %v", res, err)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
		b.ReportMetric(maxRSSMiB(), "maxRSS-MiB")
	})
}

// BenchmarkStoreFootprint writes n one-block file records (100k; 1M with
// SYNCD_BENCH_BIG=1) and reports disk use and the process's peak RSS.
func BenchmarkStoreFootprint(b *testing.B) {
	n := benchN(100000, 1000000)
	for b.Loop() {
		dir := b.TempDir()
		st, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]Record, 0, batchSize)
		for i := range n {
			r := fileRecord(fmt.Sprintf("photos/2024/%03d/IMG_%07d.jpg", i/1000, i), 1+int64(i%200000), MaxBlockSize)
			r.Blocks[0].Hash = ContentID(int64(i), nil) // distinct blocks
			r.Content = ContentID(r.Size, r.Blocks)
			batch = append(batch, r)
			if len(batch) == cap(batch) || i == n-1 {
				if _, err := st.PutLocal("f", batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		count := 0
		_ = st.WalkLocal("f", func(Record) error { count++; return nil })
		if count != n {
			b.Fatalf("WalkLocal = %d records, want %d", count, n)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.ReportMetric(float64(dirSize(dir))/(1<<20), "disk-MiB")
		b.ReportMetric(maxRSSMiB(), "maxRSS-MiB")
	}
}

func BenchmarkRecordCodec(b *testing.B) {
	r := fileRecord("photos/2024/IMG_0001.jpg", 8<<20, 1<<20)
	enc, _ := EncodeRecord(&r)
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			_, _ = EncodeRecord(&r)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			_, _ = DecodeRecord(enc)
		}
	})
}

// vmHWM returns the peak resident set size of this process (VmHWM) in MiB.
func vmHWM() (float64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// TestScanRSSHelper is the child process of BenchmarkScanRSS: with
// SYNCD_SCAN_RSS_TREE and SYNCD_SCAN_RSS_STORE set it scans the tree into the
// store once and prints its peak RSS; otherwise it does nothing.
func TestScanRSSHelper(t *testing.T) {
	tree, dir := os.Getenv("SYNCD_SCAN_RSS_TREE"), os.Getenv("SYNCD_SCAN_RSS_STORE")
	if tree == "" || dir == "" {
		return // not a child of BenchmarkScanRSS
	}
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if prof := os.Getenv("SYNCD_SCAN_RSS_HEAPPROF"); prof != "" {
		stop := make(chan struct{})
		defer close(stop)
		go heapAtPeak(prof, stop)
	}
	start := time.Now()
	res, err := NewScanner(st, "f", tree, ScanOptions{Self: 1}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	hwm, err := vmHWM()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("SCANRSS files=%d changed=%d hwm=%.1f seconds=%.3f\n", res.Files, res.Changed, hwm, took.Seconds())
}

// BenchmarkScanRSS measures the peak RSS of a scan alone: a child process
// (this test binary running TestScanRSSHelper) does a first scan of the
// tree into a fresh store, a second child rescans it unchanged; each
// reports its VmHWM. 10k files (100k with SYNCD_BENCH_BIG=1).
func BenchmarkScanRSS(b *testing.B) {
	n := benchN(10000, 100000)
	root := makeTree(b, n)
	run := func(b *testing.B, store string) (hwm, secs float64) {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestScanRSSHelper$", "-test.count", "1")
		cmd.Env = append(os.Environ(), "SYNCD_SCAN_RSS_TREE="+root, "SYNCD_SCAN_RSS_STORE="+store)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("helper: %v\n%s", err, out)
		}
		for line := range strings.Lines(string(out)) {
			if rest, ok := strings.CutPrefix(line, "SCANRSS "); ok {
				var files, changed int
				if _, err := fmt.Sscanf(rest, "files=%d changed=%d hwm=%g seconds=%g", &files, &changed, &hwm, &secs); err != nil {
					b.Fatalf("helper output %q: %v", line, err)
				}
				if files != n {
					b.Fatalf("helper scanned %d files, want %d", files, n)
				}
				return hwm, secs
			}
		}
		b.Fatalf("helper printed no result:\n%s", out)
		return 0, 0
	}
	for b.Loop() {
		store := b.TempDir()
		first, firstSecs := run(b, store)
		again, againSecs := run(b, store)
		b.ReportMetric(first, "first-peakRSS-MiB")
		b.ReportMetric(again, "rescan-peakRSS-MiB")
		b.ReportMetric(firstSecs, "first-s")
		b.ReportMetric(againSecs, "rescan-s")
	}
}

// heapAtPeak writes a heap profile to file each time the heap in use after
// a GC reaches a new high, until stop is closed (to see what a peak holds).
func heapAtPeak(file string, stop <-chan struct{}) {
	var high uint64
	var ms runtime.MemStats
	for {
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > high+(4<<20) {
			high = ms.HeapAlloc
			runtime.GC()
			if f, err := os.Create(file); err == nil {
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}
	}
}

// BenchmarkBlockLookup looks up the blocks of 10,000 one-block files (a
// tree pulled by a peer) one by one and in batches of 64, as the block
// server gets them.
func BenchmarkBlockLookup(b *testing.B) {
	const n, batch = 10000, 64
	dir := b.TempDir()
	st, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	hs := make([]Hash, n)
	recs := make([]Record, 0, batchSize)
	for i := range n {
		r := fileRecord(fmt.Sprintf("tree/d%03d/f%05d.bin", i%100, i), 1+int64(i%60000), MaxBlockSize)
		r.Blocks[0].Hash = ContentID(int64(i), nil)
		r.Content = ContentID(r.Size, r.Blocks)
		hs[i] = r.Blocks[0].Hash
		if recs = append(recs, r); len(recs) == cap(recs) || i == n-1 {
			if _, err := st.PutLocal("f", recs...); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	// Reopened, the index is in tables on disk, as in a running daemon
	// some time after the scan, not in its memtable.
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if st, err = Open(dir, Options{}); err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	check := func(locs []Location) {
		if len(locs) != 1 {
			b.Fatalf("%d places of a block, want 1", len(locs))
		}
	}
	b.Run("one-by-one", func(b *testing.B) {
		for b.Loop() {
			for _, h := range hs {
				locs, err := st.BlockLocations(h, 4)
				if err != nil {
					b.Fatal(err)
				}
				check(locs)
			}
		}
	})
	b.Run("batches", func(b *testing.B) {
		for b.Loop() {
			for i := 0; i < n; i += batch {
				all, err := st.BlockLocationsOf(hs[i:min(i+batch, n)], 4)
				if err != nil {
					b.Fatal(err)
				}
				for _, locs := range all {
					check(locs)
				}
			}
		}
	})
}

// BenchmarkTrickleDevices is what a pull does while a peer's records
// arrive one at a time (a peer applying a large delete or rename): one
// PutRemote of one record, then Devices. Its cost per operation must not
// grow with b.N (compare -benchtime 10000x and 40000x).
func BenchmarkTrickleDevices(b *testing.B) {
	s := openTest(b, b.TempDir())
	dev := deviceid.ID{0xb}
	i := 0
	for b.Loop() {
		r := Record{Path: fmt.Sprintf("A/d%03d/f%05d.jpg", i%250, i), Kind: File, Deleted: true, Mode: 0o644, ModTime: 1,
			Version: Vector{{Device: dev.Key(), Value: uint64(i + 1)}}, Sequence: uint64(i + 1), HashVersion: HashVersion}
		if err := s.PutRemote("f", dev, 1, r); err != nil {
			b.Fatal(err)
		}
		if devs, err := s.Devices("f"); err != nil || len(devs) != 1 {
			b.Fatalf("Devices = %v, %v; want one", devs, err)
		}
		i++
	}
}
