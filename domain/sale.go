package domain

import (
	"errors"
	"strings"
	"time"
)

// Limits on what a sale may be created with.
const (
	MaxStock         = 10_000_000
	MaxQuantity      = 100 // per purchase
	MaxNameLen       = 200
	DefaultPayWithin = 15 * time.Minute
	MaxPayWithin     = 24 * time.Hour
	// DefaultCurrency is the currency of a sale created without one, and of
	// every sale recorded before SaleCreated v2.
	DefaultCurrency = "CNY"
	// MaxSaleValueCents bounds price_cents × stock, the most a sale can take
	// in: every amount and sum of a sale (an order's amount, the gate's
	// paid_cents, a day's revenue) then stays exact in the gate's Lua
	// numbers (doubles, exact to 2^53) and far inside int64.
	MaxSaleValueCents = 1<<53 - 1
)

// The window a sale may be scheduled in. Outside it a time would not survive
// the log's JSON (RFC 3339 has four-digit years) or the gate's milliseconds.
var (
	MinSaleTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxSaleTime = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// SaleSpec is what a merchant asks for when creating a sale.
type SaleSpec struct {
	Name         string
	Stock        int64
	PriceCents   int64
	StartsAt     time.Time
	EndsAt       time.Time
	PerUserLimit int64
	PayWithin    time.Duration
	// Currency is the ISO 4217 code of PriceCents; default DefaultCurrency.
	Currency string
	// Protections are the gate's per-sale protections (domain/protect.go).
	Protections Protections
	// Shards splits the stock over this many shards, each in a Redis slot of
	// its own (docs/sharding.md); 0 or 1: one pool, the classic layout.
	Shards int
}

// WithDefaults fills the optional fields: per-user limit 1, pay within 15
// minutes, currency DefaultCurrency.
func (s SaleSpec) WithDefaults() SaleSpec {
	if s.PerUserLimit == 0 {
		s.PerUserLimit = 1
	}
	if s.PayWithin == 0 {
		s.PayWithin = DefaultPayWithin
	}
	if s.Currency == "" {
		s.Currency = DefaultCurrency
	}
	s.Protections = s.Protections.withDefaults()
	return s
}

// Validate reports every field that is wrong, joined.
func (s SaleSpec) Validate() error {
	var errs []error
	if name := strings.TrimSpace(s.Name); name == "" {
		errs = append(errs, Invalid("name", "must not be empty"))
	} else if err := ValidateText("name", name, MaxNameLen); err != nil {
		errs = append(errs, err)
	}
	stockOK := s.Stock >= 1 && s.Stock <= MaxStock
	if !stockOK {
		errs = append(errs, Invalid("stock", "must be between 1 and %d", MaxStock))
	}
	switch {
	case s.PriceCents < 0:
		errs = append(errs, Invalid("price_cents", "must not be negative"))
	case stockOK && s.PriceCents > MaxSaleValueCents/s.Stock:
		errs = append(errs, Invalid("price_cents", "price_cents × stock must be at most %d", int64(MaxSaleValueCents)))
	}
	errs = append(errs, validateWindow(s.StartsAt, s.EndsAt)...)
	if s.PerUserLimit < 1 || s.PerUserLimit > MaxQuantity {
		errs = append(errs, Invalid("per_user_limit", "must be between 1 and %d", MaxQuantity))
	}
	if s.PayWithin < time.Second || s.PayWithin > MaxPayWithin {
		errs = append(errs, Invalid("pay_within_s", "must be between 1 and %d seconds", int(MaxPayWithin/time.Second)))
	}
	if !ValidCurrency(s.Currency) {
		errs = append(errs, Invalid("currency", "must be an ISO 4217 code: 3 uppercase letters"))
	}
	errs = append(errs, s.Protections.validate(s)...)
	errs = append(errs, s.validateShards()...)
	return errors.Join(errs...)
}

// validateWindow checks a sale's start and end.
func validateWindow(starts, ends time.Time) []error {
	var errs []error
	for _, t := range []struct {
		field string
		at    time.Time
	}{{"starts_at", starts}, {"ends_at", ends}} {
		switch {
		case t.at.IsZero():
			errs = append(errs, Invalid(t.field, "is required (RFC 3339)"))
		case t.at.Before(MinSaleTime) || !t.at.Before(MaxSaleTime):
			errs = append(errs, Invalid(t.field, "must be between %s and %s",
				MinSaleTime.Format(time.DateOnly), MaxSaleTime.Format(time.DateOnly)))
		}
	}
	if len(errs) == 0 && !ends.After(starts) {
		errs = append(errs, Invalid("ends_at", "must be after starts_at"))
	}
	return errs
}

// SecondsDuration converts a client's count of seconds (pay_within_s) to a
// duration. A count too large for a time.Duration saturates instead of
// wrapping round to a plausible value, so Validate refuses it.
func SecondsDuration(s int64) time.Duration {
	const limit = int64(1<<63-1) / int64(time.Second)
	switch {
	case s > limit:
		return time.Duration(1<<63 - 1)
	case s < -limit:
		return time.Duration(-1 << 63)
	}
	return time.Duration(s) * time.Second
}

// ValidCurrency reports whether c has the shape of an ISO 4217 code (three
// uppercase ASCII letters). The list of codes changes over time, so the shape
// is what is checked, not membership.
func ValidCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := range 3 {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// Created is the SaleCreated event that opens a sale with id and this spec.
func (s SaleSpec) Created(id string) SaleCreated {
	return SaleCreated{
		SaleID:       id,
		Name:         strings.TrimSpace(s.Name),
		Stock:        s.Stock,
		PriceCents:   s.PriceCents,
		StartsAt:     s.StartsAt.UTC(),
		EndsAt:       s.EndsAt.UTC(),
		PerUserLimit: s.PerUserLimit,
		PayWithinS:   int64(s.PayWithin / time.Second),
		Currency:     s.Currency,
		Protections:  s.Protections,
		Shards:       recordedShards(s.Shards),
	}
}

// OrderID is the id of an order of sale: the sale id, a dash, and a suffix unique
// within the sale. Carrying the sale id lets any node find the order's gate keys.
func OrderID(saleID, suffix string) string { return saleID + "-" + suffix }

// SaleOfOrder returns the sale id inside an order id.
func SaleOfOrder(orderID string) (string, bool) {
	i := strings.LastIndexByte(orderID, '-')
	if i <= 0 || i == len(orderID)-1 {
		return "", false
	}
	return orderID[:i], true
}

// ValidID reports whether id is a plausible sale or order id: short, and only
// letters, digits, '-' and '_', so it is safe in Redis keys and URLs.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Order statuses, in the order the lifecycle moves through them.
const (
	StatusReserved = "reserved"
	StatusPaid     = "paid"
	StatusExpired  = "expired"
)

// Terminal reports whether status is an end state.
func Terminal(status string) bool { return status == StatusPaid || status == StatusExpired }
