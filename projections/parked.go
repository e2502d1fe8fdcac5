package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// Errors of DeadLetters.
var (
	ErrLetterNotFound = errors.New("no such dead letter")
	ErrLetterClosed   = errors.New("dead letter already resolved or discarded")
)

// Letter is one dead letter of a projection.
type Letter struct {
	ID         int64      `json:"id"`
	Projection string     `json:"projection"`
	Topic      string     `json:"topic"`
	Partition  int32      `json:"partition"`
	Offset     int64      `json:"offset"`
	EventID    string     `json:"event_id"`
	Aggregate  string     `json:"aggregate"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason"`
	CreatedAt  time.Time  `json:"created_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Payload is the record's value (the envelope), by Get only.
	Payload []byte `json:"payload,omitempty"`
}

// RetryResult says what a Retry or Discard did with an aggregate's letters.
type RetryResult struct {
	// Applied are the letters applied, in log order (resolved now).
	Applied []int64 `json:"applied"`
	// Discarded is the letter given up on (Discard only).
	Discarded int64 `json:"discarded,omitempty"`
	// Parked is the letter that failed again and now holds the rest (0
	// when every letter of the aggregate was resolved); Reason says why.
	Parked int64  `json:"parked,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Held is how many letters still wait behind Parked.
	Held int `json:"held"`
}

// DeadLetters is the operator's view of one projection's dead letters:
// list, show, retry (through the projection's normal Apply), discard.
type DeadLetters struct {
	pool  *pgxpool.Pool
	proj  Projection
	table string
}

// NewDeadLetters returns the dead letters of proj in table (of pool, the
// projection's own database; DefaultDeadLetterTable if empty).
func NewDeadLetters(pool *pgxpool.Pool, proj Projection, table string) (*DeadLetters, error) {
	if table == "" {
		table = DefaultDeadLetterTable
	}
	t, err := ParseTable(table)
	if err != nil {
		return nil, err
	}
	if pool == nil || proj == nil {
		return nil, errors.New("new dead letters: nil pool or projection")
	}
	return &DeadLetters{pool: pool, proj: proj, table: string(t)}, nil
}

// Projection is the name of the projection whose letters these are.
func (d *DeadLetters) Projection() string { return d.proj.Name() }

const letterColumns = `id, projection, topic, "partition", "offset", event_id, aggregate, status, reason, created_at, resolved_at`

func scanLetter(row pgx.Row, payload bool) (Letter, error) {
	var l Letter
	dst := []any{&l.ID, &l.Projection, &l.Topic, &l.Partition, &l.Offset, &l.EventID, &l.Aggregate, &l.Status, &l.Reason, &l.CreatedAt, &l.ResolvedAt}
	if payload {
		dst = append(dst, &l.Payload)
	}
	err := row.Scan(dst...)
	return l, err
}

