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
	mediaParents = []string{filepath.Join(dir, "mnt"), filepath.Join(dir, "media")}
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
	usb, spaced := filepath.Join(dir, "usb"), filepath.Join(dir, "my disk")
	fstab := "# /etc/fstab\n" +
		"UUID=1 / ext4 defaults 0 1\n" +
		"UUID=2 " + usb + " ext4 noauto,user 0 2\n" +
		"LABEL=x " + strings.ReplaceAll(spaced, " ", `\040`) + " vfat noauto 0 0\n" +
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
	mountTables(t, dir, "", "")
	for _, d := range []string{"media/ann/Stick", "mnt", "run/media/bob"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ path, want string }{
		{"media/ann/USB/photos", "media/ann/USB does not exist; is its disk mounted?"},
		{"media/ann/USB", "media/ann/USB does not exist"},
		{"run/media/bob/USB/photos", "run/media/bob/USB does not exist"},
		{"media/carol/USB/photos", "media/carol does not exist"},
		{"mnt/usb/photos", "mnt/usb does not exist"},
		{"media/ann/Stick/photos", ""}, // the disk is there
		{"mnt/photos-new", "mnt/photos-new does not exist"},
		{"home/ann/Sync/photos", ""}, // not where disks are mounted
	}
	for _, tc := range cases {
		want := tc.want
		if want != "" {
			want = filepath.Join(dir, want)
		}
		checkErr(t, checkMounted("folder add", filepath.Join(dir, tc.path)), want)
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
