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

// SaleTerms are what a sale sells and on which terms: the part of its shape
// every layer shares. The event (SaleCreated), the gate's configuration and
// views, the HTTP request and the read model embed it, so a field is said
// here once; the JSON tags are SaleCreated's wire names.
type SaleTerms struct {
	Name         string    `json:"name"`
	Stock        int64     `json:"stock"`
	PriceCents   int64     `json:"price_cents"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
	PerUserLimit int64     `json:"per_user_limit"`
	// PayWithinS is how long, in seconds, an order may stay unpaid.
	PayWithinS int64 `json:"pay_within_s"`
	// Currency is the ISO 4217 code of PriceCents; default DefaultCurrency
	// (SaleCreated v2: v1 events are upcast with it).
	Currency string `json:"currency"`
}

// PayWithin is PayWithinS as a duration.
func (t SaleTerms) PayWithin() time.Duration { return time.Duration(t.PayWithinS) * time.Second }

// SaleSpec is what a merchant asks for when creating a sale, and what
// SaleCreated records of it.
type SaleSpec struct {
	SaleTerms
	// Protections are the gate's per-sale protections (domain/protect.go):
	// optional fields (omitted when off), so adding them needed no new
	// schema version; a sale without them has none.
	Protections
	// Shards splits the stock over this many shards, each in a Redis slot of
	// its own (docs/sharding.md); 0 or 1: one pool, the classic layout.
	// SaleCreated records 0 (omitted) for one pool, so absent reads as 1 and
	// an unsharded sale's event is what it was before sharding.
	Shards int64 `json:"shards,omitempty"`
}

// WithDefaults fills the optional fields: per-user limit 1, pay within 15
// minutes, currency DefaultCurrency.
func (s SaleSpec) WithDefaults() SaleSpec {
	if s.PerUserLimit == 0 {
		s.PerUserLimit = 1
	}
	if s.PayWithinS == 0 {
		s.PayWithinS = int64(DefaultPayWithin / time.Second)
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
	if s.PayWithinS < 1 || s.PayWithinS > int64(MaxPayWithin/time.Second) {
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

// Created is the SaleCreated event that opens a sale with id and this spec:
// the name trimmed, the times in UTC, the shard count as recorded.
func (s SaleSpec) Created(id string) SaleCreated {
	s.Name = strings.TrimSpace(s.Name)
	s.StartsAt, s.EndsAt = s.StartsAt.UTC(), s.EndsAt.UTC()
	s.Shards = recordedShards(s.Shards)
	return SaleCreated{SaleID: id, SaleSpec: s}
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
