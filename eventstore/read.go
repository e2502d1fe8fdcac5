package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/seckill/seckill/domain"
)

// ReadConfig says which part of the log Read reads.
type ReadConfig struct {
	// Brokers are the seed brokers. Required.
	Brokers []string
	// Topic is the log's topic. Default DefaultTopic.
	Topic string
	// From and To bound the events by the time they occurred (the envelope's
	// occurred_at), From inclusive, To exclusive; zero means unbounded. The
	// broker is asked for the offsets of the range by record timestamp, so a
	// range in the middle of a long log is read without scanning from the
	// start.
	From, To time.Time
	// Slack is how much earlier than From and later than To the read looks at
	// record timestamps. A record's timestamp is when the relay published it,
	// a little after the event occurred (and on another machine's clock), so
	// an event of the range may sit in a record stamped just outside it. An
	// event whose publication trailed its occurrence by more than Slack
	// (a relay that was down for longer) is missed; raise Slack to catch it.
	// Default one minute.
	Slack time.Duration
	// Follow keeps reading after the end of the log: new events are passed
	// to fn as they arrive until ctx is done or, when To is set, until the
	// wall clock passes To+Slack.
	Follow bool
	// Decode decodes each payload too, upcast to the current schema
	// (Event.Decoded), on every core while the next records are fetched.
	Decode bool
	// MaxBuffered bounds the records held per partition while merging the
	// partitions by time; a partition that far ahead of the others is paused.
	// Default 5000.
	MaxBuffered int
	// ReorderWindow is how many events the read holds back to put them in
	// time order. The merge of partitions keeps each partition's log order,
	// but that order is only meaningful per aggregate: the relay publishes
	// different aggregates through parallel lanes, so their events can land
	// a little out of time order. Within the window they are sorted back,
	// never moving an event before an earlier one of its aggregate. Default
	// 1000; 1 passes events in merge order.
	ReorderWindow int
	// Key, if set, reads only the partition Key maps to: the relay keys
	// records by aggregate id (Partitioner), so every event of one order is
	// there, and a lookup reads 1/partitions of the log.
	Key string
	// Progress, if set, is called after each poll with the records looked
	// at so far and the records of the range (up to the stop offsets; a
	// follow's live tail is not counted), from Read's goroutine.
	Progress func(scanned, total int64)
}

func (c *ReadConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Slack == 0 {
		c.Slack = time.Minute
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = 5000
	}
	if c.ReorderWindow == 0 {
		c.ReorderWindow = 1000
	}
}

// Validate reports every field that is wrong, joined.
func (c ReadConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("no topic"))
	}
	if !c.From.IsZero() && !c.To.IsZero() && !c.To.After(c.From) {
		errs = append(errs, fmt.Errorf("to (%s) must be after from (%s)", c.To.Format(time.RFC3339Nano), c.From.Format(time.RFC3339Nano)))
	}
	if c.Slack < 0 {
		errs = append(errs, fmt.Errorf("slack %s < 0", c.Slack))
	}
	if c.MaxBuffered < 1 {
		errs = append(errs, fmt.Errorf("max buffered %d < 1", c.MaxBuffered))
	}
	if c.ReorderWindow < 1 {
		errs = append(errs, fmt.Errorf("reorder window %d < 1", c.ReorderWindow))
	}
	return errors.Join(errs...)
}

// Event is one record of the log as Read passes it: the record, its
// envelope and, with ReadConfig.Decode, the decoded event.
type Event struct {
	Record
	// Envelope is the record's envelope: as written, or with Decode upcast
	// to the current schema version (Version and Payload current).
	Envelope domain.Envelope
	// Decoded is the event (ReadConfig.Decode; nil otherwise).
	Decoded domain.Event
	// Err is set when the value is not an envelope or, with Decode, its
	// payload cannot be decoded (an unknown type, a newer version). When
	// the envelope is unreadable the record's timestamp stands in for the
	// event's time. Read passes such records on rather than stop, so the
	// caller decides.
	Err error
}

// Time is when the event occurred, or the record's timestamp if its value
// is not an envelope.
func (e Event) Time() time.Time {
	if e.Envelope.ID == "" {
		return e.Timestamp
	}
	return e.Envelope.OccurredAt
}

// ReadStats counts what a Read did.
type ReadStats struct {
	// Scanned is the number of records looked at: the range and the slack
	// around it (not the records a fetch brings beyond the end, which are
	// dropped unread).
	Scanned int64
	// Passed is the number of events passed to fn.
	Passed int64
}

