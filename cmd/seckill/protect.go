package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/seckill/seckill/commands"
)

// defaultAdmissionRPS is generous on purpose: it is the node's safety valve
// when traffic exceeds every estimate (seed 000's 整体限流), not a tuning knob.
// Answers given from memory (sold_out, ended, not_started, blocked, a
// per-user rate limit) do not count against it; only what reaches Redis does.
const defaultAdmissionRPS = 20000

// protectionFlags configure the gate's node-wide protections; the per-sale
// ones come with each sale (POST /v1/sales).
type protectionFlags struct {
	admissionRPS float64
	envErr       error // a malformed SECKILL_ADMISSION_RPS, reported by validate
}

func (p *protectionFlags) bind(c cli, fs *flag.FlagSet) {
	def := float64(defaultAdmissionRPS)
	if v := c.getenv("SECKILL_ADMISSION_RPS"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			p.envErr = usageError{fmt.Sprintf("SECKILL_ADMISSION_RPS=%q: want a number ≥ 0", v)}
		}
		def = n
	}
	fs.Float64Var(&p.admissionRPS, "admission-rps", def,
		"purchases per second this node sends to Redis at most; the excess is told 429 rate_limited; 0: no cap (env SECKILL_ADMISSION_RPS)")
}

func (p *protectionFlags) validate() error {
	if p.envErr != nil {
		return p.envErr
	}
	if p.admissionRPS < 0 {
		return usageError{"--admission-rps must be ≥ 0"}
	}
	return nil
}

// gateConfig is the gate's configuration for a node with these flags.
// Purchase tokens are keyed by the JWT secret, which every API node shares.
func (p *protectionFlags) gateConfig(jwtSecret string) commands.GateConfig {
	cfg := commands.GateConfig{AdmissionRPS: p.admissionRPS}
	if jwtSecret != "" {
		cfg.TokenKey = commands.DeriveTokenKey([]byte(jwtSecret))
	}
	return cfg
}
