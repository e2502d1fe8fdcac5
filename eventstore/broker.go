package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultBrokerAddr is where the embedded broker listens unless told otherwise:
// the port Kafka clients try first.
const DefaultBrokerAddr = "127.0.0.1:9092"

// BrokerConfig configures the embedded Kafka-protocol broker.
type BrokerConfig struct {
	// Addr is the host:port the broker listens on; it is also the address it
	// advertises to clients, so it must be one they can reach (not 0.0.0.0).
	// Port 0 picks a free port; Broker.Addrs tells which. Default
	// DefaultBrokerAddr.
	Addr string
	// DataDir is the directory the log and the broker's state (topics,
	// consumer group offsets, producer ids) are kept in, so they survive a
	// restart or a crash of the process. It is created if missing and may be
	// used by one broker at a time. Empty keeps everything in memory: the log
	// dies with the process (tests only).
	DataDir string
	// SyncWrites fsyncs every produced batch before acknowledging it. Without
	// it the log survives the process being killed (the page cache outlives
	// it) but the newest writes may be lost if the machine itself goes down,
	// as with Kafka's defaults.
	SyncWrites bool
	// Topic is created at start if missing. Default DefaultTopic.
	Topic string
	// Partitions is the partition count of a newly created Topic; an existing
	// topic keeps its own. Default DefaultPartitions.
	Partitions int
	// Logger receives the broker's messages: start, requests it cannot
	// handle, persistence errors. Nil discards them.
	Logger *slog.Logger
}

func (c *BrokerConfig) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultBrokerAddr
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
}

// Validate reports every field that is wrong, joined. StartBroker fills the
// defaults before it validates.
func (c BrokerConfig) Validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("addr %q: bad port", c.Addr))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("topic is empty"))
	}
	if c.Partitions < 1 || c.Partitions > 10_000 {
		errs = append(errs, fmt.Errorf("partitions %d: must be between 1 and 10000", c.Partitions))
	}
	return errors.Join(errs...)
}

// Broker is a single-node, Kafka-protocol-compatible broker running inside
// this process (franz-go's kfake). Any Kafka client can use it; with a DataDir
// it keeps the log on disk across restarts.
type Broker struct {
	cluster   *kfake.Cluster
	unlock    func() error
	cfg       BrokerConfig
	closeOnce sync.Once
	closeErr  error
}

// StartBroker starts the broker, loading the log from cfg.DataDir if one is
// there, and creates cfg.Topic if it does not exist yet. Close it when done.
func StartBroker(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	unlock := func() error { return nil }
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("seckill"),
		kfake.DefaultNumPartitions(cfg.Partitions),
		// kfake always listens on 127.0.0.1; listen where we were asked to.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, cfg.Addr)
		}),
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{cfg.Logger}))
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("start broker: %w", err)
		}
		// Two brokers writing one directory would corrupt the log; kfake
		// does not guard against it, so we do. The lock file sits beside the
		// directory because kfake owns everything inside it.
		var err error
		unlock, err = lockFile(filepath.Clean(cfg.DataDir) + ".lock")
		if err != nil {
			return nil, fmt.Errorf("start broker: data dir %s: %w", cfg.DataDir, err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start broker on %s: %w", cfg.Addr, err), unlock())
	}
	b := &Broker{cluster: cluster, unlock: unlock, cfg: cfg}
	// Seeding only applies to an empty data dir, so create the topic
	// explicitly: that also covers a data dir made for another topic.
	err = cluster.CreateTopic(cfg.Topic, int32(cfg.Partitions), map[string]string{
		"retention.ms":    "-1", // the log is kept forever
		"retention.bytes": "-1",
	})
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return nil, errors.Join(fmt.Errorf("start broker: create topic %s: %w", cfg.Topic, err), b.Close())
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("broker started", "addrs", b.Addrs(), "data_dir", cfg.DataDir, "topic", cfg.Topic)
	}
	return b, nil
}

// Addrs returns the addresses clients bootstrap from (one: the broker's).
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Topic returns the topic the broker was started with.
func (b *Broker) Topic() string { return b.cfg.Topic }

// Close stops the broker; with a DataDir it first writes its state out, so
// the next start resumes exactly where this one stopped. Close is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.cluster.Close()
		b.closeErr = b.unlock()
	})
	return b.closeErr
}

// kfakeLogger adapts slog for kfake, which logs little: requests it cannot
// parse (debug), requests it cannot handle (info) and persistence errors.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	case kfake.LogLevelInfo:
		lvl = slog.LevelInfo
	default:
		lvl = slog.LevelDebug
	}
	if !k.l.Enabled(context.Background(), lvl) {
		return
	}
	k.l.Log(context.Background(), lvl, "broker: "+fmt.Sprintf(format, args...))
}
