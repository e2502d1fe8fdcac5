package projections_test

// TEMPORARY until internal/testenv lands: fresh database on a dev server.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/projections"
)

var dbSeq atomic.Int64

func postgresDSN(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("t_%d_%d", time.Now().UnixNano(), dbSeq.Add(1))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return "postgres://postgres@127.0.0.1:55432/" + name + "?sslmode=disable"
}

// TEMPORARY until testenv.Kafka lands.
func kafkaBrokers(t testing.TB, partitions int) []string {
	t.Helper()
	b, err := eventstore.StartBroker(context.Background(), eventstore.BrokerConfig{
		Addr: "127.0.0.1:0", Topic: projections.DefaultTopic, Partitions: partitions,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addrs()
}
