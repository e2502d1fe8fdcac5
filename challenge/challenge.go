// Package challenge owns the proof of work a sale may ask for before it
// issues a purchase token (seed 002's 验证码 step, with no third-party
// service): the server hands a shopper a signed challenge, the shopper's
// browser finds a counter whose SHA-256 has the sale's number of leading zero
// bits, and the server checks it with one hash. A person waiting for the
// start does not notice a second of work; a script buying with ten thousand
// accounts pays it ten thousand times.
//
// Challenges are stateless: any API node checks one with the shared key. A
// solution is single use: spending it is a SET NX in Redis, which every node
// shares, kept until the challenge would have expired anyway.
//
// A challenge is
//
//	p1.<expiry, unix seconds>.<bits>.<nonce, 8 bytes base64url>.<MAC, 12 bytes base64url>
//
// with MAC = HMAC-SHA256(key, "p1" 0 sale 0 user 0 expiry 0 bits 0 nonce),
// so it is good for one user in one sale only; a solution is
// "<challenge>.<counter>", counter a decimal number, and it is right when
// SHA-256 of that whole string (UTF-8) begins with bits zero bits.
package challenge

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Header is the request header that carries a solution to
// GET /v1/sales/{id}/token.
const Header = "X-Challenge-Solution"

// Algorithm names the work, for clients.
const Algorithm = "sha256-leading-zero-bits"

// Errors of Check and Spend.
var (
	// ErrInvalid: not a solution of a challenge issued for this user and
	// sale, or not enough zero bits.
	ErrInvalid = errors.New("not a valid solution of a challenge for this user and sale")
	// ErrExpired: the challenge's time is up; ask for a new one.
	ErrExpired = errors.New("the challenge expired; get a new one")
	// ErrUsed: this solution was spent already (single use).
	ErrUsed = errors.New("this challenge was already used")
)

// maxLen bounds what Check reads: a real solution is about 60 bytes.
const maxLen = 128

// Config configures the challenges of one deployment.
type Config struct {
	// Key signs challenges; every API node must have the same one
	// (DeriveKey of the JWT secret). Required.
	Key []byte
	// TTL is how long a challenge may be solved and spent; default 10
	// minutes, so a page can solve it during the countdown.
	TTL time.Duration
	// KeyPrefix prefixes the Redis keys of spent solutions; default
	// "seckill:challenge:".
	KeyPrefix string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Challenges issues, checks and spends challenges; safe for concurrent use.
type Challenges struct {
	cfg Config
	rdb redis.UniversalClient
}

// DeriveKey derives the challenge key from secret (the JWT secret), so that
// operators keep one secret and a challenge MAC never passes for anything else.
func DeriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("seckill challenge v1"))
	return m.Sum(nil)
}

// New returns the challenges of a deployment whose spent solutions live in rdb.
func New(cfg Config, rdb redis.UniversalClient) (*Challenges, error) {
	if len(cfg.Key) < 16 {
		return nil, errors.New("challenge: Key must be at least 16 bytes")
	}
	if rdb == nil {
		return nil, errors.New("challenge: a Redis client is required")
	}
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Minute
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "seckill:challenge:"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Challenges{cfg: cfg, rdb: rdb}, nil
}

// Challenge is one issued challenge, as clients get it.
type Challenge struct {
	Challenge string    `json:"challenge"`
	Bits      int       `json:"bits"`
	ExpiresAt time.Time `json:"expires_at"`
	Algorithm string    `json:"algorithm"`
	// Header names the request header the solution goes in.
	Header string `json:"header"`
}

// Issue makes a challenge of bits zero bits for user in sale.
func (c *Challenges) Issue(sale, user string, bits int) (Challenge, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return Challenge{}, fmt.Errorf("challenge nonce: %w", err)
	}
	exp := c.cfg.Now().Add(c.cfg.TTL).Truncate(time.Second)
	es, bs, ns := strconv.FormatInt(exp.Unix(), 10), strconv.Itoa(bits), base64.RawURLEncoding.EncodeToString(nonce[:])
	s := "p1." + es + "." + bs + "." + ns + "." + base64.RawURLEncoding.EncodeToString(c.mac(sale, user, es, bs, ns))
	return Challenge{Challenge: s, Bits: bits, ExpiresAt: exp.UTC(), Algorithm: Algorithm, Header: Header}, nil
}

func (c *Challenges) mac(sale, user, exp, bits, nonce string) []byte {
	m := hmac.New(sha256.New, c.cfg.Key)
	for i, s := range []string{"p1", sale, user, exp, bits, nonce} {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(s))
	}
	return m.Sum(nil)[:12]
}

// Check reports whether solution solves a challenge issued for user in sale
// with at least minBits zero bits, not yet expired: nil, ErrInvalid or
// ErrExpired. It does not spend it (Spend does).
func (c *Challenges) Check(solution, sale, user string, minBits int) error {
	if len(solution) > maxLen {
		return ErrInvalid
	}
	parts := strings.Split(solution, ".")
	if len(parts) != 6 || parts[0] != "p1" || len(parts[5]) == 0 || len(parts[5]) > 12 {
		return ErrInvalid
	}
	for _, ch := range parts[5] {
		if ch < '0' || ch > '9' {
			return ErrInvalid
		}
	}
	es, bs, ns, ms := parts[1], parts[2], parts[3], parts[4]
	exp, err1 := strconv.ParseInt(es, 10, 64)
	n, err2 := strconv.Atoi(bs)
	got, err3 := base64.RawURLEncoding.DecodeString(ms)
	if err1 != nil || err2 != nil || err3 != nil || n < minBits || !hmac.Equal(got, c.mac(sale, user, es, bs, ns)) {
		return ErrInvalid
	}
	if c.cfg.Now().Unix() >= exp {
		return ErrExpired
	}
	if LeadingZeroBits(sha256.Sum256([]byte(solution))) < n {
		return ErrInvalid
	}
	return nil
}

// Spend marks a checked solution used, until its challenge expires; ErrUsed
// if it was already. The key is the challenge's MAC: unique per challenge.
func (c *Challenges) Spend(ctx context.Context, solution string) error {
	parts := strings.Split(solution, ".")
	if len(parts) != 6 {
		return ErrInvalid
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return ErrInvalid
	}
	ok, err := c.rdb.SetArgs(ctx, c.cfg.KeyPrefix+parts[4], 1, redis.SetArgs{Mode: "NX", ExpireAt: time.Unix(exp+1, 0)}).Result()
	if errors.Is(err, redis.Nil) {
		return ErrUsed
	}
	if err != nil {
		return fmt.Errorf("spend challenge: %w", err)
	}
	if ok != "OK" {
		return ErrUsed
	}
	return nil
}

// LeadingZeroBits counts the zero bits at the start of sum.
func LeadingZeroBits(sum [sha256.Size]byte) int {
	n := 0
	for _, b := range sum {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// Solve finds a solution of challenge with bits zero bits, as the sale page
// does in the browser; for tests and for scripted clients that pay the work.
func Solve(ctx context.Context, challenge string, bits int) (string, error) {
	buf := []byte(challenge + ".")
	base := len(buf)
	for i := uint64(0); ; i++ {
		if i&0xffff == 0 && ctx.Err() != nil {
			return "", ctx.Err()
		}
		buf = strconv.AppendUint(buf[:base], i, 10)
		if LeadingZeroBits(sha256.Sum256(buf)) >= bits {
			return string(buf), nil
		}
	}
}
