package http

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// The protections' own calls: the blacklist for admins (purchase tokens and
// their challenge: challenge.go). The checks themselves run in
// commands.Gate.Purchase.

type blacklistEntry struct {
	UserID  string `json:"user_id"`
	Blocked bool   `json:"blocked"`
}

// blacklist is GET /v1/admin/blacklist.
func (s *server) blacklist(w http.ResponseWriter, r *http.Request) {
	users, err := s.Gate.Blacklist(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if users == nil {
		users = []string{}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"users": users})
}

// block is POST /v1/admin/blacklist {"user_id": ...}; blocking twice is fine.
func (s *server) block(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := decodeJSON(w, r, &req, false); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if err := s.Gate.Block(r.Context(), req.UserID); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, blacklistEntry{UserID: req.UserID, Blocked: true})
}

// unblock is DELETE /v1/admin/blacklist/{user_id}; unblocking a user who is
// not blocked is fine.
func (s *server) unblock(w http.ResponseWriter, r *http.Request) {
	user := chi.URLParam(r, "user_id")
	if err := s.Gate.Unblock(r.Context(), user); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, blacklistEntry{UserID: user, Blocked: false})
}
