package projections_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

// TestRebuildDuringLiveTraffic rebuilds each projection while events keep
// arriving, the live consumers keep applying them and queries keep reading:
// queries never fail and never see a model going backwards (a half-built
// one would), and after the swap the read models equal the fold.
func TestRebuildDuringLiveTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	brokers := kafkaBrokers(t, 8)
	ensureDLQ(t, brokers)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.GenTicks(t, 61, 6, 300, 10*time.Second) // ~6,000 events
	head := len(st.Envs) / 3
	publish(t, brokers, st.Envs[:head])
	projs := readmodelstest.All(t, pool)
	for _, p := range projs {
		// Slow, small batches keep the live consumers busy, so that their
		// next batch is usually waiting on the checkpoint rows while the
		// swap holds them: the case the swap's position handoff is for.
		startConsumer(t, projections.ConsumerConfig{MaxBatch: 64}, pool, brokers, slow{p, 3 * time.Millisecond})
	}
	waitAll(t, pool, brokers, time.Minute, readmodelstest.Names...)

	// Live traffic: the rest of the log, in small pieces.
	var wg sync.WaitGroup
	trafficDone := make(chan struct{})
	wg.Go(func() {
		defer close(trafficDone)
		rest := st.Envs[head:]
		for len(rest) > 0 {
			n := min(len(rest), 100)
			publish(t, brokers, rest[:n])
			rest = rest[n:]
			time.Sleep(20 * time.Millisecond)
		}
	})
	// Readers: each query must answer, and the counts only grow.
	var queries atomic.Int64
	readErr := make(chan error, 1)
	stopReaders := make(chan struct{})
	wg.Go(func() {
		if err := readContinuously(ctx, pool, stopReaders, &queries); err != nil {
			readErr <- err
		}
	})

	for _, p := range projs {
		var phases []string
		var mu sync.Mutex
		res, err := projections.Rebuild(ctx, projections.RebuildConfig{
			Brokers: brokers, MaxBatch: 500, Logger: testLogger(),
			Progress: func(pr projections.RebuildProgress) {
				mu.Lock()
				defer mu.Unlock()
				if len(phases) == 0 || phases[len(phases)-1] != pr.Phase {
					phases = append(phases, pr.Phase)
				}
			},
		}, pool, p.(projections.Rebuildable))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		t.Logf("rebuilt %s: %+v, phases %v", p.Name(), res, phases)
		mu.Unlock()
		if !res.Swapped || res.Records == 0 {
			t.Fatalf("rebuild of %s: %+v", p.Name(), res)
		}
	}
	<-trafficDone
	waitAll(t, pool, brokers, time.Minute, readmodelstest.Names...)
	close(stopReaders)
	wg.Wait()
	select {
	case err := <-readErr:
		t.Fatal(err)
	default:
	}
	if queries.Load() == 0 {
		t.Fatal("the readers ran no query")
	}
	readmodelstest.AssertAllMatchFold(t, pool, st.Envs)
	if got, want := readmodelstest.SnapshotAll(t, pool), referenceAll(t, st.Envs, 8); got != want {
		t.Fatalf("after the rebuilds the read models differ from one clean pass:\ngot  %.2000s\nwant %.2000s", got, want)
	}
	var leftovers []string
	rows, err := pool.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild\_%' OR nspname LIKE 'retired\_%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		leftovers = append(leftovers, s)
	}
	if len(leftovers) > 0 {
		t.Fatalf("schemas left behind: %v", leftovers)
	}
	// The tables look as the migrations made them: same index names.
	var idx int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'
		AND indexname IN ('orders_pkey', 'orders_user_placed_idx', 'orders_sale_idx', 'inventory_pkey', 'daily_orders_day_idx')`).Scan(&idx); err != nil || idx != 5 {
		t.Fatalf("%d of 5 indexes found by their migration names (err %v)", idx, err)
	}
	t.Logf("%d queries during the rebuilds", queries.Load())
}

// readContinuously queries the read models until stop: the orders, the
// inventory and the daily summary must always answer, and what they count
// must never shrink (events only add).
func readContinuously(ctx context.Context, pool *pgxpool.Pool, stop <-chan struct{}, n *atomic.Int64) error {
	var lastOrders, lastReserved, lastPlaced int64
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		var orders, reserved, placed int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status <> ''`).Scan(&orders); err != nil {
			return fmt.Errorf("orders query during rebuild: %w", err)
		}
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(reserved_qty), 0) FROM inventory`).Scan(&reserved); err != nil {
			return fmt.Errorf("inventory query during rebuild: %w", err)
		}
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(placed), 0) FROM daily_summary`).Scan(&placed); err != nil {
			return fmt.Errorf("daily query during rebuild: %w", err)
		}
		if orders < lastOrders || reserved < lastReserved || placed < lastPlaced {
			return fmt.Errorf("read model went backwards: orders %d→%d, reserved %d→%d, placed %d→%d",
				lastOrders, orders, lastReserved, reserved, lastPlaced, placed)
		}
		lastOrders, lastReserved, lastPlaced = orders, reserved, placed
		n.Add(1)
		time.Sleep(2 * time.Millisecond)
	}
}

