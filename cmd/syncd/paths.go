package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Paths says where one device's files live.
//
// With --home DIR (or SYNCD_HOME) everything is under DIR:
//
//	DIR/config.toml  DIR/identity/  DIR/index/  DIR/syncd.sock  DIR/syncd.lock
//
// Without it, the XDG base directories: config, identity, control socket and
// lock in $XDG_CONFIG_HOME/syncd (default ~/.config/syncd), the index in
// $XDG_DATA_HOME/syncd/index (default ~/.local/share/syncd/index).
type Paths struct {
	Home     string // the directory named in messages: --home, or the XDG config dir
	Config   string // config.toml
	Identity string // directory of the identity files (transport.CreateIdentity)
	Index    string // directory of the badger index
	Socket   string // unix socket of the control API
	Lock     string // lock file held by a running daemon
}

// resolvePaths returns the paths for home ("" = XDG base directories, read
// from the environment). Relative directories are made absolute.
func resolvePaths(home string) (Paths, error) {
	return resolvePathsEnv(home, os.Getenv)
}

// resolvePathsEnv is resolvePaths with the environment injected for tests.
func resolvePathsEnv(home string, getenv func(string) string) (Paths, error) {
	if home != "" {
		abs, err := filepath.Abs(home)
		if err != nil {
			return Paths{}, withHint(fmt.Errorf("home %q: %w", home, err), "pass an absolute --home DIR")
		}
		return Paths{
			Home:     abs,
			Config:   filepath.Join(abs, "config.toml"),
			Identity: filepath.Join(abs, "identity"),
			Index:    filepath.Join(abs, "index"),
			Socket:   filepath.Join(abs, "syncd.sock"),
			Lock:     filepath.Join(abs, "syncd.lock"),
		}, nil
	}
	configHome, err := xdgDir(getenv, "XDG_CONFIG_HOME", ".config")
	if err != nil {
		return Paths{}, err
	}
	dataHome, err := xdgDir(getenv, "XDG_DATA_HOME", filepath.Join(".local", "share"))
	if err != nil {
		return Paths{}, err
	}
	dir := filepath.Join(configHome, "syncd")
	return Paths{
		Home:     dir,
		Config:   filepath.Join(dir, "config.toml"),
		Identity: filepath.Join(dir, "identity"),
		Index:    filepath.Join(dataHome, "syncd", "index"),
		Socket:   filepath.Join(dir, "syncd.sock"),
		Lock:     filepath.Join(dir, "syncd.lock"),
	}, nil
}

// checkSocket refuses a home whose control socket path is longer than a
// unix socket allows: no daemon could ever run there (cmd names the
// command, for the error).
func (p Paths) checkSocket(cmd string) error {
	if len(p.Socket) <= maxSocketPath {
		return nil
	}
	return withHint(usageErr(cmd, "the home %s is too long: its control socket %s would be %d bytes, more than a unix socket allows (%d)",
		p.Home, p.Socket, len(p.Socket), maxSocketPath), "choose a shorter --home")
}

// xdgDir returns $env if it is an absolute path (the XDG spec says relative
// values are invalid and must be ignored), else $HOME/fallback.
func xdgDir(getenv func(string) string, env, fallback string) (string, error) {
	if v := getenv(env); v != "" && filepath.IsAbs(v) {
		return filepath.Clean(v), nil
	}
	home := getenv("HOME")
	if home == "" || !filepath.IsAbs(home) {
		return "", withHint(errors.New("cannot locate the home directory ($HOME is unset or relative)"),
			"pass --home DIR or set SYNCD_HOME")
	}
	return filepath.Join(home, fallback), nil
}

// makeDirs creates the directories of p that init needs, owner-only.
func (p Paths) makeDirs() error {
	for _, d := range []string{p.Home, filepath.Dir(p.Config), filepath.Dir(p.Index)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return withHint(fmt.Errorf("create %s: %w", d, err), "check the permissions of its parent or pass another --home")
		}
	}
	return nil
}
