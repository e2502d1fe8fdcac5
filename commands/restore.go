package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/seckill/seckill/domain"
)

// ErrGateLive is returned by Restore when the gate still holds a sale it was
// asked to restore and RestoreOptions.Force is not set.
var ErrGateLive = errors.New("the gate still holds the sale")

// ErrOutboxPending is returned by Restore when a sale's outbox holds entries:
// events the gate decided that may not be in the log yet. Restoring would
// undo them; let the relay forward them first.
var ErrOutboxPending = errors.New("outbox not empty")

// RestoreOptions says what Restore restores.
type RestoreOptions struct {
	// SaleIDs limits the restore to these sales; empty restores every sale
	// of the fold.
	SaleIDs []string
	// Force overwrites sales the gate still has (any of their keys exists):
	// their keys are deleted and rewritten from the log. Without it Restore
	// refuses with ErrGateLive and changes nothing.
	Force bool
	// BatchSize is how many commands go to Redis in one pipeline. Default 1000.
	BatchSize int
}

// RestoreReport tells what Restore changed.
type RestoreReport struct {
	Sales []SaleRestore
	// Skipped names sales of the log that were not restored, and why.
	Skipped []string
	// Warnings are the fold's invariant violations (domain.Fold.Violations)
	// and anything the gate's layout cannot express; the restore writes
	// the fold as it is.
	Warnings []string
	Duration time.Duration
}

// SaleRestore is what Restore did to one sale.
type SaleRestore struct {
	SaleID string
	// Existed is true when the gate had keys of the sale before (Force).
	Existed bool
	// RemainingBefore is the gate's remaining stock before the restore (0
	// when the sale hash was missing: HadRemaining is then false).
	RemainingBefore int64
	HadRemaining    bool
	// RemainingAfter is the remaining stock folded from the log.
	RemainingAfter int64
	// Orders is the number of order hashes written; Reserved of them are
	// still awaiting payment (and back in the expiry queue).
	Orders   int
	Reserved int
	// OrdersRemoved counts order hashes the gate had that the log does not
	// know (Force only).
	OrdersRemoved int
	Ended         bool
}

