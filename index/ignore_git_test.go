package index

import "testing"

// ignoredLikeGit writes .syncdignore and the files, scans, and fails for each
// file in ignored that got a record (it would be sent to every peer).
func ignoredLikeGit(t *testing.T, patterns string, ignored []string, synced []string) {
	t.Helper()
	e := newScanEnv(t)
	e.write(IgnoreFile, patterns)
	for _, p := range append(append([]string{}, ignored...), synced...) {
		e.write(p, "x")
	}
	e.scan()
	for _, p := range ignored {
		if _, ok, _ := e.st.Local("f", p); ok {
			t.Errorf(".syncdignore %q: %s is recorded (synced), git ignores it", patterns, p)
		}
	}
	for _, p := range synced {
		if _, ok, _ := e.st.Local("f", p); !ok {
			t.Errorf(".syncdignore %q: %s is not recorded, git does not ignore it", patterns, p)
		}
	}
}

// fnmatch's negated bracket expression [!...], which git takes.
func TestScanIgnoreBracketNegation(t *testing.T) {
	ignoredLikeGit(t, "backup-[!0-9]*\n", []string{"backup-old.tar"}, []string{"backup-2024.tar"})
}

// An ignore file saved with a UTF-8 byte order mark (Windows editors):
// git skips the mark; its first pattern must still apply.
func TestScanIgnoreFileWithBOM(t *testing.T) {
	ignoredLikeGit(t, "\ufeff*.secret\n", []string{"db.secret"}, []string{"a.txt"})
}

// A negated directory pattern brings back the directory, not the files
// in it that another pattern ignores.
func TestScanIgnoreNegatedDir(t *testing.T) {
	ignoredLikeGit(t, "*.txt\n!notes/\n", []string{"notes/a.txt", "b.txt"}, []string{"notes/a.jpg"})
}
