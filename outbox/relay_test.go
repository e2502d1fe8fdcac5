package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/outbox"
)

func newRelay(t testing.TB, rdb redis.UniversalClient, pub eventstore.Publisher, cfg outbox.RelayConfig) *outbox.Relay {
	t.Helper()
	if cfg.OutboxesKey == "" {
		cfg.OutboxesKey = "t:outboxes"
	}
	cfg.Topic = testTopic
	r, err := outbox.NewRelay(cfg, rdb, pub)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fill writes sales × orders purchases, then pays every third order, so each
// order aggregate has events in several entries and batches.
func fill(t testing.TB, o *gateOutbox, sales, orders int) {
	t.Helper()
	for s := range sales {
		o.create(t, fmt.Sprintf("s%d", s))
	}
	var placed [][2]string
	for i := range orders {
		for s := range sales {
			sale := fmt.Sprintf("s%d", s)
			placed = append(placed, [2]string{sale, o.purchase(t, sale, i)})
		}
	}
	for i, p := range placed {
		if i%3 == 0 {
			o.pay(t, p[0], p[1])
		}
	}
}

func TestRelayConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := outbox.NewRelay(outbox.RelayConfig{BatchSize: -1, Lanes: 100_000}, nil, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"outboxes key", "batch size", "lanes", "redis client", "publisher"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestRelayForwardsEverythingInOrder: every event of several streams reaches
// the log once, each aggregate's events in outbox order in one partition, and
// the outboxes are trimmed.
func TestRelayForwardsEverythingInOrder(t *testing.T) {
	t.Parallel()
	for _, p := range publishers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			testRelayForwardsEverythingInOrder(t, p)
		})
	}
}

func testRelayForwardsEverythingInOrder(t *testing.T, p publisherKind) {
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t, 8)
	o := newOutbox(rdb)
	fill(t, o, 3, 200) // 3 sales, 600 purchases, 200 payments: 1403 events in 803 entries
	r := newRelay(t, rdb, p.new(t, brokers), outbox.RelayConfig{BatchSize: 64, Lanes: p.lanes})

	n, err := r.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, len(o.ids); got != want {
		t.Errorf("RunOnce forwarded %d events, want %d", got, want)
	}
	for s := range 3 {
		if d := o.depth(t, fmt.Sprintf("s%d", s)); d != 0 {
			t.Errorf("outbox s%d still has %d entries", s, d)
		}
	}
	if d, err := r.Depth(context.Background()); err != nil || d != 0 {
		t.Errorf("Depth = %d, %v; want 0", d, err)
	}
	checkLog(t, o, readLog(t, brokers), false)
	st := r.Stats()
	if st.Forwarded != int64(len(o.ids)) || st.Entries != 803 || st.Streams != 3 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
	if n, err := r.RunOnce(context.Background()); n != 0 || err != nil {
		t.Errorf("second RunOnce = %d, %v; want 0, nil", n, err)
	}
}

