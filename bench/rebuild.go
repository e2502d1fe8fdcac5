package main

import (
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/seckill/seckill/eventstore"
)

var rebuiltLine = regexp.MustCompile(`rebuilt (\w+): (\d+) events in (\S+) \(replay (\d+) events/s\)`)

// rebuild times `seckill projections rebuild orders` over the whole log of
// the run, next to a bare read of the same topic (eventstore.ReadAll: fetch
// every record, decode nothing), the ceiling of any replay.
func (b *bench) rebuild(ctx context.Context) error {
	brokers := strings.Split(b.dev.Brokers, ",")
	topic := cmp.Or(b.dev.Topic, "seckill.events")
	start := time.Now()
	var records int64
	if err := eventstore.ReadAll(ctx, brokers, topic, func(eventstore.Record) error { records++; return nil }); err != nil {
		return fmt.Errorf("bare read of the log: %w", err)
	}
	readTook := time.Since(start)
	readRate := float64(records) / readTook.Seconds()
	b.logf("bare read of the log: %d records in %.2fs (%.0f/s)", records, readTook.Seconds(), readRate)

	start = time.Now()
	cmd := exec.CommandContext(ctx, b.bin, "projections", "rebuild", "orders", "--data", b.data)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	b.logf("%s", out)
	if err != nil {
		return fmt.Errorf("projections rebuild orders: %w\n%s", err, out)
	}
	m := rebuiltLine.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("projections rebuild orders: no result line in:\n%s", out)
	}
	events, _ := strconv.ParseInt(m[2], 10, 64)
	rate := float64(events) / took.Seconds()
	b.details = append(b.details, fmt.Sprintf("```\nrebuild of the orders projection over the whole log of this run\n$ seckill projections rebuild orders --data DIR   (%.1fs with start-up)\n%s\nbare read of the same topic (eventstore.ReadAll): %d records in %.2fs (%.0f/s)\n```",
		took.Seconds(), strings.TrimRight(string(out), "\n"), records, readTook.Seconds(), readRate))
	b.rows = append(b.rows, row{"projection rebuild (orders, whole log)", fmt.Sprintf("%.0f events/s", rate), "bare read of the log", pct(rate, readRate),
		fmt.Sprintf("%d events in %.1f s (replay phase %s events/s); bare read %.0f events/s", events, took.Seconds(), m[4], readRate)})
	return nil
}
