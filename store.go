package main

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// migrationFiles holds the schema steps, applied in file-name order.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// The store's sentinel errors. Handlers map them to contract messages; no
// driver or SQL error ever crosses the store's boundary unwrapped.
var (
	errNotFound    = errors.New("not found")
	errConflict    = errors.New("conflict")
	errNotOwner    = errors.New("not the owner")
	errUnavailable = errors.New("database unavailable")
	errReused      = errors.New("refresh token reused")
)

// store is the service's persistence: one writer connection (SQLite allows a
// single writer; queuing in Go is cheaper than SQLITE_BUSY retries) and a pool
// of read-only connections on the same file. On PostgreSQL w and r are the
// same pool and there is no writer goroutine (see postgres.go).
type store struct {
	w        *sql.DB
	r        *sql.DB
	read     *reader // r through prepared statements
	postgres bool    // a PostgreSQL database rather than a SQLite file

	// Writes go to one goroutine that commits them in groups (see tx).
	mu         sync.RWMutex // guards closed against sends on writes
	closed     bool
	writes     chan *writeJob
	writerDone chan struct{}
	groupSizes *histogram // transactions per commit of the writer; nil on PostgreSQL
}

// reader runs queries on the read pool through prepared statements, each
// query text prepared once and reused (database/sql re-prepares it on each
// connection as needed). The set of query texts is fixed by the code, so the
// cache is bounded.
//
// Its methods say whether a read keeps its request's cancellation. A lookup
// (lookup, lookupRows) is an index lookup or range under a LIMIT; with detach
// set (SQLite) it ignores the cancellation, since each query on a cancellable
// context costs two goroutines, one of database/sql's and one of the
// driver's, that wait to interrupt it, and on a local file the read is over
// sooner than they could act. A search, the one read that can take long (a
// substring match over every book), always keeps it. Over a network
// (PostgreSQL) every read keeps it.
type reader struct {
	db     *sql.DB
	stmts  sync.Map // query text -> *sql.Stmt
	detach bool
}

