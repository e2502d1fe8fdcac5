// Package audit proves the system's invariants from the log: it folds the
// whole event log (domain.Fold) and checks that the log itself is sound (sold
// ≤ stock, one end per order, per-user limits held, no event of an unknown
// order), that the Redis gate holds exactly what the log says, and that every
// read model equals the fold. It only reads. Tests use it as the judge of
// fault scenarios; `seckill audit` runs it for ops.
//
// The comparison is exact on a quiet system. On a live one the gate and the
// read models move while the audit reads, and differences caused by events in
// flight show up: run it when the sales are quiet, or run it again.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/snapshot"
)

// Config configures an Auditor.
type Config struct {
	// Brokers are the Kafka seed brokers of the log. Required.
	Brokers []string
	// Topic is the log's topic. Default eventstore.DefaultTopic.
	Topic string
	// Wait bounds how long the audit waits for the outboxes to drain (the
	// gate is ahead of the log by what they hold) and for the read models to
	// apply the log up to its end. Default 10s.
	Wait time.Duration
	// Poll is how often it looks while waiting. Default 100ms.
	Poll time.Duration
	// Progress, if set, is told how far the fold of the log is
	// (eventstore.FoldOptions.Progress).
	Progress func(done, total int64)

	// Snapshots is the fold snapshot directory (package snapshot): the
	// fold starts from its newest snapshot, and with SaveSnapshot the audit
	// saves a new one after it read the whole log. Empty: the whole log is
	// folded and nothing saved. Fresh ignores the snapshots (a full fold).
	Snapshots    string
	Fresh        bool
	SaveSnapshot bool
	// Warn is told why a snapshot was not used.
	Warn func(string)
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = eventstore.DefaultTopic
	}
	if c.Wait == 0 {
		c.Wait = 10 * time.Second
	}
	if c.Poll == 0 {
		c.Poll = 100 * time.Millisecond
	}
}

// Validate reports every field that is wrong, joined.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("no topic"))
	}
	if c.Wait < 0 || c.Poll < 0 {
		errs = append(errs, errors.New("wait and poll must not be negative"))
	}
	return errors.Join(errs...)
}

// ReadModel is one read model the audit compares with the fold. Each
// projection's model implements it (OrdersModel for orders and sales).
type ReadModel interface {
	// Name names the model in the report and is the projection whose
	// checkpoints Positions reads.
	Name() string
	// Positions returns the last log offset the model has applied, per
	// partition (a partition it has applied nothing of is absent).
	Positions(ctx context.Context, topic string) (map[int32]int64, error)
	// Compare calls violate once per difference between the model and the
	// log (a readable sentence naming the row and the fields).
	Compare(ctx context.Context, log LogState, violate func(string)) error
}

// LogState is what the log says, as the checks compare it: the fold (open
// sales and orders in memory, closed sales as summaries with digests of their
// orders) and the closed sales whole, one at a time, for the checks that
// have to name the order that differs.
type LogState struct {
	Fold    *domain.Fold
	Archive func(saleID string) (*domain.SaleArchive, error)
}

// maxItemised bounds the closed sales whose orders a check compares one by
// one after their digest differed; the others are named with their counts.
const maxItemised = 10

// Auditor runs audits.
type Auditor struct {
	cfg    Config
	gate   *commands.Gate
	models []ReadModel
}

// New returns an auditor of the log of cfg, the gate (nil: not checked) and
// the read models.
func New(cfg Config, gate *commands.Gate, models ...ReadModel) (*Auditor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new auditor: %w", err)
	}
	return &Auditor{cfg: cfg, gate: gate, models: models}, nil
}

// Check is the result of one group of checks.
type Check struct {
	Name string
	// Violations are readable sentences, sorted; none means the check holds.
	Violations []string
	// Skipped says why the check did not run ("" if it ran).
	Skipped string
}

