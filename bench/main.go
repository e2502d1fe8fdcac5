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
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	profile string // directory for CPU and allocation profiles; "" for none
}

type bench struct {
	cfg    config
	w      io.Writer
	bin    string
	dir    string
	data   string // the data folder of `seckill dev`
	api    string // the API process under test
	devPID int    // `seckill dev`: broker, Redis, Postgres, relay, projector, sweeper
	apiPID int    // `seckill serve --role api`
	// The admin listeners (pprof) of the two processes.
	devAdmin, apiAdmin string
	loadAvg            string // /proc/loadavg at the start
	secret             []byte
	admin              string
	dev                devState
	rows               []row
	details            []string
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
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.out, "out", "BENCHMARKS.md", "where to write the report")
	fs.BoolVar(&cfg.quick, "quick", false, "small counts: a smoke run, not a measurement")
	fs.BoolVar(&cfg.million, "million", true, "run the million-attempt sale (1,000,000 attempts, 200,000 users, 1,000 stock); false: a small sale")
	fs.IntVar(&cfg.conc, "concurrency", 64, "concurrent connections of every load phase")
	fs.StringVar(&cfg.profile, "profile", "", "write CPU and allocation profiles of both processes under sold-out and purchase load to this directory (an extra 12 s phase each, not in the report), and the API's heap at the end of the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.n = 60_000
	if cfg.quick {
		cfg.n, cfg.million = 3_000, false
	}
	dir, err := os.MkdirTemp("", "seckill-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{cfg: cfg, w: w, dir: dir, loadAvg: loadAvg()}
	if err := b.build(ctx); err != nil {
		return err
	}
	stopDev, err := b.startDev(ctx)
	if err != nil {
		return err
	}
	defer stopDev()
	stopAPI, err := b.startAPI(ctx)
	if err != nil {
		return err
	}
	defer stopAPI()
	ceilingURL, stopCeiling, err := b.startCeiling(ctx)
	if err != nil {
		return err
	}
	defer stopCeiling()

	begin := time.Now()
	// Rounds, each measured next to its ceiling: on a shared machine one
	// phase of a few seconds can land in someone else's burst, so every
	// ratio is taken per round and reported as the median and the range.
	rounds, purchaseRounds := 3, 2
	if cfg.quick {
		rounds, purchaseRounds = 1, 1
	}
	soldOutSale, err := b.soldOutSale(ctx)
	if err != nil {
		return err
	}
	var empty, soldOut []loadgen.Result
	for r := range rounds {
		e, err := b.load(ctx, fmt.Sprintf("ceiling 1: empty chi handler (round %d)", r+1), ceilingURL, 2*cfg.n, 1, "/v1/sales/x/purchase", nil, 0)
		if err != nil {
			return err
		}
		so, err := b.soldOutPath(ctx, soldOutSale, r)
		if err != nil {
			return err
		}
		empty, soldOut = append(empty, e), append(soldOut, so)
	}
	// Each phase that reserves stock leaves the relay and the projections
	// work to do; the next phase starts once they have done it, so that it
	// measures itself, not the tail of the one before.
	var (
		direct   []directResult
		purchase []loadgen.Result
		paySale  string
		kept     []loadgen.Kept
	)
	for r := range purchaseRounds {
		d, err := b.directLua(ctx, r)
		if err != nil {
			return err
		}
		if err := b.settle(ctx, "direct Lua"); err != nil {
			return err
		}
		p, sale, k, err := b.purchasePath(ctx, r)
		if err != nil {
			return err
		}
		if err := b.settle(ctx, "purchase"); err != nil {
			return err
		}
		direct, purchase, paySale, kept = append(direct, d), append(purchase, p), sale, k
	}
	pay, err := b.payPath(ctx, paySale, kept)
	if err != nil {
		return err
	}
	if err := b.settle(ctx, "pay"); err != nil {
		return err
	}
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
	if err := b.lag(ctx); err != nil {
		return err
	}
	if err := b.settle(ctx, "lag"); err != nil {
		return err
	}
	if err := b.sale(ctx); err != nil {
		return err
	}
	if err := b.rebuild(ctx); err != nil {
		return err
	}
	if hwm, cur, err := rss(b.apiPID); err == nil {
		b.rows = append(b.rows, row{"API process RSS (peak / now)", fmt.Sprintf("%d MB / %d MB", hwm>>20, cur>>20), "target < 150 MB", "",
			"`seckill serve --role api`, after every phase above"})
	}
	if hwm, cur, err := rss(b.devPID); err == nil {
		b.rows = append(b.rows, row{"`seckill dev` process RSS (peak / now)", fmt.Sprintf("%d MB / %d MB", hwm>>20, cur>>20), "", "",
			"embedded broker (keeps the whole log in memory), relay, projector, sweeper"})
	}
	if cfg.profile != "" {
		if err := b.profiles(ctx); err != nil {
			return err
		}
	}
	took := time.Since(begin)
	report := b.report(took)
	fmt.Fprint(w, "\n"+report)
	if cfg.quick && cfg.out == "BENCHMARKS.md" {
		fmt.Fprintln(w, "(quick run: BENCHMARKS.md not written)")
		return nil
	}
	return os.WriteFile(cfg.out, []byte(report), 0o644)
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.w, format+"\n", args...) }
