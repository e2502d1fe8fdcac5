package http

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/seckill/seckill/challenge"
	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// Challenger issues and checks the proof of work of sales with
// challenge_bits (package challenge).
type Challenger interface {
	Issue(sale, user string, bits int) (challenge.Challenge, error)
	// Check returns nil, challenge.ErrInvalid or challenge.ErrExpired.
	Check(solution, sale, user string, minBits int) error
	// Spend returns nil, challenge.ErrUsed, or a Redis error.
	Spend(ctx context.Context, solution string) error
}

// The refusals of the challenge step, all 403 (what the purchase token
// answers when it is withheld): the page tells them apart to know whether
// to solve a new challenge.
var (
	errChallengeRequired = &apiError{status: http.StatusForbidden, code: "challenge_required",
		message: "this sale asks for a solved challenge (GET /v1/sales/{id}/challenge) in the " + challenge.Header + " header"}
	errChallengeFailed  = &apiError{status: http.StatusForbidden, code: "challenge_failed", message: challenge.ErrInvalid.Error()}
	errChallengeExpired = &apiError{status: http.StatusForbidden, code: "challenge_expired", message: challenge.ErrExpired.Error()}
	errChallengeUsed    = &apiError{status: http.StatusForbidden, code: "challenge_used", message: challenge.ErrUsed.Error()}
	errNoChallenge      = &apiError{status: http.StatusNotFound, code: "no_challenge", message: "this sale asks for no challenge"}
	errNoChallenger     = errors.New("http: a sale asks for a challenge, but Config.Challenges is not set")
)

// getChallenge is GET /v1/sales/{id}/challenge: a proof-of-work challenge
// for the caller in a sale with challenge_bits. It is issued before the
// start too, so the page can solve it during the countdown.
func (s *server) getChallenge(w http.ResponseWriter, r *http.Request) {
	id, _ := identityFrom(r.Context())
	sale, err := s.Gate.Sale(r.Context(), chi.URLParam(r, "id"))
	switch {
	case err != nil:
		writeError(w, r, s.log, err)
		return
	case sale.ChallengeBits == 0:
		writeError(w, r, s.log, errNoChallenge)
		return
	case sale.State == commands.SaleEnded:
		writeError(w, r, s.log, domain.ErrEnded)
		return
	case s.Challenges == nil:
		writeError(w, r, s.log, errNoChallenger)
		return
	}
	ch, err := s.Challenges.Issue(sale.ID, id.UserID, int(sale.ChallengeBits))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, ch)
}

// purchaseToken is GET /v1/sales/{id}/token: a signed, short-lived token that
// lets the caller buy in the sale (the hidden purchase URL of seed 000). 409
// not_started (with Retry-After) until the sale starts. A sale with
// challenge_bits first wants a solved challenge, spent only once the token
// is granted, so a refusal (not started yet) does not cost the work.
func (s *server) purchaseToken(w http.ResponseWriter, r *http.Request) {
	id, _ := identityFrom(r.Context())
	saleID := chi.URLParam(r, "id")
	solution, err := s.checkChallenge(r, saleID, id.UserID)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	tok, err := s.Gate.PurchaseToken(r.Context(), saleID, id.UserID)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if solution != "" {
		if err := s.Challenges.Spend(r.Context(), solution); errors.Is(err, challenge.ErrUsed) {
			writeError(w, r, s.log, errChallengeUsed)
			return
		} else if err != nil {
			writeError(w, r, s.log, unavailable(err))
			return
		}
	}
	writeJSON(w, http.StatusOK, tok)
}

// checkChallenge checks the request's solution if the sale asks for one,
// and returns it ("" when the sale asks for none).
func (s *server) checkChallenge(r *http.Request, saleID, user string) (string, error) {
	sale, err := s.Gate.Sale(r.Context(), saleID)
	switch {
	case errors.Is(err, domain.ErrSaleNotFound):
		return "", nil // PurchaseToken's to report
	case err != nil:
		// Not known whether the sale wants a challenge: refuse rather
		// than hand out a token without one.
		return "", err
	case sale.ChallengeBits == 0:
		return "", nil
	}
	if s.Challenges == nil {
		return "", errNoChallenger
	}
	solution := r.Header.Get(challenge.Header)
	if solution == "" {
		return "", errChallengeRequired
	}
	switch err := s.Challenges.Check(solution, saleID, user, int(sale.ChallengeBits)); {
	case errors.Is(err, challenge.ErrExpired):
		return "", errChallengeExpired
	case err != nil:
		return "", errChallengeFailed
	}
	return solution, nil
}
