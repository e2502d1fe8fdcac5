package testenv_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/internal/testenv"
)

// TestRedisCluster checks that the cluster is whole (every slot served, by
// three distinct masters) and that it enforces what the gate relies on: a
// script whose keys share a hash tag runs, one whose keys do not is refused.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := testenv.RedisClusterClient(t, 3)

	// CLUSTER SLOTS is deprecated for CLUSTER SHARDS, but go-redis v9's
	// ClusterShards through this client left it dialing node ids as addresses.
	slots, err := c.ClusterSlots(ctx).Result() //nolint:staticcheck // see above
	if err != nil {
		t.Fatal(err)
	}
	covered, masters := 0, map[string]bool{}
	for _, s := range slots {
		covered += s.End - s.Start + 1
		masters[s.Nodes[0].Addr] = true
	}
	if covered != 16384 || len(masters) != 3 {
		t.Fatalf("slots cover %d of 16384 on %d masters; want all on 3", covered, len(masters))
	}

	// Keys of many tags land on every master.
	seen := map[string]bool{}
	for i := range 64 {
		key := fmt.Sprintf("{sale:%d}:sale", i)
		if err := c.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		seen[node.Options().Addr] = true
	}
	if len(seen) != 3 {
		t.Errorf("64 sales landed on %d masters, want 3", len(seen))
	}

	script := redis.NewScript(`redis.call('SET', KEYS[1], 'a'); redis.call('SET', KEYS[2], 'b'); return 1`)
	if err := script.Run(ctx, c, []string{"{sale:x}:a", "{sale:x}:b"}).Err(); err != nil {
		t.Errorf("script on one hash tag: %v", err)
	}
	err = script.Run(ctx, c, []string{"{sale:x}:a", "{sale:y}:b"}).Err()
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("script across hash tags: err %v, want CROSSSLOT", err)
	}

	// Pub/sub reaches subscribers connected to another master.
	ps := c.Subscribe(ctx, "seckill:notify")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	for addr := range masters {
		n := redis.NewClient(&redis.Options{Addr: addr})
		err := n.Publish(ctx, "seckill:notify", "from "+addr).Err()
		n.Close()
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := ps.ReceiveMessage(rctx)
		cancel()
		if err != nil || msg.Payload != "from "+addr {
			t.Errorf("message published on %s: %v, %v", addr, msg, err)
		}
	}
}

// TestRedisClusterFailover kills a master of a cluster with a replica per
// master and checks that the replica takes its slots over with the data
// written (and WAITed for) before.
func TestRedisClusterFailover(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cl := testenv.RedisClusterReplicas(t, 3, 1)
	// go-redis re-reads the slot map on MOVED, and otherwise only every
	// ClusterStateReloadInterval (60 s by default): a dead master answers
	// no MOVED. seckill's client re-reads it every second (openRedis).
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ClusterStateReloadInterval: time.Second})
	defer c.Close()
	const key = "{sale:x}:k"
	if err := c.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m, err := c.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// WAIT on the master's own connection: the write is on its replica.
	if n, err := m.Do(ctx, "WAIT", 1, 1000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on %s: %d, %v", m.Options().Addr, n, err)
	}
	var victim, heir string
	for i, n := range cl.Masters {
		if n.Addr() == m.Options().Addr {
			victim, heir = n.Addr(), cl.Replicas[i][0].Addr()
			if err := n.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if victim == "" {
		t.Fatalf("%s is none of the masters %v", m.Options().Addr, cl.Addrs())
	}
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		err := c.Set(ctx, "{sale:x}:k2", "after", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			h := redis.NewClient(&redis.Options{Addr: heir})
			nodes, _ := h.ClusterNodes(ctx).Result()
			h.Close()
			t.Fatalf("no write to the killed master's slot within 30s: %v; the replica's CLUSTER NODES:\n%s", err, nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("slot of %s writable again %v after its master %s was killed", key, time.Since(start).Round(time.Millisecond), victim)
	if v, err := c.Get(ctx, key).Result(); err != nil || v != "before" {
		t.Errorf("%s = %q, %v after the failover; want before", key, v, err)
	}
	if now, err := c.MasterForKey(ctx, key); err != nil || now.Options().Addr != heir {
		t.Errorf("the slot's master is %v (%v); want the replica %s", now, err, heir)
	}
}
