package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
)

var t0 = time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)

type fixture struct {
	rdb   *redis.Client
	clock *commands.ManualClock
	gate  *commands.Gate
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	g, err := commands.NewGate(commands.GateConfig{Clock: clock, SaleCacheTTL: time.Nanosecond}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return fixture{rdb: rdb, clock: clock, gate: g}
}

func (f fixture) sale(t *testing.T, stock, limit int64, payWithin time.Duration) commands.SaleView {
	t.Helper()
	s, err := f.gate.CreateSale(context.Background(), commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: stock, PriceCents: 1999, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: limit, PayWithinS: int64(payWithin / time.Second),
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fold reads every outbox entry the gate wrote, decodes each event strictly and
// folds them: the log as the relay would publish it.
func (f fixture) fold(t *testing.T) *domain.Fold {
	t.Helper()
	ctx := context.Background()
	streams, err := f.rdb.SMembers(ctx, f.gate.OutboxesKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	fd := domain.NewFold()
	for _, s := range streams {
		entries, err := f.rdb.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			for i := 1; i <= len(e.Values); i++ {
				raw, ok := e.Values[strconv.Itoa(i)].(string)
				if !ok {
					t.Fatalf("outbox entry %s lacks field %d: %v", e.ID, i, e.Values)
				}
				env, ev, err := domain.Decode([]byte(raw))
				if err != nil {
					t.Fatalf("outbox entry %s: %v", e.ID, err)
				}
				fd.Apply(env, ev)
			}
		}
	}
	if v := fd.Violations(); len(v) > 0 {
		t.Fatalf("the log breaks invariants:\n%v", v)
	}
	return fd
}

func TestPurchaseNeverOversells(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sale := f.sale(t, 10, 1, time.Minute)
	const users = 200
	var (
		wg       sync.WaitGroup
		reserved atomic.Int64
		soldOut  atomic.Int64
		mu       sync.Mutex
		orders   = map[string]string{}
	)
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i)
			r, err := f.gate.Purchase(context.Background(), commands.Purchase{SaleID: sale.ID, UserID: user})
			switch {
			case errors.Is(err, domain.ErrSoldOut):
				soldOut.Add(1)
			case err != nil:
				t.Errorf("purchase %s: %v", user, err)
			default:
				reserved.Add(1)
				mu.Lock()
				orders[user] = r.OrderID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := reserved.Load(); got != 10 {
		t.Errorf("reserved = %d, want 10", got)
	}
	if got := soldOut.Load(); got != users-10 {
		t.Errorf("sold out = %d, want %d", got, users-10)
	}
	view, err := f.gate.Sale(context.Background(), sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	if view.Remaining != 0 || view.State != commands.SaleSoldOut {
		t.Errorf("sale after the burst: remaining %d state %s, want 0 sold_out", view.Remaining, view.State)
	}
	fd := f.fold(t)
	s := fd.Sales[sale.ID]
	if s.ReservedQty != 10 || s.Remaining() != 0 || len(fd.Orders) != 10 {
		t.Errorf("fold: reserved %d remaining %d orders %d, want 10 0 10", s.ReservedQty, s.Remaining(), len(fd.Orders))
	}
	for user, id := range orders {
		if o := fd.Orders[id]; o == nil || o.UserID != user || o.Status != domain.StatusReserved {
			t.Errorf("order %s of %s not in the log as reserved: %+v", id, user, o)
		}
	}
	// A retry by a buyer answers with the same order, even though the sale is sold out.
	for user, id := range orders {
		r, err := f.gate.Purchase(context.Background(), commands.Purchase{SaleID: sale.ID, UserID: user})
		if err != nil || r.OrderID != id || !r.Replayed {
			t.Errorf("retry of %s = %+v, %v; want replay of %s", user, r, err, id)
		}
		break
	}
}

func TestPurchaseDecisions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.sale(t, 5, 2, time.Minute)
	buy := func(user, key string, qty int64) (commands.Reservation, error) {
		return f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: user, Quantity: qty, IdempotencyKey: key})
	}
	first, err := buy("alice", "k1", 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		user, key string
		qty       int64
		wantErr   error
		wantOrder string // for replays
	}{
		{"same key replays", "alice", "k1", 1, nil, first.OrderID},
		{"new key within limit", "alice", "k2", 1, nil, ""},
		{"new key over the limit", "alice", "k3", 1, domain.ErrLimitReached, ""},
		{"quantity over the limit", "bob", "", 3, domain.ErrLimitReached, ""},
		{"zero quantity means one", "bob", "", 0, nil, ""},
		{"quantity too large", "carol", "", domain.MaxQuantity + 1, &domain.ValidationError{}, ""},
		{"one more", "dave", "", 1, nil, ""},
		{"insufficient", "erin", "", 2, domain.ErrInsufficientStock, ""},
		{"last unit", "erin", "", 1, nil, ""},
		{"sold out", "frank", "", 1, domain.ErrSoldOut, ""},
	}
	for _, tc := range tests {
		r, err := buy(tc.user, tc.key, tc.qty)
		var ve *domain.ValidationError
		switch {
		case tc.wantErr == nil && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.wantErr != nil && errors.As(tc.wantErr, &ve):
			if !errors.As(err, &ve) {
				t.Errorf("%s: err = %v, want a validation error", tc.name, err)
			}
		case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
		case tc.wantOrder != "" && (r.OrderID != tc.wantOrder || !r.Replayed):
			t.Errorf("%s: order %s replayed=%v, want replay of %s", tc.name, r.OrderID, r.Replayed, tc.wantOrder)
		}
	}
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: "nope", UserID: "x"}); !errors.Is(err, domain.ErrSaleNotFound) {
		t.Errorf("unknown sale: %v", err)
	}
	fd := f.fold(t)
	if got := fd.Sales[sale.ID].ReservedQty; got != 5 {
		t.Errorf("reserved in the log = %d, want 5", got)
	}
}

func TestSaleWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.clock.Set(t0.Add(-time.Minute))
	sale := f.sale(t, 5, 1, time.Minute)
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "a"}); !errors.Is(err, domain.ErrNotStarted) {
		t.Errorf("before the start: %v, want not started", err)
	}
	f.clock.Set(t0)
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "a"}); err != nil {
		t.Errorf("at the start: %v", err)
	}
	f.clock.Set(t0.Add(time.Hour))
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "b"}); !errors.Is(err, domain.ErrEnded) {
		t.Errorf("at the end: %v, want ended", err)
	}
}

func TestPay(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.sale(t, 5, 1, time.Minute)
	a, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	pay := func(order, user, ref string) (commands.Payment, error) {
		return f.gate.Pay(ctx, commands.Pay{OrderID: order, UserID: user, PaymentRef: ref})
	}
	var ve *domain.ValidationError
	if _, err := pay(a.OrderID, "alice", " "); !errors.As(err, &ve) {
		t.Errorf("empty payment_ref: %v", err)
	}
	if _, err := pay(a.OrderID, "mallory", "p1"); !errors.Is(err, domain.ErrOrderNotFound) {
		t.Errorf("someone else's order: %v", err)
	}
	if _, err := pay(sale.ID+"-nosuch", "alice", "p1"); !errors.Is(err, domain.ErrOrderNotFound) {
		t.Errorf("unknown order: %v", err)
	}
	f.clock.Advance(10 * time.Second)
	p1, err := pay(a.OrderID, "alice", "p1")
	if err != nil || p1.Status != domain.StatusPaid {
		t.Fatalf("pay: %+v %v", p1, err)
	}
	f.clock.Advance(time.Second)
	if p2, err := pay(a.OrderID, "alice", "p1"); err != nil || p2 != p1 {
		t.Errorf("pay again with the same ref = %+v %v, want %+v", p2, err, p1)
	}
	if _, err := pay(a.OrderID, "alice", "p2"); !errors.Is(err, domain.ErrAlreadyPaid) {
		t.Errorf("pay with another ref: %v", err)
	}
	f.clock.Advance(time.Minute)
	if _, err := pay(b.OrderID, "bob", "p3"); !errors.Is(err, domain.ErrExpired) {
		t.Errorf("pay past the deadline: %v", err)
	}
	fd := f.fold(t)
	if o := fd.Orders[a.OrderID]; o.Status != domain.StatusPaid || o.PaymentRef != "p1" {
		t.Errorf("log: order a %+v", o)
	}
	if o := fd.Orders[b.OrderID]; o.Status != domain.StatusReserved {
		t.Errorf("log: order b %+v, want still reserved until swept", o)
	}
}

