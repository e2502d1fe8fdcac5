package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/snapshot"
)

// restoreChunkOrders bounds the orders of closed sales loaded for one call of
// Gate.Restore (restoreFold's chunk): memory holds one chunk, not the history.
const restoreChunkOrders = 100_000

// restoreFold restores the gate from a fold whose closed sales are archived
// (package snapshot): the open sales in one call of Gate.Restore, then the
// closed ones in chunks of about chunk orders, each loaded from its archive. Every sale is checked
// for a live gate and an outbox backlog before anything is written, as
// Restore does within one call (here by the sale hash alone: a sale half
// restored by an interrupted run has none yet, and its chunk's Restore
// refuses it without --force).
func restoreFold(ctx context.Context, gate *commands.Gate, res *snapshot.Result, opts commands.RestoreOptions, chunk int64) (commands.RestoreReport, error) {
	fold := res.Fold
	var open, closed []string
	if len(opts.SaleIDs) == 0 {
		for id := range fold.Sales {
			open = append(open, id)
		}
		closed = fold.ArchivedIDs()
	}
	for _, id := range opts.SaleIDs {
		_, isOpen := fold.Sales[id]
		_, isClosed := fold.Archived[id]
		switch {
		case isOpen:
			open = append(open, id)
		case isClosed:
			closed = append(closed, id)
		default:
			return commands.RestoreReport{}, fmt.Errorf("restore: sale %s is not in the log", id)
		}
	}
	slices.Sort(open)
	rep := commands.RestoreReport{Warnings: fold.Violations()}
	if len(closed) > 0 {
		if err := restorePrecheck(ctx, gate, append(slices.Clone(open), closed...), opts.Force); err != nil {
			return rep, err
		}
	}
	warned := map[string]bool{}
	for _, w := range rep.Warnings {
		warned[w] = true
	}
	add := func(r commands.RestoreReport) {
		rep.Sales = append(rep.Sales, r.Sales...)
		rep.Skipped = append(rep.Skipped, r.Skipped...)
		rep.Duration += r.Duration
		for _, w := range r.Warnings {
			if !warned[w] {
				warned[w] = true
				rep.Warnings = append(rep.Warnings, w)
			}
		}
	}
	call := func(f *domain.Fold, ids []string) error {
		o := opts
		o.SaleIDs = ids
		r, err := gate.Restore(ctx, f, o)
		add(r)
		return err
	}
	if len(open) > 0 {
		if err := call(fold, open); err != nil {
			return rep, err
		}
	}
	for len(closed) > 0 {
		part, n, ids := domain.NewFold(), int64(0), []string(nil)
		for len(closed) > 0 && n < chunk {
			a, err := res.Archive(closed[0])
			if err != nil {
				return rep, err
			}
			part.Reopen(a)
			n += int64(len(a.Orders))
			ids, closed = append(ids, closed[0]), closed[1:]
		}
		if err := call(part, ids); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// restorePrecheck refuses, before anything is written, sales whose outbox
// holds entries and, without force, sales the gate still has.
func restorePrecheck(ctx context.Context, gate *commands.Gate, ids []string, force bool) error {
	backlog, err := gate.OutboxBacklog(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var live, pending []string
	for _, id := range ids {
		if n := backlog[id]; n > 0 {
			pending = append(pending, fmt.Sprintf("%s (%d entries)", id, n))
		}
		if force {
			continue
		}
		if _, ok, err := gate.SaleCounters(ctx, id); err != nil {
			return fmt.Errorf("restore: %w", err)
		} else if ok {
			live = append(live, id)
		}
	}
	if len(live) > 0 {
		return fmt.Errorf("restore: sale %s: %w", strings.Join(live, ", "), commands.ErrGateLive)
	}
	if len(pending) > 0 {
		return fmt.Errorf("restore: outbox of sale %s: %w: the gate is ahead of the log; let the relay forward it first",
			strings.Join(pending, ", "), commands.ErrOutboxPending)
	}
	return nil
}
