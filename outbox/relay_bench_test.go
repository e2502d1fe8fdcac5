package outbox_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/outbox"
)

// BenchmarkRelay measures how fast the relay empties outboxes into the
// embedded broker: each iteration fills the outboxes of 1 or 4 sales with
// 20000 purchases in all (StockReserved + OrderPlaced per entry: 40000
// events) and times RunOnce. Reported as events/s. One hot sale is the
// flash-sale case: its stream is forwarded batch after batch, so only the
// lanes give parallelism.
//
//	go test -run '^$' -bench BenchmarkRelay -benchtime 3x ./eventstore/
func BenchmarkRelay(b *testing.B) {
	for _, bc := range []struct {
		sales, lanes, batch int
		disk, batchPub      bool
	}{
		{1, 1, 500, false, false}, {1, 16, 500, false, false}, {1, 64, 500, false, false}, {1, 128, 1000, false, false},
		{4, 16, 500, false, false}, {4, 64, 500, false, false},
		{1, 64, 500, true, false},
		// eventstore.BatchPublisher: a whole batch to the producer at once.
		{1, 1, 500, false, true}, {4, 1, 500, false, true}, {1, 1, 500, true, true},
	} {
		name := fmt.Sprintf("sales=%d/lanes=%d/batch=%d", bc.sales, bc.lanes, bc.batch)
		if bc.disk {
			name += "/datadir"
		}
		if bc.batchPub {
			name += "/batchpub"
		}
		b.Run(name, func(b *testing.B) {
			rdb := testenv.Redis(b)
			cfg := eventstore.BrokerConfig{Addr: "127.0.0.1:0", Topic: testTopic, Partitions: 16}
			if bc.disk {
				cfg.DataDir = filepath.Join(b.TempDir(), "kafka")
			}
			broker, err := eventstore.StartBroker(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer broker.Close()
			pub := newPublisher(b, broker.Addrs())
			if bc.batchPub {
				pub = newBatchPublisher(b, broker.Addrs())
			}
			r := newRelay(b, rdb, pub, outbox.RelayConfig{
				Lanes: bc.lanes, BatchSize: bc.batch,
			})
			sales, perSale := bc.sales, 20000/bc.sales
			var events int
			var took, cpu time.Duration
			for i := range b.N {
				b.StopTimer()
				events += fillFast(b, rdb, i, sales, perSale)
				b.StartTimer()
				start, cpu0 := time.Now(), testenv.ProcessCPU()
				if _, err := r.RunOnce(context.Background()); err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				cpu += testenv.ProcessCPU() - cpu0
			}
			b.ReportMetric(float64(events)/took.Seconds(), "events/s")
			// Relay and broker together: both run in this process.
			b.ReportMetric(float64(cpu.Microseconds())/float64(events), "cpu-µs/event")
		})
	}
}

// fillFast appends perSale purchases to each of sales outboxes with pipelined
// XADDs and returns the number of events written.
func fillFast(b *testing.B, rdb *redis.Client, round, sales, perSale int) int {
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 20, 0, 0, 0, time.UTC)
	events := 0
	for s := range sales {
		sale := "s" + strconv.Itoa(s)
		stream := "t:{sale:" + sale + "}:outbox"
		rdb.SAdd(ctx, "t:outboxes", stream)
		pipe := rdb.Pipeline()
		for i := range perSale {
			order := domain.OrderID(sale, fmt.Sprintf("%d_%d", round, i))
			user := "u" + strconv.Itoa(i)
			r, err1 := domain.Encode(domain.StockReserved{SaleID: sale, OrderID: order, UserID: user, Quantity: 1}, at)
			p, err2 := domain.Encode(domain.OrderPlaced{OrderID: order, SaleID: sale, UserID: user, Quantity: 1,
				PriceCents: 100, AmountCents: 100, PayBy: at.Add(15 * time.Minute)}, at)
			if err1 != nil || err2 != nil {
				b.Fatal(err1, err2)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"1", r, "2", p}})
			events += 2
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return events
}
