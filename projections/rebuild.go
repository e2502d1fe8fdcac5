package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/seckill/seckill/eventstore"
)

// ShadowSchema is the schema a rebuild of projection builds its tables in.
func ShadowSchema(projection string) string { return "rebuild_" + projection }

// RebuildConfig configures Rebuild.
type RebuildConfig struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Topic is the log's topic. Default DefaultTopic.
	Topic string
	// MaxBatch is the most records applied in one transaction. Default 16384
	// (measured: docs/projections.md).
	MaxBatch int
	// Workers is how many transactions run at once, each owning the
	// partitions p with p % Workers == its index. Default 2: one decodes and
	// builds its statements while the other waits on Postgres.
	Workers int
	// Rate caps the records applied per second (0: no cap), for a
	// projection whose database must not be flooded (daily: the everyday
	// order database).
	Rate float64
	// SwapWithin is how close to the end of the log the shadow must be
	// before the swap; the rest is applied inside the swap transaction,
	// while the live projection waits. Default 5000 records.
	SwapWithin int64
	// Resume continues a rebuild that was interrupted (its shadow schema
	// is still there) from the shadow's positions, instead of starting over.
	Resume bool
	// NoSwap builds the shadow, catches it up and stops: the live tables stay
	// as they are and the shadow schema is left for inspection. A later
	// Rebuild with Resume finishes it.
	NoSwap bool
	// LockTimeout bounds how long the swap waits for the tables' locks
	// (queries in flight) before it gives up and tries again. Default 10s.
	LockTimeout time.Duration
	// CheckpointTable and DeadLetterTable are the live projection's (see
	// ApplierConfig); the shadow has its own copies in the shadow schema.
	CheckpointTable, DeadLetterTable string
	// Progress, if set, is called every ProgressEvery (default 500ms) and
	// at each phase change, never concurrently.
	Progress      func(RebuildProgress)
	ProgressEvery time.Duration
	// Logger is the rebuild's log. Default slog.Default().
	Logger *slog.Logger
}