// lookupContext returns the context a lookup runs under.
func (rd *reader) lookupContext(ctx context.Context) context.Context {
	if rd.detach {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (rd *reader) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := rd.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := rd.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := rd.stmts.LoadOrStore(query, s); loaded {
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// lookup runs a query for at most one row, ignoring ctx's cancellation on
// SQLite (see reader).
func (rd *reader) lookup(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = rd.lookupContext(ctx)
	s, err := rd.stmt(ctx, query)
	if err != nil {
		return rd.db.QueryRowContext(ctx, query, args...) // reports the same error on Scan
	}
	return s.QueryRowContext(ctx, args...)
}

// lookupRows runs a query for a bounded range of rows, ignoring ctx's
// cancellation on SQLite (see reader).
func (rd *reader) lookupRows(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return rd.search(rd.lookupContext(ctx), query, args...)
}

// search runs a query that may read many rows before it answers: it stops
// when ctx ends, on SQLite too.
func (rd *reader) search(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := rd.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// writeJob is one transaction's work waiting for the writer.
type writeJob struct {
	fn    func(context.Context, *sql.Tx) error
	done  chan error   // receives fn's result once its group is durable
	state atomic.Int32 // jobQueued, then jobStarted or jobAbandoned, once
}

// The states of a writeJob: the writer starts a queued job, or its caller,
// tired of waiting, abandons it; whichever comes first decides.
const (
	jobQueued = iota
	jobStarted
	jobAbandoned
)

// maxGroup bounds how many transactions share one commit.
const maxGroup = 256

// groupBuckets are the bounds of the histogram of group sizes, up to maxGroup.
var groupBuckets = [...]int64{1, 2, 4, 8, 16, 32, 64, 128, maxGroup}

// user is an account as the handlers see it; the password hash stays in the store.
type user struct {
	ID        int64
	PublicID  string
	Username  string
	Admin     bool
	CreatedAt time.Time
	Books     int    // filled only by listUsers and userInfo
	SessionID string // the session of the request's token; filled by sessionUser
}

// book is a stored book with its owner's username.
type book struct {
	ID        int64
	Title     string
	Author    string
	ISBN      string
	Owner     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// bookFilter selects a page of books; zero values mean "no condition".
type bookFilter struct {
	After  int64
	Limit  int
	Q      string // substring of title or author, any letter case (see minSearchLen)
	Author string // exact author, any letter case
	Owner  string // username, any letter case
}

// bookChange is a partial update; nil fields stay as they are, and ClearISBN
// removes the ISBN.
type bookChange struct {
	Title     *string
	Author    *string
	ISBN      *string
	ClearISBN bool
}

// dbPath returns the file a -db value names, for the secret file beside it.
func dbPath(dsn string) string {
	if rest, ok := strings.CutPrefix(dsn, "file:"); ok {
		p, _, _ := strings.Cut(rest, "?")
		if u, err := url.PathUnescape(p); err == nil {
			return u
		}
		return p
	}
	return dsn
}

// sqliteDSN adds the connection settings to a path or file: URI. The pragmas
// ride in the DSN so that every pooled connection gets them; busy_timeout
// comes first so the others wait for a lock rather than fail.
func sqliteDSN(dsn string, readOnly bool) string {
	params := []string{
		"_pragma=busy_timeout(5000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(FULL)",
	}
	if readOnly {
		params = append(params, "_pragma=query_only(1)")
	} else {
		params = append(params, "_txlock=immediate")
	}
	return sqliteURI(dsn, params...)
}

// sqliteURI returns a path or file: URI as a file: URI with params added.
func sqliteURI(dsn string, params ...string) string {
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + (&url.URL{Path: dsn}).EscapedPath()
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + strings.Join(params, "&")
}

// createPrivate creates the empty database file dsn names with mode 0600,
// unless it exists or dsn's mode parameter tells SQLite not to create it.
// SQLite would create it 0644 less the umask, and it gives the -wal and -shm
// files it creates beside a database the database file's mode: this way all
// three are readable and writable by their owner only, whatever the umask.
// SQLite takes an empty file for a new database.
func createPrivate(dsn string) error {
	if _, query, ok := strings.Cut(dsn, "?"); ok && strings.HasPrefix(dsn, "file:") {
		if q, err := url.ParseQuery(query); err == nil && q.Has("mode") && q.Get("mode") != "rwc" {
			return nil // ro, rw or memory: SQLite creates no file
		}
	}
	f, err := os.OpenFile(dbPath(dsn), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			return pathErr.Err // the caller names the file, with a password masked
		}
		return err
	}
	return f.Close()
}

// vacuumInto writes a consistent copy of the SQLite database dsn, as one
// read transaction sees it, into the file dest, which must be absent or
// empty, with VACUUM INTO; in WAL mode the database's writers carry on
// meanwhile. The database is opened with mode=rw, which never creates it.
// (mode=ro would do, but a read-only connection to a WAL database that no
// one else has open creates its -wal and -shm files and cannot remove them.)
// The copy is compacted and in rollback-journal mode; dest is not synced.
func vacuumInto(ctx context.Context, dsn, dest string) error {
	db, err := sql.Open("sqlite", sqliteURI(dsn, "mode=rw", "_pragma=busy_timeout(5000)"))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return err
	}
	return db.Close()
}

// checkCopy runs SQLite's integrity check on the database file path, which
// nothing else may be using, and counts its users and books. It opens the
// file read-only and immutable: no locks, and no -wal or -shm file beside it.
func checkCopy(ctx context.Context, path string) (users, books int, err error) {
	db, err := sql.Open("sqlite", sqliteURI(path, "mode=ro", "immutable=1"))
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	var result string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&result); err != nil {
		return 0, 0, fmt.Errorf("integrity check: %w", err)
	}
	if result != "ok" {
		return 0, 0, fmt.Errorf("integrity check: %s", result)
	}
	err = db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM books)`).Scan(&users, &books)
	if err != nil {
		return 0, 0, fmt.Errorf("count users and books: %w", err)
	}
	return users, books, db.Close()
}

// openStore opens the database at dsn, a postgres:// URL or a SQLite file,
// creating and migrating it as needed and filling the books' missing docs.
// maxConns sizes PostgreSQL's pool; on SQLite it sizes the read pool, beside
// the one writer. log gets a line before and after each schema step that
// upgrades an existing database, since one may take minutes.
func openStore(ctx context.Context, dsn string, maxConns int, log *slog.Logger) (*store, error) {
	open, name := openSQLite, redactDSN(dsn)
	if isPostgres(dsn) {
		open, name = openPostgres, postgresName(dsn)
	}
	st, err := open(ctx, dsn, maxConns, log)
	if err != nil {
		return nil, err
	}
	if _, err := st.fillDocs(ctx, log); err != nil {
		st.close()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	return st, nil
}

// openSQLite opens and migrates the SQLite file at dsn.
func openSQLite(ctx context.Context, dsn string, maxConns int, log *slog.Logger) (*store, error) {
	name := redactDSN(dsn) // a mistyped postgres:// URL is a SQLite path too
	if err := createPrivate(dsn); err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	w, err := sql.Open("sqlite", sqliteDSN(dsn, false))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		w.Close()
		return nil, err
	}
	if err := migrate(ctx, w, sub, log); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	r, err := sql.Open("sqlite", sqliteDSN(dsn, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	// Reads are CPU work on pages in memory, yet more readers than cores
	// pay: a request waiting for a free connection parks and is woken, and
	// a read that starts while another holds the WAL read lock shares that
	// lock instead of taking it with a system call (bench/run.sh's
	// list-empty measures it).
	n := maxConns
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	st := &store{w: w, r: r, read: &reader{db: r, detach: true}, writes: make(chan *writeJob, maxGroup), writerDone: make(chan struct{}),
		groupSizes: newHistogram(groupBuckets[:]...)}
	go st.writer()
	return st, nil
}

// setLockTimeout makes SQLite's writer wait at most d for a lock another
// process holds on the file (busy_timeout; 5 s until then), so that a write
// under way keeps to a request's deadline of d. The writer has one
// connection, which it keeps. PostgreSQL has no such setting to make: its
// queries keep their request's deadline.
func (st *store) setLockTimeout(ctx context.Context, d time.Duration) error {
	if st.postgres {
		return nil
	}
	// PRAGMA takes no parameters; the number is our own.
	if _, err := st.w.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", max(1, d.Milliseconds()))); err != nil {
		return fmt.Errorf("set lock timeout: %w", classify(err))
	}
	return nil
}

// pool is one of the store's connection pools, named for metrics.
type pool struct {
	name string
	db   *sql.DB
}

// pools returns the store's connection pools: SQLite's writer and readers,
// or PostgreSQL's one pool, which serves both.
func (st *store) pools() []pool {
	if st.w == st.r {
		return []pool{{"shared", st.w}}
	}
	return []pool{{"write", st.w}, {"read", st.r}}
}

// close checkpoints the WAL into the main file and closes both pools. On
// PostgreSQL it waits for the write transactions under way, then closes the
// pool.
func (st *store) close() error {
	st.mu.Lock()
	if !st.closed && !st.postgres {
		close(st.writes)
	}
	st.closed = true
	st.mu.Unlock()
	if st.postgres {
		return st.w.Close()
	}
	<-st.writerDone // every queued write is committed or refused first
	rerr := st.r.Close()
	_, _ = st.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(rerr, st.w.Close())
}

// migrate applies every NNNN_*.sql file above the database's user_version,
// each in its own transaction together with the version bump. A database
// whose version is newer than the newest file is refused. Steps that upgrade
// a database that had a schema are logged (logStep).
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS, log *slog.Logger) error {
	steps, err := migrationSteps(fsys)
	if err != nil {
		return err
	}
	var current int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", classify(err))
	}
	if current > len(steps) {
		return fmt.Errorf("migrate: database schema version %d is newer than this bookapi (%d)", current, len(steps))
	}
	for _, s := range steps[current:] {
		text, err := fs.ReadFile(fsys, s.name)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		done := logStep(log, current, s)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate: %w", classify(err))
		}
		if _, err := tx.ExecContext(ctx, string(text)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate: %s: %w", s.name, err)
		}
		// PRAGMA takes no parameters; the version is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", s.version)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate: %s: %w", s.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate: %s: %w", s.name, classify(err))
		}
		done()
	}
	return nil
}

// logStep logs that step s is being applied to a database at schema version
// current, and returns the function that logs its end and duration. A new
// database (version 0) is not logged: its tables are empty, so every step
// is instant, whereas on a database with data a step may rebuild an index
// over every book and take minutes.
func logStep(log *slog.Logger, current int, s migrationStep) func() {
	if current == 0 {
		return func() {}
	}
	log.Info("upgrading database schema", "step", s.name)
	start := time.Now()
	return func() {
		log.Info("upgraded database schema", "step", s.name, "duration", time.Since(start).Round(time.Millisecond))
	}
}

// migrationStep is one schema step: file NNNN_*.sql is version NNNN.
type migrationStep struct {
	version int
	name    string
}

// migrationSteps lists the NNNN_*.sql files of fsys in order, refusing a gap
// or a name out of sequence.
func migrationSteps(fsys fs.FS) ([]migrationStep, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	var steps []migrationStep
	for i, name := range names {
		want := fmt.Sprintf("%04d_", i+1)
		if !strings.HasPrefix(path.Base(name), want) {
			return nil, fmt.Errorf("migrate: %s: want a name starting %s", name, want)
		}
		steps = append(steps, migrationStep{i + 1, name})
	}
	return steps, nil
}

// classify turns driver errors into the store's sentinels: constraint
// violations are conflicts, a missing row is not found, and a database that is
// busy, full, read-only or cannot be opened is unavailable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return errNotFound
	}
	// A store closed under a request (a shutdown that ran out of time) is
	// unavailable, not broken; database/sql does not export this error.
	if errors.Is(err, sql.ErrConnDone) || err.Error() == "sql: database is closed" {
		return fmt.Errorf("%w: %v", errUnavailable, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code()
		switch {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", errConflict, err)
		}
		switch code & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PERM:
			return fmt.Errorf("%w: %v", errUnavailable, err)
		}
	}
	if sentinel := postgresSentinel(err); sentinel != nil {
		return fmt.Errorf("%w: %v", sentinel, err)
	}
	return err
}

// tx runs fn as one write transaction and returns when it is durable: fn's
// changes are committed together (fn returned nil) or not at all.
//
// Concurrent calls are committed in groups: the writer goroutine takes every
// job waiting, runs them in one immediate transaction, and commits once, so
// a burst of writes pays for one fsync instead of one each. A job whose fn
// fails fails alone: the group runs again, each job in a savepoint of its
// own (commitGroup). A failed commit fails the whole group. No caller is
// answered before the commit that holds its changes has returned.
//
// fn gets a context that is never cancelled: interrupting a statement would
// make SQLite roll back the whole shared transaction. The caller's ctx
// bounds only the wait: a job still queued when ctx ends is abandoned, never
// runs, and is errUnavailable; one already started is waited for (its locks
// wait at most busy_timeout), so that no caller is told a write failed that
// then commits.
//
// On PostgreSQL each call is a transaction of its own (pgTx). On either
// store fn may run more than once (another job of its group failed; a
// PostgreSQL transaction is retried): fn must set whatever it returns on
// every run.
func (st *store) tx(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	if st.postgres {
		return st.pgTx(ctx, fn)
	}
	job := &writeJob{fn: fn, done: make(chan error, 1)}
	st.mu.RLock()
	if st.closed {
		st.mu.RUnlock()
		return fmt.Errorf("%w: store closed", errUnavailable)
	}
	select {
	case st.writes <- job:
		st.mu.RUnlock()
	case <-ctx.Done():
		st.mu.RUnlock()
		return fmt.Errorf("%w: waiting for the writer: %w", errUnavailable, context.Cause(ctx))
	}
	select {
	case err := <-job.done:
		return err
	case <-ctx.Done():
		if job.state.CompareAndSwap(jobQueued, jobAbandoned) {
			return fmt.Errorf("%w: waiting for the writer: %w", errUnavailable, context.Cause(ctx))
		}
		return <-job.done
	}
}

// writer commits the queued jobs, a group at a time, until close.
func (st *store) writer() {
	defer close(st.writerDone)
	group := make([]*writeJob, 0, maxGroup)
	for job := range st.writes {
		group = append(group[:0], job)
	more:
		for len(group) < maxGroup {
			select {
			case j, ok := <-st.writes:
				if !ok {
					break more
				}
				group = append(group, j)
			default:
				break more
			}
		}
		// Jobs whose callers stopped waiting are dropped, unrun.
		group = slices.DeleteFunc(group, func(j *writeJob) bool { return !j.state.CompareAndSwap(jobQueued, jobStarted) })
		if len(group) > 0 {
			st.groupSizes.observe(int64(len(group)))
			st.commitGroup(group)
		}
	}
}

// commitGroup runs a group of jobs in one transaction and answers each.
//
// The jobs run one after another, with no savepoints between them: FTS5
// writes its pending index entries as a segment of their own at every
// savepoint, so a savepoint a job would give every new book a segment
// (migrations/0009_search_insert.sql). If a job fails, its changes cannot
// be undone alone, so the transaction is rolled back and the group runs
// again, this time with a savepoint a job: a job that fails there is rolled
// back to its savepoint, without touching the others. A job may so run
// twice, as on PostgreSQL (see tx).
func (st *store) commitGroup(group []*writeJob) {
	errs := make([]error, len(group))
	err := st.commitJobs(group, errs, false)
	if errors.Is(err, errJobFailed) && len(group) > 1 {
		clear(errs)
		err = st.commitJobs(group, errs, true)
	}
	for i, j := range group {
		if errs[i] == nil {
			errs[i] = err
		}
		j.done <- classify(errs[i])
	}
}

// errJobFailed is commitJobs' answer when a job failed without savepoints,
// which leaves the whole transaction rolled back.
var errJobFailed = errors.New("a job failed")

// commitJobs runs jobs in one transaction, records each job's error in
// errs, and commits. Without savepoints, the first job to fail ends the
// transaction (errJobFailed); with them, a job that fails is rolled back to
// its savepoint and the others go on. An error in beginning, in a
// savepoint or in the commit is returned, and nothing is committed.
func (st *store) commitJobs(jobs []*writeJob, errs []error, savepoints bool) error {
	ctx := context.Background()
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op
	// savepoint runs a savepoint statement, when there are savepoints.
	savepoint := func(stmt string) error {
		if !savepoints {
			return nil
		}
		_, err := tx.ExecContext(ctx, stmt)
		return err
	}
	for i, j := range jobs {
		if err := savepoint("SAVEPOINT job"); err != nil {
			return err
		}
		if errs[i] = j.fn(ctx, tx); errs[i] != nil {
			if !savepoints {
				return errJobFailed
			}
			if err := savepoint("ROLLBACK TO job"); err != nil {
				return err
			}
		}
		if err := savepoint("RELEASE job"); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// ping reports whether the database answers a read through the reader pool
// and takes a committed write through the writer. /readyz needs both: a full
// disk or a read-only file still answers reads. The write must be committed,
// since SQLite writes a small transaction's pages only at commit (a rolled-
// back one never leaves the page cache), so ping upserts the one row of the
// health table: one WAL frame and one fsync per probe, queued behind the
// writes waiting before it.
//
// It returns by ctx's deadline whatever the database does: the read keeps
// ctx on SQLite too (unlike the reader's lookups), and a probe write
// that has started on SQLite, and so cannot be abandoned, is left to finish
// on its own.
func (st *store) ping(ctx context.Context) error {
	var one int
	if err := st.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("read probe: %w", classify(err))
	}
	done := make(chan error, 1)
	go func() {
		done <- st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			// An upsert that always changes the row, so there is always a page
			// to write, even if the row was deleted.
			_, err := tx.ExecContext(ctx,
				`INSERT INTO health (id, probes) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET probes = health.probes + 1`)
			return err
		})
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("%w: %w", errUnavailable, context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	return nil
}

func unix(t time.Time) int64 { return t.UTC().Unix() }

func fromUnix(s int64) time.Time { return time.Unix(s, 0).UTC() }

// createUser stores a new account; a username taken in any letter case is errConflict.
func (st *store) createUser(ctx context.Context, publicID, username, hash string, admin bool, now time.Time) (user, error) {
	u := user{PublicID: publicID, Username: username, Admin: admin, CreatedAt: fromUnix(unix(now))}
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx,
			`INSERT INTO users (public_id, username, username_key, password_hash, admin, created_at)
			 VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			publicID, username, foldKey(username), hash, admin, unix(now)).Scan(&u.ID)
	})
	if err != nil {
		return user{}, fmt.Errorf("insert user: %w", err)
	}
	return u, nil
}

