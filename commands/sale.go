package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// SaleConfig is the immutable part of a sale, as the gate stores it.
type SaleConfig struct {
	ID           string
	Name         string
	Stock        int64
	PriceCents   int64
	StartsAt     time.Time
	EndsAt       time.Time
	PerUserLimit int64
	PayWithin    time.Duration
	Currency     string
	Protections  domain.Protections
	// Shards is the number of stock shards: 1 for the classic single pool
	// (docs/sharding.md).
	Shards int
}

// SaleView is a sale as clients see it: configuration plus live counters.
type SaleView struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Stock        int64     `json:"stock"`
	PriceCents   int64     `json:"price_cents"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
	PerUserLimit int64     `json:"per_user_limit"`
	PayWithinS   int64     `json:"pay_within_s"`
	// Currency is the ISO 4217 code of PriceCents.
	Currency  string `json:"currency"`
	Remaining int64  `json:"remaining"`
	// State is upcoming, active, sold_out or ended, as of ServerTime.
	State      string    `json:"state"`
	EndReason  string    `json:"end_reason,omitempty"`
	Unsold     int64     `json:"unsold,omitempty"`
	ServerTime time.Time `json:"server_time"`
	// Protections are shown so the sale page knows, e.g., to fetch a token.
	domain.Protections
	// Shards is the number of stock shards of a sharded sale (omitted: 1).
	// Remaining is the sum of their pools.
	Shards int `json:"shards,omitempty"`
}

// Sale states.
const (
	SaleUpcoming = "upcoming"
	SaleActive   = "active"
	SaleSoldOut  = "sold_out"
	SaleEnded    = "ended"
)

// CreateSale is the command that opens a sale.
type CreateSale struct {
	Spec domain.SaleSpec
}

// CreateSale validates the spec, writes the sale to the gate and appends
// SaleCreated to its outbox, atomically.
func (g *Gate) CreateSale(ctx context.Context, cmd CreateSale) (SaleView, error) {
	spec := cmd.Spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return SaleView{}, err
	}
	id := newID()
	ev := spec.Created(id)
	now := g.clock.Now()
	env, err := domain.EncodeWith(ev, now, domain.MetadataFrom(ctx))
	if err != nil {
		return SaleView{}, err
	}
	if ev.Shards > 1 {
		return g.createShardedSale(ctx, ev, env, now)
	}
	k := g.keys(id)
	// Registered before the script runs, so the relay and the sweeper find the
	// sale as soon as it exists; an entry for a sale whose script failed is harmless.
	pipe := g.rdb.Pipeline()
	pipe.SAdd(ctx, g.SalesKey(), id)
	pipe.SAdd(ctx, g.OutboxesKey(), k.outbox)
	if _, err := pipe.Exec(ctx); err != nil {
		return SaleView{}, fmt.Errorf("register sale %s: %w", id, err)
	}
	args := append([]any{env}, newSaleFields(ev, now)...)
	if err := g.copyBlacklist(ctx, id); err != nil {
		return SaleView{}, err
	}
	v, err := g.createSale.Run(ctx, g.rdb, []string{k.sale, k.outbox}, args...).Result()
	if err != nil {
		return SaleView{}, fmt.Errorf("create sale %s: %w", id, err)
	}
	r, err := toReply(v)
	if err != nil {
		return SaleView{}, err
	}
	if r.str(0) != "created" {
		return SaleView{}, fmt.Errorf("create sale %s: %s: %w", id, r.str(0), domain.ErrConflict)
	}
	return g.Sale(ctx, id)
}

// Sale returns the sale's view, served from a short-lived cache (see
// GateConfig.SaleCacheTTL). domain.ErrSaleNotFound when there is no such sale.
func (g *Gate) Sale(ctx context.Context, id string) (SaleView, error) {
	now := g.clock.Now()
	g.mu.RLock()
	c, ok := g.sales[id]
	g.mu.RUnlock()
	if ok && time.Since(c.fetched) < g.cfg.SaleCacheTTL {
		v := c.view
		v.ServerTime = now
		v.State = saleState(v, now)
		return v, nil
	}
	c, err := g.loadSale(ctx, id)
	if err != nil {
		return SaleView{}, err
	}
	return c.view, nil
}

// saleConfig returns the immutable configuration of a sale, from memory after
// the first call.
func (g *Gate) saleConfig(ctx context.Context, id string) (SaleConfig, error) {
	g.mu.RLock()
	c, ok := g.sales[id]
	g.mu.RUnlock()
	if ok {
		return c.cfg, nil
	}
	c, err := g.loadSale(ctx, id)
	if err != nil {
		return SaleConfig{}, err
	}
	return c.cfg, nil
}

func (g *Gate) loadSale(ctx context.Context, id string) (*cachedSale, error) {
	if !domain.ValidID(id) {
		return nil, domain.ErrSaleNotFound
	}
	h, err := g.rdb.HGetAll(ctx, g.keys(id).sale).Result()
	if err != nil {
		return nil, fmt.Errorf("read sale %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, domain.ErrSaleNotFound
	}
	now := g.clock.Now()
	num := func(k string) int64 { n, _ := strconv.ParseInt(h[k], 10, 64); return n }
	cfg := SaleConfig{
		ID: id, Name: h["name"], Stock: num("stock"), PriceCents: num("price"),
		StartsAt: fromMS(h["starts"]), EndsAt: fromMS(h["ends"]), PerUserLimit: num("limit"),
		PayWithin: time.Duration(num("pay_within")) * time.Second, Currency: h["currency"],
	}
	if cfg.Currency == "" {
		// Sales created before currencies existed were all in the default.
		cfg.Currency = domain.DefaultCurrency
	}
	// Absent in sales created before the protections: zero, off.
	cfg.Protections = domain.Protections{
		UserIntervalMS: num("user_interval"), ReleaseStep: num("release_step"),
		ReleaseIntervalMS: num("release_interval"), RequireToken: h["require_token"] == "1",
		ChallengeBits: num("challenge_bits"),
	}
	view := SaleView{
		ID: id, Name: cfg.Name, Stock: cfg.Stock, PriceCents: cfg.PriceCents,
		StartsAt: cfg.StartsAt, EndsAt: cfg.EndsAt, PerUserLimit: cfg.PerUserLimit,
		PayWithinS: num("pay_within"), Currency: cfg.Currency, Remaining: num("remaining"),
		EndReason: h["end_reason"], Unsold: num("unsold"), ServerTime: now,
		Protections: cfg.Protections,
	}
	if n := num("shards"); n > 1 {
		// A sharded sale's pool is the sum of its shards' (shard_sale.go).
		cfg.Shards, view.Shards = int(n), int(n)
		if view.Remaining, err = g.shardedRemaining(ctx, g.sharded(cfg)); err != nil {
			return nil, err
		}
	} else {
		cfg.Shards = 1
	}
	if h["ended"] == "1" {
		view.State = SaleEnded
	}
	view.State = saleState(view, now)
	// Freshness is wall time (monotonic), not the gate's clock, which tests stop.
	c := &cachedSale{cfg: cfg, view: view, fetched: time.Now()}
	g.mu.Lock()
	g.sales[id] = c
	g.mu.Unlock()
	return c, nil
}

func saleState(v SaleView, now time.Time) string {
	switch {
	case v.State == SaleEnded || v.EndReason != "" || !now.Before(v.EndsAt):
		return SaleEnded
	case now.Before(v.StartsAt):
		return SaleUpcoming
	case v.Remaining <= 0:
		return SaleSoldOut
	}
	return SaleActive
}

// forget drops a sale from the cache after this node changed its state.
func (g *Gate) forget(id string) {
	g.mu.Lock()
	delete(g.sales, id)
	g.mu.Unlock()
}

// SaleIDs lists every sale the gate knows.
func (g *Gate) SaleIDs(ctx context.Context) ([]string, error) {
	ids, err := g.rdb.SMembers(ctx, g.SalesKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list sales: %w", err)
	}
	return ids, nil
}

func boolField(b bool) int {
	if b {
		return 1
	}
	return 0
}