func (c *RebuildConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 16384
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.SwapWithin == 0 {
		c.SwapWithin = 5000
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = 10 * time.Second
	}
	if c.CheckpointTable == "" {
		c.CheckpointTable = DefaultCheckpointTable
	}
	if c.DeadLetterTable == "" {
		c.DeadLetterTable = DefaultDeadLetterTable
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 500 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field, joined.
func (c RebuildConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if c.MaxBatch < 1 || c.Workers < 1 || c.SwapWithin < 0 {
		errs = append(errs, fmt.Errorf("max batch %d and workers %d must be >= 1, swap-within %d >= 0", c.MaxBatch, c.Workers, c.SwapWithin))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %g < 0", c.Rate))
	}
	if c.LockTimeout <= 0 || c.ProgressEvery <= 0 {
		errs = append(errs, errors.New("lock timeout and progress interval must be > 0"))
	}
	errs = append(errs, ApplierConfig{CheckpointTable: c.CheckpointTable, DeadLetterTable: c.DeadLetterTable}.Validate())
	return errors.Join(errs...)
}

// Rebuild phases, as RebuildProgress reports them.
const (
	PhasePrepare = "prepare" // creating the shadow tables
	PhaseReplay  = "replay"  // applying the log from its start
	PhaseCatchUp = "catch-up"
	PhaseSwap    = "swap"
	PhaseDone    = "done"
)

// RebuildProgress is how far a rebuild is.
type RebuildProgress struct {
	Phase string
	// Done is the records applied to the shadow so far (this run); Total
	// what the current phase must reach.
	Done, Total int64
	// Rate is records per second over the phase; ETA the time left at it.
	Rate    float64
	ETA     time.Duration
	Elapsed time.Duration
	// Final marks the last report of a phase, sent as the next one starts.
	Final bool
}

// RebuildResult is what a rebuild did.
type RebuildResult struct {
	Schema string
	// Records is the records the shadow applied, skipped or dead-lettered in
	// this run; DeadLetters the records the rebuilt projection could not apply.
	Records     int64
	DeadLetters int64
	// ReplayRate is records per second of the replay phase.
	ReplayRate float64
	Duration   time.Duration
	// Swapped says whether the shadow replaced the live tables.
	Swapped bool
	// SwapPause is how long the swap transaction held the live projection.
	SwapPause time.Duration
}

// Rebuild replays the log from offset zero into shadow tables (schema
// ShadowSchema(p.Name())) while the live projection keeps serving and
// applying, then swaps them in atomically:
//
//  1. The shadow tables are created like the live ones (columns,
//     constraints and indexes with the same names), with their own
//     checkpoint and dead-letter tables.
//  2. The log is read directly (no consumer group) to its end offsets and
//     applied in big batches; then again to the new end, until the shadow is
//     within SwapWithin records of it.
//  3. One transaction locks the live projection's checkpoint rows (the live
//     runner's next batch waits there: it locks them first too), applies to
//     the shadow whatever the live projection has applied beyond it (so the
//     shadow is at or past the live position on every partition), moves the
//     live tables out and the shadow tables in (ALTER TABLE SET SCHEMA), sets
//     the live checkpoints to the shadow's positions, replaces the dead
//     letters with the shadow's, and drops the old tables. Queries see the
//     old model or the new one, never a half-built one; they wait for the
//     locks for as long as the transaction takes.
//  4. The live runner resumes on the new tables: its batch locks the
//     checkpoint rows, finds the shadow's positions, skips every record at or
//     below them, and applies the rest. Nothing is applied twice, nothing is
//     lost.
//
// Only one rebuild of a projection runs at a time (an advisory lock).
func Rebuild(ctx context.Context, cfg RebuildConfig, pool *pgxpool.Pool, p Rebuildable) (RebuildResult, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild: %w", err)
	}
	r := &rebuilder{cfg: cfg, pool: pool, live: p, schema: ShadowSchema(p.Name()), log: cfg.Logger.With("projection", p.Name()),
		pace: newPacer(cfg.Rate)}
	start := time.Now()
	res, err := r.run(ctx)
	res.Schema, res.Duration = r.schema, time.Since(start)
	if err != nil {
		return res, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	return res, nil
}

type rebuilder struct {
	cfg    RebuildConfig
	pool   *pgxpool.Pool
	live   Rebuildable
	schema string
	log    *slog.Logger
	pace   *pacer

	shadow        *Applier
	indexes       []string // CREATE INDEX statements of the shadow, run after the replay
	shadowCP      string   // the shadow's checkpoint table
	shadowDL      string
	done          atomic.Int64 // records applied this run
	dead          atomic.Int64
	progressMu    sync.Mutex
	emitMu        sync.Mutex // serializes calls of cfg.Progress
	phase         string
	phaseStart    time.Time
	phaseDoneBase int64
	phaseTotal    int64
}

func (r *rebuilder) run(ctx context.Context) (RebuildResult, error) {
	var res RebuildResult
	unlock, err := r.lock(ctx)
	if err != nil {
		return res, err
	}
	defer unlock()

	stopProgress := r.reportProgress()
	defer stopProgress()

	r.setPhase(PhasePrepare, 0)
	if err := r.prepare(ctx); err != nil {
		return res, err
	}
	offs, err := eventstore.ReadOffsets(ctx, r.cfg.Brokers, r.cfg.Topic)
	if err != nil {
		return res, err
	}
	from, err := r.shadowNext(ctx, offs)
	if err != nil {
		return res, err
	}
	r.setPhase(PhaseReplay, behind(from, offs.Ends))
	replayStart, replayBase := time.Now(), r.done.Load()
	if err := r.replay(ctx, from, offs.Ends); err != nil {
		return res, err
	}
	if d := time.Since(replayStart).Seconds(); d > 0 {
		res.ReplayRate = float64(r.done.Load()-replayBase) / d
	}
	// Live traffic kept writing while we replayed: chase the end until the
	// rest is small enough to apply inside the swap.
	for {
		offs, err = eventstore.ReadOffsets(ctx, r.cfg.Brokers, r.cfg.Topic)
		if err != nil {
			return res, err
		}
		from, err = r.shadowNext(ctx, offs)
		if err != nil {
			return res, err
		}
		n := behind(from, offs.Ends)
		if n <= r.cfg.SwapWithin {
			break
		}
		r.setPhase(PhaseCatchUp, n)
		if err := r.replay(ctx, from, offs.Ends); err != nil {
			return res, err
		}
	}
	res.Records, res.DeadLetters = r.done.Load(), r.dead.Load()
	// Secondary indexes are built once, on the full tables: faster than
	// maintaining them row by row during the replay.
	if err := r.buildIndexes(ctx); err != nil {
		return res, err
	}
	if r.cfg.NoSwap {
		r.setPhase(PhaseDone, 0)
		return res, nil
	}
	if err := r.analyze(ctx); err != nil {
		return res, err
	}
	r.setPhase(PhaseSwap, 0)
	for attempt := 1; ; attempt++ {
		pause, err := r.swap(ctx)
		if err == nil {
			res.Swapped, res.SwapPause = true, pause
			break
		}
		var pgErr *pgconn.PgError
		if attempt >= 5 || !errors.As(err, &pgErr) || pgErr.Code != "55P03" { // lock_not_available
			return res, err
		}
		r.log.Warn("swap could not take the tables' locks in time; trying again", "attempt", attempt, "err", err)
	}
	res.Records, res.DeadLetters = r.done.Load(), r.dead.Load()
	r.setPhase(PhaseDone, 0)
	return res, nil
}

// lock takes the projection's rebuild lock, on a connection of its own
// (advisory locks belong to the session), and returns its release.
func (r *rebuilder) lock(ctx context.Context) (func(), error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	key := "seckill-rebuild:" + r.live.Name()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, err
	}
	if !ok {
		conn.Release()
		return nil, fmt.Errorf("a rebuild of %s is already running", r.live.Name())
	}
	return func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key)
		conn.Release()
	}, nil
}