const userColumns = `u.id, u.public_id, u.username, u.admin, u.created_at`

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface{ Scan(...any) error }

func scanUser(sc scanner, extra ...any) (user, error) {
	var u user
	err := sc.Scan(append([]any{&u.ID, &u.PublicID, &u.Username, &u.Admin, (*unixCol)(&u.CreatedAt)}, extra...)...)
	return u, err
}

// unixCol scans a column of unix seconds into a UTC time.Time.
type unixCol time.Time

// Scan implements sql.Scanner.
func (t *unixCol) Scan(src any) error {
	n, ok := src.(int64)
	if !ok {
		return fmt.Errorf("scan unix time: got %T", src)
	}
	*t = unixCol(fromUnix(n))
	return nil
}

// credentials returns the user with this username (any letter case) and the
// stored password hash.
func (st *store) credentials(ctx context.Context, username string) (user, string, error) {
	var hash string
	row := st.read.lookup(ctx,
		`SELECT `+userColumns+`, u.password_hash FROM users u WHERE u.username_key = ?`,
		foldKey(username))
	u, err := scanUser(row, &hash)
	if err != nil {
		return user{}, "", fmt.Errorf("user by name: %w", classify(err))
	}
	return u, hash, nil
}

// setPasswordHash replaces a user's hash, as when a login upgrades its cost.
func (st *store) setPasswordHash(ctx context.Context, userID int64, hash string) error {
	return st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
		return err
	})
}

