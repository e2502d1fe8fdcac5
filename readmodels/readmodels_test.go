package readmodels_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

func TestInventoryMatchesFold(t *testing.T) {
	t.Parallel()
	pool := readmodelstest.NewPool(t)
	a := readmodelstest.NewApplier(t, pool, readmodelstest.NewInventory(t, pool))
	st := readmodelstest.Gen(t, 41, 5, 60)
	recs := st.Records(topic, 8)
	rng := rand.New(rand.NewPCG(4, 1))
	half := len(recs) / 2
	readmodelstest.ApplyAll(t, a, readmodelstest.SmallBatches(recs[:half], rng))
	readmodelstest.AssertInventoryMatchesFold(t, pool, st.Envs[:half]) // a prefix of the log: the fold of that prefix
	readmodelstest.ApplyAll(t, a, [][]eventstore.Record{recs[half:]})
	readmodelstest.AssertInventoryMatchesFold(t, pool, st.Envs)
}

func TestInventoryDuplicatesAtOtherOffsets(t *testing.T) {
	t.Parallel()
	st := readmodelstest.Gen(t, 42, 3, 60)
	dup := st.Dup(43)
	pool := readmodelstest.NewPool(t)
	a := readmodelstest.NewApplier(t, pool, readmodelstest.NewInventory(t, pool))
	rng := rand.New(rand.NewPCG(1, 9))
	recs := dup.Records(topic, 4)
	// Small batches and big ones: a duplicate in the same batch and in a
	// later one must both count once.
	readmodelstest.ApplyAll(t, a, readmodelstest.SmallBatches(recs[:len(recs)/2], rng))
	readmodelstest.ApplyAll(t, a, [][]eventstore.Record{recs[len(recs)/2:]})
	readmodelstest.AssertInventoryMatchesFold(t, pool, st.Envs)
}

// TestReadModelsApplyIsIdempotent calls the projections directly, without
// checkpoints: every event twice in one batch, then the whole log again.
func TestReadModelsApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.GenTicks(t, 44, 3, 40, 90*time.Second)
	var events []projections.Event
	for i, b := range st.Envs {
		env, ev, err := domain.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e := projections.Event{Envelope: env, Event: ev, Topic: topic, Offset: int64(i)}
		events = append(events, e, e)
	}
	ctx := context.Background()
	for _, p := range []projections.Projection{readmodelstest.NewOrders(t, pool), readmodelstest.NewInventory(t, pool), readmodelstest.NewDaily(t, pool)} {
		for range 2 {
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return p.Apply(ctx, tx, events) }); err != nil {
				t.Fatal(err)
			}
		}
		// And one event at a time, again.
		for _, e := range events[:200] {
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return p.Apply(ctx, tx, []projections.Event{e}) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
	readmodelstest.AssertInventoryMatchesFold(t, pool, st.Envs)
	readmodelstest.AssertDailyMatchesFold(t, pool, st.Envs, readmodelstest.BizZone)
}

func TestDailyMatchesFold(t *testing.T) {
	t.Parallel()
	// Events up to 90 s apart: the log spans days in Moscow.
	st := readmodelstest.GenTicks(t, 45, 4, 60, 90*time.Second)
	f := readmodelstest.Fold(t, st.Envs)
	_, sum := readmodelstest.FoldDaily(f, readmodelstest.BizZone)
	days := map[string]bool{}
	for k := range sum {
		days[k.Day] = true
	}
	if len(days) < 2 {
		t.Fatalf("generated log spans %d business days; want several", len(days))
	}
	dup := st.Dup(46)
	pool := readmodelstest.NewPool(t)
	a := readmodelstest.NewApplier(t, pool, readmodelstest.NewDaily(t, pool))
	recs := dup.Records(topic, 4)
	readmodelstest.ApplyAll(t, a, readmodelstest.SmallBatches(recs[:len(recs)/3], rand.New(rand.NewPCG(3, 3))))
	readmodelstest.ApplyAll(t, a, [][]eventstore.Record{recs[len(recs)/3:]})
	readmodelstest.AssertDailyMatchesFold(t, pool, st.Envs, readmodelstest.BizZone)

	// The report: the summary rows with the sale's name and currency.
	d := readmodelstest.NewDaily(t, pool)
	from, _ := time.Parse(time.DateOnly, "2025-11-01")
	to, _ := time.Parse(time.DateOnly, "2025-12-31")
	rows, err := d.DailyReport(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(sum) {
		t.Fatalf("report has %d rows, want %d", len(rows), len(sum))
	}
	for _, r := range rows {
		w := sum[readmodelstest.SummaryKey{Day: r.Day, Sale: r.SaleID}]
		if r.Placed != w.Placed || r.Paid != w.Paid || r.Expired != w.Expired || r.RevenueCents != w.Revenue || r.Buyers != w.Buyers {
			t.Errorf("report row %+v, fold %+v", r, w)
		}
		if s := f.Sales[r.SaleID]; r.SaleName != s.Name || r.Currency != s.Currency {
			t.Errorf("report row %+v: sale %q %q", r, s.Name, s.Currency)
		}
	}
	// A range of one day has that day only.
	day, _ := time.Parse(time.DateOnly, rows[0].Day)
	one, err := d.DailyReport(context.Background(), day, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range one {
		if r.Day != rows[0].Day {
			t.Fatalf("one-day report has day %s", r.Day)
		}
	}
}