// List returns up to limit letters with status (StatusParked, StatusHeld,
// StatusResolved, StatusDiscarded; "open" for parked and held; "" for all),
// oldest first.
func (d *DeadLetters) List(ctx context.Context, status string, limit int) ([]Letter, error) {
	if limit <= 0 {
		limit = 100
	}
	statuses := []string{status}
	switch status {
	case "", "all":
		statuses = []string{StatusParked, StatusHeld, StatusResolved, StatusDiscarded}
	case "open":
		statuses = []string{StatusParked, StatusHeld}
	}
	rows, err := d.pool.Query(ctx, `SELECT `+letterColumns+` FROM `+d.table+`
		WHERE projection = $1 AND status = ANY($2) ORDER BY id LIMIT $3`, d.proj.Name(), statuses, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", d.proj.Name(), err)
	}
	defer rows.Close()
	var out []Letter
	for rows.Next() {
		l, err := scanLetter(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Get returns one letter with its payload; ErrLetterNotFound if none.
func (d *DeadLetters) Get(ctx context.Context, id int64) (Letter, error) {
	l, err := scanLetter(d.pool.QueryRow(ctx, `SELECT `+letterColumns+`, payload FROM `+d.table+`
		WHERE projection = $1 AND id = $2`, d.proj.Name(), id), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return Letter{}, ErrLetterNotFound
	}
	return l, err
}

// Retry applies the open letters of id's aggregate in log order through the
// projection's Apply, each under a savepoint, in one transaction: the
// parked one first, then those held behind it. It stops at the first that
// fails for good, which becomes the parked one (the rest stay held). A
// transient error (Postgres down) changes nothing and is returned.
func (d *DeadLetters) Retry(ctx context.Context, id int64) (RetryResult, error) {
	return d.resolve(ctx, id, false)
}

// Discard gives up on letter id (it is never applied) and retries the
// letters held behind it, as Retry does.
func (d *DeadLetters) Discard(ctx context.Context, id int64) (RetryResult, error) {
	return d.resolve(ctx, id, true)
}

func (d *DeadLetters) resolve(ctx context.Context, id int64, discard bool) (RetryResult, error) {
	var res RetryResult
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var agg, status string
		err := tx.QueryRow(ctx, `SELECT aggregate, status FROM `+d.table+` WHERE projection = $1 AND id = $2 FOR UPDATE`,
			d.proj.Name(), id).Scan(&agg, &status)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLetterNotFound
		}
		if err != nil {
			return err
		}
		if status != StatusParked && status != StatusHeld {
			return ErrLetterClosed
		}
		if discard {
			if _, err := tx.Exec(ctx, `UPDATE `+d.table+` SET status = $3, resolved_at = now() WHERE projection = $1 AND id = $2`,
				d.proj.Name(), id, StatusDiscarded); err != nil {
				return err
			}
			res.Discarded = id
		}
		if agg == "" && !discard {
			return d.applyLetters(ctx, tx, []int64{id}, &res)
		}
		// Until no open letter of the aggregate is left (or one fails):
		// a live batch may have held one more while we waited for its lock.
		for agg != "" {
			ids, err := d.openOf(ctx, tx, agg)
			if err != nil || len(ids) == 0 {
				return err
			}
			if err := d.applyLetters(ctx, tx, ids, &res); err != nil || res.Parked != 0 {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return RetryResult{}, fmt.Errorf("dead letter %s/%d: %w", d.proj.Name(), id, err)
	}
	return res, nil
}

// openOf locks and returns the open letters of agg in log order.
func (d *DeadLetters) openOf(ctx context.Context, tx pgx.Tx, agg string) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT id FROM `+d.table+` WHERE projection = $1 AND aggregate = $2
		AND status IN ('parked', 'held') ORDER BY "partition", "offset" FOR UPDATE`, d.proj.Name(), agg)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// applyLetters applies the letters ids in order until one fails for good.
func (d *DeadLetters) applyLetters(ctx context.Context, tx pgx.Tx, ids []int64, res *RetryResult) error {
	for i, id := range ids {
		var rec eventstore.Record
		if err := tx.QueryRow(ctx, `SELECT topic, "partition", "offset", payload FROM `+d.table+` WHERE id = $1`, id).
			Scan(&rec.Topic, &rec.Partition, &rec.Offset, &rec.Value); err != nil {
			return err
		}
		reason, err := d.applyOne(ctx, tx, rec)
		if err != nil {
			return err
		}
		if reason != "" {
			res.Parked, res.Reason, res.Held = id, reason, len(ids)-i-1
			_, err := tx.Exec(ctx, `UPDATE `+d.table+` SET status = 'parked', reason = $2 WHERE id = $1`, id, cleanText(reason))
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE `+d.table+` SET status = 'resolved', resolved_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		res.Applied = append(res.Applied, id)
	}
	return nil
}

// applyOne applies one record under a savepoint; a non-empty reason when
// the projection rejects it for good.
func (d *DeadLetters) applyOne(ctx context.Context, tx pgx.Tx, rec eventstore.Record) (string, error) {
	env, ev, err := domain.Decode(rec.Value)
	if err != nil {
		return err.Error(), nil
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("savepoint: %w", err)
	}
	err = d.proj.Apply(ctx, sp, []Event{{Envelope: env, Event: ev, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}})
	if err != nil {
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return "", fmt.Errorf("rollback to savepoint: %w", rbErr)
		}
		if permanent(err) {
			return err.Error(), nil
		}
		return "", err
	}
	return "", sp.Commit(ctx)
}

// ErrUnknownProjection: no projection of that name has dead letters here.
var ErrUnknownProjection = errors.New("unknown projection")

// DeadLetterSet is the dead letters of several projections (each in its own
// database), addressed by projection name: what the CLI and the admin API use.
type DeadLetterSet []*DeadLetters

func (s DeadLetterSet) of(projection string) (*DeadLetters, error) {
	for _, d := range s {
		if d.Projection() == projection {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownProjection, projection)
}

// List lists the letters of projection ("" for every projection), as
// DeadLetters.List, each projection's oldest first.
func (s DeadLetterSet) List(ctx context.Context, projection, status string, limit int) ([]Letter, error) {
	out := []Letter{}
	for _, d := range s {
		if projection != "" && d.Projection() != projection {
			continue
		}
		ls, err := d.List(ctx, status, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	if projection != "" {
		if _, err := s.of(projection); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Get is DeadLetters.Get of projection.
func (s DeadLetterSet) Get(ctx context.Context, projection string, id int64) (Letter, error) {
	d, err := s.of(projection)
	if err != nil {
		return Letter{}, err
	}
	return d.Get(ctx, id)
}

// Retry is DeadLetters.Retry of projection.
func (s DeadLetterSet) Retry(ctx context.Context, projection string, id int64) (RetryResult, error) {
	d, err := s.of(projection)
	if err != nil {
		return RetryResult{}, err
	}
	return d.Retry(ctx, id)
}

// Discard is DeadLetters.Discard of projection.
func (s DeadLetterSet) Discard(ctx context.Context, projection string, id int64) (RetryResult, error) {
	d, err := s.of(projection)
	if err != nil {
		return RetryResult{}, err
	}
	return d.Discard(ctx, id)
}
