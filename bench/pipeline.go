package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// pipeline measures what one accepted order costs the whole system in CPU
// (issue 13: "the whole pipeline per event"): purchases at a steady rate
// the system keeps up with, then the wait until the relay and every
// projection are done with them, with each process's CPU time read from
// /proc before and after and divided by the orders. With -profile it also
// takes a CPU profile of the `seckill dev` process over the same window and
// splits its share by stage (relay, broker, projections, GC).
func (b *bench) pipeline(ctx context.Context) error {
	perSec, secs := 3000.0, 10
	if b.cfg.quick {
		perSec, secs = 1000, 4
	}
	n := int(perSec) * secs
	_, next, err := b.freshSale(ctx, n)
	if err != nil {
		return err
	}
	var prof chan profResult
	if b.cfg.profile != "" {
		// The load, and up to 10 s for the pipeline to catch up.
		prof = make(chan profResult, 1)
		go func() { prof <- b.fetchDevProfile(ctx, secs+10) }()
	}
	start := time.Now()
	before, err := b.cpuByProcess()
	if err != nil {
		return err
	}
	res, err := b.load(ctx, fmt.Sprintf("pipeline cost: purchases at %.0f/s until every projection applied them", perSec), b.api, n, next, perSec)
	if err != nil {
		return err
	}
	if err := b.waitSettled(ctx, "pipeline"); err != nil {
		return err
	}
	after, err := b.cpuByProcess()
	if err != nil {
		return err
	}
	window := time.Since(start)
	orders := res.ByStatus[http.StatusAccepted]
	if orders == 0 {
		return fmt.Errorf("pipeline phase: no order accepted (%v)", res.ByCode)
	}
	per := func(p string) float64 { return float64(after[p]-before[p]) / 1e3 / float64(orders) }
	var total float64
	parts := make([]string, 0, len(processNames))
	for _, p := range processNames {
		total += per(p)
		parts = append(parts, fmt.Sprintf("%s %.0f", p, per(p)))
	}
	note := fmt.Sprintf("%d orders at %.0f/s, %.1f s until the projections had applied them; µs by process: %s", orders, res.Throughput(), window.Seconds(), strings.Join(parts, ", "))
	b.rows = append(b.rows, row{"CPU per accepted order, whole system", fmt.Sprintf("%.0f µs", total), "", "", note})
	if prof != nil {
		p := <-prof
		if p.err != nil {
			return p.err
		}
		b.stageRow(p.prof, orders, per("seckill dev"))
	}
	return b.settle(ctx, "pipeline")
}

// processNames are the processes cpuByProcess reports, in report order.
var processNames = []string{"API", "seckill dev", "redis-server", "postgres"}

// cpuByProcess is the CPU time (user + system, ns) of the API process, the
// `seckill dev` process, and the redis-server and postgres processes it
// started (its descendants, summed by name).
func (b *bench) cpuByProcess() (map[string]int64, error) {
	out := map[string]int64{}
	stats, err := procStats()
	if err != nil {
		return nil, err
	}
	for pid, st := range stats {
		switch {
		case pid == b.apiPID:
			out["API"] += st.cpu
		case pid == b.devPID:
			out["seckill dev"] += st.cpu
		case descends(stats, pid, b.devPID) && (st.comm == "redis-server" || st.comm == "postgres"):
			out[st.comm] += st.cpu
		}
	}
	return out, nil
}

type procStat struct {
	comm string
	ppid int
	cpu  int64 // ns
}

// procStats reads /proc/*/stat: name, parent and CPU time of every process.
func procStats() (map[int]procStat, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	const tick = int64(time.Second / 100) // USER_HZ
	out := make(map[int]procStat, len(dirs))
	for _, d := range dirs {
		raw, err := os.ReadFile(d)
		if err != nil {
			continue // gone since the glob
		}
		s := string(raw)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		// After "(comm) ": state ppid ... utime (14th field) stime (15th).
		f := strings.Fields(s[closing+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = procStat{comm: s[open+1 : closing], ppid: ppid, cpu: (ut + st) * tick}
	}
	return out, nil
}

// descends reports whether pid is a descendant of root.
func descends(stats map[int]procStat, pid, root int) bool {
	for range 64 {
		st, ok := stats[pid]
		if !ok || st.ppid == 0 {
			return false
		}
		if st.ppid == root {
			return true
		}
		pid = st.ppid
	}
	return false
}

type profResult struct {
	prof *profile.Profile
	err  error
}

// fetchDevProfile takes a CPU profile of the `seckill dev` process for secs
// seconds and saves it in the profile folder as pipeline.dev.cpu.pb.gz.
func (b *bench) fetchDevProfile(ctx context.Context, secs int) profResult {
	file := filepath.Join(b.cfg.profile, "pipeline.dev.cpu.pb.gz")
	if err := os.MkdirAll(b.cfg.profile, 0o755); err != nil {
		return profResult{err: err}
	}
	if err := fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.devAdmin, secs), file); err != nil {
		return profResult{err: err}
	}
	f, err := os.Open(file)
	if err != nil {
		return profResult{err: err}
	}
	defer f.Close()
	p, err := profile.Parse(f)
	return profResult{prof: p, err: err}
}

// stages sorts the samples of the `seckill dev` process by the part of the
// pipeline they belong to: the first stage any frame of a sample's stack
// matches, checked in this order.
var stages = []struct{ name, frames string }{
	{"broker (kfake: produce, fetch)", "franz-go/pkg/kfake"},
	{"relay (outbox read, publish)", "seckill/outbox.|IBM/sarama|ThreeDotsLabs/watermill|eventstore.(*Publisher"},
	{"projections (consume, decode, apply, Postgres client)", "seckill/projections.|seckill/readmodels.|jackc/pgx|franz-go/pkg/kgo"},
	{"GC", "runtime.gcBgMarkWorker|runtime.bgsweep|runtime.bgscavenge"},
}

// stageRow adds the per-stage CPU of the `seckill dev` process per accepted
// order: each stage's share of the profile's samples times the process's
// CPU per order measured from /proc.
func (b *bench) stageRow(p *profile.Profile, orders int, devPerOrder float64) {
	sums := make([]int64, len(stages)+1) // the last: anything else
	var total int64
	idx := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" })
	if idx < 0 {
		return
	}
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		sums[stageOf(s)] += v
	}
	if total == 0 {
		return
	}
	parts := make([]string, 0, len(sums))
	for i, v := range sums {
		name := "other (sweeper, HTTP admin, runtime)"
		if i < len(stages) {
			name = stages[i].name
		}
		parts = append(parts, fmt.Sprintf("%s %.0f µs (%.0f%%)", name, devPerOrder*float64(v)/float64(total), 100*float64(v)/float64(total)))
	}
	b.rows = append(b.rows, row{"`seckill dev` CPU per accepted order, by stage", fmt.Sprintf("%.0f µs", devPerOrder), "", "",
		strings.Join(parts, "; ") + fmt.Sprintf(" (CPU profile of the phase, %d orders)", orders)})
	b.logf("seckill dev per accepted order by stage: %s", strings.Join(parts, "; "))
}

func stageOf(s *profile.Sample) int {
	for i, st := range stages {
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function != nil && matchesAny(line.Function.Name, st.frames) {
					return i
				}
			}
		}
	}
	return len(stages)
}

// matchesAny reports whether name contains one of the |-separated parts.
func matchesAny(name, parts string) bool {
	for p := range strings.SplitSeq(parts, "|") {
		if strings.Contains(name, p) {
			return true
		}
	}
	return false
}
