package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/internal/buildinfo"
)

// newBuildInfo is seckill_build_info: a constant 1 whose labels say which
// build runs, so a dashboard can tell the nodes of a rolling upgrade apart
// and join any other series to its version.
func newBuildInfo(bi buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "build_info",
		Help:      "The build of this process (version, VCS revision, Go version); always 1.",
		ConstLabels: prometheus.Labels{
			"version":    bi.Version,
			"revision":   bi.Revision,
			"go_version": bi.GoVersion,
		},
	})
	g.Set(1)
	return g
}
