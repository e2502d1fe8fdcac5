// Package readmodelstest holds what the tests of the projection engine and of
// the read models share: a generated log that a fold can check, its layout on
// partitions, the engine driven by hand, and checks that each read model's
// tables equal the fold of the log they were built from.
package readmodelstest

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/readmodels"
)

// Time is an arbitrary instant with nanoseconds, which Postgres drops.
var Time = time.Date(2025, 11, 11, 20, 0, 0, 123456789, time.UTC)

// NewPool returns a pool on a fresh, migrated database.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	if err := migrations.Up(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewOrders returns the orders projection over the default tables.
func NewOrders(t testing.TB, pool *pgxpool.Pool) *readmodels.Orders {
	t.Helper()
	o, err := readmodels.NewOrders(readmodels.OrdersConfig{}, pool)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Stream is a generated log: the envelopes in the order they are written,
// and their keys (aggregate ids).
type Stream struct {
	Envs [][]byte
	Keys []string
}

// Add appends e, occurred at at.
func (s *Stream) Add(t testing.TB, e domain.Event, at time.Time) {
	t.Helper()
	b, err := domain.Encode(e, at)
	if err != nil {
		t.Fatal(err)
	}
	s.Envs = append(s.Envs, b)
	s.Keys = append(s.Keys, e.AggregateID())
}

// Gen writes a plausible log: sales with orders that get paid, expire
// (and release their stock) or stay reserved, and some sales that end. Events
// of one aggregate keep their order; aggregates interleave at random.
func Gen(t testing.TB, seed uint64, sales, ordersPerSale int) *Stream {
	t.Helper()
	return GenTicks(t, seed, sales, ordersPerSale, 5*time.Millisecond)
}

// GenTicks is Gen with events up to maxTick apart (the daily
// tests spread a log over several days).
func GenTicks(t testing.TB, seed uint64, sales, ordersPerSale int, maxTick time.Duration) *Stream {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	base := time.Date(2025, 11, 11, 20, 0, 0, 0, time.UTC)
	clock := base
	tick := func() time.Time {
		// Nanoseconds on purpose: the read model keeps microseconds.
		clock = clock.Add(time.Duration(1+rng.Int64N(int64(maxTick/time.Microsecond))) * time.Microsecond).Add(time.Duration(rng.IntN(1000)))
		return clock
	}
	// Each aggregate is a queue of events still to write.
	type agg struct{ evs []domain.Event }
	var aggs []*agg
	for s := range sales {
		saleID := fmt.Sprintf("sale%d", s)
		price := int64(100 + rng.IntN(10000))
		sa := &agg{evs: []domain.Event{domain.SaleCreated{SaleID: saleID, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
			Name: "Sale " + saleID, Stock: int64(ordersPerSale * 2), PriceCents: price,
			Currency: []string{"EUR", "CNY"}[s%2], StartsAt: base, EndsAt: base.Add(time.Hour),
			PerUserLimit: domain.MaxQuantity, PayWithinS: 900,
		}}}}}
		aggs = append(aggs, sa)
		for o := range ordersPerSale {
			orderID := domain.OrderID(saleID, fmt.Sprintf("o%d", o))
			user := fmt.Sprintf("user%d", rng.IntN(ordersPerSale))
			q := int64(1 + rng.IntN(2))
			evs := []domain.Event{
				domain.StockReserved{SaleID: saleID, OrderID: orderID, UserID: user, Quantity: q},
				domain.OrderPlaced{OrderID: orderID, SaleID: saleID, UserID: user, Quantity: q, PriceCents: price,
					AmountCents: q * price, PayBy: base.Add(15*time.Minute + time.Duration(o)*time.Nanosecond*1001)},
			}
			switch rng.IntN(3) {
			case 0:
				evs = append(evs, domain.OrderPaid{OrderID: orderID, SaleID: saleID, UserID: user, Quantity: q,
					AmountCents: q * price, PaymentRef: "pay-" + orderID})
			case 1:
				evs = append(evs, domain.OrderExpired{OrderID: orderID, SaleID: saleID, UserID: user, Quantity: q},
					domain.StockReleased{SaleID: saleID, OrderID: orderID, Quantity: q, ToPool: true})
			}
			aggs = append(aggs, &agg{evs: evs})
		}
		if s%2 == 0 {
			sa.evs = append(sa.evs, domain.SaleEnded{SaleID: saleID, Unsold: 3, Reason: domain.EndReasonEarly})
		}
	}
	st := &Stream{}
	// The sale's SaleCreated goes first, as the gate does it; the rest interleave.
	for _, a := range aggs {
		if _, ok := a.evs[0].(domain.SaleCreated); ok {
			st.Add(t, a.evs[0], tick())
			a.evs = a.evs[1:]
		}
	}
	for live := aggs; len(live) > 0; {
		i := rng.IntN(len(live))
		a := live[i]
		if len(a.evs) == 0 {
			live = slices.Delete(live, i, i+1)
			continue
		}
		st.Add(t, a.evs[0], tick())
		a.evs = a.evs[1:]
	}
	return st
}

