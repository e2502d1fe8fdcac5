package domain

import (
	"fmt"
	"time"
)

// Defaults and limits of a sale's gate protections (README, "Protections").
const (
	// DefaultReleaseIntervalMS is the release interval of a staged sale that
	// names none: seed 000 releases "5 every 100 ms".
	DefaultReleaseIntervalMS = 100
	// DefaultStagedUserIntervalMS is the per-user interval of a staged sale
	// that names none. Staged release without a per-user limit hands every
	// released slice to whoever polls fastest — the bots seed 000 stages
	// against — so a staged sale gets one attempt per user per second unless
	// it says otherwise.
	DefaultStagedUserIntervalMS = 1000
	// MaxIntervalMS bounds both intervals: an hour.
	MaxIntervalMS = 3_600_000
	// MaxChallengeBits bounds a sale's proof of work: 2^28 hashes are
	// minutes in a phone's browser already.
	MaxChallengeBits = 28
	// UserIntervalOff, as Protections.UserIntervalMS of a SaleSpec, turns the
	// per-user rate limit off where a default would turn it on (0 means "the
	// default").
	UserIntervalOff = -1
)

// Protections are the per-sale settings of the gate's protections. Every zero
// value means "off", so sales recorded before they existed read unchanged.
type Protections struct {
	// UserIntervalMS allows one purchase attempt per user per this many ms
	// (0: no per-user rate limit). A retry answered with an existing order is
	// not an attempt.
	UserIntervalMS int64 `json:"user_interval_ms,omitempty"`
	// ReleaseStep releases the stock ReleaseStep units per ReleaseIntervalMS
	// from the start (0: the whole stock at once).
	ReleaseStep       int64 `json:"release_step,omitempty"`
	ReleaseIntervalMS int64 `json:"release_interval_ms,omitempty"`
	// RequireToken makes every purchase present a purchase token minted for
	// its user and sale (the "hidden URL").
	RequireToken bool `json:"require_token,omitempty"`
	// ChallengeBits asks for a proof of work before a purchase token is
	// issued (package challenge): a SHA-256 with this many leading zero bits,
	// 2^bits hashes on average (0: none). It implies RequireToken.
	ChallengeBits int64 `json:"challenge_bits,omitempty"`
	// ReleaseMode "draw" (ReleaseModeDraw) draws each released slice among
	// the users who asked during its window instead of serving the fastest
	// (domain/draw.go); "" is first come, first served. Draw needs
	// ReleaseStep.
	ReleaseMode string `json:"release_mode,omitempty"`
}

// withDefaults fills a staged sale's interval and per-user limit and turns
// UserIntervalOff into 0.
func (p Protections) withDefaults() Protections {
	if p.ChallengeBits > 0 {
		// The challenge guards the token; without tokens it guards nothing.
		p.RequireToken = true
	}
	if p.ReleaseStep > 0 && p.ReleaseIntervalMS == 0 {
		p.ReleaseIntervalMS = DefaultReleaseIntervalMS
	}
	switch {
	case p.UserIntervalMS == UserIntervalOff:
		p.UserIntervalMS = 0
	case p.UserIntervalMS == 0 && p.ReleaseStep > 0 && p.ReleaseMode != ReleaseModeDraw:
		// A draw does not reward speed, and a winner of two slices in a
		// row must not be refused by the rate limit: no default there.
		p.UserIntervalMS = DefaultStagedUserIntervalMS
	}
	return p
}

// validate reports what is wrong with p for a sale of spec.
func (p Protections) validate(spec SaleSpec) []error {
	var errs []error
	switch {
	case p.ReleaseMode != "" && p.ReleaseMode != ReleaseModeDraw:
		errs = append(errs, Invalid("release_mode", "must be %q or absent (first come, first served)", ReleaseModeDraw))
	case p.ReleaseMode == ReleaseModeDraw && p.ReleaseStep == 0:
		errs = append(errs, Invalid("release_mode", "draw needs release_step: each released slice is drawn"))
	}
	if p.ChallengeBits < 0 || p.ChallengeBits > MaxChallengeBits {
		errs = append(errs, Invalid("challenge_bits", "must be between 0 (no challenge) and %d", MaxChallengeBits))
	}
	if (p.UserIntervalMS < 0 && p.UserIntervalMS != UserIntervalOff) || p.UserIntervalMS > MaxIntervalMS {
		errs = append(errs, Invalid("user_interval_ms", "must be between 0 (off) and %d", MaxIntervalMS))
	}
	switch {
	case p.ReleaseStep < 0 || p.ReleaseStep > MaxStock:
		errs = append(errs, Invalid("release_step", "must be between 0 (whole stock at once) and the stock"))
	case p.ReleaseStep > spec.Stock && spec.Stock > 0:
		errs = append(errs, Invalid("release_step", "must not exceed the stock (%d)", spec.Stock))
	case p.ReleaseStep == 0 && p.ReleaseIntervalMS != 0:
		errs = append(errs, Invalid("release_interval_ms", "needs release_step"))
	case p.ReleaseStep > 0 && (p.ReleaseIntervalMS < 1 || p.ReleaseIntervalMS > MaxIntervalMS):
		errs = append(errs, Invalid("release_interval_ms", "must be between 1 and %d", MaxIntervalMS))
	case p.ReleaseStep > 0 && spec.Stock > 0 && !spec.StartsAt.IsZero() && spec.EndsAt.After(spec.StartsAt):
		// Stock that is released after the end can never be sold: the seeds
		// keep the whole release short, and a schedule longer than the window
		// is a typo.
		// In milliseconds: at most MaxStock × MaxIntervalMS, which fits an
		// int64 where the same in nanoseconds (a time.Duration) would wrap.
		slices := (spec.Stock + p.ReleaseStep - 1) / p.ReleaseStep
		if fullMS := (slices - 1) * p.ReleaseIntervalMS; fullMS >= spec.EndsAt.Sub(spec.StartsAt).Milliseconds() {
			errs = append(errs, Invalid("release_step", "releasing the whole stock takes %s, not less than the sale window",
				msString(fullMS)))
		}
	}
	return errs
}

// msString shows ms as a duration, in hours past what a time.Duration holds.
func msString(ms int64) string {
	if ms > int64(time.Duration(1<<63-1)/time.Millisecond) {
		return fmt.Sprintf("%dh", ms/int64(time.Hour/time.Millisecond))
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// Released is how many units of a sale of stock are released at elapsed
// time after its start: everything without staging, else ReleaseStep per
// started interval, the first at the start. purchase.lua computes the same.
func (p Protections) Released(stock int64, elapsed time.Duration) int64 {
	if p.ReleaseStep <= 0 {
		return stock
	}
	if elapsed < 0 {
		return 0
	}
	slices := int64(elapsed/(time.Duration(p.ReleaseIntervalMS)*time.Millisecond)) + 1
	if slices > (stock+p.ReleaseStep-1)/p.ReleaseStep {
		return stock
	}
	return min(stock, slices*p.ReleaseStep)
}

// RetryError is a refusal that the same request may overcome later: a rate
// limit, stock not released yet, a sale not started. After says when to try
// again; the HTTP layer sends it as Retry-After.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return fmt.Sprintf("%v (retry in %s)", e.Err, e.After) }

// Unwrap returns the decision, so errors.Is(err, ErrRateLimited) holds.
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter wraps the decision err with a hint to retry after d.
func RetryAfter(err error, d time.Duration) error { return &RetryError{Err: err, After: d} }
