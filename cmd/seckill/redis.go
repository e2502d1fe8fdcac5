package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
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

// replicaFlags say how many replicas must hold a gate write (and an outbox
// entry the relay publishes) before it counts: the durability boundary of
// an accepted order when the Redis machine dies (docs/durability.md).
type replicaFlags struct {
	minReplicas int           // -1: decided at start (autoMinReplicas)
	timeout     time.Duration // how long a write waits for them
	envErr      error         // a malformed SECKILL_REDIS_MIN_REPLICAS, reported by validate
}

// autoReplicas is --redis-min-replicas's "decide at start".
const autoReplicas = -1

func (f *replicaFlags) bind(c cli, fs *flag.FlagSet) {
	def := autoReplicas
	if v := c.getenv("SECKILL_REDIS_MIN_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < autoReplicas {
			f.envErr = usageError{fmt.Sprintf("SECKILL_REDIS_MIN_REPLICAS=%q: want a number ≥ 0, or -1 for auto", v)}
		}
		def = n
	}
	fs.IntVar(&f.minReplicas, "redis-min-replicas", def,
		"answer a purchase, payment or end only once this many Redis replicas hold it (WAIT), and relay only such outbox entries; "+
			"fewer within --redis-replica-timeout answers 503. -1: 1 when the Redis URL is a redis+sentinel:// URL or the primary has replicas at start, else 0 (env SECKILL_REDIS_MIN_REPLICAS)")
	fs.DurationVar(&f.timeout, "redis-replica-timeout", 200*time.Millisecond,
		"how long a write waits for --redis-min-replicas replicas before it is answered 503")
}

func (f *replicaFlags) validate() error {
	if f.envErr != nil {
		return f.envErr
	}
	if f.minReplicas < autoReplicas {
		return usageError{"--redis-min-replicas must be ≥ 0, or -1 for auto"}
	}
	if f.timeout <= 0 {
		return usageError{"--redis-replica-timeout must be positive"}
	}
	return nil
}

// resolve is the number of replicas writes wait for: the flag, or with
// auto, 1 behind Sentinels (there is a replica to fail over to, and it
// must hold what was acknowledged) or when every primary has a replica
// now, else 0. have is how many replicas the primary with the fewest has
// now (-1 when Redis does not say: some managed services refuse INFO), to
// warn when writes cannot succeed; err says why it is unknown.
func (f *replicaFlags) resolve(ctx context.Context, rdb redis.UniversalClient, rawURL string) (want, have int, err error) {
	have, err = connectedReplicas(ctx, rdb)
	if err != nil {
		have = -1
	}
	switch {
	case f.minReplicas != autoReplicas:
		return f.minReplicas, have, err
	case isSentinelURL(rawURL) || have > 0:
		return 1, have, err
	}
	return 0, have, err
}

// connectedReplicas is the number of replicas connected to the primary, or
// on a cluster the fewest any master has.
func connectedReplicas(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	count := func(ctx context.Context, c redis.Cmdable) (int, error) {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return 0, fmt.Errorf("INFO replication: %w", err)
		}
		for l := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_slaves:"); ok {
				return strconv.Atoi(v)
			}
		}
		return 0, errors.New("INFO replication: no connected_slaves")
	}
	c, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return count(ctx, rdb)
	}
	var mu sync.Mutex
	fewest := -1
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := count(ctx, m)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Options().Addr, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if fewest < 0 || n < fewest {
			fewest = n
		}
		return nil
	})
	return max(fewest, 0), err
}
