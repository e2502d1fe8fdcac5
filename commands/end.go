package commands

import (
	"context"
	"fmt"

	"github.com/seckill/seckill/domain"
)

// EndSale is the command that closes a sale before (or at) its end time.
type EndSale struct {
	SaleID string
	// Reason is domain.EndReasonEarly (default) or domain.EndReasonWindowClosed.
	Reason string
}

// EndSale ends a sale and returns its unsold pool to regular inventory,
// recorded in SaleEnded. Ending an ended sale is not an error: it returns the
// sale as it is. domain.ErrSaleNotFound for an unknown sale.
//
// The end touches every shard, so it is a sequence of steps, each one script
// on one slot and each idempotent, which any node may repeat or finish (the
// sweeper finishes an end whose head says "ending"):
//
//  1. the head records that the sale is ending, and why (the first reason
//     stays);
//  2. every shard closes: no purchase and no move out of it from now on, and
//     an expiry sends its units to regular inventory;
//  3. every move still pending is credited: none can start any more, so after
//     this no unit is between two shards;
//  4. every shard's pool is collected as its unsold units;
//  5. the head ends with SaleEnded (unsold = the sum, with each shard's part
//     when there are several).
//
// SaleEnded is written last, so the log ends the sale only once every unit
// is accounted for; until then the log still counts the pools, which is what
// a restore brings back if Redis is lost half way.
func (g *Gate) EndSale(ctx context.Context, cmd EndSale) (SaleView, error) {
	if cmd.Reason == "" {
		cmd.Reason = domain.EndReasonEarly
	}
	if !domain.ValidID(cmd.SaleID) {
		return SaleView{}, domain.ErrSaleNotFound
	}
	lay, err := g.layoutOf(ctx, cmd.SaleID)
	if err != nil {
		return SaleView{}, fmt.Errorf("end sale %s: %w", cmd.SaleID, err)
	}
	defer g.forget(lay.id)
	reason, done, err := g.beginEnd(ctx, lay, cmd.Reason)
	if err != nil || done {
		if err == nil {
			return g.Sale(ctx, lay.id)
		}
		return SaleView{}, err
	}
	unsold, perShard, err := g.closeAndCollect(ctx, lay)
	if err != nil {
		return SaleView{}, err
	}
	ev := domain.SaleEnded{SaleID: lay.id, Unsold: unsold, Reason: reason}
	if lay.n() > 1 {
		ev.ShardsUnsold = perShard
	}
	now := g.clock.Now()
	env, err := domain.EncodeWith(ev, now, domain.MetadataFrom(ctx))
	if err != nil {
		return SaleView{}, err
	}
	v, err := g.eval(ctx, g.scripts.endDone, []string{lay.head.Hash, lay.head.Outbox},
		ms(now), reason, unsold, env, g.ks.Notify(), lay.id)
	if err != nil {
		return SaleView{}, fmt.Errorf("end sale %s: %w", lay.id, err)
	}
	r, err := toReply(v)
	if err != nil {
		return SaleView{}, err
	}
	if c := r.str(0); c != "ended" && c != "already_ended" {
		return SaleView{}, scriptError(c)
	}
	if sg := g.loadedGuard(lay.id); sg != nil {
		sg.ended.Store(true)
	}
	g.forget(lay.id)
	return g.Sale(ctx, lay.id)
}

// beginEnd is step 1: it returns the reason the end goes on with (an end
// already begun keeps its own), or done when the sale has ended already.
func (g *Gate) beginEnd(ctx context.Context, lay *saleLayout, reason string) (string, bool, error) {
	v, err := g.eval(ctx, g.scripts.endBegin, []string{lay.head.Hash}, reason)
	if err != nil {
		return "", false, fmt.Errorf("end sale %s: %w", lay.id, err)
	}
	r, err := toReply(v)
	if err != nil {
		return "", false, err
	}
	switch r.str(0) {
	case "already_ended":
		return "", true, nil
	case "ending":
		return r.str(1), false, nil
	case "not_found":
		return "", false, domain.ErrSaleNotFound
	}
	return "", false, scriptError(r.str(0))
}

// closeAndCollect is steps 2 to 4: it returns the units collected, in all
// and per shard.
func (g *Gate) closeAndCollect(ctx context.Context, lay *saleLayout) (int64, []int64, error) {
	for _, sh := range lay.shards {
		if _, err := g.eval(ctx, g.scripts.closeShard, []string{sh.keys.Hash}); err != nil {
			return 0, nil, fmt.Errorf("end sale %s: close shard %d: %w", lay.id, sh.i, err)
		}
	}
	if err := g.recoverMoves(ctx, lay, 0); err != nil {
		return 0, nil, fmt.Errorf("end sale %s: %w", lay.id, err)
	}
	perShard := make([]int64, lay.n())
	var unsold int64
	for i, sh := range lay.shards {
		v, err := g.eval(ctx, g.scripts.collect, []string{sh.keys.Hash})
		if err != nil {
			return 0, nil, fmt.Errorf("end sale %s: collect shard %d: %w", lay.id, i, err)
		}
		r, err := toReply(v)
		if err != nil {
			return 0, nil, err
		}
		if r.str(0) != "collected" {
			return 0, nil, fmt.Errorf("end sale %s: collect shard %d: %s", lay.id, i, r.str(0))
		}
		perShard[i] = r.int(1)
		unsold += perShard[i]
		sh.left.Store(0)
	}
	return unsold, perShard, nil
}
