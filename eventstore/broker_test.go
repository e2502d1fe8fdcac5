package eventstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

func publishOrders(t testing.TB, pub eventstore.Publisher, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		msg, err := eventstore.ToMessage(encode(t, domain.OrderPaid{OrderID: fmt.Sprintf("s1-%d", i), SaleID: "s1", Quantity: 1}))
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(testTopic, msg); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBrokerConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := eventstore.StartBroker(context.Background(), eventstore.BrokerConfig{Addr: "nope", Partitions: -1})
	if err == nil || !strings.Contains(err.Error(), "addr") || !strings.Contains(err.Error(), "partitions") {
		t.Fatalf("err = %v", err)
	}
}

// TestBrokerRestartKeepsLog: a broker closed and started again on the same
// data dir serves every record, keeps its topic, and appends after them.
func TestBrokerRestartKeepsLog(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "kafka")
	cfg := eventstore.BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir, Topic: testTopic, Partitions: 4}
	b, err := eventstore.StartBroker(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, b.Addrs())
	publishOrders(t, pub, 0, 100)
	if _, err := eventstore.StartBroker(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second broker on the same data dir: %v", err)
	}
	b.Close()

	b, err = eventstore.StartBroker(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := countLog(t, b.Addrs()); got != 100 {
		t.Fatalf("after restart the log has %d records, want 100", got)
	}
	ends, err := eventstore.EndOffsets(context.Background(), b.Addrs(), testTopic)
	if err != nil || len(ends) != 4 {
		t.Fatalf("EndOffsets = %v, %v; want 4 partitions", ends, err)
	}
	publishOrders(t, newPublisher(t, b.Addrs()), 100, 150)
	if got := countLog(t, b.Addrs()); got != 150 {
		t.Fatalf("log has %d records, want 150", got)
	}
}

// TestBrokerSurvivesKill9 runs the broker in a child process, publishes to it,
// kills it with SIGKILL (no chance to save anything), and starts a broker on
// the same data dir: every acknowledged record is there.
func TestBrokerSurvivesKill9(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "kafka")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokerChildProcess$")
	cmd.Env = append(os.Environ(), "EVENTSTORE_BROKER_CHILD="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("child broker did not report its address")
	}

	pub, err := eventstore.NewPublisher([]string{addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishOrders(t, pub, 0, 300)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	pub.Close()

	b, err := eventstore.StartBroker(context.Background(), eventstore.BrokerConfig{
		Addr: "127.0.0.1:0", DataDir: dir, Topic: testTopic, Partitions: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := countLog(t, b.Addrs()); got != 300 {
		t.Fatalf("after kill -9 the log has %d records, want 300", got)
	}
	publishOrders(t, newPublisher(t, b.Addrs()), 300, 310)
	if got := countLog(t, b.Addrs()); got != 310 {
		t.Fatalf("log has %d records, want 310", got)
	}
}

// TestBrokerChildProcess is the broker process of TestBrokerSurvivesKill9.
func TestBrokerChildProcess(t *testing.T) {
	dir := os.Getenv("EVENTSTORE_BROKER_CHILD")
	if dir == "" {
		t.Skip("helper process for TestBrokerSurvivesKill9")
	}
	b, err := eventstore.StartBroker(context.Background(), eventstore.BrokerConfig{
		Addr: "127.0.0.1:0", DataDir: dir, Topic: testTopic, Partitions: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", b.Addrs()[0])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Minute):
	}
}

// TestEnsureTopic creates the topic on a cluster that lacks it, is a no-op
// when it exists (even with another partition count), and rejects bad input.
func TestEnsureTopic(t *testing.T) {
	t.Parallel()
	c := testenv.KafkaCluster(t, 0, kfake.NumBrokers(3))
	ctx := context.Background()
	for range 2 {
		if err := eventstore.EnsureTopic(ctx, c.ListenAddrs(), "events", 6); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventstore.EnsureTopic(ctx, c.ListenAddrs(), "events", 12); err != nil {
		t.Fatal(err)
	}
	ends, err := eventstore.EndOffsets(ctx, c.ListenAddrs(), "events")
	if err != nil || len(ends) != 6 {
		t.Fatalf("EndOffsets = %v, %v; want 6 partitions", ends, err)
	}
	info := c.TopicInfo("events")
	if info == nil || info.NumReplicas != 3 || info.Configs["retention.ms"] == nil || *info.Configs["retention.ms"] != "-1" {
		t.Errorf("topic info %+v", info)
	}
	if err := eventstore.EnsureTopic(ctx, c.ListenAddrs(), "", 0); err == nil {
		t.Error("no error for an empty topic and 0 partitions")
	}
	if _, err := eventstore.EndOffsets(ctx, c.ListenAddrs(), "missing"); err == nil {
		t.Error("EndOffsets of a missing topic: no error")
	}
}
