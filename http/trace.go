package http

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/seckill/seckill/domain"
)

// Tracing: every request gets an id (as chi's RequestID gives it: the
// client's X-Request-Id if it sent one, else a new one), echoed as
// X-Request-Id, and
// the metadata its events carry (domain.Metadata): the correlation id is the
// W3C trace id of a valid traceparent header, else the request id; the
// causation id is the request id. One access log line per request, with
// refusals (4xx) sampled: in a flash sale nearly every request is one.

// requestIDHeader is the header chi's RequestID reads and we echo.
const requestIDHeader = "X-Request-Id"

// AccessLog configures the access log.
type AccessLog struct {
	// Logger receives one line per request ("request"), at Info; nil: no
	// access log (the request id and the metadata are still set).
	Logger *slog.Logger
	// RefusalSample logs one in RefusalSample 4xx answers (all when 1).
	// Default 100: refusals are the bulk of a sale, and their counts are in
	// seckill_http_requests_total anyway. 5xx and successes are always
	// logged.
	RefusalSample int
}

// tracer is the tracing middleware.
type tracer struct {
	log     *slog.Logger
	sample  uint64
	refused atomic.Uint64
	prefix  string // "host/random-": unique per process, as chi makes it
	seq     atomic.Uint64
}

// maxRequestID bounds a client's X-Request-Id: longer ones are replaced, so
// a client cannot make every log line and event carry kilobytes.
const maxRequestID = 128

func newTracer(cfg AccessLog) *tracer {
	if cfg.RefusalSample <= 0 {
		cfg.RefusalSample = 100
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	prefix := host + "/" + strings.TrimRight(base64.URLEncoding.EncodeToString(rnd[:]), "=") + "-"
	return &tracer{log: cfg.Logger, sample: uint64(cfg.RefusalSample), prefix: prefix}
}

// newRequestID is prefix + a six-digit (at least) counter, without fmt.
func (tr *tracer) newRequestID() string {
	n := tr.seq.Add(1)
	var num [20]byte
	digits := strconv.AppendUint(num[:0], n, 10)
	var b strings.Builder // one allocation: the id itself
	b.Grow(len(tr.prefix) + max(6, len(digits)))
	b.WriteString(tr.prefix)
	for range 6 - len(digits) {
		b.WriteByte('0')
	}
	b.Write(digits)
	return b.String()
}

// quietRoutes are the probes and scrapes, polled every few seconds by
// machines: their successes are not logged.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// middleware does what chi's middleware.RequestID does (the client's
// X-Request-Id, else "host/random-000001"; middleware.GetReqID finds it) and
// puts the metadata beside it, with one copy of the request instead of
// two: this runs on every refusal of a sale, whose cost is the hot path.
func (tr *tracer) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := r.Header.Get(middleware.RequestIDHeader)
		if reqID == "" || len(reqID) > maxRequestID {
			reqID = tr.newRequestID()
		}
		w.Header()[requestIDHeader] = []string{reqID}
		md := domain.Metadata{CorrelationID: reqID, CausationID: reqID}
		if trace, ok := traceID(r.Header.Get("traceparent")); ok {
			md.CorrelationID = trace
		}
		ctx := context.WithValue(r.Context(), middleware.RequestIDKey, reqID)
		r = r.WithContext(domain.WithMetadata(ctx, md))
		if tr.log == nil {
			next.ServeHTTP(w, r)
			return
		}
		rw, ok := w.(*recordingWriter)
		if !ok {
			rw = &recordingWriter{ResponseWriter: w}
		}
		next.ServeHTTP(rw, r)
		tr.logRequest(r, rw, md, time.Since(start))
	})
}

func (tr *tracer) logRequest(r *http.Request, rw *recordingWriter, md domain.Metadata, took time.Duration) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	route := "unmatched"
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		route = rc.RoutePattern()
	}
	switch {
	case status < 400 && quietRoutes[route]:
		return
	case status >= 400 && status < 500:
		if tr.refused.Add(1)%tr.sample != 1 && tr.sample > 1 {
			return
		}
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("route", route), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.Duration("took", took),
		slog.String("request_id", md.CausationID), slog.String("correlation_id", md.CorrelationID),
	}
	if rw.code != "" {
		attrs = append(attrs, slog.String("code", rw.code))
	}
	if status >= 400 && status < 500 && tr.sample > 1 {
		attrs = append(attrs, slog.Int("sampled_1_in", int(tr.sample)))
	}
	tr.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// traceID returns the trace id of a W3C traceparent header
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"), if it is valid:
// version ff is forbidden, an all-zero trace or parent id is invalid, and a
// future version may append fields after the flags.
func traceID(h string) (string, bool) {
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' {
		return "", false
	}
	version, trace, parent, flags := h[0:2], h[3:35], h[36:52], h[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) {
		return "", false
	}
	if version == "00" && len(h) != 55 || len(h) > 55 && h[55] != '-' {
		return "", false
	}
	if strings.Trim(trace, "0") == "" || strings.Trim(parent, "0") == "" {
		return "", false
	}
	return trace, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
