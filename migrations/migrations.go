// Package migrations holds the Postgres schema of the read models as numbered
// goose SQL files embedded in the binary, and applies them.
//
// Files are named NNNNN_what.sql and never edited once released: a change is
// a new file. Projections own their tables; each adds its own file.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed *.sql
var files embed.FS

// lockKey is the Postgres advisory lock every Up holds while it migrates, so
// several processes starting at once (API nodes, `seckill migrate`) apply each
// migration exactly once. The value is arbitrary but fixed forever.
const lockKey int64 = 0x5ec_6b11_0001

// FS returns the embedded migration files, for tools that list them.
func FS() fs.FS { return files }

// Up applies every pending migration to the database at dsn. It is safe to
// call from several processes at once: they queue on an advisory lock and the
// later ones find nothing pending.
func Up(ctx context.Context, dsn string) error {
	db, err := open(dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	// goose's own session locker polls pg_try_advisory_lock every 5 s; a
	// blocking pg_advisory_lock on a dedicated connection lets a waiting
	// process continue the moment the first one is done. The lock belongs to
	// the session, so it is released even if this process dies mid-way.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return fmt.Errorf("migrate: take lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; if that fails too, closing the
		// connection ends the session and with it the lock.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey)
	}()

	p, err := provider(db)
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		if r.Error == nil {
			slog.InfoContext(ctx, "migration applied", "file", r.Source.Path, "duration", r.Duration)
		}
	}
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// Migration is the state of one migration file in a database.
type Migration struct {
	Version int64  `json:"version"`
	File    string `json:"file"`
	// Applied is false for a migration that Up would apply.
	Applied bool `json:"applied"`
	// AppliedAt is when it was applied (zero if pending).
	AppliedAt time.Time `json:"applied_at,omitzero"`
}

// Status lists every embedded migration and whether the database at dsn has
// it, oldest first.
func Status(ctx context.Context, dsn string) ([]Migration, error) {
	db, err := open(dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	p, err := provider(db)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Migration, 0, len(st))
	for _, s := range st {
		out = append(out, Migration{
			Version:   s.Source.Version,
			File:      s.Source.Path,
			Applied:   s.State == goose.StateApplied,
			AppliedAt: s.AppliedAt,
		})
	}
	return out, nil
}

func open(dsn string) (*sql.DB, error) {
	if dsn == "" {
		return nil, errors.New("migrate: empty database URL")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("migrate: parse database URL: %w", err)
	}
	return stdlib.OpenDB(*cfg), nil
}

func provider(db *sql.DB) (*goose.Provider, error) {
	// Versioned files, no global registry: the embedded FS is the whole truth,
	// so two binaries of the same version always agree on what "up" means.
	p, err := goose.NewProvider(goose.DialectPostgres, db, files, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("migrate: load migrations: %w", err)
	}
	return p, nil
}
