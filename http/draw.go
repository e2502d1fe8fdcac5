package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/draw"
)

// Drawer enters shoppers into the draws of draw-mode sales and tells them
// how their draw went (package draw).
type Drawer interface {
	// Enter returns the entry, or draw.ErrFull (as *domain.RetryError),
	// domain.ErrNotStarted, ErrEnded, ErrSoldOut, or a Redis error.
	Enter(ctx context.Context, sale commands.SaleView, user string) (draw.Entry, error)
	// Result returns the user's latest entry and its outcome, or
	// draw.ErrNotEntered.
	Result(ctx context.Context, sale commands.SaleView, user string) (draw.Result, error)
}

var (
	errDrawFull = &apiError{status: http.StatusConflict, code: "draw_full",
		message: "this slice's draw has all the entrants it takes; try again when the next slice opens (Retry-After)"}
	errDrawQuantity = &apiError{status: http.StatusBadRequest, code: "invalid_request",
		message: "quantity: a draw hands out one unit per winner; ask for 1"}
	errNoDraw     = &apiError{status: http.StatusNotFound, code: "no_draw", message: "this sale does not hold draws"}
	errNotEntered = &apiError{status: http.StatusNotFound, code: "not_entered", message: "you have not entered this sale's draw"}
)

// drawSale returns the sale when purchases in it enter a draw.
func (s *server) drawSale(r *http.Request, saleID string) (commands.SaleView, bool) {
	if s.Draws == nil {
		return commands.SaleView{}, false
	}
	sale, err := s.Gate.Sale(r.Context(), saleID)
	return sale, err == nil && sale.ReleaseMode == domain.ReleaseModeDraw
}

// enterDraw answers a purchase in a draw-mode sale: 202 entered, with
// where and when to ask for the result. Entering twice in one slice is the
// same entry (200).
func (s *server) enterDraw(w http.ResponseWriter, r *http.Request, sale commands.SaleView, user string, qty int64) {
	if qty != 1 {
		writeError(w, r, s.log, errDrawQuantity)
		return
	}
	entry, err := s.Draws.Enter(r.Context(), sale, user)
	var re *domain.RetryError
	switch {
	case errors.Is(err, draw.ErrFull) && errors.As(err, &re):
		w.Header().Set("Retry-After", retrySeconds(re.After))
		writeError(w, r, s.log, errDrawFull)
		return
	case err != nil:
		writeError(w, r, s.log, err)
		return
	}
	result := "/v1/sales/" + sale.ID + "/draw"
	w.Header()["Location"] = []string{result}
	// When to ask: the draw is held at draw_at.
	w.Header().Set("Retry-After", retrySeconds(time.Until(entry.DrawAt)))
	status := http.StatusAccepted
	if entry.Again {
		status = http.StatusOK
	}
	writeJSON(w, status, struct {
		draw.Entry
		Result string `json:"result"`
	}{entry, result})
}

// getDrawResult is GET /v1/sales/{id}/draw: the caller's latest entry in
// the sale's draw and how it went.
func (s *server) getDrawResult(w http.ResponseWriter, r *http.Request) {
	id, _ := identityFrom(r.Context())
	sale, ok := s.drawSale(r, chi.URLParam(r, "id"))
	if !ok {
		if _, err := s.Gate.Sale(r.Context(), chi.URLParam(r, "id")); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		writeError(w, r, s.log, errNoDraw)
		return
	}
	res, err := s.Draws.Result(r.Context(), sale, id.UserID)
	switch {
	case errors.Is(err, draw.ErrNotEntered):
		writeError(w, r, s.log, errNotEntered)
		return
	case err != nil:
		writeError(w, r, s.log, unavailable(err))
		return
	}
	if res.Status == "entered" {
		w.Header().Set("Retry-After", retrySeconds(time.Until(res.DrawAt)))
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, res)
}

// retrySeconds is d as a Retry-After: whole seconds, rounded up, at least 1.
func retrySeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}
