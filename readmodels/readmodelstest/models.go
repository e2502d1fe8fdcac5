package readmodelstest

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/readmodels"
)

// BizZone is the business time zone of the daily tests: UTC+3, so a log
// that starts at 20:00 UTC (23:00 there) crosses midnight within an hour.
var BizZone = func() *time.Location {
	l, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		return time.FixedZone("UTC+3", 3*3600)
	}
	return l
}()

// NewInventory returns the inventory projection over the default tables.
func NewInventory(t testing.TB, pool *pgxpool.Pool) *readmodels.Inventory {
	t.Helper()
	p, err := readmodels.NewInventory(readmodels.InventoryConfig{}, pool)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// NewDaily returns the daily projection over the default tables, in BizZone.
func NewDaily(t testing.TB, pool *pgxpool.Pool) *readmodels.Daily {
	t.Helper()
	p, err := readmodels.NewDaily(readmodels.DailyConfig{Location: BizZone}, pool)
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

// AssertInventoryMatchesFold checks the inventory table, and what
// GetInventory answers, against the fold of envs.
func AssertInventoryMatchesFold(t testing.TB, pool *pgxpool.Pool, envs [][]byte) {
	t.Helper()
	f := Fold(t, envs)
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
	inv := NewInventory(t, pool)
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

// SummaryKey is a row of the daily summary: a business day and a sale.
type SummaryKey struct{ Day, Sale string }

// SummaryRow is what the daily summary counts for a SummaryKey.
type SummaryRow struct{ Placed, Paid, Expired, Revenue, Buyers int64 }

func readDaily(t testing.TB, pool *pgxpool.Pool) (map[string]dailyOrderRow, map[SummaryKey]SummaryRow) {
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
	sum := map[SummaryKey]SummaryRow{}
	for rows.Next() {
		var k SummaryKey
		var r SummaryRow
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

// FoldDaily is what the daily tables must hold for the fold f.
func FoldDaily(f *domain.Fold, loc *time.Location) (map[string]dailyOrderRow, map[SummaryKey]SummaryRow) {
	orders := map[string]dailyOrderRow{}
	sum := map[SummaryKey]SummaryRow{}
	buyers := map[SummaryKey]map[string]bool{}
	for id, o := range f.Orders {
		if o.PlacedAt.IsZero() && o.PaidAt.IsZero() && o.ExpiredAt.IsZero() {
			continue // only a reservation so far
		}
		r := dailyOrderRow{User: o.UserID, Item: o.SaleID, Quantity: o.Quantity, UnitPrice: o.PriceCents, Total: o.AmountCents,
			Status: readmodels.DailyStatus(o.Status), PaymentRef: o.PaymentRef,
			PayBy: US(o.PayBy), PlacedAt: US(o.PlacedAt), PaidAt: US(o.PaidAt), ClosedAt: US(o.ExpiredAt)}
		if !o.PlacedAt.IsZero() {
			r.Day = dayIn(US(o.PlacedAt), loc)
			k := SummaryKey{r.Day, o.SaleID}
			s := sum[k]
			s.Placed++
			sum[k] = s
			if buyers[k] == nil {
				buyers[k] = map[string]bool{}
			}
			buyers[k][o.UserID] = true
		}
		if !o.PaidAt.IsZero() {
			k := SummaryKey{dayIn(US(o.PaidAt), loc), o.SaleID}
			s := sum[k]
			s.Paid++
			s.Revenue += o.AmountCents
			sum[k] = s
		}
		if !o.ExpiredAt.IsZero() {
			k := SummaryKey{dayIn(US(o.ExpiredAt), loc), o.SaleID}
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

// AssertDailyMatchesFold checks the daily tables against the fold of envs,
// with business days in loc.
func AssertDailyMatchesFold(t testing.TB, pool *pgxpool.Pool, envs [][]byte, loc *time.Location) {
	t.Helper()
	gotOrders, gotSum := readDaily(t, pool)
	wantOrders, wantSum := FoldDaily(Fold(t, envs), loc)
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
		if _, ok := wantSum[k]; !ok && g != (SummaryRow{}) {
			report("summary %v: %+v in the table, not in the fold", k, g)
		}
	}
	if diff > 0 {
		t.Fatalf("daily read model differs from the fold in %d rows", diff)
	}
}

// SnapshotAll is every read model table as text, without updated_at, for
// "identical to a clean pass" checks.
func SnapshotAll(t testing.TB, pool *pgxpool.Pool) string {
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

// Dup is s with events published again, right away or a little later
// (after later events of the same aggregate), as an at-least-once relay does.
func (s *Stream) Dup(seed uint64) *Stream {
	dup := &Stream{}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range s.Envs {
		dup.Envs, dup.Keys = append(dup.Envs, s.Envs[i]), append(dup.Keys, s.Keys[i])
		if rng.IntN(3) == 0 {
			j := min(len(s.Envs)-1, i+rng.IntN(30))
			for k := i + 1; k <= j; k++ {
				if s.Keys[k] == s.Keys[i] {
					dup.Envs, dup.Keys = append(dup.Envs, s.Envs[k]), append(dup.Keys, s.Keys[k])
				}
			}
			dup.Envs, dup.Keys = append(dup.Envs, s.Envs[i]), append(dup.Keys, s.Keys[i])
		}
	}
	return dup
}
