// Package metrics is seckill's Prometheus instrumentation of the parts the
// other packages do not time themselves: the Redis client (a go-redis hook),
// Postgres (a pgx tracer), the relay's Kafka publisher (a decorator), the
// gate's decisions (a decorator of commands.Gate), and collectors that read
// state lazily at scrape time (outbox depth and relay lag, projection lag and
// dead letters, the remaining stock of sales). HTTP metrics live with the
// router (package http).
//
// Nothing here registers on prometheus.DefaultRegisterer: the process makes
// ONE registry (NewRegistry) and hands it to every constructor, so tests can
// run many systems in one process and a scrape shows exactly this process.
// All metric names start with "seckill_"; label values are bounded sets
// (command names, reasons, projection names, at most a configured number of
// sales), never request data.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/seckill/seckill/internal/buildinfo"
)

// namespace prefixes every metric of ours.
const namespace = "seckill"

// NewRegistry returns an empty registry with the Go runtime and process
// collectors and seckill_build_info, the one registry of a process.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBuildInfo(buildinfo.Read()),
	)
	return reg
}

// latencyBuckets suit calls to Redis, Postgres and Kafka on a LAN: from
// 100µs (a loopback EVALSHA) to 2.5s (a timeout).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// register registers every collector or returns the first error, so a
// constructor given a registry that already has its metrics fails cleanly
// instead of panicking.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// since is time.Since in seconds, the unit Prometheus expects.
func since(t time.Time) float64 { return time.Since(t).Seconds() }

// outcome is the label for an error: "ok" or "error".
func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
