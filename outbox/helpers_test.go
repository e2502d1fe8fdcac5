package outbox_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

const testTopic = testenv.Topic

func newPublisher(t testing.TB, brokers []string) eventstore.Publisher {
	t.Helper()
	pub, err := eventstore.NewPublisher(brokers, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

func newBatchPublisher(t testing.TB, brokers []string) eventstore.Publisher {
	t.Helper()
	pub, err := eventstore.NewBatchPublisher(brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

// publisherKind is a way to publish the log, as the relay tests run it: the
// watermill publisher with lanes, and the batch publisher with one.
type publisherKind struct {
	name  string
	new   func(t testing.TB, brokers []string) eventstore.Publisher
	lanes int
}

var publishers = []publisherKind{{"watermill", newPublisher, 4}, {"batch", newBatchPublisher, 1}}

// gateOutbox writes entries into outbox streams the way the gate does.
type gateOutbox struct {
	rdb    *redis.Client
	prefix string
	mu     sync.Mutex
	want   map[string][]string // aggregate id → event ids in outbox order
	ids    []string            // every event id written
	at     time.Time
}

func newOutbox(rdb *redis.Client) *gateOutbox {
	return &gateOutbox{rdb: rdb, prefix: "t:", want: map[string][]string{}, at: time.Date(2030, 1, 1, 20, 0, 0, 0, time.UTC)}
}

func (o *gateOutbox) setKey() string            { return o.prefix + "outboxes" }
func (o *gateOutbox) stream(sale string) string { return o.prefix + "{sale:" + sale + "}:outbox" }

// create registers sale's outbox and appends its SaleCreated.
func (o *gateOutbox) create(t testing.TB, sale string) {
	t.Helper()
	if err := o.rdb.SAdd(context.Background(), o.setKey(), o.stream(sale)).Err(); err != nil {
		t.Fatal(err)
	}
	o.append(t, sale, domain.SaleCreated{SaleID: sale, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
		Name: "s", Stock: 1_000_000, PerUserLimit: 1, PayWithinS: 900,
	}}})
}

// purchase appends one gate command's events: StockReserved and OrderPlaced.
func (o *gateOutbox) purchase(t testing.TB, sale string, n int) string {
	order := domain.OrderID(sale, strconv.Itoa(n))
	o.append(t, sale,
		domain.StockReserved{SaleID: sale, OrderID: order, UserID: "u" + strconv.Itoa(n), Quantity: 1},
		domain.OrderPlaced{OrderID: order, SaleID: sale, UserID: "u" + strconv.Itoa(n), Quantity: 1})
	return order
}

// pay appends the OrderPaid of an order placed by purchase.
func (o *gateOutbox) pay(t testing.TB, sale, order string) {
	o.append(t, sale, domain.OrderPaid{OrderID: order, SaleID: sale, Quantity: 1, PaymentRef: "p"})
}

// append writes one stream entry with fields "1", "2", ... = events.
func (o *gateOutbox) append(t testing.TB, sale string, events ...domain.Event) {
	t.Helper()
	values := make([]any, 0, 2*len(events))
	o.mu.Lock()
	for i, e := range events {
		b, err := domain.Encode(e, o.at)
		if err != nil {
			o.mu.Unlock()
			t.Fatal(err)
		}
		values = append(values, strconv.Itoa(i+1), b)
		id := domain.EventID(e.AggregateID(), e.EventType())
		o.want[e.AggregateID()] = append(o.want[e.AggregateID()], id)
		o.ids = append(o.ids, id)
	}
	o.mu.Unlock()
	if err := o.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: o.stream(sale), Values: values}).Err(); err != nil {
		t.Fatal(err)
	}
}

func (o *gateOutbox) depth(t testing.TB, sale string) int64 {
	t.Helper()
	n, err := o.rdb.XLen(context.Background(), o.stream(sale)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// logged is the log as ReadAll returns it.
type logged struct {
	records []eventstore.Record
	ids     []string // envelope ids in log order per partition, partitions interleaved
	count   map[string]int
}

func readLog(t testing.TB, brokers []string) logged {
	t.Helper()
	l := logged{count: map[string]int{}}
	err := eventstore.ReadAll(context.Background(), brokers, testTopic, func(rec eventstore.Record) error {
		env, err := domain.DecodeEnvelope(rec.Value)
		if err != nil {
			return err
		}
		if string(rec.Key) != env.AggregateID {
			return fmt.Errorf("record %d@%d: key %q, aggregate %q", rec.Partition, rec.Offset, rec.Key, env.AggregateID)
		}
		l.records = append(l.records, rec)
		l.ids = append(l.ids, env.ID)
		l.count[env.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// checkLog checks that the log holds every event the outbox got, that each
// aggregate's events (first deliveries; duplicates allowed if dupsOK) are in
// outbox order in one partition.
func checkLog(t testing.TB, o *gateOutbox, l logged, dupsOK bool) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range o.ids {
		if l.count[id] == 0 {
			t.Errorf("event %s is not in the log", id)
		}
		if !dupsOK && l.count[id] > 1 {
			t.Errorf("event %s is in the log %d times", id, l.count[id])
		}
	}
	if len(l.count) != len(o.ids) {
		t.Errorf("log has %d distinct events, outbox had %d", len(l.count), len(o.ids))
	}
	got := map[string][]string{}
	part := map[string]int32{}
	seen := map[string]bool{}
	for i, rec := range l.records {
		agg := string(rec.Key)
		if p, ok := part[agg]; ok && p != rec.Partition {
			t.Errorf("aggregate %s in partitions %d and %d", agg, p, rec.Partition)
		}
		part[agg] = rec.Partition
		if !seen[l.ids[i]] {
			seen[l.ids[i]] = true
			got[agg] = append(got[agg], l.ids[i])
		}
	}
	for agg, want := range o.want {
		if fmt.Sprint(got[agg]) != fmt.Sprint(want) {
			t.Errorf("aggregate %s: log order %v, outbox order %v", agg, got[agg], want)
		}
	}
}
