package commands

import (
	"context"
	"fmt"
)

// Hooks for the sharding tests (shard_test.go).

// CRC16 is Redis Cluster's key hash.
func CRC16(s string) uint16 { return crc16(s) }

// ShardTag is the hash tag of shard i of n of a sale.
func ShardTag(saleID string, i, n int) string { return shardTag(saleID, i, n) }

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
	ss, err := g.shardsOf(ctx, saleID)
	if err != nil || ss == nil {
		return "", 0, fmt.Errorf("sale %s: not sharded (%v)", saleID, err)
	}
	id, took, _, err := g.moveOut(ctx, ss, from, to, 1, qty, g.clock.Now())
	return id, took, err
}

// CreditOnly credits a move as a late mover would.
func (g *Gate) CreditOnly(ctx context.Context, saleID string, to int, id string, qty int64) error {
	ss, err := g.shardsOf(ctx, saleID)
	if err != nil || ss == nil {
		return fmt.Errorf("sale %s: not sharded (%v)", saleID, err)
	}
	return g.credit(ctx, ss, to, id, qty)
}

// BeginEndOnly starts ending a sharded sale and closes its first close
// shards, then stops, as a node that died half way through EndSale would.
func (g *Gate) BeginEndOnly(ctx context.Context, saleID, reason string, close int) error {
	ss, err := g.shardsOf(ctx, saleID)
	if err != nil || ss == nil {
		return fmt.Errorf("sale %s: not sharded (%v)", saleID, err)
	}
	if err := endBeginScript.Run(ctx, g.rdb, []string{g.keys(saleID).sale}, reason).Err(); err != nil {
		return err
	}
	for _, k := range ss.keys[:close] {
		if err := closeShardScript.Run(ctx, g.rdb, []string{k.sale}).Err(); err != nil {
			return err
		}
	}
	return nil
}
