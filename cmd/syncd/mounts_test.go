package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mountTables points checkMounted at an fstab and a mount table written
// here, and at media directories below dir, for the length of the test.
func mountTables(t *testing.T, dir, fstab, mountinfo string) {
	t.Helper()
	oldF, oldM, oldP, oldU := fstabPath, mountinfoPath, mediaParents, mediaUserParents
	t.Cleanup(func() { fstabPath, mountinfoPath, mediaParents, mediaUserParents = oldF, oldM, oldP, oldU })
	fstabPath = filepath.Join(dir, "fstab")
	mountinfoPath = filepath.Join(dir, "mountinfo")
	mediaParents = []string{filepath.Join(dir, "mnt"), filepath.Join(dir, "media"), filepath.Join(dir, "run/media")}
	mediaUserParents = []string{filepath.Join(dir, "media"), filepath.Join(dir, "run/media")}
	for name, text := range map[string]string{fstabPath: fstab, mountinfoPath: mountinfo} {
		if text == "" {
			continue // no such table
		}
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckMountedFstab(t *testing.T) {
	dir := t.TempDir()
	usb, spaced, nbsp := filepath.Join(dir, "usb"), filepath.Join(dir, "my disk"), filepath.Join(dir, "my\u00a0disk")
	fstab := "# /etc/fstab\n" +
		"UUID=1 / ext4 defaults 0 1\n" +
		"UUID=2 " + usb + " ext4 noauto,user 0 2\n" +
		"LABEL=x " + strings.ReplaceAll(spaced, " ", `\040`) + " vfat noauto 0 0\n" +
		"LABEL=y " + nbsp + " vfat noauto 0 0\n" +
		"/swapfile none swap sw 0 0\n"
	root := "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	if err := os.Mkdir(usb, 0o700); err != nil { // the empty mount point
		t.Fatal(err)
	}
	cases := []struct {
		name, mountinfo, path, want string // want: "" for no error
	}{
		{"below an unmounted fstab mount point", root, filepath.Join(usb, "photos"), usb + " is where /etc/fstab mounts a disk, but none is mounted there now"},
		{"at it", root, usb, usb + " is where /etc/fstab"},
		{"escaped space", root, filepath.Join(spaced, "music"), spaced + " is where /etc/fstab"},
		{"elsewhere", root, filepath.Join(dir, "home/photos"), ""},
		{"mounted", root + "40 22 8:17 / " + usb + " rw - ext4 /dev/sdb1 rw\n", filepath.Join(usb, "photos"), ""},
		{"mounted, escaped", root + "40 22 8:17 / " + strings.ReplaceAll(spaced, " ", `\040`) + " rw - vfat /dev/sdb1 rw\n", filepath.Join(spaced, "music"), ""},
		{"a disk mounted below it", root + "40 22 8:17 / " + filepath.Join(usb, "disk") + " rw - ext4 /dev/sdb1 rw\n", filepath.Join(usb, "disk/photos"), ""},
		{"no-break space is not a separator", root, filepath.Join(nbsp, "x"), nbsp + " is where /etc/fstab"},
		{"no mount table", "", filepath.Join(usb, "photos"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, "mountinfo"))
			mountTables(t, dir, fstab, tc.mountinfo)
			checkErr(t, checkMounted("folder add", tc.path), tc.want)
		})
	}
	t.Run("no fstab", func(t *testing.T) {
		os.Remove(filepath.Join(dir, "fstab"))
		mountTables(t, dir, "", root)
		checkErr(t, checkMounted("folder add", filepath.Join(usb, "photos")), "")
	})
}

