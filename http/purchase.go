package http

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// The purchase, the one call a flash sale is made of. Once a sale is sold
// out nearly every request is a new shopper being told so (issue 13: a
// million shoppers, a few requests each), and that answer does not depend on
// who asks. So a node that knows the sale sold out says sold_out before it
// checks the token's signature, which is then most of the answer's cost for
// a token it has not seen. The exceptions are the shoppers the gate answers
// otherwise even then — one whose order this node knows, retrying (200 with
// the order), or a blocked one (403) — and only a verified token gets those
// answers: a token that names such a user and does not verify is told
// sold_out like any other, so no answer tells a forger who holds an order.
// Everything that reads or changes a user's state still verifies first
// (README, "Protections": why this is safe).

// memorySoldOut is the gate's memory of sold-out sales
// (commands.Gate.MemorySoldOut): whether this node answers purchases of
// saleID sold_out from memory right now, changing nothing, and whether
// userID is an exception it answers otherwise.
type memorySoldOut interface {
	MemorySoldOut(saleID, userID, key string) (soldOut, excepted bool)
}

func (s *server) purchase(w http.ResponseWriter, r *http.Request) {
	qty, bodyErr := decodePurchase(w, r) // fastpath.go
	key := r.Header.Get("Idempotency-Key")
	if raw, ok := bearerOf(r); ok && bodyErr == nil && s.soldOutUnverified(chi.URLParam(r, "id"), raw, qty, key) {
		writeError(w, r, s.log, domain.ErrSoldOut)
		return
	}
	// As every user call: the token first, then the request.
	id, ok := s.identify(w, r)
	if !ok {
		return
	}
	if bodyErr != nil {
		writeError(w, r, s.log, bodyErr)
		return
	}
	if sale, ok := s.drawSale(r, chi.URLParam(r, "id")); ok {
		// A draw-mode sale serves nobody first: the attempt enters the
		// slice's draw (draw.go).
		s.enterDraw(w, r, sale, id.UserID, qty)
		return
	}
	res, err := s.Gate.Purchase(r.Context(), commands.Purchase{
		SaleID: chi.URLParam(r, "id"), UserID: id.UserID, Quantity: qty, IdempotencyKey: key,
		Token: r.Header.Get(commands.PurchaseTokenHeader),
	})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	status := http.StatusAccepted
	if res.Replayed {
		// A retry: same order as before, nothing new was accepted.
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	w.Header()["Location"] = []string{"/v1/orders/" + res.OrderID}
	writeReservation(w, status, res)
}

// soldOutUnverified reports whether to answer sold_out to a purchase of
// qty under key with the bearer token raw before verifying it: the gate's
// memory says the sale is sold out, the request is one the gate would
// decide (a quantity and key it accepts), and the user the token names is
// no exception, or the token does not verify.
func (s *server) soldOutUnverified(saleID, raw string, qty int64, key string) bool {
	if s.soldOutMemory == nil || domain.ValidateQuantity(qty) != nil || domain.ValidateIdempotencyKey(key) != nil {
		return false
	}
	soldOut, excepted := s.soldOutMemory.MemorySoldOut(saleID, claimedUser(raw), key)
	if !soldOut {
		return false
	}
	if !excepted {
		return true
	}
	_, err := s.Auth.Verify(raw)
	return err != nil
}

// claimedUser is the user id the token raw names, read without checking
// anything but its shape: "" when no token that verifies could be this one
// (Authenticator.Verify would refuse it whatever its signature). Where it
// cannot tell, it returns the name, which only ever leads to a verification.
func claimedUser(raw string) string {
	if t, ok := splitCanonical(raw); ok {
		return validUserOrNone(t.claims.sub)
	}
	// Another shape: golang-jwt's parser reads it as three strict
	// base64url segments and decodes the claims with encoding/json's
	// Decoder, which takes the first JSON value and ignores what follows.
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	claims, err := strictB64.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.NewDecoder(bytes.NewReader(claims)).Decode(&c); err != nil {
		return ""
	}
	return validUserOrNone(c.Sub)
}

// validUserOrNone is id when Verify could accept it as a user, else "".
func validUserOrNone(id string) string {
	if !domain.ValidID(id) {
		return ""
	}
	return id
}
