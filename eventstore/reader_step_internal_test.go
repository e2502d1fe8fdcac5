package eventstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReadInStep: a range read with inStep keeps the partitions within the
// step (and a fetch) of each other in time, though one partition holds a
// record a second and the other one a minute; without it the sparse one runs
// hours ahead (the control). A fold cannot archive a sale before every
// partition has passed it (issue 16).
func TestReadInStep(t *testing.T) {
	t.Parallel()
	const topic, hours = "step", 5
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	base := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	value := []byte(strings.Repeat("x", 100))
	// Ten minutes of both partitions per produce call, so batches span ten
	// minutes at most.
	for m := 0; m < hours*60; m += 10 {
		var recs []*kgo.Record
		for s := m * 60; s < (m+10)*60; s++ {
			at := base.Add(time.Duration(s) * time.Second)
			recs = append(recs, &kgo.Record{Partition: 0, Timestamp: at, Value: value})
			if s%60 == 0 {
				recs = append(recs, &kgo.Record{Partition: 1, Timestamp: at, Value: value})
			}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ends := map[int32]int64{0: hours * 3600, 1: hours * 60}
	spread := func(size fetchSize) time.Duration {
		// A partition not read yet is at the log's start.
		last, next := map[int32]time.Time{0: base, 1: base}, map[int32]int64{}
		var most time.Duration
		err := readRange(context.Background(), brokers, topic, nil, ends, size, func(recs []Record) error {
			for _, r := range recs {
				last[r.Partition], next[r.Partition] = r.Timestamp, r.Offset+1
			}
			if next[0] < ends[0] && next[1] < ends[1] { // neither done
				most = max(most, last[0].Sub(last[1]).Abs())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return most
	}
	size := fetchSize{maxBytes: 16 << 10, partitionBytes: 4 << 10, maxWait: 10 * time.Millisecond}
	apart := spread(size)
	size.inStep = 30 * time.Minute
	inStep := spread(size)
	t.Logf("partitions at most %s apart read in step, %s without", inStep, apart)
	if inStep > size.inStep+time.Hour {
		t.Errorf("read in step, the partitions were %s apart; want at most %s", inStep, size.inStep+time.Hour)
	}
	if apart < 2*time.Hour {
		t.Errorf("control: without the step the partitions were only %s apart; the test does not tell", apart)
	}
}
