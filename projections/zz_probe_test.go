package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
)

func TestZZProbe(t *testing.T) {
	for _, v := range []sarama.KafkaVersion{sarama.V2_1_0_0, sarama.V2_8_0_0, sarama.V3_0_0_0, sarama.V3_3_0_0, sarama.V3_6_0_0} {
		t.Run(v.String(), func(t *testing.T) {
			brokers := kafkaBrokers(t, 4)
			st := genStream(t, 1, 1, 5)
			publish(t, brokers, st.envs)
			c := kafka.DefaultSaramaSubscriberConfig()
			c.Version = v
			c.Consumer.Offsets.Initial = sarama.OffsetOldest
			sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: brokers, Unmarshaler: kafka.DefaultMarshaler{},
				OverwriteSaramaConfig: c, ConsumerGroup: "g"}, watermill.NewSlogLogger(testLogger()))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			msgs, err := sub.Subscribe(ctx, "seckill.events")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-msgs:
				m.Ack()
				t.Logf("%s ok", v)
			case <-ctx.Done():
				t.Errorf("%s: nothing", v)
			}
		})
	}
}
