package http

import (
	"net/http"
	"time"

	"github.com/seckill/seckill/domain"
)

// devTokenTTL is how long a demo sign-in lasts: a working day of clicking
// through the sale page, short enough that a leaked demo token dies soon.
const devTokenTTL = 12 * time.Hour

type devTokenRequest struct {
	UserID string `json:"user_id"`
}

type devTokenResponse struct {
	Token     string    `json:"token"`
	UserID    string    `json:"user_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// devToken is POST /v1/dev/token, the sign-in of demos: it mints a user token
// for any valid user id, no password asked. It exists only when
// Config.DevSignIn is set (seckill dev; seckill serve --dev-sign-in), because
// on a real deployment it would let anyone act as anyone.
func (s *server) devToken(w http.ResponseWriter, r *http.Request) {
	var req devTokenRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if err := domain.ValidUserID(req.UserID); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	// Never an admin token, whatever the user id: admin calls create and end
	// sales, and a password-less door must not open them.
	tok, err := NewToken(s.Auth.secret, req.UserID, false, devTokenTTL)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, devTokenResponse{Token: tok, UserID: req.UserID, ExpiresAt: time.Now().Add(devTokenTTL).UTC().Truncate(time.Second)})
}
