package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

func isNil(err error) bool { return errors.Is(err, redis.Nil) }

// SweepResult counts what one sweep did.
type SweepResult struct {
	Expired int // reservations this call expired
	Lost    int // due reservations another sweeper or a payment got to first
	Ended   int // sales whose window this call closed
}

// Expire expires one reservation if it is still reserved and past its
// deadline. It returns true if this call expired it; false if the order was
// paid, already expired (by another sweeper) or not yet due.
func (g *Gate) Expire(ctx context.Context, orderID string) (bool, error) {
	o, err := g.Order(ctx, orderID)
	if err != nil {
		return false, err
	}
	if o.Status != domain.StatusReserved {
		return false, nil
	}
	now := g.clock.Now()
	// An expiry is caused by the order's placement (its deadline), the
	// release by the expiry; both in the sweep's unit of work.
	md := domain.MetadataFrom(ctx)
	expired, err := domain.EncodeWith(domain.OrderExpired{
		OrderID: o.OrderID, SaleID: o.SaleID, UserID: o.UserID, Quantity: o.Quantity,
	}, now, md.CausedBy(domain.EventID(o.OrderID, domain.TypeOrderPlaced)))
	if err != nil {
		return false, err
	}
	// Whether the units go back to the pool depends on whether the sale has
	// ended, which only the script can know; it picks one of the two.
	md = md.CausedBy(domain.EventID(o.OrderID, domain.TypeOrderExpired))
	toPool, err := domain.EncodeWith(domain.StockReleased{SaleID: o.SaleID, OrderID: o.OrderID, Quantity: o.Quantity, ToPool: true}, now, md)
	if err != nil {
		return false, err
	}
	toInventory, err := domain.EncodeWith(domain.StockReleased{SaleID: o.SaleID, OrderID: o.OrderID, Quantity: o.Quantity}, now, md)
	if err != nil {
		return false, err
	}
	// The order's shard of a sharded sale, else the sale's keys.
	k, _, _, err := g.orderKeys(ctx, o.OrderID)
	if err != nil {
		return false, err
	}
	v, err := g.expire.Run(ctx, g.rdb, []string{k.order(o.OrderID), k.due, k.outbox, k.sale, k.units},
		ms(now), o.OrderID, expired, toPool, toInventory, g.NotifyChannel(), o.SaleID).Result()
	if err != nil {
		return false, fmt.Errorf("expire order %s: %w", o.OrderID, err)
	}
	r, err := toReply(v)
	if err != nil {
		return false, err
	}
	if r.str(0) == "expired" {
		g.forget(o.SaleID)
		return true, nil
	}
	return false, nil
}

// SweepBatch is how many due reservations one sweep reads per sale at a time.
const SweepBatch = 200

// Sweep expires every reservation past its deadline and ends every sale whose
// window has closed. Any number of sweepers may run at once.
func (g *Gate) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	// One pass is one unit of work: its events share a correlation id.
	if md := domain.MetadataFrom(ctx); md.CorrelationID == "" {
		md.CorrelationID = "sweep-" + newID()
		ctx = domain.WithMetadata(ctx, md)
	}
	ids, err := g.SaleIDs(ctx)
	if err != nil {
		return res, err
	}
	var errs []error
	for _, id := range ids {
		if err := g.sweepSale(ctx, id, &res); err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

func (g *Gate) sweepSale(ctx context.Context, saleID string, res *SweepResult) error {
	if ss, err := g.shardsOf(ctx, saleID); err != nil {
		return fmt.Errorf("sweep sale %s: %w", saleID, err)
	} else if ss != nil {
		return g.sweepShardedSale(ctx, ss, res)
	}
	k := g.keys(saleID)
	for {
		now := g.clock.Now()
		due, err := g.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: k.due, Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10),
			ByScore: true, Count: SweepBatch,
		}).Result()
		if err != nil {
			return fmt.Errorf("sweep sale %s: %w", saleID, err)
		}
		for _, orderID := range due {
			ok, err := g.Expire(ctx, orderID)
			switch {
			case errors.Is(err, domain.ErrOrderNotFound):
				g.rdb.ZRem(ctx, k.due, orderID) // a stale entry; nothing to release
			case err != nil:
				return err
			case ok:
				res.Expired++
			default:
				res.Lost++
			}
		}
		if len(due) < SweepBatch {
			break
		}
	}
	h, err := g.rdb.HMGet(ctx, k.sale, "ends", "ended").Result()
	if err != nil {
		return fmt.Errorf("sweep sale %s: %w", saleID, err)
	}
	ends, _ := h[0].(string)
	ended, _ := h[1].(string)
	if ends != "" && ended != "1" && !g.clock.Now().Before(fromMS(ends)) {
		// The window SaleCreated set is what closes the sale.
		endCtx := domain.WithMetadata(ctx, domain.MetadataFrom(ctx).CausedBy(domain.EventID(saleID, domain.TypeSaleCreated)))
		if _, err := g.EndSale(endCtx, EndSale{SaleID: saleID, Reason: domain.EndReasonWindowClosed}); err != nil {
			return err
		}
		res.Ended++
	}
	return nil
}

// SweeperConfig configures RunSweeper.
type SweeperConfig struct {
	// Interval between sweeps; default 1s. Deadlines are minutes long, so a
	// second of lateness is invisible to shoppers and cheap for Redis.
	Interval time.Duration
	Logger   *slog.Logger
}

// RunSweeper sweeps every Interval until ctx is done.
func (g *Gate) RunSweeper(ctx context.Context, cfg SweeperConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		res, err := g.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("sweep", "err", err)
		}
		if res.Expired > 0 || res.Ended > 0 {
			cfg.Logger.Info("sweep", "expired", res.Expired, "lost_races", res.Lost, "sales_ended", res.Ended)
		}
	}
}
