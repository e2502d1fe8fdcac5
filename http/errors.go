package http

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"

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
	cause   error // logged, never shown
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
	// RetryAfterMS is the precise form of the Retry-After header (whole
	// seconds): when the same request may succeed, e.g. the next release.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

// sentinel is a bare decision error with its answer encoded once: in a flash
// sale nearly every request is answered sold_out, so that answer is bytes
// ready to write, not a json.Marshal per request.
type sentinel struct {
	err    error
	status int
	body   []byte
}

var sentinels = func() []sentinel {
	out := make([]sentinel, 0, len(codes))
	for err, c := range codes {
		b, _ := json.Marshal(errorBody{errorDetail{Code: c.code, Message: err.Error()}})
		out = append(out, sentinel{err, c.status, append(b, '\n')})
	}
	return out
}()

// writeError answers with the error's status and a JSON body naming the problem.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	// == against a sentinel never panics (the dynamic types differ or are
	// pointers), unlike a map lookup keyed by an arbitrary error.
	for i := range sentinels {
		if err == sentinels[i].err {
			if sentinels[i].status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			writeRaw(w, sentinels[i].status, sentinels[i].body)
			return
		}
	}
	var (
		ae *apiError
		ve *domain.ValidationError
	)
	switch {
	case errors.As(err, &ae):
		if ae.cause != nil {
			log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", ae.status, "err", ae.cause)
		}
		if ae.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, ae.status, errorBody{errorDetail{Code: ae.code, Message: ae.message}})
		return
	case errors.As(err, &ve):
		// errors.Join of several fields: report them all, name the first.
		writeJSON(w, http.StatusBadRequest, errorBody{errorDetail{Code: "invalid_request", Message: err.Error(), Field: ve.Field}})
		return
	}
	for target, c := range codes {
		if errors.Is(err, target) {
			d := errorDetail{Code: c.code, Message: target.Error()}
			var re *domain.RetryError
			if errors.As(err, &re) && re.After > 0 {
				// Retry-After is whole seconds, rounded up so a client that
				// obeys it is never early.
				w.Header().Set("Retry-After", strconv.FormatInt(int64((re.After+time.Second-1)/time.Second), 10))
				d.RetryAfterMS = int64((re.After + time.Millisecond - 1) / time.Millisecond)
			} else if c.status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
				w.Header().Set("Retry-After", "1")
			}
			writeJSON(w, c.status, errorBody{d})
			return
		}
	}
	if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
		// A dependency (Redis) was too slow for its own timeout. A purchase
		// may have been reserved all the same: its retry answers with it.
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{errorDetail{Code: "unavailable", Message: "a dependency timed out; retry"}})
		return
	}
	if (dependencyDown(err) || errors.Is(err, domain.ErrUnavailable)) && r.Context().Err() == nil {
		// Redis unreachable, restarting or failing over: the client did
		// nothing wrong and may retry; a purchase retried with its key
		// answers with its order if the gate took it after all.
		log.Warn("dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{errorDetail{Code: "unavailable", Message: "a dependency is unavailable; retry"}})
		return
	}
	if r.Context().Err() != nil {
		// The client went away or the request timed out; nobody reads the answer.
		writeJSON(w, http.StatusServiceUnavailable, errorBody{errorDetail{Code: "unavailable", Message: "request cancelled or timed out"}})
		return
	}
	log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{errorDetail{Code: "internal", Message: "internal error"}})
}

// redisError is how go-redis marks a reply that is an error from the server.
type redisError interface {
	error
	RedisError()
}

// transientRedis are the prefixes of Redis's answers while it cannot serve
// for a while: loading its data, a replica before or during a failover, a
// cluster without a master for the slot.
var transientRedis = []string{"LOADING ", "READONLY ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "NOREPLICAS ", "BUSY "}

// dependencyDown reports whether err says a dependency could not be reached
// or cannot serve right now (a refused or broken connection, a closed
// client, a Redis that is loading or failing over), rather than a bug.
func dependencyDown(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var re redisError
	if errors.As(err, &re) {
		for _, p := range transientRedis {
			if strings.HasPrefix(re.Error(), p) {
				return true
			}
		}
	}
	// go-redis's redis.ErrClosed, without importing go-redis for it.
	return strings.HasSuffix(err.Error(), "redis: client is closed")
}

// pathID returns the {id} parameter of r's route when it is a plausible
// id (domain.ValidID), else notFound: bytes that no sale or order can have
// are answered before any store is asked, because a store asked about them
// (Postgres about invalid UTF-8) fails, and that failure is not an outage.
func pathID(r *http.Request, notFound error) (string, error) {
	id := chi.URLParam(r, "id")
	if !domain.ValidID(id) {
		return "", notFound
	}
	return id, nil
}

// readModelError is how a read model's failure reaches the client: its
// decisions (not found) as they are, anything else as unavailable (the
// database is down or slow), never as a 500.
func readModelError(err error) error {
	for target := range codes {
		if errors.Is(err, target) {
			return err
		}
	}
	var ve *domain.ValidationError
	if errors.As(err, &ve) || errors.As(err, new(*apiError)) {
		return err
	}
	return unavailable(err)
}

// unavailable reports a dependency failure (the read model's database) as a
// 503 the client may retry, and logs the cause; err's text never reaches the client.
func unavailable(err error) error {
	return &apiError{status: http.StatusServiceUnavailable, code: "unavailable",
		message: "temporarily unavailable, retry shortly", cause: err}
}
