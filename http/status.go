package http

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// The sale status, GET /v1/sales/{id}, is what every open sale page polls
// every 2 s: a million waiting viewers are half a million requests a second
// before the sale even starts (seed 000's refresh storm). So the answer is
// public and briefly cacheable by a CDN or the nginx in front of the API
// (deploy/nginx.conf), and revalidates with an ETag. A cached answer carries
// the server_time of the moment it was made, so the page does not set its
// clock from it: it asks GET /v1/time, which is never cached.

// DefaultStatusMaxAge is how long a sale status may be served from a cache.
// It bounds how stale the stock a viewer sees is (plus the gate's own 0.5 s),
// not what anyone can buy: every purchase is decided by the gate.
const DefaultStatusMaxAge = time.Second

// statusCacheControl is the Cache-Control of a sale status that caches may
// keep for maxAge: browsers and shared caches alike (max-age, s-maxage), a
// stale copy served while one request refreshes it (stale-while-revalidate,
// which nginx's proxy_cache_background_update honours), and for a while when
// every API node fails (stale-if-error). maxAge ≤ 0: caches must revalidate
// every time (no-cache), which still saves the body on a 304.
func statusCacheControl(maxAge time.Duration) string {
	secs := int64(maxAge / time.Second)
	if secs <= 0 {
		return "no-cache"
	}
	n := strconv.FormatInt(secs, 10)
	return "public, max-age=" + n + ", s-maxage=" + n + ", stale-while-revalidate=" + n + ", stale-if-error=30"
}

// getSale is GET /v1/sales/{id}. The ETag covers everything but server_time,
// which changes every time and says nothing about the sale: it is weak
// (W/"…") because two answers with the same tag may differ in that field.
func (s *server) getSale(w http.ResponseWriter, r *http.Request) {
	sale, err := s.Gate.Sale(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	at := sale.ServerTime
	sale.ServerTime = time.Time{}
	b, err := json.Marshal(sale)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	sum := sha256.Sum256(b)
	etag := `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	h := w.Header()
	h.Set("Cache-Control", s.statusCache)
	h.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	sale.ServerTime = at
	if b, err = json.Marshal(sale); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// etagMatch is If-None-Match's weak comparison (RFC 9110 13.1.2): "*", or
// any listed tag equal to etag once the W/ prefixes are set aside.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == want {
			return true
		}
	}
	return false
}

// serverTime is the answer of GET /v1/time.
type serverTime struct {
	ServerTime time.Time `json:"server_time"`
}

// getTime is GET /v1/time: the node's clock, never cached, for the sale
// page's countdown. It is the clock the gate decides the start by; the page
// pairs it with its own monotonic clock at the middle of the round trip.
func (s *server) getTime(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, serverTime{ServerTime: time.Now().UTC()})
}
