package draw

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// Run holds the due draws of every sale with entries every Tick until ctx
// ends. Any number of API nodes may run it: a sale's draws are held by one
// drawer at a time (its lease), and holding a slice twice records it once.
func (d *Draws) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := d.RunOnce(ctx); err != nil && ctx.Err() == nil {
			d.cfg.Log.Warn("draw pass failed", "err", err)
		}
	}
}

// RunOnce holds the draws that are due now, in every sale with entries.
func (d *Draws) RunOnce(ctx context.Context) error {
	ids, err := d.rdb.SMembers(ctx, d.registry()).Result()
	if err != nil {
		return fmt.Errorf("draw: list sales: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := d.drawSale(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// drawSale holds the sale's due slices, oldest first.
func (d *Draws) drawSale(ctx context.Context, id string) error {
	sale, err := d.gate.Sale(ctx, id)
	if errors.Is(err, domain.ErrSaleNotFound) {
		return d.rdb.SRem(ctx, d.registry(), id).Err()
	} else if err != nil {
		return err
	}
	k := d.keys(id)
	got, err := d.lease.Run(ctx, d.rdb, []string{k.lease()}, d.owner, d.cfg.LeaseTTL.Milliseconds()).Int()
	if err != nil || got == 0 {
		return err // another drawer has this sale
	}
	w := windowOf(sale)
	if w.interval <= 0 {
		return fmt.Errorf("draw: sale %s has entries but no release interval", id)
	}
	now := d.gate.Now()
	if now.Add(-d.cfg.Grace).Before(w.closes(0)) {
		return nil
	}
	last := w.slice(now.Add(-d.cfg.Grace)) - 1 // the newest slice whose window closed Grace ago
	due, err := d.rdb.ZRangeByScore(ctx, k.pending(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(last, 10)}).Result()
	if err != nil {
		return fmt.Errorf("draw: due slices of sale %s: %w", id, err)
	}
	if len(due) == 0 {
		if sale.State == commands.SaleEnded {
			// Nothing left to draw and nothing will be entered.
			return d.rdb.SRem(ctx, d.registry(), id).Err()
		}
		return nil
	}
	if err := d.rdb.SAdd(ctx, d.gate.OutboxesKey(), k.outbox()).Err(); err != nil {
		return fmt.Errorf("draw: register the outbox of sale %s: %w", id, err)
	}
	for _, s := range due {
		slice, _ := strconv.ParseInt(s, 10, 64)
		if err := d.drawSlice(ctx, sale, w, slice); err != nil {
			return err // this slice again next time, before the later ones
		}
		if err := d.rdb.ZRem(ctx, k.pending(), s).Err(); err != nil {
			return fmt.Errorf("draw: sale %s slice %d done: %w", id, slice, err)
		}
	}
	return nil
}

// drawSlice draws a slice (or finds it drawn) and places its winners' orders.
func (d *Draws) drawSlice(ctx context.Context, sale commands.SaleView, w window, slice int64) error {
	winners, err := d.holdSlice(ctx, sale, w, slice)
	if err != nil {
		return err
	}
	for _, user := range winners {
		if err := d.place(ctx, sale, slice, user); err != nil {
			return err
		}
	}
	return nil
}

// holdSlice draws the slice and records it, once; a slice recorded before
// (by a drawer that stopped before placing every order) answers its
// recorded winners.
func (d *Draws) holdSlice(ctx context.Context, sale commands.SaleView, w window, slice int64) ([]string, error) {
	k := d.keys(sale.ID)
	expire := d.ttl(w)
	for range 5 {
		entrants, err := d.sortedMembers(ctx, k.entrants(slice))
		if err != nil {
			return nil, fmt.Errorf("draw: entrants of sale %s slice %d: %w", sale.ID, slice, err)
		}
		units, err := d.units(ctx, sale, w, slice)
		if err != nil {
			return nil, err
		}
		seed, err := newSeed()
		if err != nil {
			return nil, err
		}
		now := d.gate.Now()
		ev := domain.DrawHeld{
			SaleID: sale.ID, DrawID: domain.DrawIDOf(sale.ID, slice), Slice: slice,
			ClosedAt: w.closes(slice).UTC(), Seed: hex.EncodeToString(seed), Units: units,
			Entrants: entrants, Winners: domain.Draw(seed, entrants, units),
		}
		// The draw is its own unit of work, caused by the drawer that held
		// it (which node, for an operator); the winners' orders name the
		// draw as their cause (place).
		env, err := domain.EncodeWith(ev, now, domain.Metadata{CorrelationID: ev.DrawID, CausationID: "drawer " + d.owner})
		if err != nil {
			return nil, fmt.Errorf("draw: encode %s: %w", ev.DrawID, err)
		}
		args := []any{slice, len(entrants), env, expire}
		for _, u := range ev.Winners {
			args = append(args, u)
		}
		res, err := d.hold.Run(ctx, d.rdb, []string{k.entrants(slice), k.results(), k.held(), k.outbox()}, args...).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("draw: hold %s: %w", ev.DrawID, err)
		}
		switch res[0] {
		case "held":
			d.cfg.Log.Info("draw held", "sale", sale.ID, "slice", slice, "entrants", len(entrants), "units", units, "winners", len(ev.Winners))
			return res[1:], nil
		case "already":
			return res[1:], nil
		case "changed":
			continue // an entry came in late: draw again with it
		}
		return nil, fmt.Errorf("draw: hold %s: unexpected answer %v", ev.DrawID, res)
	}
	return nil, fmt.Errorf("draw: sale %s slice %d: its entrants kept changing", sale.ID, slice)
}

// units is what the slice offers: the units released by the end of its
// window that no order holds now (orders of earlier slices hold theirs;
// expired ones gave theirs back).
func (d *Draws) units(ctx context.Context, sale commands.SaleView, w window, slice int64) (int64, error) {
	c, ok, err := d.gate.SaleCounters(ctx, sale.ID)
	if err != nil || !ok {
		return 0, fmt.Errorf("draw: counters of sale %s: %w (found %v)", sale.ID, err, ok)
	}
	released := sale.Protections.Released(sale.Stock, w.closes(slice).Sub(w.starts)-time.Millisecond)
	return max(0, released-(c.Stock-c.Remaining)), nil
}

// place buys one unit for a winner through the gate's ordinary purchase,
// keyed by the slice, so placing it again answers the same order. A
// refusal (limit reached, blocked, the sale ended meanwhile …) is the
// winner's outcome; a failure (Redis) is returned, to try again.
func (d *Draws) place(ctx context.Context, sale commands.SaleView, slice int64, user string) error {
	drawID := domain.DrawIDOf(sale.ID, slice)
	ctx = domain.WithMetadata(ctx, domain.Metadata{CorrelationID: drawID, CausationID: domain.EventID(drawID, domain.TypeDrawHeld)})
	cmd := commands.Purchase{SaleID: sale.ID, UserID: user, Quantity: 1, IdempotencyKey: domain.DrawKey(slice)}
	if sale.RequireToken {
		tok, err := d.gate.PurchaseToken(ctx, sale.ID, user)
		if refusal(err) {
			return d.setResult(ctx, sale.ID, slice, user, "refused", "", err.Error())
		} else if err != nil {
			return fmt.Errorf("draw: token for winner %s of sale %s: %w", user, sale.ID, err)
		}
		cmd.Token = tok.Token
	}
	res, err := d.gate.Purchase(ctx, cmd)
	switch {
	case refusal(err):
		d.cfg.Log.Info("draw winner refused", "sale", sale.ID, "slice", slice, "user", user, "err", err)
		return d.setResult(ctx, sale.ID, slice, user, "refused", "", err.Error())
	case err != nil:
		return fmt.Errorf("draw: order for winner %s of sale %s: %w", user, sale.ID, err)
	}
	return d.setResult(ctx, sale.ID, slice, user, "ordered", res.OrderID, "")
}

// refusal reports whether err is the gate's decision rather than a failure.
func refusal(err error) bool {
	var ve *domain.ValidationError
	return err != nil && (errors.As(err, &ve) || slicesContainsIs(err, domain.ErrSoldOut, domain.ErrInsufficientStock,
		domain.ErrLimitReached, domain.ErrEnded, domain.ErrNotStarted, domain.ErrNotYetReleased, domain.ErrBlocked,
		domain.ErrRateLimited, domain.ErrTokenRequired, domain.ErrSaleNotFound, domain.ErrUnauthenticated))
}

func slicesContainsIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
