package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/seckill/seckill/projections"
)

// DeadLetterAdmin is the projections' dead letters (projections.DeadLetterSet).
type DeadLetterAdmin interface {
	List(ctx context.Context, projection, status string, limit int) ([]projections.Letter, error)
	Get(ctx context.Context, projection string, id int64) (projections.Letter, error)
	Retry(ctx context.Context, projection string, id int64) (projections.RetryResult, error)
	Discard(ctx context.Context, projection string, id int64) (projections.RetryResult, error)
}

// routeDeadLetters adds /v1/admin/deadletters; r already requires an admin.
func (s *server) routeDeadLetters(r chi.Router) {
	if s.DeadLetters == nil {
		return
	}
	r.Get("/admin/deadletters", s.listDeadLetters)
	r.Get("/admin/deadletters/{projection}/{id}", s.getDeadLetter)
	r.Post("/admin/deadletters/{projection}/{id}/retry", s.resolveDeadLetter(false))
	r.Post("/admin/deadletters/{projection}/{id}/discard", s.resolveDeadLetter(true))
}

func (s *server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status := q.Get("status")
	switch status {
	case "", "all", "open", projections.StatusParked, projections.StatusHeld, projections.StatusResolved, projections.StatusDiscarded:
	default:
		writeError(w, r, s.log, &apiError{status: http.StatusBadRequest, code: "invalid_request",
			message: "status: want open, parked, held, resolved, discarded or all"})
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, r, s.log, &apiError{status: http.StatusBadRequest, code: "invalid_request", message: "limit: want 1..1000"})
			return
		}
		limit = n
	}
	ls, err := s.DeadLetters.List(r.Context(), q.Get("projection"), status, limit)
	if err != nil {
		writeError(w, r, s.log, deadLetterError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": ls})
}

func (s *server) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, ok := letterID(w, r, s)
	if !ok {
		return
	}
	l, err := s.DeadLetters.Get(r.Context(), chi.URLParam(r, "projection"), id)
	if err != nil {
		writeError(w, r, s.log, deadLetterError(err))
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *server) resolveDeadLetter(discard bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := letterID(w, r, s)
		if !ok {
			return
		}
		do := s.DeadLetters.Retry
		if discard {
			do = s.DeadLetters.Discard
		}
		res, err := do(r.Context(), chi.URLParam(r, "projection"), id)
		if err != nil {
			writeError(w, r, s.log, deadLetterError(err))
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

func letterID(w http.ResponseWriter, r *http.Request, s *server) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, r, s.log, &apiError{status: http.StatusBadRequest, code: "invalid_request", message: "id: want a dead letter's number"})
		return 0, false
	}
	return id, true
}

// deadLetterError maps the dead letters' errors to answers.
func deadLetterError(err error) error {
	switch {
	case errors.Is(err, projections.ErrLetterNotFound), errors.Is(err, projections.ErrUnknownProjection):
		return &apiError{status: http.StatusNotFound, code: "not_found", message: err.Error()}
	case errors.Is(err, projections.ErrLetterClosed):
		return &apiError{status: http.StatusConflict, code: "letter_closed", message: err.Error()}
	}
	return err
}
