package http

import (
	"net/http"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

type createSaleRequest struct {
	Name         string    `json:"name"`
	Stock        int64     `json:"stock"`
	PriceCents   int64     `json:"price_cents"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
	PerUserLimit int64     `json:"per_user_limit"`
	PayWithinS   int64     `json:"pay_within_s"`
	// Currency is optional: an ISO 4217 code, default domain.DefaultCurrency.
	Currency string `json:"currency"`
	// The protections, all optional (README "Protections"). user_interval_ms
	// is a pointer because absent (the default) and 0 (off) differ.
	UserIntervalMS    *int64 `json:"user_interval_ms"`
	ReleaseStep       int64  `json:"release_step"`
	ReleaseIntervalMS int64  `json:"release_interval_ms"`
	RequireToken      bool   `json:"require_token"`
	ChallengeBits     int64  `json:"challenge_bits"`
	// ReleaseMode "draw" draws each released slice (domain/draw.go).
	ReleaseMode string `json:"release_mode"`
	// Shards splits a hot sale's stock over Redis slots (docs/sharding.md);
	// optional, default 1.
	Shards int `json:"shards"`
}

// protections turns the request's protection fields into the domain's.
func (req createSaleRequest) protections() (domain.Protections, error) {
	p := domain.Protections{ReleaseStep: req.ReleaseStep, ReleaseIntervalMS: req.ReleaseIntervalMS,
		RequireToken: req.RequireToken, ChallengeBits: req.ChallengeBits, ReleaseMode: req.ReleaseMode}
	switch v := req.UserIntervalMS; {
	case v == nil:
	case *v < 0:
		return p, domain.Invalid("user_interval_ms", "must be between 0 (off) and %d", domain.MaxIntervalMS)
	case *v == 0:
		p.UserIntervalMS = domain.UserIntervalOff
	default:
		p.UserIntervalMS = *v
	}
	return p, nil
}

func (s *server) createSale(w http.ResponseWriter, r *http.Request) {
	var req createSaleRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	prot, err := req.protections()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	sale, err := s.Gate.CreateSale(r.Context(), commands.CreateSale{Spec: domain.SaleSpec{
		Name: req.Name, Stock: req.Stock, PriceCents: req.PriceCents, StartsAt: req.StartsAt,
		EndsAt: req.EndsAt, PerUserLimit: req.PerUserLimit, PayWithin: domain.SecondsDuration(req.PayWithinS),
		Currency: req.Currency, Protections: prot, Shards: req.Shards,
	}})
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
