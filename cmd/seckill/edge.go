package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/challenge"
	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/draw"
	shttp "github.com/seckill/seckill/http"
)

// edgeFlags configure what an API node does for the crowd in front of it:
// the per-client-address limit, which proxies' X-Forwarded-For it believes,
// and how long caches may keep a sale's status.
type edgeFlags struct {
	clientRPS      float64
	clientBurst    int
	trustedProxies string
	statusMaxAge   time.Duration
	envErrs        []error // malformed environment values, reported by validate
}

func (e *edgeFlags) bind(c cli, fs *flag.FlagSet) {
	fs.Float64Var(&e.clientRPS, "client-rps", e.envFloat(c, "SECKILL_CLIENT_RPS", 0),
		"requests per second each client address may send to /v1 on this node (429 rate_limited past it); 0: no limit (env SECKILL_CLIENT_RPS)")
	fs.IntVar(&e.clientBurst, "client-burst", int(e.envFloat(c, "SECKILL_CLIENT_BURST", 0)),
		"requests a client address may send at once; 0: twice --client-rps (env SECKILL_CLIENT_BURST)")
	fs.StringVar(&e.trustedProxies, "trusted-proxies", c.getenv("SECKILL_TRUSTED_PROXIES"),
		"comma-separated addresses or CIDR prefixes of the proxies in front of this node (load balancer, CDN); their X-Forwarded-For names the client, read from the right. Empty: the peer is the client (env SECKILL_TRUSTED_PROXIES)")
	def := shttp.DefaultStatusMaxAge
	if v := c.getenv("SECKILL_STATUS_MAX_AGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.envErrs = append(e.envErrs, usageError{fmt.Sprintf("SECKILL_STATUS_MAX_AGE=%q: want a duration like 1s", v)})
		}
		def = d
	}
	fs.DurationVar(&e.statusMaxAge, "status-max-age", def,
		"how long a CDN, nginx or browser may serve a sale's status (GET /v1/sales/{id}) from its cache; whole seconds, 0: revalidate every time (env SECKILL_STATUS_MAX_AGE)")
}

func (e *edgeFlags) envFloat(c cli, key string, def float64) float64 {
	v := c.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		e.envErrs = append(e.envErrs, usageError{fmt.Sprintf("%s=%q: want a number ≥ 0", key, v)})
		return def
	}
	return n
}

func (e *edgeFlags) validate() error {
	errs := append([]error(nil), e.envErrs...)
	if e.clientRPS < 0 || e.clientBurst < 0 {
		errs = append(errs, usageError{"--client-rps and --client-burst must be ≥ 0"})
	}
	if e.statusMaxAge < 0 {
		errs = append(errs, usageError{"--status-max-age must be ≥ 0"})
	}
	if _, err := shttp.ParseTrustedProxies(e.trustedProxies); err != nil {
		errs = append(errs, usageError{"--trusted-proxies: " + err.Error()})
	}
	return errors.Join(errs...)
}

// apply sets the router's edge configuration; validate has passed. The
// challenges are keyed by the JWT secret, which every API node shares, and
// spent in the gate's Redis, which every API node reaches. It returns the
// draws of draw-mode sales, whose drawer the node runs.
func (e *edgeFlags) apply(cfg *shttp.Config, gate *commands.Gate, rdb redis.UniversalClient, jwtSecret string, log *slog.Logger) (*draw.Draws, error) {
	ch, err := challenge.New(challenge.Config{Key: challenge.DeriveKey([]byte(jwtSecret))}, rdb)
	if err != nil {
		return nil, err
	}
	cfg.Challenges = ch
	draws, err := draw.New(draw.Config{Log: log}, gate, rdb)
	if err != nil {
		return nil, err
	}
	cfg.Draws = draws
	trusted, _ := shttp.ParseTrustedProxies(e.trustedProxies)
	cfg.ClientLimit = shttp.ClientLimitConfig{RPS: e.clientRPS, Burst: e.clientBurst, TrustedProxies: trusted}
	cfg.StatusMaxAge = e.statusMaxAge
	if e.statusMaxAge == 0 {
		cfg.StatusMaxAge = -1 // the router's 0 means its default
	}
	return draws, nil
}
