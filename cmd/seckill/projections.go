package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	// (slim containers) too.
	// The daily report's time zone must load on hosts without zoneinfo
	_ "time/tzdata"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
)

// projectionFlags configure the projections: the live ones of serve and dev,
// and the projections command (which needs the daily database and time zone
// too).
type projectionFlags struct {
	batch        int
	dailyURL     string
	dailyRate    float64
	dailyBatch   int
	dailyWorkers int
	dailyTZ      string
	envErr       error // a malformed number in the environment, reported by validate
}

func (p *projectionFlags) bind(c cli, fs *flag.FlagSet) {
	num := func(key string, def float64) float64 {
		v := c.getenv(key)
		if v == "" {
			return def
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			p.envErr = errors.Join(p.envErr, usageError{fmt.Sprintf("%s=%q: want a number >= 0", key, v)})
			return def
		}
		return n
	}
	fs.IntVar(&p.batch, "projection-batch", int(num("SECKILL_PROJECTION_BATCH", 4096)),
		"most events the orders and inventory projections apply in one transaction (env SECKILL_PROJECTION_BATCH)")
	fs.StringVar(&p.dailyURL, "daily-database-url", c.getenv("SECKILL_DAILY_DATABASE_URL"),
		"Postgres URL of the everyday order database the daily projection writes to; default: the same database (env SECKILL_DAILY_DATABASE_URL)")
	fs.Float64Var(&p.dailyRate, "daily-rate", num("SECKILL_DAILY_RATE", 5000),
		"events per second the daily projection applies at most, so the everyday order database sets the pace; 0: no cap (env SECKILL_DAILY_RATE)")
	fs.IntVar(&p.dailyBatch, "daily-batch", int(num("SECKILL_DAILY_BATCH", 500)),
		"most events the daily projection writes in one transaction (env SECKILL_DAILY_BATCH)")
	fs.IntVar(&p.dailyWorkers, "daily-workers", int(num("SECKILL_DAILY_WORKERS", 2)),
		"transactions the daily projection runs at once: size it to the everyday order database (env SECKILL_DAILY_WORKERS)")
	fs.StringVar(&p.dailyTZ, "daily-timezone", envOr(c, "SECKILL_DAILY_TIMEZONE", "UTC"),
		"IANA time zone of the daily report's business day, e.g. Asia/Shanghai; after changing it, rebuild the daily projection (env SECKILL_DAILY_TIMEZONE)")
}

func (p *projectionFlags) validate() error {
	errs := []error{p.envErr}
	if p.batch < 1 || p.dailyBatch < 1 || p.dailyWorkers < 1 {
		errs = append(errs, usageError{"--projection-batch, --daily-batch and --daily-workers must be >= 1"})
	}
	if p.dailyRate < 0 {
		errs = append(errs, usageError{"--daily-rate must be >= 0"})
	}
	if _, err := time.LoadLocation(p.dailyTZ); err != nil {
		errs = append(errs, usageError{fmt.Sprintf("--daily-timezone %q: %v", p.dailyTZ, err)})
	}
	return errors.Join(errs...)
}

// readModels are the read models of a node: the projections, the daily
// database, the consumers (on a projector) and the monitor of them all.
type readModels struct {
	orders    *readmodels.Orders
	inventory *readmodels.Inventory
	daily     *readmodels.Daily
	pool      *pgxpool.Pool
	dailyPool *pgxpool.Pool // pool itself when the daily model shares it
	monitor   *projections.Monitor
	consumers []*projections.Consumer
}

