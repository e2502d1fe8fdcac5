package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// Gate is commands.Gate with its decisions counted: every purchase and
// payment by reason (reserved, replay, sold_out, limit_reached, ...) and
// timed, whether the node answered from memory or Redis decided. It embeds
// the gate, so it serves wherever the gate does (http.Config.Gate).
type Gate struct {
	*commands.Gate
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec

	// The children of the vectors above, looked up once: label lookups
	// (hash, validate, lock) on every decision were a noticeable part of a
	// sold_out answer.
	purchaseLatency, payLatency prometheus.Observer
	purchases, pays             reasonCounters
}

// reasonCounters caches the decision counters of one command by reason.
type reasonCounters struct {
	command string
	vec     *prometheus.CounterVec
	mu      sync.RWMutex
	m       map[string]prometheus.Counter
}

func (c *reasonCounters) inc(reason string) {
	c.mu.RLock()
	ctr, ok := c.m[reason]
	c.mu.RUnlock()
	if !ok {
		ctr = c.vec.WithLabelValues(c.command, reason)
		c.mu.Lock()
		c.m[reason] = ctr
		c.mu.Unlock()
	}
	ctr.Inc()
}

// NewGate registers the gate metrics on reg and wraps g.
func NewGate(reg prometheus.Registerer, g *commands.Gate) (*Gate, error) {
	if g == nil {
		return nil, errors.New("gate metrics: nil gate")
	}
	m := &Gate{
		Gate: g,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "gate", Name: "decisions_total",
			Help: "Gate decisions by command (purchase, pay) and reason: reserved, replay (a retry answered with its order), paid, " +
				"sold_out, insufficient_stock, not_started, ended, limit_reached, not_yet_released, rate_limited, blocked, " +
				"token_required, sale_not_found, order_not_found, already_paid, expired, invalid, unavailable, error.",
		}, []string{"command", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "gate", Name: "decision_duration_seconds",
			Help:    "Time to decide a gate command, from memory or through its Lua script.",
			Buckets: latencyBuckets,
		}, []string{"command"}),
	}
	if err := register(reg, m.decisions, m.latency); err != nil {
		return nil, fmt.Errorf("gate metrics: %w", err)
	}
	// Present from the start, so a dashboard's rate() sees the first
	// sell-out instead of a series that appears mid-sale.
	for _, r := range []string{"reserved", "replay", "sold_out", "limit_reached"} {
		m.decisions.WithLabelValues("purchase", r)
	}
	m.purchaseLatency, m.payLatency = m.latency.WithLabelValues("purchase"), m.latency.WithLabelValues("pay")
	m.purchases = reasonCounters{command: "purchase", vec: m.decisions, m: map[string]prometheus.Counter{}}
	m.pays = reasonCounters{command: "pay", vec: m.decisions, m: map[string]prometheus.Counter{}}
	return m, nil
}

// Purchase decides a purchase (commands.Gate.Purchase) and counts it.
func (m *Gate) Purchase(ctx context.Context, cmd commands.Purchase) (commands.Reservation, error) {
	start := time.Now()
	res, err := m.Gate.Purchase(ctx, cmd)
	m.purchaseLatency.Observe(since(start))
	reason := "reserved"
	switch {
	case err != nil:
		reason = Reason(err)
	case res.Replayed:
		reason = "replay"
	}
	m.purchases.inc(reason)
	return res, err
}

// MemorySoldOut asks the gate's memory whether a purchase is sold out
// (commands.Gate.MemorySoldOut) and counts the answers the HTTP layer gives
// from it without calling Purchase: sold out, and no exception for the user.
func (m *Gate) MemorySoldOut(saleID, userID, key string) (soldOut, excepted bool) {
	soldOut, excepted = m.Gate.MemorySoldOut(saleID, userID, key)
	if soldOut && !excepted {
		m.purchases.inc("sold_out")
	}
	return soldOut, excepted
}

// Pay pays a reservation (commands.Gate.Pay) and counts it.
func (m *Gate) Pay(ctx context.Context, cmd commands.Pay) (commands.Payment, error) {
	start := time.Now()
	p, err := m.Gate.Pay(ctx, cmd)
	m.payLatency.Observe(since(start))
	reason := "paid"
	if err != nil {
		reason = Reason(err)
	}
	m.pays.inc(reason)
	return p, err
}

// reasons names the domain's decision errors; the names are the HTTP error
// codes (http/errors.go), so a dashboard and a client speak of the same thing.
var reasons = []struct {
	err  error
	name string
}{
	{domain.ErrSoldOut, "sold_out"},
	{domain.ErrInsufficientStock, "insufficient_stock"},
	{domain.ErrNotStarted, "not_started"},
	{domain.ErrEnded, "ended"},
	{domain.ErrLimitReached, "limit_reached"},
	{domain.ErrNotYetReleased, "not_yet_released"},
	{domain.ErrRateLimited, "rate_limited"},
	{domain.ErrBlocked, "blocked"},
	{domain.ErrTokenRequired, "token_required"},
	{domain.ErrSaleNotFound, "sale_not_found"},
	{domain.ErrOrderNotFound, "order_not_found"},
	{domain.ErrAlreadyPaid, "already_paid"},
	{domain.ErrExpired, "expired"},
	{domain.ErrUnauthenticated, "unauthenticated"},
	{domain.ErrForbidden, "forbidden"},
	{domain.ErrConflict, "conflict"},
}

// Reason is the bounded label for a gate error: a decision's code,
// "invalid" for a validation error, "unavailable" for a timeout, else "error".
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	var ve *domain.ValidationError
	switch {
	case errors.As(err, &ve):
		return "invalid"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "unavailable"
	}
	return "error"
}
