package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/migrations"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestUpAndStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)

	before, err := migrations.Status(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 || before[0].Version != 1 || before[0].Applied {
		t.Fatalf("status of an empty database: %+v", before)
	}
	if err := migrations.Up(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, dsn); err != nil { // nothing pending: no-op
		t.Fatalf("second up: %v", err)
	}
	after, err := migrations.Status(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range after {
		if !m.Applied || m.AppliedAt.IsZero() {
			t.Errorf("migration %+v not applied", m)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, table := range []string{"orders", "sales", "projection_checkpoints", "projection_dead_letters",
		"inventory", "inventory_orders", "daily_orders", "daily_sales", "daily_buyers", "daily_summary"} {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (err %v)", table, err)
		}
	}
}

// TestUpConcurrently starts several migrators at once, as several API nodes
// starting together do: each must succeed and the schema be applied once.
func TestUpConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if err := migrations.Up(ctx, dsn); err != nil {
				t.Errorf("up: %v", err)
			}
		})
	}
	wg.Wait()
	st, err := migrations.Status(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st {
		if !m.Applied {
			t.Errorf("migration %+v not applied", m)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id = 1 AND is_applied`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("migration 1 recorded %d times (err %v)", n, err)
	}
}

func TestUpRejectsBadDSN(t *testing.T) {
	t.Parallel()
	if err := migrations.Up(context.Background(), ""); err == nil {
		t.Fatal("want an error for an empty DSN")
	}
	if err := migrations.Up(context.Background(), "postgres://nobody@127.0.0.1:1/x?connect_timeout=1"); err == nil {
		t.Fatal("want an error for an unreachable server")
	}
}
