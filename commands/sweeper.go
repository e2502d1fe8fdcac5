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

// SweepBatch is how many due reservations one sweep reads, and expires in
// one script call, per shard at a time.
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

// MoveRecoverAfter is how old a move must be before a sweeper credits it for
// its mover: a mover that is alive credits within one Redis timeout, and a
// credit is applied once whoever sends it, so this only saves work.
const MoveRecoverAfter = 5 * time.Second

// sweepSale expires every shard's due reservations, credits moves whose
// mover died, finishes an end a node began and did not finish, ends the sale
// when its window closed, and otherwise rebalances the shards' pools.
func (g *Gate) sweepSale(ctx context.Context, saleID string, res *SweepResult) error {
	lay, err := g.layoutOf(ctx, saleID)
	if errors.Is(err, domain.ErrSaleNotFound) {
		return nil // listed before its head is written, or being restored
	}
	if err != nil {
		return fmt.Errorf("sweep sale %s: %w", saleID, err)
	}
	// Reservations outlive the end of their sale, so every sweep expires.
	for _, sh := range lay.shards {
		if err := g.sweepDue(ctx, lay, sh, res); err != nil {
			return err
		}
	}
	h, err := g.rdb.HMGet(ctx, lay.head.Hash, "starts", "ends", "ended", "ending").Result()
	if err != nil {
		return fmt.Errorf("sweep sale %s: %w", saleID, err)
	}
	str := func(i int) string { s, _ := h[i].(string); return s }
	if str(2) == "1" {
		return nil // the end credited every move; none can start after it
	}
	if err := g.recoverMoves(ctx, lay, MoveRecoverAfter); err != nil {
		return err
	}
	now := g.clock.Now()
	switch {
	case str(3) != "":
		// An end that a node began and did not finish: the reason it began
		// with stays (end_begin.lua).
		if _, err := g.EndSale(ctx, EndSale{SaleID: saleID, Reason: str(3)}); err != nil {
			return err
		}
		res.Ended++
	case str(1) != "" && !now.Before(fromMS(str(1))):
		// The window SaleCreated set is what closes the sale.
		endCtx := domain.WithMetadata(ctx, domain.MetadataFrom(ctx).CausedBy(domain.EventID(saleID, domain.TypeSaleCreated)))
		if _, err := g.EndSale(endCtx, EndSale{SaleID: saleID, Reason: domain.EndReasonWindowClosed}); err != nil {
			return err
		}
		res.Ended++
	case str(0) != "" && !now.Before(fromMS(str(0))):
		_, err := g.Rebalance(ctx, saleID)
		return err
	}
	return nil
}

// sweepDue expires the due reservations of one shard, SweepBatch at a time.
func (g *Gate) sweepDue(ctx context.Context, lay *saleLayout, sh *shard, res *SweepResult) error {
	for {
		now := g.clock.Now()
		ids, err := g.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: sh.keys.Due, Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10),
			ByScore: true, Count: SweepBatch,
		}).Result()
		if err != nil {
			return fmt.Errorf("sweep sale %s: %w", lay.id, err)
		}
		if len(ids) > 0 {
			if err := g.expireOrders(ctx, lay, sh, ids, now, res); err != nil {
				return err
			}
		}
		if len(ids) < SweepBatch {
			return nil
		}
	}
}

// expireOrders expires the orders ids of shard sh that are still reserved
// and due, in one script call. Their events are encoded here from the
// orders as read; the script expires only what is still reserved.
func (g *Gate) expireOrders(ctx context.Context, lay *saleLayout, sh *shard, ids []string, now time.Time, res *SweepResult) error {
	pipe := g.rdb.Pipeline()
	reads := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		reads[i] = pipe.HMGet(ctx, sh.keys.Order(id), "user", "qty")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("sweep sale %s: read orders: %w", lay.id, err)
	}
	md := domain.MetadataFrom(ctx)
	args := []any{g.ks.Notify(), lay.id, sh.keys.OrderPf}
	for i, id := range ids {
		v := reads[i].Val()
		user, _ := v[0].(string)
		qtyS, _ := v[1].(string)
		qty, _ := strconv.ParseInt(qtyS, 10, 64)
		// An expiry is caused by the order's placement (its deadline), the
		// release by the expiry. Whether the units go back to the pool
		// depends on whether the sale has ended, which only the script can
		// know; it picks one of the two.
		expired, err := domain.EncodeWith(domain.OrderExpired{OrderID: id, SaleID: lay.id, UserID: user, Quantity: qty},
			now, md.CausedBy(domain.EventID(id, domain.TypeOrderPlaced)))
		if err != nil {
			return err
		}
		rmd := md.CausedBy(domain.EventID(id, domain.TypeOrderExpired))
		toPool, err := domain.EncodeWith(domain.StockReleased{SaleID: lay.id, OrderID: id, Quantity: qty, ToPool: true}, now, rmd)
		if err != nil {
			return err
		}
		toInventory, err := domain.EncodeWith(domain.StockReleased{SaleID: lay.id, OrderID: id, Quantity: qty}, now, rmd)
		if err != nil {
			return err
		}
		args = append(args, ms(now), id, expired, toPool, toInventory)
	}
	k := sh.keys
	v, err := g.eval(ctx, g.scripts.expire, []string{k.Hash, k.Due, k.Units, k.Outbox}, args...)
	if err != nil {
		return fmt.Errorf("expire orders of sale %s: %w", lay.id, err)
	}
	list, _ := v.([]any)
	for _, a := range list {
		r, _ := toReply(a)
		switch r.str(0) {
		case "expired":
			res.Expired++
		case "skipped":
			res.Lost++
		}
	}
	g.forget(lay.id)
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
