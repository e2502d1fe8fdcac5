package commands_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// snapshot is every key of the gate but the outbox streams (whose events are
// in the log), as comparable text.
func snapshot(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "stream":
			continue
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "set":
			var m []string
			m, err = rdb.SMembers(ctx, k).Result()
			slices.Sort(m)
			v = m
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		default:
			v, err = rdb.Get(ctx, k).Result()
		}
		if err != nil {
			t.Fatal(err)
		}
		out[k] = fmt.Sprint(v)
	}
	return out
}

// mapDiff lists the keys whose values differ between a and b.
func mapDiff(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, fmt.Sprintf("%s:\n  - %s\n  + %s", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s:\n  - (none)\n  + %s", k, v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// foldInto applies every event in the gate's outboxes to fd: the log as the
// relay would publish it.
func foldInto(t *testing.T, f fixture, fd *domain.Fold) {
	t.Helper()
	ctx := context.Background()
	streams, err := f.rdb.SMembers(ctx, f.gate.OutboxesKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		entries, err := f.rdb.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			for i := 1; i <= len(e.Values); i++ {
				env, ev, err := domain.Decode([]byte(e.Values[strconv.Itoa(i)].(string)))
				if err != nil {
					t.Fatal(err)
				}
				fd.Apply(env, ev)
			}
		}
	}
}

// trimOutboxes empties every outbox, as the relay does once Kafka has the events.
func trimOutboxes(t *testing.T, f fixture) {
	t.Helper()
	ctx := context.Background()
	streams, err := f.rdb.SMembers(ctx, f.gate.OutboxesKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		if err := f.rdb.XTrimMaxLen(ctx, s, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreFromLog runs a sale through every transition, loses Redis, and
// restores the gate from the fold of its events: every key comes back field
// for field, and the gate answers exactly as before.
func TestRestoreFromLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	buy := func(sale, user, key string, q int64) commands.Reservation {
		t.Helper()
		r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale, UserID: user, IdempotencyKey: key, Quantity: q})
		if err != nil {
			t.Fatalf("purchase by %s: %v", user, err)
		}
		return r
	}
	a := f.sale(t, 10, 3, time.Minute)
	b := f.sale(t, 5, 1, time.Minute)
	alice := buy(a.ID, "alice", "", 2)
	bob1 := buy(a.ID, "bob", "k1", 1)
	buy(a.ID, "carol", "", 1)
	if _, err := f.gate.Pay(ctx, commands.Pay{OrderID: alice.OrderID, UserID: "alice", PaymentRef: "pay-a"}); err != nil {
		t.Fatal(err)
	}
	frank := buy(b.ID, "frank", "", 1)
	f.clock.Advance(2 * time.Minute)
	if res, err := f.gate.Sweep(ctx); err != nil || res.Expired != 3 {
		t.Fatalf("sweep: %+v, %v", res, err)
	}
	bob2 := buy(a.ID, "bob", "k2", 1)
	erin := buy(a.ID, "erin", "", 1)
	gina := buy(b.ID, "gina", "", 1)
	if _, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: b.ID}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Minute)
	buy(a.ID, "hank", "", 1) // reserved just now: not due at the sweep below
	if _, err := f.gate.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// bob2, erin and gina (gina: after her sale ended, to inventory) expired;
	// one more purchase stays reserved.
	ivy := buy(a.ID, "ivy", "", 1)

	before := snapshot(t, f.rdb)
	saleBefore, err := f.gate.Sale(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	fd := domain.NewFold()
	foldInto(t, f, fd)
	if v := fd.Violations(); len(v) > 0 {
		t.Fatal(v)
	}

	// Redis is lost.
	if err := f.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rep, err := f.gate.Restore(ctx, fd, commands.RestoreOptions{BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	if diff := mapDiff(before, snapshot(t, f.rdb)); diff != "" {
		t.Fatalf("restored gate differs (-before +after):\n%s", diff)
	}
	if len(rep.Sales) != 2 || len(rep.Warnings) != 0 {
		t.Errorf("report %+v", rep)
	}
	for _, sr := range rep.Sales {
		if sr.Existed || sr.HadRemaining {
			t.Errorf("sale %s: reported as existing before", sr.SaleID)
		}
		if sr.SaleID == a.ID && (sr.RemainingAfter != saleBefore.Remaining || sr.Orders != 7 || sr.Reserved != 2) {
			t.Errorf("sale a: %+v, want remaining %d, 7 orders, 2 reserved", sr, saleBefore.Remaining)
		}
	}

	// The gate answers as before; a fresh gate, as a restarted node would
	// be, so no answer comes from the old one's memory.
	f.gate, err = commands.NewGate(commands.GateConfig{Clock: f.clock, SaleCacheTTL: time.Nanosecond}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.gate.Sale(ctx, a.ID)
	if err != nil || got.Remaining != saleBefore.Remaining || got.Currency != "CNY" {
		t.Errorf("sale after restore: %+v, %v; want remaining %d", got, err, saleBefore.Remaining)
	}
	for _, tc := range []struct {
		user, key, order, status string
	}{
		{"alice", "", alice.OrderID, domain.StatusPaid},
		{"bob", "k1", bob1.OrderID, domain.StatusExpired},
		{"bob", "k2", bob2.OrderID, domain.StatusExpired},
		{"ivy", "", ivy.OrderID, domain.StatusReserved},
	} {
		r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: a.ID, UserID: tc.user, IdempotencyKey: tc.key})
		if err != nil || !r.Replayed || r.OrderID != tc.order || r.Status != tc.status {
			t.Errorf("retry by %s key %q: %+v, %v; want order %s %s", tc.user, tc.key, r, err, tc.order, tc.status)
		}
	}
	if r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: b.ID, UserID: "frank"}); err != nil || r.OrderID != frank.OrderID {
		t.Errorf("retry by frank: %+v, %v", r, err)
	}
	// An expired reservation stays expired; a restored one can be paid.
	for _, o := range []commands.Reservation{erin, gina} {
		if _, err := f.gate.Pay(ctx, commands.Pay{OrderID: o.OrderID, UserID: map[string]string{erin.OrderID: "erin", gina.OrderID: "gina"}[o.OrderID], PaymentRef: "late"}); !errors.Is(err, domain.ErrExpired) {
			t.Errorf("pay expired %s: %v, want ErrExpired", o.OrderID, err)
		}
	}
	if p, err := f.gate.Pay(ctx, commands.Pay{OrderID: ivy.OrderID, UserID: "ivy", PaymentRef: "pay-i"}); err != nil || p.Status != domain.StatusPaid {
		t.Errorf("pay restored reservation: %+v, %v", p, err)
	}
	// The per-user limit held across the restore: alice holds 2 of 3.
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: a.ID, UserID: "alice", IdempotencyKey: "more", Quantity: 2}); !errors.Is(err, domain.ErrLimitReached) {
		t.Errorf("alice over her limit after restore: %v", err)
	}
	// The sweeper still expires what is due.
	f.clock.Advance(2 * time.Minute)
	if res, err := f.gate.Sweep(ctx); err != nil || res.Expired != 1 {
		t.Errorf("sweep after restore: %+v, %v, want hank's reservation expired", res, err)
	}

	// A live gate is not overwritten without force, nor is one whose
	// outbox the relay has not forwarded yet, even with force.
	if _, err := f.gate.Restore(ctx, fd, commands.RestoreOptions{}); !errors.Is(err, commands.ErrGateLive) {
		t.Errorf("restore over a live gate: %v, want ErrGateLive", err)
	}
	if _, err := f.gate.Restore(ctx, fd, commands.RestoreOptions{Force: true}); !errors.Is(err, commands.ErrOutboxPending) {
		t.Errorf("restore with a pending outbox: %v, want ErrOutboxPending", err)
	}
	if after := snapshot(t, f.rdb); after[f.gate.Prefix()+"{sale:"+a.ID+"}:sale"] == "" {
		t.Fatal("a refused restore changed the gate")
	}

	// Forced, after the relay forwarded: the gate is rebuilt from the log,
	// and an order the log does not know goes away.
	foldInto(t, f, fd)
	trimOutboxes(t, f)
	live := snapshot(t, f.rdb)
	stray := f.gate.Prefix() + "{sale:" + a.ID + "}:o:" + a.ID + "-stray"
	if err := f.rdb.HSet(ctx, stray, "user", "mallory", "status", "reserved").Err(); err != nil {
		t.Fatal(err)
	}
	rep, err = f.gate.Restore(ctx, fd, commands.RestoreOptions{SaleIDs: []string{a.ID}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := mapDiff(live, snapshot(t, f.rdb)); diff != "" {
		t.Fatalf("forced restore differs (-live +restored):\n%s", diff)
	}
	if len(rep.Sales) != 1 || !rep.Sales[0].Existed || rep.Sales[0].OrdersRemoved != 1 || !rep.Sales[0].HadRemaining {
		t.Errorf("forced report: %+v", rep.Sales)
	}
	if _, err := f.gate.Restore(ctx, fd, commands.RestoreOptions{SaleIDs: []string{"nosuch"}}); err == nil || !strings.Contains(err.Error(), "not in the log") {
		t.Errorf("restore of an unknown sale: %v", err)
	}
}

// TestRestoreOldLog: orders recorded before OrderPlaced carried the
// idempotency key come back under the user's key-less slot, the first one
// placed winning, as the gate decided then.
func TestRestoreOldLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	fd := domain.NewFold()
	at := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	apply := func(e domain.Event, at time.Time) {
		env, err := domain.NewEnvelope(e, at)
		if err != nil {
			t.Fatal(err)
		}
		fd.Apply(env, e)
	}
	apply(domain.SaleCreated{SaleID: "old", SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
		Name: "n", Stock: 5, StartsAt: at, EndsAt: at.Add(time.Hour), PerUserLimit: 2,
		PayWithinS: 600, Currency: "CNY",
	}}}, at)
	for i, id := range []string{"old-b", "old-a"} { // old-b placed first
		apply(domain.StockReserved{SaleID: "old", OrderID: id, UserID: "u", Quantity: 1}, at.Add(time.Duration(i)*time.Second))
		apply(domain.OrderPlaced{OrderID: id, SaleID: "old", UserID: "u", Quantity: 1, PayBy: at.Add(time.Hour)}, at.Add(time.Duration(i)*time.Second))
	}
	if _, err := f.gate.Restore(ctx, fd, commands.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: "old", UserID: "u"})
	if err != nil || r.OrderID != "old-b" || !r.Replayed {
		t.Errorf("retry: %+v, %v; want old-b", r, err)
	}
	if v, err := f.gate.Sale(ctx, "old"); err != nil || v.Remaining != 3 {
		t.Errorf("sale: %+v, %v", v, err)
	}
}
