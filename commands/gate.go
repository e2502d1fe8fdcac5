package commands

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// GateConfig configures the Redis gate.
type GateConfig struct {
	// Prefix is put before every key, so several systems (or tests) can share
	// one Redis. Default "seckill:".
	Prefix string
	// Clock tells the time; default the wall clock.
	Clock Clock
	// SaleCacheTTL is how long a node may serve a sale's view from memory.
	// The configuration of a sale never changes; only its counters do, and
	// GET /v1/sales/{id} is allowed to be slightly stale. Default 500ms.
	SaleCacheTTL time.Duration
	// SoldOutTTL is how long this node answers sold_out from memory after it
	// learnt a sale sold out, before one request asks Redis again; a missed
	// "stock is back" notification costs at most this long. Default 1s.
	SoldOutTTL time.Duration
	// AdmissionRPS caps the purchases per second this node sends to Redis (a
	// token bucket of AdmissionBurst); the rest are told rate_limited. Answers
	// given from memory (sold_out, ended, blocked …) are not counted. 0: no cap.
	AdmissionRPS float64
	// AdmissionBurst is the bucket's size; default AdmissionRPS/10, at least 1.
	AdmissionBurst int
	// TokenKey signs purchase tokens (DeriveTokenKey of the JWT secret); every
	// node must have the same. Without it no token can be minted, so a sale that
	// requires tokens refuses every purchase.
	TokenKey []byte
	// TokenTTL is how long a purchase token is valid; default 2 minutes.
	TokenTTL time.Duration
	// RedisTimeout bounds the Redis calls of one purchase. A purchase that
	// timed out may still have reserved: the client's retry is answered with
	// that order. Default 2s. (The client needs ContextTimeoutEnabled for the
	// deadline to reach the socket.)
	RedisTimeout time.Duration
	// BatchSize is the most commands of one shard decided by one script call
	// (group commit, batch.go). Default 128; 1 turns batching off: every
	// command is its own call, with no bound on calls in flight.
	BatchSize int
	// BatchInFlight is how many script calls of one shard may be on their way
	// at once; commands arriving meanwhile wait for the next. Default 2.
	BatchInFlight int
	// MinReplicas is how many replicas must acknowledge a write (WAIT)
	// before the command is answered; fewer answers ErrUnavailable. 0: none
	// (a single Redis, or durability by AOF alone). docs/durability.md.
	MinReplicas int
	// ReplicaTimeout bounds the wait for the replicas; default 200ms.
	ReplicaTimeout time.Duration
}

// Validate refuses a configuration that cannot work.
func (c GateConfig) Validate() error {
	switch {
	case c.BatchSize < 0, c.BatchInFlight < 0:
		return errors.New("gate: batch size and batches in flight must not be negative")
	case c.MinReplicas < 0:
		return errors.New("gate: min replicas must not be negative")
	case c.ReplicaTimeout < 0:
		return errors.New("gate: replica timeout must not be negative")
	}
	return nil
}

func (c GateConfig) withDefaults() GateConfig {
	if c.Prefix == "" {
		c.Prefix = "seckill:"
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.SaleCacheTTL == 0 {
		c.SaleCacheTTL = 500 * time.Millisecond
	}
	if c.SoldOutTTL == 0 {
		c.SoldOutTTL = time.Second
	}
	if c.AdmissionRPS > 0 && c.AdmissionBurst <= 0 {
		c.AdmissionBurst = max(1, int(c.AdmissionRPS/10))
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 2 * time.Minute
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = 2 * time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = 128
	}
	if c.BatchInFlight == 0 {
		c.BatchInFlight = 2
	}
	if c.BatchSize == 1 {
		// One command per call: as many calls in flight as callers.
		c.BatchInFlight = math.MaxInt
	}
	if c.ReplicaTimeout == 0 {
		c.ReplicaTimeout = 200 * time.Millisecond
	}
	return c
}

// Gate is the write model in Redis. All methods are safe for concurrent use by
// any number of goroutines and nodes: the scripts decide, not the callers.
type Gate struct {
	cfg     GateConfig
	ks      Keyspace
	rdb     redis.UniversalClient
	clock   Clock
	scripts scripts

	mu    sync.RWMutex
	sales map[string]*cachedSale

	// The protections' node-local state (guard.go, blacklist.go, token.go).
	guards    sync.Map // sale id → *saleGuard
	blocked   atomic.Pointer[map[string]struct{}]
	admission *rate.Limiter // nil: no cap
	tokens    *tokenSigner  // nil: no key, no tokens

	// afterBlacklistRead, when set (tests only), runs between reading the
	// blacklist and writing a new sale's copies of it.
	afterBlacklistRead func()

	// layouts is this node's memory of each sale's shards (layout.go).
	layouts sync.Map // sale id → *saleLayout
}

type cachedSale struct {
	cfg     SaleConfig
	view    SaleView
	fetched time.Time
}

// NewGate returns a gate on rdb.
func NewGate(cfg GateConfig, rdb redis.UniversalClient) (*Gate, error) {
	if rdb == nil {
		return nil, errors.New("gate: redis client is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Gate{
		cfg:       cfg,
		ks:        Keyspace{Prefix: cfg.Prefix},
		rdb:       rdb,
		clock:     cfg.Clock,
		scripts:   newScripts(),
		sales:     map[string]*cachedSale{},
		admission: newAdmission(cfg),
		tokens:    newTokenSigner(cfg.TokenKey),
	}, nil
}

// Load puts the scripts into Redis's script cache up front, so the first
// purchase of a burst does not pay for it (and a Redis without them is noticed
// at start).
func (g *Gate) Load(ctx context.Context) error {
	for _, s := range g.scripts.all() {
		if err := s.Load(ctx, g.rdb).Err(); err != nil {
			return fmt.Errorf("load gate script: %w", err)
		}
	}
	return nil
}

// Prefix is the key prefix of this gate.
func (g *Gate) Prefix() string { return g.cfg.Prefix }

// Keyspace names the gate's keys.
func (g *Gate) Keyspace() Keyspace { return g.ks }

// OutboxesKey is the set of every outbox stream key, read by the relay.
func (g *Gate) OutboxesKey() string { return g.ks.Outboxes() }

// Now is the gate's clock.
func (g *Gate) Now() time.Time { return g.clock.Now() }

// newID returns 13 random characters of lowercase base32: unguessable, and
// safe in keys and URLs.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return idEncoding.EncodeToString(b[:])
}

// idEncoding is base32 (RFC 4648) in lower case, unpadded: what
// strings.ToLower of the standard encoding gives, in one allocation.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// reply reads a script's answer: a list whose first element says what happened.
type reply []any

func toReply(v any) (reply, error) {
	r, ok := v.([]any)
	if !ok || len(r) == 0 {
		return nil, fmt.Errorf("unexpected script reply %v", v)
	}
	return r, nil
}

func (r reply) str(i int) string {
	if i >= len(r) || r[i] == nil {
		return ""
	}
	switch v := r[i].(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return fmt.Sprint(r[i])
}

func (r reply) int(i int) int64 {
	n, _ := strconv.ParseInt(r.str(i), 10, 64)
	return n
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func fromMS(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}
