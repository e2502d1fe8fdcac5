package projections_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

// poisoned is a real projection that rejects, for good, the events whose ids
// are in bad: a bug in the projection, until it is "fixed" (bad emptied).
type poisoned struct {
	projections.Projection
	mu  sync.Mutex
	bad map[string]bool
}

func (p *poisoned) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range batch {
		if p.bad[e.Envelope.ID] {
			return fmt.Errorf("%w: cannot apply %s", projections.ErrPoison, e.Envelope.ID)
		}
	}
	return p.Projection.Apply(ctx, tx, batch)
}

func (p *poisoned) fix() {
	p.mu.Lock()
	p.bad = nil
	p.mu.Unlock()
}

// TestDeadLetterCycle: poison → parked → the later events of that order
// held while other orders flow on → the bug fixed → retried → applied, the
// held events then applied in order; all live, through the Consumer, on
// Kafka and Postgres.
func TestDeadLetterCycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	brokers := kafkaBrokers(t, 2)
	ensureDLQ(t, brokers)
	pool := readmodelstest.NewPool(t)
	at := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	const sale, a, b = "s1", "s1-a", "s1-b"
	var st readmodelstest.Stream
	st.Add(t, domain.SaleCreated{SaleID: sale, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
		Name: "phone", Stock: 10, PriceCents: 100, StartsAt: at, EndsAt: at.Add(time.Hour),
		PerUserLimit: 2, PayWithinS: 900, Currency: "CNY",
	}}}, at)
	for i, o := range []string{a, b} {
		u := fmt.Sprint("u", i)
		st.Add(t, domain.StockReserved{SaleID: sale, OrderID: o, UserID: u, Quantity: 1}, at.Add(time.Second))
		st.Add(t, domain.OrderPlaced{OrderID: o, SaleID: sale, UserID: u, Quantity: 1, PriceCents: 100, AmountCents: 100, PayBy: at.Add(time.Hour)}, at.Add(time.Second))
	}
	st.Add(t, domain.OrderPaid{OrderID: a, SaleID: sale, UserID: "u0", Quantity: 1, AmountCents: 100, PaymentRef: "pa"}, at.Add(2*time.Second))
	publish(t, brokers, st.Envs)

	proj := &poisoned{Projection: readmodelstest.NewOrders(t, pool), bad: map[string]bool{domain.EventID(a, domain.TypeOrderPlaced): true}}
	_, stop := startConsumer(t, projections.ConsumerConfig{}, pool, brokers, proj)
	waitCaughtUp(t, pool, brokers, proj.Name(), time.Minute)

	dls, err := projections.NewDeadLetters(pool, proj, "")
	if err != nil {
		t.Fatal(err)
	}
	open, err := dls.List(ctx, "open", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 || open[0].EventID != domain.EventID(a, domain.TypeOrderPlaced) || open[0].Status != projections.StatusParked ||
		open[1].EventID != domain.EventID(a, domain.TypeOrderPaid) || open[1].Status != projections.StatusHeld || open[1].Aggregate != a {
		t.Fatalf("open letters %+v, want a's OrderPlaced parked and its OrderPaid held", open)
	}
	if got := orderStatus(t, pool, b); got != domain.StatusReserved {
		t.Errorf("order b (no letter) is %q, want reserved: other orders flow on", got)
	}
	if got := orderStatus(t, pool, a); got == domain.StatusPaid {
		t.Errorf("order a is paid although its OrderPlaced is parked")
	}
	// While a is parked, a later event of b still applies, a later one of a
	// is held too.
	var more readmodelstest.Stream
	more.Add(t, domain.OrderPaid{OrderID: b, SaleID: sale, UserID: "u1", Quantity: 1, AmountCents: 100, PaymentRef: "pb"}, at.Add(3*time.Second))
	publish(t, brokers, more.Envs)
	waitCaughtUp(t, pool, brokers, proj.Name(), time.Minute)
	if got := orderStatus(t, pool, b); got != domain.StatusPaid {
		t.Errorf("order b is %q after its OrderPaid, want paid", got)
	}

	// A retry before the fix parks it again and changes nothing.
	res, err := dls.Retry(ctx, open[0].ID)
	if err != nil || res.Parked != open[0].ID || len(res.Applied) != 0 || res.Held != 1 {
		t.Fatalf("retry before the fix: %+v, %v", res, err)
	}
	proj.fix()
	res, err = dls.Retry(ctx, open[0].ID)
	if err != nil || res.Parked != 0 || len(res.Applied) != 2 || res.Applied[0] != open[0].ID || res.Applied[1] != open[1].ID {
		t.Fatalf("retry after the fix: %+v, %v; want both letters applied in order", res, err)
	}
	if got := orderStatus(t, pool, a); got != domain.StatusPaid {
		t.Errorf("order a is %q after the retry, want paid (OrderPlaced, then the held OrderPaid)", got)
	}
	if open, err := dls.List(ctx, "open", 10); err != nil || len(open) != 0 {
		t.Errorf("open letters after the retry: %+v, %v", open, err)
	}
	if _, err := dls.Retry(ctx, open[0].ID); err == nil {
		t.Error("a resolved letter was retried again")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The read model is now the fold of the whole log.
	readmodelstest.AssertMatchesFold(t, pool, append(st.Envs, more.Envs...))
}

// TestDeadLetterDiscard: discarding the parked letter releases the events
// held behind it, which apply in order.
func TestDeadLetterDiscard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := readmodelstest.NewPool(t)
	at := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	var st readmodelstest.Stream
	st.Add(t, domain.SaleCreated{SaleID: "s", SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
		Name: "x", Stock: 5, PriceCents: 1, StartsAt: at, EndsAt: at.Add(time.Hour),
		PerUserLimit: 1, PayWithinS: 60, Currency: "CNY",
	}}}, at)
	st.Add(t, domain.StockReserved{SaleID: "s", OrderID: "s-a", UserID: "u", Quantity: 1}, at)
	st.Add(t, domain.OrderPlaced{OrderID: "s-a", SaleID: "s", UserID: "u", Quantity: 1, PriceCents: 1, AmountCents: 1, PayBy: at.Add(time.Minute)}, at)
	st.Add(t, domain.OrderPaid{OrderID: "s-a", SaleID: "s", UserID: "u", Quantity: 1, AmountCents: 1, PaymentRef: "p"}, at)
	proj := &poisoned{Projection: readmodelstest.NewOrders(t, pool), bad: map[string]bool{"s-a/StockReserved": true}}
	app := readmodelstest.NewApplier(t, pool, proj)
	if _, err := app.Apply(ctx, st.Records(projections.DefaultTopic, 1)); err != nil {
		t.Fatal(err)
	}
	dls, err := projections.NewDeadLetters(pool, proj, "")
	if err != nil {
		t.Fatal(err)
	}
	open, err := dls.List(ctx, "open", 10)
	if err != nil || len(open) != 3 || open[0].Status != projections.StatusParked || open[2].Status != projections.StatusHeld {
		t.Fatalf("open letters %+v, %v; want the reservation parked and the place and pay held", open, err)
	}
	res, err := dls.Discard(ctx, open[0].ID)
	if err != nil || res.Discarded != open[0].ID || len(res.Applied) != 2 {
		t.Fatalf("discard: %+v, %v", res, err)
	}
	if got := orderStatus(t, pool, "s-a"); got != domain.StatusPaid {
		t.Errorf("order is %q after the discard, want paid", got)
	}
	l, err := dls.Get(ctx, open[0].ID)
	if err != nil || l.Status != projections.StatusDiscarded || len(l.Payload) == 0 {
		t.Errorf("discarded letter: %+v, %v", l, err)
	}
}

func orderStatus(t *testing.T, pool *pgxpool.Pool, id string) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `SELECT status FROM orders WHERE order_id = $1`, id).Scan(&s)
	if err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	return s
}
