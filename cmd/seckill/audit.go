package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/audit"
	"github.com/seckill/seckill/commands"
)

// Exit statuses of `seckill audit`: a script (or a fault test) must tell "the
// system is wrong" from "the audit could not look".
const (
	auditClean      = 0 // every check ran and held
	auditViolations = 1 // the checks ran and found violations (the report says which)
	auditCouldNot   = 2 // the audit could not run: bad flags, a service unreachable, an unreadable log
)

// runAudit is `seckill audit`: fold the log and prove the invariants against
// it, the gate and the read models. Exit status: auditClean, auditViolations
// or auditCouldNot.
func runAudit(ctx context.Context, c cli, args []string) error {
	err := runAuditChecks(ctx, c, args)
	var ee *exitError
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: auditCouldNot, err: err}
}

func runAuditChecks(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "audit", "audit [--wait 10s] [--skip gate,read-models] [--snapshots DIR] [--fresh] [--save-snapshot=false]\n\n"+
		"Folds the event log and checks: the log itself (sold <= stock per sale, at most one end per order,\n"+
		"per-user limits, no event of an unknown order); that the outboxes are empty (the gate is ahead of\n"+
		"the log by what they hold); that the Redis gate's counters and orders equal the fold; that every\n"+
		"read model equals the fold. Exit status: 0 when all hold; 1 with a report of each violation;\n"+
		"2 when the audit could not run (bad flags, a service unreachable, an unreadable log).\n"+
		"Exact on a quiet system; on a live one, in-flight events can show as differences: run it again.\n"+
		"The fold starts from the newest fold snapshot and reads only the log after it; afterwards the audit saves\n"+
		"a new snapshot (docs/snapshots.md).")
	var ep endpoints
	ep.bind(c, fs)
	var (
		wait   = fs.Duration("wait", 10*time.Second, "how long to wait for the outboxes to drain and the read models to catch up")
		skip   = fs.String("skip", "", "checks to leave out, comma-separated: gate, read-models")
		prefix = fs.String("prefix", "seckill:", "the gate's Redis key prefix")
		save   = fs.Bool("save-snapshot", true, "save a fold snapshot at the end of the log after the audit")
	)
	var sf snapshotFlags
	sf.bind(c, fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	skipGate, skipModels, err := auditSkips(*skip)
	if err != nil {
		return err
	}
	if *wait < 0 {
		return usageError{"--wait must not be negative"}
	}
	ep.fromDev()
	if err := ep.need(!skipGate, !skipModels, true, false); err != nil {
		return err
	}

	var gate *commands.Gate
	if !skipGate {
		rdb, err := openRedis(ep.RedisURL)
		if err != nil {
			return err
		}
		defer rdb.Close()
		if gate, err = commands.NewGate(commands.GateConfig{Prefix: *prefix}, rdb); err != nil {
			return err
		}
	}
	var models []audit.ReadModel
	if !skipModels {
		var release func()
		models, release, err = auditModels(ctx, c, &ep)
		defer release()
		if err != nil {
			return err
		}
	}
	// Progress on stderr: stdout is the report.
	bar := newProgress(c.stderr, "records")
	so := sf.options(c, &ep, bar)
	a, err := audit.New(audit.Config{Brokers: ep.brokerList(), Topic: ep.Topic, Wait: *wait, Progress: so.Progress,
		Snapshots: so.Dir, Fresh: so.Fresh, SaveSnapshot: *save, Warn: so.Warn}, gate, models...)
	if err != nil {
		return err
	}
	rep, err := a.Run(ctx)
	bar.finish()
	if err != nil {
		return err
	}
	if err := rep.WriteText(c.stdout); err != nil {
		return err
	}
	if !rep.OK() {
		return &exitError{code: auditViolations, err: fmt.Errorf("audit: %d violation(s) in %s", len(rep.Violations()),
			strings.Join(slices.Compact(checkNames(rep)), ", "))}
	}
	return nil
}

// checkNames lists the checks that failed.
func checkNames(rep audit.Report) []string {
	var out []string
	for _, c := range rep.Checks {
		if len(c.Violations) > 0 {
			out = append(out, c.Name)
		}
	}
	return out
}

// auditSkips reads --skip: the checks to leave out.
func auditSkips(skip string) (gate, models bool, err error) {
	for _, s := range strings.Split(skip, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "gate":
			gate = true
		case "read-models":
			models = true
		default:
			return false, false, usageError{fmt.Sprintf("--skip %q: want gate or read-models", s)}
		}
	}
	return gate, models, nil
}

// auditModels opens the read models the audit compares with the fold: the
// orders model, and the inventory-return feed, which is the daily
// projection's, in the everyday order database when it has one of its own.
// release closes their pools, also after an error.
func auditModels(ctx context.Context, c cli, ep *endpoints) (models []audit.ReadModel, release func(), err error) {
	var pools []*pgxpool.Pool
	release = func() {
		for _, p := range pools {
			p.Close()
		}
	}
	pool, err := pgxpool.New(ctx, ep.DatabaseURL)
	if err != nil {
		return nil, release, fmt.Errorf("postgres: %w", err)
	}
	pools = append(pools, pool)
	m, err := audit.NewOrdersModel(audit.OrdersModelConfig{}, pool)
	if err != nil {
		return nil, release, err
	}
	dailyPool := pool
	if u := c.getenv("SECKILL_DAILY_DATABASE_URL"); u != "" && u != ep.DatabaseURL {
		if dailyPool, err = pgxpool.New(ctx, u); err != nil {
			return nil, release, fmt.Errorf("daily database: %w", err)
		}
		pools = append(pools, dailyPool)
	}
	rm, err := audit.NewReturnsModel(dailyPool)
	if err != nil {
		return nil, release, err
	}
	return []audit.ReadModel{m, rm}, release, nil
}
