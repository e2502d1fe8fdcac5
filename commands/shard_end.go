package commands

import (
	"context"
	"fmt"

	"github.com/seckill/seckill/domain"
)

// endShardedSale ends a sharded sale (EndSale). The end touches every shard,
// so it is a sequence of steps, each one script on one slot and each
// idempotent, which any node may repeat or finish (the sweeper finishes an
// end whose head says "ending"):
//
//  1. the head records that the sale is ending, and why (the first reason
//     stays);
//  2. every shard closes: no purchase and no move out of it from now on, and
//     an expiry sends its units to regular inventory;
//  3. every move still pending is credited: none can start any more, so after
//     this no unit is between two shards;
//  4. every shard's pool is collected as its unsold units;
//  5. the head ends with SaleEnded (unsold = the sum, with each shard's part).
//
// SaleEnded is written last, so the log ends the sale only once every unit
// is accounted for; until then the log still counts the pools, which is what
// a restore brings back if Redis is lost half way.
func (g *Gate) endShardedSale(ctx context.Context, ss *shardedSale, reason string) (SaleView, error) {
	defer g.forget(ss.id)
	head := g.keys(ss.id)
	v, err := endBeginScript.Run(ctx, g.rdb, []string{head.sale}, reason).Result()
	if err != nil {
		return SaleView{}, fmt.Errorf("end sale %s: %w", ss.id, err)
	}
	r, err := toReply(v)
	if err != nil {
		return SaleView{}, err
	}
	switch r.str(0) {
	case "already_ended":
		return g.Sale(ctx, ss.id)
	case "ending":
		reason = r.str(1)
	case "not_found":
		return SaleView{}, domain.ErrSaleNotFound
	default:
		return SaleView{}, scriptError(r.str(0))
	}
	for i, k := range ss.keys {
		if err := closeShardScript.Run(ctx, g.rdb, []string{k.sale}).Err(); err != nil {
			return SaleView{}, fmt.Errorf("end sale %s: close shard %d: %w", ss.id, i, err)
		}
	}
	if _, err := g.recoverMoves(ctx, ss, 0); err != nil {
		return SaleView{}, fmt.Errorf("end sale %s: %w", ss.id, err)
	}
	perShard := make([]int64, ss.n)
	var unsold int64
	for i, k := range ss.keys {
		v, err := collectShardScript.Run(ctx, g.rdb, []string{k.sale}).Result()
		if err != nil {
			return SaleView{}, fmt.Errorf("end sale %s: collect shard %d: %w", ss.id, i, err)
		}
		r, err := toReply(v)
		if err != nil {
			return SaleView{}, err
		}
		if r.str(0) != "collected" {
			return SaleView{}, fmt.Errorf("end sale %s: collect shard %d: %s", ss.id, i, r.str(0))
		}
		perShard[i] = r.int(1)
		unsold += perShard[i]
		ss.left[i].Store(0)
	}
	now := g.clock.Now()
	env, err := domain.EncodeWith(domain.SaleEnded{SaleID: ss.id, Unsold: unsold, Reason: reason, ShardsUnsold: perShard}, now, domain.MetadataFrom(ctx))
	if err != nil {
		return SaleView{}, err
	}
	v, err = endShardsScript.Run(ctx, g.rdb, []string{head.sale, head.outbox},
		ms(now), reason, unsold, env, g.NotifyChannel(), ss.id).Result()
	if err != nil {
		return SaleView{}, fmt.Errorf("end sale %s: %w", ss.id, err)
	}
	if r, err = toReply(v); err != nil {
		return SaleView{}, err
	}
	if c := r.str(0); c != "ended" && c != "already_ended" {
		return SaleView{}, scriptError(c)
	}
	if sg := g.loadedGuard(ss.id); sg != nil {
		sg.ended.Store(true)
	}
	g.forget(ss.id)
	return g.Sale(ctx, ss.id)
}
