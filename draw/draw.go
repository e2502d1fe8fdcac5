// Package draw runs the fair draw of draw-mode sales (domain/draw.go): a
// purchase attempt during a slice's window enters the slice's draw (Enter),
// and when the window closes the drawer (Run, on every API node; one at a
// time per sale by a lease) draws the slice's units among the entrants with
// a fresh random seed, records the draw (DrawHeld, through the sale's draw
// outbox, which the outbox relay forwards like the gate's) and places each
// winner's order with the gate's ordinary purchase, idempotency key
// domain.DrawKey(slice). Entrants ask for their result (Result).
//
// Redis keys, all under the sale's hash tag so each script runs in one
// Redis Cluster slot: <prefix>{sale:ID}:draw:e:<slice> (the entrants),
// :draw:results (user → latest entry and its outcome), :draw:pending (the
// slices with entrants not drawn yet), :draw:held (slice → winners),
// :draw:lease, and :draw:outbox (a stream in <prefix>outboxes). The set
// <prefix>draws lists the sales with entries, for the drawer.
package draw

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// Gate is what the draw needs of the gate (commands.Gate).
type Gate interface {
	Sale(ctx context.Context, id string) (commands.SaleView, error)
	SaleCounters(ctx context.Context, id string) (commands.SaleCounters, bool, error)
	Purchase(ctx context.Context, cmd commands.Purchase) (commands.Reservation, error)
	PurchaseToken(ctx context.Context, saleID, user string) (commands.PurchaseToken, error)
	Prefix() string
	OutboxesKey() string
	Now() time.Time
}

// Errors of Enter and Result.
var (
	// ErrNotDraw: the sale does not draw its slices.
	ErrNotDraw = errors.New("this sale does not hold draws")
	// ErrFull: the slice has its cap of entrants; the next slice opens at
	// the time the RetryError says.
	ErrFull = errors.New("this slice's draw is full")
	// ErrNotEntered: the user has no entry in the sale.
	ErrNotEntered = errors.New("no entry in this sale's draw")
)

// Config configures the draws.
type Config struct {
	// Tick is how often the drawer looks for closed windows; default 25ms.
	Tick time.Duration
	// Grace is how long after a window closes the drawer waits for entries
	// in flight; default 50ms. A later entry is drawn anyway: the draw
	// script notices it and the drawer draws again.
	Grace time.Duration
	// LeaseTTL is how long one drawer keeps a sale; default 2s.
	LeaseTTL time.Duration
	// Keep is how long entries and results stay after the sale's end;
	// default 7 days.
	Keep time.Duration
	// Log reports draws and failures; default: discard.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Tick <= 0 {
		c.Tick = 25 * time.Millisecond
	}
	if c.Grace <= 0 {
		c.Grace = 50 * time.Millisecond
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 2 * time.Second
	}
	if c.Keep <= 0 {
		c.Keep = 7 * 24 * time.Hour
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

var (
	//go:embed lua/enter.lua
	enterLua string
	//go:embed lua/hold.lua
	holdLua string
	//go:embed lua/lease.lua
	leaseLua string
)

// Draws enters shoppers into draws and holds the draws; safe for concurrent use.
type Draws struct {
	cfg   Config
	gate  Gate
	rdb   redis.UniversalClient
	owner string // this drawer's lease value
	enter *redis.Script
	hold  *redis.Script
	lease *redis.Script
}

// New returns the draws of the gate's sales, kept in rdb (the gate's Redis).
func New(cfg Config, gate Gate, rdb redis.UniversalClient) (*Draws, error) {
	if gate == nil || rdb == nil {
		return nil, errors.New("draw: a gate and a Redis client are required")
	}
	host, _ := os.Hostname()
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return &Draws{
		cfg: cfg.withDefaults(), gate: gate, rdb: rdb,
		owner: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(nonce[:])),
		enter: redis.NewScript(enterLua), hold: redis.NewScript(holdLua), lease: redis.NewScript(leaseLua),
	}, nil
}

// keys names the Redis keys of one sale's draws.
type keys struct{ base string }

func (d *Draws) keys(sale string) keys { return keys{d.gate.Prefix() + "{sale:" + sale + "}:draw:"} }

func (k keys) entrants(slice int64) string { return k.base + "e:" + strconv.FormatInt(slice, 10) }
func (k keys) results() string             { return k.base + "results" }
func (k keys) pending() string             { return k.base + "pending" }
func (k keys) held() string                { return k.base + "held" }
func (k keys) lease() string               { return k.base + "lease" }
func (k keys) outbox() string              { return k.base + "outbox" }

// registry lists the sales with entries.
func (d *Draws) registry() string { return d.gate.Prefix() + "draws" }

// window is a sale's release schedule as the draw sees it.
type window struct {
	starts, ends time.Time
	interval     time.Duration
}

func windowOf(v commands.SaleView) window {
	return window{v.StartsAt, v.EndsAt, time.Duration(v.ReleaseIntervalMS) * time.Millisecond}
}

// slice is the slice whose window holds t (t at or after the start).
func (w window) slice(t time.Time) int64 { return int64(t.Sub(w.starts) / w.interval) }

// closes is the end of slice k's window.
func (w window) closes(k int64) time.Time { return w.starts.Add(time.Duration(k+1) * w.interval) }

