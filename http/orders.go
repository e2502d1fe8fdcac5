package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/readmodels"
)

// OrderReader is the orders read model (*readmodels.Orders).
type OrderReader interface {
	GetOrder(ctx context.Context, id string) (readmodels.OrderView, error)
	ListUserOrders(ctx context.Context, userID string, limit int) ([]readmodels.OrderView, error)
}

// orderResponse is an order with where the answer came from: the read model,
// or the gate while the read model has not caught up (read-your-writes).
type orderResponse struct {
	readmodels.OrderView
	Source string `json:"source"`
}

// statusRank orders statuses along the lifecycle, to tell which of two views
// of the same order is newer.
func statusRank(s string) int {
	switch s {
	case domain.StatusReserved:
		return 1
	case domain.StatusPaid, domain.StatusExpired:
		return 2
	}
	return 0
}

// order answers from the read model, unless the gate knows the order further
// along (it was just placed or paid and the projection has not applied it yet).
// A terminal status in the read model is final, so the gate is not asked.
func (s *server) order(ctx context.Context, id string) (orderResponse, error) {
	rm, rmErr := s.Orders.GetOrder(ctx, id)
	if rmErr != nil && !errors.Is(rmErr, domain.ErrOrderNotFound) {
		// The read model is down or slow: the gate holds every order too, so
		// a client polling its order keeps getting answers.
		s.log.Warn("orders read model unavailable; answering from the gate", "order", id, "err", rmErr)
		g, err := s.Gate.Order(ctx, id)
		if err != nil {
			return orderResponse{}, unavailable(rmErr)
		}
		return orderResponse{gateView(g), "gate"}, nil
	}
	if rmErr == nil && domain.Terminal(rm.Status) {
		return orderResponse{rm, "read_model"}, nil
	}
	g, err := s.Gate.Order(ctx, id)
	if err != nil {
		if rmErr == nil {
			return orderResponse{rm, "read_model"}, nil
		}
		return orderResponse{}, err
	}
	if rmErr == nil && statusRank(rm.Status) >= statusRank(g.Status) {
		return orderResponse{rm, "read_model"}, nil
	}
	return orderResponse{gateView(g), "gate"}, nil
}

func gateView(o commands.GateOrder) readmodels.OrderView {
	return readmodels.OrderView{
		OrderID: o.OrderID, SaleID: o.SaleID, UserID: o.UserID, Quantity: o.Quantity,
		PriceCents: o.PriceCents, AmountCents: o.AmountCents, Status: o.Status,
		PayBy: o.PayBy, PaymentRef: o.PaymentRef, PlacedAt: o.PlacedAt,
		PaidAt: o.PaidAt, ExpiredAt: o.ExpiredAt, History: o.History(),
	}
}

func (s *server) getOrder(w http.ResponseWriter, r *http.Request) {
	id, _ := identityFrom(r.Context())
	orderID, err := pathID(r, domain.ErrOrderNotFound)
	var o orderResponse
	if err == nil {
		o, err = s.order(r.Context(), orderID)
	}
	if err == nil && o.UserID != id.UserID && !id.Admin {
		// Someone else's order is reported as missing, so ids cannot be probed.
		err = domain.ErrOrderNotFound
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

type payRequest struct {
	PaymentRef string `json:"payment_ref"`
}

func (s *server) pay(w http.ResponseWriter, r *http.Request) {
	orderID, err := pathID(r, domain.ErrOrderNotFound)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	var req payRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	id, _ := identityFrom(r.Context())
	p, err := s.Gate.Pay(r.Context(), commands.Pay{OrderID: orderID, UserID: id.UserID, PaymentRef: req.PaymentRef})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) myOrders(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeError(w, r, s.log, domain.Invalid("limit", "must be an integer between 1 and 500"))
			return
		}
		limit = n
	}
	id, _ := identityFrom(r.Context())
	orders, err := s.Orders.ListUserOrders(r.Context(), id.UserID, limit)
	if err != nil {
		writeError(w, r, s.log, unavailable(err))
		return
	}
	if orders == nil {
		orders = []readmodels.OrderView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": orders})
}
