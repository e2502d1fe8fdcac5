package eventstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

func encode(t testing.TB, e domain.Event) []byte {
	t.Helper()
	b, err := domain.Encode(e, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestToMessage(t *testing.T) {
	t.Parallel()
	b := encode(t, domain.OrderPaid{OrderID: "s1-7", SaleID: "s1", Quantity: 1})
	msg, err := eventstore.ToMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := msg.UUID, "s1-7/OrderPaid"; got != want {
		t.Errorf("UUID = %q, want %q", got, want)
	}
	if got, want := msg.Metadata.Get(eventstore.MetadataType), domain.TypeOrderPaid; got != want {
		t.Errorf("type = %q, want %q", got, want)
	}
	if got, want := msg.Metadata.Get(eventstore.MetadataAggregateID), "s1-7"; got != want {
		t.Errorf("aggregate_id = %q, want %q", got, want)
	}
	if string(msg.Payload) != string(b) {
		t.Errorf("payload changed: %s", msg.Payload)
	}

	for _, bad := range []string{``, `{}`, `not json`, `{"id":"x","type":"T","version":1,"payload":{}}`} {
		if _, err := eventstore.ToMessage([]byte(bad)); err == nil {
			t.Errorf("ToMessage(%q) accepted", bad)
		}
	}
}

func TestPublisherRefusesUnkeyedMessage(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t, 4)
	pub := newPublisher(t, brokers)
	if err := pub.Publish(testTopic, message.NewMessage("x", []byte("{}"))); err == nil {
		t.Fatal("published a message without aggregate_id")
	}
}

// TestPublishSubscribe publishes before the group exists and checks that the
// new group starts from the oldest offset and sees each message as published.
func TestPublishSubscribe(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t, 4)
	pub := newPublisher(t, brokers)
	const n = 50
	want := map[string]string{} // uuid → aggregate
	for i := range n {
		order := "s1-" + strconv.Itoa(i)
		msg, err := eventstore.ToMessage(encode(t, domain.OrderPaid{OrderID: order, SaleID: "s1", Quantity: 1}))
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(testTopic, msg); err != nil {
			t.Fatal(err)
		}
		want[msg.UUID] = order
	}

	sub, err := eventstore.NewSubscriber(brokers, "test-group", testLogger())
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
	for len(want) > 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("%d messages not received", len(want))
		case msg := <-msgs:
			agg, ok := want[msg.UUID]
			if !ok {
				t.Fatalf("unexpected message %q", msg.UUID)
			}
			if got := msg.Metadata.Get(eventstore.MetadataAggregateID); got != agg {
				t.Errorf("%s: aggregate_id %q, want %q", msg.UUID, got, agg)
			}
			if got := msg.Metadata.Get(eventstore.MetadataType); got != domain.TypeOrderPaid {
				t.Errorf("%s: type %q", msg.UUID, got)
			}
			if _, err := domain.DecodeEnvelope(msg.Payload); err != nil {
				t.Error(err)
			}
			delete(want, msg.UUID)
			msg.Ack()
		}
	}
}

func TestNewSubscriberValidates(t *testing.T) {
	t.Parallel()
	if _, err := eventstore.NewSubscriber(nil, "", nil); err == nil {
		t.Fatal("no error for missing brokers and group")
	}
	if _, err := eventstore.NewPublisher(nil, nil); err == nil {
		t.Fatal("no error for missing brokers")
	}
}
