package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RedisHook is a go-redis hook that times every command and pipeline the
// client sends, by command name ("evalsha", "hgetall", "pipeline"), and counts
// failures. A redis.Nil answer is not a failure: it is how Redis says "no
// such key". Add it with rdb.AddHook; on a cluster client it sees each
// command once, whichever node serves it.
type RedisHook struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec

	// observers caches latency's children by command name (a bounded set,
	// commandName): one map read per command instead of a label lookup.
	mu        sync.RWMutex
	observers map[string]prometheus.Observer
}

func (h *RedisHook) observer(name string) prometheus.Observer {
	h.mu.RLock()
	o, ok := h.observers[name]
	h.mu.RUnlock()
	if !ok {
		o = h.latency.WithLabelValues(name)
		h.mu.Lock()
		h.observers[name] = o
		h.mu.Unlock()
	}
	return o
}

// NewRedisHook registers the Redis metrics on reg.
func NewRedisHook(reg prometheus.Registerer) (*RedisHook, error) {
	h := &RedisHook{
		observers: map[string]prometheus.Observer{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "redis", Name: "command_duration_seconds",
			Help:    "Round trip of Redis commands by command name (pipelines as \"pipeline\"), as the client sees it.",
			Buckets: latencyBuckets,
		}, []string{"command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "redis", Name: "command_errors_total",
			Help: "Redis commands that failed (network, timeout, script error), by command name.",
		}, []string{"command"}),
	}
	if err := register(reg, h.latency, h.errors); err != nil {
		return nil, fmt.Errorf("redis metrics: %w", err)
	}
	return h, nil
}

// DialHook passes dials through untimed.
func (h *RedisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook times one command.
func (h *RedisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		name := commandName(cmd)
		h.observer(name).Observe(since(start))
		if err != nil && !errors.Is(err, redis.Nil) {
			h.errors.WithLabelValues(name).Inc()
		}
		return err
	}
}

// ProcessPipelineHook times one pipeline (or MULTI/EXEC) as a whole.
func (h *RedisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observer("pipeline").Observe(since(start))
		if err != nil && !errors.Is(err, redis.Nil) {
			h.errors.WithLabelValues("pipeline").Inc()
		}
		return err
	}
}

// knownCommands bounds the label: commands a client may send are many, but
// ours are these; anything else is "other".
var knownCommands = map[string]bool{
	"evalsha": true, "eval": true, "script": true, "hgetall": true, "hget": true, "hmget": true,
	"hset": true, "smembers": true, "sadd": true, "srem": true, "sismember": true, "xlen": true,
	"xrange": true, "xrevrange": true, "xadd": true, "xtrim": true, "zrange": true, "zrangebyscore": true,
	"zrem": true, "del": true, "exists": true, "get": true, "set": true, "publish": true, "scan": true,
	"ping": true, "subscribe": true, "cluster": true, "info": true, "hello": true, "client": true,
}

func commandName(cmd redis.Cmder) string {
	n := strings.ToLower(cmd.Name())
	if knownCommands[n] {
		return n
	}
	return "other"
}
