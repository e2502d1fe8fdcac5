package commands_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
)

// BenchmarkGatePurchase is the gate alone under 64 concurrent purchases of
// distinct users, one at a time (BatchSize 1) and with group commit: the
// gate's and Redis's CPU per purchase, and the script calls per purchase.
// go test -run XXX -bench GatePurchase -benchtime 20000x ./commands/
func BenchmarkGatePurchase(b *testing.B) {
	for _, size := range []int{1, 128} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			rdb := testenv.Redis(b)
			g, err := commands.NewGate(commands.GateConfig{BatchSize: size}, rdb)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			now := time.Now()
			sale, err := g.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
				SaleTerms: domain.SaleTerms{
					Name: "phone", Stock: int64(b.N) + 1, PriceCents: 100, StartsAt: now.Add(-time.Minute),
					EndsAt: now.Add(time.Hour), PerUserLimit: 1, PayWithinS: 60,
				},
			}})
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			calls0, cpu0, redis0 := evalshas(b, rdb), processCPU(), redisCPUTime(b, rdb)
			b.ResetTimer()
			b.SetParallelism(32) // 64 in flight on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					user := "u" + strconv.FormatInt(n.Add(1), 10)
					if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: user}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "gate-cpu-µs/op")
			b.ReportMetric(float64(redisCPUTime(b, rdb)-redis0)/float64(b.N)/1e3, "redis-cpu-µs/op")
			b.ReportMetric(float64(evalshas(b, rdb)-calls0)/float64(b.N), "calls/op")
		})
	}
}

func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// redisCPUTime is the Redis server's CPU (INFO cpu) in ns.
func redisCPUTime(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return int64(total * 1e9)
}
