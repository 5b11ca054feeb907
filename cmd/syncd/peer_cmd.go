package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/syncd-project/syncd/transport/deviceid"
)

func peerCommand(g globalFlags, args []string) error {
	if len(args) == 0 {
		return usageErr("peer", "want a subcommand: add, list or remove")
	}
	switch args[0] {
	case "add":
		return peerAdd(g, args[1:])
	case "list":
		return peerList(g, args[1:])
	case "remove", "rm":
		return peerRemove(g, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(g.Stdout, "usage: syncd peer add ID [--name N] [--addr HOST:PORT]...\n       syncd peer list [--json]\n       syncd peer remove ID")
		return nil
	}
	return usageErr("peer", "unknown subcommand %q (want add, list or remove)", args[0])
}

// parsePeerID parses a device ID given on the command line; a mistyped ID
// is a usage error carrying deviceid's explanation.
func parsePeerID(cmd, s string) (deviceid.ID, error) {
	id, err := deviceid.Parse(s)
	if err != nil {
		return deviceid.ID{}, &usageError{cmd: cmd, msg: fmt.Sprintf("%q: %v", s, err),
			hint: "copy the ID exactly as 'syncd id' prints it on the other device"}
	}
	return id, nil
}

func peerAdd(g globalFlags, args []string) error {
	const cmd = "peer add"
	fs := newFlags(cmd)
	name := fs.String("name", "", "a name for the peer (default: its short ID)")
	var addrs stringList
	fs.Var(&addrs, "addr", "a static HOST:PORT address of the peer (repeatable)")
	pos, err := parseArgs(g, fs, "peer add ID [--name N] [--addr HOST:PORT]...", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 1 {
		return usageErr(cmd, "want exactly one device ID, got %d arguments", len(pos))
	}
	id, err := parsePeerID(cmd, pos[0])
	if err != nil {
		return err
	}
	if err := validateName(*name); err != nil {
		return usageErr(cmd, "--name %q: %v", *name, err)
	}
	if len(addrs) > maxAddrs {
		return usageErr(cmd, "more than %d --addr", maxAddrs)
	}
	for _, a := range addrs {
		if err := validateAddr(a); err != nil {
			return usageErr(cmd, "--addr %q: %v", a, err)
		}
	}
	paths, err := g.paths()
	if err != nil {
		return err
	}
	self, err := selfID(paths)
	if err != nil {
		return err
	}
	if id == self {
		return withHint(errors.New("peer add: that is this device's own ID"), "run 'syncd id' on the other device and add the ID it prints")
	}
	verb := "added"
	err = updateConfig(paths.Config, func(c *Config) error {
		p, ok := c.peer(id)
		if !ok {
			if len(c.Peers) >= maxPeers {
				return withHint(fmt.Errorf("peer add: already %d peers", maxPeers), "remove one first")
			}
			c.Peers = append(c.Peers, PeerConfig{ID: id})
			p = &c.Peers[len(c.Peers)-1]
		} else {
			verb = "updated"
		}
		if *name != "" || !ok {
			p.Name = *name
		}
		if len(addrs) > 0 {
			p.Addrs = slices.Clone(addrs)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "%s peer %s (%s)\n", verb, nameOr(*name, id.Short()), id)
	return reloadDaemon(paths)
}

// reloadDaemon asks a running daemon to reread the config; no daemon is fine.
func reloadDaemon(paths Paths) error { return reloadDaemonOr(paths, nil) }

// reloadDaemonOr is reloadDaemon that runs offline (if set) when no daemon
// runs to reload.
func reloadDaemonOr(paths Paths, offline func() error) error {
	err := callDaemon(paths, "POST", "/v1/reload", nil, nil)
	if errors.Is(err, errNoDaemon) && offline != nil {
		return offline()
	}
	if err == nil || errors.Is(err, errNoDaemon) {
		return nil
	}
	return withHint(fmt.Errorf("the config is saved but the running daemon did not reload it: %w", err),
		"send the daemon SIGHUP or restart it")
}

// peerJSON is one entry of 'syncd peer list --json'.
type peerJSON struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
}

func peerList(g globalFlags, args []string) error {
	c, asJSON, err := loadForList(g, "peer list", "print a JSON array of {id, name, addrs}", args)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]peerJSON, 0, len(c.Peers))
		for _, p := range c.Peers {
			out = append(out, peerJSON{ID: p.ID.String(), Name: p.Name, Addrs: append([]string{}, p.Addrs...)})
		}
		return printJSON(g.Stdout, out)
	}
	if len(c.Peers) == 0 {
		fmt.Fprintln(g.Stdout, "no peers; add one with 'syncd peer add ID'")
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tADDRESSES")
	for _, p := range c.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", nameOr(p.Name, "-"), p.ID, nameOr(strings.Join(p.Addrs, ","), "-"))
	}
	return tw.Flush()
}

func peerRemove(g globalFlags, args []string) error {
	const cmd = "peer remove"
	fs := newFlags(cmd)
	pos, err := parseArgs(g, fs, "peer remove ID", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 1 {
		return usageErr(cmd, "want exactly one device ID, got %d arguments", len(pos))
	}
	id, err := parsePeerID(cmd, pos[0])
	if err != nil {
		return err
	}
	paths, err := g.paths()
	if err != nil {
		return err
	}
	var unshared []string
	err = updateConfig(paths.Config, func(c *Config) error {
		i := slices.IndexFunc(c.Peers, func(p PeerConfig) bool { return p.ID == id })
		if i < 0 {
			return withHint(fmt.Errorf("peer remove: %s is not a pinned peer", id), "see 'syncd peer list'")
		}
		c.Peers = slices.Delete(c.Peers, i, i+1)
		for fi := range c.Folders {
			f := &c.Folders[fi]
			if j := slices.Index(f.Peers, id); j >= 0 {
				f.Peers = slices.Delete(f.Peers, j, j+1)
				unshared = append(unshared, f.ID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "removed peer %s\n", id)
	if len(unshared) > 0 {
		fmt.Fprintf(g.Stdout, "no longer shared with it: %s\n", strings.Join(unshared, ", "))
	}
	return reloadDaemon(paths)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// loadForList parses the flags of a list command ("peer list",
// "folder list") and loads the config it lists.
func loadForList(g globalFlags, cmd, jsonHelp string, args []string) (c *Config, asJSON bool, err error) {
	fs := newFlags(cmd)
	j := fs.Bool("json", false, jsonHelp)
	pos, err := parseArgs(g, fs, cmd+" [--json]", args)
	if err != nil {
		return nil, false, helpOK(err)
	}
	if len(pos) > 0 {
		return nil, false, usageErr(cmd, "unexpected argument %q", pos[0])
	}
	paths, err := g.paths()
	if err != nil {
		return nil, false, err
	}
	c, err = loadConfig(paths.Config)
	return c, *j, err
}