func TestCheckMountedMedia(t *testing.T) {
	dir := t.TempDir()
	mountTables(t, dir, "", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"+
		"40 22 8:17 / "+filepath.Join(dir, "media/data")+" rw - ext4 /dev/sdb1 rw\n")
	for _, d := range []string{"media/ann/Stick", "media/data", "mnt", "run/media/bob", "home/ann"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"home/ann/Photos": "media/ann/USB/Photos", "home/ann/Music": "media/ann/Stick"} {
		if err := os.Symlink(filepath.Join(dir, target), filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ path, want string }{
		{"media/ann/USB/photos", "media/ann/USB does not exist; is its disk mounted?"},
		{"media/ann/USB", "media/ann/USB does not exist"},
		{"run/media/bob/USB/photos", "run/media/bob/USB does not exist"},
		{"run/media/dave/USB/photos", "run/media/dave does not exist"}, // /run is emptied at boot
		{"media/carol/USB/photos", "media/carol does not exist"},
		{"mnt/usb/photos", "mnt/usb does not exist"},
		{"media/ann/Stick/photos", ""}, // the disk is there
		{"media/data/photos", ""},      // a disk mounted at /media/NAME
		{"mnt/photos-new", "mnt/photos-new does not exist"},
		{"home/ann/Sync/photos", ""}, // not where disks are mounted
		{"home/ann/Photos", "home/ann/Photos is a symlink to " + filepath.Join(dir, "media/ann/USB/Photos") + ", which does not exist"},
		{"home/ann/Photos/2024", "home/ann/Photos is a symlink to"},
		{"home/ann/Music/new", ""}, // through a symlink to a mounted disk
	}
	for _, tc := range cases {
		want := tc.want
		if want != "" {
			want = filepath.Join(dir, want)
		}
		checkErr(t, checkMounted("folder add", filepath.Join(dir, tc.path)), want)
	}
	// A disk mounted at /mnt itself.
	mountTables(t, dir, "", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 8:17 / "+filepath.Join(dir, "mnt")+" rw - ext4 /dev/sdb1 rw\n")
	checkErr(t, checkMounted("folder add", filepath.Join(dir, "mnt/sync")), "")
}

// TestMountTableTooLarge: a table cut off at its bound is not taken for a
// whole one (a mount point listed past it would look unmounted).
func TestMountTableTooLarge(t *testing.T) {
	name := filepath.Join(t.TempDir(), "mountinfo")
	line := "40 22 8:17 / /mnt/x rw - ext4 /dev/sdb1 rw\n"
	big := strings.Repeat(line, maxMountTable/len(line)+1)
	if err := os.WriteFile(name, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mountPoints(name, 4); err == nil {
		t.Errorf("mountPoints of a %d-byte table: no error", len(big))
	}
	if err := os.WriteFile(name, []byte(big[:maxMountTable-len(line)]), 0o600); err != nil {
		t.Fatal(err)
	}
	if set, err := mountPoints(name, 4); err != nil || !set["/mnt/x"] {
		t.Errorf("mountPoints of a table within the bound: %v, %v", set, err)
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("got %v, want no error", err)
	case want != "" && err == nil:
		t.Errorf("got no error, want %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestFolderAddUnmountedDisk: 'folder add' below an unmounted fstab mount
// point says so in one line, creates nothing and adds no folder.
func TestFolderAddUnmountedDisk(t *testing.T) {
	dir := t.TempDir()
	usb := filepath.Join(dir, "usb")
	if err := os.Mkdir(usb, 0o700); err != nil {
		t.Fatal(err)
	}
	mountTables(t, dir, "UUID=2 "+usb+" ext4 noauto 0 2\n", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
	home := filepath.Join(dir, "home")
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"--home", home, "init", "--name", "a"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("init: %d %s", code, stderr.String())
	}
	stderr.Reset()
	target := filepath.Join(usb, "photos")
	code := realMain([]string{"--home", home, "folder", "add", "photos", target}, &stdout, &stderr)
	if code != exitFailure {
		t.Errorf("folder add: exit %d, want %d", code, exitFailure)
	}
	if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, usb+" is where /etc/fstab mounts a disk") || !strings.Contains(got, "mount it first") {
		t.Errorf("stderr = %q, want one line naming %s and what to do", got, usb)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("%s was created (%v)", target, err)
	}
	stdout.Reset()
	if code := realMain([]string{"--home", home, "folder", "list"}, &stdout, &stderr); code != exitOK || strings.Contains(stdout.String(), "photos") {
		t.Errorf("folder list after the refusal: %d %q", code, stdout.String())
	}
}

// TestCheckRootMounted: the daemon's check of a new folder's root refuses
// a root at or below an unmounted fstab mount point, in one line naming it
// and saying that the folder waits, and accepts it once a disk is mounted
// there.
func TestCheckRootMounted(t *testing.T) {
	dir := t.TempDir()
	usb := filepath.Join(dir, "usb")
	if err := os.MkdirAll(filepath.Join(usb, "photos"), 0o700); err != nil { // on the disk under the mount point
		t.Fatal(err)
	}
	fstab := "UUID=2 " + usb + " ext4 nofail 0 2\n"
	root := "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
	for _, p := range []string{usb, filepath.Join(usb, "photos")} {
		mountTables(t, dir, fstab, root)
		err := checkRootMounted(p)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), usb+" is where /etc/fstab mounts a disk, but none is mounted there now; this folder waits") {
			t.Errorf("checkRootMounted(%s) = %v, want one line naming %s", p, err, usb)
		}
	}
	mountTables(t, dir, fstab, root+"40 22 8:17 / "+usb+" rw - ext4 /dev/sdb1 rw\n")
	checkErr(t, checkRootMounted(filepath.Join(usb, "photos")), "")
	checkErr(t, checkRootMounted(filepath.Join(dir, "elsewhere")), "")
}
