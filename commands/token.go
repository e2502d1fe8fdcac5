package commands

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seckill/seckill/domain"
)

// Purchase tokens are seed 000's hidden purchase URL: a sale that requires one
// accepts a purchase only with a token minted for that user and sale, and
// tokens are minted only once the sale has started, so a script cannot fire
// purchases prepared in advance. A token is
//
//	v1.<expiry, unix seconds>.<base64url HMAC-SHA256(key, "v1" 0 sale 0 user 0 expiry)>
//
// and is checked in Go on the node, with no Redis round trip.

// PurchaseTokenHeader is the request header that carries a purchase token.
const PurchaseTokenHeader = "X-Purchase-Token"

// maxTokenLen bounds what verify reads: a real token is about 60 bytes.
const maxTokenLen = 128

// PurchaseToken is a signed pass for one user to buy in one sale until ExpiresAt.
type PurchaseToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// Header names the request header the purchase carries Token in.
	Header string `json:"header"`
}

// DeriveTokenKey derives the purchase-token key from secret (the JWT secret),
// so operators keep one secret while a purchase token can never pass for a
// JWT nor the other way round.
func DeriveTokenKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("seckill purchase token v1"))
	return m.Sum(nil)
}

// errNoTokenKey is why PurchaseToken fails on a gate configured without a key.
var errNoTokenKey = errors.New("purchase tokens are not configured (GateConfig.TokenKey)")

// PurchaseToken mints a purchase token for user in sale. Only once the sale
// has started: before, domain.ErrNotStarted (a *domain.RetryError saying when);
// also domain.ErrEnded, ErrBlocked, ErrSaleNotFound.
func (g *Gate) PurchaseToken(ctx context.Context, saleID, user string) (PurchaseToken, error) {
	if g.tokens == nil {
		return PurchaseToken{}, errNoTokenKey
	}
	if !domain.ValidID(user) {
		return PurchaseToken{}, domain.ErrUnauthenticated
	}
	sg, err := g.guard(ctx, saleID)
	if err != nil {
		return PurchaseToken{}, err
	}
	now := g.clock.Now()
	nowMS := now.UnixMilli()
	switch {
	case nowMS < sg.startsMS:
		return PurchaseToken{}, domain.RetryAfter(domain.ErrNotStarted, time.Duration(sg.startsMS-nowMS)*time.Millisecond)
	case sg.ended.Load() || nowMS >= sg.endsMS:
		return PurchaseToken{}, domain.ErrEnded
	case g.isBlocked(user):
		return PurchaseToken{}, domain.ErrBlocked
	}
	exp := now.Add(g.cfg.TokenTTL).Truncate(time.Second)
	return PurchaseToken{Token: g.tokens.sign(sg.cfg.ID, user, exp.Unix()), ExpiresAt: exp.UTC(), Header: PurchaseTokenHeader}, nil
}

// tokenSigner signs and verifies purchase tokens; safe for concurrent use.
type tokenSigner struct {
	key  []byte
	macs sync.Pool // *tokenMAC: an HMAC and its buffers, so verify does not allocate
}

type tokenMAC struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newTokenSigner(key []byte) *tokenSigner {
	if len(key) == 0 {
		return nil
	}
	t := &tokenSigner{key: key}
	t.macs.New = func() any { return &tokenMAC{h: hmac.New(sha256.New, t.key), buf: make([]byte, 0, 160)} }
	return t
}

// mac computes the token MAC into m.sum.
func (t *tokenSigner) mac(m *tokenMAC, sale, user, exp string) []byte {
	m.buf = append(m.buf[:0], "v1\x00"...)
	m.buf = append(m.buf, sale...)
	m.buf = append(m.buf, 0)
	m.buf = append(m.buf, user...)
	m.buf = append(m.buf, 0)
	m.buf = append(m.buf, exp...)
	m.h.Reset()
	m.h.Write(m.buf)
	return m.h.Sum(m.sum[:0])
}

func (t *tokenSigner) sign(sale, user string, exp int64) string {
	m := t.macs.Get().(*tokenMAC)
	defer t.macs.Put(m)
	es := strconv.FormatInt(exp, 10)
	return "v1." + es + "." + base64.RawURLEncoding.EncodeToString(t.mac(m, sale, user, es))
}

// verify reports whether token is a valid, unexpired token of user in sale
// at now. It does not allocate.
func (t *tokenSigner) verify(token, sale, user string, now time.Time) bool {
	if t == nil || len(token) > maxTokenLen {
		return false
	}
	rest, ok := strings.CutPrefix(token, "v1.")
	if !ok {
		return false
	}
	es, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	exp, err := strconv.ParseInt(es, 10, 64)
	if err != nil || now.Unix() >= exp {
		return false
	}
	const sigLen = 43 // base64url of 32 bytes, unpadded
	if len(sig) != sigLen {
		return false
	}
	var src [sigLen]byte
	copy(src[:], sig)
	var got [sha256.Size + 2]byte
	n, err := base64.RawURLEncoding.Decode(got[:], src[:])
	if err != nil || n != sha256.Size {
		return false
	}
	m := t.macs.Get().(*tokenMAC)
	ok = hmac.Equal(t.mac(m, sale, user, es), got[:n])
	t.macs.Put(m)
	return ok
}
