package domain

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// What a client sends and an event records. Everything here is checked before
// anything is written, because what the gate accepts every projection must
// apply: a string Postgres refuses (a NUL byte, invalid UTF-8) or that JSON
// rewrites (invalid UTF-8 becomes U+FFFD) would be accepted by the gate and
// then poison the log — dead letters in the read models, or a restored gate
// that no longer knows its own idempotency keys.

// Limits on the client-supplied strings of a purchase and a payment.
const (
	// MaxIdempotencyKeyLen bounds an Idempotency-Key, in bytes (it is ASCII).
	MaxIdempotencyKeyLen = 128
	// MaxPaymentRefLen bounds a payment reference, in characters.
	MaxPaymentRefLen = 128
	// DefaultQuantity is the quantity of a purchase that names none.
	DefaultQuantity = 1
)

// ValidateText reports whether s may be stored as text in an event and in
// every read model: valid UTF-8, no control characters (C0 — NUL, tabs, line
// breaks — DEL and C1), at most maxChars characters. The error names field.
func ValidateText(field, s string, maxChars int) error {
	if !utf8.ValidString(s) {
		return Invalid(field, "must be valid UTF-8")
	}
	n := 0
	for _, r := range s {
		if unicode.IsControl(r) {
			return Invalid(field, "must not contain control characters (found U+%04X)", r)
		}
		n++
	}
	if n > maxChars {
		return Invalid(field, "must be at most %d characters", maxChars)
	}
	return nil
}

// ValidateIdempotencyKey checks an Idempotency-Key: empty (none), or at most
// MaxIdempotencyKeyLen printable ASCII characters (a structured-field string,
// as the Idempotency-Key header draft has it). A key is matched byte for byte
// by the gate and recorded in OrderPlaced, so it must survive the JSON of the
// log unchanged: other bytes are refused, not rewritten.
func ValidateIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKeyLen {
		return Invalid("Idempotency-Key", "must be at most %d characters", MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return Invalid("Idempotency-Key", "must be printable ASCII (found byte 0x%02X)", c)
		}
	}
	return nil
}

// ValidateQuantity checks the quantity of one purchase.
func ValidateQuantity(q int64) error {
	if q < 1 || q > MaxQuantity {
		return Invalid("quantity", "must be between 1 and %d", MaxQuantity)
	}
	return nil
}

// PurchaseQuantity is the quantity a purchase request asks for: q, or
// DefaultQuantity when the request names none (nil). An explicit 0 is refused
// like any other quantity out of range, never bought as the default.
func PurchaseQuantity(q *int64) (int64, error) {
	if q == nil {
		return DefaultQuantity, nil
	}
	return *q, ValidateQuantity(*q)
}

// ValidUserID is the rule for a user id (a token's subject, a blacklist
// entry): an id as ValidID has it.
func ValidUserID(user string) error {
	if !ValidID(user) {
		return Invalid("user_id", "must be 1-64 letters, digits, '-' or '_'")
	}
	return nil
}

// ValidatePurchase checks what a purchase carries from its client: the user
// (ErrUnauthenticated when there is none), the quantity, the idempotency key.
func ValidatePurchase(user string, quantity int64, idempotencyKey string) error {
	if user == "" {
		return ErrUnauthenticated
	}
	if err := ValidUserID(user); err != nil {
		return err
	}
	if err := ValidateQuantity(quantity); err != nil {
		return err
	}
	return ValidateIdempotencyKey(idempotencyKey)
}

// PaymentRef returns the payment reference a payment records: ref without
// surrounding white space, which must then be non-empty text of at most
// MaxPaymentRefLen characters.
func PaymentRef(ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", Invalid("payment_ref", "must not be empty")
	}
	return ref, ValidateText("payment_ref", ref, MaxPaymentRefLen)
}
