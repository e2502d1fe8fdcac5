package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/domain/foldgen"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/snapshot"
)

// dumpRedis is every key of rdb with its type and value, sorted: two gates
// with the same dump hold the same state.
func dumpRedis(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		typ := rdb.Type(ctx, k).Val()
		var v any
		switch typ {
		case "hash":
			v = rdb.HGetAll(ctx, k).Val()
		case "set":
			m := rdb.SMembers(ctx, k).Val()
			slices.Sort(m)
			v = m
		case "zset":
			v = rdb.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "string":
			v = rdb.Get(ctx, k).Val()
		default:
			v = "(" + typ + ")"
		}
		fmt.Fprintf(&b, "%s %s %v\n", typ, k, v)
	}
	return b.String()
}

// TestRestoreFromSnapshotEqualsFullRestore: restoring the gate from a fold
// that started from a snapshot and archived its closed sales (loaded back in
// chunks) writes exactly what a restore from a fold of the whole log in
// memory writes.
func TestRestoreFromSnapshotEqualsFullRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	brokers := testenv.Kafka(t, 4)
	envs, err := foldgen.Log(21, foldgen.Config{Sales: 12, MaxOrders: 15, Dups: 0.1, LateDups: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(testenv.Topic), kgo.RecordPartitioner(eventstore.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(envs [][]byte) {
		for _, b := range envs {
			_, ev, err := domain.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(ev.AggregateID()), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	produce(envs[:len(envs)/2])
	first, err := snapshot.Fold(ctx, brokers, testenv.Topic, snapshot.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Save(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	produce(envs[len(envs)/2:])

	res, err := snapshot.Fold(ctx, brokers, testenv.Topic, snapshot.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if res.From == nil || len(res.Fold.Archived) < 5 {
		t.Fatalf("fold from %+v with %d closed sales; want a snapshot and closed sales", res.From, len(res.Fold.Archived))
	}
	chunked := testenv.Redis(t)
	gate, err := commands.NewGate(commands.GateConfig{}, chunked)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := restoreFold(ctx, gate, res, commands.RestoreOptions{}, 20)
	if err != nil {
		t.Fatal(err)
	}

	full, _, err := eventstore.FoldLog(ctx, brokers, testenv.Topic)
	if err != nil {
		t.Fatal(err)
	}
	whole := testenv.Redis(t)
	gate, err = commands.NewGate(commands.GateConfig{}, whole)
	if err != nil {
		t.Fatal(err)
	}
	want, err := gate.Restore(ctx, full, commands.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sales) != len(want.Sales) || !slices.Equal(rep.Warnings, want.Warnings) {
		t.Errorf("restored %d sales, warnings %q; the full restore %d, %q", len(rep.Sales), rep.Warnings, len(want.Sales), want.Warnings)
	}
	got := dumpRedis(t, chunked)
	if n := strings.Count(got, " {sale:") + strings.Count(got, ":{sale:"); n < 50 {
		t.Fatalf("only %d sale keys restored:\n%s", n, got)
	}
	if want := dumpRedis(t, whole); got != want {
		t.Fatalf("the gate restored from the snapshot differs:\n got %s\nwant %s", got, want)
	}

	// A second restore is refused before anything is written.
	if _, err := restoreFold(ctx, gate, res, commands.RestoreOptions{}, 20); err == nil || !strings.Contains(err.Error(), "still holds") {
		t.Errorf("second restore: %v", err)
	}
}
