package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
)

// lag drives a steady open-loop purchase rate and reads, from the orders read
// model, how long each order took from the gate's decision (placed_at) to the
// projection applying it (updated_at).
func (b *bench) lag(ctx context.Context) error {
	perSec, secs := 5000.0, 8
	if b.cfg.quick {
		perSec, secs = 500, 4
	}
	n := int(perSec) * secs
	sale, next, err := b.freshSale(ctx, n)
	if err != nil {
		return err
	}
	res, err := b.load(ctx, fmt.Sprintf("steady purchases at %.0f/s for the lag measurement", perSec), b.api, n, next, perSec)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, b.dev.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	accepted := res.ByStatus[http.StatusAccepted]
	deadline := time.Now().Add(60 * time.Second)
	for {
		var have int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM orders WHERE sale_id = $1 AND status <> ''`, sale).Scan(&have); err != nil {
			return err
		}
		if have >= accepted {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lag phase: read model has %d of %d orders after 60s", have, accepted)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var p50, p99, pmax float64
	if err := conn.QueryRow(ctx, `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
		FROM (SELECT extract(epoch FROM updated_at - placed_at) * 1000 AS l FROM orders WHERE sale_id = $1) x`, sale).
		Scan(&p50, &p99, &pmax); err != nil {
		return err
	}
	b.rows = append(b.rows, row{fmt.Sprintf("gate → read model lag at %.0f purchases/s", perSec),
		fmt.Sprintf("p50 %.0f ms, p99 %.0f ms", p50, p99), "target p99 < 1 s", "", fmt.Sprintf("max %.0f ms; %.0f req/s achieved", pmax, res.Throughput())})
	return nil
}