// Report is the result of an audit.
type Report struct {
	// Events is the number of distinct events folded, Duplicates the
	// redeliveries the fold skipped.
	Events, Duplicates int64
	Sales              int
	Orders             int64
	// Closed counts the sales the fold archived (ended, every order
	// settled): their orders are compared by digest first.
	Closed int
	// From is the snapshot the fold started from ("" for none), Records
	// the log records it folded then (FromRecords of them in the snapshot),
	// Saved the snapshot saved after the audit, SaveError why none was.
	From                 string
	Records, FromRecords int64
	Saved, SaveError     string
	Checks               []Check
	Duration             time.Duration
}

// OK reports whether every check that ran holds. A skipped check does not
// fail the audit; the report says it was skipped.
func (r Report) OK() bool { return len(r.Violations()) == 0 }

// Violations returns every violation, prefixed with its check's name.
func (r Report) Violations() []string {
	var out []string
	for _, c := range r.Checks {
		for _, v := range c.Violations {
			out = append(out, c.Name+": "+v)
		}
	}
	return out
}

// maxShown bounds the violations printed per check: a read model that is
// empty differs on every row, and a million lines tell no more than twenty.
const maxShown = 20

// WriteText writes the report for people: one line per check, then its
// violations.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "audit of %d events (%d sales, %d of them closed; %d orders; %d duplicate deliveries skipped) in %s\n",
		r.Events, r.Sales, r.Closed, r.Orders, r.Duplicates, r.Duration.Round(time.Millisecond))
	if r.From != "" {
		fmt.Fprintf(&b, "  fold: snapshot %s (%d records) and the %d records after it\n", r.From, r.FromRecords, r.Records-r.FromRecords)
	}
	switch {
	case r.Saved != "":
		fmt.Fprintf(&b, "  snapshot saved: %s\n", r.Saved)
	case r.SaveError != "":
		fmt.Fprintf(&b, "  snapshot not saved: %s\n", r.SaveError)
	}
	for _, c := range r.Checks {
		switch {
		case c.Skipped != "":
			fmt.Fprintf(&b, "  SKIP %s: %s\n", c.Name, c.Skipped)
		case len(c.Violations) == 0:
			fmt.Fprintf(&b, "  ok   %s\n", c.Name)
		default:
			fmt.Fprintf(&b, "  FAIL %s: %d violation(s)\n", c.Name, len(c.Violations))
			for i, v := range c.Violations {
				if i == maxShown {
					fmt.Fprintf(&b, "         … and %d more\n", len(c.Violations)-maxShown)
					break
				}
				fmt.Fprintf(&b, "       - %s\n", v)
			}
		}
	}
	if r.OK() {
		b.WriteString("all invariants hold\n")
	} else {
		fmt.Fprintf(&b, "%d violation(s)\n", len(r.Violations()))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Run audits once. The error is for an audit that could not be carried out
// (the log unreadable, Redis or Postgres down); what it found is in the
// report.
func (a *Auditor) Run(ctx context.Context) (Report, error) {
	start := time.Now()
	var rep Report

	// The gate is ahead of the log by what its outboxes hold: wait for the
	// relay to forward it, so the fold below includes it.
	outbox := Check{Name: "outbox"}
	var pending map[string]int64
	if a.gate == nil {
		outbox.Skipped = "no gate (Redis) to check"
	} else {
		var err error
		pending, err = a.waitOutboxes(ctx)
		if err != nil {
			return rep, err
		}
		for _, sale := range slices.Sorted(maps.Keys(pending)) {
			outbox.Violations = append(outbox.Violations, fmt.Sprintf(
				"sale %s: %d outbox entries not forwarded to the log after %s (is the relay running?); its gate state is not compared",
				sale, pending[sale], a.cfg.Wait))
		}
	}

	res, err := snapshot.Fold(ctx, a.cfg.Brokers, a.cfg.Topic, snapshot.Options{Dir: a.cfg.Snapshots, Fresh: a.cfg.Fresh,
		Progress: a.cfg.Progress, Warn: a.cfg.Warn})
	if err != nil {
		return rep, err
	}
	defer res.Close()
	fold, st := res.Fold, res.Stats
	log := LogState{Fold: fold, Archive: res.Archive}
	rep.Events, rep.Duplicates, rep.Sales, rep.Orders = fold.Events, fold.Duplicates, fold.SaleCount(), fold.OrderCount()
	rep.Records, rep.Closed = res.Records, len(fold.Archived)
	if res.From != nil {
		rep.From, rep.FromRecords = res.From.Path, res.From.Records
	}

	logCheck := Check{Name: "log", Violations: fold.Violations()}
	if st.Undecodable > 0 {
		logCheck.Violations = append(logCheck.Violations, fmt.Sprintf("%d record(s) are not decodable events, e.g. %s",
			st.Undecodable, strings.Join(st.Errors, "; ")))
	}
	rep.Checks = append(rep.Checks, logCheck, outbox)
	drawCheck, err := a.checkDraws(ctx, fold) // draw.go
	if err != nil {
		return rep, err
	}
	rep.Checks = append(rep.Checks, drawCheck)

	gateCheck := Check{Name: "gate"}
	if a.gate == nil {
		gateCheck.Skipped = "no gate (Redis) to check"
	} else if err := a.compareGate(ctx, log, pending, func(v string) { gateCheck.Violations = append(gateCheck.Violations, v) }); err != nil {
		return rep, err
	}
	rep.Checks = append(rep.Checks, gateCheck)

	for _, m := range a.models {
		c := Check{Name: "read model " + m.Name()}
		violate := func(v string) { c.Violations = append(c.Violations, v) }
		lag, err := a.waitModel(ctx, m, st.Ends)
		if err != nil {
			return rep, err
		}
		if lag > 0 {
			violate(fmt.Sprintf("%d event(s) of the log not applied after %s (is the projector running?)", lag, a.cfg.Wait))
		}
		if err := m.Compare(ctx, log, violate); err != nil {
			return rep, fmt.Errorf("audit %s: %w", m.Name(), err)
		}
		rep.Checks = append(rep.Checks, c)
	}
	if len(a.models) == 0 {
		rep.Checks = append(rep.Checks, Check{Name: "read models", Skipped: "no database to check"})
	}
	for i := range rep.Checks {
		slices.Sort(rep.Checks[i].Violations)
	}
	if a.cfg.SaveSnapshot && a.cfg.Snapshots != "" {
		// The snapshot is of the log, whatever the checks found: the
		// fold's violations are in it and come back in later audits.
		if rep.Saved, err = res.Save(); err != nil {
			rep.Saved, rep.SaveError = "", err.Error()
		}
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// waitOutboxes waits until every outbox is empty or Wait has passed, and
// returns the ones that are not.
func (a *Auditor) waitOutboxes(ctx context.Context) (map[string]int64, error) {
	deadline := time.Now().Add(a.cfg.Wait)
	for {
		pending, err := a.gate.OutboxBacklog(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		if len(pending) == 0 || !time.Now().Before(deadline) {
			return pending, nil
		}
		if err := sleep(ctx, a.cfg.Poll); err != nil {
			return nil, err
		}
	}
}

// waitModel waits until m has applied the log up to ends, or Wait has passed,
// and returns how many offsets it is still behind.
func (a *Auditor) waitModel(ctx context.Context, m ReadModel, ends map[int32]int64) (int64, error) {
	deadline := time.Now().Add(a.cfg.Wait)
	for {
		pos, err := m.Positions(ctx, a.cfg.Topic)
		if err != nil {
			return 0, fmt.Errorf("audit %s: %w", m.Name(), err)
		}
		var lag int64
		for p, end := range ends {
			applied, ok := pos[p]
			if !ok {
				applied = -1
			}
			lag += max(0, end-1-applied)
		}
		if lag == 0 || !time.Now().Before(deadline) {
			return lag, nil
		}
		if err := sleep(ctx, a.cfg.Poll); err != nil {
			return 0, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("audit: %w", context.Cause(ctx))
	case <-t.C:
		return nil
	}
}
