package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

type directResult struct {
	perSec float64
	lat    string
}

// directLua calls the gate's purchase (Go encoding + one EVALSHA) straight
// against the same Redis at the same concurrency: no HTTP, no JSON request.
func (b *bench) directLua(ctx context.Context, round int) (directResult, error) {
	opt, err := redis.ParseURL(b.dev.RedisURL)
	if err != nil {
		return directResult{}, err
	}
	opt.PoolSize = b.cfg.conc * 2
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	gate, err := commands.NewGate(commands.GateConfig{}, rdb)
	if err != nil {
		return directResult{}, err
	}
	sale, err := gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "bench-direct", Stock: int64(b.cfg.n), StartsAt: time.Now().Add(-time.Second),
			EndsAt: time.Now().Add(time.Hour),
		},
	}})
	if err != nil {
		return directResult{}, err
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		lats   []time.Duration
		failed atomic.Int64
	)
	start := time.Now()
	for range b.cfg.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				i := int(next.Add(1) - 1)
				if i >= b.cfg.n {
					break
				}
				t0 := time.Now()
				if _, err := gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "d" + strconv.Itoa(i)}); err != nil {
					failed.Add(1)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		return directResult{}, fmt.Errorf("direct Lua: %d purchases failed", failed.Load())
	}
	slices.Sort(lats)
	p := func(q float64) time.Duration { return lats[min(len(lats)-1, int(q*float64(len(lats))))] }
	d := directResult{perSec: float64(b.cfg.n) / elapsed.Seconds(),
		lat: fmt.Sprintf("p50 %s p99 %s", p(0.50).Round(time.Microsecond), p(0.99).Round(time.Microsecond))}
	b.logf("ceiling 2: direct Lua purchase (round %d): %d in %.2fs (%.0f/s), %s", round+1, b.cfg.n, elapsed.Seconds(), d.perSec, d.lat)
	b.details = append(b.details, fmt.Sprintf("```\nceiling 2: direct purchase script (gate.Purchase, %d goroutines) (round %d)\n  requests    %d in %.2fs (%.0f/s)\n  latency     %s\n```", b.cfg.conc, round+1, b.cfg.n, elapsed.Seconds(), d.perSec, d.lat))
	return d, nil
}
