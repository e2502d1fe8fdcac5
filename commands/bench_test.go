package commands_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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
			calls0, cpu0, redis0 := evalshas(b, rdb), int64(testenv.ProcessCPU()), int64(testenv.RedisCPU(b, rdb))
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
			b.ReportMetric(float64(int64(testenv.ProcessCPU())-cpu0)/float64(b.N)/1e3, "gate-cpu-µs/op")
			b.ReportMetric(float64(int64(testenv.RedisCPU(b, rdb))-redis0)/float64(b.N)/1e3, "redis-cpu-µs/op")
			b.ReportMetric(float64(evalshas(b, rdb)-calls0)/float64(b.N), "calls/op")
		})
	}
}
