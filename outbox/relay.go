package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/seckill/seckill/eventstore"
)

// RelayConfig configures a Relay. Zero fields take the documented defaults.
type RelayConfig struct {
	// OutboxesKey is the Redis set that lists the key of every outbox
	// stream (CONTRACTS.md: "<prefix>outboxes"). Required.
	OutboxesKey string
	// Topic is the Kafka topic events are forwarded to. Default eventstore.DefaultTopic.
	Topic string
	// BatchSize is how many outbox entries (commands, each with one or more
	// events) are read, published and trimmed at a time. Default 500.
	BatchSize int
	// Lanes is how many goroutines publish one batch in parallel. The events
	// of one aggregate always go through the same lane, in order, so their
	// order in the log is kept. More lanes mean bigger produce requests:
	// each lane waits for the ack of every message it sends. Default 64:
	// on one hot sale (BenchmarkRelay) 64 lanes forward ~58k events/s
	// against ~42k for 16, and more gain little.
	Lanes int
	// Streams is how many outbox streams are forwarded at the same time.
	// Default 4.
	Streams int
	// LeaseTTL is how long a relay holds a stream after its last batch
	// without renewing; another relay takes the stream over once it lapses.
	// It must exceed the time to publish one batch, or two relays may both
	// forward the same entries (harmless duplicates, but wasted work).
	// Default 10s.
	LeaseTTL time.Duration
	// PollInterval is how long Run waits before looking again when every
	// outbox was empty. It bounds the latency from gate to log. Default 50ms.
	PollInterval time.Duration
	// DiscoverInterval is how often Run re-reads OutboxesKey for new
	// streams. Default 1s.
	DiscoverInterval time.Duration
	// MaxBackoff caps the wait between retries after a failure (Redis or
	// Kafka down); the wait doubles from 100ms up to it. Default 5s.
	MaxBackoff time.Duration
	// Owner names this relay in the lease keys; it must differ between
	// relays. Default host name, pid and a random suffix.
	Owner string
	// Logger receives errors and lifecycle messages. Default slog.Default().
	Logger *slog.Logger
	// MinReplicas, when > 0, makes the relay publish only entries that at
	// least that many replicas of the outbox's Redis hold (WAIT after each
	// read, on the same connection). Without it a relay may publish an entry
	// that a failover then loses from the gate: the log would hold an order
	// the promoted replica never saw, and a shopper's retry would buy again
	// (docs/durability.md). Set it as the gate's GateConfig.MinReplicas.
	MinReplicas int
	// ReplicaTimeout bounds that WAIT; a batch the replicas have not
	// acknowledged by then is left in the outbox and tried again. Default
	// 200ms.
	ReplicaTimeout time.Duration
}

func (c *RelayConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = eventstore.DefaultTopic
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.Lanes == 0 {
		c.Lanes = 64
	}
	if c.Streams == 0 {
		c.Streams = 4
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.DiscoverInterval == 0 {
		c.DiscoverInterval = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReplicaTimeout == 0 {
		c.ReplicaTimeout = 200 * time.Millisecond
	}
}

// Validate reports every field that is wrong, joined. NewRelay fills the
// defaults before it validates.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.OutboxesKey == "" {
		errs = append(errs, errors.New("outboxes key is empty"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("topic is empty"))
	}
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("batch size %d: must be between 1 and 100000", c.BatchSize))
	}
	if c.Lanes < 1 || c.Lanes > 4096 {
		errs = append(errs, fmt.Errorf("lanes %d: must be between 1 and 4096", c.Lanes))
	}
	if c.Streams < 1 {
		errs = append(errs, fmt.Errorf("streams %d: must be at least 1", c.Streams))
	}
	if c.LeaseTTL < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease ttl %v: must be at least 10ms", c.LeaseTTL))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("poll interval %v: must be positive", c.PollInterval))
	}
	if c.DiscoverInterval <= 0 {
		errs = append(errs, fmt.Errorf("discover interval %v: must be positive", c.DiscoverInterval))
	}
	if c.MaxBackoff <= 0 {
		errs = append(errs, fmt.Errorf("max backoff %v: must be positive", c.MaxBackoff))
	}
	if c.MinReplicas < 0 || c.ReplicaTimeout <= 0 {
		errs = append(errs, fmt.Errorf("min replicas %d, replica timeout %v: want ≥ 0 and positive", c.MinReplicas, c.ReplicaTimeout))
	}
	if c.Owner == "" {
		errs = append(errs, errors.New("owner is empty"))
	}
	return errors.Join(errs...)
}

