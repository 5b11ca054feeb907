package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
)

func sampleRecord(p string) index.Record {
	data := []byte("hello")
	blocks := []index.Block{{Offset: 0, Size: int64(len(data)), Hash: hashOf(data)}}
	return index.Record{Path: p, Kind: index.File, Size: int64(len(data)), Mode: 0o644, ModTime: 1,
		Blocks: blocks, Content: index.ContentID(int64(len(data)), blocks), Version: index.Vector{{Device: 1, Value: 1}},
		Sequence: 1, HashVersion: index.HashVersion}
}

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	want := []index.Record{sampleRecord("a.txt"), sampleRecord("dir/b.txt")}
	for i := range want {
		if err := writeFrame(&buf, &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	fr := newFrameReader(&buf)
	for i := range want {
		got, err := fr.next()
		if err != nil || got.Path != want[i].Path || got.Content != want[i].Content {
			t.Fatalf("next() = %v, %v; want %v", got.Path, err, want[i].Path)
		}
		if err := checkRecord(&got); err != nil {
			t.Fatalf("checkRecord(%s) = %v", got.Path, err)
		}
	}
	if _, err := fr.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("next() at end = %v, want EOF", err)
	}
}

func TestFrameLimits(t *testing.T) {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], MaxRecordBytes+1)
	if _, err := newFrameReader(bytes.NewReader(hdr[:n])).next(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: %v, want ErrTooLarge", err)
	}
	// A frame that claims 1 MiB but carries 3 bytes fails without
	// allocating the claim.
	n = binary.PutUvarint(hdr[:], 1<<20)
	if _, err := newFrameReader(bytes.NewReader(append(hdr[:n], 1, 2, 3))).next(); err == nil {
		t.Errorf("truncated frame accepted")
	}
}

func FuzzChanges(f *testing.F) {
	var buf bytes.Buffer
	r := sampleRecord("a/b.txt")
	writeFrame(&buf, &r)
	f.Add(buf.Bytes())
	bad := sampleRecord("../escape")
	buf.Reset()
	writeFrame(&buf, &bad)
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b))
		for i := 0; i < 100; i++ {
			rec, err := fr.next()
			if err != nil {
				return
			}
			if checkRecord(&rec) == nil {
				if err := checkRemotePath(rec.Path); err != nil {
					t.Fatalf("accepted record with bad path %q", rec.Path)
				}
				if rec.Inode != 0 || rec.Ctime != 0 {
					t.Fatalf("accepted record keeps a peer's inode or change time")
				}
			}
		}
	})
}

// TestWatchdogStopsForGood: a read of the body after the request is over
// (the check for trailing bytes) must not re-arm the stall timer, which
// would fire a goroutine per request long after the transfer.
func TestWatchdogStopsForGood(t *testing.T) {
	c := &conn{e: &Engine{o: Options{StallTimeout: time.Hour}}}
	sc, stop := c.watchdog(context.Background(), time.Hour)
	body := sc.wrap(io.NopCloser(strings.NewReader("abc")))
	buf := make([]byte, 2)
	if _, err := body.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := stop(nil); err != nil {
		t.Fatalf("stop = %v", err)
	}
	body.Read(buf)
	if sc.timer.Stop() {
		t.Fatal("a read after stop re-armed the stall timer")
	}
}
