package commands

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync/atomic"

	"github.com/seckill/seckill/domain"
)

// saleLayout is this node's memory of one sale's keys: its head and its
// shards, each with a hint of its pool and the batchers that group the
// shard's commands (batch.go). A classic sale has one shard.
type saleLayout struct {
	id     string
	head   HeadKeys
	shards []*shard
}

// shard is one shard of a sale on this node.
type shard struct {
	i    int
	keys ShardKeys
	// left is the last pool this node saw; it only orders the donors a pull
	// tries (the fullest first), every shard is tried before a sell-out.
	left atomic.Int64
	// soleShard is true for the shard of a classic sale, whose pool
	// reaching 0 sells the sale out.
	soleShard bool
	purchases *batcher[*purchaseReq]
	pays      *batcher[*payReq]
}

func (g *Gate) newLayout(cfg SaleConfig) *saleLayout {
	n := domain.ShardCount(cfg.Shards)
	lay := &saleLayout{id: cfg.ID, head: g.ks.Head(cfg.ID), shards: make([]*shard, n)}
	for i := range n {
		sh := &shard{i: i, keys: g.ks.Shard(cfg.ID, i, n), soleShard: n == 1}
		sh.left.Store(domain.ShardInitial(cfg.Stock, n, i))
		sh.purchases = newBatcher(g.cfg.BatchSize, g.cfg.BatchInFlight, func(b []*purchaseReq) { g.execPurchases(sh, b) })
		sh.pays = newBatcher(g.cfg.BatchSize, g.cfg.BatchInFlight, func(b []*payReq) { g.execPays(sh, b) })
		lay.shards[i] = sh
	}
	return lay
}

// layout returns this node's memory of the sale of configuration cfg.
func (g *Gate) layout(cfg SaleConfig) *saleLayout {
	if v, ok := g.layouts.Load(cfg.ID); ok {
		return v.(*saleLayout)
	}
	v, _ := g.layouts.LoadOrStore(cfg.ID, g.newLayout(cfg))
	return v.(*saleLayout)
}

// layoutOf returns the layout of sale id; domain.ErrSaleNotFound when the
// gate has no such sale.
func (g *Gate) layoutOf(ctx context.Context, id string) (*saleLayout, error) {
	cfg, err := g.saleConfig(ctx, id)
	if err != nil {
		return nil, err
	}
	return g.layout(cfg), nil
}

func (lay *saleLayout) n() int { return len(lay.shards) }

// orderShard returns the shard that holds orderID: the shard is in the id
// (domain.ShardOrderID; ids without one are of shard 0), so no lookup is
// needed but the sale's configuration, which is cached. ok is false for an
// id that names no order the gate can have.
func (g *Gate) orderShard(ctx context.Context, orderID string) (lay *saleLayout, sh *shard, ok bool, err error) {
	saleID, ok := domain.SaleOfOrder(orderID)
	if !ok || !domain.ValidID(orderID) {
		return nil, nil, false, nil
	}
	lay, err = g.layoutOf(ctx, saleID)
	if errors.Is(err, domain.ErrSaleNotFound) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	i, _ := domain.ShardOfOrder(orderID)
	if i >= lay.n() {
		return nil, nil, false, nil
	}
	return lay, lay.shards[i], true, nil
}

// donors lists the shards other than home, those this node last saw fullest
// first; among equals, the next ones after home first, so that the users of
// different home shards do not all start with the same donor.
func (lay *saleLayout) donors(home int) []*shard {
	n := lay.n()
	out := make([]*shard, 0, n-1)
	for j := 1; j < n; j++ {
		out = append(out, lay.shards[(home+j)%n])
	}
	slices.SortStableFunc(out, func(a, b *shard) int { return cmp.Compare(b.left.Load(), a.left.Load()) })
	return out
}
