// Command syncd is the peer-to-peer file sync daemon and its command line.
// It is the only package that reads the config file and wires transport,
// discovery, index and peer together.
//
// The command line follows DESIGN.md ("Running it"): global flags come before
// the command, the command's own flags after it:
//
//	syncd [--home DIR] [--log-level L] [--log-format text|json] COMMAND ...
//
// Exit codes: 0 success, 1 runtime error, 2 usage error. Every error is one
// line on stderr, "syncd: <what went wrong>; <what to do>". Exit codes are
// decided here and nowhere else.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitConfig is what 'syncd run' exits with for a usage or config
	// mistake (EX_CONFIG of sysexits.h), which a restart will not fix: the
	// systemd unit's RestartPreventExitStatus. Not 2, which is also how a
	// Go program ends on a fatal error (a crash the unit must restart).
	exitConfig = 78
)

// globalFlags are the flags given before the command. They are passed by
// value to every command, including runCommand and pairCommand (run.go).
type globalFlags struct {
	Home      string     // --home, else $SYNCD_HOME; "" means XDG base directories
	LogLevel  slog.Level // --log-level: debug, info, warn or error (default info)
	LogFormat string     // --log-format: "text" (default) or "json"

	Stdout io.Writer // where results go (os.Stdout in main)
	Stderr io.Writer // where logs and the error line go (os.Stderr in main)
}

// paths resolves where this home's files live (see resolvePaths).
func (g globalFlags) paths() (Paths, error) { return resolvePaths(g.Home) }

// logger returns the slog logger selected by --log-level and --log-format,
// writing to g.Stderr.
func (g globalFlags) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: g.LogLevel}
	if g.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(g.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.Stderr, opts))
}

// command is one entry of the command table.
type command struct {
	name    string
	summary string
	run     func(g globalFlags, args []string) int
}

func commands() []command {
	return []command{
		{"init", "create this device's identity and config; print its device ID", errCmd(initCommand)},
		{"id", "print this device's ID", errCmd(idCommand)},
		{"peer", "add, list or remove pinned peers (peer add|list|remove)", errCmd(peerCommand)},
		{"folder", "add, list or remove shared folders (folder add|list|remove)", errCmd(folderCommand)},
		{"run", "run the daemon in the foreground", runCommand},
		{"status", "show what the running daemon is doing", errCmd(statusCommand)},
		{"pair", "pair with another device using a short code", pairCommand},
		{"help", "show this help", nil},
	}
}

// errCmd adapts a command returning an error to the exit-code convention.
func errCmd(f func(g globalFlags, args []string) error) func(globalFlags, []string) int {
	return func(g globalFlags, args []string) int {
		return reportError(g.Stderr, f(g, args))
	}
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain parses the global flags and dispatches to the command. It returns
// the process exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	g := globalFlags{Stdout: stdout, Stderr: stderr, Home: os.Getenv("SYNCD_HOME")}
	fs := flag.NewFlagSet("syncd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.Home, "home", g.Home, "directory for identity, config and index (default $SYNCD_HOME, else XDG directories)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&g.LogFormat, "log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, fs)
			return exitOK
		}
		return reportError(stderr, usageErr("", "%v", err))
	}
	homeEmpty := false
	fs.Visit(func(f *flag.Flag) { homeEmpty = homeEmpty || f.Name == "home" && g.Home == "" })
	if homeEmpty {
		// An unset variable in a script ('--home "$DIR"') must not fall
		// back to the user's real home and its devices.
		return reportError(stderr, usageErr("", "--home is empty; give a directory, or leave --home out to use the XDG directories"))
	}
	if err := g.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return reportError(stderr, usageErr("", "--log-level %q is not a level", *level))
	}
	if g.LogFormat != "text" && g.LogFormat != "json" {
		return reportError(stderr, usageErr("", "--log-format %q is neither text nor json", g.LogFormat))
	}
	if fs.NArg() == 0 {
		return reportError(stderr, usageErr("", "no command given"))
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		printHelp(stdout, fs)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(g, rest)
		}
	}
	return reportError(stderr, usageErr("", "unknown command %q", name))
}

func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: syncd [--home DIR] [--log-level L] [--log-format text|json] COMMAND ...\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nglobal flags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\n'syncd COMMAND -h' shows a command's flags.\n")
}

// usageError is a mistake in the command line; it exits with code 2.
type usageError struct {
	cmd  string // "peer add"; "" for the global command line
	msg  string
	hint string // "" means: see the usage
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.msg
	}
	return e.cmd + ": " + e.msg
}

func (e *usageError) Hint() string {
	if e.hint != "" {
		return e.hint
	}
	if e.cmd == "" {
		return "run 'syncd help' for usage"
	}
	return "run 'syncd " + e.cmd + " -h' for usage"
}

func usageErr(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// hintError attaches what the user should do to an error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }
func (e *hintError) Hint() string  { return e.hint }

// withHint returns err with the action the user should take; nil stays nil.
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// hinter is implemented by errors that know what the user should do.
type hinter interface{ Hint() string }

// maxErrorLine bounds the error line, whatever went into the error.
const maxErrorLine = 2000

// reportError prints err as one line on w and returns the exit code.
func reportError(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ue *usageError
	var ce *configError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		// A usage or config mistake (for run: exitConfig).
		code = exitUsage
	}
	hint := "run 'syncd help' for usage"
	var h hinter
	if errors.As(err, &h) && h.Hint() != "" {
		hint = h.Hint()
	}
	line := oneLine(err.Error()) + "; " + oneLine(hint)
	if len(line) > maxErrorLine {
		line = line[:maxErrorLine] + "..."
	}
	fmt.Fprintf(w, "syncd: %s\n", line)
	return code
}

// oneLine folds whitespace runs (including newlines) into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// stringList is a repeatable string flag (--addr X --addr Y).
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// newFlags returns a FlagSet for the command cmd ("peer add") that reports
// errors instead of printing or exiting.
func newFlags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// errHelp is returned by parseArgs when -h was given and usage was printed.
var errHelp = errors.New("help requested")

// parseArgs parses flags interleaved with positional arguments, so that both
// "peer add ID --addr X" and "peer add --addr X ID" work; "--" ends flags.
// With -h it prints usage ("syncd " + usage, then the flags) to g.Stdout and
// returns errHelp, which commands turn into exit 0.
func parseArgs(g globalFlags, fs *flag.FlagSet, usage string, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(g.Stdout, "usage: syncd %s\n", usage)
				fs.SetOutput(g.Stdout)
				fs.PrintDefaults()
				return nil, errHelp
			}
			return nil, usageErr(fs.Name(), "%v", err)
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// helpOK turns errHelp into success.
func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}
