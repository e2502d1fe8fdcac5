// Package foldgen writes random event logs for the tests of the fold's
// snapshots: days of sales that open, sell, settle and end one after another
// (so a fold can archive them), a few left open, and redeliveries, some of
// them long after their sale closed. It only encodes events; no I/O.
package foldgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/seckill/seckill/domain"
)

// Config shapes a log.
type Config struct {
	Sales     int // sales, one after another
	MaxOrders int // orders per sale, 0..MaxOrders
	// Dups is the chance (0..1) that an event is delivered again, LateDups
	// the chance that such a redelivery comes at the very end of the log
	// (after its sale closed) rather than a little later.
	Dups, LateDups float64
	// Broken is the chance per order that its log is broken (an order paid
	// twice, or never reserved), so the violations have something to say.
	Broken float64
}

// Log returns the encoded envelopes of a random log, in log order.
func Log(seed uint64, cfg Config) ([][]byte, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0xf01d))
	base := time.Date(2025, 11, 11, 20, 0, 0, 0, time.UTC)
	var out, late [][]byte
	var err error
	emit := func(e domain.Event, at time.Time) {
		b, eerr := domain.Encode(e, at)
		if eerr != nil && err == nil {
			err = eerr
		}
		out = append(out, b)
		if rng.Float64() < cfg.Dups {
			if rng.Float64() < cfg.LateDups {
				late = append(late, b)
			} else {
				// Redelivered among the next few events.
				at := len(out) - rng.IntN(min(len(out), 5))
				out = slices.Insert(out, at, b)
			}
		}
	}
	for s := range cfg.Sales {
		start := base.Add(time.Duration(s) * 24 * time.Hour)
		sale := fmt.Sprintf("day%03d", s)
		n := rng.IntN(cfg.MaxOrders + 1)
		emit(domain.SaleCreated{SaleID: sale, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
			Name: "daily " + sale, Stock: int64(n + rng.IntN(3)), PriceCents: 1999, Currency: "CNY",
			StartsAt: start, EndsAt: start.Add(time.Hour), PerUserLimit: 2, PayWithinS: 900,
		}}}, start)
		// Sales left open: no end, or an order never paid nor expired.
		open := rng.IntN(6) == 0
		for i := range n {
			at := start.Add(time.Duration(i+1) * time.Second)
			o, u := domain.OrderID(sale, fmt.Sprint(i)), fmt.Sprintf("u%d", rng.IntN(max(n, 1)))
			broken := rng.Float64() < cfg.Broken
			if !broken || rng.IntN(2) == 0 {
				emit(domain.StockReserved{SaleID: sale, OrderID: o, UserID: u, Quantity: 1}, at)
			}
			emit(domain.OrderPlaced{OrderID: o, SaleID: sale, UserID: u, Quantity: 1, PriceCents: 1999, AmountCents: 1999, PayBy: at.Add(15 * time.Minute)}, at)
			switch {
			case open && i == n-1:
			case rng.IntN(10) < 7:
				paid := domain.OrderPaid{OrderID: o, SaleID: sale, UserID: u, Quantity: 1, AmountCents: 1999, PaymentRef: "p" + o}
				emit(paid, at.Add(time.Minute))
				if broken {
					emit(paid, at.Add(2*time.Minute)) // a second payment, its own event id
				}
			default:
				emit(domain.OrderExpired{OrderID: o, SaleID: sale, UserID: u, Quantity: 1}, at.Add(15*time.Minute))
				emit(domain.StockReleased{SaleID: sale, OrderID: o, Quantity: 1, ToPool: true}, at.Add(15*time.Minute))
			}
		}
		if !open || rng.IntN(2) == 0 {
			emit(domain.SaleEnded{SaleID: sale, Reason: domain.EndReasonWindowClosed}, start.Add(time.Hour))
		}
	}
	return append(out, late...), err
}

// Canonical is a fold as text to compare: its counters, every sale and order
// in memory, and its violations. Two folds of one log that both hold
// everything in memory (none archived, or every archive reopened) give the
// same text.
func Canonical(f *domain.Fold) (string, error) {
	b, err := json.Marshal(f.State())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s\nviolations %q", b, f.Violations()), nil
}
