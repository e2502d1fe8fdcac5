package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is one record of the log as the readers return it. Value is the
// envelope JSON (domain.Decode), Key its aggregate id.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
}

// ReadRange reads the records of topic from offset from[p] (inclusive) to
// to[p] (exclusive) of each partition p in to, directly: in no consumer group,
// so nothing is committed and no group's position moves. It passes them to fn
// in batches as they are fetched: a batch holds records of several
// partitions, each partition's in offset order. fn is called from one
// goroutine and must not keep the slice; an error from it stops the read and
// is returned as is. A partition missing from from is read from its start.
//
// It is the one reader of the log: rebuilds, folds (FoldLog), audits and
// restores, and the analysts' time-ordered reads (Read) stand on it.
func ReadRange(ctx context.Context, brokers []string, topic string, from, to map[int32]int64, fn func([]Record) error) error {
	return readRange(ctx, brokers, topic, from, to, bulkFetch, fn)
}

// readRange is ReadRange with a fetch size.
func readRange(ctx context.Context, brokers []string, topic string, from, to map[int32]int64, size fetchSize, fn func([]Record) error) error {
	r, err := openRange(brokers, topic, from, to, false, size)
	if err != nil {
		return err
	}
	defer r.close()
	var st *stepper
	if size.inStep > 0 {
		st = &stepper{r: r, step: size.inStep, last: map[int32]time.Time{}, paused: map[int32]bool{}}
	}
	for {
		recs, _, err := r.next(ctx, 0)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if st != nil {
			st.saw(recs)
		}
		if len(recs) > 0 {
			if err := fn(recs); err != nil {
				return err
			}
		}
	}
}

// ReadAll reads topic from the first record of every partition up to its end
// offset as of the call (ReadRange over ReadOffsets), then returns nil.
// Records of one partition come in offset order; partitions interleave. fn is
// called from one goroutine; an error from it stops the read and is returned
// unwrapped.
func ReadAll(ctx context.Context, brokers []string, topic string, fn func(rec Record) error) error {
	offs, err := ReadOffsets(ctx, brokers, topic)
	if err != nil {
		return err
	}
	return ReadRange(ctx, brokers, topic, offs.Starts, offs.Ends, func(recs []Record) error {
		for _, rec := range recs {
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecordTimes returns the timestamp of the first record at or after offset
// at[p] (and below ends[p]) of each partition p, for the partitions that
// answer within ctx: a partition whose records there are all transaction
// markers, or gone, is left out.
func RecordTimes(ctx context.Context, brokers []string, topic string, at, ends map[int32]int64) (map[int32]time.Time, error) {
	out := make(map[int32]time.Time, len(at))
	to := make(map[int32]int64, len(at))
	for p := range at {
		to[p] = ends[p]
	}
	r, err := openRange(brokers, topic, at, to, false, probeFetch)
	if err != nil {
		return nil, err
	}
	defer r.close()
	for len(out) < len(at) {
		recs, _, err := r.next(ctx, 0)
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			break
		}
		if err != nil {
			return nil, err
		}
		var found []int32
		for _, rec := range recs {
			if _, done := out[rec.Partition]; !done {
				out[rec.Partition] = rec.Timestamp
				found = append(found, rec.Partition)
			}
		}
		// One record per partition is all we want.
		r.pause(found)
	}
	return out, nil
}

// fetchSize is how much a reader asks the broker for at a time; zero fields
// keep franz-go's defaults.
type fetchSize struct {
	maxBytes, partitionBytes int32
	maxWait                  time.Duration
	// inStep, if set, keeps the partitions in step by time (stepper).
	inStep time.Duration
}

// stepper keeps the partitions of a range read in step by time: a partition
// whose last record read is stamped more than step after that of the
// partition furthest behind (still below its end; one not read from yet
// counts as furthest behind) is paused until that one catches up. Left to
// itself the broker serves a few partitions at a time, and a fold then reads
// some partitions months ahead of others: it cannot tell a sale closed until
// every partition has passed it, so it held the whole history in memory
// (issue 16). The records a fetch brings are all used; a paused partition
// only loses the fetch buffered for it, which is read again on resume.
type stepper struct {
	r      *rangeReader
	step   time.Duration
	last   map[int32]time.Time // partition → stamp of its last record read
	paused map[int32]bool
}

func (s *stepper) saw(recs []Record) {
	for _, rec := range recs {
		if rec.Timestamp.After(s.last[rec.Partition]) {
			s.last[rec.Partition] = rec.Timestamp
		}
	}
	var behind time.Time
	first := true
	for p := range s.r.ends {
		if t := s.last[p]; first || t.Before(behind) {
			behind, first = t, false
		}
	}
	var pause, resume []int32
	for p := range s.r.ends {
		ahead := s.last[p].Sub(behind) > s.step
		switch {
		case ahead && !s.paused[p]:
			pause = append(pause, p)
		case !ahead && s.paused[p]:
			resume = append(resume, p)
		}
		s.paused[p] = ahead
	}
	s.r.pause(pause)
	s.r.resume(resume)
}

var (
	// bulkFetch is for replays (rebuild): throughput, not latency, but
	// sizes count compressed bytes and the log's JSON decompresses ~8×:
	// franz-go holds the fetch being worked through and one more, and a
	// rebuild queues a few per worker (64 MiB fetches: 1.1 GB RSS in a
	// 1M-event rebuild).
	bulkFetch = fetchSize{maxBytes: 8 << 20, partitionBytes: 1 << 20, maxWait: 200 * time.Millisecond}
	// foldFetch is for folds (FoldLogWith), whose memory should be the
	// fold's, not the fetches'. 16 MiB fetches held ~170 MB of
	// decompressed batches in a 1M-event fold, these ~37 MB, and were no
	// faster. The partitions are kept within an hour of each other
	// (stepper): with 2 MiB per partition a fetch brought some partitions
	// half a year ahead of others, and a snapshot fold could archive
	// nothing until the end (issue 16).
	foldFetch = fetchSize{maxBytes: 4 << 20, partitionBytes: 256 << 10, maxWait: 200 * time.Millisecond, inStep: time.Hour}
	// orderedFetch is for Read, which holds what it fetched while it merges
	// the partitions by time, and the client keeps one fetch buffered while
	// we work through the last: 16 MiB (not Kafka's 50) keeps a replay's
	// memory modest at no cost in speed on loopback or a LAN.
	orderedFetch = fetchSize{maxBytes: 16 << 20, maxWait: 500 * time.Millisecond}
	// probeFetch is for RecordTimes: one batch per partition is all a
	// probe needs.
	probeFetch = fetchSize{partitionBytes: 64 << 10, maxWait: 100 * time.Millisecond}
)

// rangeReader reads a range of the log directly, in no consumer group: from
// from[p] (inclusive) to to[p] (exclusive) of each partition p in to. With
// follow it goes on reading every partition of to past its end (from from[p]
// where that is at or past the end already), as records arrive.
type rangeReader struct {
	cl     *kgo.Client // nil when there is nothing to read
	topic  string
	follow bool
	ends   map[int32]int64 // partitions still below their end → the end
}

func openRange(brokers []string, topic string, from, to map[int32]int64, follow bool, size fetchSize) (*rangeReader, error) {
	r := &rangeReader{topic: topic, follow: follow, ends: map[int32]int64{}}
	parts := map[int32]kgo.Offset{}
	for p, end := range to {
		start := from[p] // a partition missing from from: its start
		if start < end {
			r.ends[p] = end
		}
		if start < end || follow {
			parts[p] = kgo.NewOffset().At(start)
		}
	}
	if len(parts) == 0 {
		return r, nil
	}
	opts := []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		// Records below the start can be gone if retention deleted them
		// since the offsets were listed: continue from the new start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Transaction markers take offsets too; we must see them to know
		// when a partition whose last offsets are markers is done.
		kgo.KeepControlRecords(),
	}
	if size.maxBytes > 0 {
		opts = append(opts, kgo.FetchMaxBytes(size.maxBytes))
	}
	if size.partitionBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(size.partitionBytes))
	}
	if size.maxWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(size.maxWait))
	}
	cl, err := newClient(brokers, "seckill-reader", opts...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	r.cl = cl
	return r, nil
}

