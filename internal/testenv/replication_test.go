package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisSentinelFailover builds a primary, a replica and 3 Sentinels,
// kills the primary (kill -9) and checks that the Sentinels promote the
// replica with the data written before, and that a failover client
// (what a redis+sentinel:// URL opens) writes to the new primary.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	primary := RedisServer(t)
	replica := RedisReplica(t, primary)
	s := RedisSentinels(t, primary, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if got, err := s.Primary(ctx); err != nil || got != primary.Addr() {
		t.Fatalf("primary %q, %v; want %s", got, err, primary.Addr())
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.Master, SentinelAddrs: s.Addrs()})
	defer c.Close()
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The write is on the replica before the primary dies.
	if n, err := c.Do(ctx, "WAIT", 1, 1000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d, %v", n, err)
	}
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := s.WaitFailover(ctx, primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if got != replica.Addr() {
		t.Fatalf("promoted %s; want the replica %s", got, replica.Addr())
	}
	t.Logf("failover to %s took %v after the kill", got, time.Since(start).Round(time.Millisecond))
	// The failover client follows: the acknowledged write is there, and a
	// new one lands on the promoted replica.
	testEventually(t, 10*time.Second, func() error { return c.Set(ctx, "k2", "after", 0).Err() })
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "before" {
		t.Errorf("k = %q, %v after the failover; want before", v, err)
	}
	direct := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer direct.Close()
	if v, err := direct.Get(ctx, "k2").Result(); err != nil || v != "after" {
		t.Errorf("k2 on the promoted replica = %q, %v; want after", v, err)
	}
}

// testEventually retries fn until it succeeds or d passes.
func testEventually(t *testing.T, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