// openReadModels builds the projections over pool and the daily database
// (migrated here when migrate is set, since it may be a database of its own).
func openReadModels(ctx context.Context, p projectionFlags, ep endpoints, pool *pgxpool.Pool, tracer pgx.QueryTracer, migrate bool) (*readModels, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	rm := &readModels{pool: pool, dailyPool: pool}
	if p.dailyURL != "" && p.dailyURL != ep.DatabaseURL {
		if migrate {
			if err := migrations.Up(ctx, p.dailyURL); err != nil {
				return nil, fmt.Errorf("daily database: %w", err)
			}
		}
		dp, err := openPostgres(ctx, p.dailyURL, tracer)
		if err != nil {
			return nil, fmt.Errorf("daily database: %w", err)
		}
		rm.dailyPool = dp
	}
	loc, _ := time.LoadLocation(p.dailyTZ)
	var err error
	if rm.orders, err = readmodels.NewOrders(readmodels.OrdersConfig{}, pool); err != nil {
		rm.close()
		return nil, err
	}
	if rm.inventory, err = readmodels.NewInventory(readmodels.InventoryConfig{}, pool); err != nil {
		rm.close()
		return nil, err
	}
	if rm.daily, err = readmodels.NewDaily(readmodels.DailyConfig{Location: loc}, rm.dailyPool); err != nil {
		rm.close()
		return nil, err
	}
	return rm, nil
}

// rebuildable returns the projection called name.
func (rm *readModels) rebuildable(name string) (projections.Rebuildable, *pgxpool.Pool, error) {
	switch name {
	case readmodels.NameOrders:
		return rm.orders, rm.pool, nil
	case readmodels.NameInventory:
		return rm.inventory, rm.pool, nil
	case readmodels.NameDaily:
		return rm.daily, rm.dailyPool, nil
	}
	return nil, nil, usageError{fmt.Sprintf("unknown projection %q (want %s, %s or %s)", name, readmodels.NameOrders, readmodels.NameInventory, readmodels.NameDaily)}
}

// newConsumers makes the consumers of every projection (after creating the
// dead-letter topic), for the caller to run. Their metrics go to reg.
func (rm *readModels) newConsumers(ctx context.Context, p projectionFlags, brokers []string, topic string,
	partitions int, reg prometheus.Registerer, log *slog.Logger) error {
	if err := eventstore.EnsureTopic(ctx, brokers, topic+".dlq", min(partitions, 4)); err != nil {
		return err
	}
	m, err := projections.NewMetrics(reg)
	if err != nil {
		return err
	}
	base := projections.ConsumerConfig{Brokers: brokers, Topic: topic, Metrics: m, Logger: log}
	for _, c := range []struct {
		proj projections.Projection
		pool *pgxpool.Pool
		tune func(*projections.ConsumerConfig)
	}{
		{rm.orders, rm.pool, func(c *projections.ConsumerConfig) { c.MaxBatch = p.batch }},
		{rm.inventory, rm.pool, func(c *projections.ConsumerConfig) { c.MaxBatch = p.batch }},
		{rm.daily, rm.dailyPool, func(c *projections.ConsumerConfig) {
			c.MaxBatch, c.Workers, c.Rate = p.dailyBatch, p.dailyWorkers, p.dailyRate
		}},
	} {
		cfg := base
		c.tune(&cfg)
		consumer, err := projections.NewConsumer(cfg, c.pool, c.proj)
		if err != nil {
			return err
		}
		rm.consumers = append(rm.consumers, consumer)
	}
	return nil
}

// startMonitor makes the monitor of the projections (with the state of the
// consumers running here) and registers it on reg, if reg is not nil.
func (rm *readModels) startMonitor(brokers []string, topic string, reg prometheus.Registerer, log *slog.Logger) error {
	running := map[string]*projections.Consumer{}
	for _, c := range rm.consumers {
		running[c.Name()] = c
	}
	var targets []projections.Target
	for _, t := range []struct {
		name string
		pool *pgxpool.Pool
	}{{readmodels.NameOrders, rm.pool}, {readmodels.NameInventory, rm.pool}, {readmodels.NameDaily, rm.dailyPool}} {
		tg := projections.Target{Name: t.name, Pool: t.pool}
		if c, ok := running[t.name]; ok {
			tg.Runner = c
		}
		targets = append(targets, tg)
	}
	m, err := projections.NewMonitor(projections.MonitorConfig{Brokers: brokers, Topic: topic, Logger: log}, targets...)
	if err != nil {
		return err
	}
	rm.monitor = m
	if reg != nil {
		return reg.Register(m)
	}
	return nil
}