// RelayStats is what a relay has done since it was made.
type RelayStats struct {
	Forwarded     int64     // events published (re-sends after a failure included once they succeed)
	Entries       int64     // outbox entries trimmed after their events were published
	Batches       int64     // batches published and trimmed
	Quarantined   int64     // entries moved to a dead-letter stream because they could not be read
	Errors        int64     // failed attempts (each retried)
	Streams       int       // outbox streams known
	LastError     string    // the latest failure, "" if none yet
	LastErrorAt   time.Time // when it happened
	LastForwardAt time.Time // when a batch was last published
}

// Relay forwards the gate's Redis outbox streams to the Kafka log
// (CONTRACTS.md "The Redis outbox"). Per stream it holds a lease so that one
// relay at a time forwards it, reads a batch of entries in order, publishes
// their events, and trims the entries only once every event of the batch is
// acknowledged. A failure leaves the outbox as it was and the batch is sent
// again: delivery is at-least-once and consumers deduplicate by event id.
//
// Every Redis command touches one stream and keys derived from it (lease,
// dead letters), which share its hash tag, so the relay works on Redis Cluster.
//
// Shutdown: cancel Run's context (a batch being published is finished and
// trimmed first), optionally RunOnce with a fresh context once the gate has
// stopped, then close the publisher.
type Relay struct {
	cfg RelayConfig
	rdb redis.UniversalClient
	pub eventstore.Publisher
	log *slog.Logger

	mu           sync.Mutex
	streams      []string
	discoveredAt time.Time
	locks        map[string]*sync.Mutex // one forwarder per stream inside this process
	held         map[string]bool        // streams whose lease we took
	lastErr      string
	lastErrAt    time.Time
	lastFwdAt    time.Time

	forwarded, entries, batches, quarantined, errs atomic.Int64
	running                                        atomic.Int32 // Runs in progress: RunOnce leaves their leases alone
}

// NewRelay returns a relay that reads outboxes from rdb and publishes to pub.
func NewRelay(cfg RelayConfig, rdb redis.UniversalClient, pub eventstore.Publisher) (*Relay, error) {
	cfg.setDefaults()
	err := cfg.Validate()
	if rdb == nil {
		err = errors.Join(err, errors.New("redis client is nil"))
	}
	if pub == nil {
		err = errors.Join(err, errors.New("publisher is nil"))
	}
	if err != nil {
		return nil, fmt.Errorf("new relay: %w", err)
	}
	return &Relay{
		cfg:   cfg,
		rdb:   rdb,
		pub:   pub,
		log:   cfg.Logger.With("component", "relay", "owner", cfg.Owner),
		locks: map[string]*sync.Mutex{},
		held:  map[string]bool{},
	}, nil
}

// Run forwards outboxes until ctx is done, then gives up its leases so that
// another relay can take over at once, and returns nil. Failures (Redis or
// Kafka unreachable) are logged, counted in Stats and retried with backoff: a
// relay outlives the outages of what it connects.
func (r *Relay) Run(ctx context.Context) error {
	r.log.Info("relay started", "outboxes", r.cfg.OutboxesKey, "topic", r.cfg.Topic,
		"batch", r.cfg.BatchSize, "lanes", r.cfg.Lanes)
	r.running.Add(1)
	defer r.releaseLeases()
	defer r.running.Add(-1)
	backoff := time.Duration(0)
	for {
		n, err := r.pass(ctx)
		if ctx.Err() != nil {
			r.log.Info("relay stopped", "forwarded", r.forwarded.Load())
			return nil
		}
		wait := time.Duration(0)
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 100*time.Millisecond), r.cfg.MaxBackoff)
			wait = backoff
			r.log.Warn("relay pass failed; retrying", "err", err, "retry_in", wait)
		case n == 0:
			backoff = 0
			wait = r.cfg.PollInterval
		default:
			backoff = 0
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				r.log.Info("relay stopped", "forwarded", r.forwarded.Load())
				return nil
			case <-t.C:
			}
		}
	}
}

