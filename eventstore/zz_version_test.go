package eventstore_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

func TestZZVersions(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	eventstore.SetSaramaVersion(sarama.V2_4_0_0)
	b, err := eventstore.StartBroker(context.Background(), eventstore.BrokerConfig{
		Addr: "127.0.0.1:0", Topic: testTopic, Partitions: 1,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug - 4})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pub := newPublisher(t, b.Addrs())
	msg, _ := eventstore.ToMessage(encode(t, domain.OrderPaid{OrderID: "s1-1", SaleID: "s1", Quantity: 1}))
	if err := pub.Publish(testTopic, msg); err != nil {
		t.Fatal(err)
	}
	sub, _ := eventstore.NewSubscriber(b.Addrs(), "g", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	ch, _ := sub.Subscribe(ctx, testTopic)
	select {
	case m := <-ch:
		m.Ack()
	case <-ctx.Done():
	}
	cancel()
	sub.Close()
}
