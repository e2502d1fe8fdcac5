package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/outbox"
)

// TestRelayWaitsForReplicas (issue 14): with MinReplicas the relay publishes
// only entries a replica holds. A replica that does not answer (frozen)
// holds the outbox back, nothing reaches the log and nothing is trimmed;
// once it answers again every event is forwarded, in order. Asking for more
// replicas than there are publishes nothing.
func TestRelayWaitsForReplicas(t *testing.T) {
	t.Parallel()
	primary := testenv.RedisServer(t)
	replica := testenv.RedisReplica(t, primary)
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	brokers := testenv.Kafka(t, 8)
	o := newOutbox(rdb)
	fill(t, o, 2, 50)
	pub := newPublisher(t, brokers)
	ctx := context.Background()

	if err := replica.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Thaw() })
	r := newRelay(t, rdb, pub, outbox.RelayConfig{MinReplicas: 1, ReplicaTimeout: 100 * time.Millisecond, BatchSize: 32})
	start := time.Now()
	n, err := r.RunOnce(ctx)
	if n != 0 || !errors.Is(err, outbox.ErrReplicasBehind) {
		t.Fatalf("replica frozen: forwarded %d, %v; want 0, ErrReplicasBehind", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("RunOnce took %v against a frozen replica; WAIT should give up after 100ms", d)
	}
	if d := o.depth(t, "s0") + o.depth(t, "s1"); d == 0 {
		t.Error("the outboxes were trimmed while the replica held nothing")
	}
	if l := readLog(t, brokers); len(l.records) != 0 {
		t.Errorf("%d records published while the replica was frozen", len(l.records))
	}

	if err := replica.Thaw(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, func() bool {
		_, err := r.RunOnce(ctx)
		return err == nil && o.depth(t, "s0")+o.depth(t, "s1") == 0
	})
	checkLog(t, o, readLog(t, brokers), false)

	o.purchase(t, "s0", 1000)
	greedy := newRelay(t, rdb, pub, outbox.RelayConfig{MinReplicas: 2, ReplicaTimeout: 50 * time.Millisecond})
	if n, err := greedy.RunOnce(ctx); n != 0 || !errors.Is(err, outbox.ErrReplicasBehind) {
		t.Fatalf("MinReplicas 2 with one replica: forwarded %d, %v; want 0, ErrReplicasBehind", n, err)
	}
}
