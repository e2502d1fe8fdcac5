package audit_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/audit"
	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// world is a gate, a log and an orders read model, moved by hand: forward is
// the relay, project the projector.
type world struct {
	t       *testing.T
	rdb     *redis.Client
	gate    *commands.Gate
	clock   *commands.ManualClock
	brokers []string
	kafka   *kgo.Client
	pool    *pgxpool.Pool
	applier *projections.Applier
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{t: t, rdb: testenv.Redis(t), brokers: testenv.Kafka(t, 4)}
	w.clock = commands.NewManualClock(time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC))
	var err error
	if w.gate, err = commands.NewGate(commands.GateConfig{Clock: w.clock, SaleCacheTTL: time.Nanosecond}, w.rdb); err != nil {
		t.Fatal(err)
	}
	if w.kafka, err = kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.DefaultProduceTopic(testenv.Topic),
		kgo.RecordPartitioner(eventstore.Partitioner())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.kafka.Close)
	dsn := testenv.Postgres(t)
	if err := migrations.Up(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	if w.pool, err = pgxpool.New(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.pool.Close)
	orders, err := readmodels.NewOrders(readmodels.OrdersConfig{}, w.pool)
	if err != nil {
		t.Fatal(err)
	}
	if w.applier, err = projections.NewApplier(projections.ApplierConfig{}, w.pool, orders); err != nil {
		t.Fatal(err)
	}
	return w
}

// forward moves every outbox entry into the log and trims the outboxes.
func (w *world) forward() {
	w.t.Helper()
	ctx := context.Background()
	streams, err := w.rdb.SMembers(ctx, w.gate.OutboxesKey()).Result()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, s := range streams {
		entries, err := w.rdb.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			w.t.Fatal(err)
		}
		for _, e := range entries {
			for i := 1; i <= len(e.Values); i++ {
				v := []byte(e.Values[strconv.Itoa(i)].(string))
				w.produce(v)
			}
		}
		if err := w.rdb.XTrimMaxLen(ctx, s, 0).Err(); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) produce(envJSON []byte) {
	w.t.Helper()
	env, err := domain.DecodeEnvelope(envJSON)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.kafka.ProduceSync(context.Background(), &kgo.Record{Key: []byte(env.AggregateID), Value: envJSON}).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
}

// project applies the whole log to the read model (the applier skips what
// its checkpoints say it has).
func (w *world) project() {
	w.t.Helper()
	var recs []eventstore.Record
	err := eventstore.ReadAll(context.Background(), w.brokers, testenv.Topic, func(r eventstore.Record) error {
		recs = append(recs, eventstore.Record{Topic: testenv.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.applier.Apply(context.Background(), recs); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) audit(wait time.Duration) audit.Report {
	w.t.Helper()
	return w.auditWith(audit.Config{Wait: wait})
}

// auditWith audits with cfg, its log, poll and warnings filled in.
func (w *world) auditWith(cfg audit.Config) audit.Report {
	w.t.Helper()
	m, err := audit.NewOrdersModel(audit.OrdersModelConfig{}, w.pool)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg.Brokers, cfg.Topic, cfg.Poll = w.brokers, testenv.Topic, 20*time.Millisecond
	cfg.Warn = func(s string) { w.t.Errorf("audit warning: %s", s) }
	a, err := audit.New(cfg, w.gate, m)
	if err != nil {
		w.t.Fatal(err)
	}
	rep, err := a.Run(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	var b strings.Builder
	_ = rep.WriteText(&b)
	w.t.Log("\n" + b.String())
	return rep
}

// expect checks that the report fails exactly with violations containing
// each of want (in any check), or passes when want is empty.
func expect(t *testing.T, rep audit.Report, want ...string) {
	t.Helper()
	got := rep.Violations()
	if len(got) != len(want) {
		t.Fatalf("%d violations %q, want %d like %q", len(got), got, len(want), want)
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("no violation like %q in %q", w, got)
		}
	}
}

// TestAudit: a clean system passes; each kind of drift — in the gate, in the
// read model, in the log itself — is named, and an undrained outbox is
// reported without blaming the gate for being ahead.
func TestAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	t0 := w.clock.Now()
	sale, err := w.gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: 5, PriceCents: 100, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: 1, PayWithinS: 60,
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var orders []string
	for _, u := range []string{"a", "b", "c"} {
		r, err := w.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: u})
		if err != nil {
			t.Fatal(err)
		}
		orders = append(orders, r.OrderID)
	}
	if _, err := w.gate.Pay(ctx, commands.Pay{OrderID: orders[0], UserID: "a", PaymentRef: "p"}); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(30 * time.Second)
	c, err := w.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(31 * time.Second) // b and c expire, d does not
	if res, err := w.gate.Sweep(ctx); err != nil || res.Expired != 2 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	w.forward()
	w.project()
	expect(t, w.audit(time.Second))

	// The read model has not applied the newest events: the audit waits for
	// it, then names the lag.
	k := "seckill:{sale:" + sale.ID + "}"
	if _, err := w.gate.Pay(ctx, commands.Pay{OrderID: c.OrderID, UserID: "d", PaymentRef: "p2"}); err != nil {
		t.Fatal(err)
	}
	w.forward()
	expect(t, w.audit(100*time.Millisecond), "1 event(s) of the log not applied", "order "+c.OrderID+": row has status reserved (log paid)")
	w.project()

	// The gate drifts: a counter and an order's status.
	w.rdb.HIncrBy(ctx, k+":sale", "remaining", 1)
	w.rdb.HSet(ctx, k+":o:"+orders[1], "status", "reserved")
	expect(t, w.audit(time.Second), "gate has remaining 4 (log 3)", "order "+orders[1]+": gate has status reserved (log expired)")
	w.rdb.HIncrBy(ctx, k+":sale", "remaining", -1)
	w.rdb.HSet(ctx, k+":o:"+orders[1], "status", "expired")

	// The read model drifts.
	if _, err := w.pool.Exec(ctx, `UPDATE orders SET quantity = 2 WHERE order_id = $1`, orders[0]); err != nil {
		t.Fatal(err)
	}
	expect(t, w.audit(time.Second), "order "+orders[0]+": row has quantity 2 (log 1)")
	if _, err := w.pool.Exec(ctx, `UPDATE orders SET quantity = 1 WHERE order_id = $1`, orders[0]); err != nil {
		t.Fatal(err)
	}

	// The gate is ahead of the log: its outbox holds a purchase the relay
	// has not forwarded. Reported, and the sale's gate state not compared.
	if _, err := w.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "e"}); err != nil {
		t.Fatal(err)
	}
	expect(t, w.audit(100*time.Millisecond), "sale "+sale.ID+": 1 outbox entries not forwarded")
	w.forward()
	w.project()
	expect(t, w.audit(time.Second))

	// The log itself breaks an invariant: a paid order also expired.
	v, err := domain.Encode(domain.OrderExpired{OrderID: orders[0], SaleID: sale.ID, UserID: "a", Quantity: 1}, w.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.produce(v)
	w.project()
	expect(t, w.audit(time.Second),
		"log: order "+orders[0]+": 2 terminal states",
		"gate has expired 2 (log 3)", // the fold counts the expiry, the gate never saw it
		"gate has status paid (log expired)",
		"row has status paid (log expired)")
}

