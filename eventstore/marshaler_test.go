package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

// TestSubscriberPassesForeignGarbage writes, on one partition, a record with
// no headers whose value is not an envelope, then a record with no headers
// that is one: the subscriber must deliver both (the first with an empty
// UUID, for the projections to dead-letter), not stall the partition on the
// first.
func TestSubscriberPassesForeignGarbage(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	good := encode(t, domain.OrderPaid{OrderID: "s1-1", SaleID: "s1", Quantity: 1})
	if err := cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: testTopic, Key: []byte("x"), Value: []byte("{not an envelope")},
		&kgo.Record{Topic: testTopic, Key: []byte("s1-1"), Value: good},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sub, err := eventstore.NewSubscriber(brokers, "garbage-group", testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, testTopic)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ uuid, payload string }{{"", "{not an envelope"}, {"s1-1/OrderPaid", string(good)}} {
		select {
		case <-ctx.Done():
			t.Fatalf("message %d not delivered: the partition stalled", i)
		case msg := <-msgs:
			if msg.UUID != want.uuid || string(msg.Payload) != want.payload {
				t.Fatalf("message %d: uuid %q payload %q, want %q %q", i, msg.UUID, msg.Payload, want.uuid, want.payload)
			}
			msg.Ack()
		}
	}
}
