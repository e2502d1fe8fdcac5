package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/internal/localsvc"
)

// devSentinelMaster is the name `seckill dev --replicas` monitors its
// primary under.
const devSentinelMaster = "seckill"

// devRedis is the gate's Redis of `seckill dev`: one server, or a primary,
// its replicas and a Sentinel.
type devRedis struct {
	data     string
	nodes    []*localsvc.Redis // nodes[primary] is the primary at start
	primary  int
	sentinel *localsvc.Redis // nil without replicas
}

// startDevRedis starts the gate's Redis under data, with AOF so that a
// restart of `seckill dev` keeps the sale where it was, as the log (kept in
// DATA/kafka) does. With replicas > 0 it starts that many replicas and a
// Sentinel watching them (failover after 2 s without an answer), so a user
// can kill the primary and see the replica take over; the node that was the
// primary when dev stopped (DATA/redis-primary) is the primary again, so a
// failover's newer data is kept across restarts.
func startDevRedis(ctx context.Context, data string, replicas int) (*devRedis, error) {
	d := &devRedis{data: data}
	if replicas > 0 {
		d.primary = readDevPrimary(data, replicas+1)
	}
	dir := func(i int) string {
		if i == 0 {
			return filepath.Join(data, "redis")
		}
		return filepath.Join(data, "redis-replica-"+strconv.Itoa(i))
	}
	p, err := localsvc.StartRedis(ctx, localsvc.RedisConfig{Dir: dir(d.primary), AppendOnly: true})
	if err != nil {
		return nil, err
	}
	d.nodes = make([]*localsvc.Redis, replicas+1)
	d.nodes[d.primary] = p
	if replicas == 0 {
		return d, nil
	}
	for i := range d.nodes {
		if i == d.primary {
			continue
		}
		if d.nodes[i], err = localsvc.StartRedis(ctx, localsvc.RedisConfig{Dir: dir(i), AppendOnly: true, ReplicaOf: p.Addr()}); err != nil {
			d.stop()
			return nil, err
		}
	}
	// Ports change from run to run: the Sentinel starts afresh each time,
	// from the primary chosen above.
	sdir := filepath.Join(data, "sentinel")
	if err := os.Remove(filepath.Join(sdir, "sentinel.conf")); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.stop()
		return nil, err
	}
	d.sentinel, err = localsvc.StartSentinel(ctx, localsvc.SentinelConfig{
		Dir: sdir, Master: devSentinelMaster, MasterAddr: p.Addr(), Quorum: 1,
		DownAfter: 2 * time.Second, FailoverTimeout: 10 * time.Second,
	})
	if err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// URL is what the other commands connect with.
func (d *devRedis) URL() string {
	if d.sentinel == nil {
		return d.nodes[0].URL()
	}
	return "redis+sentinel://" + d.sentinel.Addr() + "/" + devSentinelMaster
}

// describe lists the servers for the banner.
func (d *devRedis) describe() string {
	if d.sentinel == nil {
		return d.URL()
	}
	var replicas []string
	for i, n := range d.nodes {
		if i != d.primary {
			replicas = append(replicas, n.Addr())
		}
	}
	return fmt.Sprintf("%s (primary %s, replicas %s, Sentinel %s)", d.URL(), d.nodes[d.primary].Addr(),
		strings.Join(replicas, " "), d.sentinel.Addr())
}

// stop notes which node the Sentinel names the primary now, then stops
// everything.
func (d *devRedis) stop() {
	if d.sentinel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c := redis.NewSentinelClient(&redis.Options{Addr: d.sentinel.Addr()})
		hp, err := c.GetMasterAddrByName(ctx, devSentinelMaster).Result()
		_ = c.Close()
		cancel()
		if err == nil && len(hp) == 2 {
			for i, n := range d.nodes {
				if n != nil && n.Addr() == net.JoinHostPort(hp[0], hp[1]) {
					_ = os.WriteFile(filepath.Join(d.data, "redis-primary"), []byte(strconv.Itoa(i)+"\n"), 0o600)
				}
			}
		}
		_ = d.sentinel.Stop()
	}
	for _, n := range d.nodes {
		if n != nil {
			_ = n.Stop()
		}
	}
}

// readDevPrimary is the node DATA/redis-primary names, 0 if none of n.
func readDevPrimary(data string, n int) int {
	b, err := os.ReadFile(filepath.Join(data, "redis-primary"))
	if err != nil {
		return 0
	}
	i, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || i < 0 || i >= n {
		return 0
	}
	return i
}