// Fold folds envelopes as the audit does.
func Fold(t testing.TB, envs [][]byte) *domain.Fold {
	t.Helper()
	f := domain.NewFold()
	for _, b := range envs {
		env, ev, err := domain.Decode(b)
		if err != nil {
			continue // poison: the projection dead-letters it, the fold skips it
		}
		f.Apply(env, ev)
	}
	return f
}

// PartitionOf spreads keys over n partitions the way a keyed producer does
// (any stable hash will do for tests that bypass Kafka).
func PartitionOf(key string, n int) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32() % uint32(n))
}

// Records lays the stream out on n partitions, as Kafka would.
func (s *Stream) Records(topic string, n int) []eventstore.Record {
	next := make([]int64, n)
	out := make([]eventstore.Record, len(s.Envs))
	for i, b := range s.Envs {
		p := PartitionOf(s.Keys[i], n)
		out[i] = eventstore.Record{Topic: topic, Partition: p, Offset: next[p], Key: []byte(s.Keys[i]), Value: b}
		next[p]++
	}
	return out
}

// orderRow is everything the orders table says about an order, in the form
// both the table and the fold can be brought to.
type orderRow struct {
	SaleID, UserID                     string
	Quantity, PriceCents, AmountCents  int64
	Status, PaymentRef                 string
	PayBy, PlacedAt, PaidAt, ExpiredAt time.Time
	History                            string
}

type saleRow struct {
	domain.SaleTerms
	Ended     bool
	EndReason string
	Unsold    int64
}

