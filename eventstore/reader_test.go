package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

// TestReadAll reads exactly what was published: every record once, each
// partition's offsets contiguous from 0 up to its end offset, values intact,
// and nothing written after the call began.
func TestReadAll(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t, 6)
	ctx := context.Background()

	var empty int
	if err := eventstore.ReadAll(ctx, brokers, testTopic, func(eventstore.Record) error { empty++; return nil }); err != nil || empty != 0 {
		t.Fatalf("empty topic: %d records, %v", empty, err)
	}

	pub := newPublisher(t, brokers)
	want := map[string]string{} // event id → value
	for i := range 500 {
		v := encode(t, domain.OrderPaid{OrderID: fmt.Sprintf("s1-%d", i), SaleID: "s1", Quantity: 1})
		msg, err := eventstore.ToMessage(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(testTopic, msg); err != nil {
			t.Fatal(err)
		}
		want[msg.UUID] = string(v)
	}
	ends, err := eventstore.EndOffsets(ctx, brokers, testTopic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range ends {
		total += e
	}
	if total != 500 || len(ends) != 6 {
		t.Fatalf("end offsets %v: %d records, want 500 in 6 partitions", ends, total)
	}

	next := map[int32]int64{}
	got := map[string]string{}
	first := true
	err = eventstore.ReadAll(ctx, brokers, testTopic, func(rec eventstore.Record) error {
		if first {
			// Records written while reading are not part of this read.
			first = false
			publishOrders(t, pub, 1000, 1100)
		}
		if rec.Offset != next[rec.Partition] {
			return fmt.Errorf("partition %d: offset %d, want %d", rec.Partition, rec.Offset, next[rec.Partition])
		}
		next[rec.Partition]++
		if rec.Timestamp.IsZero() || time.Since(rec.Timestamp) > time.Minute {
			return fmt.Errorf("record %d@%d: timestamp %v", rec.Partition, rec.Offset, rec.Timestamp)
		}
		env, err := domain.DecodeEnvelope(rec.Value)
		if err != nil {
			return err
		}
		if _, dup := got[env.ID]; dup {
			return fmt.Errorf("%s read twice", env.ID)
		}
		got[env.ID] = string(rec.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("read %d records, want %d", len(got), len(want))
	}
	for id, v := range want {
		if got[id] != v {
			t.Errorf("%s: read %q, published %q", id, got[id], v)
		}
	}
	for p, end := range ends {
		if next[p] != end {
			t.Errorf("partition %d: read up to %d, end was %d", p, next[p], end)
		}
	}

	// Everything, including what was written during the first read.
	if n := countLog(t, brokers); n != 600 {
		t.Errorf("second read: %d records, want 600", n)
	}

	stop := errors.New("stop")
	calls := 0
	err = eventstore.ReadAll(ctx, brokers, testTopic, func(eventstore.Record) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("fn error: ReadAll = %v after %d calls; want stop after 1", err, calls)
	}
	if err := eventstore.ReadAll(ctx, brokers, "missing", func(eventstore.Record) error { return nil }); err == nil {
		t.Error("ReadAll of a missing topic: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := eventstore.ReadAll(cctx, brokers, testTopic, func(eventstore.Record) error { return nil }); err == nil {
		t.Error("ReadAll with a cancelled context: no error")
	}
}