// TestPayExpireRace: many orders reach their deadline while payers and two
// sweepers race. Every order must end in exactly one terminal state and the
// stock must add up.
func TestPayExpireRace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const n = 150
	sale := f.sale(t, n, 1, time.Minute)
	ids := make([]string, n)
	for i := range n {
		r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("u%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = r.OrderID
	}
	// Half the orders are paid a hair before the deadline, half at it: the
	// sweepers and payers overlap on the boundary.
	f.clock.Advance(time.Minute - time.Millisecond)
	sweeper2, err := commands.NewGate(commands.GateConfig{Clock: f.clock}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg            sync.WaitGroup
		paid, expired atomic.Int64
		payLosses     atomic.Int64
	)
	start := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := w; i < n; i += 4 {
				_, err := f.gate.Pay(ctx, commands.Pay{OrderID: ids[i], UserID: fmt.Sprintf("u%d", i), PaymentRef: "ref"})
				switch {
				case err == nil:
					paid.Add(1)
				case errors.Is(err, domain.ErrExpired):
					payLosses.Add(1)
				default:
					t.Errorf("pay %s: %v", ids[i], err)
				}
				if i == n/2 {
					f.clock.Advance(time.Millisecond) // the deadline passes mid-race
				}
			}
		}()
	}
	for _, g := range []*commands.Gate{f.gate, sweeper2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 20 {
				r, err := g.Sweep(ctx)
				if err != nil {
					t.Errorf("sweep: %v", err)
				}
				expired.Add(int64(r.Expired))
			}
		}()
	}
	close(start)
	wg.Wait()
	// Whatever is still reserved is past its deadline now; a last sweep settles it.
	f.clock.Advance(time.Second)
	r, err := f.gate.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expired.Add(int64(r.Expired))

	if got := paid.Load() + expired.Load(); got != n {
		t.Errorf("paid %d + expired %d = %d, want %d (one winner per order)", paid.Load(), expired.Load(), got, n)
	}
	if payLosses.Load()+paid.Load() != n {
		t.Errorf("every payer got an answer: paid %d, told expired %d", paid.Load(), payLosses.Load())
	}
	fd := f.fold(t) // fails on two terminal states for one order
	s := fd.Sales[sale.ID]
	if s.PaidQty != paid.Load() || s.ExpiredQty != expired.Load() {
		t.Errorf("log: paid %d expired %d, want %d %d", s.PaidQty, s.ExpiredQty, paid.Load(), expired.Load())
	}
	view, err := f.gate.Sale(ctx, sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(n) - s.PaidQty - s.Outstanding(); view.Remaining != want || s.Remaining() != want {
		t.Errorf("remaining: gate %d, log %d, want initial - paid - reserved = %d", view.Remaining, s.Remaining(), want)
	}
	t.Logf("paid %d, expired %d, payers told expired %d", paid.Load(), expired.Load(), payLosses.Load())
}

func TestEndSale(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.sale(t, 10, 1, time.Minute)
	r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	ended, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: sale.ID})
	if err != nil {
		t.Fatal(err)
	}
	if ended.State != commands.SaleEnded || ended.Unsold != 9 || ended.Remaining != 0 {
		t.Errorf("ended sale = %+v, want ended with 9 unsold", ended)
	}
	if again, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: sale.ID}); err != nil || again.Unsold != 9 {
		t.Errorf("ending again = %+v, %v; want the same sale", again, err)
	}
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "b"}); !errors.Is(err, domain.ErrEnded) {
		t.Errorf("purchase after the end: %v", err)
	}
	// The reservation expires after the end: its unit goes to regular inventory, not the closed pool.
	f.clock.Advance(2 * time.Minute)
	if res, err := f.gate.Sweep(ctx); err != nil || res.Expired != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	fd := f.fold(t)
	s := fd.Sales[sale.ID]
	if !s.Ended || s.Unsold != 9 || s.Remaining() != 0 || s.Released() != 10 {
		t.Errorf("log: ended %v unsold %d remaining %d released %d, want true 9 0 10", s.Ended, s.Unsold, s.Remaining(), s.Released())
	}
	if o := fd.Orders[r.OrderID]; o.Status != domain.StatusExpired {
		t.Errorf("order %+v", o)
	}
	if _, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: "nosuch"}); !errors.Is(err, domain.ErrSaleNotFound) {
		t.Errorf("end unknown sale: %v", err)
	}
}

func TestSweeperEndsClosedWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.sale(t, 3, 1, time.Minute)
	f.clock.Set(t0.Add(time.Hour))
	res, err := f.gate.Sweep(ctx)
	if err != nil || res.Ended != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	fd := f.fold(t)
	if s := fd.Sales[sale.ID]; !s.Ended || s.EndReason != domain.EndReasonWindowClosed || s.Unsold != 3 {
		t.Errorf("log: %+v", s)
	}
	ids := make([]string, 0, len(fd.Sales))
	for id := range fd.Sales {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) != 1 {
		t.Errorf("sales in the log: %v", ids)
	}
}

// TestSaleViewJSON pins the member order of the sale answer (POST and GET
// /v1/sales): the terms, the live counters, then the protections and the
// shard count, as clients have always been answered. SaleView embeds the
// domain's types, so a field moved there would move here.
func TestSaleViewJSON(t *testing.T) {
	at := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	v := commands.SaleView{
		ID: "s1",
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: 10, PriceCents: 1999, StartsAt: at, EndsAt: at.Add(time.Hour),
			PerUserLimit: 2, PayWithinS: 900, Currency: "EUR",
		},
		Remaining: 7, State: commands.SaleEnded, EndReason: domain.EndReasonEarly, Unsold: 7, ServerTime: at,
		Protections: domain.Protections{UserIntervalMS: 1000, RequireToken: true},
		Shards:      2,
	}
	const want = `{"id":"s1","name":"phone","stock":10,"price_cents":1999,` +
		`"starts_at":"2026-11-11T20:00:00Z","ends_at":"2026-11-11T21:00:00Z","per_user_limit":2,"pay_within_s":900,` +
		`"currency":"EUR","remaining":7,"state":"ended","end_reason":"ended_early","unsold":7,"server_time":"2026-11-11T20:00:00Z",` +
		`"user_interval_ms":1000,"require_token":true,"shards":2}`
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("sale view JSON\n got %s\nwant %s", got, want)
	}
}
