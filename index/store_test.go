package index

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/syncd-project/syncd/transport/deviceid"
)

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	o := Options{InMemory: dir == ""}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%q) = %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func collectLocal(t *testing.T, s *Store, folder string, since uint64) []string {
	t.Helper()
	var got []string
	err := s.LocalSince(folder, since, func(r Record) error {
		got = append(got, fmt.Sprintf("%s@%d", r.Path, r.Sequence))
		return nil
	})
	if err != nil {
		t.Fatalf("LocalSince(%d) = %v", since, err)
	}
	return got
}

func TestStoreLocal(t *testing.T) {
	s := openTest(t, "")
	const f = "photos"
	a := fileRecord("a", 10, 10)
	b := Record{Path: "b", Kind: Dir, Mode: 0o755, Version: Vector{{1, 1}}}
	c := fileRecord("c/d", 2*MaxBlockSize, MaxBlockSize)
	a.Sequence = 999 // ignored
	got, err := s.PutLocal(f, a, b, c)
	if err != nil {
		t.Fatalf("PutLocal = %v", err)
	}
	for i, want := range []uint64{1, 2, 3} {
		if got[i].Sequence != want {
			t.Errorf("PutLocal()[%d].Sequence = %d, want %d", i, got[i].Sequence, want)
		}
	}
	r, ok, err := s.Local(f, "c/d")
	if err != nil || !ok {
		t.Fatalf("Local(c/d) = %v, %v", ok, err)
	}
	if d := cmp.Diff(got[2], r); d != "" {
		t.Errorf("Local(c/d) differs (-put +got):\n%s", d)
	}
	if _, ok, _ := s.Local(f, "zz"); ok {
		t.Errorf("Local(zz) found, want not found")
	}
	if _, ok, _ := s.Local("other", "a"); ok {
		t.Errorf("Local(other, a) found, want not found")
	}
	// Update a: its old sequence disappears from the feed.
	a2 := fileRecord("a", 20, 20)
	a2.Version = a.Version.Update(7)
	if _, err := s.PutLocal(f, a2); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		since uint64
		want  []string
	}{
		{0, []string{"b@2", "c/d@3", "a@4"}},
		{2, []string{"c/d@3", "a@4"}},
		{4, nil},
		{^uint64(0), nil},
	}
	for _, tt := range tests {
		if got := collectLocal(t, s, f, tt.since); !cmp.Equal(got, tt.want) {
			t.Errorf("LocalSince(%d) = %v, want %v", tt.since, got, tt.want)
		}
	}
	if seq, err := s.LocalSeq(f); seq != 4 || err != nil {
		t.Errorf("LocalSeq = %d, %v, want 4", seq, err)
	}
	var paths []string
	_ = s.WalkLocal(f, func(r Record) error { paths = append(paths, r.Path); return nil })
	if want := []string{"a", "b", "c/d"}; !cmp.Equal(paths, want) {
		t.Errorf("WalkLocal = %v, want %v", paths, want)
	}
	// Same path twice in one call: one feed entry, the last.
	if _, err := s.PutLocal(f, fileRecord("x", 1, 1), fileRecord("x", 2, 2)); err != nil {
		t.Fatal(err)
	}
	if got, want := collectLocal(t, s, f, 4), []string{"x@6"}; !cmp.Equal(got, want) {
		t.Errorf("LocalSince(4) after double put = %v, want %v", got, want)
	}
	// fn errors stop the walk.
	boom := errors.New("boom")
	if err := s.LocalSince(f, 0, func(Record) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("LocalSince(fn error) = %v, want boom", err)
	}
}