// liveTable is a table of the live projection, resolved to its schema.
type liveTable struct{ schema, name string }

func (t liveTable) ident() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

// resolve finds the schema of table name as the search path sees it.
func resolve(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (liveTable, error) {
	var t liveTable
	err := q.QueryRow(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)`, name).Scan(&t.schema, &t.name)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("table %s does not exist (migrations applied?)", name)
	}
	return t, err
}

// prepare creates the shadow schema and tables, or with Resume keeps the
// ones an interrupted rebuild left.
func (r *rebuilder) prepare(ctx context.Context) error {
	r.shadowCP = InSchema(r.schema, r.cfg.CheckpointTable)
	r.shadowDL = InSchema(r.schema, r.cfg.DeadLetterTable)
	sp, err := r.live.InSchema(r.schema)
	if err != nil {
		return err
	}
	if r.shadow, err = NewApplier(ApplierConfig{CheckpointTable: r.shadowCP, DeadLetterTable: r.shadowDL, Logger: r.log}, r.pool, sp); err != nil {
		return err
	}
	r.indexes = nil
	for _, name := range r.live.Tables() {
		lt, err := resolve(ctx, r.pool, name)
		if err != nil {
			return err
		}
		defs, err := indexDefs(ctx, r.pool, lt, liveTable{r.schema, lt.name})
		if err != nil {
			return err
		}
		r.indexes = append(r.indexes, defs...)
	}
	if r.cfg.Resume {
		var exists bool
		if err := r.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, r.shadowCP).Scan(&exists); err != nil {
			return err
		}
		if exists {
			r.log.Info("resuming the rebuild in its shadow schema", "schema", r.schema)
			return nil
		}
	}
	tables := append(r.live.Tables(), r.cfg.CheckpointTable, r.cfg.DeadLetterTable)
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		schema := pgx.Identifier{r.schema}.Sanitize()
		if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
			return err
		}
		for _, name := range tables {
			lt, err := resolve(ctx, tx, name)
			if err != nil {
				return err
			}
			if err := copyTable(ctx, tx, lt, liveTable{r.schema, lt.name}); err != nil {
				return fmt.Errorf("shadow of %s: %w", lt.ident(), err)
			}
		}
		return nil
	})
}

// copyTable creates to with the definition of from: columns, defaults,
// checks, identity, and the primary key and unique constraints under the
// same names; indexDefs gives the other indexes (so that after the swap the
// tables look exactly like the ones the migrations made).
func copyTable(ctx context.Context, tx pgx.Tx, from, to liveTable) error {
	if _, err := tx.Exec(ctx, `CREATE TABLE `+to.ident()+` (LIKE `+from.ident()+` INCLUDING DEFAULTS INCLUDING CONSTRAINTS
		INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)`); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname`, from.ident())
	if err != nil {
		return err
	}
	type con struct{ name, def string }
	cons, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (con, error) {
		var c con
		return c, row.Scan(&c.name, &c.def)
	})
	if err != nil {
		return err
	}
	for _, c := range cons {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+to.ident()+` ADD CONSTRAINT `+pgx.Identifier{c.name}.Sanitize()+` `+c.def); err != nil {
			return err
		}
	}
	return nil
}

