package http

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/metrics"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/readmodels"
)

// The two hot paths as `seckill serve` wires them: the router with its
// Prometheus middleware, the gate behind the decision-counting wrapper, the
// JWT cache. In-process (no sockets), so what they report is the API's own
// CPU and allocations per request; Redis runs in its own process.
//
//	go test -run '^$' -bench 'Wired' -benchmem ./http/
//	go test -run '^$' -bench 'WiredPurchase' -cpuprofile cpu.out -memprofile mem.out ./http/

type wiredBench struct {
	h    http.Handler
	gate *commands.Gate
	rdb  *redis.Client
	reg  *prometheus.Registry
}

func newWiredBench(b testing.TB) *wiredBench {
	b.Helper()
	ctx := context.Background()
	rdb := testenv.Redis(b)
	gate, err := commands.NewGate(commands.GateConfig{SoldOutTTL: time.Hour}, rdb)
	if err != nil {
		b.Fatal(err)
	}
	if err := gate.Load(ctx); err != nil {
		b.Fatal(err)
	}
	dsn := testenv.Postgres(b)
	if err := migrations.Up(ctx, dsn); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	orders, err := readmodels.NewOrders(readmodels.OrdersConfig{}, pool)
	if err != nil {
		b.Fatal(err)
	}
	auth, err := NewAuthenticator([]byte(testSecret))
	if err != nil {
		b.Fatal(err)
	}
	reg := metrics.NewRegistry()
	hook, err := metrics.NewRedisHook(reg)
	if err != nil {
		b.Fatal(err)
	}
	rdb.AddHook(hook)
	counted, err := metrics.NewGate(reg, gate)
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(Config{Gate: counted, Orders: orders, Auth: auth, Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	return &wiredBench{h: h, gate: gate, rdb: rdb, reg: reg}
}

// decisions is the count of purchase decisions with reason so far.
func (w *wiredBench) decisions(tb testing.TB, reason string) float64 {
	tb.Helper()
	families, err := w.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "seckill_gate_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["command"] == "purchase" && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func (w *wiredBench) sale(b testing.TB, stock int64) string {
	b.Helper()
	sale, err := w.gate.CreateSale(context.Background(), commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "Phone", Stock: stock, PriceCents: 100, PerUserLimit: 1,
			StartsAt: time.Now().Add(-time.Second), EndsAt: time.Now().Add(time.Hour),
		},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return sale.ID
}

func benchTokens(b *testing.B, prefix string, n int) []string {
	b.Helper()
	out := make([]string, n)
	for i := range out {
		tok, err := NewToken([]byte(testSecret), prefix+strconv.Itoa(i), false, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = "Bearer " + tok
	}
	return out
}

// serveParallel sends reqs from GOMAXPROCS goroutines; each request is the
// purchase of the next token, with the body a browser sends.
func serveParallel(b *testing.B, w *wiredBench, path string, tokens []string, want int) {
	b.Helper()
	h := w.h
	var n atomic.Int64
	b.ReportAllocs()
	// 64 requests in flight, as in the load tests: the purchase path waits
	// on Redis, and ns/op is then the API's throughput, not a round trip.
	b.SetParallelism(32)
	cpu0, redis0 := int64(testenv.ProcessCPU()), int64(testenv.RedisCPU(b, w.rdb))
	b.ResetTimer()
	defer func() {
		// CPU time, unlike ns/op, is the API's cost whatever else the
		// machine runs (the benchmark's own request building included);
		// Redis's is its own process's, from INFO.
		b.ReportMetric(float64(int64(testenv.ProcessCPU())-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
		b.ReportMetric(float64(int64(testenv.RedisCPU(b, w.rdb))-redis0)/float64(b.N)/1e3, "redis-cpu-µs/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		// One parsed request per goroutine, copied per call: what net/http
		// itself allocates per request, without httptest's 4 KiB reader.
		tmpl := httptest.NewRequest("POST", path, nil)
		body := strings.NewReader("")
		for pb.Next() {
			req := *tmpl
			body.Reset(`{"quantity":1}`)
			req.Body, req.ContentLength = io.NopCloser(body), int64(body.Len())
			req.Header = http.Header{"Content-Type": {"application/json"}, "Authorization": {tokens[int(n.Add(1)-1)%len(tokens)]}}
			clear(w.h)
			w.code = 0
			h.ServeHTTP(w, &req)
			if w.code != want {
				b.Fatalf("status %d, want %d", w.code, want)
			}
		}
	})
}

// BenchmarkWiredSoldOut is the rejection path: a sold-out sale, 1,000 users
// whose tokens the cache already knows.
func BenchmarkWiredSoldOut(b *testing.B) {
	w := newWiredBench(b)
	sale := w.sale(b, 1)
	if _, err := w.gate.Purchase(context.Background(), commands.Purchase{SaleID: sale, UserID: "first"}); err != nil {
		b.Fatal(err)
	}
	serveParallel(b, w, "/v1/sales/"+sale+"/purchase", benchTokens(b, "u", 1000), http.StatusConflict)
}

// BenchmarkWiredPurchase is the purchase path with stock for everyone: every
// request a new user (so a JWT the cache has not seen), one EVALSHA each.
func BenchmarkWiredPurchase(b *testing.B) {
	w := newWiredBench(b)
	sale := w.sale(b, int64(b.N)+1)
	tokens := benchTokens(b, "p", b.N)
	serveParallel(b, w, "/v1/sales/"+sale+"/purchase", tokens, http.StatusAccepted)
}

// BenchmarkWiredSoldOutNewUsers is the rejection path as a sale sees it
// (issue 13): every request a user this node has not seen, so no token is in
// the cache of verified tokens.
func BenchmarkWiredSoldOutNewUsers(b *testing.B) {
	w := newWiredBench(b)
	sale := w.sale(b, 1)
	if _, err := w.gate.Purchase(context.Background(), commands.Purchase{SaleID: sale, UserID: "first"}); err != nil {
		b.Fatal(err)
	}
	serveParallel(b, w, "/v1/sales/"+sale+"/purchase", benchTokens(b, "n", b.N), http.StatusConflict)
}
