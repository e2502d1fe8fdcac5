package snapshot

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/domain/foldgen"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

// produceYear writes a foldgen.Year log, each record stamped when its event
// occurred, as the relay stamps them when it publishes.
func produceYear(t *testing.T, brokers []string, events, days int) foldgen.YearShape {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(testenv.Topic),
		kgo.RecordPartitioner(eventstore.Partitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	var recs []*kgo.Record
	flush := func() error {
		err := cl.ProduceSync(ctx, recs...).FirstErr()
		recs = recs[:0]
		return err
	}
	shape, err := foldgen.Year(events, days, func(e domain.Event, at time.Time) error {
		v, err := domain.Encode(e, at)
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Key: []byte(e.AggregateID()), Value: v, Timestamp: at})
		if len(recs) == 20_000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return shape
}

// TestFreshFoldHoldsOnlyOpenSales: a fold from the beginning of a log of
// daily sales, too long for one fetch per partition, never holds more than a
// few of its sales in memory (issue 16: the partitions were read months apart,
// so the fold could archive nothing until the end and held the whole
// history).
func TestFreshFoldHoldsOnlyOpenSales(t *testing.T) {
	t.Parallel()
	const events, days = 300_000, 60
	brokers := testenv.Kafka(t, 16)
	shape := produceYear(t, brokers, events, days)
	ctx := context.Background()
	var chunks, most, mostOrders int
	res, err := Fold(ctx, brokers, testenv.Topic, Options{chunkDone: func(f *domain.Fold) {
		chunks++
		most, mostOrders = max(most, len(f.Sales)), max(mostOrders, len(f.Orders))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if res.Records != int64(shape.Events) || len(res.Fold.Archived) != days {
		t.Fatalf("folded %d records, %d sales archived; want %d, %d", res.Records, len(res.Fold.Archived), shape.Events, days)
	}
	t.Logf("%d chunks; at most %d sales and %d orders in memory (of %d, %d)", chunks, most, mostOrders, days, shape.Orders)
	if most > days/3 {
		t.Errorf("at most %d of %d sales in memory after a chunk; want at most %d", most, days, days/3)
	}
}
