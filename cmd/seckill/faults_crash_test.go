//go:build linux

package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/seckill/seckill/internal/testenv"
)

// TestFaultAPIKill kills an API node (kill -9) in the middle of a purchase
// burst and starts it again on the same port. Requests in flight get no
// answer; each purchase script ran whole or not at all, so a shopper that
// tries again is answered with the order its lost attempt made (200) or
// gets a new one (202), never two. Nothing accepted is lost.
func TestFaultAPIKill(t *testing.T) {
	users := pick(600, 4000)
	d := newDeployment(t, testenv.RedisServer(t).URL())
	api := d.serve("api", "api")
	d.serve("back", "relay,projector,sweeper")
	d.sys.base = api.base
	// More stock than shoppers: after a sell-out, a node that does not know
	// a shopper's order answers its retry sold_out from memory (README,
	// "A retry after the sell-out"), which is a different test.
	sale := d.sys.createSale(users+users/10, `,"per_user_limit":1`)

	b := newShoppers(d, sale, []string{api.base}, "k", 32)
	done := make(chan struct{})
	go func() { defer close(done); b.buy(nil, 0, users) }()
	b.waitAccepted(int64(users/3), time.Minute)
	d.kill(api)
	down := time.Now()
	killedAt := b.accepted.Load()
	// Shoppers meet a dead node for a moment before it comes back.
	time.Sleep(300 * time.Millisecond)
	d.restart(api)
	t.Logf("api killed after %d orders; back after %v", killedAt, time.Since(down).Round(time.Millisecond))
	<-done

	t.Log(b.summary())
	b.allAnswered()
	if b.noAnswer == 0 {
		t.Error("no request was in flight when the node died: the scenario tested nothing")
	}
	if got := b.statuses[http.StatusAccepted] + b.statuses[http.StatusOK]; got != users {
		t.Errorf("%d of %d shoppers hold an order (statuses %v codes %v)", got, users, b.statuses, b.codes)
	}
	fold, _ := d.judge("api kill -9 mid-burst", b.ledger())
	b.matchLog(fold)
}

// TestFaultRelayKill kills the relay (kill -9) in the middle of a batch and
// starts another. To land the kill mid-batch for sure, the broker is frozen
// (SIGSTOP) while purchases continue: the relay reads a batch and sends it,
// the broker's kernel takes the bytes, nobody acknowledges; then the relay
// dies and the broker resumes and appends what it was sent. Those entries
// were published but never trimmed, so the next relay publishes them again
// once the dead one's lease lapses (10 s): duplicates in the log, which the
// projections and the audit skip. Nothing is lost.
func TestFaultRelayKill(t *testing.T) {
	// Mostly waiting (a lease, a timeout, an outage): runs beside the others.
	t.Parallel()
	rate := pick(400.0, 1500.0)
	d := newDeployment(t, testenv.RedisServer(t).URL())
	broker := d.procs[0]
	api := d.serve("api", "api")
	relay := d.serve("relay", "relay")
	d.serve("back", "projector,sweeper")
	d.sys.base = api.base
	users := int(rate * 14) // enough for the whole scenario; stopped earlier
	sale := d.sys.createSale(users, `,"per_user_limit":1`)
	g := d.gate()

	b := newShoppers(d, sale, []string{api.base}, "r", 16)
	b.rate = rate
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); b.buy(stop, 0, users) }()
	b.waitAccepted(int64(rate/2), time.Minute)
	// The relay has found the sale's outbox and forwards it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n, _ := scrape(t, relay, "seckill_relay_forwarded_events_total"); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay forwarded nothing in 30s")
		}
	}

	freeze(t, broker)
	time.Sleep(500 * time.Millisecond) // the relay sends a batch into the frozen broker
	backlog := outboxBacklog(t, g)
	d.kill(relay)
	thaw(t, broker)
	t.Logf("relay killed with %d outbox entries unacknowledged, after %d orders", backlog, b.accepted.Load())
	if backlog == 0 {
		t.Error("the outbox was empty when the relay died: the scenario tested nothing")
	}
	// Purchases go on into the outbox while no relay runs.
	time.Sleep(time.Second)
	start := time.Now()
	d.restart(relay)
	time.Sleep(time.Second)
	close(stop)
	<-done
	waitDrained(t, g, time.Minute)
	t.Logf("the new relay drained the outboxes %v after it started (the dead relay's lease: 10 s)", time.Since(start).Round(100*time.Millisecond))

	t.Log(b.summary())
	b.allAnswered()
	fold, res := d.judge("relay kill -9 mid-batch", b.ledger())
	b.matchLog(fold)
	if res.duplicates == 0 {
		t.Error("no event was published twice: the relay did not die mid-batch")
	}
	records, redelivered := logOrder(t, d.brokers())
	t.Logf("log: %d records, %d of them redeliveries; every order's events in one partition, in order", records, redelivered)
}

