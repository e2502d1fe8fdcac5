package projections_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/localsvc"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/projections"
)

// benchPool is newPool, or with SECKILL_BENCH_DURABLE=1 a database on a
// server of its own that fsyncs its commits as production does (the shared
// test server runs with fsync=off).
func benchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	if os.Getenv("SECKILL_BENCH_DURABLE") == "" {
		return newPool(b)
	}
	srv := testenv.PostgresServer(b, localsvc.PostgresConfig{})
	if err := srv.CreateDatabase(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	dsn := srv.DSN("bench")
	if err := migrations.Up(context.Background(), dsn); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// prefill writes st to a fresh broker with franz-go (fast, batched), keyed
// as the publisher keys, and returns the brokers.
func prefill(b *testing.B, st *stream, partitions int) []string {
	b.Helper()
	brokers := kafkaBrokers(b, partitions)
	ids := make([]string, len(st.envs))
	for i, e := range st.envs {
		env, err := domain.DecodeEnvelope(e)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = env.ID
	}
	produceRaw(b, brokers, st.keys, ids, st.envs)
	return brokers
}

// BenchmarkOrdersRunner measures events/s applied by the orders projection
// through the whole path: a pre-filled topic, the watermill-kafka consumer
// group, batches across partitions, Postgres transactions with checkpoints.
//
//	go test -run '^$' -bench OrdersRunner -benchtime 1x ./projections
func BenchmarkOrdersRunner(b *testing.B) {
	st := genStream(b, 99, 40, 200) // 24,102 events
	for _, parts := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			var total, steady time.Duration
			var batches int64
			for range b.N {
				b.StopTimer()
				brokers := prefill(b, st, parts)
				pool := benchPool(b)
				r, err := projections.NewRunner(projections.RunnerConfig{Logger: slog.New(slog.DiscardHandler)},
					pool, subscriberFactory(brokers), newOrders(b, pool))
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				start := time.Now()
				go func() { done <- r.Run(ctx) }()
				var first time.Time
				var firstN int64
				want := int64(len(st.envs))
				for n := r.Status().Events; n < want; n = r.Status().Events {
					if first.IsZero() && n > 0 {
						first, firstN = time.Now(), n
					}
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				// Extrapolated from the first commit on: without the time the
				// consumer group takes to form.
				steady += time.Duration(float64(time.Since(first)) * float64(want) / float64(want-firstN))
				b.StopTimer()
				batches += r.Status().Batches
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				assertMatchesFold(b, pool, st.envs)
			}
			n := float64(len(st.envs) * b.N)
			b.ReportMetric(n/total.Seconds(), "events/s")
			b.ReportMetric(n/steady.Seconds(), "steady-events/s")
			b.ReportMetric(n/float64(batches), "events/batch")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkOrdersApplier measures the Postgres side alone: the Applier fed
// directly (as a rebuild feeds it), in batches of the given size.
//
//	go test -run '^$' -bench OrdersApplier -benchtime 1x ./projections
func BenchmarkOrdersApplier(b *testing.B) {
	st := genStream(b, 99, 40, 200)
	recs := st.records(projections.DefaultTopic, 16)
	for _, size := range []int{1, 16, 128, 1024, 8192} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				pool := benchPool(b)
				a := newApplier(b, pool, newOrders(b, pool))
				b.StartTimer()
				start := time.Now()
				for i := 0; i < len(recs); i += size {
					if _, err := a.Apply(context.Background(), recs[i:min(i+size, len(recs))]); err != nil {
						b.Fatal(err)
					}
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(len(recs)*b.N)/total.Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
