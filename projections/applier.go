package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// Default bookkeeping tables (migrations/00001_orders.sql).
const (
	DefaultCheckpointTable = "projection_checkpoints"
	DefaultDeadLetterTable = "projection_dead_letters"
)

// ApplierConfig configures an Applier.
type ApplierConfig struct {
	// CheckpointTable keeps the projection's position per topic partition;
	// "schema.table" is allowed. Default DefaultCheckpointTable. A rebuild
	// points it at a shadow copy so the live position is not disturbed.
	CheckpointTable string
	// DeadLetterTable receives the records the projection cannot apply.
	// Default DefaultDeadLetterTable.
	DeadLetterTable string
	// Logger receives warnings about dead letters. Default slog.Default().
	Logger *slog.Logger
	// Observe, if set, is called after every commit with the events it
	// applied (not those skipped or dead-lettered), for metrics such as the
	// lag from an event's occurrence to its read model. It must not keep
	// the slice.
	Observe func(applied []Event)
}

func (c *ApplierConfig) setDefaults() {
	if c.CheckpointTable == "" {
		c.CheckpointTable = DefaultCheckpointTable
	}
	if c.DeadLetterTable == "" {
		c.DeadLetterTable = DefaultDeadLetterTable
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field, joined.
func (c ApplierConfig) Validate() error {
	var errs []error
	if _, err := ParseTable(c.CheckpointTable); err != nil {
		errs = append(errs, fmt.Errorf("checkpoint table: %w", err))
	}
	if _, err := ParseTable(c.DeadLetterTable); err != nil {
		errs = append(errs, fmt.Errorf("dead letter table: %w", err))
	}
	return errors.Join(errs...)
}

// Applier applies batches of log records to one projection with exactly-once
// effect: in one transaction it locks the projection's checkpoints of the
// partitions in the batch, skips every record at or below them, decodes the
// rest, dead-letters what cannot be decoded, calls Projection.Apply, and moves
// the checkpoints. It is safe for concurrent use; concurrent batches touching
// the same partition serialize on the checkpoint rows.
type Applier struct {
	pool    *pgxpool.Pool
	proj    Projection
	log     *slog.Logger
	observe func([]Event)

	insertSQL, advanceSQL, deadSQL, openSQL string
}

// NewApplier returns an Applier of p writing through pool.
func NewApplier(cfg ApplierConfig, pool *pgxpool.Pool, p Projection) (*Applier, error) {
	cfg.setDefaults()
	errs := []error{cfg.Validate()}
	if pool == nil {
		errs = append(errs, errors.New("nil pool"))
	}
	if p == nil || p.Name() == "" {
		errs = append(errs, errors.New("projection without a name"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new applier: %w", err)
	}
	cp, _ := ParseTable(cfg.CheckpointTable)
	dl, _ := ParseTable(cfg.DeadLetterTable)
	return &Applier{
		pool:    pool,
		proj:    p,
		log:     cfg.Logger.With("projection", p.Name()),
		observe: cfg.Observe,
		// Rows of partitions seen for the first time are created at -1 ("nothing
		// applied") so that every partition of the batch has a row to lock.
		insertSQL: `INSERT INTO ` + string(cp) + ` (projection, topic, "partition", "offset")
			SELECT $1, u.t, u.p, -1 FROM unnest($2::text[], $3::int[]) AS u(t, p)
			ON CONFLICT DO NOTHING`,
		// advanceSQL locks the rows (FOR UPDATE, in a fixed order: a second
		// runner or a rebuild on the same partition waits here, then reads the
		// position this one committed instead of applying the same records
		// again), moves each to the highest offset of the batch, and returns
		// the positions as they were. Moving them before the events are
		// applied is safe: it all commits or nothing does. It saves the round
		// trip of a separate update.
		advanceSQL: `WITH old AS (
				SELECT topic, "partition", "offset" FROM ` + string(cp) + `
				WHERE projection = $1 AND (topic, "partition") IN (SELECT * FROM unnest($2::text[], $3::int[]))
				ORDER BY topic, "partition" FOR UPDATE)
			UPDATE ` + string(cp) + ` AS c SET "offset" = greatest(old."offset", u.o), updated_at = now()
			FROM old, unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, o)
			WHERE c.projection = $1 AND c.topic = old.topic AND c."partition" = old."partition"
				AND u.t = old.topic AND u.p = old."partition"
			RETURNING old.topic, old."partition", old."offset"`,
		deadSQL: `INSERT INTO ` + string(dl) + ` (projection, topic, "partition", "offset", event_id, reason, payload, record_key, aggregate, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (projection, topic, "partition", "offset") DO NOTHING`,
		// openSQL finds which aggregates of a batch have open (parked or
		// held) letters. FOR SHARE: a retry of one of them (which locks
		// them FOR UPDATE) either finishes first, and this sees them
		// resolved, or waits until this batch has added its held letters.
		openSQL: `SELECT aggregate FROM ` + string(dl) + `
			WHERE projection = $1 AND status IN ('parked', 'held') AND aggregate = ANY($2::text[]) FOR SHARE`,
	}, nil
}

// Projection returns the projection this Applier applies.
func (a *Applier) Projection() Projection { return a.proj }

// ApplyResult counts what one Apply did with its records.
type ApplyResult struct {
	// Applied is the number of events handed to the projection.
	Applied int
	// Skipped is the number of records at or below the checkpoint: redeliveries.
	Skipped int
	// DeadLettered is the number of records recorded as dead letters.
	DeadLettered int
}

type partKey struct {
	topic     string
	partition int32
}

type deadLetter struct {
	rec       eventstore.Record
	eventID   string
	reason    string
	aggregate string
	held      bool // kept behind a parked letter of its aggregate, not itself rejected
}

// Letter statuses (projection_dead_letters.status).
const (
	// StatusParked: the projection rejected the event; the later events of
	// its aggregate are held until it is retried or discarded.
	StatusParked = "parked"
	// StatusHeld: an event kept back because an earlier one of its
	// aggregate is parked; applied in order when that one is resolved.
	StatusHeld = "held"
	// StatusResolved: applied by a retry.
	StatusResolved = "resolved"
	// StatusDiscarded: given up on by an operator (never applied).
	StatusDiscarded = "discarded"
)

// Apply applies recs in one transaction and commits it. Records of one
// partition must come in offset order; records of different partitions may
// interleave. On error nothing is committed and the same records may be
// passed again. Errors are Postgres errors (transient: retry) or context
// errors.
func (a *Applier) Apply(ctx context.Context, recs []eventstore.Record) (ApplyResult, error) {
	if len(recs) == 0 {
		return ApplyResult{}, nil
	}
	res, err := a.applyTx(ctx, recs, false)
	if err != nil && permanent(err) {
		// Some event of the batch can never be applied. Find it by applying
		// event by event under savepoints, so the rest of the batch (and the
		// partition behind it) is not blocked forever.
		a.log.WarnContext(ctx, "projection rejected a batch; isolating the poison event", "records", len(recs), "err", err)
		res, err = a.applyTx(ctx, recs, true)
	}
	return res, err
}

func (a *Applier) applyTx(ctx context.Context, recs []eventstore.Record, isolate bool) (ApplyResult, error) {
	var res ApplyResult
	var applied []Event
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var err error
		res, applied, err = a.applyIn(ctx, tx, recs, isolate)
		return err
	})
	if err != nil {
		return ApplyResult{}, fmt.Errorf("projection %s: %w", a.proj.Name(), err)
	}
	if a.observe != nil && len(applied) > 0 {
		a.observe(applied)
	}
	return res, nil
}

// ApplyIn applies recs as Apply does, but inside tx, which the caller
// commits: the checkpoints move with whatever else tx does. A rebuild uses
// it to apply the last records to its shadow in the transaction that swaps
// the shadow in. It isolates poison under a savepoint, so tx stays usable.
// Observe is not called: nothing is committed yet.
func (a *Applier) ApplyIn(ctx context.Context, tx pgx.Tx, recs []eventstore.Record) (ApplyResult, error) {
	if len(recs) == 0 {
		return ApplyResult{}, nil
	}
	try := func(isolate bool) (ApplyResult, error) {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return ApplyResult{}, fmt.Errorf("savepoint: %w", err)
		}
		res, _, err := a.applyIn(ctx, sp, recs, isolate)
		if err != nil {
			if rbErr := sp.Rollback(ctx); rbErr != nil {
				return ApplyResult{}, fmt.Errorf("%w (rollback: %v)", err, rbErr)
			}
			return ApplyResult{}, err
		}
		return res, sp.Commit(ctx)
	}
	res, err := try(false)
	if err != nil && permanent(err) {
		res, err = try(true)
	}
	if err != nil {
		return ApplyResult{}, fmt.Errorf("projection %s: %w", a.proj.Name(), err)
	}
	return res, nil
}

// applyIn is the body of one apply inside tx: checkpoints, skip, decode,
// apply (event by event if isolate), dead letters. It returns the events
// applied.
func (a *Applier) applyIn(ctx context.Context, tx pgx.Tx, recs []eventstore.Record, isolate bool) (ApplyResult, []Event, error) {
	var res ApplyResult
	pos, err := a.advance(ctx, tx, recs)
	if err != nil {
		return res, nil, err
	}
	open, err := a.openAggregates(ctx, tx, recs)
	if err != nil {
		return res, nil, err
	}
	events := make([]Event, 0, len(recs))
	raws := make([]eventstore.Record, 0, len(recs)) // raws[i] is the record of events[i]
	var dead []deadLetter
	for _, r := range recs {
		k := partKey{r.Topic, r.Partition}
		if r.Offset <= pos[k] {
			res.Skipped++ // applied before: redelivery after a crash or rebalance
			continue
		}
		pos[k] = r.Offset
		env, ev, err := domain.Decode(r.Value)
		agg := aggregateOf(r, env)
		if open[agg] != "" {
			dead = append(dead, deadLetter{rec: r, eventID: env.ID, aggregate: agg, held: true,
				reason: "held: an earlier event of " + agg + " is parked (" + open[agg] + ")"})
			continue
		}
		if err != nil {
			dead = append(dead, deadLetter{rec: r, eventID: env.ID, aggregate: agg, reason: err.Error()})
			open.park(agg, env.ID)
			continue
		}
		events = append(events, Event{Envelope: env, Event: ev, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset})
		raws = append(raws, r)
	}
	if isolate {
		var more []deadLetter
		events, more, err = a.applyIsolated(ctx, tx, events, raws, open)
		if err != nil {
			return res, nil, err
		}
		dead = append(dead, more...)
	} else if len(events) > 0 {
		if err := a.proj.Apply(ctx, tx, events); err != nil {
			return res, nil, fmt.Errorf("apply %d events: %w", len(events), err)
		}
	}
	res.Applied, res.DeadLettered = len(events), len(dead)
	return res, events, a.deadLetters(ctx, tx, dead)
}

// advance creates, locks and moves the checkpoint rows of every partition in
// recs to the highest offset there, and returns the offsets they had before.
func (a *Applier) advance(ctx context.Context, tx pgx.Tx, recs []eventstore.Record) (map[partKey]int64, error) {
	high := map[partKey]int64{}
	var keys []partKey
	for _, r := range recs {
		k := partKey{r.Topic, r.Partition}
		o, seen := high[k]
		if !seen {
			keys = append(keys, k)
		}
		if !seen || r.Offset > o {
			high[k] = r.Offset
		}
	}
	// One order for every transaction, so that two of them creating rows for
	// the same new partitions cannot deadlock.
	slices.SortFunc(keys, func(a, b partKey) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	topics := make([]string, len(keys))
	parts := make([]int32, len(keys))
	offs := make([]int64, len(keys))
	for i, k := range keys {
		topics[i], parts[i], offs[i] = k.topic, k.partition, high[k]
	}
	name := a.proj.Name()
	b := &pgx.Batch{}
	b.Queue(a.insertSQL, name, topics, parts)
	b.Queue(a.advanceSQL, name, topics, parts, offs)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("create checkpoints: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("advance checkpoints: %w", err)
	}
	pos := make(map[partKey]int64, len(keys))
	for rows.Next() {
		var k partKey
		var off int64
		if err := rows.Scan(&k.topic, &k.partition, &off); err != nil {
			return nil, fmt.Errorf("advance checkpoints: %w", err)
		}
		pos[k] = off
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("advance checkpoints: %w", err)
	}
	if len(pos) != len(keys) {
		return nil, fmt.Errorf("advance checkpoints: found %d of %d partitions", len(pos), len(keys))
	}
	return pos, br.Close()
}

// applyIsolated applies events one by one, each under its own savepoint, and
// returns the events applied and dead letters for those rejected for good.
// An event of an aggregate parked earlier in the batch is held.
func (a *Applier) applyIsolated(ctx context.Context, tx pgx.Tx, events []Event, raws []eventstore.Record, open openSet) ([]Event, []deadLetter, error) {
	applied := events[:0:0]
	var dead []deadLetter
	for i, e := range events {
		agg := aggregateOf(raws[i], e.Envelope)
		if open[agg] != "" {
			dead = append(dead, deadLetter{rec: raws[i], eventID: e.Envelope.ID, aggregate: agg, held: true,
				reason: "held: an earlier event of " + agg + " is parked (" + open[agg] + ")"})
			continue
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("savepoint: %w", err)
		}
		if err := a.proj.Apply(ctx, sp, []Event{e}); err != nil {
			if rbErr := sp.Rollback(ctx); rbErr != nil {
				return nil, nil, fmt.Errorf("rollback to savepoint: %w", rbErr)
			}
			if !permanent(err) {
				return nil, nil, fmt.Errorf("apply %s: %w", e.Envelope.ID, err)
			}
			dead = append(dead, deadLetter{rec: raws[i], eventID: e.Envelope.ID, aggregate: agg, reason: err.Error()})
			open.park(agg, e.Envelope.ID)
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return nil, nil, fmt.Errorf("release savepoint: %w", err)
		}
		applied = append(applied, e)
	}
	return applied, dead, nil
}

// deadLetters records dead, in one round trip.
func (a *Applier) deadLetters(ctx context.Context, tx pgx.Tx, dead []deadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	name := a.proj.Name()
	b := &pgx.Batch{}
	for _, d := range dead {
		a.log.WarnContext(ctx, "dead letter", "topic", d.rec.Topic, "partition", d.rec.Partition,
			"offset", d.rec.Offset, "event_id", d.eventID, "reason", d.reason)
		status := StatusParked
		if d.held {
			status = StatusHeld
		}
		b.Queue(a.deadSQL, name, d.rec.Topic, d.rec.Partition, d.rec.Offset, cleanText(d.eventID), cleanText(d.reason),
			d.rec.Value, d.rec.Key, cleanText(d.aggregate), status)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write dead letters: %w", err)
	}
	return nil
}

// openSet maps an aggregate with an open letter to what holds it ("" for
// none). The aggregate "" (a record without a key) never holds anything.
type openSet map[string]string

func (o openSet) park(agg, eventID string) {
	if agg != "" {
		o[agg] = "event " + eventID
	}
}

// aggregateOf is the aggregate of a record: its envelope's, or its key when
// the envelope is unreadable (the relay keys records by aggregate id).
func aggregateOf(r eventstore.Record, env domain.Envelope) string {
	if env.AggregateID != "" {
		return env.AggregateID
	}
	return string(r.Key)
}

// openAggregates returns the aggregates of recs that have open letters.
func (a *Applier) openAggregates(ctx context.Context, tx pgx.Tx, recs []eventstore.Record) (openSet, error) {
	keys := make([]string, 0, len(recs))
	seen := make(map[string]struct{}, len(recs))
	for _, r := range recs {
		if _, ok := seen[string(r.Key)]; !ok && len(r.Key) > 0 {
			seen[string(r.Key)] = struct{}{}
			keys = append(keys, string(r.Key))
		}
	}
	open := openSet{}
	if len(keys) == 0 {
		return open, nil
	}
	rows, err := tx.Query(ctx, a.openSQL, a.proj.Name(), keys)
	if err != nil {
		return nil, fmt.Errorf("open dead letters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var agg string
		if err := rows.Scan(&agg); err != nil {
			return nil, fmt.Errorf("open dead letters: %w", err)
		}
		open[agg] = "an earlier dead letter"
	}
	return open, rows.Err()
}

// cleanText makes s storable as Postgres text (valid UTF-8 without NUL): a dead
// letter must never fail to be written, or the poison would block its partition.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// permanent reports whether err means "this data can never be applied" rather
// than "Postgres is unavailable right now".
func permanent(err error) bool {
	if errors.Is(err, ErrPoison) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) >= 2 {
		switch pgErr.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return true
		}
	}
	return false
}
