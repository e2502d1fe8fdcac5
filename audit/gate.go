package audit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// compareGate checks that the gate holds what the log says: per sale its
// remaining, reserved, paid and expired units and whether it ended, and per
// order its user, quantity and status. Sales whose outbox is not empty are
// left out: the gate is legitimately ahead of the log there. The orders of
// closed sales are compared by digest, and one by one where it differs.
func (a *Auditor) compareGate(ctx context.Context, log LogState, pending map[string]int64, violate func(string)) error {
	fold := log.Fold
	gateSales, err := a.gate.SaleIDs(ctx)
	if err != nil {
		return fmt.Errorf("audit gate: %w", err)
	}
	ids := map[string]bool{}
	for _, id := range gateSales {
		ids[id] = true
	}
	for id, s := range fold.Sales {
		if s.Known {
			ids[id] = true
		}
	}
	for id := range fold.Archived {
		ids[id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if pending[id] > 0 {
			continue
		}
		if err := a.compareGateSale(ctx, fold, id, violate); err != nil {
			return err
		}
	}

	seen := map[string]bool{}
	digests := map[string]domain.Digest{}
	err = a.gate.EachOrder(ctx, "", func(g commands.GateOrder) error {
		if pending[g.SaleID] > 0 {
			return nil
		}
		if _, archived := fold.Archived[g.SaleID]; archived {
			d := digests[g.SaleID]
			d.GateDigest(g.OrderID, g.Status, g.UserID, g.Quantity)
			digests[g.SaleID] = d
			return nil
		}
		seen[g.OrderID] = true
		compareGateOrder(g, fold.Orders[g.OrderID], violate)
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit gate: %w", err)
	}
	for _, o := range sortedOrders(fold.Orders) {
		if !seen[o.OrderID] && pending[o.SaleID] == 0 {
			violate(fmt.Sprintf("order %s (sale %s, %s): in the log but not in the gate", o.OrderID, o.SaleID, o.Status))
		}
	}
	itemise := func(saleID string, orders map[string]*domain.OrderState) error {
		seen := map[string]bool{}
		err := a.gate.EachOrder(ctx, saleID, func(g commands.GateOrder) error {
			if g.SaleID == saleID {
				seen[g.OrderID] = true
				compareGateOrder(g, orders[g.OrderID], violate)
			}
			return nil
		})
		for _, o := range sortedOrders(orders) {
			if !seen[o.OrderID] {
				violate(fmt.Sprintf("order %s (sale %s, %s): in the log but not in the gate", o.OrderID, o.SaleID, o.Status))
			}
		}
		return err
	}
	closed := func(a *domain.ArchivedSale) domain.Digest { return a.GateOrders }
	if err := compareClosed(log, digests, closed, "the gate holds", itemise, violate); err != nil {
		return fmt.Errorf("audit gate: %w", err)
	}
	return nil
}

// compareGateSale compares one sale's counters in the gate with the log's.
func (a *Auditor) compareGateSale(ctx context.Context, fold *domain.Fold, id string, violate func(string)) error {
	c, ok, err := a.gate.SaleCounters(ctx, id)
	if err != nil {
		return fmt.Errorf("audit gate: %w", err)
	}
	s, inLog := fold.SaleState(id)
	switch {
	case !ok && inLog && s.Known:
		violate(fmt.Sprintf("sale %s: in the log but not in the gate (lost? `seckill gate restore` rebuilds it)", id))
		return nil
	case !ok:
		return nil // registered in the sales set, never created
	case !inLog || !s.Known:
		violate(fmt.Sprintf("sale %s: in the gate but the log has no SaleCreated of it", id))
		return nil
	}
	var diffs []string
	diff := func(name string, gate, log any) {
		if gate != log {
			diffs = append(diffs, fmt.Sprintf("%s %v (log %v)", name, gate, log))
		}
	}
	diff("remaining", c.Remaining, s.Remaining())
	diff("reserved", c.Reserved, s.ReservedQty)
	diff("paid", c.Paid, s.PaidQty)
	diff("expired", c.Expired, s.ExpiredQty)
	diff("ended", c.Ended, s.Ended)
	// A sharded sale: each shard's pool (moves in flight counted where
	// StockMoved puts them), so a lost or doubled move shows.
	for i, sh := range c.Shards {
		diff(fmt.Sprintf("shard %d remaining", i), sh.Remaining, s.ShardRemaining(i))
	}
	if len(diffs) > 0 {
		violate(fmt.Sprintf("sale %s: gate has %s", id, strings.Join(diffs, ", ")))
	}
	return nil
}

// compareGateOrder compares an order of the gate with the log's (nil: the log
// has none).
func compareGateOrder(g commands.GateOrder, o *domain.OrderState, violate func(string)) {
	if o == nil || o.Status == "" {
		violate(fmt.Sprintf("order %s (sale %s): in the gate (%s) but not placed in the log", g.OrderID, g.SaleID, g.Status))
		return
	}
	var d diffs
	d.add("status", g.Status, o.Status)
	d.add("user", g.UserID, o.UserID)
	d.add("quantity", g.Quantity, o.Quantity)
	if len(d) > 0 {
		violate(fmt.Sprintf("order %s: gate has %s", g.OrderID, d))
	}
}

// compareClosed compares, per closed sale, the digest of the orders a store
// holds of it (got) with the log's (want). Where they differ it loads the
// sale's archive and itemises (compares order by order) for the first
// maxItemised such sales, and names the others with their counts.
func compareClosed(log LogState, got map[string]domain.Digest, want func(*domain.ArchivedSale) domain.Digest,
	holds string, itemise func(saleID string, orders map[string]*domain.OrderState) error, violate func(string)) error {
	n := 0
	for _, id := range log.Fold.ArchivedIDs() {
		w, g := want(log.Fold.Archived[id]), got[id]
		if w == g {
			continue
		}
		if n++; n > maxItemised {
			violate(fmt.Sprintf("sale %s (closed): %s %d of its orders, the log %d, and they differ (not itemised: more than %d closed sales differ)",
				id, holds, g.N, w.N, maxItemised))
			continue
		}
		arch, err := log.Archive(id)
		if err != nil {
			return err
		}
		orders := map[string]*domain.OrderState{}
		for _, o := range arch.OrderStates() {
			orders[o.OrderID] = o
		}
		if err := itemise(id, orders); err != nil {
			return err
		}
	}
	return nil
}

// sortedOrders returns the placed orders by id.
func sortedOrders(orders map[string]*domain.OrderState) []*domain.OrderState {
	out := make([]*domain.OrderState, 0, len(orders))
	for _, o := range orders {
		if o.Status != "" {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *domain.OrderState) int { return strings.Compare(a.OrderID, b.OrderID) })
	return out
}
