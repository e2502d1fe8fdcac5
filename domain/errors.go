package domain

import (
	"errors"
	"fmt"
)

// Decision errors. Each one is an answer the gate gives a client; the HTTP layer
// maps them to a status and a stable error code in one table.
var (
	ErrSoldOut           = errors.New("sold out")
	ErrInsufficientStock = errors.New("not enough stock left for this quantity")
	ErrNotStarted        = errors.New("sale has not started")
	ErrEnded             = errors.New("sale has ended")
	ErrLimitReached      = errors.New("per-user limit reached")
	ErrNotYetReleased    = errors.New("no stock released yet; retry shortly")
	ErrBlocked           = errors.New("user is blocked")
	ErrRateLimited       = errors.New("too many requests")
	ErrSaleNotFound      = errors.New("sale not found")
	ErrOrderNotFound     = errors.New("order not found")
	ErrAlreadyPaid       = errors.New("order already paid")
	ErrExpired           = errors.New("order expired")
	ErrForbidden         = errors.New("forbidden")
	ErrUnauthenticated   = errors.New("missing or invalid credentials")
	ErrConflict          = errors.New("conflicting state")
	ErrTokenRequired     = errors.New("valid purchase token required")
	// ErrUnavailable is a write the gate could not make durable (fewer
	// replicas acknowledged it than required) or a dependency that cannot
	// serve right now: the client may retry; a purchase retried with its key
	// answers with its order if the gate kept it.
	ErrUnavailable = errors.New("temporarily unavailable")
)

// ValidationError names the field a client got wrong and why.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

// Invalid returns a *ValidationError for field.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
