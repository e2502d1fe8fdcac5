package main

import (
	"cmp"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seckill/seckill/internal/loadgen"
)

// row is one line of the results table.
type row struct {
	name, value, ceiling, ratio, note string
}

func rate(perSec float64) string { return fmt.Sprintf("%.0f req/s", perSec) }

func rates(rs []loadgen.Result) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.Throughput()
	}
	return out
}

// medianAt is the index of the median of xs (the lower one of an even count).
func medianAt(xs []float64) int {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(xs[a], xs[b]) })
	return idx[(len(idx)-1)/2]
}

func median(xs []float64) float64 { return xs[medianAt(xs)] }

// ratios is the median of a[i]/b[i] over the rounds, with their range.
func ratios(a, b []float64) string {
	rs := make([]float64, len(a))
	for i := range a {
		rs[i] = a[i] / b[i]
	}
	if len(rs) == 1 {
		return pct(rs[0], 1)
	}
	return fmt.Sprintf("%s (%s-%s)", pct(median(rs), 1), pct(slices.Min(rs), 1), pct(slices.Max(rs), 1))
}

// roundsNote lists the rate of each round.
func roundsNote(xs []float64) string {
	if len(xs) == 1 {
		return "1 round"
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%d rounds: %s req/s", len(xs), strings.Join(parts, ", "))
}

func pct(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

func lat(r loadgen.Result) string {
	return fmt.Sprintf("p50 %s p99 %s p99.9 %s", r.Percentile(50).Round(time.Microsecond), r.Percentile(99).Round(time.Microsecond), r.Percentile(99.9).Round(time.Microsecond))
}

func (b *bench) report(took time.Duration) string {
	var s strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&s, "# Benchmarks\n\nMeasured by `make bench` (`go run ./bench`) on %s: %d cores (GOMAXPROCS %d), %s memory, %s/%s, %s. One run, %s in all.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOMAXPROCS(0), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version(), took.Round(time.Second))
	fmt.Fprintf(&s, "Everything runs on this one machine: the load generator (this process); the API node under test, `seckill serve --role api`; "+
		"`seckill dev --role relay,projector,sweeper`, which also runs the embedded Kafka-protocol broker and starts redis-server and Postgres; and the ceiling server. "+
		"Every HTTP phase uses the same load generator (`internal/loadgen`), %d connections, closed loop unless said otherwise, each purchase with the body the sale page sends (`{\"quantity\":1}`) "+
		"and **every request a different user**: a pool of %d pre-minted tokens, each request the next one, the empty handler's requests included "+
		"(the pool is larger than every phase and than the API's cache of verified tokens, so the API meets each token as a new shopper and checks its signature); "+
		"`seckill audit` runs after every phase and must exit 0; "+
		"a phase that reserves stock is followed by a pause until the relay and the projections have caught up, so that the next phase measures itself. "+
		"Load average when the run began: %s. Host: %s.\n\n", b.cfg.conc, b.cfg.tokens, b.loadAvg, host)
	s.WriteString("| figure | value | ceiling | ratio | latency / note |\n|---|---|---|---|---|\n")
	for _, r := range b.rows {
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s |\n", r.name, r.value, r.ceiling, r.ratio, r.note)
	}
	s.WriteString("\n## Each phase\n\n")
	s.WriteString(strings.Join(b.details, "\n\n"))
	s.WriteString("\n\n## Reproduce\n\n```sh\nmake bench        # or: go run ./bench\ngo run ./bench -quick -profile /tmp/prof   # a smoke run that also saves CPU and allocation profiles\n```\n\nProfiles and what they show: [docs/performance.md](docs/performance.md).\n")
	return s.String()
}

// loadAvg is the 1, 5 and 15 minute load average: how busy the machine was.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func memTotal() string {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
	if len(f) < 2 {
		return "?"
	}
	kb, _ := strconv.ParseInt(f[1], 10, 64)
	return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
}
