// Command bench measures seckill against its ceilings in ONE run on one
// machine and writes BENCHMARKS.md. Absolute numbers on a shared 2-core box are
// noise; the ratios to ceilings measured minutes apart under the same load
// generator are the signal.
//
//	go run ./bench            (make bench)
//	go run ./bench -quick     (smaller counts, a smoke run)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/seckill/seckill/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	out     string
	quick   bool
	million bool
	conc    int
	n       int
	tokens  int    // the token pool: distinct users, one per request
	only    string // the phases to run, comma-separated; "" for all
	memLim  string // GOMEMLIMIT of the API node; "" for none
	profile string // directory for CPU and allocation profiles; "" for none
}

type bench struct {
	cfg     config
	w       io.Writer
	bin     string
	dir     string
	data    string // the data folder of `seckill dev`
	api     string // the API process under test
	ceiling string // the ceiling server (an empty chi handler)
	devPID  int    // `seckill dev`: broker, Redis, Postgres, relay, projector, sweeper
	apiPID  int    // `seckill serve --role api`
	// The admin listeners (pprof) of the two processes.
	devAdmin, apiAdmin string
	loadAvg            string // /proc/loadavg at the start
	secret             []byte
	admin              string
	pool               *tokenPool
	dev                devState
	rows               []row
	details            []string
	audits             []string // the phases after which `seckill audit` ran clean
}

type devState struct {
	RedisURL    string `json:"redis_url"`
	DatabaseURL string `json:"database_url"`
	Brokers     string `json:"kafka_brokers"`
	Topic       string `json:"topic"`
	HTTPAddr    string `json:"http_addr"`
	PID         int    `json:"pid"`
}

func run(ctx context.Context, args []string, w io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "seckill-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{cfg: cfg, w: w, dir: dir, loadAvg: loadAvg()}
	stop, err := b.setUp(ctx)
	if err != nil {
		return err
	}
	defer stop()

	begin := time.Now()
	if err := b.measure(ctx); err != nil {
		return err
	}
	report := b.report(time.Since(begin))
	fmt.Fprint(w, "\n"+report)
	if cfg.quick && cfg.out == "BENCHMARKS.md" {
		fmt.Fprintln(w, "(quick run: BENCHMARKS.md not written)")
		return nil
	}
	return os.WriteFile(cfg.out, []byte(report+keptSections(cfg.out)), 0o644)
}

// keptSections returns the marked sections of the file at path that other
// commands write (`<!-- NAME: begin -->` … `<!-- NAME: end -->`: bench-log,
// bench-viewers, the replica acknowledgement), so that rewriting the report
// does not drop them.
func keptSections(path string) string {
	old, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var b strings.Builder
	rest := string(old)
	for {
		i := strings.Index(rest, "<!-- ")
		if i < 0 {
			break
		}
		name, _, ok := strings.Cut(rest[i+len("<!-- "):], ": begin -->")
		if !ok || strings.ContainsAny(name, " \n") {
			rest = rest[i+len("<!-- "):]
			continue
		}
		end := "<!-- " + name + ": end -->"
		j := strings.Index(rest[i:], end)
		if j < 0 {
			break
		}
		b.WriteString("\n" + rest[i:i+j+len(end)] + "\n")
		rest = rest[i+j+len(end):]
	}
	return b.String()
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.out, "out", "BENCHMARKS.md", "where to write the report")
	fs.BoolVar(&cfg.quick, "quick", false, "small counts: a smoke run, not a measurement")
	fs.BoolVar(&cfg.million, "million", true, "run the million-attempt sale (1,000,000 attempts, 200,000 users, 1,000 stock); false: a small sale")
	fs.IntVar(&cfg.conc, "concurrency", 64, "concurrent connections of every load phase")
	fs.StringVar(&cfg.only, "only", "", "run only these phases (comma-separated: paths, pipeline, lag, sale, rebuild, profiles); the report is then partial, so give -out too")
	fs.StringVar(&cfg.memLim, "api-gomemlimit", "110MiB", "GOMEMLIMIT of the API node under test, a soft limit as an API node runs with in a deployment (docs/performance.md); \"\" for none")
	fs.IntVar(&cfg.tokens, "tokens", 300_000, "users in the pre-minted token pool; every request of a phase is the next user (at least 100,000 but in -quick runs)")
	fs.StringVar(&cfg.profile, "profile", "", "write CPU and allocation profiles of both processes under sold-out and purchase load to this directory (an extra 12 s phase each, not in the report), and the API's heap at the end of the run")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.n = 60_000
	if cfg.quick {
		cfg.n, cfg.million = 3_000, false
	}
	if !cfg.quick && cfg.tokens < 100_000 {
		return cfg, fmt.Errorf("-tokens %d: a measurement needs at least 100,000 distinct users (issue 13); -quick runs take fewer", cfg.tokens)
	}
	if cfg.only != "" && cfg.out == "BENCHMARKS.md" {
		return cfg, errors.New("-only writes a partial report: give -out")
	}
	if cfg.tokens < 2*cfg.n {
		return cfg, fmt.Errorf("-tokens %d: fewer users than a phase's %d requests", cfg.tokens, 2*cfg.n)
	}
	return cfg, nil
}

