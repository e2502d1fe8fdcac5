// Command bench measures seckill against its ceilings in ONE run on one
// machine and writes BENCHMARKS.md. Absolute numbers on a shared 2-core box are
// noise; the ratios to ceilings measured minutes apart under the same load
// generator are the signal.
//
//	go run ./bench            (make bench)
//	go run ./bench -quick     (smaller counts, a smoke run)
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	shttp "github.com/seckill/seckill/http"
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

// row is one line of the results table.
type row struct {
	name, value, ceiling, ratio, note string
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

func (b *bench) build(ctx context.Context) error {
	b.bin = filepath.Join(b.dir, "seckill")
	b.logf("building seckill ...")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/seckill")
	cmd.Stdout, cmd.Stderr = b.w, os.Stderr
	return cmd.Run()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startDev runs `seckill dev` as its own process: the embedded broker,
// Redis, Postgres, and the relay, projector and sweeper roles. The API under
// test runs in a process of its own (startAPI), as API nodes do in a
// deployment, so that its RSS and profile are its own and not the broker's,
// which keeps the whole log in memory.
func (b *bench) startDev(ctx context.Context) (func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if b.devAdmin, err = freeAddr(); err != nil {
		return nil, err
	}
	b.data = filepath.Join(b.dir, "data")
	b.logf("starting seckill dev (broker, Redis, Postgres, relay, projector, sweeper) ...")
	cmd, stop, err := b.start("dev.log", nil, "dev", "--data", b.data, "--addr", addr,
		"--role", "relay,projector,sweeper", "--admin-addr", b.devAdmin)
	if err != nil {
		return nil, err
	}
	b.devPID = cmd.Process.Pid
	if err := b.waitReady(ctx, "http://"+b.devAdmin+"/readyz", "dev.log"); err != nil {
		stop()
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(b.data, "dev.json"))
	if err == nil {
		err = json.Unmarshal(raw, &b.dev)
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("read dev.json: %w", err)
	}
	secret, err := os.ReadFile(filepath.Join(b.data, "jwt.secret"))
	if err != nil {
		stop()
		return nil, err
	}
	b.secret = []byte(strings.TrimSpace(string(secret)))
	if b.admin, err = shttp.NewToken(b.secret, "bench-admin", true, 2*time.Hour); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// startAPI runs the API node under test: `seckill serve --role api` on the
// services of `seckill dev`.
func (b *bench) startAPI(ctx context.Context) (func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if b.apiAdmin, err = freeAddr(); err != nil {
		return nil, err
	}
	env := []string{"SECKILL_REDIS_URL=" + b.dev.RedisURL, "SECKILL_DATABASE_URL=" + b.dev.DatabaseURL,
		"SECKILL_KAFKA_BROKERS=" + b.dev.Brokers, "SECKILL_JWT_SECRET=" + string(b.secret)}
	if b.dev.Topic != "" {
		env = append(env, "SECKILL_TOPIC="+b.dev.Topic)
	}
	b.logf("starting seckill serve --role api on %s ...", addr)
	cmd, stop, err := b.start("api.log", env, "serve", "--role", "api", "--addr", addr, "--admin-addr", b.apiAdmin)
	if err != nil {
		return nil, err
	}
	b.apiPID, b.api = cmd.Process.Pid, "http://"+addr
	if err := b.waitReady(ctx, b.api+"/readyz", "api.log"); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// start runs the seckill binary with args, its output in logName under the
// bench's folder; stop ends it with SIGTERM (SIGKILL after 30 s).
func (b *bench) start(logName string, env []string, args ...string) (*exec.Cmd, func(), error) {
	log, err := os.Create(filepath.Join(b.dir, logName))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(b.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
		log.Close()
	}
	return cmd, stop, nil
}

// waitReady polls url until it answers 200, for at most 90 s.
func (b *bench) waitReady(ctx context.Context, url, logName string) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			out, _ := os.ReadFile(filepath.Join(b.dir, logName))
			return fmt.Errorf("%s not ready:\n%s", url, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settle waits until the relay has forwarded every outbox entry and every
// projection has applied the whole log, for at most 4 minutes.
func (b *bench) settle(ctx context.Context, after string) error {
	start := time.Now()
	opt, err := redis.ParseURL(b.dev.RedisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	gate, err := commands.NewGate(commands.GateConfig{}, rdb)
	if err != nil {
		return err
	}
	for {
		backlog, lag, err := b.backlog(ctx, gate)
		if err == nil && backlog == 0 && lag == 0 {
			break
		}
		if time.Since(start) > 4*time.Minute || ctx.Err() != nil {
			return fmt.Errorf("after the %s phase: the system did not settle in 4 minutes (outbox %d, projections %d events behind, %v)", after, backlog, lag, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.logf("settled after the %s phase in %.1fs (outboxes empty, projections caught up)", after, time.Since(start).Seconds())
	return nil
}

// backlog is what the relay and the projections still have to do: outbox
// entries, and events not yet applied summed over the projections.
func (b *bench) backlog(ctx context.Context, gate *commands.Gate) (outbox, lag int64, err error) {
	streams, err := gate.OutboxBacklog(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range streams {
		outbox += n
	}
	var status struct {
		Projections []struct {
			LagEvents int64 `json:"lag_events"`
		} `json:"projections"`
	}
	if err := b.call(ctx, "GET", "/v1/admin/projections", b.admin, "", http.StatusOK, &status); err != nil {
		return outbox, 0, err
	}
	for _, s := range status.Projections {
		lag += s.LagEvents
	}
	return outbox, lag, nil
}

func (b *bench) startCeiling(ctx context.Context) (string, func(), error) {
	cmd := exec.Command(b.bin, "ceiling", "--addr", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("ceiling server: %w", err)
	}
	return "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening on ")), stop, nil
}

// load runs one closed-loop phase (or open loop when perSec > 0).
func (b *bench) load(ctx context.Context, name, base string, n, users int, path string, next func(i int) loadgen.Request, perSec float64) (loadgen.Result, error) {
	if next == nil {
		tokens, err := b.tokens("u", users)
		if err != nil {
			return loadgen.Result{}, err
		}
		next = func(i int) loadgen.Request {
			return loadgen.Request{Method: "POST", Path: path, Body: purchaseBody, Header: http.Header{"Authorization": {tokens[i%len(tokens)]}}}
		}
	}
	res, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL: base, Concurrency: b.cfg.conc, Rate: perSec, Requests: n, Duration: 3 * time.Minute, Next: next,
	}, func(status int) bool { return status == http.StatusAccepted })
	if err != nil {
		return res, err
	}
	b.logf("%s", res.Table(name))
	b.logRSS(name)
	b.details = append(b.details, "```\n"+res.Table(name)+"```")
	return res, nil
}

// logRSS logs the API process's resident set after a phase.
func (b *bench) logRSS(after string) {
	if hwm, cur, err := rss(b.apiPID); err == nil {
		b.logf("API process RSS after %s: %d MB (peak so far %d MB)", after, cur>>20, hwm>>20)
	}
}

// purchaseBody is what the sale page sends with every purchase.
var purchaseBody = []byte(`{"quantity":1}`)

func (b *bench) tokens(prefix string, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		t, err := shttp.NewToken(b.secret, prefix+strconv.Itoa(i), false, 2*time.Hour)
		if err != nil {
			return nil, err
		}
		out[i] = "Bearer " + t
	}
	return out, nil
}

func (b *bench) createSale(ctx context.Context, stock int) (string, error) {
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"name":"bench","stock":%d,"price_cents":100,"per_user_limit":1,"starts_at":%q,"ends_at":%q}`,
		stock, now.Add(-time.Second).Format(time.RFC3339), now.Add(2*time.Hour).Format(time.RFC3339))
	var sale struct {
		ID string `json:"id"`
	}
	if err := b.call(ctx, "POST", "/v1/sales", b.admin, body, http.StatusCreated, &sale); err != nil {
		return "", err
	}
	return sale.ID, nil
}

func (b *bench) call(ctx context.Context, method, path, token, body string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, b.api+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// soldOutSale creates a sale of one unit and buys it.
func (b *bench) soldOutSale(ctx context.Context) (string, error) {
	sale, err := b.createSale(ctx, 1)
	if err != nil {
		return "", err
	}
	tok, err := shttp.NewToken(b.secret, "first-buyer", false, time.Hour)
	if err != nil {
		return "", err
	}
	if err := b.call(ctx, "POST", "/v1/sales/"+sale+"/purchase", tok, "", http.StatusAccepted, nil); err != nil {
		return "", err
	}
	return sale, nil
}

// soldOutPath sends 10,000 users' attempts at a sold-out sale.
func (b *bench) soldOutPath(ctx context.Context, sale string, round int) (loadgen.Result, error) {
	res, err := b.load(ctx, fmt.Sprintf("sold-out rejection path (round %d)", round+1), b.api, 2*b.cfg.n, 10_000, "/v1/sales/"+sale+"/purchase", nil, 0)
	if err == nil && res.ByCode["sold_out"] != res.Sent {
		err = fmt.Errorf("sold-out phase: %d of %d answered sold_out", res.ByCode["sold_out"], res.Sent)
	}
	return res, err
}

// purchasePath buys with n distinct users from a sale with stock for all.
func (b *bench) purchasePath(ctx context.Context, round int) (loadgen.Result, string, []loadgen.Kept, error) {
	sale, err := b.createSale(ctx, b.cfg.n)
	if err != nil {
		return loadgen.Result{}, "", nil, err
	}
	res, err := b.load(ctx, fmt.Sprintf("purchase path, stock available (round %d)", round+1), b.api, b.cfg.n, b.cfg.n, "/v1/sales/"+sale+"/purchase", nil, 0)
	if err == nil && res.ByStatus[http.StatusAccepted] != res.Sent {
		err = fmt.Errorf("purchase phase: %d of %d accepted", res.ByStatus[http.StatusAccepted], res.Sent)
	}
	return res, sale, res.Kept, err
}

// payPath pays every order of the purchase phase, each by its owner.
func (b *bench) payPath(ctx context.Context, sale string, kept []loadgen.Kept) (loadgen.Result, error) {
	tokens, err := b.tokens("u", b.cfg.n)
	if err != nil {
		return loadgen.Result{}, err
	}
	type pay struct{ order, token string }
	pays := make([]pay, 0, len(kept))
	for _, k := range kept {
		var r struct {
			OrderID string `json:"order_id"`
		}
		if json.Unmarshal(k.Body, &r) == nil {
			pays = append(pays, pay{r.OrderID, tokens[k.Index%len(tokens)]})
		}
	}
	body := []byte(`{"payment_ref":"bench"}`)
	res, err := b.load(ctx, "pay path", b.api, len(pays), 0, "", func(i int) loadgen.Request {
		return loadgen.Request{Method: "POST", Path: "/v1/orders/" + pays[i].order + "/pay", Body: body,
			Header: http.Header{"Authorization": {pays[i].token}}}
	}, 0)
	if err == nil && res.ByStatus[http.StatusOK] != res.Sent {
		err = fmt.Errorf("pay phase: %d of %d paid (%v)", res.ByStatus[http.StatusOK], res.Sent, res.ByCode)
	}
	return res, err
}

type directResult struct {
	perSec float64
	lat    string
}

// directLua calls the gate's purchase (Go encoding + one EVALSHA) straight
// against the same Redis at the same concurrency: no HTTP, no JSON request.
func (b *bench) directLua(ctx context.Context, round int) (directResult, error) {
	opt, err := redis.ParseURL(b.dev.RedisURL)
	if err != nil {
		return directResult{}, err
	}
	opt.PoolSize = b.cfg.conc * 2
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	gate, err := commands.NewGate(commands.GateConfig{}, rdb)
	if err != nil {
		return directResult{}, err
	}
	sale, err := gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		Name: "bench-direct", Stock: int64(b.cfg.n), StartsAt: time.Now().Add(-time.Second), EndsAt: time.Now().Add(time.Hour),
	}})
	if err != nil {
		return directResult{}, err
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		lats   []time.Duration
		failed atomic.Int64
	)
	start := time.Now()
	for range b.cfg.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				i := int(next.Add(1) - 1)
				if i >= b.cfg.n {
					break
				}
				t0 := time.Now()
				if _, err := gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "d" + strconv.Itoa(i)}); err != nil {
					failed.Add(1)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		return directResult{}, fmt.Errorf("direct Lua: %d purchases failed", failed.Load())
	}
	slices.Sort(lats)
	p := func(q float64) time.Duration { return lats[min(len(lats)-1, int(q*float64(len(lats))))] }
	d := directResult{perSec: float64(b.cfg.n) / elapsed.Seconds(),
		lat: fmt.Sprintf("p50 %s p99 %s", p(0.50).Round(time.Microsecond), p(0.99).Round(time.Microsecond))}
	b.logf("ceiling 2: direct Lua purchase (round %d): %d in %.2fs (%.0f/s), %s", round+1, b.cfg.n, elapsed.Seconds(), d.perSec, d.lat)
	b.details = append(b.details, fmt.Sprintf("```\nceiling 2: direct purchase script (gate.Purchase, %d goroutines) (round %d)\n  requests    %d in %.2fs (%.0f/s)\n  latency     %s\n```", b.cfg.conc, round+1, b.cfg.n, elapsed.Seconds(), d.perSec, d.lat))
	return d, nil
}

// lag drives a steady open-loop purchase rate and reads, from the orders read
// model, how long each order took from the gate's decision (placed_at) to the
// projection applying it (updated_at).
func (b *bench) lag(ctx context.Context) error {
	perSec, secs := 5000.0, 8
	if b.cfg.quick {
		perSec, secs = 500, 4
	}
	n := int(perSec) * secs
	sale, err := b.createSale(ctx, n)
	if err != nil {
		return err
	}
	res, err := b.load(ctx, fmt.Sprintf("steady purchases at %.0f/s for the lag measurement", perSec), b.api, n, n, "/v1/sales/"+sale+"/purchase", nil, perSec)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, b.dev.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	accepted := res.ByStatus[http.StatusAccepted]
	deadline := time.Now().Add(60 * time.Second)
	for {
		var have int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM orders WHERE sale_id = $1 AND status <> ''`, sale).Scan(&have); err != nil {
			return err
		}
		if have >= accepted {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lag phase: read model has %d of %d orders after 60s", have, accepted)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var p50, p99, pmax float64
	if err := conn.QueryRow(ctx, `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
		FROM (SELECT extract(epoch FROM updated_at - placed_at) * 1000 AS l FROM orders WHERE sale_id = $1) x`, sale).
		Scan(&p50, &p99, &pmax); err != nil {
		return err
	}
	b.rows = append(b.rows, row{fmt.Sprintf("gate → read model lag at %.0f purchases/s", perSec),
		fmt.Sprintf("p50 %.0f ms, p99 %.0f ms", p50, p99), "target p99 < 1 s", "", fmt.Sprintf("max %.0f ms; %.0f req/s achieved", pmax, res.Throughput())})
	return nil
}

// sale runs the documented scenario with the real CLI, which checks the
// outcome itself (exactly the stock accepted; the read model has every
// accepted order), then `seckill audit`, which folds the log and checks the
// invariants, the gate and the read models against it (exit 0 or the bench
// fails). Quick runs use a small sale.
func (b *bench) sale(ctx context.Context) error {
	stock, users, attempts := 1_000, 200_000, 1_000_000
	name := "million-attempt sale (1M attempts, 200k users, 1,000 stock)"
	if !b.cfg.million {
		stock, users, attempts = 100, 2_000, 20_000
		name = "small sale (20k attempts, 2k users, 100 stock)"
	}
	b.logf("%s ...", name)
	start := time.Now()
	args := []string{"loadtest", "--data", b.data, "--url", b.api, "--stock", strconv.Itoa(stock), "--users", strconv.Itoa(users),
		"--requests", strconv.Itoa(attempts), "--concurrency", strconv.Itoa(b.cfg.conc), "--duration", "5m"}
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Stderr = b.w // progress lines
	out, err := cmd.Output()
	took := time.Since(start)
	b.logf("%s", out)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var sent, accepted int
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "requests":
			sent, _ = strconv.Atoi(f[1])
		case len(f) >= 3 && f[0] == "status" && f[1] == "202":
			accepted, _ = strconv.Atoi(f[2])
		}
	}
	if accepted != stock {
		return fmt.Errorf("%s: %d accepted, want exactly %d", name, accepted, stock)
	}
	b.logRSS(name)
	auditStart := time.Now()
	audit := exec.CommandContext(ctx, b.bin, "audit", "--data", b.data)
	auditOut, err := audit.CombinedOutput()
	auditTook := time.Since(auditStart)
	b.logf("seckill audit (%.1fs):\n%s", auditTook.Seconds(), auditOut)
	if err != nil {
		return fmt.Errorf("seckill audit after the %s: %w\n%s", name, err, auditOut)
	}
	shown := strings.NewReplacer(b.data, "DIR", b.api, "API").Replace(strings.Join(args, " "))
	b.details = append(b.details, fmt.Sprintf("```\n%s\n$ seckill %s\n%s\n$ seckill audit --data DIR   (exit 0, %.1fs)\n%s```",
		name, shown, strings.TrimRight(string(out), "\n"), auditTook.Seconds(), auditOut))
	b.rows = append(b.rows, row{name, fmt.Sprintf("%.1f s total", took.Seconds()), "", "",
		fmt.Sprintf("%d attempts answered, exactly %d accepted; read model checked; `seckill audit` exit 0", sent, accepted)})
	return nil
}

var rebuiltLine = regexp.MustCompile(`rebuilt (\w+): (\d+) events in (\S+) \(replay (\d+) events/s\)`)

// rebuild times `seckill projections rebuild orders` over the whole log of
// the run, next to a bare read of the same topic (eventstore.ReadAll: fetch
// every record, decode nothing), the ceiling of any replay.
func (b *bench) rebuild(ctx context.Context) error {
	brokers := strings.Split(b.dev.Brokers, ",")
	topic := cmp.Or(b.dev.Topic, "seckill.events")
	start := time.Now()
	var records int64
	if err := eventstore.ReadAll(ctx, brokers, topic, func(eventstore.Record) error { records++; return nil }); err != nil {
		return fmt.Errorf("bare read of the log: %w", err)
	}
	readTook := time.Since(start)
	readRate := float64(records) / readTook.Seconds()
	b.logf("bare read of the log: %d records in %.2fs (%.0f/s)", records, readTook.Seconds(), readRate)

	start = time.Now()
	cmd := exec.CommandContext(ctx, b.bin, "projections", "rebuild", "orders", "--data", b.data)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	b.logf("%s", out)
	if err != nil {
		return fmt.Errorf("projections rebuild orders: %w\n%s", err, out)
	}
	m := rebuiltLine.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("projections rebuild orders: no result line in:\n%s", out)
	}
	events, _ := strconv.ParseInt(m[2], 10, 64)
	rate := float64(events) / took.Seconds()
	b.details = append(b.details, fmt.Sprintf("```\nrebuild of the orders projection over the whole log of this run\n$ seckill projections rebuild orders --data DIR   (%.1fs with start-up)\n%s\nbare read of the same topic (eventstore.ReadAll): %d records in %.2fs (%.0f/s)\n```",
		took.Seconds(), strings.TrimRight(string(out), "\n"), records, readTook.Seconds(), readRate))
	b.rows = append(b.rows, row{"projection rebuild (orders, whole log)", fmt.Sprintf("%.0f events/s", rate), "bare read of the log", pct(rate, readRate),
		fmt.Sprintf("%d events in %.1f s (replay phase %s events/s); bare read %.0f events/s", events, took.Seconds(), m[4], readRate)})
	return nil
}

// profiles runs one more sold-out and one more purchase phase, 12 s each,
// while fetching 8 s CPU and allocation profiles from both processes'
// admin listeners into cfg.profile (docs/performance.md reads them).
func (b *bench) profiles(ctx context.Context) error {
	if err := os.MkdirAll(b.cfg.profile, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.cfg.profile, "seckill"), mustRead(b.bin), 0o755); err != nil {
		return err
	}
	// What the API node holds after every phase of the run (its RSS above).
	if err := fetch(ctx, "http://"+b.apiAdmin+"/debug/pprof/heap?gc=1", filepath.Join(b.cfg.profile, "end.api.heap.pb.gz")); err != nil {
		return err
	}
	soldOut, err := b.createSale(ctx, 1)
	if err != nil {
		return err
	}
	first, err := shttp.NewToken(b.secret, "first-buyer", false, time.Hour)
	if err != nil {
		return err
	}
	if err := b.call(ctx, "POST", "/v1/sales/"+soldOut+"/purchase", first, "", http.StatusAccepted, nil); err != nil {
		return err
	}
	plenty, err := b.createSale(ctx, 5_000_000)
	if err != nil {
		return err
	}
	for _, ph := range []struct {
		name, sale string
		users      int
		prefix     string
	}{{"soldout", soldOut, 10_000, "u"}, {"purchase", plenty, 300_000, "prof"}} {
		tokens, err := b.tokens(ph.prefix, ph.users)
		if err != nil {
			return err
		}
		path := "/v1/sales/" + ph.sale + "/purchase"
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			perr error
		)
		for _, p := range []struct{ proc, admin string }{{"api", b.apiAdmin}, {"dev", b.devAdmin}} {
			for _, kind := range []string{"profile", "allocs"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(2 * time.Second)
					file := filepath.Join(b.cfg.profile, fmt.Sprintf("%s.%s.%s.pb.gz", ph.name, p.proc, map[string]string{"profile": "cpu", "allocs": "allocs"}[kind]))
					if err := fetch(ctx, "http://"+p.admin+"/debug/pprof/"+kind+"?seconds=8", file); err != nil {
						mu.Lock()
						perr = err
						mu.Unlock()
					}
				}()
			}
		}
		res, err := loadgen.Run(ctx, loadgen.Config{BaseURL: b.api, Concurrency: b.cfg.conc, Duration: 12 * time.Second,
			Next: func(i int) loadgen.Request {
				return loadgen.Request{Method: "POST", Path: path, Body: purchaseBody, Header: http.Header{"Authorization": {tokens[i%len(tokens)]}}}
			}}, nil)
		wg.Wait()
		if err != nil {
			return err
		}
		if perr != nil {
			return perr
		}
		b.logf("%s", res.Table("profiled: "+ph.name))
		if err := b.settle(ctx, "profile "+ph.name); err != nil {
			return err
		}
	}
	b.logf("profiles in %s: go tool pprof -top %s/seckill %s/purchase.api.cpu.pb.gz", b.cfg.profile, b.cfg.profile, b.cfg.profile)
	return nil
}

