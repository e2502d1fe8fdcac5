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

// SaleConfig is the immutable part of a sale, as the gate stores it: its
// spec with Shards the count of its shards (1 for the classic single pool).
type SaleConfig struct {
	ID string
	domain.SaleSpec
	// PayWithin is the spec's PayWithinS as a duration, worked out once when
	// the sale is loaded: the purchase path adds it to every order's time.
	// (It shadows SaleTerms.PayWithin, which computes the same.)
	PayWithin time.Duration
}

// SaleView is a sale as clients see it: configuration plus live counters.
// Its members are SaleSpec's, but not the embedded SaleSpec: the live
// counters stand between the terms and the protections in the JSON clients
// have always been answered, and Shards here is omitted for one shard.
type SaleView struct {
	ID string `json:"id"`
	domain.SaleTerms
	Remaining int64 `json:"remaining"`
	// State is upcoming, active, sold_out or ended, as of ServerTime.
	State      string    `json:"state"`
	EndReason  string    `json:"end_reason,omitempty"`
	Unsold     int64     `json:"unsold,omitempty"`
	ServerTime time.Time `json:"server_time"`
	// Protections are shown so the sale page knows, e.g., to fetch a token.
	domain.Protections
	// Shards is the number of stock shards of a sharded sale (omitted: 1).
	// Remaining is the sum of their pools.
	Shards int64 `json:"shards,omitempty"`
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
// SaleCreated to its outbox.
func (g *Gate) CreateSale(ctx context.Context, cmd CreateSale) (SaleView, error) {
	spec := cmd.Spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return SaleView{}, err
	}
	return g.createSale(ctx, newID(), spec)
}

// createSale writes sale id of a valid spec: its shard count first
// (ShardCounts, for Block), then its registrations, the blacklist copies,
// every shard with its allocation, and the head with SaleCreated LAST. Until
// the head exists no node knows the sale (loadSale reads it), so nobody buys
// from a half-made sale, and the log never has a SaleCreated whose shards are
// missing; a crash before it leaves unreachable keys only.
func (g *Gate) createSale(ctx context.Context, id string, spec domain.SaleSpec) (SaleView, error) {
	ev := spec.Created(id)
	now := g.clock.Now()
	env, err := domain.EncodeWith(ev, now, domain.MetadataFrom(ctx))
	if err != nil {
		return SaleView{}, err
	}
	n := domain.ShardCount(ev.Shards)
	head := g.ks.Head(id)
	if err := g.rdb.HSet(ctx, g.ks.ShardCounts(), id, n).Err(); err != nil {
		return SaleView{}, fmt.Errorf("register shards of sale %s: %w", id, err)
	}
	shards := make([]ShardKeys, n)
	outboxes := []any{head.Outbox}
	for i := range n {
		shards[i] = g.ks.Shard(id, i, n)
		if shards[i].Outbox != head.Outbox {
			outboxes = append(outboxes, shards[i].Outbox)
		}
	}
	// Registered before the scripts run, so the relay and the sweeper find the
	// sale as soon as it exists; an entry for a sale whose script failed is harmless.
	pipe := g.rdb.Pipeline()
	pipe.SAdd(ctx, g.ks.Sales(), id)
	pipe.SAdd(ctx, g.ks.Outboxes(), outboxes...)
	if _, err := pipe.Exec(ctx); err != nil {
		return SaleView{}, fmt.Errorf("register sale %s: %w", id, err)
	}
	if err := g.copyBlacklist(ctx, id); err != nil {
		return SaleView{}, err
	}
	for i, k := range shards {
		if err := g.created(ctx, g.scripts.initShard, []string{k.Hash}, shardFields(ev, now, i)...); err != nil {
			return SaleView{}, fmt.Errorf("create shard %d of sale %s: %w", i, id, err)
		}
	}
	if err := g.created(ctx, g.scripts.createHead, []string{head.Hash, head.Outbox}, append([]any{env}, headFields(ev, now)...)...); err != nil {
		return SaleView{}, fmt.Errorf("create sale %s: %w", id, err)
	}
	return g.Sale(ctx, id)
}

