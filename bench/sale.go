package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// sale runs the documented scenario with the real CLI, which checks the
// outcome itself (exactly the stock accepted; the read model has every
// accepted order), then `seckill audit`, which folds the log and checks the
// invariants, the gate and the read models against it (exit 0 or the bench
// fails). Quick runs use a small sale.
func (b *bench) sale(ctx context.Context) error {
	stock, users, attempts := 1_000, 200_000, 1_000_000
	name := "million-attempt sale (1M attempts, 200k users, 1,000 stock)"
	if !b.cfg.million {
		stock, users, attempts = 100, 2_000, 20_000
		name = "small sale (20k attempts, 2k users, 100 stock)"
	}
	b.logf("%s ...", name)
	start := time.Now()
	args := []string{"loadtest", "--data", b.data, "--url", b.api, "--stock", strconv.Itoa(stock), "--users", strconv.Itoa(users),
		"--requests", strconv.Itoa(attempts), "--concurrency", strconv.Itoa(b.cfg.conc), "--duration", "5m"}
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Stderr = b.w // progress lines
	out, err := cmd.Output()
	took := time.Since(start)
	b.logf("%s", out)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var sent, accepted int
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "requests":
			sent, _ = strconv.Atoi(f[1])
		case len(f) >= 3 && f[0] == "status" && f[1] == "202":
			accepted, _ = strconv.Atoi(f[2])
		}
	}
	if accepted != stock {
		return fmt.Errorf("%s: %d accepted, want exactly %d", name, accepted, stock)
	}
	b.logRSS(name)
	auditOut, auditTook, err := b.audit(ctx, name)
	if err != nil {
		return err
	}
	shown := strings.NewReplacer(b.data, "DIR", b.api, "API").Replace(strings.Join(args, " "))
	b.details = append(b.details, fmt.Sprintf("```\n%s\n$ seckill %s\n%s\n$ seckill audit --data DIR   (exit 0, %.1fs)\n%s```",
		name, shown, strings.TrimRight(string(out), "\n"), auditTook.Seconds(), auditOut))
	b.rows = append(b.rows, row{name, fmt.Sprintf("%.1f s total", took.Seconds()), "", "",
		fmt.Sprintf("%d attempts answered, exactly %d accepted; read model checked; `seckill audit` exit 0", sent, accepted)})
	return nil
}

// audit runs `seckill audit` on the system as a phase left it: the log
// folded and the invariants checked against it, the gate and the read
// models. Anything but exit 0 fails the bench.
func (b *bench) audit(ctx context.Context, after string) ([]byte, time.Duration, error) {
	start := time.Now()
	out, err := exec.CommandContext(ctx, b.bin, "audit", "--data", b.data).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return out, took, fmt.Errorf("seckill audit after the %s phase: %w\n%s", after, err, out)
	}
	b.audits = append(b.audits, after)
	b.logf("seckill audit after the %s phase: clean (%.1fs)", after, took.Seconds())
	return out, took, nil
}
