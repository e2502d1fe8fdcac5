package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seckill/seckill/domain"
)

// A verifier for the one token shape NewToken mints, without reflection or a
// map per header. Every purchase in a sale comes with a token; the first time
// a node sees one, golang-jwt's parser (two JSON decodings, a header map,
// ~45 allocations) was a fifth of the API's work on the purchase path
// (docs/performance.md). The fast path accepts only tokens exactly as
// NewToken writes them — the fixed HS256 header, claims {"role"?,"sub",
// "exp","iat"} in that order, strict unpadded base64url — and only when they
// verify; for everything else Authenticator.Verify asks golang-jwt, which
// stays the judge. FuzzFastVerify checks that the fast path never accepts a
// token golang-jwt refuses, nor reads one differently.

// hs256Header is the first segment of every token NewToken mints:
// base64url({"alg":"HS256","typ":"JWT"}).
const hs256Header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

var strictB64 = base64.RawURLEncoding.Strict()

// macs pools HMAC-SHA256 states keyed with one secret.
type macs struct{ pool sync.Pool }

func newMACs(secret []byte) *macs {
	key := append([]byte(nil), secret...)
	return &macs{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// fastVerify returns the identity in raw and its expiry when raw is a valid
// token in NewToken's exact shape; ok is false otherwise (invalid, or just
// another shape), and the caller asks golang-jwt.
func (a *Authenticator) fastVerify(raw string, now time.Time) (id Identity, exp time.Time, ok bool) {
	t, ok := splitCanonical(raw)
	if !ok {
		return id, exp, false
	}
	mac := a.macs.pool.Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(t.signed))
	var sum [sha256.Size]byte
	good := hmac.Equal(mac.Sum(sum[:0]), t.sig[:])
	a.macs.pool.Put(mac)
	if !good {
		return id, exp, false
	}
	// golang-jwt's rules for these claims: exp required, now before exp plus
	// the leeway; iat is not checked (no WithIssuedAt); no nbf in this shape.
	exp = time.Unix(t.claims.exp, 0)
	if !now.Before(exp.Add(jwtLeeway)) || !domain.ValidID(t.claims.sub) {
		return id, exp, false
	}
	// A copy of the id alone: the identity is cached, and a substring would
	// keep the whole decoded claims alive with it.
	return Identity{UserID: strings.Clone(t.claims.sub), Admin: t.claims.role == "admin"}, exp, true
}

// canonicalToken is a token in NewToken's shape, taken apart but not checked.
type canonicalToken struct {
	signed string // header.claims, what the signature signs
	sig    [32]byte
	claims canonicalClaims
}

// splitCanonical takes raw apart when it has NewToken's exact shape (the
// fixed HS256 header, canonical claims, strict unpadded base64url, a 32-byte
// signature); false for any other shape. It checks no signature.
func splitCanonical(raw string) (t canonicalToken, ok bool) {
	rest, found := strings.CutPrefix(raw, hs256Header+".")
	if !found {
		return t, false
	}
	claims64, sig64, found := strings.Cut(rest, ".")
	if !found || strings.IndexByte(sig64, '.') >= 0 || len(claims64) > 512 || len(sig64) != 43 {
		return t, false
	}
	var claims [384]byte
	n, err := strictB64.Decode(claims[:], []byte(claims64))
	if err != nil {
		return t, false
	}
	if m, err := strictB64.Decode(t.sig[:], []byte(sig64)); err != nil || m != len(t.sig) {
		return t, false
	}
	if t.claims, ok = parseCanonicalClaims(claims[:n]); !ok {
		return t, false
	}
	t.signed = raw[:len(hs256Header)+1+len(claims64)]
	return t, true
}

type canonicalClaims struct {
	role, sub string
	exp, iat  int64
}

// parseCanonicalClaims reads {"role":"r","sub":"s","exp":N,"iat":N} (role
// optional): the JSON NewToken writes, with plain-ASCII strings.
func parseCanonicalClaims(b []byte) (canonicalClaims, bool) {
	var c canonicalClaims
	s := string(b)
	ok := true
	lit := func(l string) {
		if ok && strings.HasPrefix(s, l) {
			s = s[len(l):]
			return
		}
		ok = false
	}
	str := func() string {
		if !ok || len(s) == 0 || s[0] != '"' {
			ok = false
			return ""
		}
		for i := 1; i < len(s); i++ {
			switch ch := s[i]; {
			case ch == '"':
				v := s[1:i]
				s = s[i+1:]
				return v
			case ch < 0x20 || ch >= 0x7f || ch == '\\':
				ok = false
				return ""
			}
		}
		ok = false
		return ""
	}
	num := func() int64 {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		// Positive, no leading zero, small enough that float64 (which
		// golang-jwt parses through) holds it exactly.
		if !ok || i == 0 || i > 15 || (i > 1 && s[0] == '0') {
			ok = false
			return 0
		}
		v, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			ok = false
			return 0
		}
		s = s[i:]
		return v
	}
	lit("{")
	if strings.HasPrefix(s, `"role":`) {
		lit(`"role":`)
		c.role = str()
		lit(",")
	}
	lit(`"sub":`)
	c.sub = str()
	lit(`,"exp":`)
	c.exp = num()
	lit(`,"iat":`)
	c.iat = num()
	lit("}")
	return c, ok && s == ""
}
