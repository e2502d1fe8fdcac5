package eventstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

// TestLookupsReadLess: a lookup by order reads only the order's partition,
// and one by sale only the sale's partition and then the sale's life; both
// still find every event they should.
func TestLookupsReadLess(t *testing.T) {
	t.Parallel()
	const partitions, orders = 8, 200
	brokers := testenv.Kafka(t, partitions)
	cl := producer(t, brokers)
	base := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	add := func(e domain.Event, at time.Time) {
		v, err := domain.Encode(e, at)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(e.AggregateID()), Value: v, Timestamp: at})
	}
	// Two sales a day apart, each with its orders inside its window.
	for d, sale := range []string{"s-old", "s-new"} {
		start := base.Add(time.Duration(d) * 24 * time.Hour)
		add(domain.SaleCreated{SaleID: sale, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
			Name: "n", Stock: orders, PriceCents: 1, StartsAt: start, EndsAt: start.Add(time.Minute),
			PerUserLimit: 1, PayWithinS: 60, Currency: "CNY",
		}}}, start)
		for i := range orders {
			at := start.Add(time.Duration(i) * 100 * time.Millisecond)
			o := domain.OrderID(sale, fmt.Sprint(i))
			add(domain.StockReserved{SaleID: sale, OrderID: o, UserID: fmt.Sprint("u", i), Quantity: 1}, at)
			add(domain.OrderPlaced{OrderID: o, SaleID: sale, UserID: fmt.Sprint("u", i), Quantity: 1, PayBy: at.Add(time.Minute)}, at)
		}
		add(domain.SaleEnded{SaleID: sale, Reason: domain.EndReasonWindowClosed}, start.Add(time.Minute))
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	total := int64(len(recs))
	lg, err := eventstore.NewLog(eventstore.LogConfig{Brokers: brokers, Topic: testTopic})
	if err != nil {
		t.Fatal(err)
	}
	order := domain.OrderID("s-old", "7")
	st, err := lg.Events(context.Background(), eventstore.Query{OrderID: order}, func(eventstore.Event) error { return nil })
	if err != nil || st.Matched != 2 || st.Scanned >= total/2 {
		t.Errorf("order lookup: %+v, %v; want 2 events from one partition of %d records", st, err, total)
	}
	st, err = lg.Events(context.Background(), eventstore.Query{SaleID: "s-old"}, func(e eventstore.Event) error {
		if domain.RefsOf(e.Decoded).SaleID != "s-old" {
			t.Errorf("sale lookup passed %s", e.Envelope.ID)
		}
		return nil
	})
	if want := int64(2 + 2*orders); err != nil || st.Matched != want || st.Scanned >= total*3/4 {
		t.Errorf("sale lookup: %+v, %v; want %d events, far fewer than %d records looked at", st, err, want, total)
	}
}
