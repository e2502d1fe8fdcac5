package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// Moving stock between the shards of a sharded sale (docs/sharding.md). A
// move is two scripts on two slots: move_out.lua debits the donor, records
// the move as pending there and appends StockMoved to the donor's outbox, all
// in one step; then the recipient is credited, once per move id, by
// credit.lua (or by purchase.lua, for a pull); then the pending record is
// cleared. If the mover dies in between, the units are in the donor's pending
// record, which the sweeper credits after MoveRecoverAfter. No step creates or
// loses a unit, and no step can be applied twice.

// moveOut runs the debit half of a move from shard from to shard to of at
// least need and at most want units. It returns the move id and the units
// taken (0: the donor had fewer than need, see left), and whether the donor
// is closed (the sale is ending).
func (g *Gate) moveOut(ctx context.Context, lay *saleLayout, from, to *shard, need, want int64, now time.Time) (id string, took int64, closed bool, err error) {
	id = domain.MoveID(lay.id, newID())
	env, err := domain.EncodeWith(domain.StockMoved{SaleID: lay.id, MoveID: id, From: int64(from.i), To: int64(to.i), Quantity: placeholderQty},
		now, domain.MetadataFrom(ctx))
	if err != nil {
		return "", 0, false, err
	}
	parts, err := splice(env, placeholderQty)
	if err != nil {
		return "", 0, false, err
	}
	k := from.keys
	v, err := g.eval(ctx, g.scripts.moveOut, []string{k.Hash, k.Moves, k.Outbox},
		ms(now), id, to.i, need, want, parts[0], parts[1])
	if err != nil {
		return "", 0, false, fmt.Errorf("move stock of sale %s from shard %d: %w", lay.id, from.i, err)
	}
	r, err := toReply(v)
	if err != nil {
		return "", 0, false, err
	}
	switch r.str(0) {
	case "moved":
		from.left.Store(r.int(2))
		return id, r.int(1), false, nil
	case "short":
		from.left.Store(r.int(1))
		return "", 0, false, nil
	case "ended":
		return "", 0, true, nil
	case "not_found":
		return "", 0, false, fmt.Errorf("move stock of sale %s: shard %d: %w", lay.id, from.i, domain.ErrSaleNotFound)
	}
	return "", 0, false, fmt.Errorf("move stock of sale %s from shard %d: unexpected answer %q", lay.id, from.i, r.str(0))
}

// credit runs the credit half of a move; a duplicate is success (the move
// was credited before). ErrMoveRefused when the recipient's pool was
// collected by an end that did not see the move: the units are then still in
// the donor's pending record, and the audit shows the difference.
func (g *Gate) credit(ctx context.Context, to *shard, id string, qty int64) error {
	k := to.keys
	v, err := g.eval(ctx, g.scripts.credit, []string{k.Hash, k.MovesIn}, id, qty)
	if err != nil {
		return fmt.Errorf("credit move %s to shard %d: %w", id, to.i, err)
	}
	r, err := toReply(v)
	if err != nil {
		return err
	}
	switch r.str(0) {
	case "credited":
		to.left.Store(r.int(1))
		return nil
	case "duplicate":
		return nil
	}
	return fmt.Errorf("credit move %s to shard %d: %s: %w", id, to.i, r.str(0), ErrMoveRefused)
}

// ErrMoveRefused is a move the recipient shard would not credit (see credit).
var ErrMoveRefused = errors.New("move refused by the recipient shard")

