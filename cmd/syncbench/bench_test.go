package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A run with many files is removed only after every run, so that the
// inodes it frees do not slow down the next run's file creation.
func TestDisposeKeepsManyFilesForTheEnd(t *testing.T) {
	root := t.TempDir()
	small, tree := filepath.Join(root, "big-syncd-0"), filepath.Join(root, "tree-syncd-0")
	for _, d := range []string{small, tree} {
		if err := os.MkdirAll(filepath.Join(d, "src"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{}
	h.dispose(small, 1)
	h.dispose(tree, manyFiles+1)
	if _, err := os.Stat(small); !os.IsNotExist(err) {
		t.Errorf("a run with 1 file is still there after dispose (stat: %v)", err)
	}
	if _, err := os.Stat(tree); err != nil {
		t.Errorf("a run with %d files was removed at once: %v", manyFiles+1, err)
	}
	h.removeLater()
	if _, err := os.Stat(tree); !os.IsNotExist(err) {
		t.Errorf("removeLater left %s (stat: %v)", tree, err)
	}
}
