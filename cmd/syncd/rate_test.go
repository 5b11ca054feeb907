package main

import "testing"

func TestParseRate(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"", 0, false},
		{"1000", 1000, true},
		{"100MB", 100_000_000, true},
		{"100 MB", 100_000_000, true},
		{"100mb", 100_000_000, true},
		{"100MB/s", 100_000_000, true},
		{"1.5MB", 1_500_000, true},
		{"2KiB", 2048, true},
		{"1MiB", 1 << 20, true},
		{"3GiB", 3 << 30, true},
		{"1GB", 1_000_000_000, true},
		{"10B", 10, true},
		{"0.5", 0, false},
		{"0.0", 0, true},
		{"-5", 0, false},
		{"MB", 0, false},
		{"5TB", 0, false},
		{"1e3", 0, false},
		{"1..2MB", 0, false},
		{"NaN", 0, false},
		{"2000000GB", 0, false},
		{"1000000GB", 1e15, true},
		{"99999999999999999999999999999999999", 0, false},
	}
	for _, tc := range cases {
		got, err := parseRate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRate(%q) = %d, %v, want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	cases := map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1_500_000: "1.5 MB", 999_960: "1.0 MB", 1e18: "1000.0 PB"}
	for in, want := range cases {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseRate: no panic, never negative, never above the bound.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"0", "100MB", "1.5 GiB/s", "-1", "1e9", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseRate(s)
		if err == nil && (n < 0 || n > maxRate) {
			t.Fatalf("parseRate(%q) = %d, out of range", s, n)
		}
	})
}
