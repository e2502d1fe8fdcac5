package readmodels_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/readmodels"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

// returnsLog is a log with every way units go back to everyday inventory:
// sales ending with an unsold pool (or none), orders expiring before the end
// (their units back into the sale's pool: no return) and after it.
func returnsLog(t *testing.T) *readmodelstest.Stream {
	t.Helper()
	st := &readmodelstest.Stream{}
	at := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	tick := func() time.Time { at = at.Add(time.Second); return at }
	for s := range 6 {
		sale := fmt.Sprintf("sale%d", s)
		stock := int64(10)
		if s == 4 {
			stock = 6 // sold out at the end: nothing unsold, but late expiries
		}
		st.Add(t, domain.SaleCreated{SaleID: sale, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
			Name: sale, Stock: stock, PriceCents: 100, Currency: "CNY", StartsAt: at,
			EndsAt: at.Add(time.Hour), PerUserLimit: 5, PayWithinS: 900,
		}}}, tick())
		var late []string
		for o := range 4 {
			order := domain.OrderID(sale, fmt.Sprintf("o%d", o))
			user := fmt.Sprintf("u%d", o)
			st.Add(t, domain.StockReserved{SaleID: sale, OrderID: order, UserID: user, Quantity: 2}, tick())
			st.Add(t, domain.OrderPlaced{OrderID: order, SaleID: sale, UserID: user, Quantity: 2, PriceCents: 100, AmountCents: 200,
				PayBy: at.Add(15 * time.Minute)}, tick())
			switch o {
			case 0: // paid
				st.Add(t, domain.OrderPaid{OrderID: order, SaleID: sale, UserID: user, Quantity: 2, AmountCents: 200, PaymentRef: "p"}, tick())
			case 1: // expired while the sale ran
				st.Add(t, domain.OrderExpired{OrderID: order, SaleID: sale, UserID: user, Quantity: 2}, tick())
				st.Add(t, domain.StockReleased{SaleID: sale, OrderID: order, Quantity: 2, ToPool: true}, tick())
			default: // still reserved at the end, expired after it
				late = append(late, order)
			}
		}
		if s == 5 {
			continue // a sale still running: nothing handed back
		}
		unsold := stock - 8 + 2 // stock - reserved + released to the pool
		st.Add(t, domain.SaleEnded{SaleID: sale, Unsold: unsold, Reason: domain.EndReasonWindowClosed}, tick())
		for i, order := range late {
			st.Add(t, domain.OrderExpired{OrderID: order, SaleID: sale, UserID: fmt.Sprintf("u%d", i+2), Quantity: 2}, tick())
			st.Add(t, domain.StockReleased{SaleID: sale, OrderID: order, Quantity: 2}, tick())
		}
	}
	return st
}

// pullAll reads the whole feed a page of size at a time, as the everyday
// system would, and checks each partition's positions only go up.
func pullAll(t *testing.T, d *readmodels.Daily, size int) []readmodels.Return {
	t.Helper()
	var all []readmodels.Return
	cursor := readmodels.ReturnsCursor{}
	for range 1000 {
		page, err := d.Returns(context.Background(), cursor, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Returns) > size {
			t.Fatalf("a page of %d returns, asked for %d", len(page.Returns), size)
		}
		all = append(all, page.Returns...)
		if cursor, err = readmodels.ParseReturnsCursor(page.Cursor); err != nil {
			t.Fatalf("the feed's own cursor %q: %v", page.Cursor, err)
		}
		if !page.More {
			return all
		}
	}
	t.Fatal("the feed never ended")
	return nil
}

func TestReturnsFeedMatchesFold(t *testing.T) {
	t.Parallel()
	st := returnsLog(t)
	f := readmodelstest.Fold(t, st.Envs)
	if v := f.Violations(); len(v) > 0 {
		t.Fatalf("the test's log is unsound: %v", v)
	}
	want := map[string]int64{}
	for id, s := range f.Sales {
		if n := s.Unsold + s.ReleasedQty - s.PoolQty; n > 0 {
			want[id] = n
		}
	}

	// Live: duplicates, small batches.
	pool := readmodelstest.NewPool(t)
	d := readmodelstest.NewDaily(t, pool)
	a := readmodelstest.NewApplier(t, pool, d)
	dup := st.Dup(7)
	recs := dup.Records(topic, 4)
	readmodelstest.ApplyAll(t, a, readmodelstest.SmallBatches(recs, rand.New(rand.NewPCG(1, 2))))
	got, err := d.ReturnedBySale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(got, want) {
		t.Fatalf("returned by sale:\n got  %v\n fold %v", got, want)
	}

	// Pulled two at a time: every return once, each partition in log order.
	feed := pullAll(t, d, 2)
	var sum int64
	ids := map[string]bool{}
	last := map[string]int{}
	for _, r := range feed {
		if ids[r.EventID] {
			t.Errorf("event %s returned twice", r.EventID)
		}
		ids[r.EventID] = true
		sum += r.Quantity
		var part, off int
		if _, err := fmt.Sscanf(r.Position, "%d:%d", &part, &off); err != nil {
			t.Errorf("position %q: %v", r.Position, err)
		}
		if prev, ok := last[fmt.Sprint(part)]; ok && off <= prev {
			t.Errorf("partition %d: position %d after %d", part, off, prev)
		}
		last[fmt.Sprint(part)] = off
		if r.Reason == readmodels.ReturnExpiredAfterEnd && r.OrderID == "" {
			t.Errorf("a late expiry without its order: %+v", r)
		}
	}
	var wantSum int64
	for _, n := range want {
		wantSum += n
	}
	// 5 ended sales: 4 with an unsold pool, each with 2 late expiries.
	if sum != wantSum || len(feed) != 4+2*5 {
		t.Errorf("the feed holds %d returns of %d units; want %d returns of %d units", len(feed), sum, 4+2*5, wantSum)
	}

	// Rebuilt from the log in other batches: the same rows at the same
	// positions, so a reader's cursor means the same after a rebuild.
	pool2 := readmodelstest.NewPool(t)
	d2 := readmodelstest.NewDaily(t, pool2)
	readmodelstest.ApplyAll(t, readmodelstest.NewApplier(t, pool2, d2), [][]eventstore.Record{recs})
	if again := pullAll(t, d2, 100); !slices.Equal(again, feed) {
		t.Errorf("the rebuilt feed differs:\n%v\n%v", again, feed)
	}
	// A reader that stopped half-way continues where it was.
	half, err := d.Returns(context.Background(), readmodels.ReturnsCursor{}, len(feed)/2)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := readmodels.ParseReturnsCursor(half.Cursor)
	rest, err := d2.Returns(context.Background(), c, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(half.Returns, rest.Returns...); !slices.Equal(got, feed) {
		t.Errorf("half from the live table and the rest from the rebuilt one:\n%v\nwant\n%v", got, feed)
	}
}

func TestReturnsCursor(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "0:5", "0:5,3:0,12:999999"} {
		c, err := readmodels.ParseReturnsCursor(s)
		if err != nil || c.String() != s {
			t.Errorf("ParseReturnsCursor(%q) = %v, %v; String %q", s, c, err, c.String())
		}
	}
	for _, s := range []string{"x", "0:", ":1", "-1:2", "0:-2", "0:1,0:2", "0:1;1:2", "99999999999:1"} {
		if _, err := readmodels.ParseReturnsCursor(s); err == nil {
			t.Errorf("ParseReturnsCursor(%q) accepted", s)
		}
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