// Read reads the log directly, without a consumer group (nothing is committed,
// no live consumer is disturbed), and calls fn with every event that occurred
// in [From, To), from one goroutine. An error from fn stops the read and is
// returned unwrapped.
//
// Order: by event time. The partitions are merged by time (a k-way merge of
// their heads), and a window of ReorderWindow events sorts back what the
// relay's parallel lanes put slightly out of order within a partition. An
// aggregate's events always keep their log order. An event that reached the
// log far later than it occurred (relay lag beyond the window) comes where
// the log has it.
//
// Without Follow, Read returns once it has passed the end of the range, or the
// end of the log as of the call. With Follow, events after that end are passed
// as they arrive (ordered within each poll) until ctx is done, which is not
// an error, or To+Slack has passed.
func Read(ctx context.Context, cfg ReadConfig, fn func(Event) error) (ReadStats, error) {
	var stats ReadStats
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return stats, fmt.Errorf("read log: %w", err)
	}
	if cfg.Follow && !cfg.To.IsZero() && time.Now().After(cfg.To.Add(cfg.Slack)) {
		// Nothing more can arrive in a range that is over: a plain read.
		cfg.Follow = false
	}
	starts, stops, err := readBounds(ctx, cfg)
	if err != nil {
		return stats, fmt.Errorf("read %s: %w", cfg.Topic, err)
	}
	r, err := openRange(cfg.Brokers, cfg.Topic, starts, stops, cfg.Follow, orderedFetch)
	if err != nil {
		return stats, err
	}
	defer r.close()
	if cfg.Follow && !cfg.To.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, cfg.To.Add(cfg.Slack))
		defer cancel()
	}
	m := &merge{cfg: cfg, fn: fn, stats: &stats, r: r, parts: map[int32]*partQueue{}, live: map[int32][]Event{},
		ro: &reorder{window: cfg.ReorderWindow, last: map[string]*aggKey{}}}
	for p, start := range starts {
		m.total += max(0, stops[p]-start)
		if start < stops[p] {
			m.parts[p] = &partQueue{stop: stops[p]}
		}
	}
	return stats, m.run(ctx)
}

// run polls the range and passes its events on until the range is read
// (or, following, until ctx is done).
func (m *merge) run(ctx context.Context) error {
	for {
		if !m.catchingUp() && !m.cfg.Follow {
			return nil
		}
		// A bounded poll: every record of it is decoded before the merge
		// takes it, so the poll's size is what the read holds in memory.
		recs, ended, err := m.r.next(ctx, pollRecords)
		switch {
		case errors.Is(err, io.EOF):
			return m.drain()
		case err != nil && ctx.Err() != nil && m.cfg.Follow:
			// Following ends when the caller stops it or To has
			// passed; what was fetched is still passed on.
			return m.drain()
		case err != nil:
			return err
		}
		for _, p := range ended {
			if pq := m.parts[p]; pq != nil {
				pq.done = true
			}
		}
		m.stats.Scanned += int64(len(recs))
		for _, ev := range decodeAll(recs, m.cfg.Decode) {
			m.place(ev)
		}
		if err := m.emit(); err != nil {
			return err
		}
		if m.cfg.Progress != nil {
			m.cfg.Progress(min(m.stats.Scanned, m.total), m.total)
		}
	}
}

// pollRecords is how many records Read takes from the client at a time.
const pollRecords = 8192

// readBounds returns, per partition, the offset to start at and the offset to
// stop before (the end of the log, or the first record stamped after
// To+Slack).
func readBounds(ctx context.Context, cfg ReadConfig) (starts, stops map[int32]int64, err error) {
	cl, err := newClient(cfg.Brokers, "seckill-reader")
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	partitions, err := topicPartitions(ctx, cl, cfg.Topic)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Key != "" {
		partitions = []int32{PartitionOf(cfg.Key, len(partitions))}
	}
	if starts, err = listOffsets(ctx, cl, cfg.Topic, partitions, -2); err != nil {
		return nil, nil, fmt.Errorf("start offsets: %w", err)
	}
	ends, err := listOffsets(ctx, cl, cfg.Topic, partitions, -1)
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets: %w", err)
	}
	at := func(t time.Time) (map[int32]int64, error) {
		return offsetsForTime(ctx, cl, cfg, partitions, starts, ends, t)
	}
	stops = ends
	if !cfg.From.IsZero() {
		from, err := at(cfg.From.Add(-cfg.Slack))
		if err != nil {
			return nil, nil, err
		}
		for p := range starts {
			starts[p] = max(starts[p], from[p])
		}
	}
	if !cfg.To.IsZero() && !cfg.Follow {
		if stops, err = at(cfg.To.Add(cfg.Slack)); err != nil {
			return nil, nil, err
		}
	}
	return starts, stops, nil
}