// US is t as Postgres keeps it: microseconds, UTC.
func US(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// HistoryString is h as comparable text, times as Postgres keeps them.
func HistoryString(h []domain.HistoryEntry) string {
	parts := make([]string, len(h))
	for i, e := range h {
		parts[i] = e.Type + "@" + US(e.At).Format(time.RFC3339Nano)
	}
	return strings.Join(parts, ",")
}

// readModel reads the orders and sales tables.
func readModel(t testing.TB, pool *pgxpool.Pool) (map[string]orderRow, map[string]saleRow) {
	t.Helper()
	ctx := context.Background()
	orders := map[string]orderRow{}
	rows, err := pool.Query(ctx, `SELECT order_id, sale_id, user_id, quantity, price_cents, amount_cents, status,
		payment_ref, pay_by, placed_at, paid_at, expired_at, history FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var r orderRow
		var payBy, placed, paid, expired *time.Time
		var h []domain.HistoryEntry
		if err := rows.Scan(&id, &r.SaleID, &r.UserID, &r.Quantity, &r.PriceCents, &r.AmountCents, &r.Status,
			&r.PaymentRef, &payBy, &placed, &paid, &expired, &h); err != nil {
			t.Fatal(err)
		}
		for dst, src := range map[*time.Time]*time.Time{&r.PayBy: payBy, &r.PlacedAt: placed, &r.PaidAt: paid, &r.ExpiredAt: expired} {
			if src != nil {
				*dst = src.UTC()
			}
		}
		r.History = HistoryString(h)
		orders[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sales := map[string]saleRow{}
	rows, err = pool.Query(ctx, `SELECT id, name, currency, stock, price_cents, per_user_limit, pay_within_s,
		starts_at, ends_at, ended, end_reason, unsold FROM sales`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var r saleRow
		var starts, ends *time.Time
		if err := rows.Scan(&id, &r.Name, &r.Currency, &r.Stock, &r.PriceCents, &r.PerUserLimit, &r.PayWithinS,
			&starts, &ends, &r.Ended, &r.EndReason, &r.Unsold); err != nil {
			t.Fatal(err)
		}
		if starts != nil {
			r.StartsAt = starts.UTC()
		}
		if ends != nil {
			r.EndsAt = ends.UTC()
		}
		sales[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return orders, sales
}

// foldModel is what the orders and sales tables must hold for the fold f.
func foldModel(f *domain.Fold) (map[string]orderRow, map[string]saleRow) {
	orders := map[string]orderRow{}
	for id, o := range f.Orders {
		orders[id] = orderRow{
			SaleID: o.SaleID, UserID: o.UserID, Quantity: o.Quantity, PriceCents: o.PriceCents, AmountCents: o.AmountCents,
			Status: o.Status, PaymentRef: o.PaymentRef,
			PayBy: US(o.PayBy), PlacedAt: US(o.PlacedAt), PaidAt: US(o.PaidAt), ExpiredAt: US(o.ExpiredAt),
			History: HistoryString(o.History),
		}
	}
	sales := map[string]saleRow{}
	for id, s := range f.Sales {
		if !s.Known && !s.Ended {
			continue // only order events so far: the sales table has no row
		}
		terms := s.SaleTerms
		terms.StartsAt, terms.EndsAt = US(s.StartsAt), US(s.EndsAt)
		sales[id] = saleRow{SaleTerms: terms, Ended: s.Ended, EndReason: s.EndReason, Unsold: s.Unsold}
	}
	return orders, sales
}

// AssertMatchesFold checks that the orders and sales tables hold exactly
// what folding envs gives: the same rows, field by field. The log must be
// sound (no invariant broken), so the test cannot pass on a broken generator.
func AssertMatchesFold(t testing.TB, pool *pgxpool.Pool, envs [][]byte) {
	t.Helper()
	if v := Fold(t, envs).Violations(); len(v) > 0 {
		t.Fatalf("generated log breaks invariants: %v", v)
	}
	AssertRowsMatchFold(t, pool, envs)
}

// AssertRowsMatchFold is AssertMatchesFold for logs that are incomplete on
// purpose.
func AssertRowsMatchFold(t testing.TB, pool *pgxpool.Pool, envs [][]byte) {
	t.Helper()
	f := Fold(t, envs)
	wantOrders, wantSales := foldModel(f)
	gotOrders, gotSales := readModel(t, pool)
	diff := 0
	report := func(format string, args ...any) {
		if diff++; diff <= 10 {
			t.Errorf(format, args...)
		}
	}
	for id, w := range wantOrders {
		g, ok := gotOrders[id]
		switch {
		case !ok:
			report("order %s: missing from the table; fold has %+v", id, w)
		case g != w:
			report("order %s:\n got  %+v\n want %+v", id, g, w)
		}
	}
	for id := range gotOrders {
		if _, ok := wantOrders[id]; !ok {
			report("order %s: in the table but not in the fold", id)
		}
	}
	for id, w := range wantSales {
		g, ok := gotSales[id]
		switch {
		case !ok:
			report("sale %s: missing from the table; fold has %+v", id, w)
		case g != w:
			report("sale %s:\n got  %+v\n want %+v", id, g, w)
		}
	}
	for id := range gotSales {
		if _, ok := wantSales[id]; !ok {
			report("sale %s: in the table but not in the fold", id)
		}
	}
	if diff > 0 {
		t.Fatalf("read model differs from the fold in %d rows (orders: got %d want %d; sales: got %d want %d)",
			diff, len(gotOrders), len(wantOrders), len(gotSales), len(wantSales))
	}
}

// Snapshot is the whole orders read model as text, for "identical" checks that
// include columns the fold does not know (created_at, ended_at, ...).
func Snapshot(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `SELECT
		coalesce((SELECT string_agg(row_to_json(o)::text, E'\n' ORDER BY order_id)
			FROM (SELECT order_id, sale_id, user_id, quantity, price_cents, amount_cents, status, pay_by,
				payment_ref, placed_at, paid_at, expired_at, history FROM orders) o), '') || E'\n--\n' ||
		coalesce((SELECT string_agg(row_to_json(s)::text, E'\n' ORDER BY id)
			FROM (SELECT id, name, stock, price_cents, currency, starts_at, ends_at, per_user_limit, pay_within_s,
				ended, end_reason, unsold, created_at, ended_at FROM sales) s), '')`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