// clearMoves drops the pending records of moves that have been credited.
func (g *Gate) clearMoves(ctx context.Context, lay *saleLayout, from []*shard, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := g.rdb.Pipeline()
	for j, id := range ids {
		pipe.HDel(ctx, from[j].keys.Moves, id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("clear moves of sale %s: %w", lay.id, err)
	}
	return nil
}

// move moves up to want units from shard from to shard to, both halves; it
// returns the units moved (0: the donor was empty or closed).
func (g *Gate) move(ctx context.Context, lay *saleLayout, from, to *shard, want int64) (int64, error) {
	id, took, _, err := g.moveOut(ctx, lay, from, to, 1, want, g.clock.Now())
	if err != nil || took == 0 {
		return 0, err
	}
	// From here on the units are in the donor's pending record until the
	// credit lands; an error leaves them there for the sweeper.
	if err := g.credit(ctx, to, id, took); err != nil {
		return took, err
	}
	return took, g.clearMoves(ctx, lay, []*shard{from}, []string{id})
}

// recoverMoves credits every pending move of a sale at least minAge
// old (gate clock) and clears it. The
// sweeper calls it for movers that died half way; an end calls it with 0,
// once every shard is closed, so that no move is in flight when the pools
// are collected.
func (g *Gate) recoverMoves(ctx context.Context, lay *saleLayout, minAge time.Duration) error {
	if lay.n() == 1 {
		return nil // nothing to move between
	}
	pipe := g.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, lay.n())
	for i, sh := range lay.shards {
		cmds[i] = pipe.HGetAll(ctx, sh.keys.Moves)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read moves of sale %s: %w", lay.id, err)
	}
	now := g.clock.Now().UnixMilli()
	var from []*shard
	var ids []string
	var errs []error
	for i, c := range cmds {
		for id, v := range c.Val() {
			to, qty, at, err := parseMove(v)
			if err != nil || to < 0 || int(to) >= lay.n() {
				errs = append(errs, fmt.Errorf("sale %s shard %d: move %s: bad record %q", lay.id, i, id, v))
				continue
			}
			if now-at < minAge.Milliseconds() {
				continue
			}
			if err := g.credit(ctx, lay.shards[to], id, qty); err != nil {
				errs = append(errs, err)
				continue
			}
			from, ids = append(from, lay.shards[i]), append(ids, id)
		}
	}
	if err := g.clearMoves(ctx, lay, from, ids); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RebalanceResult says what one Rebalance moved.
type RebalanceResult struct {
	Moves int   // moves made
	Units int64 // units moved
}

// Rebalance evens out the pools of a sharded sale when one of them has run
// dry while another still holds two units or more: seed 001's dynamic
// allocation, so that a user whose home shard is empty is not sent to pull
// stock on every purchase. Nothing depends on it for exactness or for selling
// every unit: a purchase that finds its home pool empty pulls units itself
// (purchase.go). The sweeper calls it every sweep for every running
// sharded sale; any number may run at once (a move never takes more than
// the donor has). It does nothing for an unsharded sale, an ended or ending
// one, or one whose pools are all non-empty.
func (g *Gate) Rebalance(ctx context.Context, saleID string) (RebalanceResult, error) {
	var res RebalanceResult
	lay, err := g.layoutOf(ctx, saleID)
	if errors.Is(err, domain.ErrSaleNotFound) {
		return res, nil
	}
	if err != nil || lay.n() == 1 {
		return res, err
	}
	pipe := g.rdb.Pipeline()
	head := pipe.HMGet(ctx, lay.head.Hash, "ended", "ending")
	shards := make([]*redis.SliceCmd, lay.n())
	for i, sh := range lay.shards {
		shards[i] = pipe.HMGet(ctx, sh.keys.Hash, "remaining", "ended")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return res, fmt.Errorf("rebalance sale %s: %w", saleID, err)
	}
	if h := head.Val(); h[0] == "1" || h[1] != nil {
		return res, nil
	}
	left := make([]int64, lay.n())
	var total int64
	for i, c := range shards {
		v := c.Val()
		if v[1] == "1" {
			return res, nil // a shard is closed: the sale is ending
		}
		s, _ := v[0].(string)
		left[i], _ = strconv.ParseInt(s, 10, 64)
		total += left[i]
	}
	plan := rebalancePlan(left, total)
	var errs []error
	for _, m := range plan {
		n, err := g.move(ctx, lay, lay.shards[m.from], lay.shards[m.to], m.qty)
		if err != nil {
			errs = append(errs, err)
		}
		if n > 0 {
			res.Moves++
			res.Units += n
		}
	}
	return res, errors.Join(errs...)
}

// plannedMove is one move of a rebalance.
type plannedMove struct {
	from, to int
	qty      int64
}

// rebalancePlan returns the moves that even out left (the shards' pools,
// summing to total) when one is empty and another holds two or more: each
// shard's target is total/n, and the total%n shards that hold the most keep
// one unit more, so as few units as possible move. Nothing otherwise: moving
// stock while every shard can still sell only costs round trips.
func rebalancePlan(left []int64, total int64) []plannedMove {
	n := len(left)
	if n < 2 || slices.Min(left) > 0 || slices.Max(left) < 2 {
		return nil
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(left[b], left[a]) })
	target := make([]int64, n)
	for rank, i := range order {
		target[i] = total / int64(n)
		if int64(rank) < total%int64(n) {
			target[i]++
		}
	}
	var plan []plannedMove
	d, r := 0, n-1 // donors from the fullest, recipients from the emptiest
	for d < r {
		from, to := order[d], order[r]
		surplus, deficit := left[from]-target[from], target[to]-left[to]
		switch {
		case surplus <= 0:
			d++
		case deficit <= 0:
			r--
		default:
			q := min(surplus, deficit)
			plan = append(plan, plannedMove{from: from, to: to, qty: q})
			left[from] -= q
			left[to] += q
		}
	}
	return plan
}

// parseMove reads a moves hash value: "to qty at-ms".
func parseMove(v string) (to, qty, atMS int64, err error) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return 0, 0, 0, fmt.Errorf("move record %q", v)
	}
	to, err1 := strconv.ParseInt(f[0], 10, 64)
	qty, err2 := strconv.ParseInt(f[1], 10, 64)
	atMS, err3 := strconv.ParseInt(f[2], 10, 64)
	return to, qty, atMS, errors.Join(err1, err2, err3)
}
