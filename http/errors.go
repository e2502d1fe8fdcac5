package http

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/seckill/seckill/domain"
)

// errorCode is how one domain error is shown to clients.
type errorCode struct {
	status int
	code   string
}

// codes is the one table from domain errors to statuses and codes. Anything not
// in it is a 500 whose details go to the log, never to the client.
var codes = map[error]errorCode{
	domain.ErrSoldOut:           {http.StatusConflict, "sold_out"},
	domain.ErrInsufficientStock: {http.StatusConflict, "insufficient_stock"},
	domain.ErrNotStarted:        {http.StatusConflict, "not_started"},
	domain.ErrEnded:             {http.StatusConflict, "ended"},
	domain.ErrLimitReached:      {http.StatusConflict, "limit_reached"},
	domain.ErrNotYetReleased:    {http.StatusConflict, "not_yet_released"},
	domain.ErrAlreadyPaid:       {http.StatusConflict, "already_paid"},
	domain.ErrExpired:           {http.StatusConflict, "expired"},
	domain.ErrConflict:          {http.StatusConflict, "conflict"},
	domain.ErrBlocked:           {http.StatusForbidden, "blocked"},
	domain.ErrForbidden:         {http.StatusForbidden, "forbidden"},
	domain.ErrTokenRequired:     {http.StatusForbidden, "token_required"},
	domain.ErrUnauthenticated:   {http.StatusUnauthorized, "unauthenticated"},
	domain.ErrRateLimited:       {http.StatusTooManyRequests, "rate_limited"},
	domain.ErrSaleNotFound:      {http.StatusNotFound, "sale_not_found"},
	domain.ErrOrderNotFound:     {http.StatusNotFound, "order_not_found"},
}

// apiError is an error the HTTP layer itself raises (bad JSON, unknown route).
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(code, msg string) error {
	return &apiError{status: http.StatusBadRequest, code: code, message: msg}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeError answers with the error's status and a JSON body naming the problem.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var (
		ae *apiError
		ve *domain.ValidationError
	)
	switch {
	case errors.As(err, &ae):
		writeJSON(w, ae.status, errorBody{errorDetail{Code: ae.code, Message: ae.message}})
		return
	case errors.As(err, &ve):
		// errors.Join of several fields: report them all, name the first.
		writeJSON(w, http.StatusBadRequest, errorBody{errorDetail{Code: "invalid_request", Message: err.Error(), Field: ve.Field}})
		return
	}
	for target, c := range codes {
		if errors.Is(err, target) {
			if c.status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
				w.Header().Set("Retry-After", "1")
			}
			writeJSON(w, c.status, errorBody{errorDetail{Code: c.code, Message: target.Error()}})
			return
		}
	}
	if r.Context().Err() != nil {
		// The client went away or the request timed out; nobody reads the answer.
		writeJSON(w, http.StatusServiceUnavailable, errorBody{errorDetail{Code: "unavailable", Message: "request cancelled or timed out"}})
		return
	}
	log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{errorDetail{Code: "internal", Message: "internal error"}})
}
