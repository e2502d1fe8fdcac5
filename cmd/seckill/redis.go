package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// openRedis opens the gate's Redis: one server or a Redis Cluster, named by
// one URL (SECKILL_REDIS_URL) in any of these forms:
//
//	redis://[user:pass@]host:port[/0][?options]           one server (rediss:// for TLS)
//	redis+cluster://[user:pass@]h1:p1,h2:p2,h3:p3[?options] a cluster (rediss+cluster:// for TLS)
//	redis://h1:p1?addr=h2:p2&addr=h3:p3&cluster=true       the same cluster, go-redis's own form
//
// A cluster's addresses are seeds: the client learns the rest of the nodes
// and the slot map from them, so one live seed is enough. Options are
// go-redis's URL options (dial_timeout, pool_size, ...). Every key of a
// sale carries the hash tag {sale:ID}, so each gate script runs on the one
// node that owns the sale's slot; different sales spread over the masters.
func openRedis(raw string) (redis.UniversalClient, error) {
	cluster, clean, err := clusterURL(raw)
	if err != nil {
		return nil, usageError{fmt.Sprintf("bad Redis URL: %v", err)}
	}
	if cluster {
		opt, err := redis.ParseClusterURL(clean)
		if err != nil {
			return nil, usageError{fmt.Sprintf("bad Redis cluster URL: %v", err)}
		}
		// PoolSize is per node here: each node serves only its sales' share
		// of the hot path, but a hot sale sits on one node and needs the
		// same pool a single server would.
		if opt.PoolSize == 0 {
			opt.PoolSize = 128
		}
		if opt.ReadTimeout == 0 {
			opt.ReadTimeout = 2 * time.Second
		}
		if opt.WriteTimeout == 0 {
			opt.WriteTimeout = 2 * time.Second
		}
		opt.ContextTimeoutEnabled = true
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(clean)
	if err != nil {
		return nil, usageError{fmt.Sprintf("bad Redis URL: %v", err)}
	}
	// Every request of the hot path is one EVALSHA; a pool the size of the
	// expected concurrency keeps requests from queueing for a connection.
	if opt.PoolSize == 0 {
		opt.PoolSize = 128
	}
	opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second
	// Let a caller's deadline (the gate's RedisTimeout on the purchase path)
	// reach the socket, not only the 2s above.
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}

// clusterURL tells whether raw names a cluster and returns it without our
// cluster= hint, for a cluster in the form redis.ParseClusterURL reads
// (first host in the authority, the others as addr= parameters).
func clusterURL(raw string) (bool, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return false, "", err
	}
	q := u.Query()
	hint := false
	if v := q.Get("cluster"); v != "" {
		if hint, err = strconv.ParseBool(v); err != nil {
			return false, "", fmt.Errorf("cluster=%q: want true or false", v)
		}
		q.Del("cluster")
	}
	switch u.Scheme {
	case "redis+cluster", "rediss+cluster":
		hint = true
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
		hosts := strings.Split(u.Host, ",")
		for i, h := range hosts {
			if h == "" || !strings.Contains(h, ":") {
				return false, "", fmt.Errorf("cluster node %q: want host:port", h)
			}
			if i > 0 {
				q.Add("addr", h)
			}
		}
		u.Host = hosts[0]
	case "redis", "rediss":
	default:
		return false, "", fmt.Errorf("scheme %q: want redis, rediss, redis+cluster or rediss+cluster", u.Scheme)
	}
	if !hint {
		if !u.Query().Has("cluster") {
			return false, raw, nil
		}
		u.RawQuery = q.Encode()
		return false, u.String(), nil
	}
	// A cluster has database 0 only.
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return false, "", fmt.Errorf("database %q: a Redis Cluster has database 0 only", p)
	}
	u.Path = ""
	u.RawQuery = q.Encode()
	return true, u.String(), nil
}

// pingRedis checks that Redis answers; on a cluster, every master, since
// each serves the sales of its slots and a missing one fails those sales.
func pingRedis(ctx context.Context, rdb redis.UniversalClient) error {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := n.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("%s: %w", n.Options().Addr, err)
			}
			return nil
		})
	}
	return rdb.Ping(ctx).Err()
}

// redactURL is raw without its password, for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
