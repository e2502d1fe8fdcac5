package main

import (
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
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
