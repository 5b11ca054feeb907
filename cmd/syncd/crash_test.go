package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDaemonsKilledAtRandomMoments kills both daemons with SIGKILL at random
// moments while a tree syncs (so the kills land in scans, pulls, renames and
// index writes alike), restarts them, and checks that they converge to A's
// tree with nothing lost and no temp file left.
func TestDaemonsKilledAtRandomMoments(t *testing.T) {
	t.Parallel()
	a, b, dirA, dirB := twoDevices(t)
	a.start()
	b.start()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	t.Logf("seed time %v", time.Now().UnixNano())

	want := map[string]string{}
	write := func(round int) {
		for d := 0; d < 4; d++ {
			for f := 0; f < 40; f++ {
				rel := fmt.Sprintf("r%d/d%d/f%03d.bin", round, d, f)
				writeRandomFile(t, filepath.Join(dirA, rel), int64(1024+rng.IntN(48<<10)), uint64(round*1000+d*100+f))
				want[rel] = ""
			}
		}
		rel := fmt.Sprintf("r%d/big.bin", round)
		writeRandomFile(t, filepath.Join(dirA, rel), 12<<20, uint64(round+99))
		want[rel] = ""
	}
	for round := 0; round < 4; round++ {
		write(round)
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		victim := b
		if round == 1 {
			victim = a // once the sender, in its scan
		}
		victim.kill()
		victim.start()
	}
	for rel := range want {
		sum, err := fileSum(filepath.Join(dirA, rel))
		if err != nil {
			t.Fatal(err)
		}
		want[rel] = sum
	}
	waitFor(t, 2*syncTimeout, "B holds every file A wrote", func() string {
		for rel, sum := range want {
			got, err := fileSum(filepath.Join(dirB, rel))
			if err != nil || got != sum {
				return rel + " missing or different on beta"
			}
		}
		if d := sameTrees(dirA, dirB); d != "" {
			return d
		}
		if tmp := append(tempFiles(dirA), tempFiles(dirB)...); len(tmp) > 0 {
			return fmt.Sprintf("temp files left: %v", tmp)
		}
		return ""
	})
	if _, err := os.Stat(filepath.Join(dirB, ".syncd")); err != nil {
		t.Errorf("beta has no .syncd: %v", err)
	}
}
