package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/projections"
)

// deadLetters returns the dead letters of every projection, each in the
// database its rows are in.
func (rm *readModels) deadLetters() (projections.DeadLetterSet, error) {
	var set projections.DeadLetterSet
	for _, p := range []struct {
		proj projections.Projection
		pool *pgxpool.Pool
	}{{rm.orders, rm.pool}, {rm.inventory, rm.pool}, {rm.daily, rm.dailyPool}} {
		d, err := projections.NewDeadLetters(p.pool, p.proj, "")
		if err != nil {
			return nil, err
		}
		set = append(set, d)
	}
	return set, nil
}

const deadLettersUsage = "Usage: seckill deadletters list [--projection NAME] [--status open|parked|held|resolved|discarded|all]\n" +
	"       seckill deadletters show PROJECTION ID\n" +
	"       seckill deadletters retry PROJECTION ID\n" +
	"       seckill deadletters discard PROJECTION ID\n\n" +
	"An event a projection rejects is parked; the later events of its aggregate (its order, its sale) are\n" +
	"held behind it, while other aggregates flow on. retry applies the aggregate's parked and held events\n" +
	"in log order through the projection, stopping at the first that fails again; discard gives up on one\n" +
	"(never applied) and applies the ones held behind it. The same is under /v1/admin/deadletters.\n"

// runDeadLetters is `seckill deadletters list|show|retry|discard`.
func runDeadLetters(ctx context.Context, c cli, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, deadLettersUsage)
		if len(args) == 0 {
			return usageError{"a deadletters command is required: list, show, retry or discard"}
		}
		return nil
	}
	sub := args[0]
	switch sub {
	case "list", "show", "retry", "discard":
	default:
		fmt.Fprint(c.stderr, deadLettersUsage)
		return usageError{fmt.Sprintf("unknown deadletters command %q", sub)}
	}
	fs := newFlags(c, "deadletters "+sub, strings.TrimPrefix(strings.SplitN(deadLettersUsage, "\n", 2)[0], "Usage: seckill "))
	var ep endpoints
	ep.bind(c, fs)
	var p projectionFlags
	p.bind(c, fs)
	projection := fs.String("projection", "", "list: only this projection's letters (orders, inventory, daily)")
	status := fs.String("status", "open", "list: open (parked and held), parked, held, resolved, discarded or all")
	limit := fs.Int("limit", 100, "list: at most this many letters per projection")
	asJSON := fs.Bool("json", false, "print JSON")
	// Positional arguments (PROJECTION ID) may come before the flags.
	var pos []string
	for len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		pos, args = append(pos, args[1]), append(args[:1:1], args[2:]...)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return parseErr(err)
	}
	pos = append(pos, fs.Args()...)
	rm, done, err := projectionsEnv(ctx, &ep, p, false)
	if err != nil {
		return err
	}
	defer done()
	set, err := rm.deadLetters()
	if err != nil {
		return err
	}
	if sub == "list" {
		if len(pos) > 0 {
			return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
		}
		ls, err := set.List(ctx, *projection, *status, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(c, map[string]any{"dead_letters": ls})
		}
		printLetters(c, ls)
		return nil
	}
	if len(pos) != 2 {
		return usageError{fmt.Sprintf("deadletters %s: want PROJECTION ID", sub)}
	}
	id, err := strconv.ParseInt(pos[1], 10, 64)
	if err != nil || id < 1 {
		return usageError{fmt.Sprintf("deadletters %s: ID %q is not a letter's number", sub, pos[1])}
	}
	var out any
	switch sub {
	case "show":
		out, err = set.Get(ctx, pos[0], id)
	case "retry":
		out, err = set.Retry(ctx, pos[0], id)
	case "discard":
		out, err = set.Discard(ctx, pos[0], id)
	}
	if err != nil {
		return err
	}
	if l, ok := out.(projections.Letter); ok && !*asJSON {
		printLetters(c, []projections.Letter{l})
		fmt.Fprintf(c.stdout, "reason: %s\nrecord: %s\n", l.Reason, l.Payload)
		return nil
	}
	return printJSON(c, out)
}

func parseErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err.Error()}
}

func printJSON(c cli, v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printLetters(c cli, ls []projections.Letter) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tID\tSTATUS\tAGGREGATE\tEVENT\tSOURCE\tCREATED")
	for _, l := range ls {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s/%d@%d\t%s\n", l.Projection, l.ID, l.Status, l.Aggregate, l.EventID,
			l.Topic, l.Partition, l.Offset, l.CreatedAt.Local().Format(time.DateTime))
	}
	tw.Flush()
}