// merge holds the partitions' records between polls and passes them on in
// time order.
type merge struct {
	total int64 // records of the range, for Progress
	cfg   ReadConfig
	fn    func(Event) error
	stats *ReadStats
	r     *rangeReader
	// parts are the partitions still being caught up (up to their stop
	// offset), merged by time.
	parts map[int32]*partQueue
	// live holds, per partition, events past the stop offsets while
	// Following: they are passed once every partition has caught up.
	live map[int32][]Event
	ro   *reorder
}

type partQueue struct {
	stop   int64   // the first offset not part of the catch-up
	queue  []Event // in log order, from queue[first]
	first  int
	done   bool // every record below stop was fetched
	paused bool
}

func (q *partQueue) len() int      { return len(q.queue) - q.first }
func (q *partQueue) head() *Event  { return &q.queue[q.first] }
func (q *partQueue) push(ev Event) { q.queue = append(q.queue, ev) }

// pop drops the head. The passed events' room is reclaimed once it is half
// the slice, so a queue holds about twice what it buffers, not all it ever
// held.
func (q *partQueue) pop() {
	q.queue[q.first] = Event{}
	q.first++
	switch n := q.len(); {
	case n == 0:
		q.queue, q.first = q.queue[:0], 0
	case q.first >= 1024 && q.first >= n:
		copy(q.queue, q.queue[q.first:])
		clear(q.queue[n:])
		q.queue, q.first = q.queue[:n], 0
	}
}

func (m *merge) catchingUp() bool { return len(m.parts) > 0 }

// place queues one decoded event of the range.
func (m *merge) place(ev Event) {
	if t := ev.Time(); t.Before(m.cfg.From) || !m.cfg.To.IsZero() && !t.Before(m.cfg.To) {
		return
	}
	pq := m.parts[ev.Partition]
	if pq == nil || ev.Offset >= pq.stop {
		// Past the catch-up: a live event (Follow).
		m.live[ev.Partition] = append(m.live[ev.Partition], ev)
		return
	}
	pq.push(ev)
}

// decodeAll decodes records into events, spread over every core: JSON
// decoding is what a replay spends its time on.
func decodeAll(recs []Record, payload bool) []Event {
	out := make([]Event, len(recs))
	decode := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ev := Event{Record: recs[i]}
			rec := &ev.Record
			ev.Envelope, ev.Err = domain.DecodeEnvelope(rec.Value)
			if payload && ev.Err == nil {
				ev.Decoded, ev.Err = domain.DecodePayload(&ev.Envelope)
			}
			out[i] = ev
		}
	}
	parallel(len(recs), decode)
	return out
}

// parallel runs fn over [0, n) in one chunk per core; small inputs run inline.
func parallel(n int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < 256 || workers == 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, min(lo+chunk, n))
		}()
	}
	wg.Wait()
}

// emit passes on every event whose turn has come: while catching up, the
// earliest head of the partitions as long as every partition still being read
// has a head; afterwards, everything that arrived.
func (m *merge) emit() error {
	for len(m.parts) > 0 {
		var (
			best    int32
			bestEv  *Event
			blocked bool
		)
		for p, pq := range m.parts {
			if pq.len() == 0 {
				if pq.done {
					delete(m.parts, p)
					continue
				}
				// Its next record may be the earliest of all.
				blocked = true
				break
			}
			if h := pq.head(); bestEv == nil || before(h, bestEv) {
				best, bestEv = p, h
			}
		}
		if blocked || bestEv == nil {
			break
		}
		pq := m.parts[best]
		ev := *bestEv
		pq.pop()
		if err := m.pass(ev); err != nil {
			return err
		}
	}
	m.throttle()
	if len(m.parts) == 0 {
		return m.flushLive()
	}
	return nil
}

