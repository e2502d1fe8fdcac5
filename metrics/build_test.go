package metrics_test

import (
	"testing"

	"github.com/seckill/seckill/internal/buildinfo"
	"github.com/seckill/seckill/metrics"
)

func TestBuildInfo(t *testing.T) {
	mfs, err := metrics.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	bi := buildinfo.Read()
	for _, mf := range mfs {
		if mf.GetName() != "seckill_build_info" {
			continue
		}
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetGauge().GetValue() != 1 || labels["version"] != bi.Version || labels["go_version"] != bi.GoVersion {
			t.Errorf("seckill_build_info = %v %v, want 1 with version %q, go_version %q", m.GetGauge().GetValue(), labels, bi.Version, bi.GoVersion)
		}
		return
	}
	t.Error("no seckill_build_info")
}
