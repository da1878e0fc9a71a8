package main

// PostgreSQL for the tests. With TEST_DATABASE_URL set, every store and
// HTTP test runs on PostgreSQL (testDB gives each a schema of its own instead
// of a SQLite file) and the tests about SQLite itself skip; the
// TestPostgres* tests below are PostgreSQL's own, and skip without it:
//
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go test ./...

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// skipNoPostgres says why the PostgreSQL tests did not run.
const skipNoPostgres = "TEST_DATABASE_URL is not set: the PostgreSQL tests need a database to create schemas in, " +
	"e.g. TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'"

// onPostgres reports whether the tests run on PostgreSQL: with
// TEST_DATABASE_URL set, testDB gives each test a schema of its own there
// instead of a SQLite file, and the tests about SQLite itself skip.
func onPostgres() bool { return os.Getenv("TEST_DATABASE_URL") != "" }

// sqliteOnly skips t on PostgreSQL: what it checks is SQLite's alone.
func sqliteOnly(t *testing.T, why string) {
	t.Helper()
	if onPostgres() {
		t.Skip("SQLite only: " + why)
	}
}

// postgresURL returns TEST_DATABASE_URL, skipping t when it is not set.
func postgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		t.Skip(skipNoPostgres)
	}
	return u
}

// postgresAdmin opens TEST_DATABASE_URL itself, outside any test schema, for
// creating and dropping schemas; closed by t.Cleanup.
func postgresAdmin(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", postgresURL(t))
	if err != nil {
		t.Fatalf("open TEST_DATABASE_URL: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// postgresDB creates a new schema on TEST_DATABASE_URL, dropped with all it
// holds by t.Cleanup, and returns a URL whose connections use it.
func postgresDB(t testing.TB) string {
	t.Helper()
	admin := postgresAdmin(t)
	u, err := url.Parse(postgresURL(t))
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	pgTrigramExtension(t, admin)
	var raw [8]byte
	rand.Read(raw[:])
	schema := "test_" + hex.EncodeToString(raw[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema) // pgx sends it as a run-time parameter
	u.RawQuery = q.Encode()
	return u.String()
}

// pgTrigramExtension creates pg_trgm in the public schema of the test
// database, if it is missing. An extension is one per database: were the
// first test's migration (0005_search.sql) to create it, it would land in
// that test's schema, and dropping the schema would take every other
// schema's trigram indexes with it. It is created under the lock migrations
// take, so that none of them sees it half made.
func pgTrigramExtension(t testing.TB, admin *sql.DB) {
	t.Helper()
	tx, err := admin.Begin()
	if err != nil {
		t.Fatalf("create pg_trgm: %v", err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		t.Fatalf("create pg_trgm: %v", err)
	}
	if _, err := tx.Exec(`CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public`); err != nil {
		t.Fatalf("create pg_trgm: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("create pg_trgm: %v", err)
	}
}

func TestPostgresNumberPlaceholders(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT ? + ?`, `SELECT $1 + $2`},
		{`UPDATE t SET a = ?, b = ? WHERE id = ?`, `UPDATE t SET a = $1, b = $2 WHERE id = $3`},
		{`x LIKE ? ESCAPE '\' OR y LIKE ? ESCAPE '\'`, `x LIKE $1 ESCAPE '\' OR y LIKE $2 ESCAPE '\'`},
		{`SELECT '?', 'it''s ?', ?`, `SELECT '?', 'it''s ?', $1`},
		{`SELECT "odd?name" FROM t WHERE a = ?`, `SELECT "odd?name" FROM t WHERE a = $1`},
		{"-- why? because\nSELECT ?", "-- why? because\nSELECT $1"},
		{`SELECT /* a ? here */ ?`, `SELECT /* a ? here */ $1`},
		{`SELECT 'unclosed ?`, `SELECT 'unclosed ?`},
		{`SELECT ? -- trailing ?`, `SELECT $1 -- trailing ?`},
	}
	for _, tt := range tests {
		if got := numberPlaceholders(tt.in); got != tt.want {
			t.Errorf("numberPlaceholders(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPostgresMigrationsMirrorSQLite checks that each schema step exists for
// both databases under the same file name.
func TestPostgresMigrationsMirrorSQLite(t *testing.T) {
	t.Parallel()
	list := func(fsys fs.FS, pattern string) []string {
		t.Helper()
		names, err := fs.Glob(fsys, pattern)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			names[i] = filepath.Base(n)
		}
		return names
	}
	lite, pg := list(migrationFiles, "migrations/*.sql"), list(postgresMigrationFiles, "migrations/postgres/*.sql")
	if len(lite) == 0 || !slices.Equal(lite, pg) {
		t.Errorf("migration files: SQLite %q, PostgreSQL %q; want the same names", lite, pg)
	}
}

// openPostgresTest opens the store on db, closed by t.Cleanup.
func openPostgresTest(t *testing.T, db string) *store {
	t.Helper()
	st, err := openStore(context.Background(), db, defaultMaxConns(db), discardLog())
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	t.Cleanup(func() { st.close() })
	return st
}

// pgRaw opens a PostgreSQL URL without migrating, the way openStore's pool
// sees it (? placeholders); closed by t.Cleanup.
func pgRaw(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := postgresPool(dsn, 2)
	if err != nil {
		t.Fatalf("postgresPool: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// migrationVersions returns the versions schema_migrations records, in order.
func migrationVersions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

// pgTableExists reports whether the schema db uses has a table of that name.
func pgTableExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var n int
	err := db.QueryRow(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`, name).Scan(&n)
	if err != nil {
		t.Fatalf("look up table %s: %v", name, err)
	}
	return n == 1
}

func TestPostgresSchema(t *testing.T) {
	t.Parallel()
	st := openPostgresTest(t, postgresDB(t))
	for _, table := range []string{"users", "sessions", "refresh_tokens", "books", "login_failures", "health", "schema_migrations"} {
		if !pgTableExists(t, st.r, table) {
			t.Errorf("table %s is missing after openStore", table)
		}
	}
	files, _ := fs.Glob(postgresMigrationFiles, "migrations/postgres/*.sql")
	if got := migrationVersions(t, st.r); len(got) != len(files) || got[len(got)-1] != len(files) {
		t.Errorf("schema_migrations versions = %v, want 1 to %d", got, len(files))
	}
	if err := st.ping(context.Background()); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestPostgresMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgRaw(t, postgresDB(t))
	steps := fstest.MapFS{
		"0001_create.sql": {Data: []byte(`CREATE TABLE log (step INTEGER NOT NULL); INSERT INTO log VALUES (1);`)},
		"0002_column.sql": {Data: []byte(`ALTER TABLE log ADD COLUMN note TEXT; INSERT INTO log VALUES (2, 'two');`)},
		"0003_broken.sql": {Data: []byte(`CREATE TABLE half (x INTEGER); INSERT INTO log VALUES (3); INSERT INTO no_such_table VALUES (1);`)},
	}
	err := migratePostgres(ctx, db, steps, discardLog())
	if err == nil || !strings.Contains(err.Error(), "0003_broken.sql") {
		t.Fatalf("migrate with a broken 0003: err = %v, want one naming 0003_broken.sql", err)
	}
	if got := migrationVersions(t, db); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("versions after a broken 0003 = %v, want [1 2]", got)
	}
	if pgTableExists(t, db, "half") || countRows(t, db, "log", "") != 2 {
		t.Errorf("the broken step left table half or a log row; want it rolled back whole")
	}

	steps["0003_broken.sql"] = &fstest.MapFile{Data: []byte(`INSERT INTO log VALUES (3, 'three');`)}
	for range 2 { // the second run has nothing to do
		if err := migratePostgres(ctx, db, steps, discardLog()); err != nil {
			t.Fatalf("migrate after fixing 0003: %v", err)
		}
	}
	if got, n := migrationVersions(t, db), countRows(t, db, "log", ""); !slices.Equal(got, []int{1, 2, 3}) || n != 3 {
		t.Errorf("after fixing 0003: versions %v, log rows %d; want [1 2 3] and 3", got, n)
	}

	delete(steps, "0003_broken.sql")
	err = migratePostgres(ctx, db, steps, discardLog())
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("migrate with 2 steps on a database at version 3: err = %v, want one saying it is newer", err)
	}
	if err := migratePostgres(ctx, db, fstest.MapFS{"0002_gap.sql": {Data: []byte(`SELECT 1;`)}}, discardLog()); err == nil {
		t.Errorf("migrate with a gap in the file names: err = nil, want a refusal")
	}
}

// TestPostgresMigrateConcurrently starts several stores on one new schema at
// once: the advisory lock lets one apply each step while the others wait, so
// all open and each step is applied once. Their connections default to
// SERIALIZABLE, as a database may be set up to: a migration transaction
// that took its snapshot before the lock would not see the step the lock's
// previous holder committed.
func TestPostgresMigrateConcurrently(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(postgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("default_transaction_isolation", "serializable")
	u.RawQuery = q.Encode()
	db := u.String()
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := openStore(context.Background(), db, 2, discardLog())
			if err == nil {
				st.close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("openStore #%d of %d at once: %v", i, n, err)
		}
	}
	st := openPostgresTest(t, db)
	files, _ := fs.Glob(postgresMigrationFiles, "migrations/postgres/*.sql")
	if got := migrationVersions(t, st.r); len(got) != len(files) {
		t.Errorf("schema_migrations after %d concurrent starts: versions %v, want each of 1 to %d once", n, got, len(files))
	}
}

func TestPostgresClassify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openPostgresTest(t, postgresDB(t))
	checkConstraintErrors(t, st)
	alice, _, err := st.credentials(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}

	// A standby, or a database set read-only, refuses writes.
	tx, err := st.w.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM users`)
	tx.Rollback()
	if !errors.Is(classify(err), errUnavailable) {
		t.Errorf("classify(write in a read-only transaction: %v) = %v, want errUnavailable", err, classify(err))
	}

	// A connection the server ends (an administrator, a restart) is lost.
	conn, err := st.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := postgresAdmin(t).Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	err = conn.QueryRowContext(ctx, `SELECT 1`).Scan(&pid)
	conn.Close()
	if !errors.Is(classify(err), errUnavailable) {
		t.Errorf("classify(query on a terminated connection: %v) = %v, want errUnavailable", err, classify(err))
	}

	// Nothing listens on port 1.
	_, err = openStore(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", 1, discardLog())
	if err == nil || !strings.Contains(err.Error(), "postgres://127.0.0.1:1/postgres") || strings.Contains(err.Error(), "sslmode") {
		t.Errorf("openStore on a closed port: err = %v, want one naming postgres://127.0.0.1:1/postgres without its parameters", err)
	}
	down := &store{postgres: true, w: pgRaw(t, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")}
	if err := down.tx(ctx, func(context.Context, *sql.Tx) error { return nil }); !errors.Is(err, errUnavailable) {
		t.Errorf("tx with the server unreachable: err = %v, want errUnavailable", err)
	}

	// A server that answers but refuses the connection (here: no such
	// database; also a dropped role or a database closed to connections)
	// is unavailable too, for reads and writes alike.
	u, err := url.Parse(postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/bookapi_no_such_database"
	refused := pgRaw(t, u.String())
	if _, err := userInfo(ctx, refused, true, "p"); !errors.Is(err, errUnavailable) {
		t.Errorf("read with the connection refused by the server: err = %v, want errUnavailable", err)
	}
	gone := &store{postgres: true, w: refused}
	if err := gone.tx(ctx, func(context.Context, *sql.Tx) error { return nil }); !errors.Is(err, errUnavailable) {
		t.Errorf("tx with the connection refused by the server: err = %v, want errUnavailable", err)
	}

	// A role over its connection limit: too many connections (53300).
	var raw [4]byte
	rand.Read(raw[:])
	role := "bookapi_limited_" + hex.EncodeToString(raw[:])
	admin := postgresAdmin(t)
	if _, err := admin.Exec(`CREATE ROLE ` + role + ` LOGIN CONNECTION LIMIT 1`); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() { admin.Exec(`DROP ROLE ` + role) })
	lu, err := url.Parse(postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	lu.User = url.User(role)
	limited := pgRaw(t, lu.String())
	held, err := limited.Conn(ctx)
	if err != nil {
		t.Fatalf("the role's one connection: %v", err)
	}
	defer held.Close()
	crowded := &store{postgres: true, w: limited}
	if err := crowded.tx(ctx, func(context.Context, *sql.Tx) error { return nil }); !errors.Is(err, errUnavailable) || !strings.Contains(err.Error(), "53300") {
		t.Errorf("tx over the role's connection limit: err = %v, want errUnavailable for SQLSTATE 53300", err)
	}

	// Two transactions that lock two rows in opposite orders deadlock;
	// PostgreSQL aborts one (40P01, which it says may be retried), and tx
	// runs it again, so both succeed.
	storeBook(t, st, alice, "First", "0")
	storeBook(t, st, alice, "Second", "0")
	var wg sync.WaitGroup
	var locked sync.WaitGroup // each has locked its first row
	locked.Add(2)
	errs := make([]error, 2)
	runs := make([]int, 2)
	for i, order := range [][2]string{{"First", "Second"}, {"Second", "First"}} {
		once := sync.OnceFunc(func() { locked.Done(); locked.Wait() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				runs[i]++
				for j, title := range order {
					if _, err := tx.ExecContext(ctx, `UPDATE books SET author = author || 'x', author_key = author_key || 'x' WHERE title = ?`, title); err != nil {
						return err
					}
					if j == 0 {
						once() // only the first run waits for the other
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("deadlocked transaction %d: %v, want it retried until it commits", i, err)
		}
	}
	if runs[0]+runs[1] < 3 {
		t.Errorf("deadlocked transactions ran %d and %d times; want one of them run again", runs[0], runs[1])
	}
	var got string
	if err := st.r.QueryRow(`SELECT author FROM books WHERE title = 'First'`).Scan(&got); err != nil || got != "0xx" {
		t.Errorf("author after both transactions = %q (%v), want 0xx", got, err)
	}
}

// TestPostgresErrorClasses checks how errors PostgreSQL or the connection
// give are classed, for those no test can make the server give.
func TestPostgresErrorClasses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want error // nil: none of the store's sentinels
	}{
		{&pgconn.PgError{Code: "57P01"}, errUnavailable}, // admin_shutdown
		{&pgconn.PgError{Code: "57P02"}, errUnavailable}, // crash_shutdown
		{&pgconn.PgError{Code: "57P03"}, errUnavailable}, // cannot_connect_now: starting up
		{&pgconn.PgError{Code: "53300"}, errUnavailable}, // too_many_connections
		{&pgconn.PgError{Code: "53100"}, errUnavailable}, // disk_full
		{&pgconn.PgError{Code: "08006"}, errUnavailable}, // connection_failure
		{&pgconn.PgError{Code: "25006"}, errUnavailable}, // read_only_sql_transaction
		{&pgconn.PgError{Code: "40001"}, errSerialization},
		{&pgconn.PgError{Code: "40P01"}, errSerialization},
		{&pgconn.PgError{Code: "23505"}, errConflict},
		{&pgconn.PgError{Code: "23503"}, nil}, // a foreign key violation is a bug of ours
		{&pgconn.PgError{Code: "42P01"}, nil}, // so is a missing table
		{fmt.Errorf("insert book: %w", pgconn.ErrConnClosed), errUnavailable},
		{fmt.Errorf("read: %w", io.EOF), errUnavailable},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), errUnavailable},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, errUnavailable},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), errUnavailable},
		{driver.ErrBadConn, errUnavailable},
		{errors.New("something else"), nil},
	} {
		got := classify(tc.err)
		for _, sentinel := range []error{errUnavailable, errSerialization, errConflict} {
			if want := errors.Is(tc.want, sentinel); errors.Is(got, sentinel) != want {
				t.Errorf("classify(%v) = %v; errors.Is(_, %v) = %v, want %v", tc.err, got, sentinel, !want, want)
			}
		}
	}
}

// TestPostgresSearchUsesIndexes checks that the trigram indexes of title_key
// and author_key serve a search (with the plans that read the table or its
// primary key turned off, since on a table this small they cost less), and
// that a term found in half the books reads the books in id order until the
// page is full rather than sorting every book found.
func TestPostgresSearchUsesIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openPostgresTest(t, postgresDB(t))
	alice := storeUser(t, st, "alice", false)
	if _, err := st.w.ExecContext(ctx, `INSERT INTO books (title, title_key, author, author_key, owner_id, created_at, updated_at)
		SELECT t, lower(t), 'Author ' || (i % 50), 'author ' || (i % 50), ?, 0, 0
		FROM (SELECT i, CASE WHEN i % 2 = 0 THEN 'The book ' ELSE 'A volume ' END || md5(i::text) AS t
			FROM generate_series(1, 20000) AS i) AS g`, alice.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.w.ExecContext(ctx, `ANALYZE books`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		filter bookFilter
		set    []string // planner settings for the EXPLAIN
		want   []string
		not    []string
	}{
		{"rare", bookFilter{Q: "quokka", Limit: 101}, []string{"enable_seqscan", "enable_indexscan"},
			[]string{"books_title_search", "books_author_search"}, []string{"Seq Scan"}},
		{"common", bookFilter{Q: "the book", Limit: 101}, nil, []string{"books_pkey"}, []string{"Seq Scan", "Sort"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := st.r.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			for _, name := range tc.set {
				if _, err := tx.ExecContext(ctx, `SET LOCAL `+name+` = off`); err != nil {
					t.Fatal(err)
				}
			}
			query, args := bookPage(selectDocs, tc.filter, true)
			rows, err := tx.QueryContext(ctx, "EXPLAIN "+query, args...)
			if err != nil {
				t.Fatalf("EXPLAIN: %v", err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			rows.Close()
			text := strings.Join(plan, "\n")
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("search for a %s term: plan\n%s\ndoes not use %s", tc.name, text, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(text, n) {
					t.Errorf("search for a %s term: plan\n%s\nhas a %s", tc.name, text, n)
				}
			}
		})
	}
}

// TestPostgresSearchPlannedEachTime checks that a search runs as an
// unnamed statement, which PostgreSQL plans for its pattern every time,
// rather than as a prepared one, for which it may keep a plan made for no
// pattern (queryFreshPlan): on a pool of one connection, ten searches leave
// no prepared statement with the search's condition, while ten lists by
// author leave theirs.
func TestPostgresSearchPlannedEachTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := postgresDB(t)
	st, err := openStore(ctx, db, 1, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	alice := storeUser(t, st, "alice", false)
	storeBook(t, st, alice, "The Quokka", "Ann")
	prepared := func(like string) int {
		t.Helper()
		var n int
		if err := st.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE ?`, like).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, f := range []bookFilter{{Q: "quokka", Limit: 10}, {Author: "ann", Limit: 10}} {
		for range 10 {
			if books, err := st.listBooks(ctx, f); err != nil || len(books) != 1 {
				t.Fatalf("listBooks(%+v) = %d books, %v; want 1", f, len(books), err)
			}
		}
	}
	if n := prepared(`%title_key LIKE%`); n != 0 {
		t.Errorf("after 10 searches: %d prepared statements search, want 0", n)
	}
	if n := prepared(`%author_key = %`); n == 0 {
		t.Errorf("after 10 lists by author: no prepared statement lists by author; want the reader's")
	}
}

// pgInstance is one of the instances of TestPostgresSeveralInstances.
type pgInstance struct {
	name string
	*child
}

// TestPostgresSeveralInstances runs two bookapi processes on one database and
// checks that they act as one service: tokens, sessions, spent refresh
// tokens, login throttling and books are shared at once.
func TestPostgresSeveralInstances(t *testing.T) {
	t.Parallel()
	db := postgresDB(t)
	bin := buildBinary(t)
	a := pgInstance{"A", startChild(t, bin, db)}
	b := pgInstance{"B", startChild(t, bin, db)}
	want := func(inst pgInstance, method, path string, body any, status int, headers ...string) *response {
		t.Helper()
		r := inst.do(t, method, path, body, headers...)
		if r.status != status {
			t.Fatalf("%s on %s: status = %d, want %d; body %s", method+" "+path, inst.name, r.status, status, r.body)
		}
		return r
	}
	creds := map[string]string{"username": "alice", "password": "password-of-alice"}
	want(a, "POST", "/signup", creds, http.StatusCreated)
	login := want(a, "POST", "/login", creds, http.StatusCreated).json(t)
	token, refresh := login["token"].(string), login["refresh_token"].(string)

	// A token issued by A works on B, and a book created on A is listed by B.
	want(b, "GET", "/me", nil, http.StatusOK, bearer(token)...)
	want(a, "POST", "/bookapi/books", map[string]string{"title": "Made on A", "author": "Someone"}, http.StatusCreated, bearer(token)...)
	if list := want(b, "GET", "/bookapi/books", nil, http.StatusOK, bearer(token)...); !strings.Contains(string(list.body), "Made on A") {
		t.Errorf("GET /bookapi/books on B: %s, want the book made on A", list.body)
	}

	// A refresh token spent on A is spent on B: presenting it there is a
	// reuse, which ends the session on both.
	renewed := want(a, "POST", "/refresh", map[string]string{"refresh_token": refresh}, http.StatusCreated).json(t)
	want(b, "POST", "/refresh", map[string]string{"refresh_token": refresh}, http.StatusUnauthorized)
	want(a, "GET", "/me", nil, http.StatusUnauthorized, bearer(renewed["token"].(string))...)
	want(b, "POST", "/refresh", map[string]string{"refresh_token": renewed["refresh_token"].(string)}, http.StatusUnauthorized)

	// Logout on A ends the session on B at once.
	second := want(b, "POST", "/login", creds, http.StatusCreated).json(t)["token"].(string)
	want(b, "GET", "/me", nil, http.StatusOK, bearer(second)...)
	want(a, "POST", "/logout", nil, http.StatusOK, bearer(second)...)
	want(b, "GET", "/me", nil, http.StatusUnauthorized, bearer(second)...)

	// Failed logins count on both: five (the default limit), alternating,
	// throttle the username on either.
	wrong := map[string]string{"username": "alice", "password": "wrong password"}
	for i := range 5 {
		inst := []pgInstance{a, b}[i%2]
		want(inst, "POST", "/login", wrong, http.StatusUnauthorized)
	}
	for _, inst := range []pgInstance{a, b} {
		want(inst, "POST", "/login", creds, http.StatusTooManyRequests)
	}

	for _, inst := range []pgInstance{a, b} {
		want(inst, "GET", "/readyz", nil, http.StatusOK)
		inst.stop(t)
		if logs := inst.logs(t); strings.Contains(logs, "level=ERROR") {
			t.Errorf("instance %s logged an error:\n%s", inst.name, logs)
		}
	}
}

// TestPostgresNeedsSecretKey checks that a PostgreSQL URL without SECRET_KEY
// is refused before anything is opened: instances must share the secret, so
// none may make up its own. It needs no database.
func TestPostgresNeedsSecretKey(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"postgres://nowhere.invalid/x", "postgresql://nowhere.invalid/x"} {
		_, err := parseServe([]string{"-db", db}, runEnv(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "SECRET_KEY") {
			t.Errorf("parseServe(-db %s) without SECRET_KEY: err = %v, want one naming SECRET_KEY", db, err)
		}
		if _, err := parseServe([]string{"-db", db}, runEnv(map[string]string{"SECRET_KEY": testSecret}), io.Discard); err != nil {
			t.Errorf("parseServe(-db %s) with SECRET_KEY: %v", db, err)
		}
	}
}

func TestPostgresRedactDSN(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"bookapi.db", "bookapi.db"},
		{"file:/srv/bookapi.db?mode=ro", "file:/srv/bookapi.db?mode=ro"},
		{"file:///srv/my books.db", "file:///srv/my books.db"},
		{"/srv/a@b.db", "/srv/a@b.db"},
		{"postgres://bookapi@db.example/bookapi", "postgres://bookapi@db.example/bookapi"},
		{"postgres://bookapi:sekrit@db.example/bookapi", "postgres://bookapi:xxxxx@db.example/bookapi"},
		{"postgresql://bookapi:sekrit@db.example:5433/bookapi?sslmode=require", "postgresql://bookapi:xxxxx@db.example:5433/bookapi?sslmode=require"},
		{"postgres://bookapi@db.example/bookapi?sslmode=disable&password=sekrit", "postgres://bookapi@db.example/bookapi?sslmode=disable&password=xxxxx"},
		{"postgres://db.example/bookapi?PassWord=sekrit&pass%77ord=sekrit&password", "postgres://db.example/bookapi?PassWord=xxxxx&pass%77ord=xxxxx&password=xxxxx"},
		{"postgres://db.example/bookapi?sslpassword=sekrit&sslkey=/k", "postgres://db.example/bookapi?sslpassword=xxxxx&sslkey=/k"},
		{"postgres://bookapi:p%40ss@db.example/bookapi", "postgres://bookapi:xxxxx@db.example/bookapi"},
		{"-db=postgres://bookapi:sekrit@db.example/bookapi", "-db=postgres://bookapi:xxxxx@db.example/bookapi"},
		{"--db=postgres://bookapi:sekrit@db.example/bookapi", "--db=postgres://bookapi:xxxxx@db.example/bookapi"},
		{"postgress://bookapi:sekrit@db.example/bookapi", "postgress://bookapi:xxxxx@db.example/bookapi"},
		{"POSTGRES://bookapi:sekrit@db.example/bookapi", "POSTGRES://bookapi:xxxxx@db.example/bookapi"},
		{"postgres://bookapi:se%zzkrit@db.example/bookapi", "postgres://xxxxx"},
		{"postgres://bookapi:se krit@db.example/bookapi", "postgres://xxxxx"},
	} {
		if got := redactDSN(tt.in); got != tt.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPostgresRunMasksPassword serves from a PostgreSQL URL that holds a
// password, as user information and as a parameter (the trust
// authentication of the test server ignores both), and checks that neither
// appears in the logs or on the debug listener, whose command line shows
// the one run was given, masked.
func TestPostgresRunMasksPassword(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(postgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	const password = "sekrit-4f9c2e"
	u.User = url.UserPassword(u.User.Username(), password+"-1")
	q := u.Query()
	q.Set("password", password+"-2")
	u.RawQuery = q.Encode()
	rs := startRun(t, u.String(), map[string]string{"SECRET_KEY": testSecret}, "-debug-addr", "127.0.0.1:0", "-log-format", "json")
	rs.signupLogin(t, "alice", "password-of-alice")
	rs.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "wrong password"})
	m := regexp.MustCompile(`"msg":"debug listening","addr":"([^"]+)"`).FindStringSubmatch(rs.stderr.String())
	if m == nil {
		t.Fatalf("no debug listening line in:\n%s", rs.stderr)
	}
	want := []string{"bookapi", "-addr", "127.0.0.1:0", "-db", redactDSN(u.String()), "-bcrypt-cost", "4", "-debug-addr", "127.0.0.1:0", "-log-format", "json"}
	if strings.Contains(want[4], password) || !strings.Contains(want[4], "xxxxx") {
		t.Fatalf("redactDSN(%s) = %s, want the password masked", u, want[4])
	}
	vars := get(t, rs.client, "http://"+m[1]+"/debug/vars")
	var all struct{ Cmdline []string }
	if err := json.Unmarshal(vars, &all); err != nil {
		t.Fatalf("GET /debug/vars: %v", err)
	}
	if !slices.Equal(all.Cmdline, want) {
		t.Errorf("GET /debug/vars: cmdline = %q, want %q", all.Cmdline, want)
	}
	if cmdline := get(t, rs.client, "http://"+m[1]+"/debug/pprof/cmdline"); string(cmdline) != strings.Join(want, "\x00") {
		t.Errorf("GET /debug/pprof/cmdline = %q, want %q", cmdline, strings.Join(want, "\x00"))
	}
	rs.stop(t)
	for what, text := range map[string]string{"stderr": rs.stderr.String(), "/debug/vars": string(vars)} {
		if strings.Contains(text, password) {
			t.Errorf("%s holds the database password:\n%s", what, text)
		}
	}
}

// get fetches url, which must answer 200, and returns the body.
func get(t *testing.T, client *http.Client, url string) []byte {
	t.Helper()
	r, err := exchange(client, url, "GET", "", nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status = %d, want 200; body %s", url, r.status, r.body)
	}
	return r.body
}

func TestPostgresConnectTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want time.Duration
	}{
		{"postgres://postgres@127.0.0.1:5432/bookapi", pgConnectTimeout},
		{"postgres://postgres@127.0.0.1:5432/bookapi?connect_timeout=2", 2 * time.Second},
	} {
		cfg, err := pgConfig(tc.url)
		if err != nil {
			t.Fatalf("pgConfig(%s): %v", tc.url, err)
		}
		if cfg.ConnectTimeout != tc.want {
			t.Errorf("pgConfig(%s): ConnectTimeout = %v, want %v", tc.url, cfg.ConnectTimeout, tc.want)
		}
	}
}
