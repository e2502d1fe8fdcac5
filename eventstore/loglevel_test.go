package eventstore

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

// TestWatermillLogLevels: watermill's lines reach the log at the levels they
// did before levelGate (info mapped to debug), and nothing below the
// handler's level is built.
func TestWatermillLogLevels(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  []string
	}{
		{slog.LevelInfo, []string{"error-line"}},
		{slog.LevelDebug, []string{"debug-line", "info-line", "error-line"}},
		{watermill.LevelTrace, []string{"trace-line", "debug-line", "info-line", "error-line"}},
	} {
		var buf bytes.Buffer
		log := watermillLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level}))).
			With(watermill.LogFields{"topic": "t"})
		fields := watermill.LogFields{"k": "v"}
		log.Trace("trace-line", fields)
		log.Debug("debug-line", fields)
		log.Info("info-line", fields)
		log.Error("error-line", nil, fields)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if !strings.Contains(l, "topic=t") || !strings.Contains(l, "k=v") {
				t.Errorf("line without its fields: %s", l)
			}
			for _, w := range []string{"trace-line", "debug-line", "info-line", "error-line"} {
				if strings.Contains(l, w) {
					got = append(got, w)
				}
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("level %v: logged %v, want %v", tc.level, got, tc.want)
		}
	}
}