func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func mustRead(name string) []byte {
	b, _ := os.ReadFile(name)
	return b
}

// rss returns the peak and current resident set of pid.
func rss(pid int) (peak, now int64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			peak = kb << 10
		case "VmRSS:":
			now = kb << 10
		}
	}
	if peak == 0 {
		return 0, 0, errors.New("no VmHWM")
	}
	return peak, now, nil
}

func rate(perSec float64) string { return fmt.Sprintf("%.0f req/s", perSec) }

func rates(rs []loadgen.Result) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.Throughput()
	}
	return out
}

// medianAt is the index of the median of xs (the lower one of an even count).
func medianAt(xs []float64) int {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(xs[a], xs[b]) })
	return idx[(len(idx)-1)/2]
}

func median(xs []float64) float64 { return xs[medianAt(xs)] }

// ratios is the median of a[i]/b[i] over the rounds, with their range.
func ratios(a, b []float64) string {
	rs := make([]float64, len(a))
	for i := range a {
		rs[i] = a[i] / b[i]
	}
	if len(rs) == 1 {
		return pct(rs[0], 1)
	}
	return fmt.Sprintf("%s (%s-%s)", pct(median(rs), 1), pct(slices.Min(rs), 1), pct(slices.Max(rs), 1))
}

// roundsNote lists the rate of each round.
func roundsNote(xs []float64) string {
	if len(xs) == 1 {
		return "1 round"
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%d rounds: %s req/s", len(xs), strings.Join(parts, ", "))
}

func pct(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

func lat(r loadgen.Result) string {
	return fmt.Sprintf("p50 %s p99 %s p99.9 %s", r.Percentile(50).Round(time.Microsecond), r.Percentile(99).Round(time.Microsecond), r.Percentile(99.9).Round(time.Microsecond))
}

func (b *bench) report(took time.Duration) string {
	var s strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&s, "# Benchmarks\n\nMeasured by `make bench` (`go run ./bench`) on %s: %d cores (GOMAXPROCS %d), %s memory, %s/%s, %s. One run, %s in all.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOMAXPROCS(0), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version(), took.Round(time.Second))
	fmt.Fprintf(&s, "Everything runs on this one machine: the load generator (this process); the API node under test, `seckill serve --role api`; "+
		"`seckill dev --role relay,projector,sweeper`, which also runs the embedded Kafka-protocol broker and starts redis-server and Postgres; and the ceiling server. "+
		"Every HTTP phase uses the same load generator (`internal/loadgen`), %d connections, closed loop unless said otherwise, each purchase with the body the sale page sends (`{\"quantity\":1}`); "+
		"a phase that reserves stock is followed by a pause until the relay and the projections have caught up, so that the next phase measures itself. "+
		"Load average when the run began: %s. Host: %s.\n\n", b.cfg.conc, b.loadAvg, host)
	s.WriteString("| figure | value | ceiling | ratio | latency / note |\n|---|---|---|---|---|\n")
	for _, r := range b.rows {
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s |\n", r.name, r.value, r.ceiling, r.ratio, r.note)
	}
	s.WriteString("\n## Each phase\n\n")
	s.WriteString(strings.Join(b.details, "\n\n"))
	s.WriteString("\n\n## Reproduce\n\n```sh\nmake bench        # or: go run ./bench\ngo run ./bench -quick -profile /tmp/prof   # a smoke run that also saves CPU and allocation profiles\n```\n\nProfiles and what they show: [docs/performance.md](docs/performance.md).\n")
	return s.String()
}

// loadAvg is the 1, 5 and 15 minute load average: how busy the machine was.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func memTotal() string {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
	if len(f) < 2 {
		return "?"
	}
	kb, _ := strconv.ParseInt(f[1], 10, 64)
	return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
}