// TestStoreRefreshLocal updates a record's inode and change time in place
// (same sequence, blocks kept), and only while it has the version given.
func TestStoreRefreshLocal(t *testing.T) {
	s := openTest(t, "")
	const f = "photos"
	put, err := s.PutLocal(f, fileRecord("a", 3*MaxBlockSize, MaxBlockSize))
	if err != nil {
		t.Fatal(err)
	}
	a := put[0]
	if ok, err := s.RefreshLocal(f, "a", a.Version, 77, 1234); !ok || err != nil {
		t.Fatalf("RefreshLocal = %v, %v; want true", ok, err)
	}
	want := a
	want.Inode, want.Ctime = 77, 1234
	if got, _, _ := s.Local(f, "a"); !cmp.Equal(got, want) {
		t.Errorf("after RefreshLocal (-want +got):\n%s", cmp.Diff(want, got))
	}
	if seq, _ := s.LocalSeq(f); seq != a.Sequence {
		t.Errorf("LocalSeq = %d, want %d", seq, a.Sequence)
	}
	if got := collectLocal(t, s, f, 0); !cmp.Equal(got, []string{"a@1"}) {
		t.Errorf("LocalSince = %v, want [a@1]", got)
	}
	for _, c := range []struct {
		name, path string
		v          Vector
	}{
		{"another version", "a", a.Version.Update(5)},
		{"no record", "b", a.Version},
	} {
		if ok, err := s.RefreshLocal(f, c.path, c.v, 1, 1); ok || err != nil {
			t.Errorf("RefreshLocal with %s = %v, %v; want false", c.name, ok, err)
		}
	}
	if got, _, _ := s.Local(f, "a"); got.Inode != 77 {
		t.Errorf("a refused refresh wrote inode %d", got.Inode)
	}
}

func TestStoreManyPages(t *testing.T) {
	s := openTest(t, "")
	var recs []Record
	for i := range 3*pageSize + 7 {
		recs = append(recs, fileRecord(fmt.Sprintf("f%05d", i), 1, 1))
	}
	if _, err := s.PutLocal("f", recs...); err != nil {
		t.Fatal(err)
	}
	n, last := 0, uint64(0)
	err := s.LocalSince("f", 5, func(r Record) error {
		if r.Sequence <= last {
			t.Errorf("LocalSince out of order: %d after %d", r.Sequence, last)
		}
		last = r.Sequence
		n++
		return nil
	})
	if err != nil || n != len(recs)-5 {
		t.Errorf("LocalSince(5) = %d records, %v, want %d", n, err, len(recs)-5)
	}
	n = 0
	_ = s.WalkLocal("f", func(Record) error { n++; return nil })
	if n != len(recs) {
		t.Errorf("WalkLocal = %d records, want %d", n, len(recs))
	}
}

func TestStoreRejects(t *testing.T) {
	s := openTest(t, "")
	bad := fileRecord("../x", 1, 1)
	if _, err := s.PutLocal("f", bad); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("PutLocal(bad path) = %v, want ErrInvalidRecord", err)
	}
	if _, err := s.PutLocal("", fileRecord("a", 1, 1)); !errors.Is(err, ErrBadFolder) {
		t.Errorf("PutLocal(empty folder) = %v, want ErrBadFolder", err)
	}
	if err := s.PutRemote("f", deviceid.ID{1}, 1, bad); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("PutRemote(bad path) = %v, want ErrInvalidRecord", err)
	}
}