// close releases the monitor and the daily database (not the main pool,
// which the caller owns).
func (rm *readModels) close() {
	if rm.monitor != nil {
		rm.monitor.Close()
	}
	if rm.dailyPool != nil && rm.dailyPool != rm.pool {
		rm.dailyPool.Close()
	}
}

// runProjections is `seckill projections status|rebuild`.
func runProjections(ctx context.Context, c cli, args []string) error {
	usage := "Usage: seckill projections status [--json] [flags]\n" +
		"       seckill projections rebuild NAME [--resume] [--no-swap] [flags]\n\n" +
		"status   each projection: position, lag in events and seconds, dead letters, state\n" +
		"rebuild  replay the log from offset zero into shadow tables while the live projection\n" +
		"         keeps serving, then swap them in atomically (NAME: orders, inventory, daily)\n\n" +
		"seckill projections COMMAND --help for its flags.\n"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, usage)
		if len(args) == 0 {
			return usageError{"a projections command is required: status or rebuild"}
		}
		return nil
	}
	switch args[0] {
	case "status":
		return runProjectionsStatus(ctx, c, args[1:])
	case "rebuild":
		return runProjectionsRebuild(ctx, c, args[1:])
	}
	fmt.Fprint(c.stderr, usage)
	return usageError{fmt.Sprintf("unknown projections command %q", args[0])}
}

// projectionsEnv opens what the projections command needs: the endpoints
// (flags, env, or a running `seckill dev`) and the read models. Only a
// command that writes (rebuild) migrates: status is read-only, and a schema
// change is the business of `seckill migrate` or of the service.
func projectionsEnv(ctx context.Context, ep *endpoints, p projectionFlags, migrate bool) (*readModels, func(), error) {
	ep.fromDev()
	if err := ep.need(false, true, true, false); err != nil {
		return nil, nil, err
	}
	if migrate {
		if err := migrations.Up(ctx, ep.DatabaseURL); err != nil {
			return nil, nil, err
		}
	}
	pool, err := openPostgres(ctx, ep.DatabaseURL, nil)
	if err != nil {
		return nil, nil, err
	}
	rm, err := openReadModels(ctx, p, *ep, pool, nil, migrate)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return rm, func() { rm.close(); pool.Close() }, nil
}

func runProjectionsStatus(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "projections status", "projections status [--json]\n\n"+
		"Shows each projection's position, its lag in events (end offsets - positions) and in seconds\n"+
		"(age of the oldest event not applied), its dead letters and its state (caught_up, catching_up,\n"+
		"stalled), and a rebuild under way.")
	var ep endpoints
	ep.bind(c, fs)
	var p projectionFlags
	p.bind(c, fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	rm, done, err := projectionsEnv(ctx, &ep, p, false)
	if err != nil {
		return err
	}
	defer done()
	if err := rm.startMonitor(ep.brokerList(), ep.Topic, nil, nil); err != nil {
		return err
	}
	st, err := rm.monitor.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"projections": st})
	}
	printStatus(c.stdout, st)
	return nil
}