// indexDefs returns the CREATE INDEX statements that give to the indexes of
// from that are not constraints (the primary key and unique constraints come
// with copyTable), under the same names.
func indexDefs(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, from, to liveTable) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
		WHERE i.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
		ORDER BY i.indexrelid`, from.ident())
	if err != nil {
		return nil, err
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(defs))
	for _, def := range defs {
		// "CREATE [UNIQUE] INDEX name ON schema.table USING ...": point it
		// at to (the index lands in to's schema under the same name), and
		// make it idempotent for a resumed rebuild.
		on := strings.Index(def, " ON ")
		using := strings.Index(def, " USING ")
		idx := strings.Index(def, "INDEX ")
		if on < 0 || using < on || idx < 0 || idx > on {
			return nil, fmt.Errorf("cannot read index definition %q", def)
		}
		out = append(out, def[:idx]+"INDEX IF NOT EXISTS "+def[idx+len("INDEX "):on]+" ON "+to.ident()+def[using:])
	}
	return out, nil
}

// buildIndexes creates the shadow's secondary indexes.
func (r *rebuilder) buildIndexes(ctx context.Context) error {
	for _, def := range r.indexes {
		if _, err := r.pool.Exec(ctx, def); err != nil {
			return fmt.Errorf("shadow index: %w", err)
		}
	}
	return nil
}

// shadowNext returns the first offset the shadow has not applied, per
// partition of offs.
func (r *rebuilder) shadowNext(ctx context.Context, offs eventstore.Offsets) (map[int32]int64, error) {
	pos, err := ReadPositions(ctx, r.pool, r.shadowCP, r.live.Name())
	if err != nil {
		return nil, err
	}
	next := map[int32]int64{}
	for p, s := range offs.Starts {
		next[p] = s
	}
	for _, p := range pos {
		if p.Topic == r.cfg.Topic {
			next[p.Partition] = max(next[p.Partition], p.Offset+1)
		}
	}
	return next, nil
}

// behind counts the records from next to ends.
func behind(next, ends map[int32]int64) int64 {
	var n int64
	for p, end := range ends {
		n += max(0, end-next[p])
	}
	return n
}

// replay applies the log from from to to into the shadow: one reader feeds
// Workers appliers, each owning a share of the partitions.
func (r *rebuilder) replay(ctx context.Context, from, to map[int32]int64) error {
	g, gctx := errgroup.WithContext(ctx)
	queues := make([]chan []eventstore.Record, r.cfg.Workers)
	for i := range queues {
		q := make(chan []eventstore.Record, 4)
		queues[i] = q
		g.Go(func() error { return r.applyQueue(gctx, q) })
	}
	g.Go(func() error {
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		return eventstore.ReadRange(gctx, r.cfg.Brokers, r.cfg.Topic, from, to, func(recs []eventstore.Record) error {
			return r.deal(gctx, recs, queues)
		})
	})
	return g.Wait()
}

// applyQueue applies the batches of q until it is closed.
func (r *rebuilder) applyQueue(ctx context.Context, q <-chan []eventstore.Record) error {
	for batch := range q {
		// Take what else is queued, up to MaxBatch: reads come in
		// fetch-sized pieces, transactions are cheaper when big.
	more:
		for len(batch) < r.cfg.MaxBatch {
			select {
			case b, ok := <-q:
				if !ok {
					break more
				}
				batch = append(batch, b...)
			default:
				break more
			}
		}
		if err := r.apply(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// deal hands recs to the queues by partition, in pieces of at most MaxBatch,
// so each partition's records stay in order on one applier.
func (r *rebuilder) deal(ctx context.Context, recs []eventstore.Record, queues []chan []eventstore.Record) error {
	shards := make([][]eventstore.Record, len(queues))
	for _, rec := range recs {
		i := int(rec.Partition) % len(queues)
		shards[i] = append(shards[i], rec)
	}
	for i, s := range shards {
		for len(s) > 0 {
			n := min(len(s), r.cfg.MaxBatch)
			select {
			case queues[i] <- s[:n:n]:
			case <-ctx.Done():
				return ctx.Err()
			}
			s = s[n:]
		}
	}
	return nil
}

// apply applies one batch to the shadow, retrying while Postgres fails.
func (r *rebuilder) apply(ctx context.Context, batch []eventstore.Record) error {
	if err := r.pace.wait(ctx, len(batch)); err != nil {
		return err
	}
	backoff := 100 * time.Millisecond
	for {
		res, err := r.shadow.Apply(ctx, batch)
		if err == nil {
			r.done.Add(int64(res.Applied + res.Skipped + res.DeadLettered))
			r.dead.Add(int64(res.DeadLettered))
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		r.log.Warn("rebuild batch failed; retrying", "records", len(batch), "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// analyze gives the planner statistics of the shadow tables before they
// serve queries.
func (r *rebuilder) analyze(ctx context.Context) error {
	for _, name := range r.live.Tables() {
		if _, err := r.pool.Exec(ctx, `ANALYZE `+pgx.Identifier{r.schema, tableName(name)}.Sanitize()); err != nil {
			return err
		}
	}
	return nil
}

// tableName is name without its schema.
func tableName(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// swap moves the shadow in, in one transaction (see Rebuild), and returns how
// long it held the live projection.
func (r *rebuilder) swap(ctx context.Context) (time.Duration, error) {
	name := r.live.Name()
	liveCP, _ := ParseTable(r.cfg.CheckpointTable)
	offs, err := eventstore.ReadOffsets(ctx, r.cfg.Brokers, r.cfg.Topic)
	if err != nil {
		return 0, err
	}
	// Rows for every partition first (committed), so that the lock below
	// also holds back a live runner on a partition it has not seen yet.
	parts := make([]int32, 0, len(offs.Ends))
	for p := range offs.Ends {
		parts = append(parts, p)
	}
	if _, err := r.pool.Exec(ctx, `INSERT INTO `+string(liveCP)+` (projection, topic, "partition", "offset")
		SELECT $1, $2, p, -1 FROM unnest($3::int[]) AS p ON CONFLICT DO NOTHING`, name, r.cfg.Topic, parts); err != nil {
		return 0, err
	}
	var start time.Time
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, r.cfg.LockTimeout.Milliseconds())); err != nil {
			return err
		}
		livePos, err := r.lockLivePositions(ctx, tx)
		if err != nil {
			return err
		}
		start = time.Now()
		if err := r.catchUpShadow(ctx, tx, offs, livePos); err != nil {
			return err
		}
		return r.moveTables(ctx, tx)
	})
	if err != nil {
		return 0, fmt.Errorf("swap: %w", err)
	}
	pause := time.Since(start)
	r.log.Info("rebuild swapped in", "schema", r.schema, "pause", pause)
	return pause, nil
}

// lockLivePositions locks the live projection's checkpoint rows and returns
// its positions. The live runner locks these rows first in each of its
// batches, so from here on it waits, and its position stays where it is.
func (r *rebuilder) lockLivePositions(ctx context.Context, tx pgx.Tx) (map[int32]int64, error) {
	liveCP, _ := ParseTable(r.cfg.CheckpointTable)
	rows, err := tx.Query(ctx, `SELECT "partition", "offset" FROM `+string(liveCP)+`
		WHERE projection = $1 AND topic = $2 ORDER BY topic, "partition" FOR UPDATE`, r.live.Name(), r.cfg.Topic)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	livePos := map[int32]int64{}
	for rows.Next() {
		var p int32
		var o int64
		if err := rows.Scan(&p, &o); err != nil {
			return nil, err
		}
		livePos[p] = o
	}
	return livePos, rows.Err()
}

// catchUpShadow applies to the shadow, in tx, what the live projection
// applied beyond it.
func (r *rebuilder) catchUpShadow(ctx context.Context, tx pgx.Tx, offs eventstore.Offsets, livePos map[int32]int64) error {
	next, err := r.shadowNext(ctx, offs)
	if err != nil {
		return err
	}
	to := map[int32]int64{}
	for p, o := range livePos {
		if o+1 > next[p] {
			to[p] = o + 1
		}
	}
	if len(to) == 0 {
		return nil
	}
	var recs []eventstore.Record
	if err := eventstore.ReadRange(ctx, r.cfg.Brokers, r.cfg.Topic, next, to, func(b []eventstore.Record) error {
		recs = append(recs, b...)
		return nil
	}); err != nil {
		return err
	}
	for len(recs) > 0 {
		n := min(len(recs), r.cfg.MaxBatch)
		res, err := r.shadow.ApplyIn(ctx, tx, recs[:n])
		if err != nil {
			return err
		}
		r.done.Add(int64(n))
		r.dead.Add(int64(res.DeadLettered))
		recs = recs[n:]
	}
	return nil
}

// moveTables moves the live tables out and the shadow tables in, makes the
// shadow's position and dead letters the live ones, and drops what is left.
func (r *rebuilder) moveTables(ctx context.Context, tx pgx.Tx) error {
	name := r.live.Name()
	retired := pgx.Identifier{fmt.Sprintf("retired_%s_%d", name, time.Now().UnixNano())}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE SCHEMA `+retired); err != nil {
		return err
	}
	for _, t := range r.live.Tables() {
		lt, err := resolve(ctx, tx, t)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE `+lt.ident()+` SET SCHEMA `+retired); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{r.schema, lt.name}.Sanitize()+` SET SCHEMA `+
			pgx.Identifier{lt.schema}.Sanitize()); err != nil {
			return err
		}
	}
	if err := r.takeOverBookkeeping(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DROP SCHEMA `+retired+` CASCADE`); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{r.schema}.Sanitize()+` CASCADE`)
	return err
}

