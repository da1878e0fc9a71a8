package main

// What the store does differently on PostgreSQL; everything else in store.go
// is one code path for both databases. The queries there are written once,
// with ? placeholders: the connections opened here rewrite them to $1, $2, ...
// (once per query text) and pass arguments as SQLite takes them. Writes run
// as READ COMMITTED transactions on the shared pool. Each keeps its invariant
// the way READ COMMITTED allows, whatever other instances do at the same
// time: unique constraints (usernames, titles), a conditional update (a
// refresh token is spent once), advisory locks (the login limits). So no
// write is aborted merely because another ran beside it, as SERIALIZABLE
// transactions were, at the books->users foreign key above all.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresMigrationFiles holds the PostgreSQL schema steps, one for each
// SQLite step of the same number and name.
//
//go:embed migrations/postgres/*.sql
var postgresMigrationFiles embed.FS

// migrationLock is the key of the advisory lock migrations run under: the
// bytes of "bookapi" as one number.
const migrationLock = 0x626f6f6b617069

// pgAttempts bounds how often a write transaction that PostgreSQL aborted as
// a serialization failure or a deadlock is run.
const pgAttempts = 5

// errSerialization is a write PostgreSQL aborted because a concurrent one
// conflicted with it; it is errUnavailable once retries have run out.
var errSerialization = fmt.Errorf("%w: concurrent transactions conflicted", errUnavailable)

// isPostgres reports whether a -db value names a PostgreSQL database; any
// other value is a SQLite file.
func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// postgresName is a PostgreSQL URL without its user, password or parameters,
// for messages.
func postgresName(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the PostgreSQL database"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// redactDSN returns s with the password of the URL in it masked as xxxxx:
// the one in its user information and the values of its password and
// sslpassword parameters, as pgx takes them. The URL may follow a prefix, as
// in -db=postgres://...; a URL that cannot be parsed keeps only its scheme if
// it holds an @. Any other s, a SQLite path among them, is returned as it is.
// Logs, error messages and /debug/vars show a -db value only through it.
func redactDSN(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	start := strings.LastIndexFunc(s[:i], func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.')
	}) + 1
	u, err := url.Parse(s[start:])
	if err != nil {
		if strings.Contains(s[i:], "@") {
			return s[:i] + "://xxxxx"
		}
		return s
	}
	masked := false
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
		masked = true
	}
	params := strings.Split(u.RawQuery, "&")
	for j, p := range params {
		key, _, _ := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(key); err != nil || strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			params[j] = key + "=xxxxx"
			masked = true
		}
	}
	if !masked {
		return s
	}
	u.RawQuery = strings.Join(params, "&")
	return s[:i] + strings.TrimPrefix(u.String(), u.Scheme) // the scheme as written
}

// redactArgs is a command line with redactDSN applied to every argument.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = redactDSN(a)
	}
	return out
}

// openPostgres opens a pool of at most maxConns connections to the database
// at dsn and migrates it, logging the steps that upgrade it to log.
func openPostgres(ctx context.Context, dsn string, maxConns int, log *slog.Logger) (*store, error) {
	name := postgresName(dsn)
	db, err := postgresPool(dsn, maxConns)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", name, oneLineError{err})
	}
	sub, err := fs.Sub(postgresMigrationFiles, "migrations/postgres")
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := migratePostgres(ctx, db, sub, log); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	return &store{w: db, r: db, read: &reader{db: db}, postgres: true}, nil
}

// oneLineError is err with its message on one line: pgx puts each failed
// connection attempt (a host, with and without TLS) on a line of its own.
type oneLineError struct{ err error }

// Error joins err's lines.
func (e oneLineError) Error() string {
	msg := strings.ReplaceAll(e.err.Error(), ":\n\t", ": ")
	return strings.ReplaceAll(msg, "\n\t", "; ")
}

// Unwrap returns err.
func (e oneLineError) Unwrap() error { return e.err }

// pgConfig parses dsn, adding the connect timeout it lacks. Without one
// (connect_timeout in the URL), a host that drops packets would hold every
// request that needs a new connection for the operating system's minutes.
func pgConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	return cfg, nil
}

// pgConnectTimeout bounds a new connection when the URL sets no
// connect_timeout.
const pgConnectTimeout = 5 * time.Second

