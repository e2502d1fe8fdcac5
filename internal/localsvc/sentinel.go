package localsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// SentinelConfig configures a local Redis Sentinel: redis-server in
// sentinel mode (what the redis-sentinel binary is), watching one primary.
type SentinelConfig struct {
	// Dir holds sentinel.conf, which Sentinel rewrites with what it learns
	// (replicas, other Sentinels, the current primary), and its log,
	// redis.log. Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Master is the name the primary is monitored under (the path of a
	// redis+sentinel:// URL). Required.
	Master string
	// MasterAddr is the primary's "host:port" when Sentinel first starts;
	// after that sentinel.conf knows better. Required.
	MasterAddr string
	// Quorum is how many Sentinels must agree that the primary is down
	// before one of them fails it over. Default 1.
	Quorum int
	// DownAfter is how long the primary must not answer before a Sentinel
	// thinks it down. Default 30s, Redis's own; tests use a few hundred ms.
	DownAfter time.Duration
	// FailoverTimeout bounds a failover, and a Sentinel waits twice that
	// before it tries the same primary again. Default 3 minutes, Redis's own.
	FailoverTimeout time.Duration
}

func (c SentinelConfig) withDefaults() (SentinelConfig, error) {
	if c.Quorum == 0 {
		c.Quorum = 1
	}
	if c.DownAfter == 0 {
		c.DownAfter = 30 * time.Second
	}
	if c.FailoverTimeout == 0 {
		c.FailoverTimeout = 3 * time.Minute
	}
	var err error
	if c.Dir, err = absDir(c.Dir); err != nil {
		return c, fmt.Errorf("sentinel dir: %w", err)
	}
	return c, c.Validate()
}

// Validate reports every problem with the configuration at once.
func (c SentinelConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("sentinel: Dir is required"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("sentinel: Port %d out of range", c.Port))
	}
	if c.Master == "" {
		errs = append(errs, errors.New("sentinel: Master is required"))
	}
	if _, _, err := net.SplitHostPort(c.MasterAddr); err != nil {
		errs = append(errs, fmt.Errorf("sentinel: MasterAddr %q: want host:port", c.MasterAddr))
	}
	if c.Quorum < 0 {
		errs = append(errs, fmt.Errorf("sentinel: Quorum %d < 1", c.Quorum))
	}
	if c.DownAfter < 0 || c.FailoverTimeout < 0 {
		errs = append(errs, errors.New("sentinel: DownAfter and FailoverTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// StartSentinel starts a Sentinel as configured and returns once it answers
// PING. It is a *Redis: Addr, Stop, Kill and Restart work as for a server
// (Restart keeps sentinel.conf, and so what the Sentinel learnt).
func StartSentinel(ctx context.Context, cfg SentinelConfig) (*Redis, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return launchRedis(ctx, &Redis{cfg: RedisConfig{Dir: cfg.Dir, Port: cfg.Port}, sentinel: &cfg}, "sentinel")
}

// sentinelArgs writes sentinel.conf, unless a previous run left one (it
// holds the current primary, which may no longer be MasterAddr), and
// returns the arguments of `redis-server sentinel.conf --sentinel`.
func (r *Redis) sentinelArgs(port int) ([]string, error) {
	c := r.sentinel
	conf := filepath.Join(c.Dir, "sentinel.conf")
	if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
		host, mport, _ := net.SplitHostPort(c.MasterAddr) // Validate checked it
		body := fmt.Sprintf("sentinel monitor %s %s %s %d\n"+
			"sentinel down-after-milliseconds %[1]s %[5]d\n"+
			"sentinel failover-timeout %[1]s %[6]d\n"+
			"sentinel parallel-syncs %[1]s 1\n",
			c.Master, host, mport, c.Quorum, c.DownAfter.Milliseconds(), c.FailoverTimeout.Milliseconds())
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return nil, fmt.Errorf("sentinel: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("sentinel: %w", err)
	}
	// The config file must come first; the options after it override it.
	return []string{conf, "--sentinel",
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", c.Dir,
		"--daemonize", "no",
		"--logfile", "",
	}, nil
}
