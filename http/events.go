package http

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// EventLog is the event log as the admin export reads it (eventstore.Log).
type EventLog interface {
	// Events calls fn with every event matching q; an error from fn stops it
	// and is returned. Other errors: the query is invalid, or the log could
	// not be read (including ctx ending).
	Events(ctx context.Context, q eventstore.Query, fn func(eventstore.Event) error) (eventstore.QueryStats, error)
}

// eventsFlushEvery is how often a running export pushes what it has to the
// client: often enough that a slow query shows progress, rarely enough that
// a fast one is not a syscall per line.
const eventsFlushEvery = 200 * time.Millisecond

// adminEvents streams the log as NDJSON (or CSV with format=csv or Accept:
// text/csv): GET /v1/admin/events?from=&to=&type=&sale=&user=&order=. It is
// the same export as `seckill events`, without --follow: it ends at `to` or
// at the end of the log as of the request. It is registered outside /v1's
// request timeout, and lifts the server's write deadline, because an export
// lasts as long as the log is long.
func (s *server) adminEvents(w http.ResponseWriter, r *http.Request) {
	q, format, err := eventsQuery(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.Warn("events: lift write deadline", "err", err)
	}
	// The status is sent with the first event, so a query that fails before
	// it (the log unreachable) still gets a proper error response.
	out := &lazyStart{w: w, contentType: "application/x-ndjson"}
	if format == eventstore.FormatCSV {
		out.contentType = "text/csv; charset=utf-8"
	}
	ew, err := eventstore.NewEntryWriter(out, format)
	if err != nil {
		writeError(w, r, s.log, badRequest("invalid_request", err.Error()))
		return
	}
	last := time.Now()
	_, err = s.Events.Events(r.Context(), q, func(e eventstore.Event) error {
		if err := ew.Write(e); err != nil {
			return err
		}
		if time.Since(last) >= eventsFlushEvery {
			last = time.Now()
			if err := ew.Flush(); err != nil {
				return err
			}
			return rc.Flush()
		}
		return nil
	})
	if err == nil {
		err = ew.Flush()
	}
	switch {
	case err == nil:
		if !out.started {
			out.start() // an empty export: 200 with no lines (a CSV header)
		}
		_ = rc.Flush()
	case r.Context().Err() != nil:
		// The client went away; nobody reads the rest.
	case !out.started:
		s.log.Error("events export", "err", err)
		writeError(w, r, s.log, &apiError{status: http.StatusServiceUnavailable, code: "log_unavailable", message: "the event log could not be read"})
	default:
		// Mid-stream the status is sent: an NDJSON export ends with an error
		// line, so a client can tell a cut export from a complete one.
		s.log.Error("events export cut short", "err", err)
		if format != eventstore.FormatCSV {
			_, _ = w.Write([]byte(`{"error":{"code":"log_unavailable","message":"the export was cut short"}}` + "\n"))
		}
		_ = rc.Flush()
	}
}

// eventsQuery reads the export's query parameters.
func eventsQuery(r *http.Request) (eventstore.Query, string, error) {
	v := r.URL.Query()
	var q eventstore.Query
	var errs []error
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				errs = append(errs, domain.Invalid(p.name, "must be an RFC 3339 time, e.g. 2026-11-11T20:00:03Z"))
				continue
			}
			*p.dst = t
		}
	}
	for _, t := range strings.Split(v.Get("type"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			q.Types = append(q.Types, t)
		}
	}
	q.SaleID, q.UserID, q.OrderID = v.Get("sale"), v.Get("user"), v.Get("order")
	format := v.Get("format")
	if format == "" {
		format = eventstore.FormatJSONL
		if strings.Contains(r.Header.Get("Accept"), "text/csv") {
			format = eventstore.FormatCSV
		}
	}
	if format != eventstore.FormatJSONL && format != eventstore.FormatCSV && format != "ndjson" {
		errs = append(errs, domain.Invalid("format", "must be jsonl (NDJSON) or csv"))
	}
	if len(errs) == 0 {
		if err := q.Validate(); err != nil {
			errs = append(errs, domain.Invalid("", "%v", err))
		}
	}
	return q, format, errors.Join(errs...)
}

// lazyStart sends the status and headers of a streamed 200 with its first
// bytes.
type lazyStart struct {
	w           http.ResponseWriter
	contentType string
	started     bool
}

func (l *lazyStart) start() {
	l.started = true
	h := l.w.Header()
	h.Set("Content-Type", l.contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyStart) Write(p []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.w.Write(p)
}
