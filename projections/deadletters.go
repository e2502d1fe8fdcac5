package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/eventstore"
)

// Headers of a record on the dead-letter topic. Its key and value are the
// original record's.
const (
	HeaderProjection = "seckill_projection"
	HeaderReason     = "seckill_reason"
	HeaderEventID    = "seckill_event_id"
	HeaderSource     = "seckill_source" // topic/partition@offset of the original
)

// deadLetterPublisher copies dead letters from the table (where they commit
// with the checkpoint that moves past them) to the dead-letter topic, and
// marks them published: the table is an outbox, so a crash between the
// commit and the publication only delays it. Several processes may run one
// for the same projection; SKIP LOCKED keeps them off each other's rows.
type deadLetterPublisher struct {
	brokers    []string
	topic      string
	projection string
	pool       *pgxpool.Pool
	table      string
	log        *slog.Logger
	nudge      chan struct{}
}

// poke asks for a publication round soon.
func (d *deadLetterPublisher) poke() {
	select {
	case d.nudge <- struct{}{}:
	default:
	}
}

// run publishes when poked and every 30s (for letters a crash left behind),
// until ctx is done.
func (d *deadLetterPublisher) run(ctx context.Context) {
	var cl *kgo.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	backoff := time.Second
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-d.nudge:
			case <-tick.C:
			}
		}
		if cl == nil {
			var err error
			cl, err = eventstore.NewProducer(d.brokers, "seckill-dlq-"+d.projection, d.topic)
			if err != nil {
				d.log.Warn("dead-letter topic: client", "err", err)
				continue
			}
		}
		for {
			n, err := d.publish(ctx, cl)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("dead-letter topic: publish failed; will retry", "topic", d.topic, "err", err)
					d.poke()
					select {
					case <-ctx.Done():
					case <-time.After(backoff):
					}
					backoff = min(2*backoff, time.Minute)
				}
				break
			}
			backoff = time.Second
			if n == 0 {
				break
			}
		}
	}
}

// publish publishes up to 500 unpublished letters and marks them, in one
// transaction, and returns how many.
func (d *deadLetterPublisher) publish(ctx context.Context, cl *kgo.Client) (int, error) {
	t, err := ParseTable(d.table)
	if err != nil {
		return 0, err
	}
	var n int
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, topic, "partition", "offset", event_id, reason, payload, coalesce(record_key, ''::bytea)
			FROM `+string(t)+` WHERE projection = $1 AND published_at IS NULL ORDER BY id LIMIT 500
			FOR UPDATE SKIP LOCKED`, d.projection)
		if err != nil {
			return err
		}
		var ids []int64
		var recs []*kgo.Record
		for rows.Next() {
			var id int64
			var topic, eventID, reason string
			var part int32
			var off int64
			var value, key []byte
			if err := rows.Scan(&id, &topic, &part, &off, &eventID, &reason, &value, &key); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			recs = append(recs, &kgo.Record{Key: key, Value: value, Headers: []kgo.RecordHeader{
				{Key: HeaderProjection, Value: []byte(d.projection)},
				{Key: HeaderReason, Value: []byte(reason)},
				{Key: HeaderEventID, Value: []byte(eventID)},
				{Key: HeaderSource, Value: []byte(topic + "/" + strconv.Itoa(int(part)) + "@" + strconv.FormatInt(off, 10))},
			}})
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := cl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce to %s: %w", d.topic, err)
		}
		// A crash here republishes these letters: the topic is at least
		// once, keyed by the source position in HeaderSource.
		if _, err := tx.Exec(ctx, `UPDATE `+string(t)+` SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		n = len(recs)
		return nil
	})
	if err != nil {
		return 0, errors.Join(fmt.Errorf("dead letters of %s", d.projection), err)
	}
	return n, nil
}
