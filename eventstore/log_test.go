package eventstore_test

import (
	"log"
	"log/slog"
	"os"

	"github.com/IBM/sarama"
)

// EVENTSTORE_DEBUG=1 shows sarama's and the components' logs in tests.
var debug = os.Getenv("EVENTSTORE_DEBUG") != ""

func init() {
	if debug {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
	}
}

// testLogger returns a debug logger to stderr with EVENTSTORE_DEBUG set, else
// nil (the component's default).
func testLogger() *slog.Logger {
	if debug {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}