// takeOverBookkeeping makes the shadow's checkpoints and dead letters the
// live projection's.
func (r *rebuilder) takeOverBookkeeping(ctx context.Context, tx pgx.Tx) error {
	name := r.live.Name()
	liveCP, _ := ParseTable(r.cfg.CheckpointTable)
	liveDL, _ := ParseTable(r.cfg.DeadLetterTable)
	shadowCP, _ := ParseTable(r.shadowCP)
	shadowDL, _ := ParseTable(r.shadowDL)
	// The live position becomes the shadow's (at or past it everywhere).
	if _, err := tx.Exec(ctx, `INSERT INTO `+string(liveCP)+` AS c (projection, topic, "partition", "offset")
		SELECT projection, topic, "partition", "offset" FROM `+string(shadowCP)+` WHERE projection = $1
		ON CONFLICT (projection, topic, "partition") DO UPDATE SET "offset" = EXCLUDED."offset", updated_at = now()`, name); err != nil {
		return err
	}
	// Dead letters: the rebuilt projection's. Letters both have keep their
	// row (and whether they were published); letters the rebuilt projection
	// applied fine (a fixed bug) go.
	if _, err := tx.Exec(ctx, `INSERT INTO `+string(liveDL)+` (projection, topic, "partition", "offset", event_id, reason, payload, record_key, aggregate, status, resolved_at)
		SELECT projection, topic, "partition", "offset", event_id, reason, payload, record_key, aggregate, status, resolved_at FROM `+string(shadowDL)+`
		WHERE projection = $1 ON CONFLICT (projection, topic, "partition", "offset") DO NOTHING`, name); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM `+string(liveDL)+` l WHERE l.projection = $1 AND NOT EXISTS (
		SELECT 1 FROM `+string(shadowDL)+` s WHERE s.projection = l.projection AND s.topic = l.topic
			AND s."partition" = l."partition" AND s."offset" = l."offset")`, name)
	return err
}

func (r *rebuilder) setPhase(phase string, total int64) {
	r.progressMu.Lock()
	prev := r.phase
	r.progressMu.Unlock()
	if prev != "" {
		r.emit(true)
	}
	r.progressMu.Lock()
	r.phase, r.phaseStart, r.phaseDoneBase, r.phaseTotal = phase, time.Now(), r.done.Load(), total
	r.progressMu.Unlock()
	r.emit(false)
}

func (r *rebuilder) emit(final bool) {
	if r.cfg.Progress == nil {
		return
	}
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.progressMu.Lock()
	p := RebuildProgress{Phase: r.phase, Done: r.done.Load() - r.phaseDoneBase, Total: r.phaseTotal, Elapsed: time.Since(r.phaseStart), Final: final}
	r.progressMu.Unlock()
	if s := p.Elapsed.Seconds(); s > 0 {
		p.Rate = float64(p.Done) / s
	}
	if p.Rate > 0 && p.Total > p.Done {
		p.ETA = time.Duration(float64(p.Total-p.Done) / p.Rate * float64(time.Second))
	}
	r.cfg.Progress(p)
}

// reportProgress calls Progress every ProgressEvery until the returned stop.
func (r *rebuilder) reportProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.emit(false)
			}
		}
	}()
	return func() { close(done); <-stopped }
}
