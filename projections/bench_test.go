package projections_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/localsvc"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

// benchPool is newPool, or with SECKILL_BENCH_DURABLE=1 a database on a
// server of its own that fsyncs its commits as production does (the shared
// test server runs with fsync=off).
func benchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	if os.Getenv("SECKILL_BENCH_DURABLE") == "" {
		return readmodelstest.NewPool(b)
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
func prefill(b *testing.B, st *readmodelstest.Stream, partitions int) []string {
	b.Helper()
	brokers := kafkaBrokers(b, partitions)
	ids := make([]string, len(st.Envs))
	for i, e := range st.Envs {
		env, err := domain.DecodeEnvelope(e)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = env.ID
	}
	produceRaw(b, brokers, st.Keys, ids, st.Envs)
	return brokers
}

// BenchmarkOrdersApplier measures the Postgres side alone: the Applier fed
// directly (as a rebuild feeds it), in batches of the given size.
//
//	go test -run '^$' -bench OrdersApplier -benchtime 1x ./projections
func BenchmarkOrdersApplier(b *testing.B) {
	st := readmodelstest.Gen(b, 99, 40, 200)
	recs := st.Records(projections.DefaultTopic, 16)
	for _, size := range []int{1, 16, 128, 1024, 8192} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				pool := benchPool(b)
				a := readmodelstest.NewApplier(b, pool, readmodelstest.NewOrders(b, pool))
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

// BenchmarkOrdersConsumer measures events/s applied by the orders projection
// through the whole path: a pre-filled topic, the Consumer's group, batches
// across partitions, Postgres transactions with checkpoints.
//
//	go test -run '^$' -bench OrdersConsumer -benchtime 1x ./projections
func BenchmarkOrdersConsumer(b *testing.B) {
	st := readmodelstest.Gen(b, 99, 40, 200) // 24,102 events
	for _, parts := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			var total time.Duration
			var batches int64
			for range b.N {
				b.StopTimer()
				brokers := prefill(b, st, parts)
				pool := benchPool(b)
				c, err := projections.NewConsumer(projections.ConsumerConfig{Brokers: brokers, DeadLetterTopic: "-",
					Logger: slog.New(slog.DiscardHandler)}, pool, readmodelstest.NewOrders(b, pool))
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				start := time.Now()
				go func() { done <- c.Run(ctx) }()
				for c.Status().Events < int64(len(st.Envs)) {
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				b.StopTimer()
				batches += c.Status().Batches
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				readmodelstest.AssertMatchesFold(b, pool, st.Envs)
			}
			n := float64(len(st.Envs) * b.N)
			b.ReportMetric(n/total.Seconds(), "events/s")
			b.ReportMetric(n/float64(batches), "events/batch")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRebuild measures a rebuild (replay into fresh shadow tables,
// no swap) against a bare read of the same log in the same run: the ratio
// is how much of the reading speed the projection keeps. The stream
// interleaves all orders at random, the worst case for merging an order's
// events within a batch (a real log has reserve and place side by side).
// SECKILL_BENCH_SCALE multiplies the orders per sale (default 1: ~200k
// events).
//
//	go test -run '^$' -bench Rebuild -benchtime 1x ./projections
func BenchmarkRebuild(b *testing.B) {
	scale := 1
	if v, err := strconv.Atoi(os.Getenv("SECKILL_BENCH_SCALE")); err == nil && v > 0 {
		scale = v
	}
	st := readmodelstest.Gen(b, 77, 60, 1000*scale)
	brokers := prefill(b, st, 16)
	for _, name := range []string{readmodels.NameOrders, readmodels.NameInventory, readmodels.NameDaily} {
		b.Run(name, func(b *testing.B) {
			var read, rebuild time.Duration
			var replay float64
			for range b.N {
				start := time.Now()
				var n int
				err := eventstore.ReadRange(context.Background(), brokers, projections.DefaultTopic, nil,
					ends(b, brokers), func(recs []eventstore.Record) error { n += len(recs); return nil })
				if err != nil || n != len(st.Envs) {
					b.Fatalf("bare read: %d of %d records, %v", n, len(st.Envs), err)
				}
				read += time.Since(start)

				b.StopTimer()
				pool := benchPool(b)
				var p projections.Rebuildable
				switch name {
				case readmodels.NameOrders:
					p = readmodelstest.NewOrders(b, pool)
				case readmodels.NameInventory:
					p = readmodelstest.NewInventory(b, pool)
				default:
					p = readmodelstest.NewDaily(b, pool)
				}
				b.StartTimer()
				res, err := projections.Rebuild(context.Background(), projections.RebuildConfig{Brokers: brokers, NoSwap: true,
					MaxBatch: envInt("SECKILL_BENCH_BATCH"), Workers: envInt("SECKILL_BENCH_WORKERS"),
					Logger: slog.New(slog.DiscardHandler)}, pool, p)
				if err != nil || res.Records != int64(len(st.Envs)) {
					b.Fatalf("rebuild: %+v, %v", res, err)
				}
				rebuild += res.Duration
				replay += res.ReplayRate
			}
			n := float64(len(st.Envs) * b.N)
			b.ReportMetric(n/rebuild.Seconds(), "events/s")
			b.ReportMetric(n/read.Seconds(), "read-events/s")
			b.ReportMetric(read.Seconds()/rebuild.Seconds(), "ratio")
			b.ReportMetric(replay/float64(b.N), "replay-events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// envInt is the integer in environment variable key, 0 if unset.
func envInt(key string) int {
	n, _ := strconv.Atoi(os.Getenv(key))
	return n
}

func ends(b *testing.B, brokers []string) map[int32]int64 {
	b.Helper()
	offs, err := eventstore.ReadOffsets(context.Background(), brokers, projections.DefaultTopic)
	if err != nil {
		b.Fatal(err)
	}
	return offs.Ends
}

// BenchmarkLiveLag produces a steady flow of purchases (StockReserved and
// OrderPlaced, 2 events each) straight to the log, stamped with the time
// they are produced, while the three projections run live, and reports the
// lag from an event's occurrence to the commit of its read model (orders and
// inventory; daily runs at its own pace). SECKILL_BENCH_RATE sets the
// purchases per second (default 5000), SECKILL_BENCH_SECONDS the duration
// (default 10).
//
//	go test -run '^$' -bench LiveLag -benchtime 1x ./projections
func BenchmarkLiveLag(b *testing.B) {
	rate, secs := 5000, 10
	if v, err := strconv.Atoi(os.Getenv("SECKILL_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("SECKILL_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	for range b.N {
		b.StopTimer()
		brokers := kafkaBrokers(b, 16)
		pool := benchPool(b)
		var mu sync.Mutex
		lags := map[string][]time.Duration{}
		observe := func(name string) func([]projections.Event) {
			return func(evs []projections.Event) {
				now := time.Now()
				mu.Lock()
				for _, e := range evs {
					lags[name] = append(lags[name], now.Sub(e.Envelope.OccurredAt))
				}
				mu.Unlock()
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		quiet := slog.New(slog.DiscardHandler)
		for _, p := range readmodelstest.All(b, pool) {
			cfg := projections.ConsumerConfig{Brokers: brokers, DeadLetterTopic: "-", Logger: quiet, Observe: observe(p.Name())}
			if p.Name() == readmodels.NameDaily {
				cfg.Rate, cfg.MaxBatch, cfg.Workers = 5000, 500, 2
			}
			c, err := projections.NewConsumer(cfg, pool, p)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() { _ = c.Run(ctx) })
		}
		time.Sleep(2 * time.Second) // the groups form
		b.StartTimer()
		produced := producePurchases(b, brokers, rate, time.Duration(secs)*time.Second)
		b.StopTimer()
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			done := len(lags[readmodels.NameOrders]) >= produced && len(lags[readmodels.NameInventory]) >= produced
			mu.Unlock()
			if done || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		wg.Wait()
		for _, name := range []string{readmodels.NameOrders, readmodels.NameInventory} {
			l := lags[name]
			if len(l) < produced {
				b.Fatalf("%s applied %d of %d events", name, len(l), produced)
			}
			slices.Sort(l)
			q := func(f float64) float64 { return l[min(len(l)-1, int(f*float64(len(l))))].Seconds() * 1000 }
			b.ReportMetric(q(0.5), name+"-p50-ms")
			b.ReportMetric(q(0.99), name+"-p99-ms")
			b.ReportMetric(q(1), name+"-max-ms")
		}
		b.ReportMetric(float64(produced)/float64(secs), "events/s")
		b.ReportMetric(0, "ns/op")
	}
}

// producePurchases produces rate purchases per second for d, in 10 ms
// ticks, each event stamped with the time it is produced, and returns the
// number of events produced.
func producePurchases(b *testing.B, brokers []string, rate int, d time.Duration) int {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(projections.DefaultTopic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	at := time.Now()
	sale := domain.SaleCreated{SaleID: "lag", SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
		Name: "Lag", Stock: int64(rate) * int64(d/time.Second) * 2, PriceCents: 100,
		Currency: "EUR", StartsAt: at, EndsAt: at.Add(time.Hour), PerUserLimit: 1 << 30,
		PayWithinS: 900,
	}}}
	v, _ := domain.Encode(sale, at)
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("lag"), Value: v}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	n := 1
	perTick := rate / 100
	var failed atomic.Int64
	var inflight sync.WaitGroup
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; time.Since(at) < d; i++ {
		<-tick.C
		now := time.Now()
		for j := range perTick {
			id := domain.OrderID("lag", strconv.Itoa(i*perTick+j))
			user := "u" + strconv.Itoa(i*perTick+j)
			for _, e := range []domain.Event{
				domain.StockReserved{SaleID: "lag", OrderID: id, UserID: user, Quantity: 1},
				domain.OrderPlaced{OrderID: id, SaleID: "lag", UserID: user, Quantity: 1, PriceCents: 100, AmountCents: 100, PayBy: now.Add(15 * time.Minute)},
			} {
				v, _ := domain.Encode(e, now)
				inflight.Add(1)
				cl.Produce(ctx, &kgo.Record{Key: []byte(id), Value: v}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
					}
					inflight.Done()
				})
				n++
			}
		}
	}
	inflight.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d records failed to produce", failed.Load())
	}
	return n
}
