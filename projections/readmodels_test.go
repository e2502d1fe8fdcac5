package projections_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
)

// bizZone is the business time zone of the daily tests: UTC+3, so a log
// that starts at 20:00 UTC (23:00 there) crosses midnight within an hour.
var bizZone = func() *time.Location {
	l, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		return time.FixedZone("UTC+3", 3*3600)
	}
	return l
}()

func newInventory(t testing.TB, pool *pgxpool.Pool) *projections.Inventory {
	t.Helper()
	p, err := projections.NewInventory(projections.InventoryConfig{}, pool)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newDaily(t testing.TB, pool *pgxpool.Pool) *projections.Daily {
	t.Helper()
	p, err := projections.NewDaily(projections.DailyConfig{Location: bizZone}, pool)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// invRow is a sale's inventory counters, as the table and the fold have them.
type invRow struct {
	Known, Ended                                           bool
	Stock, Reserved, Paid, Expired, Released, Pool, Unsold int64
}

func readInventory(t testing.TB, pool *pgxpool.Pool) map[string]invRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT sale_id, known, ended, stock, reserved_qty, paid_qty,
		expired_qty, released_qty, pool_qty, unsold FROM inventory`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]invRow{}
	for rows.Next() {
		var id string
		var r invRow
		if err := rows.Scan(&id, &r.Known, &r.Ended, &r.Stock, &r.Reserved, &r.Paid, &r.Expired, &r.Released, &r.Pool, &r.Unsold); err != nil {
			t.Fatal(err)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func foldInventory(f *domain.Fold) map[string]invRow {
	out := map[string]invRow{}
	for id, s := range f.Sales {
		if !s.Known && !s.Ended && s.ReservedQty == 0 && s.ExpiredQty == 0 && s.PaidQty == 0 && s.ReleasedQty == 0 {
			continue // only OrderPlaced so far: the inventory has no row
		}
		out[id] = invRow{Known: s.Known, Ended: s.Ended, Stock: s.Stock, Reserved: s.ReservedQty, Paid: s.PaidQty,
			Expired: s.ExpiredQty, Released: s.ReleasedQty, Pool: s.PoolQty, Unsold: s.Unsold}
	}
	return out
}

// assertInventoryMatchesFold checks the inventory table, and what
// GetInventory answers, against the fold of envs.
func assertInventoryMatchesFold(t testing.TB, pool *pgxpool.Pool, envs [][]byte) {
	t.Helper()
	f := fold(t, envs)
	got, want := readInventory(t, pool), foldInventory(f)
	for id, w := range want {
		if g := got[id]; g != w {
			t.Errorf("inventory of %s:\n got  %+v\n fold %+v", id, g, w)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("inventory of %s: in the table, not in the fold", id)
		}
	}
	inv := newInventory(t, pool)
	for id, s := range f.Sales {
		v, err := inv.GetInventory(context.Background(), id)
		if !s.Known {
			if !errors.Is(err, domain.ErrSaleNotFound) {
				t.Errorf("inventory of unknown sale %s: err %v", id, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if v.Initial != s.Stock || v.Reserved != s.Outstanding() || v.Paid != s.PaidQty || v.Released != s.Released() ||
			v.Available != s.Remaining() || v.Unsold != s.Unsold || v.Ended != s.Ended {
			t.Errorf("inventory view of %s: %+v; fold: stock %d outstanding %d paid %d released %d remaining %d",
				id, v, s.Stock, s.Outstanding(), s.PaidQty, s.Released(), s.Remaining())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// dailyOrderRow is an order in the everyday format.
type dailyOrderRow struct {
	User, Item                        string
	Quantity, UnitPrice, Total        int64
	Status, PaymentRef                string
	PayBy, PlacedAt, PaidAt, ClosedAt time.Time
	Day                               string
}

type summaryKey struct{ Day, Sale string }

type summaryRow struct{ Placed, Paid, Expired, Revenue, Buyers int64 }

func readDaily(t testing.TB, pool *pgxpool.Pool) (map[string]dailyOrderRow, map[summaryKey]summaryRow) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT order_no, user_id, item_id, quantity, unit_price_cents, total_cents, status,
		payment_ref, pay_by, placed_at, paid_at, closed_at, coalesce(to_char(business_day, 'YYYY-MM-DD'), '') FROM daily_orders`)
	if err != nil {
		t.Fatal(err)
	}
	orders := map[string]dailyOrderRow{}
	for rows.Next() {
		var id string
		var r dailyOrderRow
		var payBy, placed, paid, closed *time.Time
		if err := rows.Scan(&id, &r.User, &r.Item, &r.Quantity, &r.UnitPrice, &r.Total, &r.Status, &r.PaymentRef,
			&payBy, &placed, &paid, &closed, &r.Day); err != nil {
			t.Fatal(err)
		}
		for dst, src := range map[*time.Time]*time.Time{&r.PayBy: payBy, &r.PlacedAt: placed, &r.PaidAt: paid, &r.ClosedAt: closed} {
			if src != nil {
				*dst = src.UTC()
			}
		}
		orders[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = pool.Query(ctx, `SELECT to_char(day, 'YYYY-MM-DD'), sale_id, placed, paid, expired, revenue_cents, buyers FROM daily_summary`)
	if err != nil {
		t.Fatal(err)
	}
	sum := map[summaryKey]summaryRow{}
	for rows.Next() {
		var k summaryKey
		var r summaryRow
		if err := rows.Scan(&k.Day, &k.Sale, &r.Placed, &r.Paid, &r.Expired, &r.Revenue, &r.Buyers); err != nil {
			t.Fatal(err)
		}
		sum[k] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return orders, sum
}

func dayIn(t time.Time, loc *time.Location) string { return t.In(loc).Format(time.DateOnly) }

// foldDaily is what the daily tables must hold for the fold f.
func foldDaily(f *domain.Fold, loc *time.Location) (map[string]dailyOrderRow, map[summaryKey]summaryRow) {
	orders := map[string]dailyOrderRow{}
	sum := map[summaryKey]summaryRow{}
	buyers := map[summaryKey]map[string]bool{}
	for id, o := range f.Orders {
		if o.PlacedAt.IsZero() && o.PaidAt.IsZero() && o.ExpiredAt.IsZero() {
			continue // only a reservation so far
		}
		r := dailyOrderRow{User: o.UserID, Item: o.SaleID, Quantity: o.Quantity, UnitPrice: o.PriceCents, Total: o.AmountCents,
			Status: projections.DailyStatus(o.Status), PaymentRef: o.PaymentRef,
			PayBy: us(o.PayBy), PlacedAt: us(o.PlacedAt), PaidAt: us(o.PaidAt), ClosedAt: us(o.ExpiredAt)}
		if !o.PlacedAt.IsZero() {
			r.Day = dayIn(us(o.PlacedAt), loc)
			k := summaryKey{r.Day, o.SaleID}
			s := sum[k]
			s.Placed++
			sum[k] = s
			if buyers[k] == nil {
				buyers[k] = map[string]bool{}
			}
			buyers[k][o.UserID] = true
		}
		if !o.PaidAt.IsZero() {
			k := summaryKey{dayIn(us(o.PaidAt), loc), o.SaleID}
			s := sum[k]
			s.Paid++
			s.Revenue += o.AmountCents
			sum[k] = s
		}
		if !o.ExpiredAt.IsZero() {
			k := summaryKey{dayIn(us(o.ExpiredAt), loc), o.SaleID}
			s := sum[k]
			s.Expired++
			sum[k] = s
		}
		orders[id] = r
	}
	for k, b := range buyers {
		s := sum[k]
		s.Buyers = int64(len(b))
		sum[k] = s
	}
	return orders, sum
}

func assertDailyMatchesFold(t testing.TB, pool *pgxpool.Pool, envs [][]byte, loc *time.Location) {
	t.Helper()
	gotOrders, gotSum := readDaily(t, pool)
	wantOrders, wantSum := foldDaily(fold(t, envs), loc)
	diff := 0
	report := func(format string, args ...any) {
		if diff++; diff <= 10 {
			t.Errorf(format, args...)
		}
	}
	for id, w := range wantOrders {
		if g, ok := gotOrders[id]; !ok || g != w {
			report("daily order %s:\n got  %+v\n fold %+v", id, g, w)
		}
	}
	for id := range gotOrders {
		if _, ok := wantOrders[id]; !ok {
			report("daily order %s: in the table, not in the fold", id)
		}
	}
	for k, w := range wantSum {
		if g := gotSum[k]; g != w {
			report("summary %v:\n got  %+v\n fold %+v", k, g, w)
		}
	}
	for k, g := range gotSum {
		if _, ok := wantSum[k]; !ok && g != (summaryRow{}) {
			report("summary %v: %+v in the table, not in the fold", k, g)
		}
	}
	if diff > 0 {
		t.Fatalf("daily read model differs from the fold in %d rows", diff)
	}
}

// snapshotAll is every read model table as text, without updated_at, for
// "identical to a clean pass" checks.
func snapshotAll(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var out string
	for _, table := range []string{"orders", "sales", "inventory", "inventory_orders", "daily_orders", "daily_sales", "daily_buyers", "daily_summary"} {
		var s string
		err := pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(j::text, E'\n' ORDER BY j::text), '')
			FROM (SELECT to_jsonb(x) - 'updated_at' AS j FROM `+pgx.Identifier{table}.Sanitize()+` x) s`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		out += "-- " + table + "\n" + s + "\n"
	}
	return out
}

// dupStream is st with events published again, right away or a little later
// (after later events of the same aggregate), as an at-least-once relay does.
func dupStream(st *stream, seed uint64) *stream {
	dup := &stream{}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range st.envs {
		dup.envs, dup.keys = append(dup.envs, st.envs[i]), append(dup.keys, st.keys[i])
		if rng.IntN(3) == 0 {
			j := min(len(st.envs)-1, i+rng.IntN(30))
			for k := i + 1; k <= j; k++ {
				if st.keys[k] == st.keys[i] {
					dup.envs, dup.keys = append(dup.envs, st.envs[k]), append(dup.keys, st.keys[k])
				}
			}
			dup.envs, dup.keys = append(dup.envs, st.envs[i]), append(dup.keys, st.keys[i])
		}
	}
	return dup
}

func TestInventoryMatchesFold(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	a := newApplier(t, pool, newInventory(t, pool))
	st := genStream(t, 41, 5, 60)
	recs := st.records(topic, 8)
	rng := rand.New(rand.NewPCG(4, 1))
	half := len(recs) / 2
	applyAll(t, a, runnerBatches(recs[:half], rng))
	assertInventoryMatchesFold(t, pool, st.envs[:half]) // a prefix of the log: the fold of that prefix
	applyAll(t, a, [][]projections.Record{recs[half:]})
	assertInventoryMatchesFold(t, pool, st.envs)
}

func TestInventoryDuplicatesAtOtherOffsets(t *testing.T) {
	t.Parallel()
	st := genStream(t, 42, 3, 60)
	dup := dupStream(st, 43)
	pool := newPool(t)
	a := newApplier(t, pool, newInventory(t, pool))
	rng := rand.New(rand.NewPCG(1, 9))
	recs := dup.records(topic, 4)
	// Small batches and big ones: a duplicate in the same batch and in a
	// later one must both count once.
	applyAll(t, a, runnerBatches(recs[:len(recs)/2], rng))
	applyAll(t, a, [][]projections.Record{recs[len(recs)/2:]})
	assertInventoryMatchesFold(t, pool, st.envs)
}

// TestReadModelsApplyIsIdempotent calls the projections directly, without
// checkpoints: every event twice in one batch, then the whole log again.
func TestReadModelsApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	st := genStreamTicks(t, 44, 3, 40, 90*time.Second)
	var events []projections.Event
	for i, b := range st.envs {
		env, ev, err := domain.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e := projections.Event{Envelope: env, Event: ev, Topic: topic, Offset: int64(i)}
		events = append(events, e, e)
	}
	ctx := context.Background()
	for _, p := range []projections.Projection{newOrders(t, pool), newInventory(t, pool), newDaily(t, pool)} {
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
	assertMatchesFold(t, pool, st.envs)
	assertInventoryMatchesFold(t, pool, st.envs)
	assertDailyMatchesFold(t, pool, st.envs, bizZone)
}

func TestDailyMatchesFold(t *testing.T) {
	t.Parallel()
	// Events up to 90 s apart: the log spans days in Moscow.
	st := genStreamTicks(t, 45, 4, 60, 90*time.Second)
	f := fold(t, st.envs)
	_, sum := foldDaily(f, bizZone)
	days := map[string]bool{}
	for k := range sum {
		days[k.Day] = true
	}
	if len(days) < 2 {
		t.Fatalf("generated log spans %d business days; want several", len(days))
	}
	dup := dupStream(st, 46)
	pool := newPool(t)
	a := newApplier(t, pool, newDaily(t, pool))
	recs := dup.records(topic, 4)
	applyAll(t, a, runnerBatches(recs[:len(recs)/3], rand.New(rand.NewPCG(3, 3))))
	applyAll(t, a, [][]projections.Record{recs[len(recs)/3:]})
	assertDailyMatchesFold(t, pool, st.envs, bizZone)

	// The report: the summary rows with the sale's name and currency.
	d := newDaily(t, pool)
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
		w := sum[summaryKey{r.Day, r.SaleID}]
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
