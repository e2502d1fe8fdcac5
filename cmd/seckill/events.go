package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// runEvents is `seckill events`: the log itself (not a read model), filtered
// and exported for analysts. It reads partitions directly, in no consumer
// group, so it never moves a live consumer's position.
func runEvents(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "events", "events [--from TIME] [--to TIME] [--type T,...] [--sale ID] [--user ID] [--order ID] [--format jsonl|csv] [--out FILE] [--follow]\n\n"+
		"Prints the events of the log that occurred in [--from, --to), ordered by time across partitions\n"+
		"(each partition's log order is kept), one envelope per line upcast to the current schema (jsonl),\n"+
		"or as CSV. TIME is RFC 3339, e.g. 2026-11-11T20:00:03Z. Example, what happened at 20:00:03:\n\n"+
		"  seckill events --from 2026-11-11T20:00:03Z --to 2026-11-11T20:00:04Z")
	var ep endpoints
	ep.bind(c, fs)
	var (
		from     = fs.String("from", "", "only events that occurred at or after this time (RFC 3339)")
		to       = fs.String("to", "", "only events that occurred before this time (RFC 3339)")
		types    = fs.String("type", "", "only these event types, comma-separated: "+strings.Join(domain.EventTypes(), ","))
		sale     = fs.String("sale", "", "only events of this sale")
		user     = fs.String("user", "", "only events of this user (StockReleased names no user)")
		order    = fs.String("order", "", "only events of this order")
		format   = fs.String("format", eventstore.FormatJSONL, "output format: jsonl (one envelope per line) or csv")
		out      = fs.String("out", "", "write to this file instead of stdout")
		follow   = fs.Bool("follow", false, "after the end of the log, keep printing new events as they arrive (until Ctrl-C or --to)")
		slack    = fs.Duration("slack", time.Minute, "how far outside [--from, --to) to look at record (publish) times: events published later than this after they occurred are missed")
		skipBad  = fs.Bool("skip-undecodable", false, "pass over records this build cannot decode (counted on stderr) instead of stopping")
		quietSum = fs.Bool("quiet", false, "do not print the summary line on stderr")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	q := eventstore.Query{SaleID: *sale, UserID: *user, OrderID: *order, Follow: *follow, Slack: *slack, SkipUndecodable: *skipBad}
	var err error
	if q.From, err = parseTime("--from", *from); err != nil {
		return err
	}
	if q.To, err = parseTime("--to", *to); err != nil {
		return err
	}
	if *types != "" {
		for _, t := range strings.Split(*types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				q.Types = append(q.Types, t)
			}
		}
	}
	if err := q.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if *format != eventstore.FormatJSONL && *format != eventstore.FormatCSV {
		return usageError{fmt.Sprintf("--format %q: want jsonl or csv", *format)}
	}
	// An export to a file shows its progress on stderr (stdout carries
	// the events otherwise, and a follow has no end to count to).
	var bar *progress
	if *out != "" && !*follow {
		bar = newProgress(c.stderr, "records")
		q.Progress = bar.counter("export")
		defer bar.finish()
	}
	ep.fromDev()
	if err := ep.need(false, false, true, false); err != nil {
		return err
	}
	lg, err := eventstore.NewLog(eventstore.LogConfig{Brokers: ep.brokerList(), Topic: ep.Topic})
	if err != nil {
		return err
	}

	dst := c.stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		defer f.Close()
		dst = f
	}
	w, err := eventstore.NewEntryWriter(dst, *format)
	if err != nil {
		return usageError{err.Error()}
	}
	// While following, events trickle in: a flusher sends what is buffered
	// every quarter second instead of waiting for 64 KiB.
	var mu sync.Mutex
	if *follow {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					mu.Lock()
					_ = w.Flush()
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	st, err := lg.Events(ctx, q, func(e eventstore.Event) error {
		mu.Lock()
		defer mu.Unlock()
		return w.Write(e)
	})
	mu.Lock()
	ferr := w.Flush()
	mu.Unlock()
	if *out != "" {
		if f, ok := dst.(*os.File); ok {
			ferr = errors.Join(ferr, f.Close())
		}
	}
	if err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("write: %w", ferr)
	}
	if bar != nil {
		bar.finish()
	}
	if !*quietSum {
		printSummary(c.stderr, st, time.Since(start))
	}
	return nil
}

func printSummary(w io.Writer, st eventstore.QueryStats, d time.Duration) {
	rate := float64(st.Scanned) / max(d.Seconds(), 1e-9)
	fmt.Fprintf(w, "seckill events: %d events matched, %d records scanned in %s (%.0f records/s)", st.Matched, st.Scanned, d.Round(time.Millisecond), rate)
	if st.Skipped > 0 {
		fmt.Fprintf(w, ", %d undecodable records skipped", st.Skipped)
	}
	fmt.Fprintln(w)
}

// parseTime reads an optional RFC 3339 time flag.
func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usageError{fmt.Sprintf("%s %q: want an RFC 3339 time, e.g. 2026-11-11T20:00:03Z or 2026-11-11T20:00:03+08:00", flag, v)}
	}
	return t, nil
}