// ttl is how long, in ms, a sale's draw keys stay: Keep past its end,
// counted on the gate's clock.
func (d *Draws) ttl(w window) string {
	return strconv.FormatInt(max(1, w.ends.Add(d.cfg.Keep).Sub(d.gate.Now()).Milliseconds()), 10)
}

// Entry is the answer to an entry: the slice entered and when it is drawn.
type Entry struct {
	SaleID string    `json:"sale_id"`
	Status string    `json:"status"` // "entered"
	Slice  int64     `json:"slice"`
	DrawAt time.Time `json:"draw_at"`
	// Again is true when the user had entered this slice already.
	Again bool `json:"-"`
}

// Result is a user's latest entry in a sale and its outcome.
type Result struct {
	SaleID string    `json:"sale_id"`
	Slice  int64     `json:"slice"`
	DrawAt time.Time `json:"draw_at"`
	// Status is "entered" (not drawn yet), "won" (the order is being
	// placed), "ordered" (OrderID holds the unit: pay it), "lost", or
	// "refused" (won, but the gate refused the order: Reason says why).
	Status  string `json:"status"`
	OrderID string `json:"order_id,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Enter enters user into the draw of the slice whose window is open now.
// It returns the Entry, or ErrNotDraw, domain.ErrSaleNotFound,
// domain.ErrNotStarted and ErrFull (as *domain.RetryError),
// domain.ErrEnded, domain.ErrSoldOut or domain.ErrBlocked (from the gate).
func (d *Draws) Enter(ctx context.Context, sale commands.SaleView, user string) (Entry, error) {
	if sale.ReleaseMode != domain.ReleaseModeDraw || sale.ReleaseStep <= 0 {
		return Entry{}, ErrNotDraw
	}
	w := windowOf(sale)
	now := d.gate.Now()
	switch {
	case sale.State == commands.SaleEnded:
		return Entry{}, domain.ErrEnded
	case now.Before(w.starts):
		return Entry{}, domain.RetryAfter(domain.ErrNotStarted, w.starts.Sub(now))
	case sale.Remaining <= 0 && sale.Protections.Released(sale.Stock, now.Sub(w.starts)) >= sale.Stock:
		return Entry{}, domain.ErrSoldOut
	}
	slice := w.slice(now)
	// The draw must place its orders before the sale ends.
	if !w.closes(slice).Add(d.cfg.Grace).Before(w.ends) {
		return Entry{}, domain.ErrEnded
	}
	k := d.keys(sale.ID)
	expire := d.ttl(w)
	if err := d.rdb.SAdd(ctx, d.registry(), sale.ID).Err(); err != nil {
		return Entry{}, fmt.Errorf("draw: register sale %s: %w", sale.ID, err)
	}
	res, err := d.enter.Run(ctx, d.rdb, []string{k.entrants(slice), k.results(), k.pending(), k.held()},
		user, slice, domain.DrawEntrantCap(sale.ReleaseStep), expire).StringSlice()
	if err != nil {
		return Entry{}, fmt.Errorf("draw: enter %s in sale %s: %w", user, sale.ID, err)
	}
	entry := Entry{SaleID: sale.ID, Status: "entered", Slice: slice, DrawAt: w.closes(slice).Add(d.cfg.Grace).UTC()}
	switch res[0] {
	case "entered":
	case "already":
		entry.Again = true
	case "full", "closed":
		return Entry{}, domain.RetryAfter(ErrFull, w.closes(slice).Sub(now))
	default:
		return Entry{}, fmt.Errorf("draw: enter: unexpected answer %v", res)
	}
	return entry, nil
}

// Result returns user's latest entry in sale and its outcome, or
// ErrNotEntered.
func (d *Draws) Result(ctx context.Context, sale commands.SaleView, user string) (Result, error) {
	v, err := d.rdb.HGet(ctx, d.keys(sale.ID).results(), user).Result()
	if errors.Is(err, redis.Nil) {
		return Result{}, ErrNotEntered
	} else if err != nil {
		return Result{}, fmt.Errorf("draw: result of %s in sale %s: %w", user, sale.ID, err)
	}
	parts := strings.SplitN(v, "|", 4)
	if len(parts) != 4 {
		return Result{}, fmt.Errorf("draw: result of %s in sale %s: malformed %q", user, sale.ID, v)
	}
	slice, _ := strconv.ParseInt(parts[0], 10, 64)
	r := Result{SaleID: sale.ID, Slice: slice, Status: parts[1], OrderID: parts[2], Reason: parts[3]}
	if sale.ReleaseIntervalMS > 0 {
		r.DrawAt = windowOf(sale).closes(slice).Add(d.cfg.Grace).UTC()
	}
	return r, nil
}

// setResult records a winner's outcome after the placement.
func (d *Draws) setResult(ctx context.Context, sale string, slice int64, user, status, order, reason string) error {
	v := strings.Join([]string{strconv.FormatInt(slice, 10), status, order, reason}, "|")
	return d.rdb.HSet(ctx, d.keys(sale).results(), user, v).Err()
}

// newSeed is 32 random bytes.
func newSeed() ([]byte, error) {
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("draw: seed: %w", err)
	}
	return seed, nil
}

// sortedMembers reads a slice's entrants, sorted as the draw wants them.
func (d *Draws) sortedMembers(ctx context.Context, key string) ([]string, error) {
	m, err := d.rdb.SMembers(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	slices.Sort(m)
	return m, nil
}
