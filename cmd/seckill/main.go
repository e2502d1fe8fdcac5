// Command seckill is the flash-sale system in one binary: run it all on one
// machine (dev), against real services (serve), or use its tools (broker,
// migrate, token, ...). main is wiring only; each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/seckill/seckill/internal/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "seckill:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit code (audit uses 1 for "violations found").
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// cli bundles what a subcommand may use of the outside world, so tests can run
// every command in-process.
type cli struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	// dev records the dev.json a command took its endpoints from, so a
	// refused connection can say the file may be stale (config.go).
	dev *devUse
}

type command struct {
	summary string
	run     func(ctx context.Context, c cli, args []string) error
}

func subcommands() map[string]command {
	return map[string]command{
		"dev":         {"run everything on this machine: broker, Redis, Postgres, API", runDev},
		"serve":       {"run the service against real Kafka, Redis and Postgres", runServe},
		"broker":      {"run the embedded Kafka-protocol broker alone", runBroker},
		"migrate":     {"apply the database migrations", runMigrate},
		"token":       {"mint a JWT for a user (or an admin)", runToken},
		"events":      {"export the event log (time range, filters; jsonl or csv), or tail it", runEvents},
		"gate":        {"operate the Redis gate: restore it from the event log", runGate},
		"projections": {"show the projections' lag, or rebuild one into shadow tables and swap it in", runProjections},
		"audit":       {"fold the log and check every invariant, the gate and the read models against it", runAudit},
		"ceiling":     {"serve an empty chi handler (the benchmark's HTTP ceiling)", runCeiling},
		"loadtest":    {"send a bounded purchase burst at a running seckill on loopback and check the outcome", runLoadtest},
		"version":     {"print the version, VCS revision and Go version of this build", runVersion},
		"deadletters": {"list, show, retry or discard the projections' dead letters (parked per order)", runDeadLetters},
		"snapshot":    {"save a fold snapshot of the event log, so restore and audit read only the log after it", runSnapshot},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := cli{getenv: getenv, stdout: stdout, stderr: stderr, dev: &devUse{warn: stderr}}
	cmds := subcommands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return usageError{"a command is required"}
		}
		return nil
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	err := cmd.run(ctx, c, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil // help was asked for and printed: not a failure
	}
	return c.dev.explain(err)
}

// runVersion is `seckill version`.
func runVersion(_ context.Context, c cli, args []string) error {
	fs := newFlags(c, "version", "version\n\nPrints the version (set at link time, else the module's), the VCS revision and time, and the Go version.")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, buildinfo.Read())
	return nil
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("seckill: a flash-sale backend (Redis gate → Kafka log → Postgres read models)\n\nUsage: seckill COMMAND [flags]   (seckill COMMAND --help for its flags)\n\nCommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprint(w, b.String())
}

// newFlags makes a flag set that reports errors instead of exiting. Help
// that was asked for (-h, --help) goes to stdout, so it can be paged or
// grepped; the usage printed after a mistake goes to stderr with the error.
func newFlags(c cli, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	errOut := &sawWrite{w: c.stderr}
	fs.SetOutput(errOut)
	fs.Usage = func() {
		// The flag package writes the error first, then calls Usage; when
		// it calls Usage with nothing written, help was asked for.
		w := c.stdout
		if errOut.wrote {
			w = c.stderr
		}
		fs.SetOutput(w)
		fmt.Fprintf(w, "Usage: seckill %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		fs.SetOutput(errOut)
	}
	return fs
}

// sawWrite passes writes on and remembers that there was one.
type sawWrite struct {
	w     io.Writer
	wrote bool
}

func (s *sawWrite) Write(p []byte) (int, error) {
	s.wrote = true
	return s.w.Write(p)
}

// parse parses args and turns flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
