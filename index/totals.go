package index

import "fmt"

// Totals is what a folder's live local records add up to, for status.
type Totals struct {
	Files  int64 // regular files, not deleted
	Bytes  int64 // their sizes
	Marked int64 // those of them whose path the folder's mark picks (conflict copies)
}

// totals is one folder's Totals, kept up to date by every local write once
// loaded, with the mark it was loaded with.
type totals struct {
	Totals
	mark func(path string) bool
}

func (t *totals) add(r *Record, sign int64) {
	if r.Deleted || r.Kind != File {
		return
	}
	t.Files += sign
	t.Bytes += sign * r.Size
	if t.mark != nil && t.mark(r.Path) {
		t.Marked += sign
	}
}

// LocalTotals returns the totals of folder's local records. Without load
// it only answers from memory: ok is false until a call with load has
// walked the folder's records once. From then on every local write keeps
// them up to date, so status never walks a large library again. The walk
// holds back local writes while it runs (about 0.25 s per 100,000 records
// here), so that none is missed or counted twice. mark picks the files
// counted in Marked; it is the one the first load was given.
func (s *Store) LocalTotals(folder string, mark func(path string) bool, load bool) (t Totals, ok bool, err error) {
	if err := checkFolder(folder); err != nil {
		return Totals{}, false, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if c := s.totals[folder]; c != nil {
		return c.Totals, true, nil
	}
	if !load {
		return Totals{}, false, nil
	}
	c := &totals{mark: mark}
	err = s.walk(key(pLocal, folder), func(r Record) error {
		c.add(&r, 1)
		return nil
	})
	if err != nil {
		return Totals{}, false, fmt.Errorf("count the local records of %s: %w", folder, err)
	}
	s.totals[folder] = c
	return c.Totals, true, nil
}
