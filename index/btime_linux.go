//go:build linux

package index

import (
	"os"

	"golang.org/x/sys/unix"
)

// birthTime is f's birth time (ns), if the file system keeps one.
func birthTime(f *os.File) (int64, bool) {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &st); err != nil || st.Mask&unix.STATX_BTIME == 0 {
		return 0, false
	}
	return st.Btime.Sec*1e9 + int64(st.Btime.Nsec), true
}

// coarseNow is the clock the kernel stamps change times with (ns); it
// lags the precise clock by up to a tick.
func coarseNow() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &ts) != nil {
		return 0 // no file is taken
	}
	return ts.Nano()
}
