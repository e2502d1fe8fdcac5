package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/seckill/seckill/domain"
)

// Query selects events of the log for analysts: a time range (see ReadConfig)
// and filters that must all hold.
type Query struct {
	// From and To bound the time the events occurred, [From, To); zero is
	// unbounded.
	From, To time.Time
	// Types keeps events of these types only; empty keeps all.
	Types []string
	// SaleID, OrderID and UserID keep events about that sale, order or user
	// only (domain.RefsOf; StockReleased names no user, so a user filter
	// leaves it out).
	SaleID, OrderID, UserID string
	// Follow keeps reading new events after the end of the log (ReadConfig.Follow).
	Follow bool
	// Slack: ReadConfig.Slack.
	Slack time.Duration
	// SkipUndecodable passes over records this build cannot decode (not an
	// envelope, an unknown type, a newer schema version), counting them in
	// QueryStats.Skipped, instead of stopping with an error.
	SkipUndecodable bool
	// Progress: ReadConfig.Progress.
	Progress func(scanned, total int64)
}

// Validate reports every field that is wrong, joined.
func (q Query) Validate() error {
	var errs []error
	for _, t := range q.Types {
		if _, ok := domain.CurrentVersion(t); !ok {
			errs = append(errs, fmt.Errorf("unknown event type %q (known: %v)", t, domain.EventTypes()))
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		errs = append(errs, errors.New("to must be after from"))
	}
	if q.Slack < 0 {
		errs = append(errs, errors.New("slack must not be negative"))
	}
	return errors.Join(errs...)
}

// match reports whether the decoded event passes the filters.
func (q Query) match(env domain.Envelope, ev domain.Event) bool {
	if len(q.Types) > 0 && !slices.Contains(q.Types, env.Type) {
		return false
	}
	if q.SaleID == "" && q.OrderID == "" && q.UserID == "" {
		return true
	}
	r := domain.RefsOf(ev)
	return (q.SaleID == "" || r.SaleID == q.SaleID) &&
		(q.OrderID == "" || r.OrderID == q.OrderID) &&
		(q.UserID == "" || r.UserID == q.UserID)
}

// QueryStats counts what a query did.
type QueryStats struct {
	ReadStats
	// Matched is the number of events passed to fn.
	Matched int64
	// Skipped is the number of records passed over as undecodable.
	Skipped int64
}

// Log is the event log read directly, for analysts and tools.
type Log struct {
	brokers []string
	topic   string
}

// LogConfig configures a Log.
type LogConfig struct {
	// Brokers are the seed brokers. Required.
	Brokers []string
	// Topic is the log's topic. Default DefaultTopic.
	Topic string
}

// Validate reports every field that is wrong, joined.
func (c LogConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("no brokers")
	}
	return nil
}

// NewLog returns the log of cfg. It connects on each query.
func NewLog(cfg LogConfig) (*Log, error) {
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new log: %w", err)
	}
	return &Log{brokers: cfg.Brokers, topic: cfg.Topic}, nil
}

// Events calls fn with every event that matches q, decoded and upcast to the
// current schema (Event.Decoded, Event.Envelope), in the order Read gives
// (by time). A record that cannot be decoded stops the query with an error
// naming it, unless q.SkipUndecodable. An error from fn stops the query and is
// returned unwrapped.
func (l *Log) Events(ctx context.Context, q Query, fn func(Event) error) (QueryStats, error) {
	var st QueryStats
	if err := q.Validate(); err != nil {
		return st, fmt.Errorf("query log: %w", err)
	}
	cfg := ReadConfig{
		Brokers: l.brokers, Topic: l.topic, From: q.From, To: q.To, Slack: q.Slack, Follow: q.Follow, Decode: true,
		Progress: q.Progress,
	}
	switch {
	case q.OrderID != "":
		// Every event of an order is keyed by it: one partition holds them.
		cfg.Key = q.OrderID
	case q.SaleID != "" && !q.Follow:
		// A sale's orders are spread over every partition, but they all
		// occur within the sale's life: find it in the sale's partition
		// (SaleCreated and SaleEnded are keyed by the sale), then read only
		// that range of every partition.
		from, to, scanned, err := l.saleWindow(ctx, q)
		st.Scanned += scanned
		if err != nil {
			return st, err
		}
		cfg.From, cfg.To = from, to
		if !cfg.From.IsZero() && !cfg.To.IsZero() && !cfg.To.After(cfg.From) {
			return st, nil // the sale's life and the query's range do not meet
		}
	}
	rs, err := Read(ctx, cfg, func(e Event) error {
		if e.Err != nil {
			if q.SkipUndecodable {
				st.Skipped++
				return nil
			}
			return fmt.Errorf("record %d@%d: %w", e.Partition, e.Offset, e.Err)
		}
		if !q.match(e.Envelope, e.Decoded) {
			return nil
		}
		st.Matched++
		return fn(e)
	})
	rs.Scanned += st.Scanned
	st.ReadStats = rs
	return st, err
}

// saleLateness is how long after the end of a sale's window (plus its time to
// pay) its last events may occur: the sweeper expires reservations and
// closes the sale within seconds, and a relay that was down delays nothing
// here (occurred_at is the gate's time). An hour is generous.
const saleLateness = time.Hour

