package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/metrics"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newGate is a gate on a fresh Redis with the Redis hook of reg.
func newGate(t *testing.T, reg *prometheus.Registry) *commands.Gate {
	t.Helper()
	rdb := testenv.Redis(t)
	hook, err := metrics.NewRedisHook(reg)
	if err != nil {
		t.Fatal(err)
	}
	rdb.AddHook(hook)
	g, err := commands.NewGate(commands.GateConfig{}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func createSale(t *testing.T, g *commands.Gate, stock int64) commands.SaleView {
	t.Helper()
	s, err := g.CreateSale(context.Background(), commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "Phone", Stock: stock, PriceCents: 100, StartsAt: time.Now().Add(-time.Second),
			EndsAt: time.Now().Add(time.Hour),
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGateAndRedis counts decisions by reason and times the scripts.
func TestGateAndRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	g := newGate(t, reg)
	mg, err := metrics.NewGate(reg, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.NewGate(reg, g); err == nil {
		t.Error("registering the gate metrics twice: no error")
	}
	sale := createSale(t, g, 2)
	for i := range 5 {
		_, _ = mg.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("u%d", i)})
	}
	if _, err := mg.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "u0"}); err != nil {
		t.Fatal(err)
	}
	_, _ = mg.Purchase(ctx, commands.Purchase{SaleID: "nosuchsale", UserID: "u0"})
	_, _ = mg.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "u9", Quantity: -1})

	got := samples(t, reg, "seckill_gate_decisions_total")
	want := map[string]float64{
		"purchase/invalid": 1, "purchase/limit_reached": 0, "purchase/replay": 1,
		"purchase/reserved": 2, "purchase/sale_not_found": 1, "purchase/sold_out": 3,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("decisions %v, want %v", got, want)
	}
	// Two reservations and the first sold_out reached Redis; memory answered
	// the rest.
	if n := samples(t, reg, "seckill_redis_command_duration_seconds")["evalsha"]; n < 3 {
		t.Errorf("%v EVALSHA timed, want one per purchase that reached Redis", n)
	}
}

// samples returns the samples of the metric name in reg by their label
// values joined with "/" ("" without labels): counter and gauge values,
// histogram sample counts.
func samples(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			k := strings.Join(vals, "/")
			switch {
			case m.Counter != nil:
				out[k] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[k] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[k] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{domain.ErrSoldOut, "sold_out"},
		{fmt.Errorf("wrapped: %w", domain.ErrLimitReached), "limit_reached"},
		{domain.RetryAfter(domain.ErrRateLimited, time.Second), "rate_limited"},
		{domain.Invalid("quantity", "too big"), "invalid"},
		{context.DeadlineExceeded, "unavailable"},
		{errors.New("boom"), "error"},
	} {
		if got := metrics.Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestOutboxAndStock reads the outboxes and the open sales at scrape time.
func TestOutboxAndStock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	rdb := testenv.Redis(t)
	g, err := commands.NewGate(commands.GateConfig{}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	outbox, err := metrics.NewOutboxCollector(metrics.OutboxConfig{OutboxesKey: g.OutboxesKey()}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	stock, err := metrics.NewStockCollector(metrics.StockConfig{MaxSales: 2}, g)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(outbox, stock)

	// Nothing yet: zero depth and lag, no sales.
	if got := samples(t, reg, "seckill_outbox_entries")[""]; got != 0 {
		t.Errorf("empty outbox depth %v", got)
	}
	a, b, c := createSale(t, g, 5), createSale(t, g, 6), createSale(t, g, 7)
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: a.ID, UserID: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.EndSale(ctx, commands.EndSale{SaleID: c.ID}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the oldest entry ages

	// Four commands wait: three creations and a purchase (and the end).
	if got := samples(t, reg, "seckill_outbox_entries")[""]; got != 5 {
		t.Errorf("outbox depth %v, want 5", got)
	}
	if got := samples(t, reg, "seckill_relay_lag_seconds")[""]; got < 0.02 || got > 10 {
		t.Errorf("relay lag %v s, want the age of the first entry", got)
	}
	// Two open sales reported (the ended one is not), at most MaxSales.
	want := map[string]float64{a.ID: 4, b.ID: 6}
	got := samples(t, reg, "seckill_sale_stock_remaining")
	if len(got) != 2 || got[a.ID] != want[a.ID] || got[b.ID] != want[b.ID] {
		t.Errorf("stock remaining %v, want %v", got, want)
	}
}

// TestPGTracer times queries by operation.
func TestPGTracer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	tr, err := metrics.NewPGTracer(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, q := range []string{"SELECT 1", "  -- a comment\n/* more */ select 2", "CREATE TABLE t (x int)", "INSERT INTO t VALUES (1)", "SELEC broken"} {
		_, _ = pool.Exec(ctx, q)
	}
	counts := samples(t, reg, "seckill_postgres_query_duration_seconds")
	errs := samples(t, reg, "seckill_postgres_query_errors_total")
	if counts["select"] != 2 || counts["create"] != 1 || counts["insert"] != 1 || counts["other"] != 1 || errs["other"] != 1 {
		t.Errorf("queries by op %v, errors %v", counts, errs)
	}
}