// setUp builds seckill and starts the processes under test: `seckill dev`,
// the API node and the ceiling server. stop ends them, last started first.
func (b *bench) setUp(ctx context.Context) (stop func(), err error) {
	var stops []func()
	stopAll := func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	if err := b.build(ctx); err != nil {
		return nil, err
	}
	for _, start := range []func(context.Context) (func(), error){b.startDev, b.startAPI, b.startCeiling} {
		s, err := start(ctx)
		if err != nil {
			return nil, err
		}
		stops = append(stops, s)
	}
	t0 := time.Now()
	if b.pool, err = mintPool(b.secret, b.cfg.tokens); err != nil {
		return nil, err
	}
	b.logf("minted %d user tokens in %.1fs", b.cfg.tokens, time.Since(t0).Seconds())
	return stopAll, nil
}

// measure runs every phase in order and collects the rows and details of the
// report.
func (b *bench) measure(ctx context.Context) error {
	// Rounds, each measured next to its ceiling: on a shared machine one
	// phase of a few seconds can land in someone else's burst, so every
	// ratio is taken per round and reported as the median and the range.
	rounds, purchaseRounds := 3, 2
	if b.cfg.quick {
		rounds, purchaseRounds = 1, 1
	}
	if b.cfg.runs("paths") {
		if err := b.paths(ctx, rounds, purchaseRounds); err != nil {
			return err
		}
	}
	for _, ph := range []struct {
		name string
		run  []func(context.Context) error
	}{
		{"pipeline", []func(context.Context) error{b.pipeline}},
		{"lag", []func(context.Context) error{b.lag, b.settler("lag")}},
		{"sale", []func(context.Context) error{b.sale}},
		{"rebuild", []func(context.Context) error{b.rebuild, b.auditor("rebuild")}},
	} {
		if !b.cfg.runs(ph.name) {
			continue
		}
		for _, run := range ph.run {
			if err := run(ctx); err != nil {
				return err
			}
		}
	}
	b.rows = append(b.rows, row{"`seckill audit` after every phase", fmt.Sprintf("%d runs, all exit 0", len(b.audits)), "", "", "after: " + strings.Join(b.audits, ", ")})
	b.rssRows()
	if b.cfg.profile != "" && b.cfg.runs("profiles") {
		return b.profiles(ctx)
	}
	return nil
}

// paths measures the request paths next to their ceilings: the rejection
// rounds, the write rounds and the purchase with the pipeline paused.
func (b *bench) paths(ctx context.Context, rounds, purchaseRounds int) error {
	empty, soldOut, err := b.rejectionRounds(ctx, rounds)
	if err != nil {
		return err
	}
	if err := b.settle(ctx, "sold-out"); err != nil {
		return err
	}
	direct, purchase, pay, err := b.writeRounds(ctx, purchaseRounds)
	if err != nil {
		return err
	}
	b.pathRows(empty, soldOut, direct, purchase, pay)
	paused, err := b.pausedPurchasePath(ctx)
	if err != nil {
		return err
	}
	if err := b.settle(ctx, "paused purchase"); err != nil {
		return err
	}
	b.rows = append(b.rows, row{"purchase path, pipeline paused (SIGSTOP of `seckill dev` during the phase)", rate(paused.Throughput()),
		"ceiling 1", pct(paused.Throughput(), median(rates(empty))), lat(paused) + "; the relay and projections caught up after it, audit clean"})
	return nil
}

// runs reports whether the phase is to run (-only).
func (c config) runs(phase string) bool {
	return c.only == "" || slices.Contains(strings.Split(c.only, ","), phase)
}

