package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/internal/testenv"
)

// openTestNode opens a node with roles on real Redis, Postgres and the
// in-process broker, as `seckill serve --role roles` would, and starts its
// roles; apiAddr is where its API listens ("" without the api role).
func openTestNode(t *testing.T, roles string) (n *node, apiAddr string) {
	t.Helper()
	rdb := testenv.Redis(t)
	env := map[string]string{
		"SECKILL_REDIS_URL":     "redis://" + rdb.Options().Addr + "/0",
		"SECKILL_DATABASE_URL":  testenv.Postgres(t),
		"SECKILL_KAFKA_BROKERS": strings.Join(testenv.Kafka(t, 4), ","),
		"SECKILL_JWT_SECRET":    testSecret,
	}
	c := cli{getenv: func(k string) string { return env[k] }, stdout: io.Discard, stderr: io.Discard, dev: &devUse{warn: io.Discard}}
	fs := newFlags(c, "serve", "serve")
	var ep endpoints
	ep.bind(c, fs)
	var sys systemFlags
	sys.bind(c, fs, "127.0.0.1:0")
	if err := parse(fs, []string{"--role", roles, "--shutdown-timeout", "20s"}); err != nil {
		t.Fatal(err)
	}
	sys.onListen = func(addr string) { apiAddr = addr }
	if err := sys.validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := openNode(ctx, ep, sys, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	if err := n.start(ctx); err != nil {
		t.Fatal(err)
	}
	return n, apiAddr
}

// TestNodeStopsWhenARoleStops: a role that fails, or returns while the node
// is meant to run, stops the whole node at once (its API stops listening,
// every other role is stopped), and run returns that role's error; a node
// whose roles all keep running stops only when asked to, without an error.
func TestNodeStopsWhenARoleStops(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		stops   bool  // an extra role stops 200 ms after the start
		roleErr error // with this error
		want    string
	}{
		{"fails", true, boom, "role doomed failed: boom"},
		{"returns", true, nil, "role doomed stopped"},
		{"keeps running", false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, addr := openTestNode(t, "api,relay,projector,sweeper")
			if tc.stops {
				n.roles = append(n.roles, role{name: "doomed", run: func(context.Context) error {
					time.Sleep(200 * time.Millisecond)
					return tc.roleErr
				}})
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- n.run(ctx) }()
			if !tc.stops {
				// Running roles only stop when asked to.
				select {
				case err := <-done:
					t.Fatalf("node stopped by itself: %v", err)
				case <-time.After(2 * time.Second):
				}
				if c, err := net.Dial("tcp", addr); err != nil {
					t.Fatalf("API not listening while the node runs: %v", err)
				} else {
					c.Close()
				}
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("node did not stop within 30s")
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("run: %v, want nil", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("run: %v, want an error with %q", err, tc.want)
				}
				if tc.roleErr != nil && !errors.Is(err, tc.roleErr) {
					t.Fatalf("run: %v does not wrap the role's error", err)
				}
				if took := time.Since(start); took > 15*time.Second {
					t.Fatalf("node took %s to stop after its role did", took)
				}
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Fatal("API still listening after the node stopped")
			}
		})
	}
}