// TestFaultBrokerKill kills the broker process (kill -9) while purchases and
// payments continue, and starts it again on the same port and data folder.
// Meanwhile the gate keeps accepting into the outboxes; afterwards the relay
// catches the log up, each order's events in their order.
func TestFaultBrokerKill(t *testing.T) {
	// Mostly waiting (a lease, a timeout, an outage): runs beside the others.
	t.Parallel()
	rate := pick(400.0, 1500.0)
	outage := pick(3*time.Second, 10*time.Second)
	d := newDeployment(t, testenv.RedisServer(t).URL())
	broker := d.procs[0]
	api := d.serve("api", "api")
	d.serve("relay", "relay")
	d.serve("back", "projector,sweeper")
	d.sys.base = api.base
	users := int(rate * (outage.Seconds() + 4))
	sale := d.sys.createSale(users, `,"per_user_limit":1`)
	g := d.gate()

	b := newShoppers(d, sale, []string{api.base}, "b", 16)
	b.rate = rate
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); b.buy(stop, 0, users) }()
	b.waitAccepted(int64(rate), time.Minute)

	d.kill(broker)
	before := b.accepted.Load()
	// Every other order is paid while the log is away: OrderPaid goes into
	// the outbox behind its OrderPlaced, which may not be in the log yet.
	p := newPayer(d, 8)
	var paying sync.WaitGroup
	paidDuring := 0
	for o, u := range b.ledger() {
		if paidDuring%2 == 0 {
			paying.Go(func() { p.pay(api.base, o, u) })
		}
		paidDuring++
		if paidDuring >= 400 {
			break
		}
	}
	paying.Wait()
	time.Sleep(outage)
	during := b.accepted.Load() - before
	backlog := outboxBacklog(t, g)
	broker = d.restart(broker)
	waitTCP(t, broker, envOf(d.env, "SECKILL_KAFKA_BROKERS"))
	back := time.Now()
	time.Sleep(time.Second)
	close(stop)
	<-done
	waitDrained(t, g, 90*time.Second)
	t.Logf("broker down %v: %d purchases accepted meanwhile, %d payments answered 200; %d outbox entries waiting when it came back; the log caught up %v after",
		outage, during, len(p.paid()), backlog, time.Since(back).Round(100*time.Millisecond))
	if during == 0 {
		t.Error("no purchase was accepted while the broker was down")
	}

	t.Log(b.summary())
	b.allAnswered()
	fold, _ := d.judge("broker kill -9 during purchases", b.ledger())
	b.matchLog(fold)
	checkPaid(t, fold, p.paid())
	records, redelivered := logOrder(t, d.brokers())
	t.Logf("log: %d records, %d of them redeliveries; every order's events in one partition, in order", records, redelivered)
}

// TestFaultPostgresDown stops Postgres for 10 s (a fast shutdown, then a
// start on the same port and data) while purchases continue and the
// projections run. Purchases never touch Postgres; the projections retry
// the batch in hand with backoff, skip nothing, and catch up.
func TestFaultPostgresDown(t *testing.T) {
	// Mostly waiting (a lease, a timeout, an outage): runs beside the others.
	t.Parallel()
	rate := pick(300.0, 1000.0)
	outage := 10 * time.Second
	pg := testenv.PostgresServer(t)
	ctx := context.Background()
	if err := pg.CreateDatabase(ctx, "faults"); err != nil {
		t.Fatal(err)
	}
	d := newDeployment(t, testenv.RedisServer(t).URL())
	d.setEnv("SECKILL_DATABASE_URL", pg.DSN("faults"))
	api := d.serve("api", "api")
	d.serve("relay", "relay,sweeper")
	projector := d.serve("projector", "projector")
	d.sys.base = api.base
	users := int(rate * (outage.Seconds() + 4))
	sale := d.sys.createSale(users, `,"per_user_limit":1`)

	b := newShoppers(d, sale, []string{api.base}, "p", 16)
	b.rate = rate
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); b.buy(stop, 0, users) }()
	b.waitAccepted(int64(rate), time.Minute)

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	before := b.accepted.Load()
	time.Sleep(outage)
	during := b.accepted.Load() - before
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	close(stop)
	<-done
	select {
	case <-projector.done:
		t.Fatalf("the projector exited while Postgres was down: %v\n%s", projector.err, tail(projector.log, 20))
	default:
	}
	failures, _ := scrape(t, projector, "seckill_projection_apply_failures_total")
	t.Logf("Postgres down %v: %d purchases accepted meanwhile; the projector retried %v failed batches", outage, during, failures)
	if during == 0 {
		t.Error("no purchase was accepted while Postgres was down")
	}

	t.Log(b.summary())
	b.allAnswered()
	fold, _ := d.judge("postgres down 10s", b.ledger())
	b.matchLog(fold)
}
