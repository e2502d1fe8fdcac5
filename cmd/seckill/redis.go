package main

import (
	"context"
	"errors"
	"fmt"
	"net"
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
//	redis+sentinel://[:pass@]s1:p1,s2:p2,s3:p3/master[?db=N] a primary and its replicas behind Sentinels
//
// A Sentinel URL names the Sentinels and the master's name they monitor:
// the client asks them for the current primary, and when they promote a
// replica it hears of it (+switch-master) and reconnects there. The
// password is the Redis servers' (the Sentinels' own, if they have one,
// goes in sentinel_password=).
//
// A cluster's addresses are seeds: the client learns the rest of the nodes
// and the slot map from them, so one live seed is enough. Options are
// go-redis's URL options (dial_timeout, pool_size, ...). Every key of a
// sale carries the hash tag {sale:ID}, so each gate script runs on the one
// node that owns the sale's slot; different sales spread over the masters.
func openRedis(raw string) (redis.UniversalClient, error) {
	if isSentinelURL(raw) {
		opt, err := parseSentinelURL(raw)
		if err != nil {
			return nil, usageError{fmt.Sprintf("bad Redis Sentinel URL: %v", err)}
		}
		return redis.NewFailoverClient(opt), nil
	}
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
		poolDefaults(&opt.PoolSize, &opt.ReadTimeout, &opt.WriteTimeout, &opt.ContextTimeoutEnabled)
		// A master that dies answers no MOVED, the only thing that makes
		// go-redis re-read the slot map before its 60 s default: until
		// then it dials the dead master while a replica serves its
		// slots. A CLUSTER SLOTS a second is nothing.
		if opt.ClusterStateReloadInterval == 0 {
			opt.ClusterStateReloadInterval = time.Second
		}
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(clean)
	if err != nil {
		return nil, usageError{fmt.Sprintf("bad Redis URL: %v", err)}
	}
	poolDefaults(&opt.PoolSize, &opt.ReadTimeout, &opt.WriteTimeout, &opt.ContextTimeoutEnabled)
	return redis.NewClient(opt), nil
}

// poolDefaults fills what a URL left unset, the same for every kind of
// client. Every request of the hot path is one EVALSHA; a pool the size of
// the expected concurrency keeps requests from queueing for a connection
// (on a cluster the pool is per node, and a hot sale sits on one node).
// Context timeouts let a caller's deadline (the gate's RedisTimeout on the
// purchase path) reach the socket, not only the 2 s here.
func poolDefaults(size *int, read, write *time.Duration, ctxTimeouts *bool) {
	if *size == 0 {
		*size = 128
	}
	if *read == 0 {
		*read = 2 * time.Second
	}
	if *write == 0 {
		*write = 2 * time.Second
	}
	*ctxTimeouts = true
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
		return false, "", fmt.Errorf("scheme %q: want redis, rediss, redis+cluster, rediss+cluster or redis+sentinel", u.Scheme)
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

// isSentinelURL reports whether raw is a redis+sentinel:// (or
// rediss+sentinel://) URL.
func isSentinelURL(raw string) bool {
	return strings.HasPrefix(raw, "redis+sentinel://") || strings.HasPrefix(raw, "rediss+sentinel://")
}

// parseSentinelURL reads redis+sentinel://[user:pass@]s1:p1,s2:p2/master[?db=N&options]
// into go-redis's failover options, with the same pool and timeouts as a
// single server.
func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	master := strings.Trim(u.Path, "/")
	if master == "" || strings.Contains(master, "/") {
		return nil, fmt.Errorf("path %q: want /MASTERNAME, the name the Sentinels monitor", u.Path)
	}
	q := u.Query()
	if q.Has("master_name") || q.Has("addr") {
		return nil, errors.New("name the master in the path and the Sentinels in the host list, not in master_name= or addr=")
	}
	sentinelPass := q.Get("sentinel_password")
	q.Del("sentinel_password")
	hosts := strings.Split(u.Host, ",")
	for i, h := range hosts {
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			return nil, fmt.Errorf("sentinel %q: want host:port", h)
		}
		if i > 0 {
			q.Add("addr", h)
		}
	}
	q.Set("master_name", master)
	// go-redis's own form: the first Sentinel in the authority, the others
	// as addr=; its userinfo names the Sentinels' credentials, so ours (the
	// servers') travel as options.
	g := url.URL{Scheme: strings.TrimSuffix(u.Scheme, "+sentinel"), Host: hosts[0]}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			q.Set("username", name)
		}
		if pass, ok := u.User.Password(); ok {
			q.Set("password", pass)
		}
	}
	g.RawQuery = q.Encode()
	opt, err := redis.ParseFailoverURL(g.String())
	if err != nil {
		return nil, err
	}
	opt.SentinelUsername, opt.SentinelPassword = "", sentinelPass
	poolDefaults(&opt.PoolSize, &opt.ReadTimeout, &opt.WriteTimeout, &opt.ContextTimeoutEnabled)
	return opt, nil
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