// postgresPool returns a pool of at most maxConns connections to the
// database at dsn, which take queries as the store writes them (pgConn). It
// connects on first use.
func postgresPool(dsn string, maxConns int) (*sql.DB, error) {
	cfg, err := pgConfig(dsn)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(&pgConnector{Connector: stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	// Renewed now and then, so that a failover, a PgBouncer restart or a
	// rebalanced load balancer is followed without a restart of bookapi.
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// migratePostgres applies the steps in fsys that schema_migrations does not
// list, each in its own transaction together with its row there. Every
// transaction first takes an advisory lock, so instances starting at once
// apply each step once: the others wait, then find it recorded. A database
// with a step newer than the newest file is refused. Steps that upgrade a
// database that had a schema are logged (logStep).
func migratePostgres(ctx context.Context, db *sql.DB, fsys fs.FS, log *slog.Logger) error {
	steps, err := migrationSteps(fsys)
	if err != nil {
		return err
	}
	from := -1 // the version before the first step, once migrateNext has read it
	for {
		done, err := migrateNext(ctx, db, fsys, steps, log, &from)
		if err != nil || done {
			return err
		}
	}
}

// migrateNext applies the first step schema_migrations does not list and
// reports whether none was left. *from is the version the database had
// before the first step; migrateNext sets it on the first call (-1).
func migrateNext(ctx context.Context, db *sql.DB, fsys fs.FS, steps []migrationStep, log *slog.Logger, from *int) (bool, error) {
	// READ COMMITTED whatever the server's default: each statement after the
	// lock must see what the lock's previous holder committed, and a
	// REPEATABLE READ or SERIALIZABLE transaction would keep the snapshot of
	// its first statement, taken before the lock was granted.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
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
	if *from < 0 {
		*from = current
	}
	logged := logStep(log, *from, s)
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
	logged()
	return false, nil
}

// pgTx is tx on PostgreSQL: fn runs in a READ COMMITTED transaction of its
// own on the pool, whatever the server's default. One that PostgreSQL aborts
// as retryable (a deadlock, or a serialization failure) is rolled back and
// run again, after a short random pause, up to pgAttempts times; then it is
// errUnavailable. Nothing else is retried: after a lost connection nobody
// knows whether the commit happened.
//
// A client that goes away does not cancel the transaction, but ctx's
// deadline (the request's -db-timeout) holds: past it the transaction is
// rolled back, or its commit's outcome is unknown, and either way the
// request is answered 503. close waits for transactions under way.
func (st *store) pgTx(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.closed {
		return fmt.Errorf("%w: store closed", errUnavailable)
	}
	bounded := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		bounded, cancel = context.WithDeadline(bounded, d)
		defer cancel()
	}
	var err error
	for attempt := range pgAttempts {
		if attempt > 0 {
			time.Sleep(time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond))))
		}
		if err = classify(pgTxOnce(bounded, st.w, fn)); !errors.Is(err, errSerialization) {
			return err
		}
	}
	return err
}

// pgTxOnce runs fn in one READ COMMITTED transaction and commits it if fn
// returns nil.
func pgTxOnce(ctx context.Context, db *sql.DB, fn func(context.Context, *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// postgresSentinel returns the store's sentinel error for a PostgreSQL or
// connection error, or nil. By error class:
//
//   - unavailable: a connection that could not be opened, whatever the
//     server answered (a missing database, a refused login, one that does
//     not take connections now); a connection lost, reset or closed by the
//     driver after an error; one that timed out; SQLSTATE class 08
//     (connection exception), 53 (insufficient resources: too many
//     connections, out of memory or disk), 57P01-57P03 (admin or crash
//     shutdown, starting up) and 25006 (a read-only server, as a standby is);
//   - conflict: 23505, a unique violation;
//   - retryable (errSerialization): 40001 and 40P01, which PostgreSQL says
//     may succeed if run again.
//
// Other errors, a foreign key violation among them, are bugs of ours, as on
// SQLite.
func postgresSentinel(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) { // before PgError, which it may wrap
		return errUnavailable
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return errConflict
		case pe.Code == "40001" || pe.Code == "40P01": // serialization_failure, deadlock_detected
			return errSerialization
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                               // insufficient resources
			pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03", // shutting down, cannot connect now
			pe.Code == "25006":                                             // read_only_sql_transaction
			return errUnavailable
		}
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return errUnavailable
	}
	return nil
}