// throttle pauses a partition that has buffered MaxBuffered records while
// another holds up the merge, and resumes it once it has drained to half, so
// memory stays bounded however uneven the partitions are.
func (m *merge) throttle() {
	var pause, resume []int32
	for p, pq := range m.parts {
		switch n := pq.len(); {
		case !pq.paused && !pq.done && n >= m.cfg.MaxBuffered:
			pq.paused = true
			pause = append(pause, p)
		case pq.paused && !pq.done && n <= m.cfg.MaxBuffered/2:
			pq.paused = false
			resume = append(resume, p)
		}
	}
	m.r.pause(pause)
	m.r.resume(resume)
}

// flushLive passes what arrived after the catch-up: the partitions merged by
// time, each in its log order.
func (m *merge) flushLive() error {
	for len(m.live) > 0 {
		var best int32 = -1
		for p, q := range m.live {
			if len(q) == 0 {
				delete(m.live, p)
				continue
			}
			if best < 0 || before(&q[0], &m.live[best][0]) {
				best = p
			}
		}
		if best < 0 {
			break
		}
		ev := m.live[best][0]
		m.live[best] = m.live[best][1:]
		if err := m.pass(ev); err != nil {
			return err
		}
	}
	// Nothing is held back once everything fetched is passed: the caught-up
	// end of a read, or one poll of a follow.
	return m.ro.flush(m.deliver)
}

// drain passes every event held, as if every partition were read to its end.
func (m *merge) drain() error {
	for _, pq := range m.parts {
		pq.done = true
	}
	if err := m.emit(); err != nil {
		return err
	}
	return m.flushLive()
}

// pass hands ev to the reorder window, which delivers what falls out of it.
func (m *merge) pass(ev Event) error { return m.ro.push(ev, m.deliver) }

func (m *merge) deliver(ev Event) error {
	m.stats.Passed++
	return m.fn(ev)
}

// reorder holds up to window events in a min-heap by (key, arrival). An
// event's key is its time, raised to the key of the previous held event of
// its aggregate, so an aggregate's events (which arrive in log order) leave
// in log order even if a clock put one of them earlier.
type reorder struct {
	window int
	heap   []held
	seq    uint64
	last   map[string]*aggKey // aggregate → its latest key while it has held events
}

type held struct {
	ev  Event
	key time.Time
	seq uint64
}

type aggKey struct {
	key  time.Time
	held int
}

func (r *reorder) push(ev Event, out func(Event) error) error {
	key := ev.Time()
	agg := ev.Envelope.AggregateID
	if agg != "" {
		if l := r.last[agg]; l != nil {
			if l.key.After(key) {
				key = l.key
			}
			l.key = key
			l.held++
		} else {
			r.last[agg] = &aggKey{key: key, held: 1}
		}
	}
	r.seq++
	r.heap = append(r.heap, held{ev: ev, key: key, seq: r.seq})
	r.up(len(r.heap) - 1)
	if len(r.heap) > r.window-1 {
		return out(r.pop())
	}
	return nil
}

func (r *reorder) flush(out func(Event) error) error {
	for len(r.heap) > 0 {
		if err := out(r.pop()); err != nil {
			return err
		}
	}
	return nil
}

func (r *reorder) less(i, j int) bool {
	if c := r.heap[i].key.Compare(r.heap[j].key); c != 0 {
		return c < 0
	}
	return r.heap[i].seq < r.heap[j].seq
}

func (r *reorder) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !r.less(i, p) {
			return
		}
		r.heap[i], r.heap[p] = r.heap[p], r.heap[i]
		i = p
	}
}

func (r *reorder) pop() Event {
	h := r.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = held{}
	r.heap = h[:n]
	for i := 0; ; {
		l, c := 2*i+1, i
		if l < n && r.less(l, c) {
			c = l
		}
		if l+1 < n && r.less(l+1, c) {
			c = l + 1
		}
		if c == i {
			break
		}
		r.heap[i], r.heap[c] = r.heap[c], r.heap[i]
		i = c
	}
	if agg := top.ev.Envelope.AggregateID; agg != "" {
		if l := r.last[agg]; l != nil {
			if l.held--; l.held == 0 {
				delete(r.last, agg)
			}
		}
	}
	return top.ev
}

// before orders events by time, then partition and offset, so the output is
// deterministic for a given log.
func before(a, b *Event) bool {
	if c := a.Time().Compare(b.Time()); c != 0 {
		return c < 0
	}
	if a.Partition != b.Partition {
		return a.Partition < b.Partition
	}
	return a.Offset < b.Offset
}