// Restore rebuilds the gate's state in Redis from a fold of the whole log, in
// exactly the layout the scripts use (Keyspace, lua/*.lua): per sale its head
// and per shard its hash (configuration and counters), its orders' hashes,
// the idempotency hash, the units each user holds, the expiry queue of
// still-reserved orders, the moves it was credited, and the registry sets. A
// sale the gate holds in an earlier layout is rewritten in today's (Force). It is the answer to losing Redis: the log is the source
// of truth, and the gate is a fold of it.
//
// Outboxes are left empty: every restored event is already in the log. A sale
// whose outbox still holds entries is refused (ErrOutboxPending), because its
// gate is ahead of the log. A sale the gate still has is refused
// (ErrGateLive) unless opts.Force. Refusals are checked for every sale before
// anything is written.
//
// Each shard's hash is written after its orders and indexes, and the head
// last: the scripts treat a shard without a hash as unknown, and no node
// loads a sale without a head, so nothing acts on a half-restored sale.
func (g *Gate) Restore(ctx context.Context, fold *domain.Fold, opts RestoreOptions) (RestoreReport, error) {
	start := time.Now()
	var rep RestoreReport
	if fold == nil {
		return rep, errors.New("restore: nil fold")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	rep.Warnings = fold.Violations()

	ids := opts.SaleIDs
	if len(ids) == 0 {
		for id := range fold.Sales {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var sales []*domain.SaleState
	for _, id := range ids {
		s, ok := fold.Sales[id]
		switch {
		case !ok && len(opts.SaleIDs) > 0:
			return rep, fmt.Errorf("restore: sale %s is not in the log", id)
		case !ok:
			continue
		case !s.Known:
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("sale %s: the log has events of it but no SaleCreated", id))
			continue
		}
		sales = append(sales, s)
	}

	// The orders of each sale, in the order they were placed: for orders
	// recorded without their idempotency key (OrderPlaced v1) the first one
	// takes the user's key-less slot, as it did in the gate.
	orders := map[string][]*domain.OrderState{}
	for _, o := range fold.Orders {
		if o.Status == "" {
			continue // never placed: a violation the warnings name
		}
		orders[o.SaleID] = append(orders[o.SaleID], o)
	}
	for _, os := range orders {
		slices.SortFunc(os, func(a, b *domain.OrderState) int {
			return cmp.Or(a.PlacedAt.Compare(b.PlacedAt), strings.Compare(a.OrderID, b.OrderID))
		})
	}

	// Check every sale before writing anything.
	rep.Sales = make([]SaleRestore, len(sales))
	var live, pending []string
	for i, s := range sales {
		sr, outbox, err := g.restoreCheck(ctx, s)
		if err != nil {
			return rep, err
		}
		if outbox > 0 {
			pending = append(pending, fmt.Sprintf("%s (%d entries)", s.SaleID, outbox))
		}
		if sr.Existed && !opts.Force {
			live = append(live, s.SaleID)
		}
		rep.Sales[i] = sr
	}
	if len(live) > 0 {
		return RestoreReport{}, fmt.Errorf("restore: sale %s: %w", strings.Join(live, ", "), ErrGateLive)
	}
	if len(pending) > 0 {
		return RestoreReport{}, fmt.Errorf("restore: outbox of sale %s: %w: the gate is ahead of the log; let the relay forward it first",
			strings.Join(pending, ", "), ErrOutboxPending)
	}

	for i, s := range sales {
		sr := &rep.Sales[i]
		sr.RemainingAfter, sr.Ended = s.Remaining(), s.Ended
		if err := g.restoreSale(ctx, s, orders[s.SaleID], sr, opts, &rep); err != nil {
			return rep, err
		}
		g.forget(s.SaleID)
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// batch queues commands on pipelines of size commands and sends up to
// restoreWorkers of them at a time: the round trips overlap while Redis works
// through the previous pipeline. The commands of one pipeline run in order;
// pipelines may run in any order, which is why the restore only batches
// commands that commute (distinct keys, distinct fields, set members) and
// writes each sale hash alone, after a flush.
type batch struct {
	ctx  context.Context
	rdb  redis.UniversalClient
	pipe redis.Pipeliner
	size int
	g    *errgroup.Group
}

// restoreWorkers is how many pipelines a restore keeps in flight.
const restoreWorkers = 4

func newBatch(ctx context.Context, rdb redis.UniversalClient, size int) *batch {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(restoreWorkers)
	return &batch{ctx: ctx, rdb: rdb, size: size, g: g}
}

func (b *batch) add(fn func(p redis.Pipeliner)) error {
	if b.pipe == nil {
		b.pipe = b.rdb.Pipeline()
	}
	fn(b.pipe)
	if b.pipe.Len() >= b.size {
		b.send()
	}
	if b.ctx.Err() != nil {
		// A pipeline failed (or the caller gave up): report its error,
		// not the cancellation it caused.
		if err := b.g.Wait(); err != nil {
			return err
		}
		return b.ctx.Err()
	}
	return nil
}

func (b *batch) send() {
	if b.pipe == nil || b.pipe.Len() == 0 {
		return
	}
	pipe := b.pipe
	b.pipe = nil
	b.g.Go(func() error {
		_, err := pipe.Exec(b.ctx)
		return err
	})
}

// flush sends what is queued and waits for every pipeline.
func (b *batch) flush() error {
	b.send()
	return b.g.Wait()
}

// deleteOrders deletes the order hashes of a sale that the log does not
// know (keep tells those it does; the caller rewrites them) and returns how
// many it deleted. All of a sale's keys share its hash tag, so on Redis
// Cluster they live on one node, the one scanned.
func (g *Gate) deleteOrders(ctx context.Context, k ShardKeys, batchSize int, keep map[string]bool) (int, error) {
	var scanner interface {
		Scan(ctx context.Context, cursor uint64, match string, count int64) *redis.ScanCmd
	} = g.rdb
	if cc, ok := g.rdb.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, k.Hash)
		if err != nil {
			return 0, err
		}
		scanner = node
	}
	b := newBatch(ctx, g.rdb, batchSize)
	removed := 0
	// Glob characters in the prefix are escaped so the match is literal.
	match := globEscape(k.OrderPf) + "*"
	var cursor uint64
	for {
		found, next, err := scanner.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return removed, err
		}
		for _, key := range found {
			if keep[strings.TrimPrefix(key, k.OrderPf)] {
				continue
			}
			removed++
			if err := b.add(func(p redis.Pipeliner) { p.Del(ctx, key) }); err != nil {
				return removed, err
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	return removed, b.flush()
}

func globEscape(s string) string {
	var sb strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

// announceRestored tells the nodes answering sold_out or ended from memory
// (guard.go) the restored state of s now rather than when their flag lapses.
// Best effort: the flag's TTL bounds a missed notice.
func (g *Gate) announceRestored(ctx context.Context, s *domain.SaleState) {
	notice := "stock "
	switch {
	case s.Ended:
		notice = "ended "
	case s.Remaining() <= 0:
		notice = "soldout "
	}
	_ = g.rdb.Publish(ctx, g.ks.Notify(), notice+s.SaleID).Err()
}
