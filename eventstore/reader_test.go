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

// TestReadRange reads exactly the records of the range: per partition of to,
// from from[p] (its start when from has no entry) up to to[p], in offset
// order, and nothing of the partitions not in to; a range that is empty
// reads nothing; an error from fn stops the read and is returned as is.
// RecordTimes gives the timestamps of the records at the offsets asked for.
func TestReadRange(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t, 4)
	ctx := context.Background()
	publishOrders(t, newPublisher(t, brokers), 0, 400)
	all := map[int32][]eventstore.Record{}
	if err := eventstore.ReadAll(ctx, brokers, testTopic, func(r eventstore.Record) error {
		all[r.Partition] = append(all[r.Partition], r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("records in %d partitions, want 4", len(all))
	}
	from := map[int32]int64{0: 10, 1: 0, 2: int64(len(all[2]))} // 3: missing, so from its start
	to := map[int32]int64{0: int64(len(all[0])) - 5, 2: int64(len(all[2])), 3: 7}
	got := map[int32][]int64{}
	batches := 0
	err := eventstore.ReadRange(ctx, brokers, testTopic, from, to, func(recs []eventstore.Record) error {
		batches++
		for _, r := range recs {
			if r.Topic != testTopic || string(r.Value) != string(all[r.Partition][r.Offset].Value) {
				return fmt.Errorf("record %d@%d differs from the log", r.Partition, r.Offset)
			}
			got[r.Partition] = append(got[r.Partition], r.Offset)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32][]int64{}
	for p, end := range to {
		for o := from[p]; o < end; o++ {
			want[p] = append(want[p], o)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || batches == 0 {
		t.Fatalf("read %v in %d batches, want %v", got, batches, want)
	}

	calls := 0
	if err := eventstore.ReadRange(ctx, brokers, testTopic, nil, map[int32]int64{1: 0}, func([]eventstore.Record) error {
		calls++
		return nil
	}); err != nil || calls != 0 {
		t.Errorf("empty range: %d calls, %v", calls, err)
	}
	stop := errors.New("stop")
	if err := eventstore.ReadRange(ctx, brokers, testTopic, nil, to, func([]eventstore.Record) error { return stop }); err != stop {
		t.Errorf("fn error: ReadRange = %v, want it as is", err)
	}

	offs, err := eventstore.ReadOffsets(ctx, brokers, testTopic)
	if err != nil {
		t.Fatal(err)
	}
	at := map[int32]int64{0: 3, 1: int64(len(all[1])) - 1, 3: 0}
	times, err := eventstore.RecordTimes(ctx, brokers, testTopic, at, offs.Ends)
	if err != nil {
		t.Fatal(err)
	}
	if len(times) != len(at) {
		t.Fatalf("record times %v, want %d partitions", times, len(at))
	}
	for p, o := range at {
		if w := all[p][o].Timestamp; !times[p].Equal(w) {
			t.Errorf("partition %d offset %d: time %v, want %v", p, o, times[p], w)
		}
	}
}