// pgConnector opens pgConns.
type pgConnector struct {
	driver.Connector
	queries sync.Map // query text with ? -> the same with $N
}

// Connect opens a connection through pgx and wraps it.
func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{Conn: conn.(*stdlib.Conn), queries: &c.queries}, nil
}

// pgConn is a pgx connection that takes the store's queries and arguments as
// written for SQLite; everything else is pgx's.
type pgConn struct {
	*stdlib.Conn
	queries *sync.Map
}

// rebind returns query with its ? placeholders numbered, rewriting each query
// text once.
func (c *pgConn) rebind(query string) string {
	if q, ok := c.queries.Load(query); ok {
		return q.(string)
	}
	q := numberPlaceholders(query)
	c.queries.Store(query, q)
	return q
}

// Prepare is stdlib.Conn's, for a query with ? placeholders.
func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(c.rebind(query))
}

// PrepareContext is stdlib.Conn's, for a query with ? placeholders.
func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, c.rebind(query))
}

// ExecContext is stdlib.Conn's, for a query with ? placeholders.
func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, c.rebind(query), args)
}

// QueryContext is stdlib.Conn's, for a query with ? placeholders.
func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, c.rebind(query), args)
}

// CheckNamedValue converts an argument as database/sql does for SQLite, then
// makes it one PostgreSQL takes where SQLite's type affinity would: a bool is
// stored as 0 or 1 (the admin column is an INTEGER, as on SQLite), and a
// string holding NUL or invalid UTF-8, which PostgreSQL text cannot, has them
// replaced by U+0001. No stored name, title or id holds either (the service
// refuses control characters and invalid UTF-8 in them), so such a string
// reaches the database only to be looked up, and the lookup finds nothing
// instead of failing, as on SQLite.
//
// A pgx.QueryExecMode passes as it is: pgx takes it, as the first argument,
// for how to run the query (queryFreshPlan).
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if _, ok := nv.Value.(pgx.QueryExecMode); ok {
		return nil
	}
	v, err := driver.DefaultParameterConverter.ConvertValue(nv.Value)
	if err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		v = int64(0)
		if x {
			v = int64(1)
		}
	case string:
		if !utf8.ValidString(x) || strings.IndexByte(x, 0) >= 0 {
			v = strings.ReplaceAll(strings.ToValidUTF8(x, "\x01"), "\x00", "\x01")
		}
	}
	nv.Value = v
	return nil
}

// queryFreshPlan runs a read on PostgreSQL as an unnamed statement, which
// the server plans for the values it is given, every time. A prepared
// statement is planned for its values only its first five times; after
// that PostgreSQL may keep a generic plan, made for no value in
// particular, if it looks no dearer. For a search that plan reads the books
// in id order and tests each against the pattern whatever it is: right for
// a term in half the books, a read of every book for a rare one
// (TestPostgresSearchPlannedEachTime; docs/scale.md).
func queryFreshPlan(ctx context.Context, db *sql.DB, query string, args ...any) (*sql.Rows, error) {
	return db.QueryContext(ctx, query, append([]any{pgx.QueryExecModeExec}, args...)...)
}

// numberPlaceholders rewrites each ? of query outside quotes and comments as
// $1, $2, ... in order.
func numberPlaceholders(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		var open, end string // a quoted part or comment starting here, and what closes it
		switch {
		case query[i] == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		case query[i] == '\'' || query[i] == '"':
			open, end = query[i:i+1], query[i:i+1]
		case strings.HasPrefix(query[i:], "--"):
			open, end = "--", "\n"
		case strings.HasPrefix(query[i:], "/*"):
			open, end = "/*", "*/"
		default:
			b.WriteByte(query[i])
			continue
		}
		// Copy it whole; a doubled quote closes and reopens, which is the same.
		j := strings.Index(query[i+len(open):], end)
		if j < 0 {
			b.WriteString(query[i:])
			break
		}
		stop := i + len(open) + j + len(end)
		b.WriteString(query[i:stop])
		i = stop - 1
	}
	return b.String()
}