// printStatus writes st as a table.
func printStatus(w io.Writer, st []projections.ProjectionStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tSTATE\tAPPLIED\tLAG (EVENTS)\tLAG (S)\tDEAD LETTERS\tLAST APPLIED")
	for _, s := range st {
		last := "-"
		if !s.LastApplied.IsZero() {
			last = s.LastApplied.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%.1f\t%d\t%s\n", s.Projection, s.State, s.Applied, s.LogEnd, s.LagEvents, s.LagSeconds, s.DeadLetters, last)
	}
	tw.Flush()
	missing := false
	for _, s := range st {
		missing = missing || strings.Contains(s.Error, "SQLSTATE 42P01")
		if s.Rebuild != nil {
			fmt.Fprintf(w, "%s: rebuild under way in schema %s: %d applied, %d to go\n", s.Projection, s.Rebuild.Schema, s.Rebuild.Applied, s.Rebuild.LagEvents)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", s.Projection, s.Error)
		}
	}
	if missing {
		// status is read-only: it never migrates (serve and migrate do).
		fmt.Fprintln(w, "tables are missing: has the database been migrated? (`seckill migrate`, or start `seckill serve`)")
	}
}

func runProjectionsRebuild(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "projections rebuild", "projections rebuild NAME [--resume] [--no-swap]\n\n"+
		"Replays the log from offset zero into shadow tables (schema rebuild_NAME) while the live projection\n"+
		"keeps serving and applying; once the shadow is within --swap-within events of the end, one\n"+
		"transaction applies the rest, swaps the tables in and moves the live position to the shadow's, so\n"+
		"the live runner continues from there without applying anything twice. NAME: orders, inventory, daily.\n"+
		"Shows a progress bar on a terminal, progress lines otherwise.")
	var ep endpoints
	ep.bind(c, fs)
	var p projectionFlags
	p.bind(c, fs)
	var (
		resume     = fs.Bool("resume", false, "continue an interrupted rebuild from its shadow tables instead of starting over")
		noSwap     = fs.Bool("no-swap", false, "build and catch up the shadow but do not swap it in (finish later with --resume)")
		batch      = fs.Int("batch", 16384, "events per transaction")
		workers    = fs.Int("workers", 2, "transactions at once")
		swapWithin = fs.Int64("swap-within", 5000, "swap once the shadow is at most this many events behind the log's end")
		rate       = fs.Float64("rate", -1, "events per second at most; 0: no cap; default: --daily-rate for daily (its database sets the pace), no cap for the others")
	)
	// The name may come before or after the flags.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if name == "" {
		fmt.Fprintln(fs.Output(), "projections rebuild: which projection?")
		fs.Usage()
		return usageError{"which projection? orders, inventory or daily"}
	}
	if *batch < 1 || *workers < 1 || *swapWithin < 0 {
		return usageError{"--batch and --workers must be >= 1, --swap-within >= 0"}
	}
	rm, done, err := projectionsEnv(ctx, &ep, p, true)
	if err != nil {
		return err
	}
	defer done()
	proj, pool, err := rm.rebuildable(name)
	if err != nil {
		return err
	}
	if *rate < 0 {
		*rate = 0
		if name == readmodels.NameDaily {
			*rate = p.dailyRate
		}
	}
	bar := newProgress(c.stdout, "events")
	res, err := projections.Rebuild(ctx, projections.RebuildConfig{
		Brokers: ep.brokerList(), Topic: ep.Topic, MaxBatch: *batch, Workers: *workers, SwapWithin: *swapWithin,
		Resume: *resume, NoSwap: *noSwap, Rate: *rate, Progress: rebuildProgress(bar), Logger: newLogger(c, false),
	}, pool, proj)
	bar.finish()
	if err != nil {
		return err
	}
	switch {
	case res.Swapped:
		fmt.Fprintf(c.stdout, "rebuilt %s: %d events in %s (replay %.0f events/s), %d dead letters; swapped in, live projection paused %s\n",
			name, res.Records, res.Duration.Round(time.Millisecond), res.ReplayRate, res.DeadLetters, res.SwapPause.Round(time.Millisecond))
	default:
		fmt.Fprintf(c.stdout, "built %s in schema %s: %d events in %s (replay %.0f events/s), %d dead letters; not swapped (--no-swap): finish with --resume\n",
			name, res.Schema, res.Records, res.Duration.Round(time.Millisecond), res.ReplayRate, res.DeadLetters)
	}
	return nil
}

// rebuildProgress shows a rebuild's phases on bar.
func rebuildProgress(bar *progress) func(projections.RebuildProgress) {
	return func(p projections.RebuildProgress) {
		if p.Phase == projections.PhaseDone {
			return // the command prints the result
		}
		if p.Total <= 0 {
			// prepare, swap, or a catch-up with nothing to do: one line.
			bar.note(p.Phase, phaseText[p.Phase])
			return
		}
		bar.show(p.Phase, p.Done, p.Total, p.Rate, p.ETA, p.Final)
	}
}

// phaseText says what a phase without a count does.
var phaseText = map[string]string{
	projections.PhasePrepare: "prepare: creating the shadow tables",
	projections.PhaseCatchUp: "catch-up: nothing to apply",
	projections.PhaseSwap:    "swap: locking the live projection, applying what it is ahead by, swapping the tables in",
}
