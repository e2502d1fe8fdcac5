package http

import (
	"net/http"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// createSaleRequest is a sale's shape as the merchant sends it: the
// domain's (every member optional but the terms Validate requires).
type createSaleRequest struct {
	domain.SaleSpec
	// UserIntervalMS shadows the spec's: absent (the default) and 0 (off)
	// differ here, where the spec says "off" with domain.UserIntervalOff.
	UserIntervalMS *int64 `json:"user_interval_ms"`
}

// spec is the sale the request asks for.
func (req createSaleRequest) spec() (domain.SaleSpec, error) {
	spec := req.SaleSpec
	switch v := req.UserIntervalMS; {
	case v == nil:
	case *v < 0:
		return spec, domain.Invalid("user_interval_ms", "must be between 0 (off) and %d", domain.MaxIntervalMS)
	case *v == 0:
		spec.Protections.UserIntervalMS = domain.UserIntervalOff
	default:
		spec.Protections.UserIntervalMS = *v
	}
	return spec, nil
}

func (s *server) createSale(w http.ResponseWriter, r *http.Request) {
	var req createSaleRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	spec, err := req.spec()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	sale, err := s.Gate.CreateSale(r.Context(), commands.CreateSale{Spec: spec})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Location", "/v1/sales/"+sale.ID)
	writeJSON(w, http.StatusCreated, sale)
}

func (s *server) endSale(w http.ResponseWriter, r *http.Request) {
	saleID, err := pathID(r, domain.ErrSaleNotFound)
	var sale commands.SaleView
	if err == nil {
		sale, err = s.Gate.EndSale(r.Context(), commands.EndSale{SaleID: saleID})
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, sale)
}

type purchaseRequest struct {
	// Quantity is a pointer because absent (or null: the default quantity)
	// and 0 (refused) differ.
	Quantity *int64 `json:"quantity"`
}

// quantity is the quantity the request asks for (domain.PurchaseQuantity).
func (req purchaseRequest) quantity() (int64, error) { return domain.PurchaseQuantity(req.Quantity) }