func TestStoreEpochPersists(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e1, err := s.Epoch("f")
	if err != nil || e1 == 0 {
		t.Fatalf("Epoch = %d, %v", e1, err)
	}
	if _, err := s.PutLocal("f", fileRecord("a", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	if e2, _ := s.Epoch("f"); e2 != e1 {
		t.Errorf("Epoch after reopen = %d, want %d", e2, e1)
	}
	if seq, _ := s.LocalSeq("f"); seq != 1 {
		t.Errorf("LocalSeq after reopen = %d, want 1", seq)
	}
	if err := s.ResetEpoch("f"); err != nil {
		t.Fatal(err)
	}
	if e3, _ := s.Epoch("f"); e3 == e1 || e3 == 0 {
		t.Errorf("Epoch after reset = %d, want new (old %d)", e3, e1)
	}
	if e, _ := s.Epoch("g"); e == e1 {
		t.Errorf("Epoch(g) = Epoch(f)")
	}
}

func TestStoreRemote(t *testing.T) {
	s := openTest(t, "")
	devA, devB := deviceid.ID{0xa}, deviceid.ID{0xb}
	ra := fileRecord("a", 5, 5)
	ra.Sequence = 10
	rb := fileRecord("b", 5, 5)
	rb.Sequence = 7
	if e, q, err := s.Progress("f", devA); e != 0 || q != 0 || err != nil {
		t.Errorf("Progress(new) = %d, %d, %v, want 0, 0, nil", e, q, err)
	}
	if err := s.PutRemote("f", devA, 100, ra, rb); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRemote("f", devB, 200, rb); err != nil {
		t.Fatal(err)
	}
	if e, q, _ := s.Progress("f", devA); e != 100 || q != 10 {
		t.Errorf("Progress(A) = %d, %d, want 100, 10", e, q)
	}
	got, ok, err := s.Remote("f", devA, "a")
	if err != nil || !ok {
		t.Fatalf("Remote(A, a) = %v, %v", ok, err)
	}
	if d := cmp.Diff(ra, got); d != "" {
		t.Errorf("Remote(A, a) differs:\n%s", d)
	}
	if _, ok, _ := s.Remote("f", devB, "a"); ok {
		t.Errorf("Remote(B, a) found, want not found")
	}
	devs, err := s.Devices("f")
	if err != nil || !cmp.Equal(devs, []deviceid.ID{devA, devB}) {
		t.Errorf("Devices = %v, %v, want [A B]", devs, err)
	}
	// Same epoch, lower sequence: progress does not go back.
	rc := fileRecord("c", 1, 1)
	rc.Sequence = 3
	if err := s.PutRemote("f", devA, 100, rc); err != nil {
		t.Fatal(err)
	}
	if _, q, _ := s.Progress("f", devA); q != 10 {
		t.Errorf("Progress(A) after older record = %d, want 10", q)
	}
	// New epoch: A's old records are dropped.
	if err := s.PutRemote("f", devA, 101, rc); err != nil {
		t.Fatal(err)
	}
	var paths []string
	_ = s.WalkRemote("f", devA, func(r Record) error { paths = append(paths, r.Path); return nil })
	if want := []string{"c"}; !cmp.Equal(paths, want) {
		t.Errorf("WalkRemote(A) after epoch change = %v, want %v", paths, want)
	}
	if e, q, _ := s.Progress("f", devA); e != 101 || q != 3 {
		t.Errorf("Progress(A) after epoch change = %d, %d, want 101, 3", e, q)
	}
	paths = nil
	_ = s.WalkRemote("f", devB, func(r Record) error { paths = append(paths, r.Path); return nil })
	if want := []string{"b"}; !cmp.Equal(paths, want) {
		t.Errorf("WalkRemote(B) = %v, want %v", paths, want)
	}
	// A progress-only device (no records) is not listed.
	if err := s.PutRemote("g", devA, 5); err != nil {
		t.Fatal(err)
	}
	if devs, _ := s.Devices("g"); len(devs) != 0 {
		t.Errorf("Devices(g) = %v, want none", devs)
	}
	// Devices keeps up with writes after its first answer: a new epoch
	// without records drops A, records add B.
	if err := s.PutRemote("g", devA, 6, fileRecord("x", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if devs, _ := s.Devices("g"); !cmp.Equal(devs, []deviceid.ID{devA}) {
		t.Errorf("Devices(g) after A's record = %v, want [A]", devs)
	}
	if err := s.PutRemote("g", devA, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRemote("g", devB, 1, fileRecord("y", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if devs, _ := s.Devices("g"); !cmp.Equal(devs, []deviceid.ID{devB}) {
		t.Errorf("Devices(g) after A's new empty epoch and B's record = %v, want [B]", devs)
	}
}

func TestStoreBlockIndex(t *testing.T) {
	s := openTest(t, "")
	a := fileRecord("a", 2*MaxBlockSize+3, MaxBlockSize)
	if _, err := s.PutLocal("f", a); err != nil {
		t.Fatal(err)
	}
	cp := a
	cp.Path = "copy"
	if _, err := s.PutLocal("g", cp); err != nil {
		t.Fatal(err)
	}
	h := a.Blocks[1].Hash
	locs, err := s.BlockLocations(h, 0)
	want := []Location{{"f", "a", MaxBlockSize, MaxBlockSize}, {"g", "copy", MaxBlockSize, MaxBlockSize}}
	if err != nil || !cmp.Equal(locs, want) {
		t.Errorf("BlockLocations = %v, %v, want %v", locs, err, want)
	}
	if locs, _ := s.BlockLocations(h, 1); len(locs) != 1 {
		t.Errorf("BlockLocations(max 1) = %d, want 1", len(locs))
	}
	// Replace a with other content, delete copy: the old block is gone.
	if _, err := s.PutLocal("f", fileRecord("a", 7, 7)); err != nil {
		t.Fatal(err)
	}
	tomb := cp
	tomb.Deleted, tomb.Blocks, tomb.Size = true, nil, 0
	if _, err := s.PutLocal("g", tomb); err != nil {
		t.Fatal(err)
	}
	if locs, _ := s.BlockLocations(h, 0); len(locs) != 0 {
		t.Errorf("BlockLocations after replace and delete = %v, want none", locs)
	}
	n := fileRecord("a", 7, 7)
	if locs, _ := s.BlockLocations(n.Blocks[0].Hash, 0); len(locs) != 1 || locs[0].Path != "a" {
		t.Errorf("BlockLocations(new) = %v, want [f a]", locs)
	}
}

// TestBlockLocationsOf: a batch lookup answers each hash with the places
// written for it, in the order asked, whatever the order of the keys.
func TestBlockLocationsOf(t *testing.T) {
	s := openTest(t, "")
	var hs []Hash
	want := map[Hash][]Location{}
	for i := range 20 {
		r := fileRecord(fmt.Sprintf("f%02d", i), int64(100+i), 1000)
		if _, err := s.PutLocal("f", r); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, r.Blocks[0].Hash)
		want[r.Blocks[0].Hash] = []Location{{"f", r.Path, 0, r.Size}}
	}
	// Both blocks of two (and of its copy) have the same hash in
	// fileRecord's scheme; the index keeps one place per file.
	two := fileRecord("two", 2*MaxBlockSize, MaxBlockSize)
	cp := two
	cp.Path = "two-copy"
	if _, err := s.PutLocal("f", two, cp); err != nil {
		t.Fatal(err)
	}
	twoHash := two.Blocks[1].Hash
	unknown1, unknown2 := Hash{0xff}, Hash{0xfe, 1}
	ask := []Hash{twoHash, unknown1, hs[7], unknown2, hs[0], hs[19], twoHash}
	for _, max := range []int{0, 1} {
		got, err := s.BlockLocationsOf(ask, max)
		if err != nil || len(got) != len(ask) {
			t.Fatalf("BlockLocationsOf(max %d) = %d answers, %v; want %d", max, len(got), err, len(ask))
		}
		for i, h := range ask {
			w := want[h]
			if h == twoHash {
				w = []Location{{"f", "two", MaxBlockSize, MaxBlockSize}, {"f", "two-copy", MaxBlockSize, MaxBlockSize}}
				if max == 1 {
					w = w[:1]
				}
			}
			if !cmp.Equal(got[i], w, cmpopts.EquateEmpty()) {
				t.Errorf("BlockLocationsOf(max %d)[%d] = %v, want %v", max, i, got[i], w)
			}
		}
	}
}

func TestStoreChanged(t *testing.T) {
	s := openTest(t, "")
	ch := s.Changed("f")
	other := s.Changed("g")
	select {
	case <-ch:
		t.Fatal("Changed fired before any put")
	default:
	}
	if _, err := s.PutLocal("f", fileRecord("a", 1, 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed(f) did not fire after PutLocal")
	}
	select {
	case <-other:
		t.Error("Changed(g) fired after a put on f")
	default:
	}
	if s.Changed("f") == ch {
		t.Error("Changed(f) returned the fired channel again")
	}
}

func TestStoreRunGC(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunGC(ctx, time.Millisecond) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunGC = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunGC did not stop")
	}
}

// TestStoreForgetLocal: a folder's local records, sequences and block
// locations go, with a new epoch; another folder's (whose ID the first is a
// prefix of), and the peers' records of the folder, stay. LocalFolders
// lists the folders with local records.
func TestStoreForgetLocal(t *testing.T) {
	s := openTest(t, "")
	a := fileRecord("a", 2*MaxBlockSize+3, MaxBlockSize)
	var recs []Record
	for i := range 3 * pageSize { // more than one page of the walks
		recs = append(recs, fileRecord("many/"+strconv.Itoa(i), 5, 5))
	}
	if _, err := s.PutLocal("f", append(recs, a)...); err != nil {
		t.Fatal(err)
	}
	g := a
	g.Path = "g-copy"
	if _, err := s.PutLocal("ff", g); err != nil {
		t.Fatal(err)
	}
	dev := deviceid.ID{0xa}
	if err := s.PutRemote("f", dev, 100, fileRecord("r", 5, 5)); err != nil {
		t.Fatal(err)
	}
	epoch, err := s.Epoch("f")
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := s.LocalFolders(); err != nil || !cmp.Equal(ids, []string{"f", "ff"}) {
		t.Errorf("LocalFolders = %v, %v; want [f ff]", ids, err)
	}
	if err := s.ForgetLocal("f"); err != nil {
		t.Fatal(err)
	}
	if got := collectLocal(t, s, "f", 0); len(got) != 0 {
		t.Errorf("%d local records after ForgetLocal, want none", len(got))
	}
	n := 0
	if err := s.WalkLocal("f", func(Record) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("WalkLocal after ForgetLocal: %d records, %v; want none", n, err)
	}
	if seq, err := s.LocalSeq("f"); seq != 0 || err != nil {
		t.Errorf("LocalSeq after ForgetLocal = %d, %v; want 0", seq, err)
	}
	if e, _ := s.Epoch("f"); e == epoch {
		t.Error("the epoch did not change")
	}
	locs, err := s.BlockLocations(a.Blocks[1].Hash, 0)
	if want := []Location{{"ff", "g-copy", MaxBlockSize, MaxBlockSize}}; err != nil || !cmp.Equal(locs, want) {
		t.Errorf("BlockLocations after ForgetLocal = %v, %v; want only %v", locs, err, want)
	}
	if got := collectLocal(t, s, "ff", 0); len(got) != 1 {
		t.Errorf("folder ff's records = %v, want its one", got)
	}
	if _, ok, _ := s.Remote("f", dev, "r"); !ok {
		t.Error("the peer's record of f is gone")
	}
	if ids, err := s.LocalFolders(); err != nil || !cmp.Equal(ids, []string{"ff"}) {
		t.Errorf("LocalFolders after ForgetLocal = %v, %v; want [ff]", ids, err)
	}
	if recs, err := s.PutLocal("f", fileRecord("c", 5, 5)); err != nil || recs[0].Sequence != 1 {
		t.Errorf("the first record after ForgetLocal = %+v, %v; want sequence 1", recs, err)
	}
}

// TestStoreForgetLocalInterrupted: a ForgetLocal stopped after its first
// step (a crash) leaves the folder's forget pending and its records
// listed; the next ForgetLocal finishes, and drops the marker's token too.
func TestStoreForgetLocalInterrupted(t *testing.T) {
	s := openTest(t, "")
	if _, err := s.PutLocal("f", fileRecord("a", 5, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMarkerToken("f", "tok"); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.MarkerToken("f"); tok != "tok" || err != nil {
		t.Fatalf("MarkerToken = %q, %v; want tok", tok, err)
	}
	if p, err := s.ForgetPending("f"); p || err != nil {
		t.Fatalf("ForgetPending before any forget = %v, %v", p, err)
	}
	crash := errors.New("crash")
	forgetHook = func() error { return crash }
	err := s.ForgetLocal("f")
	forgetHook = nil
	if !errors.Is(err, crash) {
		t.Fatalf("ForgetLocal = %v, want the crash", err)
	}
	if p, err := s.ForgetPending("f"); !p || err != nil {
		t.Errorf("ForgetPending after an interrupted forget = %v, %v; want true", p, err)
	}
	if ids, err := s.LocalFolders(); err != nil || !cmp.Equal(ids, []string{"f"}) {
		t.Errorf("LocalFolders after an interrupted forget = %v, %v; want [f]", ids, err)
	}
	if err := s.ForgetLocal("f"); err != nil {
		t.Fatal(err)
	}
	if p, err := s.ForgetPending("f"); p || err != nil {
		t.Errorf("ForgetPending after the forget finished = %v, %v; want false", p, err)
	}
	if got := collectLocal(t, s, "f", 0); len(got) != 0 {
		t.Errorf("%d local records after the forget finished, want none", len(got))
	}
	if tok, err := s.MarkerToken("f"); tok != "" || err != nil {
		t.Errorf("MarkerToken after ForgetLocal = %q, %v; want none", tok, err)
	}
}
