package main

// The schema on PostgreSQL: its own steps (migrations/postgres, one for each
// SQLite step), recorded in schema_migrations and applied under an advisory
// lock.

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"
)

// postgresMigrationFiles holds the PostgreSQL schema steps, one for each
// SQLite step of the same number and name.
//
//go:embed migrations/postgres/*.sql
var postgresMigrationFiles embed.FS

// migrationLock is the key of the advisory lock migrations run under: the
// bytes of "bookapi" as one number.
const migrationLock = 0x626f6f6b617069

// migratePostgres applies the steps in fsys that schema_migrations does not
// list, each in its own transaction together with its row there. Every
// transaction first takes an advisory lock, so instances starting at once
// apply each step once: the others wait, then find it recorded. A database
// with a step newer than the newest file is refused.
func migratePostgres(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	steps, err := migrationSteps(fsys)
	if err != nil {
		return err
	}
	for {
		done, err := migrateNext(ctx, db, fsys, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateNext applies the first step schema_migrations does not list and
// reports whether none was left.
func migrateNext(ctx context.Context, db *sql.DB, fsys fs.FS, steps []migrationStep) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", classify(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrationLock)); err != nil {
		return false, fmt.Errorf("migrate: lock: %w", classify(err))
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at BIGINT  NOT NULL
	)`); err != nil {
		return false, fmt.Errorf("migrate: %w", classify(err))
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return false, fmt.Errorf("migrate: read schema version: %w", classify(err))
	}
	if current > len(steps) {
		return false, fmt.Errorf("migrate: database schema version %d is newer than this bookapi (%d)", current, len(steps))
	}
	if current == len(steps) {
		return true, nil
	}
	s := steps[current]
	text, err := fs.ReadFile(fsys, s.name)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, string(text)); err != nil {
		return false, fmt.Errorf("migrate: %s: %w", s.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		s.version, s.name, unix(time.Now())); err != nil {
		return false, fmt.Errorf("migrate: %s: %w", s.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate: %s: %w", s.name, classify(err))
	}
	return false, nil
}
