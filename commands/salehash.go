package commands

import (
	"time"

	"github.com/seckill/seckill/domain"
)

// newSaleFields are the field/value pairs of a new sale's hash: its
// configuration from SaleCreated and its counters at zero. CreateSale writes
// them; Restore writes them too and then sets the counters the log folds to,
// so a field added here reaches both (TestRestoreFromLog compares a restored
// gate with the original key by key).
func newSaleFields(ev domain.SaleCreated, createdAt time.Time) []any {
	return []any{
		"name", ev.Name, "stock", ev.Stock, "price", ev.PriceCents,
		"starts", ms(ev.StartsAt), "ends", ms(ev.EndsAt), "limit", ev.PerUserLimit,
		"pay_within", ev.PayWithinS, "currency", ev.Currency, "remaining", ev.Stock, "created_at", ms(createdAt),
		"reserved", 0, "paid", 0, "expired", 0, "ended", 0,
		"user_interval", ev.UserIntervalMS, "release_step", ev.ReleaseStep,
		"release_interval", ev.ReleaseIntervalMS, "require_token", boolField(ev.RequireToken),
		"challenge_bits", ev.ChallengeBits,
	}
}

// idemField is the field of the idempotency hash that names one purchase
// attempt: the user and their Idempotency-Key ("" for none). Purchase and
// Restore must agree on it, or a restored gate would not recognise a retry.
func idemField(user, key string) string { return user + "|" + key }
