package http

import (
	"net/http"
	"testing"
)

// The feed's own contents are tested in readmodels (returns_test.go); here
// the call: admin only, its parameters checked, an empty feed answered.
func TestInventoryReturnsCall(t *testing.T) {
	api := newTestAPI(t, nil)
	admin := bearer(t, "ops", true)
	w := api.call(t, "GET", "/v1/inventory/returns", "", "Authorization", admin)
	if w.Code != http.StatusOK || w.Body.String() != `{"returns":[],"cursor":"","more":false}`+"\n" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("empty feed: %d %q (Cache-Control %q)", w.Code, w.Body, w.Header().Get("Cache-Control"))
	}
	tests := []struct {
		name, query, auth string
		status            int
		code              string
	}{
		{"a shopper", "", bearer(t, "alice", false), http.StatusForbidden, "forbidden"},
		{"nobody", "", "", http.StatusUnauthorized, "unauthenticated"},
		{"a forged cursor", "?cursor=nonsense", admin, http.StatusBadRequest, "invalid_request"},
		{"a cursor naming a partition twice", "?cursor=0:1,0:2", admin, http.StatusBadRequest, "invalid_request"},
		{"limit 0", "?limit=0", admin, http.StatusBadRequest, "invalid_request"},
		{"limit too large", "?limit=1001", admin, http.StatusBadRequest, "invalid_request"},
		{"a cursor and a limit", "?cursor=0:5,3:9&limit=1000", admin, http.StatusOK, ""},
	}
	for _, tc := range tests {
		var w = api.call(t, "GET", "/v1/inventory/returns"+tc.query, "", "Authorization", tc.auth)
		if w.Code != tc.status || (tc.code != "" && errCodeOf(t, w) != tc.code) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, w.Code, w.Body, tc.status, tc.code)
		}
	}
}
