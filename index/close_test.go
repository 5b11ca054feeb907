package index

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStoreSyncAfterClose: the index-level root: Store.Sync does not check
// that the store is open (Epoch, LocalSeq and the rest get ErrDBClosed
// from badger's View/Update; Sync goes straight to db.Sync).
func TestStoreSyncAfterClose(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "index"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	res := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				res <- fmt.Errorf("panic: %v", p)
			}
		}()
		res <- st.Sync()
	}()
	select {
	case err := <-res:
		if err == nil || strings.HasPrefix(err.Error(), "panic:") {
			t.Fatalf("Sync after Close: want an error, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sync after Close hung (badger's valueLog lock is never released)")
	}
}