// maxBatchesPerPass bounds how long Run stays on one busy stream before
// looking at the others again.
const maxBatchesPerPass = 8

// pass forwards up to maxBatchesPerPass batches of every known stream and
// returns the number of events forwarded.
func (r *Relay) pass(ctx context.Context) (int, error) {
	streams, err := r.discover(ctx, false)
	if err != nil {
		return 0, err
	}
	return r.forEachStream(ctx, streams, false, func(ctx context.Context, stream string) (int, error) {
		total := 0
		for range maxBatchesPerPass {
			n, more, err := r.forwardBatch(ctx, stream, "+")
			total += n
			if err != nil || !more {
				return total, err
			}
		}
		return total, nil
	})
}

// RunOnce forwards everything that is in the outboxes when it is called and
// returns the number of events forwarded. Streams leased by another relay are
// left to it. It suits tests and a last flush at shutdown (after Run returned
// and the gate stopped writing); it does not retry: on error, call it again.
// When it succeeds and Run is not running, it gives up the leases it took,
// as Run does when it stops, so that a peer relay takes over at once rather
// than after LeaseTTL; a failed RunOnce keeps them for its retry.
func (r *Relay) RunOnce(ctx context.Context) (n int, err error) {
	defer func() {
		if err == nil && r.running.Load() == 0 {
			r.releaseLeases()
		}
	}()
	streams, err := r.discover(ctx, true)
	if err != nil {
		return 0, err
	}
	return r.forEachStream(ctx, streams, true, func(ctx context.Context, stream string) (int, error) {
		// Stop at the entry that is last now, so a gate that keeps writing
		// cannot keep us here forever.
		last, err := r.rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
		if err != nil {
			return 0, r.fail(fmt.Errorf("read end of %s: %w", stream, err))
		}
		if len(last) == 0 {
			return 0, nil
		}
		total := 0
		for {
			n, more, err := r.forwardBatch(ctx, stream, last[0].ID)
			total += n
			if err != nil || !more {
				return total, err
			}
		}
	})
}

// forEachStream runs fn on every stream, cfg.Streams at a time, and adds up
// what they forwarded. A stream this process is already forwarding is
// skipped, or waited for if wait is set.
func (r *Relay) forEachStream(ctx context.Context, streams []string, wait bool,
	fn func(ctx context.Context, stream string) (int, error)) (int, error) {
	var (
		total atomic.Int64
		mu    sync.Mutex
		errs  []error
	)
	var g errgroup.Group
	g.SetLimit(r.cfg.Streams)
	for _, s := range streams {
		lock := r.streamLock(s)
		g.Go(func() error {
			if wait {
				lock.Lock()
			} else if !lock.TryLock() {
				return nil
			}
			defer lock.Unlock()
			n, err := fn(ctx, s)
			total.Add(int64(n))
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			// One failing stream does not stop the others.
			return nil
		})
	}
	_ = g.Wait()
	return int(total.Load()), errors.Join(errs...)
}

func (r *Relay) streamLock(stream string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.locks[stream]
	if !ok {
		l = &sync.Mutex{}
		r.locks[stream] = l
	}
	return l
}

// discover returns the outbox streams, re-reading the set when the cached
// list is older than DiscoverInterval or fresh is set.
func (r *Relay) discover(ctx context.Context, fresh bool) ([]string, error) {
	r.mu.Lock()
	if !fresh && r.streams != nil && time.Since(r.discoveredAt) < r.cfg.DiscoverInterval {
		s := r.streams
		r.mu.Unlock()
		return s, nil
	}
	r.mu.Unlock()
	streams, err := r.rdb.SMembers(ctx, r.cfg.OutboxesKey).Result()
	if err != nil {
		return nil, r.fail(fmt.Errorf("list outboxes %s: %w", r.cfg.OutboxesKey, err))
	}
	slices.Sort(streams)
	r.mu.Lock()
	if len(streams) != len(r.streams) {
		r.log.Debug("outboxes discovered", "streams", len(streams))
	}
	r.streams, r.discoveredAt = streams, time.Now()
	r.mu.Unlock()
	return streams, nil
}

