package commands

import (
	"context"
)

// Hooks for the sharding tests (shard_test.go).

// CRC16 is Redis Cluster's key hash.
func CRC16(s string) uint16 { return crc16(s) }

// RebalancePlan exposes rebalancePlan: moves as {from, to, qty} triples.
func RebalancePlan(left []int64) [][3]int64 {
	var total int64
	for _, l := range left {
		total += l
	}
	var out [][3]int64
	for _, m := range rebalancePlan(append([]int64(nil), left...), total) {
		out = append(out, [3]int64{int64(m.from), int64(m.to), m.qty})
	}
	return out
}

// MoveOutOnly runs the debit half of a move and stops, as a mover that died
// right after it would.
func (g *Gate) MoveOutOnly(ctx context.Context, saleID string, from, to int, qty int64) (string, int64, error) {
	lay, err := g.layoutOf(ctx, saleID)
	if err != nil {
		return "", 0, err
	}
	id, took, _, err := g.moveOut(ctx, lay, lay.shards[from], lay.shards[to], 1, qty, g.clock.Now())
	return id, took, err
}

// CreditOnly credits a move as a late mover would.
func (g *Gate) CreditOnly(ctx context.Context, saleID string, to int, id string, qty int64) error {
	lay, err := g.layoutOf(ctx, saleID)
	if err != nil {
		return err
	}
	return g.credit(ctx, lay.shards[to], id, qty)
}

// BeginEndOnly starts ending a sale and closes its first close shards, then
// stops, as a node that died half way through EndSale would.
func (g *Gate) BeginEndOnly(ctx context.Context, saleID, reason string, close int) error {
	lay, err := g.layoutOf(ctx, saleID)
	if err != nil {
		return err
	}
	if _, _, err := g.beginEnd(ctx, lay, reason); err != nil {
		return err
	}
	for _, sh := range lay.shards[:close] {
		if err := g.scripts.closeShard.Run(ctx, g.rdb, []string{sh.keys.Hash}).Err(); err != nil {
			return err
		}
	}
	return nil
}
