package main

import "testing"

func TestTrimDue(t *testing.T) {
	const M = 1 << 20
	for _, c := range []struct {
		name               string
		trimmed, last, now uint64
		want               bool
	}{
		{"idle from the start", 0, 0, 0, false},
		{"small activity only", 0, 3 * M, 3 * M, false},
		{"burst still going", 0, 40 * M, 60 * M, false},
		{"burst over", 0, 60 * M, 60 * M, true},
		{"burst over, a trickle", 0, 60 * M, 60*M + M/8, true},
		{"burst over, but more than a trickle", 0, 60 * M, 60*M + M/2, false},
		{"already trimmed after it", 60 * M, 61 * M, 61 * M, false},
	} {
		if got := trimDue(c.trimmed, c.last, c.now); got != c.want {
			t.Errorf("%s: trimDue(%d, %d, %d) = %v, want %v", c.name, c.trimmed, c.last, c.now, got, c.want)
		}
	}
}

func TestSoftLimit(t *testing.T) {
	const M = 1 << 20
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, memoryLimit},
		{20 * M, memoryLimit},
		{40 * M, memoryLimit},
		{44 * M, 82 * M},
		{160 * M, 256 * M},
	} {
		if got := softLimit(c.live); got != c.want {
			t.Errorf("softLimit(%d MiB) = %d MiB, want %d MiB", c.live/M, got/M, c.want/M)
		}
	}
}
