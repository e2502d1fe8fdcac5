package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// eventsFlags are the flags of `seckill events`.
type eventsFlags struct {
	from, to, types, sale, user, order, format, out string
	follow, skipBad, quiet                          bool
	slack                                           time.Duration
}

func (f *eventsFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.from, "from", "", "only events that occurred at or after this time (RFC 3339)")
	fs.StringVar(&f.to, "to", "", "only events that occurred before this time (RFC 3339)")
	fs.StringVar(&f.types, "type", "", "only these event types, comma-separated: "+strings.Join(domain.EventTypes(), ","))
	fs.StringVar(&f.sale, "sale", "", "only events of this sale")
	fs.StringVar(&f.user, "user", "", "only events of this user (StockReleased names no user)")
	fs.StringVar(&f.order, "order", "", "only events of this order")
	fs.StringVar(&f.format, "format", eventstore.FormatJSONL, "output format: jsonl (one envelope per line) or csv")
	fs.StringVar(&f.out, "out", "", "write to this file instead of stdout")
	fs.BoolVar(&f.follow, "follow", false, "after the end of the log, keep printing new events as they arrive (until Ctrl-C or --to)")
	fs.DurationVar(&f.slack, "slack", time.Minute, "how far outside [--from, --to) to look at record (publish) times: events published later than this after they occurred are missed")
	fs.BoolVar(&f.skipBad, "skip-undecodable", false, "pass over records this build cannot decode (counted on stderr) instead of stopping")
	fs.BoolVar(&f.quiet, "quiet", false, "do not print the summary line on stderr")
}

// query is the query the flags ask for, checked.
func (f *eventsFlags) query() (eventstore.Query, error) {
	q := eventstore.Query{SaleID: f.sale, UserID: f.user, OrderID: f.order, Follow: f.follow, Slack: f.slack, SkipUndecodable: f.skipBad}
	var err error
	if q.From, err = parseTime("--from", f.from); err != nil {
		return q, err
	}
	if q.To, err = parseTime("--to", f.to); err != nil {
		return q, err
	}
	for _, t := range strings.Split(f.types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			q.Types = append(q.Types, t)
		}
	}
	if err := q.Validate(); err != nil {
		return q, usageError{err.Error()}
	}
	if f.format != eventstore.FormatJSONL && f.format != eventstore.FormatCSV {
		return q, usageError{fmt.Sprintf("--format %q: want jsonl or csv", f.format)}
	}
	return q, nil
}

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
	var f eventsFlags
	f.bind(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	q, err := f.query()
	if err != nil {
		return err
	}
	// An export to a file shows its progress on stderr (stdout carries
	// the events otherwise, and a follow has no end to count to).
	var bar *progress
	if f.out != "" && !f.follow {
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
	w, err := openEventsOutput(c.stdout, f.out, f.format)
	if err != nil {
		return err
	}
	if f.follow {
		// While following, events trickle in: what is buffered is sent
		// every quarter second instead of waiting for 64 KiB.
		defer w.flushEvery(250 * time.Millisecond)()
	}
	start := time.Now()
	st, err := lg.Events(ctx, q, w.write)
	if err = errors.Join(err, w.close()); err != nil {
		return err
	}
	if bar != nil {
		bar.finish()
	}
	if !f.quiet {
		printSummary(c.stderr, st, time.Since(start))
	}
	return nil
}

// eventsOutput is where `seckill events` writes: stdout or a file, in one
// format, safe to flush from another goroutine.
type eventsOutput struct {
	mu   sync.Mutex
	w    eventstore.EntryWriter
	file *os.File // nil for stdout
}

func openEventsOutput(stdout io.Writer, out, format string) (*eventsOutput, error) {
	o := &eventsOutput{}
	dst := stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return nil, fmt.Errorf("--out: %w", err)
		}
		o.file, dst = f, f
	}
	w, err := eventstore.NewEntryWriter(dst, format)
	if err != nil {
		if o.file != nil {
			o.file.Close()
		}
		return nil, usageError{err.Error()}
	}
	o.w = w
	return o, nil
}

func (o *eventsOutput) write(e eventstore.Event) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(e)
}

// flushEvery flushes every d until the returned stop is called.
func (o *eventsOutput) flushEvery(d time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				o.mu.Lock()
				_ = o.w.Flush()
				o.mu.Unlock()
			}
		}
	}()
	return func() { close(done) }
}

// close flushes what is buffered and closes the file.
func (o *eventsOutput) close() error {
	o.mu.Lock()
	err := o.w.Flush()
	o.mu.Unlock()
	if o.file != nil {
		err = errors.Join(err, o.file.Close())
	}
	if err != nil {
		return fmt.Errorf("write: %w", err)
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