// createSession starts a login session for the user and stores the hash of
// its first refresh token.
func (st *store) createSession(ctx context.Context, sid string, userID int64, refreshHash []byte, now time.Time, ttl time.Duration) error {
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		exp := unix(now.Add(ttl))
		// Sessions past their refresh lifetime can never be used again.
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND expires_at <= ?`, userID, unix(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
			sid, userID, unix(now), exp); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES (?, ?, ?)`,
			refreshHash, sid, exp)
		return err
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// sessionUser loads the user of a live session in one query: the session
// must exist, be unexpired and belong to the user the token names.
//
// Every authenticated request runs it, so it reads no column it was given
// (the public id): each column costs the driver allocations per query.
func (st *store) sessionUser(ctx context.Context, sid, publicID string, now time.Time) (user, error) {
	u := user{PublicID: publicID, SessionID: sid}
	err := st.read.lookup(ctx,
		`SELECT u.id, u.username, u.admin, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id
		 WHERE s.id = ? AND u.public_id = ? AND s.expires_at > ?`,
		sid, publicID, unix(now)).Scan(&u.ID, &u.Username, &u.Admin, (*unixCol)(&u.CreatedAt))
	if err != nil {
		return user{}, fmt.Errorf("session user: %w", classify(err))
	}
	return u, nil
}

// querier is what *sql.DB and *sql.Tx share, so a read can run inside a
// write transaction or straight on a pool.
type querier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// userInfoQuery returns the SELECT ... FROM users u that reads users with
// their book counts: SQLite keeps each count in the user's row
// (migrations/0006_book_counts.sql), PostgreSQL counts over books_owner.
func userInfoQuery(postgres bool) string {
	if postgres {
		return `SELECT ` + userColumns + `, (SELECT COUNT(*) FROM books b WHERE b.owner_id = u.id) FROM users u `
	}
	return `SELECT ` + userColumns + `, u.book_count FROM users u `
}