// TestRelayRun forwards while the gate keeps writing and discovers a stream
// created after it started; on stop it releases its leases.
func TestRelayRun(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t, 8)
	o := newOutbox(rdb)
	o.create(t, "s0")
	r := newRelay(t, rdb, newPublisher(t, brokers), outbox.RelayConfig{
		BatchSize: 50, PollInterval: 5 * time.Millisecond, DiscoverInterval: 20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	for i := range 300 {
		o.purchase(t, "s0", i)
		if i == 100 {
			o.create(t, "s1")
		}
		if i > 100 {
			o.purchase(t, "s1", i)
		}
	}
	testenv.WaitFor(t, 20*time.Second, func() bool { return r.Stats().Forwarded == int64(len(o.ids)) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, s := range []string{"s0", "s1"} {
		if n := rdb.Exists(context.Background(), outbox.LeaseKey(o.stream(s))).Val(); n != 0 {
			t.Errorf("lease of %s not released", s)
		}
		if d := o.depth(t, s); d != 0 {
			t.Errorf("outbox %s has %d entries left", s, d)
		}
	}
	checkLog(t, o, readLog(t, brokers), false)
}

// TestRelayShutdownFlushReleasesLeases (issue 15, item 6): a clean shutdown
// is Run stopped, then RunOnce flushing what the API's last requests wrote.
// The flush must give up the leases it took like Run does, so that a peer
// relay takes the streams over at once instead of after LeaseTTL (10 s).
func TestRelayShutdownFlushReleasesLeases(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t, 8)
	pub := newPublisher(t, brokers)
	o := newOutbox(rdb)
	o.create(t, "s0")
	o.create(t, "s1")
	a := newRelay(t, rdb, pub, outbox.RelayConfig{Owner: "a", PollInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	testenv.WaitFor(t, 20*time.Second, func() bool { return a.Stats().Forwarded == int64(len(o.ids)) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The API's last requests, written after Run stopped: the final flush.
	o.purchase(t, "s0", 1)
	o.purchase(t, "s1", 1)
	if n, err := a.RunOnce(context.Background()); n != 4 || err != nil {
		t.Fatalf("final flush forwarded %d (%v), want 4", n, err)
	}
	for _, s := range []string{"s0", "s1"} {
		if ttl := rdb.PTTL(context.Background(), outbox.LeaseKey(o.stream(s))).Val(); ttl > 0 {
			t.Errorf("relay a still holds the lease of %s for %v after its final flush", s, ttl)
		}
	}
	// A peer relay (the default 10 s lease) forwards new entries at once.
	o.purchase(t, "s0", 2)
	o.purchase(t, "s1", 2)
	b := newRelay(t, rdb, pub, outbox.RelayConfig{Owner: "b"})
	if n, err := b.RunOnce(context.Background()); n != 4 || err != nil {
		t.Errorf("peer relay forwarded %d (%v) right after a's clean shutdown, want 4", n, err)
	}
	checkLog(t, o, readLog(t, brokers), false)
}

// crashingPublisher publishes through the real publisher and, once limit
// messages went through, reports a failure without trimming having happened:
// what a relay sees when it dies between publish and trim.
type crashingPublisher struct {
	eventstore.Publisher
	limit int64
	sent  atomic.Int64
}

var errCrash = errors.New("simulated crash after publish")

func (p *crashingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.sent.Load() >= p.limit {
		return errCrash
	}
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	if p.sent.Add(int64(len(msgs))) >= p.limit {
		return errCrash
	}
	return nil
}

// TestRelayRestartLosesNothing: a relay that dies after publishing a batch
// but before trimming it leaves the batch in the outbox; the next relay sends
// it again (duplicates, which consumers drop by id) and loses nothing.
func TestRelayRestartLosesNothing(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t, 8)
	o := newOutbox(rdb)
	fill(t, o, 2, 300)
	pub := newPublisher(t, brokers)

	first := newRelay(t, rdb, &crashingPublisher{Publisher: pub, limit: 500},
		outbox.RelayConfig{BatchSize: 100, LeaseTTL: time.Second, Owner: "first"})
	n, err := first.RunOnce(context.Background())
	if !errors.Is(err, errCrash) {
		t.Fatalf("first relay: %d, %v; want the crash", n, err)
	}
	if st := first.Stats(); st.Errors == 0 || !strings.Contains(st.LastError, errCrash.Error()) {
		t.Errorf("stats after crash %+v", st)
	}
	before := o.depth(t, "s0") + o.depth(t, "s1")
	if before == 0 {
		t.Fatal("first relay forwarded everything; the crash came too late")
	}

	// The second relay must wait for the first one's lease to lapse.
	second := newRelay(t, rdb, pub, outbox.RelayConfig{BatchSize: 100, Owner: "second"})
	if n, err := second.RunOnce(context.Background()); n != 0 || err != nil {
		t.Fatalf("second relay forwarded %d, %v while the first held the lease", n, err)
	}
	// Once the lease lapses (LeaseTTL after the first relay last renewed it,
	// however slowly it published) the second relay sends the rest.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		if _, err := second.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		return o.depth(t, "s0")+o.depth(t, "s1") == 0
	})
	l := readLog(t, brokers)
	checkLog(t, o, l, true)
	dups := len(l.ids) - len(l.count)
	if dups == 0 {
		t.Error("no duplicates: the crash did not happen between publish and trim")
	}
	t.Logf("%d events, %d duplicates after the crash", len(l.count), dups)
}

// gatedPublisher blocks every Publish until the gate is opened.
type gatedPublisher struct {
	eventstore.Publisher
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (p *gatedPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.once.Do(func() { close(p.entered) })
	<-p.gate
	return p.Publisher.Publish(topic, msgs...)
}

// TestRelayLease: while one relay is publishing a stream's batch, another
// relay leaves that stream alone; two relays running side by side on the
// same streams never publish an event twice.
func TestRelayLease(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t, 8)
	pub := newPublisher(t, brokers)
	o := newOutbox(rdb)
	fill(t, o, 1, 100)

	gated := &gatedPublisher{Publisher: pub, entered: make(chan struct{}), gate: make(chan struct{})}
	a := newRelay(t, rdb, gated, outbox.RelayConfig{Owner: "a"})
	bRelay := newRelay(t, rdb, pub, outbox.RelayConfig{Owner: "b"})
	aDone := make(chan error, 1)
	go func() { _, err := a.RunOnce(context.Background()); aDone <- err }()
	<-gated.entered
	if n, err := bRelay.RunOnce(context.Background()); n != 0 || err != nil {
		t.Fatalf("relay b forwarded %d (%v) while a was publishing the stream", n, err)
	}
	close(gated.gate)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	checkLog(t, o, readLog(t, brokers), false)
}

// countingPublisher counts how often each event id is published.
type countingPublisher struct {
	eventstore.Publisher
	mu   sync.Mutex
	seen map[string]int
}

func (p *countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	for _, m := range msgs {
		p.seen[m.UUID]++
	}
	p.mu.Unlock()
	return p.Publisher.Publish(topic, msgs...)
}

// TestTwoRelaysNeverForwardTwice: two relays run side by side on the same
// streams while the gate writes; then the one holding the leases stops and the
// other takes over. No event is published twice.
func TestTwoRelaysNeverForwardTwice(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t, 8)
	pub := &countingPublisher{Publisher: newPublisher(t, brokers), seen: map[string]int{}}
	o := newOutbox(rdb)
	const sales = 4
	for s := range sales {
		o.create(t, fmt.Sprintf("s%d", s))
	}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			for s := range sales {
				o.purchase(t, fmt.Sprintf("s%d", s), i)
			}
		}
	}
	var relays [2]*outbox.Relay
	var cancels [2]context.CancelFunc
	var wg sync.WaitGroup
	start := func(i int) {
		relays[i] = newRelay(t, rdb, pub, outbox.RelayConfig{
			Owner: fmt.Sprintf("relay%d", i), BatchSize: 20,
			PollInterval: time.Millisecond, DiscoverInterval: time.Millisecond,
		})
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		wg.Go(func() { _ = relays[i].Run(ctx) })
	}
	forwarded := func() int64 {
		var n int64
		for _, r := range relays {
			if r != nil {
				n += r.Stats().Forwarded
			}
		}
		return n
	}

	start(0)
	write(0, 100)
	start(1)
	write(100, 200)
	testenv.WaitFor(t, 30*time.Second, func() bool { return forwarded() == int64(len(o.ids)) })
	// Stop whichever relay holds the leases; the other takes over.
	leader := 0
	if relays[1].Stats().Forwarded > relays[0].Stats().Forwarded {
		leader = 1
	}
	cancels[leader]()
	write(200, 300)
	testenv.WaitFor(t, 30*time.Second, func() bool { return forwarded() == int64(len(o.ids)) })
	cancels[1-leader]()
	wg.Wait()

	for id, n := range pub.seen {
		if n != 1 {
			t.Errorf("event %s published %d times", id, n)
		}
	}
	if relays[0].Stats().Forwarded == 0 || relays[1].Stats().Forwarded == 0 {
		t.Errorf("no handover: relay0 forwarded %d, relay1 %d", relays[0].Stats().Forwarded, relays[1].Stats().Forwarded)
	}
	checkLog(t, o, readLog(t, brokers), false)
}