// TestRebuildNoSwapThenResume builds the shadow without swapping, then
// finishes it with Resume while the live projection is ahead of it: the
// swap applies the difference in its transaction, and the second run
// applies only what came since the first.
func TestRebuildNoSwapThenResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	brokers := kafkaBrokers(t, 4)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 62, 3, 60)
	half := len(st.Envs) / 2
	publish(t, brokers, st.Envs[:half])
	orders := readmodelstest.NewOrders(t, pool)
	res, err := projections.Rebuild(ctx, projections.RebuildConfig{Brokers: brokers, NoSwap: true, Logger: testLogger()}, pool, orders)
	if err != nil {
		t.Fatal(err)
	}
	if res.Swapped || res.Records != int64(half) {
		t.Fatalf("first run: %+v, want %d records and no swap", res, half)
	}
	var live int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&live); err != nil || live != 0 {
		t.Fatalf("live table has %d rows before the swap (err %v)", live, err)
	}
	// The live projection now runs ahead of the shadow; SwapWithin lets the
	// swap itself apply the difference, inside its transaction.
	publish(t, brokers, st.Envs[half:])
	ensureDLQ(t, brokers)
	_, stopLive := startConsumer(t, projections.ConsumerConfig{}, pool, brokers, orders)
	waitCaughtUp(t, pool, brokers, readmodels.NameOrders, time.Minute)
	res, err = projections.Rebuild(ctx, projections.RebuildConfig{Brokers: brokers, Resume: true, SwapWithin: 1 << 40, Logger: testLogger()}, pool, orders)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Swapped || res.Records != int64(len(st.Envs)-half) {
		t.Fatalf("resumed run: %+v, want %d records and a swap", res, len(st.Envs)-half)
	}
	if err := stopLive(); err != nil {
		t.Fatal(err)
	}
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
	if got, want := readmodelstest.Snapshot(t, pool), reference(t, st.Envs, 4); got != want {
		t.Fatalf("after the swap:\ngot  %s\nwant %s", got, want)
	}
	pos, err := projections.ReadPositions(ctx, pool, "", readmodels.NameOrders)
	if err != nil {
		t.Fatal(err)
	}
	var applied int64
	for _, p := range pos {
		applied += p.Offset + 1
	}
	if applied != int64(len(st.Envs)) {
		t.Fatalf("live positions cover %d records after the swap, want %d", applied, len(st.Envs))
	}
	// A second rebuild of the same projection cannot run at the same time.
	// (Checked through the lock by running two at once.)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := projections.Rebuild(ctx, projections.RebuildConfig{Brokers: brokers, Logger: testLogger()}, pool, orders)
			errs <- err
		}()
	}
	e1, e2 := <-errs, <-errs
	if e1 != nil && e2 != nil {
		t.Fatalf("both concurrent rebuilds failed: %v; %v", e1, e2)
	}
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
}
