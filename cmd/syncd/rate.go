package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// maxRate bounds a rate limit (1 PB/s): beyond it the number is a typo.
const maxRate = 1e15

// rateUnits are the accepted units, case-insensitive, all in bytes.
var rateUnits = map[string]float64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
}

// parseRate parses a bandwidth limit in bytes per second: "0" (unlimited),
// a plain number of bytes, or a number with a unit: B, KB, MB, GB (powers of
// 1000) or KiB, MiB, GiB (powers of 1024), case-insensitive, with an
// optional space before the unit and an optional "/s" after it. Fractions
// are allowed ("1.5MB"). The result is rounded down to whole bytes.
func parseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if len(t) > 32 {
		return 0, errors.New("too long")
	}
	t = strings.TrimSuffix(strings.ToLower(t), "/s")
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, errors.New(`want a number such as "10MB" or "0" for unlimited`)
	}
	mult, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (use B, KB, MB, GB, KiB, MiB or GiB)", unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", num)
	}
	bytes := v * mult
	if math.IsNaN(bytes) || bytes > maxRate {
		return 0, fmt.Errorf("more than %s per second", formatBytes(maxRate))
	}
	if bytes > 0 && bytes < 1 {
		return 0, errors.New("less than one byte per second (use 0 for unlimited)")
	}
	return int64(bytes), nil
}

// formatBytes renders n bytes with an SI unit: "512 B", "1.5 MB".
func formatBytes(n int64) string {
	if n < 1000 && n > -1000 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB"}
	f, u := float64(n)/1000, 0
	for math.Abs(f) >= 999.95 && u < len(units)-1 {
		f /= 1000
		u++
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}