// leaseReadScript takes or renews the stream's lease for ARGV[1] and, if the
// lease is ours, returns up to ARGV[4] entries from the start of the stream to
// ARGV[3]; it returns 0 when another relay holds the lease. Doing both in one
// script costs one round trip per poll of an idle stream.
//
// KEYS[1] stream, KEYS[2] lease; ARGV[1] owner, ARGV[2] ttl ms, ARGV[3] end
// id, ARGV[4] count.
var leaseReadScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[2])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
elseif cur then
  return 0
else
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return redis.call('XRANGE', KEYS[1], '-', ARGV[3], 'COUNT', ARGV[4])
`)

// ackScript moves the unreadable entries ARGV[2..] to the dead-letter stream
// KEYS[2] and trims the stream KEYS[1] below ARGV[1], in one step so that a
// crash in between cannot lose them. It does not check the lease: the entries
// below ARGV[1] are in the log, whoever trims them.
var ackScript = redis.NewScript(`
for i = 2, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e == 1 then
    redis.call('XADD', KEYS[2], '*', '_id', ARGV[i], unpack(e[1][2]))
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
`)

// releaseScript deletes the lease KEYS[1] if ARGV[1] holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// LeaseKey is the key of the lease on an outbox stream.
func LeaseKey(stream string) string { return stream + ":lease" }

// DeadLetterKey is the stream where the relay moves outbox entries it cannot
// read (not an envelope, bad field names), each with its original id in field
// "_id", so that one broken entry neither blocks its sale's outbox nor is lost.
func DeadLetterKey(stream string) string { return stream + ":dead" }

// entry is one outbox stream entry: a command's events, in order.
type entry struct {
	id   string
	msgs []*message.Message
	bad  error // why the entry cannot be forwarded
}

// forwardBatch forwards one batch of stream up to the entry id end ("+": all)
// and reports how many events it published and whether the batch was full
// (there may be more).
func (r *Relay) forwardBatch(ctx context.Context, stream, end string) (int, bool, error) {
	res, err := r.leaseRead(ctx, stream, end)
	if err != nil {
		return 0, false, r.fail(fmt.Errorf("read outbox %s: %w", stream, err))
	}
	raw, ok := res.([]any)
	if !ok {
		// Another relay forwards this stream.
		r.setHeld(stream, false)
		return 0, false, nil
	}
	r.setHeld(stream, true)
	if len(raw) == 0 {
		return 0, false, nil
	}
	entries, err := parseEntries(raw)
	if err != nil {
		return 0, false, r.fail(fmt.Errorf("read outbox %s: %w", stream, err))
	}

	var msgs []*message.Message
	var bad []any
	for _, e := range entries {
		if e.bad != nil {
			r.log.Error("outbox entry cannot be forwarded; moving it to the dead-letter stream",
				"stream", stream, "id", e.id, "dead_letter", DeadLetterKey(stream), "err", e.bad)
			bad = append(bad, e.id)
			continue
		}
		msgs = append(msgs, e.msgs...)
	}

	start := time.Now()
	if err := r.publish(msgs); err != nil {
		return 0, false, r.fail(fmt.Errorf("publish %d events of %s: %w", len(msgs), stream, err))
	}
	if d := time.Since(start); d > r.cfg.LeaseTTL/2 {
		r.log.Warn("publishing a batch took more than half the lease; raise LeaseTTL or lower BatchSize",
			"stream", stream, "took", d, "lease_ttl", r.cfg.LeaseTTL)
	}

	last := entries[len(entries)-1].id
	minID, err := nextID(last)
	if err != nil {
		return 0, false, r.fail(fmt.Errorf("trim %s: %w", stream, err))
	}
	args := append([]any{minID}, bad...)
	// The events are in the log now. Trim even if ctx was cancelled while we
	// published (a shutdown): an untrimmed batch is sent again by the next
	// relay, which consumers absorb as duplicates, but it is wasted work.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := ackScript.Run(actx, r.rdb, []string{stream, DeadLetterKey(stream)}, args...).Err(); err != nil {
		return 0, false, r.fail(fmt.Errorf("trim %s to %s: %w", stream, minID, err))
	}
	r.forwarded.Add(int64(len(msgs)))
	r.entries.Add(int64(len(entries)))
	r.batches.Add(1)
	r.quarantined.Add(int64(len(bad)))
	r.mu.Lock()
	r.lastFwdAt = time.Now()
	r.mu.Unlock()
	r.log.Debug("batch forwarded", "stream", stream, "entries", len(entries), "events", len(msgs),
		"took", time.Since(start))
	return len(msgs), len(entries) == r.cfg.BatchSize, nil
}

// leaseRead runs leaseReadScript on stream. With MinReplicas it runs it on a
// connection of its own and, when it read entries, WAITs on that connection
// for the replicas: the script wrote (the lease), so the connection's
// replication offset covers every entry it read, and WAIT returns once
// MinReplicas replicas hold them all.
func (r *Relay) leaseRead(ctx context.Context, stream, end string) (any, error) {
	keys := []string{stream, LeaseKey(stream)}
	args := []any{r.cfg.Owner, r.cfg.LeaseTTL.Milliseconds(), end, r.cfg.BatchSize}
	if r.cfg.MinReplicas <= 0 {
		return leaseReadScript.Run(ctx, r.rdb, keys, args...).Result()
	}
	node := r.rdb
	if c, ok := r.rdb.(*redis.ClusterClient); ok {
		m, err := c.MasterForKey(ctx, stream)
		if err != nil {
			return nil, err
		}
		node = m
	}
	cl, ok := node.(*redis.Client)
	if !ok {
		return nil, fmt.Errorf("MinReplicas needs a *redis.Client or *redis.ClusterClient, not %T", node)
	}
	conn := cl.Conn()
	defer conn.Close()
	res, err := leaseReadScript.Run(ctx, conn, keys, args...).Result()
	if err != nil {
		return nil, err
	}
	if raw, ok := res.([]any); !ok || len(raw) == 0 {
		return res, nil
	}
	n, err := conn.Do(ctx, "WAIT", r.cfg.MinReplicas, r.cfg.ReplicaTimeout.Milliseconds()).Int()
	if err != nil {
		return nil, fmt.Errorf("WAIT %d: %w", r.cfg.MinReplicas, err)
	}
	if n < r.cfg.MinReplicas {
		r.log.Debug("outbox entries not on enough replicas yet", "stream", stream, "replicas", n, "want", r.cfg.MinReplicas)
		return nil, fmt.Errorf("%w: %d of %d replicas acknowledged within %v", ErrReplicasBehind, n, r.cfg.MinReplicas, r.cfg.ReplicaTimeout)
	}
	return res, nil
}

// ErrReplicasBehind is the error of a batch left in the outbox because
// fewer than MinReplicas replicas acknowledged it.
var ErrReplicasBehind = errors.New("outbox entries not yet on enough replicas")

// publish sends msgs through cfg.Lanes lanes in parallel. A lane publishes its
// messages in order and an aggregate always maps to the same lane, so each
// aggregate's events reach the log in outbox order; the lanes overlap their
// waits for acks, which lets the producer put many of them in one request.
func (r *Relay) publish(msgs []*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	lanes := make([][]*message.Message, r.cfg.Lanes)
	for _, m := range msgs {
		i := laneOf(m.Metadata.Get(eventstore.MetadataAggregateID), r.cfg.Lanes)
		lanes[i] = append(lanes[i], m)
	}
	errs := make([]error, len(lanes))
	var wg sync.WaitGroup
	for i, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		wg.Go(func() { errs[i] = r.pub.Publish(r.cfg.Topic, lane...) })
	}
	wg.Wait()
	// Lanes usually fail together (the broker is gone): report one cause,
	// not one per lane.
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 1 {
		return fmt.Errorf("%d lanes failed, first: %w", failed, first)
	}
	return first
}

func laneOf(aggregateID string, lanes int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(aggregateID))
	return int(h.Sum32() % uint32(lanes))
}

// parseEntries reads XRANGE's reply as the script returns it: entries of
// [id, [field, value, ...]]. Fields are "1", "2", ... in event order.
func parseEntries(raw []any) ([]entry, error) {
	entries := make([]entry, 0, len(raw))
	for _, x := range raw {
		pair, ok := x.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("unexpected entry %T", x)
		}
		id, ok := pair[0].(string)
		if !ok {
			return nil, fmt.Errorf("unexpected entry id %T", pair[0])
		}
		kv, ok := pair[1].([]any)
		if !ok {
			return nil, fmt.Errorf("entry %s: unexpected fields %T", id, pair[1])
		}
		entries = append(entries, parseEntry(id, kv))
	}
	return entries, nil
}

func parseEntry(id string, kv []any) entry {
	e := entry{id: id}
	if len(kv) == 0 || len(kv)%2 != 0 {
		e.bad = fmt.Errorf("%d field values", len(kv))
		return e
	}
	type field struct {
		n int
		v string
	}
	fields := make([]field, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		name, _ := kv[i].(string)
		val, _ := kv[i+1].(string)
		n, err := strconv.Atoi(name)
		if err != nil || n < 1 {
			e.bad = fmt.Errorf("field %q is not an event number", name)
			return e
		}
		fields = append(fields, field{n, val})
	}
	slices.SortFunc(fields, func(a, b field) int { return a.n - b.n })
	for _, f := range fields {
		m, err := eventstore.ToMessage([]byte(f.v))
		if err != nil {
			e.bad = fmt.Errorf("field %d: %w", f.n, err)
			e.msgs = nil
			return e
		}
		e.msgs = append(e.msgs, m)
	}
	return e
}

// nextID returns the smallest stream id after id, the MINID that trims id
// and everything before it.
func nextID(id string) (string, error) {
	msPart, seqPart, ok := strings.Cut(id, "-")
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return "", fmt.Errorf("bad stream id %q", id)
	}
	if seq == ^uint64(0) {
		return strconv.FormatUint(ms+1, 10) + "-0", nil
	}
	return msPart + "-" + strconv.FormatUint(seq+1, 10), nil
}

func (r *Relay) setHeld(stream string, held bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if held {
		r.held[stream] = true
	} else {
		delete(r.held, stream)
	}
}

// releaseLeases gives up every lease this relay holds, so another relay need
// not wait for them to lapse.
func (r *Relay) releaseLeases() {
	r.mu.Lock()
	streams := make([]string, 0, len(r.held))
	for s := range r.held {
		streams = append(streams, s)
	}
	clear(r.held)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range streams {
		if err := releaseScript.Run(ctx, r.rdb, []string{LeaseKey(s)}, r.cfg.Owner).Err(); err != nil {
			r.log.Warn("release lease", "stream", s, "err", err)
		}
	}
}

// fail records err in the stats and returns it.
func (r *Relay) fail(err error) error {
	r.errs.Add(1)
	r.mu.Lock()
	r.lastErr, r.lastErrAt = err.Error(), time.Now()
	r.mu.Unlock()
	return err
}

// Stats returns what the relay has done so far.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayStats{
		Forwarded:     r.forwarded.Load(),
		Entries:       r.entries.Load(),
		Batches:       r.batches.Load(),
		Quarantined:   r.quarantined.Load(),
		Errors:        r.errs.Load(),
		Streams:       len(r.streams),
		LastError:     r.lastErr,
		LastErrorAt:   r.lastErrAt,
		LastForwardAt: r.lastFwdAt,
	}
}

// Depth returns how many outbox entries wait to be forwarded, over every
// stream listed in OutboxesKey.
func (r *Relay) Depth(ctx context.Context) (int64, error) {
	streams, err := r.rdb.SMembers(ctx, r.cfg.OutboxesKey).Result()
	if err != nil {
		return 0, fmt.Errorf("list outboxes %s: %w", r.cfg.OutboxesKey, err)
	}
	if len(streams) == 0 {
		return 0, nil
	}
	cmds := make([]*redis.IntCmd, len(streams))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range streams {
			cmds[i] = p.XLen(ctx, s)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox depth: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}
