package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

// BenchmarkLogTools measures the log tools on a big log written straight into
// the in-process broker with franz-go: replay (raw, merged by time, decoded
// and exported), a one-second range in the middle, the fold, and a gate
// restore into an empty Redis. The size is SECKILL_BENCH_EVENTS (default
// 1,000,000):
//
//	go test ./cmd/seckill -run '^$' -bench LogTools -benchtime 1x -timeout 30m
//
// In-process, the broker's copy of the log shares the benchmark's heap and
// its garbage collector. SECKILL_BENCH_BROKERS points it at a broker in
// another process instead (an empty topic, e.g. `seckill broker --addr
// 127.0.0.1:19092 --data /tmp/skbench`), which is how the CLI runs, and
// leaves the log there for timing the commands themselves.
func BenchmarkLogTools(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("SECKILL_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var brokers []string
	if v := os.Getenv("SECKILL_BENCH_BROKERS"); v != "" {
		brokers = strings.Split(v, ",")
	} else {
		brokers = testenv.Kafka(b, 16)
	}
	base := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	start := time.Now()
	orders, sales := generateLog(b, brokers, base, n)
	b.Logf("wrote %d events (%d orders, %d sales) in %s", n, orders, sales, time.Since(start).Round(time.Millisecond))

	for b.Loop() {
		rate := func(name string, events int64, d time.Duration) {
			r := float64(events) / d.Seconds()
			b.Logf("%-28s %8d events in %8s: %9.0f events/s", name, events, d.Round(time.Millisecond), r)
			b.ReportMetric(r, name+"_events/s")
		}
		t0 := time.Now()
		var raw int64
		if err := eventstore.ReadAll(ctx, brokers, defaultTopic, func(eventstore.Record) error { raw++; return nil }); err != nil {
			b.Fatal(err)
		}
		rate("ReadAll", raw, time.Since(t0))

		t0 = time.Now()
		st, err := eventstore.Read(ctx, eventstore.ReadConfig{Brokers: brokers, Topic: defaultTopic}, func(eventstore.Event) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		rate("Read_merged", st.Passed, time.Since(t0))

		lg, err := eventstore.NewLog(eventstore.LogConfig{Brokers: brokers, Topic: defaultTopic})
		if err != nil {
			b.Fatal(err)
		}
		w, _ := eventstore.NewEntryWriter(io.Discard, eventstore.FormatJSONL)
		t0 = time.Now()
		qs, err := lg.Events(ctx, eventstore.Query{}, w.Write)
		if err != nil {
			b.Fatal(err)
		}
		rate("events_export_jsonl", qs.Matched, time.Since(t0))

		// One second in the middle of the sale.
		mid := base.Add(time.Duration(n/2) * time.Millisecond)
		t0 = time.Now()
		qs, err = lg.Events(ctx, eventstore.Query{From: mid, To: mid.Add(time.Second), Slack: time.Second}, w.Write)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		b.Logf("%-28s %8d events in %8s (%d records scanned)", "events_one_second_range", qs.Matched, d.Round(time.Millisecond), qs.Scanned)
		b.ReportMetric(float64(d.Milliseconds()), "range_ms")

		t0 = time.Now()
		fold, fst, err := eventstore.FoldLog(ctx, brokers, defaultTopic)
		if err != nil {
			b.Fatal(err)
		}
		foldDur := time.Since(t0)
		rate("FoldLog", fst.Records, foldDur)
		if v := fold.Violations(); len(v) > 0 || fst.Undecodable > 0 {
			b.Fatalf("generated log is unsound: %v %v", v[:min(len(v), 5)], fst.Errors)
		}

		rdb := testenv.Redis(b)
		gate, err := commands.NewGate(commands.GateConfig{}, rdb)
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		rep, err := gate.Restore(ctx, fold, commands.RestoreOptions{})
		if err != nil {
			b.Fatal(err)
		}
		d = time.Since(t0)
		var restored int
		for _, s := range rep.Sales {
			restored += s.Orders
		}
		b.Logf("%-28s %8d orders in %8s; with the fold, `seckill gate restore` takes %s", "Restore", restored, d.Round(time.Millisecond), (foldDur + d).Round(time.Millisecond))
		b.ReportMetric(d.Seconds(), "restore_s")
		b.ReportMetric((foldDur + d).Seconds(), "fold+restore_s")
		info, _ := rdb.Info(ctx, "memory").Result()
		for _, l := range strings.Split(info, "\n") {
			if strings.HasPrefix(l, "used_memory_human") {
				b.Logf("redis after restore: %s", strings.TrimSpace(l))
			}
		}
	}
}

// generateLog writes about n events of a realistic sale day: 10 sales, each
// order a StockReserved and an OrderPlaced, one in five paid, one in ten
// expired (OrderExpired + StockReleased), one event per millisecond. It
// returns the number of orders and sales.
func generateLog(b *testing.B, brokers []string, base time.Time, n int) (orders, sales int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(defaultTopic),
		kgo.RecordPartitioner(eventstore.Partitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(100_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	const nSales = 10
	var (
		recs    []*kgo.Record
		written int
	)
	at := func() time.Time { return base.Add(time.Duration(written+len(recs)) * time.Millisecond) }
	emit := func(e domain.Event) {
		t := at()
		v, err := domain.Encode(e, t)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(e.AggregateID()), Value: v, Timestamp: t.Add(5 * time.Millisecond)})
		if len(recs) == 20_000 {
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			written += len(recs)
			recs = recs[:0]
		}
	}
	perSale := int64(n/2/nSales + 1)
	for s := range nSales {
		id := fmt.Sprintf("bench%d", s)
		emit(domain.SaleCreated{SaleID: id, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
			Name: "bench", Stock: perSale, PriceCents: 1999, StartsAt: base,
			EndsAt: base.Add(24 * time.Hour), PerUserLimit: 1, PayWithinS: 900, Currency: "CNY",
		}}})
	}
	for written+len(recs) < n {
		sale := fmt.Sprintf("bench%d", orders%nSales)
		order := domain.OrderID(sale, strconv.Itoa(orders))
		user := "u" + strconv.Itoa(orders)
		t := at()
		emit(domain.StockReserved{SaleID: sale, OrderID: order, UserID: user, Quantity: 1})
		emit(domain.OrderPlaced{OrderID: order, SaleID: sale, UserID: user, Quantity: 1, PriceCents: 1999, AmountCents: 1999, PayBy: t.Add(15 * time.Minute)})
		switch orders / nSales % 10 { // not orders%10: that is the sale
		case 1, 2:
			emit(domain.OrderPaid{OrderID: order, SaleID: sale, UserID: user, Quantity: 1, AmountCents: 1999, PaymentRef: "p" + strconv.Itoa(orders)})
		case 3:
			emit(domain.OrderExpired{OrderID: order, SaleID: sale, UserID: user, Quantity: 1})
			emit(domain.StockReleased{SaleID: sale, OrderID: order, Quantity: 1, ToPool: true})
		}
		orders++
	}
	if len(recs) > 0 {
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	return orders, nSales
}
