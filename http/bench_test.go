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

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/readmodels"
)

// The rejection path is the hot path: in a flash sale nearly every request is
// told sold_out. These benchmarks put that answer, through the whole router
// (auth, JSON, gate memory, error body), next to an empty chi handler on the
// same route that writes the same bytes — the ceiling.
//
//	go test -run '^$' -bench 'SoldOut' -benchtime 20000x ./http/

// soldOutBench is a sold-out sale behind the real handler, an empty handler
// beside it, and signed-in users.
type soldOutBench struct {
	full, empty http.Handler
	path        string
	tokens      []string
	calls       func() int64 // EVALSHAs so far
}

func newSoldOutBench(b *testing.B) *soldOutBench {
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
	full, err := NewHandler(Config{Gate: gate, Orders: orders, Auth: auth})
	if err != nil {
		b.Fatal(err)
	}
	sale, err := gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "Phone", Stock: 1, PriceCents: 100, StartsAt: time.Now().Add(-time.Second),
			EndsAt: time.Now().Add(time.Hour),
		},
	}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "first"}); err != nil {
		b.Fatal(err)
	}
	// The ceiling: same router, same route, same answer, no work.
	body := sentinelBody(domain.ErrSoldOut)
	empty := chi.NewRouter()
	empty.Post("/v1/sales/{id}/purchase", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write(body)
	})
	s := &soldOutBench{full: full, empty: empty, path: "/v1/sales/" + sale.ID + "/purchase",
		calls: func() int64 { return evalshaCalls(b, rdb) }}
	for i := range 1000 {
		tok, err := NewToken([]byte(testSecret), "u"+strconv.Itoa(i), false, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		s.tokens = append(s.tokens, "Bearer "+tok)
	}
	return s
}

// discardWriter is a ResponseWriter that keeps only the status, so the
// in-process benchmark measures the handler, not a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func sentinelBody(err error) []byte {
	for _, s := range sentinels {
		if s.err == err {
			return s.body
		}
	}
	return nil
}

// BenchmarkSoldOutHandler serves requests in-process (no network): the
// handler's own cost per request and its allocations, full and empty.
func BenchmarkSoldOutHandler(b *testing.B) {
	s := newSoldOutBench(b)
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"empty", s.empty}, {"sold_out", s.full}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					req := httptest.NewRequest("POST", s.path, strings.NewReader(`{"quantity":1}`))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", s.tokens[n.Add(1)%int64(len(s.tokens))])
					clear(w.h)
					w.code = 0
					tc.h.ServeHTTP(w, req)
					if w.code != http.StatusConflict {
						b.Fatalf("status %d", w.code)
					}
				}
			})
		})
	}
}

// BenchmarkSoldOutVsEmptyLoopback alternates requests to both handlers, each
// behind a real loopback listener, from the same client goroutines, and
// reports each one's time per request and the sold-out path's throughput as
// a share of the empty handler's (soldout/empty-%, the target is ≥ 80).
func BenchmarkSoldOutVsEmptyLoopback(b *testing.B) {
	s := newSoldOutBench(b)
	fullSrv, emptySrv := httptest.NewServer(s.full), httptest.NewServer(s.empty)
	b.Cleanup(fullSrv.Close)
	b.Cleanup(emptySrv.Close)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	before := s.calls()
	var fullNS, emptyNS, n atomic.Int64
	do := func(base, auth string) {
		req, err := http.NewRequest("POST", base+s.path, strings.NewReader(`{"quantity":1}`))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict {
			b.Fatalf("status %d from %s", resp.StatusCode, base)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			auth := s.tokens[n.Add(1)%int64(len(s.tokens))]
			// Alternate which goes first, so neither always meets a warm socket.
			first, second, firstNS, secondNS := emptySrv.URL, fullSrv.URL, &emptyNS, &fullNS
			if i%2 == 1 {
				first, second, firstNS, secondNS = fullSrv.URL, emptySrv.URL, &fullNS, &emptyNS
			}
			t0 := time.Now()
			do(first, auth)
			t1 := time.Now()
			do(second, auth)
			firstNS.Add(int64(t1.Sub(t0)))
			secondNS.Add(int64(time.Since(t1)))
		}
	})
	b.StopTimer()
	if got := s.calls() - before; got != 0 {
		b.Fatalf("%d purchase scripts ran during the sold-out benchmark, want 0", got)
	}
	reqs := float64(b.N)
	b.ReportMetric(float64(emptyNS.Load())/reqs/1e3, "empty-µs/req")
	b.ReportMetric(float64(fullNS.Load())/reqs/1e3, "soldout-µs/req")
	b.ReportMetric(100*float64(emptyNS.Load())/float64(fullNS.Load()), "soldout/empty-%")
}
