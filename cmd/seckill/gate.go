package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/seckill/seckill/commands"
)

// gateCommands are the subcommands of `seckill gate`.
func gateCommands() map[string]command {
	return map[string]command{
		"restore": {"rebuild the Redis gate from the event log (after a Redis loss)", runGateRestore},
	}
}

// runGate is `seckill gate SUBCOMMAND`: operations on the Redis gate.
func runGate(ctx context.Context, c cli, args []string) error {
	cmds := gateCommands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	help := func() string {
		var b strings.Builder
		b.WriteString("Usage: seckill gate SUBCOMMAND [flags]   (seckill gate SUBCOMMAND --help for its flags)\n\nSubcommands:\n")
		for _, n := range names {
			fmt.Fprintf(&b, "  %-10s %s\n", n, cmds[n].summary)
		}
		return b.String()
	}
	if len(args) == 0 {
		fmt.Fprint(c.stderr, help())
		return usageError{"gate: a subcommand is required"}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, help())
		return nil
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprint(c.stderr, help())
		return usageError{fmt.Sprintf("gate: unknown subcommand %q", args[0])}
	}
	return cmd.run(ctx, c, args[1:])
}

// runGateRestore is `seckill gate restore`: seed 001's unrecoverable Redis
// crash as a command. It folds the log (from the newest fold snapshot) and
// writes the gate's state back: every sale's counters and configuration,
// every order, the idempotency and per-user indexes and the expiry queue.
func runGateRestore(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "gate restore", "gate restore [--sale ID,...] [--force] [--snapshots DIR] [--fresh]\n\n"+
		"Rebuilds the Redis gate by folding the event log, from the newest fold snapshot that verifies\n"+
		"(docs/snapshots.md). It refuses to overwrite a sale the gate still has unless --force, and a sale\n"+
		"whose outbox still holds events the relay has not forwarded. Run it with the API stopped or\n"+
		"before it takes traffic.")
	var ep endpoints
	ep.bind(c, fs)
	var (
		sales     = fs.String("sale", "", "restore only these sales (comma-separated ids); default every sale of the log")
		force     = fs.Bool("force", false, "overwrite sales the gate still has, from the log")
		batch     = fs.Int("batch", 1000, "Redis commands per pipeline")
		skipBad   = fs.Bool("skip-undecodable", false, "restore even if some records of the log cannot be decoded (their events are left out)")
		keyPrefix = fs.String("prefix", "seckill:", "the gate's Redis key prefix")
	)
	var sf snapshotFlags
	sf.bind(c, fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *batch < 1 {
		return usageError{"--batch must be at least 1"}
	}
	var opts commands.RestoreOptions
	for _, id := range strings.Split(*sales, ",") {
		if id = strings.TrimSpace(id); id != "" {
			opts.SaleIDs = append(opts.SaleIDs, id)
		}
	}
	opts.Force, opts.BatchSize = *force, *batch
	ep.fromDev()
	if err := ep.need(true, false, true, false); err != nil {
		return err
	}
	rdb, err := openRedis(ep.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	gate, err := commands.NewGate(commands.GateConfig{Prefix: *keyPrefix}, rdb)
	if err != nil {
		return err
	}

	start := time.Now()
	// Progress on stderr: stdout is the report.
	res, err := sf.fold(ctx, c, &ep)
	if err != nil {
		return err
	}
	defer res.Close()
	st := res.Stats
	if st.Undecodable > 0 {
		for _, e := range st.Errors {
			fmt.Fprintln(c.stderr, "  undecodable:", e)
		}
		if !*skipBad {
			return fmt.Errorf("%d records of the log cannot be decoded by this build; restoring without them would lose their events (--skip-undecodable to do it anyway)", st.Undecodable)
		}
	}
	rep, err := restoreFold(ctx, gate, res, opts, restoreChunkOrders)
	if errors.Is(err, commands.ErrGateLive) {
		return fmt.Errorf("%w\n(the gate is live: stop the API nodes, then rerun with --force to overwrite it from the log)", err)
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SALE\tREMAINING BEFORE\tAFTER\tORDERS\tRESERVED\tREMOVED\tSTATE")
	for _, s := range rep.Sales {
		before := "-"
		if s.HadRemaining {
			before = fmt.Sprint(s.RemainingBefore)
		}
		state := "open"
		if s.Ended {
			state = "ended"
		}
		if s.Existed {
			state += " (overwritten)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.SaleID, before, s.RemainingAfter, s.Orders, s.Reserved, s.OrdersRemoved, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range rep.Skipped {
		fmt.Fprintln(c.stdout, "skipped:", s)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintln(c.stdout, "warning:", w)
	}
	fmt.Fprintf(c.stdout, "restored %d sale(s) in %s (total %s)\n", len(rep.Sales), rep.Duration.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return nil
}
