package domain

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"
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
	name := strings.TrimSpace(s.Name)
	if name == "" {
		errs = append(errs, Invalid("name", "must not be empty"))
	} else if utf8.RuneCountInString(name) > MaxNameLen {
		errs = append(errs, Invalid("name", "must be at most %d characters", MaxNameLen))
	}
	if s.Stock < 1 || s.Stock > MaxStock {
		errs = append(errs, Invalid("stock", "must be between 1 and %d", MaxStock))
	}
	if s.PriceCents < 0 {
		errs = append(errs, Invalid("price_cents", "must not be negative"))
	}
	if s.StartsAt.IsZero() {
		errs = append(errs, Invalid("starts_at", "is required (RFC 3339)"))
	}
	if s.EndsAt.IsZero() {
		errs = append(errs, Invalid("ends_at", "is required (RFC 3339)"))
	}
	if !s.StartsAt.IsZero() && !s.EndsAt.IsZero() && !s.EndsAt.After(s.StartsAt) {
		errs = append(errs, Invalid("ends_at", "must be after starts_at"))
	}
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

// ValidateQuantity checks the quantity of one purchase.
func ValidateQuantity(q int64) error {
	if q < 1 || q > MaxQuantity {
		return Invalid("quantity", "must be between 1 and %d", MaxQuantity)
	}
	return nil
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
