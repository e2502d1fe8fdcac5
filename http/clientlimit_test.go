package http

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.7, 2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy, no header", "198.51.100.1:5000", nil, "198.51.100.1"},
		{"untrusted peer's header is ignored", "198.51.100.1:5000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"trusted peer, one hop", "10.1.2.3:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"a client's own entries left of the real one", "10.1.2.3:80", []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, "203.0.113.9"},
		{"two trusted proxies", "10.1.2.3:80", []string{"1.1.1.1, 203.0.113.9, 192.0.2.7"}, "203.0.113.9"},
		{"headers in order, the last one last", "10.1.2.3:80", []string{"1.1.1.1, 203.0.113.9", "10.9.9.9"}, "203.0.113.9"},
		{"garbage left of the client is never read", "10.1.2.3:80", []string{"not-an-ip, 203.0.113.9"}, "203.0.113.9"},
		{"a broken hop stops at the last trusted one", "10.1.2.3:80", []string{"203.0.113.9, bogus, 192.0.2.7"}, "192.0.2.7"},
		{"all trusted: the first proxy", "10.1.2.3:80", []string{"10.5.5.5"}, "10.5.5.5"},
		{"trusted peer without the header", "10.1.2.3:80", nil, "10.1.2.3"},
		{"hops with ports", "10.1.2.3:80", []string{"203.0.113.9:4711"}, "203.0.113.9"},
		{"IPv6 hop", "10.1.2.3:80", []string{"[2a00:1450::1]:443"}, "2a00:1450::1"},
		{"IPv6 trusted peer", "[2001:db8::5]:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"empty items", "10.1.2.3:80", []string{"203.0.113.9, ,"}, "203.0.113.9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/time", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, trusted); got.String() != c.want {
				t.Errorf("clientAddr = %v, want %s", got, c.want)
			}
		})
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8, nonsense"); err == nil {
		t.Error("ParseTrustedProxies accepted nonsense")
	}
}

// clientAddr runs on every request; it must not allocate (not parallel:
// AllocsPerRun counts the whole process).
func TestClientAddrAllocs(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:80"
	r.Header["X-Forwarded-For"] = []string{"1.1.1.1, 203.0.113.9, 192.0.2.7"}
	if allocs := testing.AllocsPerRun(100, func() { _ = clientAddr(r, trusted) }); allocs != 0 {
		t.Errorf("clientAddr allocates %.0f times per request, want 0", allocs)
	}
}

func TestClientLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	l := newClientLimiter(ClientLimitConfig{RPS: 2, Burst: 3, MaxClients: clientShards * 2})
	l.now = func() time.Time { return now }
	a := netip.MustParseAddr("203.0.113.9")
	for i := range 3 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := l.allow(a)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th request: ok %v wait %v, want refused, 500ms", ok, wait)
	}
	// Refusals do not dig the hole deeper.
	for range 10 {
		l.allow(a)
	}
	if ok, _ := l.allow(netip.MustParseAddr("203.0.113.10")); !ok {
		t.Error("another address was refused")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.allow(a); !ok {
		t.Error("refused after waiting out Retry-After")
	}
	// One IPv6 /64 is one client.
	v6a, v6b := netip.MustParseAddr("2a00:1450:1:2::1"), netip.MustParseAddr("2a00:1450:1:2:ffff::9")
	if clientKey(v6a) != clientKey(v6b) || clientKey(v6a) == clientKey(netip.MustParseAddr("2a00:1450:1:3::1")) {
		t.Error("IPv6 addresses are not keyed by their /64")
	}
	// Memory is bounded: idle addresses are swept, and past the bound
	// newcomers pass.
	for i := range 10000 {
		l.allow(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
	}
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].m)
	}
	if n > clientShards*2 {
		t.Errorf("%d addresses remembered, bound %d", n, clientShards*2)
	}
}

func TestClientLimitMiddleware(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t, func(c *Config) {
		c.ClientLimit = ClientLimitConfig{RPS: 0.5, Burst: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	})
	get := func(peer, xff string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/time", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		api.h.ServeHTTP(w, r)
		return w
	}
	for range 2 {
		if w := get("192.0.2.1:1", "203.0.113.9"); w.Code != http.StatusOK {
			t.Fatalf("within the burst: %d", w.Code)
		}
	}
	w := get("192.0.2.1:1", "198.51.100.77, 203.0.113.9")
	if w.Code != http.StatusTooManyRequests || errCodeOf(t, w) != "rate_limited" || w.Header().Get("Retry-After") != "2" {
		t.Errorf("past the burst, with a forged hop in front: %d %s Retry-After %q, want 429 rate_limited 2", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	if w := get("192.0.2.1:1", "203.0.113.10"); w.Code != http.StatusOK {
		t.Errorf("another client behind the same proxy: %d", w.Code)
	}
	// The page and the probes are not under the limit.
	if w := get("192.0.2.1:1", "203.0.113.9"); w.Code != http.StatusTooManyRequests {
		t.Errorf("still limited on /v1: %d", w.Code)
	}
	r := httptest.NewRequest("GET", "/healthz", nil)
	r.RemoteAddr = "192.0.2.1:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	rec := httptest.NewRecorder()
	api.h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		t.Errorf("/healthz of a limited client: %d", rec.Code)
	}
}