// next polls up to max records (max <= 0: what one fetch brings) and returns
// the data records of the range among them, each partition's in offset
// order, and the partitions that reached their end with this poll (without
// follow they are paused: what comes after is not ours to read). It returns
// io.EOF once every partition has reached its end, which with follow never
// happens; ctx ending is an error.
func (r *rangeReader) next(ctx context.Context, max int) (recs []Record, ended []int32, err error) {
	if r.cl == nil || !r.follow && len(r.ends) == 0 {
		return nil, nil, io.EOF
	}
	var fetches kgo.Fetches
	if max > 0 {
		fetches = r.cl.PollRecords(ctx, max)
	} else {
		fetches = r.cl.PollFetches(ctx)
	}
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("read %s: %w", r.topic, context.Cause(ctx))
	}
	for _, fe := range fetches.Errors() {
		return nil, nil, fmt.Errorf("read %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
	}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		end, below := r.ends[fp.Partition]
		if !below && !r.follow {
			return // read to its end already; a fetch in flight brought more
		}
		for _, rec := range fp.Records {
			if below && !r.follow && rec.Offset >= end {
				break
			}
			if !rec.Attrs.IsControl() {
				recs = append(recs, Record{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
					Timestamp: rec.Timestamp, Key: rec.Key, Value: rec.Value})
			}
		}
		if n := len(fp.Records); below && n > 0 && fp.Records[n-1].Offset >= end-1 {
			delete(r.ends, fp.Partition)
			ended = append(ended, fp.Partition)
		}
	})
	if !r.follow {
		r.pause(ended)
	}
	return recs, ended, nil
}

// pause stops fetching partitions; resume starts again.
func (r *rangeReader) pause(parts []int32) {
	if len(parts) > 0 {
		r.cl.PauseFetchPartitions(map[string][]int32{r.topic: parts})
	}
}

func (r *rangeReader) resume(parts []int32) {
	if len(parts) > 0 {
		r.cl.ResumeFetchPartitions(map[string][]int32{r.topic: parts})
	}
}

func (r *rangeReader) close() {
	if r.cl != nil {
		r.cl.Close()
	}
}
