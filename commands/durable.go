package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// Replication as the durability boundary (docs/durability.md). With
// GateConfig.MinReplicas > 0 every script that decides something a client
// is told is followed, in the same pipeline on the same connection, by WAIT:
// the answer is given only once that many replicas hold the write, so losing
// the primary loses no accepted order. Group commit (batch.go) makes one
// WAIT cover a whole batch. When the replicas fall short the command answers
// ErrUnavailable (503): what it wrote may or may not survive a failover, and
// the client's retry with the same key is answered with the order if it did.

// errNotReplicated is a write fewer replicas acknowledged than required.
var errNotReplicated = fmt.Errorf("write not acknowledged by enough replicas: %w", domain.ErrUnavailable)

// eval runs script s on the node of keys[0] and, when the gate requires
// replicas, waits for them on the same connection.
func (g *Gate) eval(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
	if g.cfg.MinReplicas <= 0 {
		return s.Run(ctx, g.rdb, keys, args...).Result()
	}
	var c redis.Cmdable = g.rdb
	if cc, ok := g.rdb.(*redis.ClusterClient); ok {
		// WAIT has no key: it must go to the master that ran the script.
		node, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, err
		}
		c = node
	}
	for attempt := 0; ; attempt++ {
		pipe := c.Pipeline()
		ev := pipe.EvalSha(ctx, s.Hash(), keys, args...)
		wait := pipe.Do(ctx, "WAIT", g.cfg.MinReplicas, g.cfg.ReplicaTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		if err := ev.Err(); err != nil {
			if attempt == 0 && strings.HasPrefix(err.Error(), "NOSCRIPT") {
				if err := s.Load(ctx, c).Err(); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		n, err := wait.Int64()
		if err != nil {
			return nil, fmt.Errorf("wait for replicas: %w", err)
		}
		if n < int64(g.cfg.MinReplicas) {
			return ev.Val(), fmt.Errorf("%d of %d replicas: %w", n, g.cfg.MinReplicas, errNotReplicated)
		}
		return ev.Val(), nil
	}
}

// syncFlag tells a script whether an answer that writes nothing (a retry
// answered with its order) must still write, so that WAIT covers the order
// it reports: WAIT waits for this connection's last write, and the order may
// have been written on another connection, by an attempt that got 503.
func (g *Gate) syncFlag() string {
	if g.cfg.MinReplicas > 0 {
		return "1"
	}
	return "0"
}

// splice encodes an event whose numbers only a script knows: env is the
// envelope encoded with placeholder values, in the order given; splice
// returns the bytes around them, which the script joins with the numbers.
// Placeholders are numbers no event can hold (above domain's bounds), so
// each occurs once, in the payload.
func splice(env []byte, placeholders ...int64) ([]string, error) {
	rest := string(env)
	parts := make([]string, 0, len(placeholders)+1)
	for _, p := range placeholders {
		ph := strconv.FormatInt(p, 10)
		before, after, ok := strings.Cut(rest, ph)
		if !ok || strings.Contains(after, ph) {
			return nil, fmt.Errorf("encode event: placeholder %s not found once", ph)
		}
		parts = append(parts, before)
		rest = after
	}
	return append(parts, rest), nil
}

// Placeholders for splice: larger than any quantity or amount (domain bounds
// price × stock by 2^53).
const (
	placeholderQty    = 987654321987654321
	placeholderAmount = 987654321987654322
)
