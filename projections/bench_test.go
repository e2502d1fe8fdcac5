package projections_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
)

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
	st := genStream(b, 99, 40, 200) // ~21k events
	for _, c := range []struct{ parts, runners int }{{4, 1}, {16, 1}, {64, 1}} {
		b.Run(fmt.Sprintf("partitions=%d/runners=%d", c.parts, c.runners), func(b *testing.B) {
			var total, steady time.Duration
			var batches int64
			for range b.N {
				b.StopTimer()
				brokers := prefill(b, st, c.parts)
				pool := newPool(b)
				// Several runners of one projection share the consumer group
				// (as several processes would) and so split the partitions.
				var rs []*projections.Runner
				for range c.runners {
					r, err := projections.NewRunner(projections.RunnerConfig{Logger: slog.New(slog.DiscardHandler)},
						pool, subscriberFactory(brokers), newOrders(b, pool))
					if err != nil {
						b.Fatal(err)
					}
					rs = append(rs, r)
				}
				applied := func() (n, batches int64) {
					for _, r := range rs {
						s := r.Status()
						n, batches = n+s.Events, batches+s.Batches
					}
					return n, batches
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, len(rs))
				b.StartTimer()
				start := time.Now()
				for _, r := range rs {
					go func() { done <- r.Run(ctx) }()
				}
				var first time.Time
				var firstN int64
				for n, _ := applied(); n < int64(len(st.envs)); n, _ = applied() {
					if first.IsZero() && n > 0 {
						first, firstN = time.Now(), n
					}
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				steady += time.Duration(float64(time.Since(first)) * float64(len(st.envs)) / float64(int64(len(st.envs))-firstN))
				b.StopTimer()
				_, nb := applied()
				batches += nb
				cancel()
				for range rs {
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
				assertMatchesFold(b, pool, st.envs)
			}
			n := float64(len(st.envs) * b.N)
			b.ReportMetric(n/total.Seconds(), "events/s")
			// Without the consumer group's join (the time to the first commit).
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
	for _, size := range []int{1, 16, 128, 1024} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				pool := newPool(b)
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
