package http

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/readmodels"
)

// SaleLister lists sales for the index of the sale page
// (readmodels.Orders.ListSales). It returns them newest first.
type SaleLister interface {
	ListSales(ctx context.Context, limit int) ([]readmodels.SaleView, error)
}

// listSales is GET /v1/sales: recent sales from the read model, newest first,
// with the server's time so that a client can tell upcoming from active
// without trusting its own clock. Remaining stock is not here (the read model
// does not have it); GET /v1/sales/{id} has it.
func (s *server) listSales(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, r, s.log, domain.Invalid("limit", "must be an integer between 1 and 100"))
			return
		}
		limit = n
	}
	sales, err := s.Sales.ListSales(r.Context(), limit)
	if err != nil {
		writeError(w, r, s.log, readModelError(err))
		return
	}
	if sales == nil {
		sales = []readmodels.SaleView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sales": sales, "server_time": time.Now().UTC()})
}
