package http

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/seckill/seckill/domain"
)

// Claims is what seckill reads from a bearer JWT: sub is the user id, role
// "admin" unlocks admin calls.
type Claims struct {
	Role string `json:"role,omitempty"`
	jwt.RegisteredClaims
}

// Identity is the authenticated caller.
type Identity struct {
	UserID string
	Admin  bool
}

type identityKey struct{}

func identityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// NewToken mints an HS256 token for user, valid for ttl.
func NewToken(secret []byte, user string, admin bool, ttl time.Duration) (string, error) {
	if !domain.ValidID(user) {
		return "", domain.Invalid("user", "must be 1-64 letters, digits, '-' or '_'")
	}
	now := time.Now()
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject: user, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	if admin {
		c.Role = "admin"
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// Authenticator verifies bearer tokens.
type Authenticator struct {
	secret   []byte
	parser   *jwt.Parser
	verified *verifiedCache // authcache.go
	macs     *macs          // authfast.go
}

// MinSecretLen is the shortest JWT secret accepted: an HS256 key must be at
// least as long as the hash, 256 bits (RFC 7518, section 3.2).
const MinSecretLen = 32

// publishedSecrets are secrets that were ever written down where anyone can
// read them (this repository's compose.yaml once fell back to the first):
// whoever knows one can mint admin tokens for a stack that uses it.
var publishedSecrets = []string{
	"change-me-to-a-long-random-secret",
}

// CheckSecret refuses a JWT secret that anyone could guess: shorter than
// MinSecretLen, one of the published examples, or made of a handful of
// distinct bytes (a repeated character or word, nothing a generator made).
func CheckSecret(secret []byte) error {
	const how = "; make one with: openssl rand -hex 32"
	if len(secret) < MinSecretLen {
		return fmt.Errorf("jwt secret must be at least %d bytes (HS256, RFC 7518 §3.2)%s", MinSecretLen, how)
	}
	for _, p := range publishedSecrets {
		if string(secret) == p {
			return errors.New("jwt secret is a published example: anyone can mint tokens with it" + how)
		}
	}
	var seen [256]bool
	distinct := 0
	for _, b := range secret {
		if !seen[b] {
			seen[b] = true
			distinct++
		}
	}
	if distinct < 8 {
		return errors.New("jwt secret has fewer than 8 distinct characters: it is not random" + how)
	}
	return nil
}

// NewAuthenticator verifies HS256 tokens signed with secret, which must pass
// CheckSecret.
func NewAuthenticator(secret []byte) (*Authenticator, error) {
	if err := CheckSecret(secret); err != nil {
		return nil, err
	}
	return &Authenticator{
		secret:   secret,
		verified: newVerifiedCache(),
		macs:     newMACs(secret),
		// Only HS256: accepting the token's own "alg" is the classic JWT hole.
		parser: jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
			jwt.WithLeeway(jwtLeeway), jwt.WithStrictDecoding()),
	}, nil
}

// Verify parses a raw token into the caller's identity.
func (a *Authenticator) Verify(raw string) (Identity, error) {
	now := time.Now()
	if id, ok := a.verified.get(raw, now); ok {
		return id, nil
	}
	if id, exp, ok := a.fastVerify(raw, now); ok {
		a.verified.put(raw, id, exp)
		return id, nil
	}
	var c Claims
	_, err := a.parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return a.secret, nil })
	if err != nil {
		return Identity{}, domain.ErrUnauthenticated
	}
	if !domain.ValidID(c.Subject) {
		return Identity{}, domain.ErrUnauthenticated
	}
	id := Identity{UserID: c.Subject, Admin: c.Role == "admin"}
	a.verified.put(raw, id, c.ExpiresAt.Time)
	return id, nil
}

// authenticate requires a valid bearer token and puts the identity in the context.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := s.identify(w, r); ok {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
		}
	})
}

// identify verifies the request's bearer token; without a valid one it
// answers 401 itself and reports false.
func (s *server) identify(w http.ResponseWriter, r *http.Request) (Identity, bool) {
	raw, ok := bearerOf(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="seckill"`)
		writeError(w, r, s.log, domain.ErrUnauthenticated)
		return Identity{}, false
	}
	id, err := s.Auth.Verify(raw)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="seckill", error="invalid_token"`)
		writeError(w, r, s.log, err)
		return Identity{}, false
	}
	return id, true
}

// bearerOf is the request's bearer token, false when it sends none.
func bearerOf(r *http.Request) (string, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return "", false
	}
	return strings.TrimSpace(raw), true
}

// adminOnly lets only admins through; it runs after authenticate.
func (s *server) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, _ := identityFrom(r.Context()); !id.Admin {
			writeError(w, r, s.log, domain.ErrForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
