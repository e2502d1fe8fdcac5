package commands

import (
	"context"
	"fmt"
	"strconv"

	"github.com/seckill/seckill/domain"
)

// EndSale is the command that closes a sale before (or at) its end time.
type EndSale struct {
	SaleID string
	// Reason is domain.EndReasonEarly (default) or domain.EndReasonWindowClosed.
	Reason string
}

// endRetries bounds the optimistic loop below; each retry means a purchase or
// an expiry moved the pool between our read and the script, which a burst can
// do a few times but not forever.
const endRetries = 50

// EndSale ends a sale and returns its unsold pool to regular inventory,
// recorded in SaleEnded. Ending an ended sale is not an error: it returns the
// sale as it is. domain.ErrSaleNotFound for an unknown sale.
func (g *Gate) EndSale(ctx context.Context, cmd EndSale) (SaleView, error) {
	if cmd.Reason == "" {
		cmd.Reason = domain.EndReasonEarly
	}
	if !domain.ValidID(cmd.SaleID) {
		return SaleView{}, domain.ErrSaleNotFound
	}
	if ss, err := g.shardsOf(ctx, cmd.SaleID); err != nil {
		return SaleView{}, fmt.Errorf("end sale %s: %w", cmd.SaleID, err)
	} else if ss != nil {
		return g.endShardedSale(ctx, ss, cmd.Reason)
	}
	k := g.keys(cmd.SaleID)
	remaining, err := g.rdb.HGet(ctx, k.sale, "remaining").Result()
	if err != nil {
		if isNil(err) {
			return SaleView{}, domain.ErrSaleNotFound
		}
		return SaleView{}, fmt.Errorf("read sale %s: %w", cmd.SaleID, err)
	}
	defer g.forget(cmd.SaleID)
	for range endRetries {
		unsold, _ := strconv.ParseInt(remaining, 10, 64)
		now := g.clock.Now()
		env, err := domain.EncodeWith(domain.SaleEnded{SaleID: cmd.SaleID, Unsold: unsold, Reason: cmd.Reason}, now, domain.MetadataFrom(ctx))
		if err != nil {
			return SaleView{}, err
		}
		v, err := g.endSale.Run(ctx, g.rdb, []string{k.sale, k.outbox}, ms(now), remaining, cmd.Reason, env, g.NotifyChannel(), cmd.SaleID).Result()
		if err != nil {
			return SaleView{}, fmt.Errorf("end sale %s: %w", cmd.SaleID, err)
		}
		r, err := toReply(v)
		if err != nil {
			return SaleView{}, err
		}
		switch r.str(0) {
		case "ended", "already_ended":
			g.forget(cmd.SaleID)
			return g.Sale(ctx, cmd.SaleID)
		case "retry":
			remaining = r.str(1)
			continue
		}
		return SaleView{}, scriptError(r.str(0))
	}
	return SaleView{}, fmt.Errorf("end sale %s: pool kept moving: %w", cmd.SaleID, domain.ErrConflict)
}
