package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/syncd-project/syncd/transport"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// initCommand creates the identity and a commented default config. On a
// home that already has an identity it prints the existing ID and changes
// nothing (it only writes config.toml if that file is missing).
func initCommand(g globalFlags, args []string) error {
	fs := newFlags("init")
	name := fs.String("name", "", "the name other devices show for this device (default: the host name)")
	pos, err := parseArgs(g, fs, "init [--name NAME]", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usageErr("init", "unexpected argument %q", pos[0])
	}
	if err := validateName(*name); err != nil {
		return usageErr("init", "--name %q: %v", *name, err)
	}
	givenName := *name
	if *name == "" {
		if h, err := os.Hostname(); err == nil && validateName(h) == nil {
			*name = h
		}
	}
	paths, err := g.paths()
	if err != nil {
		return err
	}
	if err := paths.checkSocket("init"); err != nil {
		return err
	}
	if err := paths.makeDirs(); err != nil {
		return err
	}
	now := time.Now()
	id, err := transport.LoadIdentity(paths.Identity, now)
	switch {
	case err == nil:
		cfgName := id.Name
		if givenName != "" {
			cfgName = givenName
		}
		created, err := writeNewConfig(paths.Config, defaultConfig(cfgName))
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(g.Stdout, "identity already exists in %s; wrote %s\n", paths.Identity, paths.Config)
		} else {
			fmt.Fprintf(g.Stdout, "identity already exists in %s; nothing changed\n", paths.Identity)
		}
		fmt.Fprintln(g.Stdout, id.ID)
		return nil
	case !errors.Is(err, transport.ErrNoIdentity):
		return withHint(err, "repair or move away "+paths.Identity+" (if it is broken, 'syncd init' creates a new identity with a new ID)")
	}
	id, err = transport.CreateIdentity(paths.Identity, *name, now)
	if err != nil {
		return withHint(err, "check "+paths.Identity)
	}
	created, err := writeNewConfig(paths.Config, defaultConfig(*name))
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "created identity in %s\n", paths.Identity)
	if created {
		fmt.Fprintf(g.Stdout, "wrote %s\n", paths.Config)
	}
	fmt.Fprintln(g.Stdout, id.ID)
	return nil
}

func idCommand(g globalFlags, args []string) error {
	fs := newFlags("id")
	pos, err := parseArgs(g, fs, "id", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usageErr("id", "unexpected argument %q", pos[0])
	}
	paths, err := g.paths()
	if err != nil {
		return err
	}
	id, err := selfID(paths)
	if err != nil {
		return err
	}
	fmt.Fprintln(g.Stdout, id)
	return nil
}

// selfID loads this device's ID; without an identity the error says to run
// init.
func selfID(paths Paths) (deviceid.ID, error) {
	id, err := transport.LoadIdentity(paths.Identity, time.Now())
	if errors.Is(err, transport.ErrNoIdentity) {
		return deviceid.ID{}, withHint(fmt.Errorf("no identity in %s", paths.Identity), "run 'syncd init'")
	}
	if err != nil {
		return deviceid.ID{}, withHint(err, "repair or move away "+paths.Identity)
	}
	return id.ID, nil
}
