package index

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
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

// makeTree writes n files of 1-64 KiB in directories of 100.
func makeTree(b *testing.B, n int) string {
	root := b.TempDir()
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
		for b.Loop() {
			res, err := sc.Scan(context.Background())
			if err != nil || res.Changed != 0 || res.Deleted != 0 {
				b.Fatalf("rescan = %+v, %v", res, err)
			}
		}
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
