package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// maxPathLen bounds a folder path given on the command line (PATH_MAX).
const maxPathLen = 4096

func folderCommand(g globalFlags, args []string) error {
	if len(args) == 0 {
		return usageErr("folder", "want a subcommand: add, list or remove")
	}
	switch args[0] {
	case "add":
		return folderAdd(g, args[1:])
	case "list":
		return folderList(g, args[1:])
	case "remove", "rm":
		return folderRemove(g, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(g.Stdout, "usage: syncd folder add FOLDER-ID PATH [--peer ID]...\n       syncd folder list [--json]\n       syncd folder remove FOLDER-ID")
		return nil
	}
	return usageErr("folder", "unknown subcommand %q (want add, list or remove)", args[0])
}

func folderAdd(g globalFlags, args []string) error {
	const cmd = "folder add"
	fs := newFlags(cmd)
	var peerArgs stringList
	fs.Var(&peerArgs, "peer", "device ID of a pinned peer to share it with (repeatable)")
	pos, err := parseArgs(g, fs, "folder add FOLDER-ID PATH [--peer ID]...", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 2 {
		return usageErr(cmd, "want a folder ID and a path, got %d arguments", len(pos))
	}
	folderID, pathArg := pos[0], pos[1]
	if err := validateFolderID(folderID); err != nil {
		return usageErr(cmd, "folder ID %q: %v", folderID, err)
	}
	if pathArg == "" || len(pathArg) > maxPathLen || !utf8.ValidString(pathArg) || strings.IndexFunc(pathArg, unicode.IsControl) >= 0 {
		// A control character (a newline pasted with the path) would
		// break the layout of `folder list` and `status` for good.
		return usageErr(cmd, "path %q: want a non-empty UTF-8 path of at most %d bytes, without control characters", pathArg, maxPathLen)
	}
	var peers []deviceid.ID
	for _, s := range peerArgs {
		id, err := parsePeerID(cmd, s)
		if err != nil {
			return err
		}
		if !slices.Contains(peers, id) {
			peers = append(peers, id)
		}
	}
	path, err := filepath.Abs(pathArg)
	if err != nil {
		return withHint(fmt.Errorf("%s: %w", cmd, err), "pass an absolute path")
	}
	paths, err := g.paths()
	if err != nil {
		return err
	}
	if err := checkOutsideHome(path, paths); err != nil {
		return err
	}
	if err := checkMounted(cmd, path); err != nil {
		return err
	}
	created := false
	topMissing := firstMissing(path) // what ensureDir makes, to undo on failure
	err = updateConfig(paths.Config, func(c *Config) error {
		if f, ok := c.folder(folderID); ok {
			return withHint(fmt.Errorf("%s: folder %q already exists (%s)", cmd, folderID, f.Path),
				"pick another ID, or remove it first with 'syncd folder remove "+folderID+"'")
		}
		if len(c.Folders) >= maxFolders {
			return withHint(fmt.Errorf("%s: already %d folders", cmd, maxFolders), "remove one first")
		}
		for _, id := range peers {
			if _, ok := c.peer(id); !ok {
				return withHint(fmt.Errorf("%s: peer %s is not pinned", cmd, id), "pin it first with 'syncd peer add "+id.String()+"'")
			}
		}
		real := resolveExisting(path)
		for _, f := range c.Folders {
			rel := nestedPaths(path, f.Path)
			if rel == "" {
				rel = nestedPaths(real, resolveExisting(f.Path))
			}
			if rel != "" {
				return withHint(fmt.Errorf("%s: %s %s folder %q (%s)", cmd, path, rel, f.ID, f.Path),
					"folders must not overlap; pick a path outside every shared folder")
			}
		}
		var err error
		if created, err = ensureDir(path); err != nil {
			return err
		}
		c.Folders = append(c.Folders, FolderConfig{ID: folderID, Path: path, Peers: peers})
		return nil
	})
	if err != nil {
		if created {
			// Undo what this failed command made (empty directories only).
			for d := path; ; d = filepath.Dir(d) {
				if os.Remove(d) != nil || d == topMissing {
					break
				}
			}
		}
		return err
	}
	if created {
		fmt.Fprintf(g.Stdout, "created %s\n", path)
	}
	fmt.Fprintf(g.Stdout, "added folder %s at %s, shared with %s\n", folderID, path, plural(int64(len(peers)), "peer"))
	return reloadDaemon(paths)
}

// checkOutsideHome refuses a folder inside, or containing, syncd's own
// directories (config, identity, index): syncing them would loop and leak
// private keys.
func checkOutsideHome(path string, paths Paths) error {
	if why := nearSyncd(path, paths); why != "" {
		return withHint(fmt.Errorf("folder add: %s", why), "pick a path outside syncd's home and index")
	}
	return nil
}

// nearSyncd says how path is, contains or is inside one of syncd's own
// directories (its private keys and index would be synced), as written and
// once symlinks are resolved, or "".
func nearSyncd(path string, paths Paths) string {
	real := resolveExisting(path)
	for _, dir := range []string{paths.Home, filepath.Dir(paths.Config), paths.Identity, paths.Index} {
		for _, pair := range [][2]string{{path, dir}, {real, resolveExisting(dir)}} {
			if rel := nestedPaths(pair[0], pair[1]); rel != "" {
				return fmt.Sprintf("%s %s syncd's own directory %s", path, rel, dir)
			}
		}
	}
	return ""
}

// checkFolderPlaces refuses a config with a folder the daemon must not
// sync, whoever wrote it: 'folder add' checks the same before it writes,
// but config.toml may be edited by hand. A folder at, around or inside
// syncd's own directories would send its private keys to the peers; two
// folders one inside the other through a symlink would sync the same
// files twice.
func checkFolderPlaces(c *Config, paths Paths) error {
	for i, f := range c.Folders {
		if why := nearSyncd(f.Path, paths); why != "" {
			return &configError{File: paths.Config, Msg: fmt.Sprintf("folder %q: %s", f.ID, why)}
		}
		real := resolveExisting(f.Path)
		for _, g := range c.Folders[:i] {
			if rel := nestedPaths(real, resolveExisting(g.Path)); rel != "" {
				return &configError{File: paths.Config, Msg: fmt.Sprintf("folder %q: %s (%s once symlinks are resolved) %s folder %q (%s)", f.ID, f.Path, real, rel, g.ID, g.Path)}
			}
		}
	}
	return nil
}

// ensureDir makes path a directory (0700) if it does not exist yet.
func ensureDir(path string) (created bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return false, nil
	case err == nil:
		return false, withHint(fmt.Errorf("folder add: %s is not a directory", path), "pick a directory")
	case !errors.Is(err, os.ErrNotExist):
		return false, withHint(fmt.Errorf("folder add: %w", err), "check the path and its permissions")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return false, withHint(fmt.Errorf("folder add: create %s: %w", path, err), "check the permissions of its parent")
	}
	return true, nil
}

// resolveExisting resolves symlinks in the longest existing prefix of the
// clean absolute path p and appends the rest, so that paths can be compared
// before they exist.
func resolveExisting(p string) string {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// folderJSON is one entry of 'syncd folder list --json'.
type folderJSON struct {
	ID    string   `json:"id"`
	Path  string   `json:"path"`
	Peers []string `json:"peers"`
}

func folderList(g globalFlags, args []string) error {
	c, asJSON, err := loadForList(g, "folder list", "print a JSON array of {id, path, peers}", args)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]folderJSON, 0, len(c.Folders))
		for _, f := range c.Folders {
			j := folderJSON{ID: f.ID, Path: f.Path, Peers: []string{}}
			for _, p := range f.Peers {
				j.Peers = append(j.Peers, p.String())
			}
			out = append(out, j)
		}
		return printJSON(g.Stdout, out)
	}
	if len(c.Folders) == 0 {
		fmt.Fprintln(g.Stdout, "no folders; share one with 'syncd folder add FOLDER-ID PATH --peer ID'")
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPATH\tPEERS")
	for _, f := range c.Folders {
		var names []string
		for _, id := range f.Peers {
			name := id.Short()
			if p, ok := c.peer(id); ok && p.Name != "" {
				name = p.Name
			}
			names = append(names, name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.ID, f.Path, nameOr(strings.Join(names, ","), "-"))
	}
	return tw.Flush()
}

func folderRemove(g globalFlags, args []string) error {
	const cmd = "folder remove"
	fs := newFlags(cmd)
	pos, err := parseArgs(g, fs, "folder remove FOLDER-ID", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 1 {
		return usageErr(cmd, "want exactly one folder ID, got %d arguments", len(pos))
	}
	folderID := pos[0]
	paths, err := g.paths()
	if err != nil {
		return err
	}
	var path string
	err = updateConfig(paths.Config, func(c *Config) error {
		i := slices.IndexFunc(c.Folders, func(f FolderConfig) bool { return f.ID == folderID })
		if i < 0 {
			return withHint(fmt.Errorf("%s: no folder %q", cmd, folderID), "see 'syncd folder list'")
		}
		path = c.Folders[i].Path
		c.Folders = slices.Delete(c.Folders, i, i+1)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "removed folder %s; its files in %s are left as they are\n", folderID, path)
	// With no daemon to see the config without the folder, its index is
	// forgotten here: a folder added again under this ID before the next
	// start must not find this one's records (README: it starts over).
	return reloadDaemonOr(paths, func() error { return forgetOffline(paths, folderID) })
}

// forgetOffline marks the local index of folderID forgotten while no
// daemon runs (the daemon finishes the forget before the folder runs).
func forgetOffline(paths Paths, folderID string) error {
	release, err := acquireLock(paths.Lock)
	if errors.Is(err, errLocked) {
		return nil // a daemon is starting: it forgets by itself
	}
	if err != nil {
		return err
	}
	defer release()
	if _, err := os.Stat(paths.Index); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	st, err := index.Open(paths.Index, index.Options{})
	if err != nil {
		return withHint(fmt.Errorf("folder remove: open the index: %w", err), "start 'syncd run' once before adding the folder again")
	}
	defer st.Close()
	return st.ForgetLocal(folderID)
}