// TestRelayBrokerDown: with the broker gone, nothing is trimmed and Run keeps
// retrying; once the broker is back (same data dir and port), everything goes
// through.
func TestRelayBrokerDown(t *testing.T) {
	t.Parallel()
	for _, p := range publishers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			testRelayBrokerDown(t, p)
		})
	}
}

func testRelayBrokerDown(t *testing.T, p publisherKind) {
	rdb := testenv.Redis(t)
	dir := t.TempDir()
	cfg := eventstore.BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir, Topic: testTopic, Partitions: 4}
	b, err := eventstore.StartBroker(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrs := b.Addrs()
	pub := p.new(t, addrs)
	o := newOutbox(rdb)
	fill(t, o, 2, 50)
	b.Close()

	r := newRelay(t, rdb, pub, outbox.RelayConfig{MaxBackoff: 100 * time.Millisecond, Lanes: p.lanes})
	before := o.depth(t, "s0") + o.depth(t, "s1")
	start := time.Now()
	if _, err := r.RunOnce(context.Background()); err == nil {
		t.Fatal("RunOnce succeeded with the broker down")
	}
	t.Logf("publish failed after %v", time.Since(start).Round(time.Millisecond))
	if after := o.depth(t, "s0") + o.depth(t, "s1"); after != before {
		t.Fatalf("outbox went from %d to %d entries with the broker down", before, after)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	time.Sleep(300 * time.Millisecond) // let Run fail and back off a few times

	cfg.Addr = addrs[0]
	b2, err := eventstore.StartBroker(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	testenv.WaitFor(t, 60*time.Second, func() bool { return o.depth(t, "s0")+o.depth(t, "s1") == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if st := r.Stats(); st.Errors == 0 {
		t.Errorf("no errors counted: %+v", st)
	}
	checkLog(t, o, readLog(t, b2.Addrs()), true)
}

// TestRelayQuarantinesBadEntries: an entry that is not a list of envelopes is
// moved to the dead-letter stream; the entries around it are forwarded.
func TestRelayQuarantinesBadEntries(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t, 4)
	o := newOutbox(rdb)
	o.create(t, "s0")
	o.purchase(t, "s0", 1)
	ctx := context.Background()
	stream := o.stream("s0")
	badIDs := []string{
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"1", "not json"}}).Val(),
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"x", "{}"}}).Val(),
	}
	o.purchase(t, "s0", 2)
	r := newRelay(t, rdb, newPublisher(t, brokers), outbox.RelayConfig{})
	if _, err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	checkLog(t, o, readLog(t, brokers), false)
	dead, err := rdb.XRange(ctx, outbox.DeadLetterKey(stream), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].Values["_id"] != badIDs[0] || dead[0].Values["1"] != "not json" ||
		dead[1].Values["_id"] != badIDs[1] {
		t.Errorf("dead letters %+v, want the two bad entries %v", dead, badIDs)
	}
	if st := r.Stats(); st.Quarantined != 2 || o.depth(t, "s0") != 0 {
		t.Errorf("stats %+v, depth %d", st, o.depth(t, "s0"))
	}
}

// TestRelayForwardsUnknownTypes: the relay reads only the envelope, so it
// forwards event types newer than this build.
func TestRelayForwardsUnknownTypes(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	brokers := testenv.Kafka(t, 4)
	o := newOutbox(rdb)
	o.create(t, "s0")
	ctx := context.Background()
	env := `{"id":"s0/SaleRescheduled","type":"SaleRescheduled","version":1,"occurred_at":"2030-01-01T00:00:00Z","aggregate_id":"s0","payload":{}}`
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: o.stream("s0"), Values: []any{"1", env}})
	r := newRelay(t, rdb, newPublisher(t, brokers), outbox.RelayConfig{})
	if n, err := r.RunOnce(ctx); n != 2 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	l := readLog(t, brokers)
	if l.count["s0/SaleRescheduled"] != 1 || l.count[domain.EventID("s0", domain.TypeSaleCreated)] != 1 {
		t.Errorf("log %v", l.ids)
	}
}