// userInfo returns one user with their book count, by public id; postgres
// says which database q reads.
func userInfo(ctx context.Context, q querier, postgres bool, publicID string) (user, error) {
	var n int
	u, err := scanUser(q.QueryRowContext(ctx, userInfoQuery(postgres)+`WHERE u.public_id = ?`, publicID), &n)
	if err != nil {
		return user{}, fmt.Errorf("user by public id: %w", classify(err))
	}
	u.Books = n
	return u, nil
}

// listUsers returns up to limit users in signup order, starting after the
// user with public id after ("" for the start). An unknown after is errNotFound.
func (st *store) listUsers(ctx context.Context, after string, limit int) ([]user, error) {
	var afterID int64
	if after != "" {
		err := st.read.lookup(ctx, `SELECT id FROM users WHERE public_id = ?`, after).Scan(&afterID)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", classify(err))
		}
	}
	rows, err := st.read.lookupRows(ctx, userInfoQuery(st.postgres)+`WHERE u.id > ? ORDER BY u.id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", classify(err))
	}
	defer rows.Close()
	users := []user{}
	for rows.Next() {
		var n int
		u, err := scanUser(rows, &n)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", classify(err))
		}
		u.Books = n
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", classify(err))
	}
	return users, nil
}

// setAdmin sets a user's admin flag and returns the user as listed.
func (st *store) setAdmin(ctx context.Context, publicID string, admin bool) (user, error) {
	var u user
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET admin = ? WHERE public_id = ?`, admin, publicID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, errNotFound)
		}
		u, err = userInfo(ctx, tx, st.postgres, publicID)
		return err
	})
	if err != nil {
		return user{}, fmt.Errorf("set admin: %w", err)
	}
	return u, nil
}

// setAdminByName sets the admin flag of the user with this username (any case).
func (st *store) setAdminByName(ctx context.Context, username string, admin bool) error {
	return st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET admin = ? WHERE username_key = ?`, admin, foldKey(username))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, errNotFound)
		}
		return nil
	})
}

// deleteUser removes a user; their books, sessions and refresh tokens go with
// them (ON DELETE CASCADE), in the same transaction. It returns how many
// sessions ended.
func (st *store) deleteUser(ctx context.Context, publicID string) (int64, error) {
	var sessions int64
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.public_id = ?`, publicID).Scan(&sessions)
		if err != nil {
			return err
		}
		n, err := execCount(ctx, tx, `DELETE FROM users WHERE public_id = ?`, publicID)
		if err != nil || n == 0 {
			return errors.Join(err, errNotFound)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete user: %w", err)
	}
	return sessions, nil
}

const bookColumns = `b.id, b.title, b.author, COALESCE(b.isbn, ''), u.username, b.created_at, b.updated_at`

// bookDest returns the scan destinations of bookColumns into b. A list
// scans every row into the same b through one dest.
func bookDest(b *book) []any {
	return []any{&b.ID, &b.Title, &b.Author, &b.ISBN, &b.Owner, (*unixCol)(&b.CreatedAt), (*unixCol)(&b.UpdatedAt)}
}

func scanBook(sc scanner) (book, error) {
	var b book
	err := sc.Scan(bookDest(&b)...)
	return b, err
}

// selectBookByID selects one book's bookColumns by its id.
const selectBookByID = selectBooks + ` WHERE b.id = ?`

// book returns one book by id.
func (st *store) book(ctx context.Context, id int64) (book, error) {
	b, err := scanBook(st.read.lookup(ctx, selectBookByID, id))
	if err != nil {
		return book{}, fmt.Errorf("book by id: %w", classify(err))
	}
	return b, nil
}

// writeDoc reads book id as it now stands and stores its doc, the book as
// every answer writes it (see migrations/0004_book_docs.sql), with the
// format version it was written in (docVersion), in tx: the transaction
// that changed it.
func writeDoc(ctx context.Context, tx *sql.Tx, id int64) (book, error) {
	b, err := scanBook(tx.QueryRowContext(ctx, selectBookByID, id))
	if err != nil {
		return book{}, fmt.Errorf("book by id: %w", classify(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE books SET doc = ?, doc_version = ? WHERE id = ?`, string(appendBook(nil, b)), docVersion, id); err != nil {
		return book{}, err
	}
	return b, nil
}

// docBatch is how many docs one transaction of fillDocs writes.
const docBatch = 500

// staleDoc is the condition of a book whose doc must be written again: it
// has none (stored before docs were, or changed by something other than
// this service), or one in a format other than docVersion. Both parts are
// answered from an index (books_doc_missing, books_doc_version).
const staleDoc = `(doc IS NULL OR doc_version < ? OR doc_version > ?)`

// fillDocs writes the doc of every book whose doc is missing or in another
// format than this code's, in batches, and reports how many it wrote. With
// none stale it is two index lookups, and it writes nothing, so a read-only
// database opens. A run that takes more than a batch is logged.
func (st *store) fillDocs(ctx context.Context, log *slog.Logger) (int, error) {
	var missing bool
	if err := st.read.lookup(ctx, `SELECT EXISTS (SELECT 1 FROM books WHERE `+staleDoc+`)`, docVersion, docVersion).Scan(&missing); err != nil {
		return 0, fmt.Errorf("fill book docs: %w", classify(err))
	}
	filled := 0
	start := time.Now()
	for missing {
		n := 0
		if filled > 0 && filled%(20*docBatch) == 0 {
			log.Info("writing book docs", "written", filled, "format", docVersion)
		}
		err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT id FROM books WHERE `+staleDoc+` LIMIT ?`, docVersion, docVersion, docBatch)
			if err != nil {
				return err
			}
			var ids []int64
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, id := range ids {
				// Lock the row before reading it, so that no change committed
				// by another instance in between is overwritten by a doc
				// rendered from the row before it; one filled meanwhile is
				// left alone.
				n, err := execCount(ctx, tx, `UPDATE books SET doc = NULL WHERE id = ? AND `+staleDoc, id, docVersion, docVersion)
				if err != nil {
					return err
				}
				if n == 0 {
					continue
				}
				if _, err := writeDoc(ctx, tx, id); err != nil {
					return err
				}
			}
			n = len(ids)
			return nil
		})
		if err != nil {
			return filled, fmt.Errorf("fill book docs: %w", err)
		}
		filled += n
		missing = n == docBatch // a short batch was the last
	}
	if filled > docBatch {
		log.Info("wrote book docs", "written", filled, "format", docVersion, "duration", time.Since(start).Round(time.Millisecond))
	}
	return filled, nil
}