// rejectionRounds measures the empty handler (ceiling 1) and the sold-out
// path, one after the other in each round.
func (b *bench) rejectionRounds(ctx context.Context, rounds int) (empty, soldOut []loadgen.Result, err error) {
	sale, err := b.soldOutSale(ctx)
	if err != nil {
		return nil, nil, err
	}
	for r := range rounds {
		// The ceiling gets the same requests as the sold-out path: the
		// next users of the pool, one each.
		n := 2 * b.cfg.n
		e, err := b.load(ctx, fmt.Sprintf("ceiling 1: empty chi handler (round %d)", r+1), b.ceiling, n, purchases("/v1/sales/x/purchase", b.pool.take(n)), 0)
		if err != nil {
			return nil, nil, err
		}
		so, err := b.soldOutPath(ctx, sale, r)
		if err != nil {
			return nil, nil, err
		}
		empty, soldOut = append(empty, e), append(soldOut, so)
	}
	return empty, soldOut, nil
}

// writeRounds measures the direct Lua purchase (ceiling 2) and the purchase
// path in each round, then pays the last round's orders. Each phase that
// reserves stock leaves the relay and the projections work to do; the next
// phase starts once they have done it, so that it measures itself, not the
// tail of the one before.
func (b *bench) writeRounds(ctx context.Context, rounds int) (direct []directResult, purchase []loadgen.Result, pay loadgen.Result, err error) {
	var last bought
	for r := range rounds {
		d, err := b.directLua(ctx, r)
		if err != nil {
			return nil, nil, pay, err
		}
		if err := b.settle(ctx, "direct Lua"); err != nil {
			return nil, nil, pay, err
		}
		p, orders, err := b.purchasePath(ctx, r)
		if err != nil {
			return nil, nil, pay, err
		}
		if err := b.settle(ctx, "purchase"); err != nil {
			return nil, nil, pay, err
		}
		direct, purchase, last = append(direct, d), append(purchase, p), orders
	}
	if pay, err = b.payPath(ctx, last); err != nil {
		return nil, nil, pay, err
	}
	return direct, purchase, pay, b.settle(ctx, "pay")
}

// settler is settle as a phase.
func (b *bench) settler(after string) func(context.Context) error {
	return func(ctx context.Context) error { return b.settle(ctx, after) }
}

// auditor is audit as a phase.
func (b *bench) auditor(after string) func(context.Context) error {
	return func(ctx context.Context) error { _, _, err := b.audit(ctx, after); return err }
}

// pathRows adds the rows of the request paths, each next to its ceiling.
func (b *bench) pathRows(empty, soldOut []loadgen.Result, direct []directResult, purchase []loadgen.Result, pay loadgen.Result) {
	emptyRates, soldOutRates := rates(empty), rates(soldOut)
	purchaseRates := rates(purchase)
	directRates := make([]float64, len(direct))
	for i, d := range direct {
		directRates[i] = d.perSec
	}
	ceiling1 := median(emptyRates)
	b.rows = append(b.rows,
		row{"empty chi handler (ceiling 1)", rate(ceiling1), "", "", roundsNote(emptyRates) + "; " + lat(empty[medianAt(emptyRates)])},
		row{"sold-out rejection path", rate(median(soldOutRates)), "ceiling 1", ratios(soldOutRates, emptyRates),
			roundsNote(soldOutRates) + "; " + lat(soldOut[medianAt(soldOutRates)])},
		row{"purchase Lua script, direct (ceiling 2)", rate(median(directRates)), "", "", roundsNote(directRates) + "; " + direct[medianAt(directRates)].lat},
		row{"purchase path, stock available", rate(median(purchaseRates)), "ceiling 1 / ceiling 2",
			pct(median(purchaseRates), ceiling1) + " / " + ratios(purchaseRates, directRates), roundsNote(purchaseRates) + "; " + lat(purchase[medianAt(purchaseRates)])},
		row{"pay path", rate(pay.Throughput()), "ceiling 1", pct(pay.Throughput(), ceiling1), lat(pay)},
	)
}

// rssRows adds the resident sets of both processes after every phase.
func (b *bench) rssRows() {
	if hwm, cur, err := rss(b.apiPID); err == nil {
		lim := "no GOMEMLIMIT"
		if b.cfg.memLim != "" {
			lim = "GOMEMLIMIT=" + b.cfg.memLim
		}
		b.rows = append(b.rows, row{"API process RSS (peak / now)", fmt.Sprintf("%d MB / %d MB", hwm>>20, cur>>20), "target < 150 MB", "",
			"`seckill serve --role api` (" + lim + "), after every phase above"})
	}
	if hwm, cur, err := rss(b.devPID); err == nil {
		b.rows = append(b.rows, row{"`seckill dev` process RSS (peak / now)", fmt.Sprintf("%d MB / %d MB", hwm>>20, cur>>20), "", "",
			"embedded broker (keeps the whole log in memory), relay, projector, sweeper"})
	}
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.w, format+"\n", args...) }