// TestAuditClosedSales: sales that ended and settled are archived out of the
// fold's memory; the audit still names each order of them that drifted in
// the gate or the read model (their digests differ, then it compares them one
// by one), the same from a snapshot as from the whole log.
func TestAuditClosedSales(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	t0 := w.clock.Now()
	var sales []string
	var orders []string
	for i := range 3 {
		sale, err := w.gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
			SaleTerms: domain.SaleTerms{
				Name: fmt.Sprint("day ", i), Stock: 5, PriceCents: 100, StartsAt: t0,
				EndsAt: t0.Add(time.Hour), PerUserLimit: 1, PayWithinS: 60,
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
		sales = append(sales, sale.ID)
		for j, u := range []string{"a", "b", "c"} {
			r, err := w.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: u})
			if err != nil {
				t.Fatal(err)
			}
			orders = append(orders, r.OrderID)
			if j < 2 {
				if _, err := w.gate.Pay(ctx, commands.Pay{OrderID: r.OrderID, UserID: u, PaymentRef: "p" + r.OrderID}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	w.clock.Advance(2 * time.Minute) // every c expires
	if res, err := w.gate.Sweep(ctx); err != nil || res.Expired != 3 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	for _, id := range sales[:2] { // the third stays open
		if _, err := w.gate.EndSale(ctx, commands.EndSale{SaleID: id}); err != nil {
			t.Fatal(err)
		}
	}
	w.forward()
	w.project()
	dir := t.TempDir()
	cfg := audit.Config{Wait: time.Second, Snapshots: dir, SaveSnapshot: true}
	rep := w.auditWith(cfg)
	expect(t, rep)
	if rep.From != "" || rep.Saved == "" || rep.Orders != 9 || rep.Sales != 3 || rep.Closed != 2 {
		t.Fatalf("first audit: from %q, saved %q, %d orders, %d sales, %d closed", rep.From, rep.Saved, rep.Orders, rep.Sales, rep.Closed)
	}
	rep = w.auditWith(cfg)
	expect(t, rep)
	if rep.From == "" || rep.Records != rep.FromRecords {
		t.Fatalf("second audit: from %q, %d records, %d of them in the snapshot", rep.From, rep.Records, rep.FromRecords)
	}

	// Orders of the closed sales drift in the gate and the read model.
	if err := w.rdb.HSet(ctx, "seckill:{sale:"+sales[0]+"}:o:"+orders[1], "status", "reserved").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.pool.Exec(ctx, `UPDATE orders SET quantity = 2 WHERE order_id = $1`, orders[4]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.pool.Exec(ctx, `DELETE FROM orders WHERE order_id = $1`, orders[5]); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"order " + orders[1] + ": gate has status reserved (log paid)",
		"order " + orders[4] + ": row has quantity 2 (log 1)",
		"order " + orders[5] + " (sale " + sales[1] + ", expired): in the log but no row",
	}
	expect(t, w.auditWith(cfg), want...)
	cfg.Fresh = true
	expect(t, w.auditWith(cfg), want...)
}
