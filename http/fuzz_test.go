package http

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
)

// FuzzDecodeRequests feeds arbitrary bodies to the strict decoder of every
// request type. It must never panic, and every refusal must be a client error
// (4xx) that names a code: a body can never cause a 500.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"quantity":1}`, `{"payment_ref":"p"}`, `{}`, ``, `{"quantity":1,"x":2}`, `[1,2]`, `{"quantity":"1"}`,
		`{"name":"n","stock":1,"price_cents":1,"starts_at":"2026-11-11T20:00:00Z","ends_at":"2026-11-11T21:00:00Z"}`,
		`{"a":` + strings.Repeat(`[`, 10000), `{"quantity":1}{"quantity":2}`, "\x00\xff",
	} {
		f.Add(seed, "application/json")
	}
	f.Add(`{"quantity":1}`, "text/plain")
	targets := []func() any{
		func() any { return &purchaseRequest{} },
		func() any { return &payRequest{} },
		func() any { return &createSaleRequest{} },
	}
	f.Fuzz(func(t *testing.T, body, contentType string) {
		for _, target := range targets {
			for _, optional := range []bool{false, true} {
				r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
				if contentType != "" {
					r.Header.Set("Content-Type", contentType)
				}
				w := httptest.NewRecorder()
				err := decodeJSON(w, r, target(), optional)
				if err == nil {
					continue
				}
				var ae *apiError
				if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 || ae.code == "" {
					t.Fatalf("body %q: refusal %v is not a coded 4xx", body, err)
				}
			}
		}
	})
}

// FuzzVerifyToken feeds arbitrary strings to the JWT verifier. It must never
// panic, and it must accept nothing but the tokens we signed.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte("fuzz-secret-of-at-least-16-bytes")
	auth, err := NewAuthenticator(secret)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := NewToken(secret, "alice", false, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	admin, err := NewToken(secret, "root", true, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	other, err := NewToken([]byte("another-secret-of-16-bytes!"), "alice", true, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{valid, admin, other, "", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", valid + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := auth.Verify(raw)
		if err != nil {
			if !errors.Is(err, domain.ErrUnauthenticated) {
				t.Fatalf("refusal %v is not ErrUnauthenticated", err)
			}
			return
		}
		if raw != valid && raw != admin {
			t.Fatalf("accepted a token we did not sign: %q → %+v", raw, id)
		}
	})
}