// nullable maps "" to SQL NULL.
func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// createBook stores a book owned by ownerID; a title taken in any letter case
// is errConflict.
//
// On SQLite it also writes what triggers write for other changes of books:
// the owner's book count and the book's entry in the search index. Neither
// the INSERT nor anything after it runs a trigger or a RETURNING clause, so
// no statement of the creates committed together has a statement journal,
// and FTS5 writes their entries as one segment at the commit instead of one
// segment a book (migrations/0009_search_insert.sql).
func (st *store) createBook(ctx context.Context, ownerID int64, title, author, isbn string, now time.Time) (book, error) {
	const insert = `INSERT INTO books (title, title_key, author, author_key, isbn, owner_id, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	titleKey, authorKey := foldKey(title), foldKey(author)
	args := []any{title, titleKey, author, authorKey, nullable(isbn), ownerID, unix(now), unix(now)}
	var b book
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var id int64
		if st.postgres {
			if err := tx.QueryRowContext(ctx, insert+` RETURNING id`, args...).Scan(&id); err != nil {
				return err
			}
		} else {
			res, err := tx.ExecContext(ctx, insert, args...)
			if err != nil {
				return err
			}
			if id, err = res.LastInsertId(); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE users SET book_count = book_count + 1 WHERE id = ?`, ownerID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO books_search (rowid, title_key, author_key) VALUES (?, ?, ?)`,
				id, titleKey, authorKey); err != nil {
				return err
			}
		}
		var err error
		b, err = writeDoc(ctx, tx, id)
		return err
	})
	if err != nil {
		return book{}, fmt.Errorf("insert book: %w", err)
	}
	return b, nil
}

// foldKey is the form in which names and titles are compared and made
// unique regardless of letter case: each rune's lower case of its upper case,
// so that final and medial sigma, or K and the Kelvin sign, compare equal,
// which plain lower-casing misses.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, s)
}

// likePattern escapes s for a LIKE ... ESCAPE '\' substring match. SQLite's
// LIKE would stop reading the pattern at a NUL, and PostgreSQL text cannot
// hold one, so NUL becomes U+0001, a control character no title or author
// holds either.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`, "\x00", "\x01")
	return "%" + r.Replace(s) + "%"
}

// minSearchLen is the shortest q, in characters (code points), the search
// index answers: a trigram index knows nothing shorter than a trigram.
const minSearchLen = 3

// maxSearchTrigrams bounds the trigrams a search asks the search index
// for: a long q would otherwise be one index lookup per trigram.
const maxSearchTrigrams = 16

// searchTrigrams is the FTS5 query for the books whose title and author
// between them hold the trigrams of s that cover it: those at characters
// 0, 3, 6 ... and the last one, each character of s in one of them, each
// trigram once, at most maxSearchTrigrams. Every book holding s holds them;
// a book holding them apart is dropped by the LIKE condition, and reading
// the lists of a third of the trigrams is the cheaper part (docs/scale.md).
// Each is quoted, so that every character is text, operators, stars and
// quotes included: a double quote is doubled. A NUL would end the query
// text, so it becomes U+0001, as in likePattern. With fewer than three
// characters in s it is "". The trigram tokenizer splits text into
// characters (code points), and s, a folded key, is valid UTF-8, as every
// indexed key is.
func searchTrigrams(s string) string {
	r := []rune(strings.ReplaceAll(s, "\x00", "\x01"))
	if len(r) < 3 {
		return ""
	}
	var terms []string
	for i := 0; len(terms) < maxSearchTrigrams; i += 3 {
		i = min(i, len(r)-3) // the last trigram may overlap the one before
		if t := `"` + strings.ReplaceAll(string(r[i:i+3]), `"`, `""`) + `"`; !slices.Contains(terms, t) {
			terms = append(terms, t)
		}
		if i+3 == len(r) {
			break
		}
	}
	return strings.Join(terms, " AND ")
}

// bookPage returns the statement and arguments that select the page f
// describes, in id order: sel is the SELECT ... FROM books b part, which may
// join users u for the owner's name. postgres says which database runs it.
//
// A substring search is the LIKE condition on the folded keys on both
// databases: the exact answer. On PostgreSQL the trigram indexes serve that
// condition itself (migrations/postgres/0005_search.sql). On SQLite a
// search of at least minSearchLen characters, with no author or owner, also
// joins books_search (migrations/0008_search_rowids.sql) on its trigrams
// and pages by its rowids, which FTS5 yields in order: a term found
// in half the books reads one page of them, a rare one only its own books.
// With an author or owner, that filter's index leads, as before, reading
// that author's or owner's books: a join would add a lookup in the search
// index for each of them.
func bookPage(sel string, f bookFilter, postgres bool) (string, []any) {
	var q strings.Builder
	var args []any
	q.WriteString(sel)
	id := "b.id"
	key := foldKey(f.Q)
	var terms string // the search index's query, where it serves
	if !postgres && f.Author == "" && f.Owner == "" {
		terms = searchTrigrams(key)
	}
	if terms != "" {
		q.WriteString(` JOIN books_search s ON s.rowid = b.id WHERE books_search MATCH ? AND`)
		args = append(args, terms)
		id = "s.rowid"
	} else {
		q.WriteString(` WHERE`)
	}
	q.WriteString(` ` + id + ` > ?`)
	args = append(args, f.After)
	if f.Q != "" {
		q.WriteString(` AND (b.title_key LIKE ? ESCAPE '\' OR b.author_key LIKE ? ESCAPE '\')`)
		p := likePattern(key)
		args = append(args, p, p)
	}
	if f.Author != "" {
		q.WriteString(` AND b.author_key = ?`)
		args = append(args, foldKey(f.Author))
	}
	if f.Owner != "" {
		q.WriteString(` AND b.owner_id = (SELECT id FROM users WHERE username_key = ?)`)
		args = append(args, foldKey(f.Owner))
	}
	q.WriteString(` ORDER BY ` + id + ` LIMIT ?`)
	return q.String(), append(args, f.Limit)
}

