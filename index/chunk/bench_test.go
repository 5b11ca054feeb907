package chunk

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func BenchmarkCut(b *testing.B) {
	data := gen("bench", 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for off := 0; off < len(data); {
			off += Cut(data[off:])
		}
	}
}

// BenchmarkCutRange rolls the gear hash over every byte (no cut).
func BenchmarkCutRange(b *testing.B) {
	data := gen("bench", 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		cutRange(data, 0, 0, len(data), ^uint64(0))
	}
}

func BenchmarkSum(b *testing.B) {
	data := gen("bench", 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Sum(data)
	}
}

func BenchmarkChunkSerial(b *testing.B) {
	data := gen("bench", 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_ = Chunk(bytes.NewReader(data), func(Block, []byte) error { return nil })
	}
}

// BenchmarkHashFile chunks and hashes one file from the page cache on all
// cores: 256 MiB, or 2 GiB with SYNCD_BENCH_BIG=1.
func BenchmarkHashFile(b *testing.B) {
	n := 256 << 20
	if os.Getenv("SYNCD_BENCH_BIG") == "1" {
		n = 2 << 30
	}
	p := filepath.Join(b.TempDir(), "big")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	chunk := gen("bench", 64<<20)
	for w := 0; w < n; w += len(chunk) {
		if _, err := f.Write(chunk[:min(len(chunk), n-w)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	h := NewHasher(0)
	if _, _, _, err := h.HashFile(p); err != nil { // warm the page cache
		b.Fatal(err)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		if _, _, _, err := h.HashFile(p); err != nil {
			b.Fatal(err)
		}
	}
	// CPU seconds per GiB: steadier than wall time on a loaded machine.
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N)/(float64(n)/(1<<30)), "cpu-s/GiB")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
