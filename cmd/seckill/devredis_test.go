//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevRedisReplicas: `seckill dev --replicas 1` runs a primary, a replica
// and a Sentinel, and connects through the Sentinel. Killing the primary
// promotes the replica; the next start makes the promoted node the primary
// again, with what was written through it, rather than the stale one.
func TestDevRedisReplicas(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := startDevRedis(ctx, data, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.stop() }()
	if !strings.HasPrefix(d.URL(), "redis+sentinel://") || d.primary != 0 {
		t.Fatalf("URL %s, primary %d; want a Sentinel URL and node 0", d.URL(), d.primary)
	}
	rdb, err := openRedis(d.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	want, have, err := (&replicaFlags{minReplicas: autoReplicas}).resolve(ctx, rdb, d.URL())
	if err != nil || want != 1 || have != 1 {
		t.Fatalf("min replicas %d (have %d), %v; want 1 of 1 behind the Sentinel", want, have, err)
	}
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Do(ctx, "WAIT", 1, 2000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d, %v", n, err)
	}
	if err := d.nodes[0].Kill(); err != nil {
		t.Fatal(err)
	}
	// The Sentinel waits 2 s, then promotes; the client follows.
	deadline := time.Now().Add(30 * time.Second)
	for rdb.Set(ctx, "k2", "after", 0).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("no write through the Sentinel URL 30 s after the primary was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	rdb.Close()
	d.stop()
	if b, err := os.ReadFile(filepath.Join(data, "redis-primary")); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("redis-primary %q, %v; want 1, the promoted replica", b, err)
	}

	if d, err = startDevRedis(ctx, data, 1); err != nil {
		t.Fatal(err)
	}
	if d.primary != 1 {
		t.Fatalf("restarted with primary %d; want 1", d.primary)
	}
	rdb, err = openRedis(d.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for _, k := range []string{"k", "k2"} {
		if v, err := rdb.Get(ctx, k).Result(); err != nil || v == "" {
			t.Errorf("%s after the restart: %q, %v", k, v, err)
		}
	}
}