// Page selections: the columns of each book, or its doc, which is NULL
// when missing or in another format than docVersion. One column a row, not
// the doc and its version: each column read takes the lock of SQLite's
// connection, and the second column slowed BenchmarkAPI's list-100
// (docs/performance.md).
const selectBooks = `SELECT ` + bookColumns + ` FROM books b JOIN users u ON u.id = b.owner_id`

var selectDocs = `SELECT CASE WHEN b.doc_version = ` + strconv.Itoa(docVersion) + ` THEN b.doc END FROM books b`

// queryPage runs a page's statement. A substring search keeps its request's
// context: with an author or owner it reads all of theirs, and on
// PostgreSQL a pattern without a whole trigram (pg_trgm takes letters and
// digits only) reads every book. On PostgreSQL it is planned for its
// pattern each time (queryFreshPlan): whether the trigram indexes or the id
// order serve it best depends on how many books hold the pattern.
func (st *store) queryPage(ctx context.Context, sel string, f bookFilter) (*sql.Rows, error) {
	query, args := bookPage(sel, f, st.postgres)
	switch {
	case f.Q != "" && st.postgres:
		return queryFreshPlan(ctx, st.r, query, args...)
	case f.Q != "":
		return st.read.search(ctx, query, args...)
	}
	return st.read.lookupRows(ctx, query, args...)
}

// listBooks returns up to f.Limit books in id order after f.After.
func (st *store) listBooks(ctx context.Context, f bookFilter) ([]book, error) {
	rows, err := st.queryPage(ctx, selectBooks, f)
	if err != nil {
		return nil, fmt.Errorf("list books: %w", classify(err))
	}
	defer rows.Close()
	books := []book{}
	var b book
	dest := bookDest(&b)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("list books: %w", classify(err))
		}
		books = append(books, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list books: %w", classify(err))
	}
	return books, nil
}

// appendBooks appends to dst the page f describes, up to f.Limit books in id
// order after f.After, as answers write them and separated by commas. last
// is the id of the page's last book, and more reports whether any book
// follows it. It reads each book's doc, one column, and copies it as it is,
// which costs much less than reading the columns and writing the JSON
// (BenchmarkAPI's list-100). A page with a book whose doc is missing, or in
// another format than docVersion (written by another version), is read
// again from the columns, so every page comes whole from one snapshot.
func (st *store) appendBooks(ctx context.Context, dst []byte, f bookFilter) (_ []byte, last int64, more bool, err error) {
	start := len(dst)
	probe := f
	probe.Limit++ // one more than the page, to learn whether more follow
	rows, err := st.queryPage(ctx, selectDocs, probe)
	if err != nil {
		return dst, 0, false, fmt.Errorf("list books: %w", classify(err))
	}
	defer rows.Close()
	var doc sql.RawBytes
	n, lastDoc := 0, start
	complete := true
	for rows.Next() {
		if n == f.Limit {
			more = true
			break
		}
		if err := rows.Scan(&doc); err != nil {
			return dst[:start], 0, false, fmt.Errorf("list books: %w", classify(err))
		}
		if doc == nil {
			complete = false
			break
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		lastDoc = len(dst)
		dst = append(dst, doc...)
		n++
	}
	if err := rows.Err(); err != nil {
		return dst[:start], 0, false, fmt.Errorf("list books: %w", classify(err))
	}
	if complete && n > 0 {
		last, complete = docID(dst[lastDoc:])
	}
	if complete {
		return dst, last, more, nil
	}
	rows.Close()
	books, err := st.listBooks(ctx, probe)
	if err != nil {
		return dst[:start], 0, false, err
	}
	if more = len(books) > f.Limit; more {
		books = books[:f.Limit]
	}
	dst = dst[:start]
	for i, b := range books {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendBook(dst, b)
		last = b.ID
	}
	return dst, last, more, nil
}

// docID reads the id a doc starts with, {"id":123,...}.
func docID(doc []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(doc, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	i := bytes.IndexByte(rest, ',')
	if i < 0 {
		return 0, false
	}
	id, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	return id, err == nil
}

// mayModify reports errNotFound when the book does not exist and errNotOwner
// when the actor is neither its owner nor an admin.
func mayModify(ctx context.Context, q querier, id int64, actor user) error {
	var owner int64
	if err := q.QueryRowContext(ctx, `SELECT owner_id FROM books WHERE id = ?`, id).Scan(&owner); err != nil {
		return err
	}
	if owner != actor.ID && !actor.Admin {
		return errNotOwner
	}
	return nil
}

// updateBook applies a change to a book the actor may modify and returns it.
func (st *store) updateBook(ctx context.Context, id int64, actor user, c bookChange, now time.Time) (book, error) {
	var b book
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := mayModify(ctx, tx, id, actor); err != nil {
			return err
		}
		set := []string{"updated_at = ?"}
		args := []any{unix(now)}
		if c.Title != nil {
			set = append(set, "title = ?", "title_key = ?")
			args = append(args, *c.Title, foldKey(*c.Title))
		}
		if c.Author != nil {
			set = append(set, "author = ?", "author_key = ?")
			args = append(args, *c.Author, foldKey(*c.Author))
		}
		if c.ISBN != nil || c.ClearISBN {
			set = append(set, "isbn = ?")
			if c.ClearISBN {
				args = append(args, nil)
			} else {
				args = append(args, *c.ISBN)
			}
		}
		args = append(args, id)
		if _, err := tx.ExecContext(ctx, `UPDATE books SET `+strings.Join(set, ", ")+` WHERE id = ?`, args...); err != nil {
			return err
		}
		var err error
		b, err = writeDoc(ctx, tx, id)
		return err
	})
	if err != nil {
		return book{}, fmt.Errorf("update book: %w", err)
	}
	return b, nil
}

// deleteBook removes a book the actor may modify.
func (st *store) deleteBook(ctx context.Context, id int64, actor user) error {
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := mayModify(ctx, tx, id, actor); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM books WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete book: %w", err)
	}
	return nil
}