// saleWindow returns q's range narrowed to the life of q's sale: from its
// SaleCreated to the end of its window (or its SaleEnded, if later) plus its
// time to pay and saleLateness. It reads
// the sale's partition only (and within q's range). A sale it does not find
// gives q's own range.
func (l *Log) saleWindow(ctx context.Context, q Query) (from, to time.Time, scanned int64, err error) {
	var created *domain.SaleCreated
	var createdAt, endedAt time.Time
	rs, err := Read(ctx, ReadConfig{Brokers: l.brokers, Topic: l.topic, From: q.From, To: q.To, Slack: q.Slack, Key: q.SaleID},
		func(e Event) error {
			if e.Err != nil || e.Envelope.AggregateID != q.SaleID {
				return nil
			}
			switch e.Envelope.Type {
			case domain.TypeSaleCreated:
				_, ev, err := domain.Decode(e.Value)
				if sc, ok := ev.(domain.SaleCreated); err == nil && ok {
					created, createdAt = &sc, e.Envelope.OccurredAt
				}
			case domain.TypeSaleEnded:
				endedAt = e.Envelope.OccurredAt
			}
			return nil
		})
	if err != nil || created == nil {
		return q.From, q.To, rs.Scanned, err
	}
	// No purchase after the window's end (or the early end), no expiry
	// after the last pay-by: the sale's events lie before this.
	end := created.EndsAt
	if endedAt.After(end) {
		end = endedAt
	}
	from, to = createdAt, q.To
	if last := end.Add(created.PayWithin() + saleLateness); to.IsZero() || last.Before(to) {
		to = last
	}
	if q.From.After(from) {
		from = q.From
	}
	return from, to, rs.Scanned, nil
}

// Export formats.
const (
	// FormatJSONL is one JSON object per line: the envelope (upcast to the
	// current schema) plus "partition" and "offset". Each line is itself a
	// valid envelope for domain.Decode.
	FormatJSONL = "jsonl"
	// FormatCSV is a header and one row per event: CSVHeader.
	FormatCSV = "csv"
)

// CSVHeader are the columns of FormatCSV. quantity is the units the event
// moves (for SaleCreated the stock, for SaleEnded the unsold pool); payload is
// the event's JSON at the current schema version; correlation_id and
// causation_id are the envelope's metadata (empty before envelope v2).
var CSVHeader = []string{"occurred_at", "type", "id", "aggregate_id", "sale_id", "order_id", "user_id",
	"quantity", "partition", "offset", "payload", "correlation_id", "causation_id"}

// EntryWriter writes events in one export format. Writes are buffered:
// Flush sends them on.
type EntryWriter interface {
	Write(e Event) error
	Flush() error
}

// NewEntryWriter returns a writer of format (FormatJSONL or FormatCSV) to w.
func NewEntryWriter(w io.Writer, format string) (EntryWriter, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch format {
	case FormatJSONL, "ndjson", "":
		return &jsonlWriter{w: bw}, nil
	case FormatCSV:
		return &csvWriter{w: bw, c: csv.NewWriter(bw)}, nil
	}
	return nil, fmt.Errorf("unknown format %q (want %s or %s)", format, FormatJSONL, FormatCSV)
}

type jsonlWriter struct {
	w   *bufio.Writer
	buf []byte
}

// Write writes the envelope's fields, then "partition" and "offset", as one
// line: what json.Marshal of the envelope embedded in a struct with those two
// fields gives, written by hand because an export of a long log spends most
// of its time encoding, and the envelope's payload is JSON already.
func (j *jsonlWriter) Write(e Event) error {
	env := e.Envelope
	b := append(j.buf[:0], `{"id":`...)
	b = appendJSONString(b, env.ID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, env.Type)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(env.Version), 10)
	if env.EnvelopeVersion != 0 {
		b = append(b, `,"envelope":`...)
		b = strconv.AppendInt(b, int64(env.EnvelopeVersion), 10)
	}
	b = append(b, `,"occurred_at":"`...)
	b = env.OccurredAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","aggregate_id":`...)
	b = appendJSONString(b, env.AggregateID)
	if !env.Metadata.IsZero() {
		b = append(b, `,"metadata":`...)
		b = env.Metadata.AppendJSON(b)
	}
	b = append(b, `,"payload":`...)
	if bytes.ContainsAny(env.Payload, "\n\r\t ") {
		// Not as json.Marshal writes it (another producer): compact it,
		// since a line must stay one line.
		var c bytes.Buffer
		if err := json.Compact(&c, env.Payload); err != nil {
			return fmt.Errorf("encode %s: %w", env.ID, err)
		}
		b = append(b, c.Bytes()...)
	} else {
		b = append(b, env.Payload...)
	}
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(e.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	b = append(b, "}\n"...)
	j.buf = b
	if _, err := j.w.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// appendJSONString appends s as a JSON string. Ids and types are plain ASCII;
// anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func (j *jsonlWriter) Flush() error { return j.w.Flush() }

type csvWriter struct {
	w      *bufio.Writer
	c      *csv.Writer
	header bool
}

func (c *csvWriter) Write(e Event) error {
	if !c.header {
		c.header = true
		if err := c.c.Write(CSVHeader); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	r := domain.RefsOf(e.Decoded)
	env := e.Envelope
	err := c.c.Write([]string{
		env.OccurredAt.UTC().Format(time.RFC3339Nano), env.Type, env.ID, env.AggregateID,
		r.SaleID, r.OrderID, r.UserID, strconv.FormatInt(r.Quantity, 10),
		strconv.FormatInt(int64(e.Partition), 10), strconv.FormatInt(e.Offset, 10), string(env.Payload),
		env.Metadata.CorrelationID, env.Metadata.CausationID,
	})
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// Flush writes the header even when no row was written, so an empty export
// is still a CSV file with its columns.
func (c *csvWriter) Flush() error {
	if !c.header {
		c.header = true
		if err := c.c.Write(CSVHeader); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	c.c.Flush()
	if err := c.c.Error(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return c.w.Flush()
}