// created runs a script that creates a hash and answers "created".
func (g *Gate) created(ctx context.Context, s *redis.Script, keys []string, args ...any) error {
	v, err := g.eval(ctx, s, keys, args...)
	if err != nil {
		return err
	}
	r, err := toReply(v)
	if err != nil {
		return err
	}
	if r.str(0) != "created" {
		return fmt.Errorf("%s: %w", r.str(0), domain.ErrConflict)
	}
	return nil
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
		if soldOut, _ := g.MemorySoldOut(id, "", ""); soldOut {
			// This node tells buyers sold_out from memory: its status
			// says so at once too, not after the view's lifetime.
			v.Remaining = 0
		}
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
	h, err := g.readHead(ctx, id)
	if err != nil {
		return nil, err
	}
	now := g.clock.Now()
	cfg := saleConfigOf(id, h)
	view := SaleView{
		ID: id, SaleTerms: cfg.SaleTerms, EndReason: h["end_reason"], Unsold: hashInt(h, "unsold"),
		ServerTime: now, Protections: cfg.Protections,
	}
	if cfg.Shards > 1 {
		view.Shards = cfg.Shards
	}
	if view.Remaining, err = g.remaining(ctx, g.layout(cfg)); err != nil {
		return nil, err
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

// saleConfigOf reads the configuration of sale id from its head h, the
// fields saleFields and headFields wrote.
func saleConfigOf(id string, h map[string]string) SaleConfig {
	num := func(k string) int64 { return hashInt(h, k) }
	cfg := SaleConfig{ID: id, SaleSpec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: h["name"], Stock: num("stock"), PriceCents: num("price"),
			StartsAt: fromMS(h["starts"]), EndsAt: fromMS(h["ends"]), PerUserLimit: num("limit"),
			PayWithinS: num("pay_within"), Currency: h["currency"],
		},
		// Absent in sales created before the protections: zero, off.
		Protections: domain.Protections{
			UserIntervalMS: num("user_interval"), ReleaseStep: num("release_step"),
			ReleaseIntervalMS: num("release_interval"), RequireToken: h["require_token"] == "1",
			ChallengeBits: num("challenge_bits"), ReleaseMode: h["release_mode"],
		},
		Shards: int64(domain.ShardCount(num("shards"))),
	}}
	if cfg.Currency == "" {
		// Sales created before currencies existed were all in the default.
		cfg.Currency = domain.DefaultCurrency
	}
	cfg.PayWithin = cfg.SaleTerms.PayWithin()
	return cfg
}

// hashInt is the number in field k of a hash; 0 when absent.
func hashInt(h map[string]string, k string) int64 {
	n, _ := strconv.ParseInt(h[k], 10, 64)
	return n
}

// readHead reads a sale's head, moving a sale of an earlier layout to
// today's first (migrate_head.lua). domain.ErrSaleNotFound when there is none.
func (g *Gate) readHead(ctx context.Context, id string) (map[string]string, error) {
	head := g.ks.Head(id)
	for attempt := 0; attempt < 2; attempt++ {
		h, err := g.rdb.HGetAll(ctx, head.Hash).Result()
		if err != nil {
			return nil, fmt.Errorf("read sale %s: %w", id, err)
		}
		if len(h) > 0 {
			return h, nil
		}
		if attempt > 0 {
			break
		}
		v, err := g.eval(ctx, g.scripts.migrateHead, []string{head.Hash, head.Legacy})
		if err != nil {
			return nil, fmt.Errorf("migrate sale %s: %w", id, err)
		}
		if r, err := toReply(v); err != nil || r.str(0) == "none" {
			return nil, domain.ErrSaleNotFound
		}
	}
	return nil, domain.ErrSaleNotFound
}

// remaining is the sum of a sale's pools, read now (units in flight between
// two shards are in neither for a moment: the view may be a little low,
// never high).
func (g *Gate) remaining(ctx context.Context, lay *saleLayout) (int64, error) {
	pipe := g.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, lay.n())
	for i, sh := range lay.shards {
		cmds[i] = pipe.HGet(ctx, sh.keys.Hash, "remaining")
	}
	if _, err := pipe.Exec(ctx); err != nil && !isNil(err) {
		return 0, fmt.Errorf("read shards of sale %s: %w", lay.id, err)
	}
	var sum int64
	for i, c := range cmds {
		n, _ := c.Int64()
		lay.shards[i].left.Store(n)
		sum += n
	}
	return sum, nil
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
	ids, err := g.rdb.SMembers(ctx, g.ks.Sales()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list sales: %w", err)
	}
	return ids, nil
}
