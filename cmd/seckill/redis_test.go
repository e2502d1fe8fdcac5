package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/internal/testenv"
)

func TestOpenRedisURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		cluster bool
		addrs   []string // cluster seeds, or the one server
		wantErr bool
	}{
		{url: "redis://127.0.0.1:6379/0", addrs: []string{"127.0.0.1:6379"}},
		{url: "redis://127.0.0.1:6379?cluster=false", addrs: []string{"127.0.0.1:6379"}},
		{url: "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002", cluster: true,
			addrs: []string{"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"}},
		{url: "rediss+cluster://u:p@h1:7000,h2:7000/?dial_timeout=3s", cluster: true, addrs: []string{"h1:7000", "h2:7000"}},
		{url: "redis://h1:7000?addr=h2:7001&addr=h3:7002&cluster=true", cluster: true,
			addrs: []string{"h1:7000", "h2:7001", "h3:7002"}},
		{url: "redis://h1:7000/0?cluster=1", cluster: true, addrs: []string{"h1:7000"}},
		{url: "redis+cluster://h1:7000/3", wantErr: true},
		{url: "redis+cluster://h1,h2:7000", wantErr: true},
		{url: "redis://h1:7000?cluster=maybe", wantErr: true},
		{url: "http://h1:7000", wantErr: true},
		{url: "redis+cluster://h1:7000?bogus=1", wantErr: true},
	}
	for _, tc := range tests {
		rdb, err := openRedis(tc.url)
		if tc.wantErr {
			if err == nil {
				rdb.Close()
				t.Errorf("%s: no error", tc.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		switch c := rdb.(type) {
		case *redis.ClusterClient:
			if !tc.cluster || !slices.Equal(c.Options().Addrs, tc.addrs) {
				t.Errorf("%s: cluster client of %v; want cluster=%v %v", tc.url, c.Options().Addrs, tc.cluster, tc.addrs)
			}
			if c.Options().PoolSize != 128 || !c.Options().ContextTimeoutEnabled {
				t.Errorf("%s: pool %d, context timeouts %v", tc.url, c.Options().PoolSize, c.Options().ContextTimeoutEnabled)
			}
		case *redis.Client:
			if tc.cluster || c.Options().Addr != tc.addrs[0] {
				t.Errorf("%s: client of %s; want cluster=%v %v", tc.url, c.Options().Addr, tc.cluster, tc.addrs)
			}
		}
		rdb.Close()
	}
}

func TestParseSentinelURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url       string
		sentinels []string
		master    string
		db        int
		user      string
		pass      string
		sentPass  string
		wantErr   bool
	}{
		{url: "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/seckill",
			sentinels: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"}, master: "seckill"},
		{url: "redis+sentinel://:s3cret@h1:26379/mymaster?db=2&sentinel_password=sp&dial_timeout=3s",
			sentinels: []string{"h1:26379"}, master: "mymaster", db: 2, pass: "s3cret", sentPass: "sp"},
		{url: "rediss+sentinel://u:p@h1:26379/m", sentinels: []string{"h1:26379"}, master: "m", user: "u", pass: "p"},
		{url: "redis+sentinel://h1:26379", wantErr: true},           // no master name
		{url: "redis+sentinel://h1:26379/a/b", wantErr: true},       // not a name
		{url: "redis+sentinel://h1,h2:26379/m", wantErr: true},      // a Sentinel without a port
		{url: "redis+sentinel://h1:26379/m?bogus=1", wantErr: true}, // go-redis rejects unknown options
		{url: "redis+sentinel://h1:26379/m?master_name=x", wantErr: true},
		{url: "redis+sentinel://h1:26379/m?db=x", wantErr: true},
	}
	for _, tc := range tests {
		opt, err := parseSentinelURL(tc.url)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: no error", tc.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if !slices.Equal(opt.SentinelAddrs, tc.sentinels) || opt.MasterName != tc.master || opt.DB != tc.db ||
			opt.Username != tc.user || opt.Password != tc.pass || opt.SentinelPassword != tc.sentPass {
			t.Errorf("%s: sentinels %v master %q db %d user %q pass %q sentinel pass %q", tc.url,
				opt.SentinelAddrs, opt.MasterName, opt.DB, opt.Username, opt.Password, opt.SentinelPassword)
		}
		if opt.PoolSize != 128 || !opt.ContextTimeoutEnabled || opt.ReadTimeout != 2*time.Second {
			t.Errorf("%s: pool %d, context timeouts %v, read timeout %v", tc.url, opt.PoolSize, opt.ContextTimeoutEnabled, opt.ReadTimeout)
		}
		if strings.HasPrefix(tc.url, "rediss") != (opt.TLSConfig != nil) {
			t.Errorf("%s: TLS %v", tc.url, opt.TLSConfig != nil)
		}
	}
	// openRedis takes the same URL, and a bad one is a usage error.
	rdb, err := openRedis("redis+sentinel://127.0.0.1:1/m")
	if err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	if _, err := openRedis("redis+sentinel://127.0.0.1:1"); !errors.As(err, new(usageError)) {
		t.Errorf("no master name: %v; want a usage error", err)
	}
}

// TestMinReplicasAuto: --redis-min-replicas -1 (the default) waits for one
// replica behind Sentinels or when the primary has one, none otherwise; a
// number given is taken as it is.
func TestMinReplicasAuto(t *testing.T) {
	t.Parallel()
	alone := testenv.RedisServer(t)
	primary := testenv.RedisServer(t)
	testenv.RedisReplica(t, primary)
	ctx := t.Context()
	for _, tc := range []struct {
		name      string
		addr      string
		url       string // as configured; only its kind matters
		flag      int
		want, has int
	}{
		{"alone, auto", alone.Addr(), alone.URL(), autoReplicas, 0, 0},
		{"alone behind a Sentinel URL, auto", alone.Addr(), "redis+sentinel://h:26379/m", autoReplicas, 1, 0},
		{"with a replica, auto", primary.Addr(), primary.URL(), autoReplicas, 1, 1},
		{"with a replica, 0 given", primary.Addr(), primary.URL(), 0, 0, 1},
		{"alone, 2 given", alone.Addr(), alone.URL(), 2, 2, 0},
	} {
		rdb := redis.NewClient(&redis.Options{Addr: tc.addr})
		want, has, err := (&replicaFlags{minReplicas: tc.flag}).resolve(ctx, rdb, tc.url)
		rdb.Close()
		if err != nil || want != tc.want || has != tc.has {
			t.Errorf("%s: want %d has %d, %v; want %d has %d", tc.name, want, has, err, tc.want, tc.has)
		}
	}
	// A server that does not answer INFO: auto falls back to 0 (1 behind
	// Sentinels), and the error says why.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer dead.Close()
	if want, has, err := (&replicaFlags{minReplicas: autoReplicas}).resolve(ctx, dead, "redis://127.0.0.1:1"); err == nil || want != 0 || has != -1 {
		t.Errorf("unreachable: want %d has %d, %v; want 0, -1 and an error", want, has, err)
	}
}