// endSession ends one login session; its refresh tokens go with it. It
// returns how many sessions ended (0 or 1).
func (st *store) endSession(ctx context.Context, sid string) (int64, error) {
	var n int64
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		n, err = execCount(ctx, tx, `DELETE FROM sessions WHERE id = ?`, sid)
		return err
	})
	return n, err
}

// endUserSessions ends every session of a user and returns how many ended.
func (st *store) endUserSessions(ctx context.Context, userID int64) (int64, error) {
	var n int64
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		n, err = execCount(ctx, tx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		return err
	})
	return n, err
}

// changePassword stores a new hash and ends every session of the user, in
// one transaction, returning how many sessions ended.
func (st *store) changePassword(ctx context.Context, userID int64, hash string) (int64, error) {
	var n int64
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID); err != nil {
			return err
		}
		n, err = execCount(ctx, tx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		return err
	})
	return n, err
}

// execCount runs a statement and returns the rows it affected.
func execCount(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// refreshInSession reports whether the refresh token with this hash is the
// live (unspent, unexpired) one of session sid.
func (st *store) refreshInSession(ctx context.Context, hash []byte, sid string, now time.Time) (bool, error) {
	var n int
	err := st.read.lookup(ctx,
		`SELECT COUNT(*) FROM refresh_tokens WHERE hash = ? AND session_id = ? AND used_at IS NULL AND expires_at > ?`,
		hash, sid, unix(now)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("refresh in session: %w", classify(err))
	}
	return n > 0, nil
}

// rotateRefresh spends the refresh token with hash oldHash and stores newHash
// as its successor in the same session, whose lifetime restarts at now. It
// returns the session's user. An unknown or expired token is errNotFound. A
// token spent before ends its whole session (the reuse means it was stolen)
// and is errReused; that ending is committed.
func (st *store) rotateRefresh(ctx context.Context, oldHash, newHash []byte, now time.Time, ttl time.Duration) (user, error) {
	var u user
	reused := false
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		reused = false
		var sid string
		var expires int64
		var used sql.NullInt64
		err := tx.QueryRowContext(ctx,
			`SELECT session_id, expires_at, used_at FROM refresh_tokens WHERE hash = ?`, oldHash).
			Scan(&sid, &expires, &used)
		if err != nil {
			return err
		}
		if !used.Valid && expires <= unix(now) {
			return errNotFound
		}
		exp := unix(now.Add(ttl))
		// Spent only if still unspent: a token spent before, or by another
		// transaction presenting it at the same time (the one that updates
		// second waited for the first's row lock on PostgreSQL), is reused.
		n, err := execCount(ctx, tx, `UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL`, unix(now), oldHash)
		if err != nil {
			return err
		}
		if n == 0 {
			reused = true
			_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, sid)
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES (?, ?, ?)`, newHash, sid, exp); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET expires_at = ? WHERE id = ?`, exp, sid); err != nil {
			return err
		}
		u, err = scanUser(tx.QueryRowContext(ctx,
			`SELECT `+userColumns+` FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`, sid))
		u.SessionID = sid
		return err
	})
	if err != nil {
		return user{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	if reused {
		return user{}, fmt.Errorf("rotate refresh token: %w", errReused)
	}
	return u, nil
}

// reserveLogin claims the right to check one password for usernameKey from
// address, now. If fewer than maxUser failures for the username (when given)
// and fewer than maxAddr for the address fall within the window, it stores a
// failure in advance and returns its id: the attempt counts until it is known
// to have succeeded (releaseLogin). Otherwise it stores nothing and returns
// the moment enough failures will have aged out. The check and the insert are
// one transaction that no other reservation for the same username or address
// can interleave with, so however many attempts arrive at once, at most the
// limit are let through in a window. usernameKey "" counts for the address
// only. Failures that have left the window are pruned on the way.
func (st *store) reserveLogin(ctx context.Context, usernameKey, address string, now time.Time, window time.Duration, maxUser, maxAddr int) (int64, time.Time, error) {
	since := unix(now.Add(-window))
	var id, retry int64
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		id, retry = 0, 0
		if st.postgres {
			// Other instances' reservations for this username or address wait
			// here; READ COMMITTED (pgTx) lets the queries below see what they
			// stored. SQLite's one writer runs transactions one at a time.
			// The username is locked first, in one key space, and the address
			// in another, so two reservations never wait for each other in a
			// cycle.
			if usernameKey != "" {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(1, hashtext(?))`, usernameKey); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(2, hashtext(?))`, address); err != nil {
				return err
			}
		}
		// The max-th newest failure in the window is the one that must age out.
		nth := func(column, value string, limit int) (int64, error) {
			var at int64
			err := tx.QueryRowContext(ctx,
				`SELECT at FROM login_failures WHERE `+column+` = ? AND at > ? ORDER BY at DESC LIMIT 1 OFFSET ?`,
				value, since, limit-1).Scan(&at)
			if errors.Is(err, sql.ErrNoRows) {
				return 0, nil
			}
			return at, err
		}
		if usernameKey != "" {
			at, err := nth("username_key", usernameKey, maxUser)
			if err != nil {
				return err
			}
			retry = at
		}
		at, err := nth("address", address, maxAddr)
		if err != nil {
			return err
		}
		if retry = max(retry, at); retry != 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE at <= ?`, since); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx,
			`INSERT INTO login_failures (username_key, address, at) VALUES (?, ?, ?) RETURNING id`,
			nullable(usernameKey), address, unix(now)).Scan(&id)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("reserve login attempt: %w", err)
	}
	if retry != 0 {
		return 0, fromUnix(retry).Add(window), nil
	}
	return id, time.Time{}, nil
}

// releaseLogin forgets a reserved attempt that did not fail: its password was
// right, or it was never checked.
func (st *store) releaseLogin(ctx context.Context, id int64) error {
	err := st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("release login attempt: %w", err)
	}
	return nil
}

// clearLoginFailures forgets a username's failures after a successful login.
func (st *store) clearLoginFailures(ctx context.Context, usernameKey string) error {
	return st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE username_key = ?`, usernameKey)
		return err
	})
}
