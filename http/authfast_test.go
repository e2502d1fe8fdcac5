package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/seckill/seckill/domain"
)

// The fast verifier (authfast.go) may only ever say yes where golang-jwt
// says yes, with the same identity and expiry.

const fastSecret = "fast-path-secret-of-at-least-32-bytes"

// libraryVerify is Verify without the cache and the fast path.
func libraryVerify(a *Authenticator, raw string) (Identity, time.Time, error) {
	var c Claims
	if _, err := a.parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return a.secret, nil }); err != nil {
		return Identity{}, time.Time{}, err
	}
	if !domain.ValidID(c.Subject) {
		return Identity{}, time.Time{}, domain.ErrUnauthenticated
	}
	return Identity{UserID: c.Subject, Admin: c.Role == "admin"}, c.ExpiresAt.Time, nil
}

// sign makes a token of any header and claims, signed with secret.
func sign(secret, header, claims string) string {
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(s))
	return s + "." + enc.EncodeToString(m.Sum(nil))
}

func checkFastAgrees(t *testing.T, a *Authenticator, raw string) bool {
	t.Helper()
	id, exp, ok := a.fastVerify(raw, time.Now())
	if !ok {
		return false
	}
	want, wexp, err := libraryVerify(a, raw)
	if err != nil {
		t.Fatalf("fast path accepted a token golang-jwt refuses (%v): %q", err, raw)
	}
	if id != want || !exp.Equal(wexp) {
		t.Fatalf("token %q: fast path %+v until %v, golang-jwt %+v until %v", raw, id, exp, want, wexp)
	}
	return true
}

func TestFastVerify(t *testing.T) {
	a, err := NewAuthenticator([]byte(fastSecret))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user  string
		admin bool
		ttl   time.Duration
		fast  bool
	}{
		{"alice", false, time.Hour, true},
		{"root", true, time.Hour, true},
		{"u-1_x", false, time.Minute, true},
		{"late", false, -time.Hour, false},      // expired: both refuse
		{"edge", false, -2 * time.Second, true}, // expired within the leeway: both accept
	} {
		tok, err := NewToken([]byte(fastSecret), tc.user, tc.admin, tc.ttl)
		if err != nil {
			t.Fatal(err)
		}
		if got := checkFastAgrees(t, a, tok); got != tc.fast {
			t.Errorf("%s: fast path took it: %v, want %v", tc.user, got, tc.fast)
		}
		_, _, lerr := libraryVerify(a, tok)
		if id, err := a.Verify(tok); (err == nil) != (lerr == nil) || (err == nil && (id.UserID != tc.user || id.Admin != tc.admin)) {
			t.Errorf("%s: Verify = %+v, %v; golang-jwt says %v", tc.user, id, err, lerr)
		}
	}
	other, _ := NewToken([]byte("another-secret-of-16-bytes!"), "alice", false, time.Hour)
	const hdr = `{"alg":"HS256","typ":"JWT"}`
	exp := time.Now().Add(time.Hour).Unix()
	for _, raw := range []string{
		other,
		sign(fastSecret, `{"alg":"HS384","typ":"JWT"}`, `{"sub":"a","exp":9999999999,"iat":1}`),
		sign(fastSecret, hdr, `{"sub":"a","iat":1}`),
		sign(fastSecret, hdr, `{"sub":"a b","exp":9999999999,"iat":1}`),
		sign(fastSecret, hdr, `{"sub":"a","exp":9999999999,"iat":1,"nbf":9999999999}`),
		sign(fastSecret, hdr, `{"sub":"a","exp":1e12,"iat":1}`),
		sign(fastSecret, hdr, `{"role":"admin","sub":"a","exp":`+itoa(exp)+`,"iat":1} `),
		sign(fastSecret, hdr, `{"sub":"a","role":"admin","exp":`+itoa(exp)+`,"iat":1}`),
		"", "a.b.c", hs256Header + "..", hs256Header + ".e30.",
	} {
		checkFastAgrees(t, a, raw)
	}
	// What NewToken makes takes the fast path; so does this, in its shape.
	if !checkFastAgrees(t, a, sign(fastSecret, hdr, `{"role":"admin","sub":"a","exp":`+itoa(exp)+`,"iat":1}`)) {
		t.Error("a canonical admin token did not take the fast path")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// FuzzFastVerify signs arbitrary headers and claims with the right secret,
// and also tries arbitrary raw tokens: whatever the fast path accepts,
// golang-jwt accepts the same way.
func FuzzFastVerify(f *testing.F) {
	a, err := NewAuthenticator([]byte(fastSecret))
	if err != nil {
		f.Fatal(err)
	}
	exp := itoa(time.Now().Add(24 * time.Hour).Unix())
	for _, c := range []string{
		`{"sub":"alice","exp":` + exp + `,"iat":1}`,
		`{"role":"admin","sub":"root","exp":` + exp + `,"iat":1}`,
		`{"role":"x","sub":"a","exp":` + exp + `,"iat":0}`,
		`{"sub":"a","exp":` + exp + `.5,"iat":1}`,
		`{"sub":"a","exp":0` + exp + `,"iat":1}`,
	} {
		f.Add(`{"alg":"HS256","typ":"JWT"}`, c, "")
	}
	tok, _ := NewToken([]byte(fastSecret), "alice", false, time.Hour)
	f.Add("", "", tok)
	f.Fuzz(func(t *testing.T, header, claims, raw string) {
		if raw != "" {
			checkFastAgrees(t, a, raw)
			return
		}
		checkFastAgrees(t, a, sign(fastSecret, header, claims))
	})
}
