package main

// The store and HTTP tests on PostgreSQL. TestPostgres runs the tests that
// postgresTests lists as its subtests, where testDB gives each a schema of its
// own instead of a SQLite file; the TestPostgres* tests below are PostgreSQL's
// own. All of them need a database to create schemas in, and are skipped
// without one:
//
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go test -run Postgres .

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// skipNoPostgres says why the PostgreSQL tests did not run.
const skipNoPostgres = "TEST_DATABASE_URL is not set: the PostgreSQL tests need a database to create schemas in, " +
	"e.g. TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'"

// onPostgres reports whether t runs under TestPostgres, so that testDB gives
// it a PostgreSQL schema.
func onPostgres(t *testing.T) bool { return strings.HasPrefix(t.Name(), "TestPostgres/") }

// postgresURL returns TEST_DATABASE_URL, skipping t when it is not set.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		t.Skip(skipNoPostgres)
	}
	return u
}

// postgresAdmin opens TEST_DATABASE_URL itself, outside any test schema, for
// creating and dropping schemas; closed by t.Cleanup.
func postgresAdmin(t *testing.T) *sql.DB {
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
func postgresDB(t *testing.T) string {
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
func pgTrigramExtension(t *testing.T, admin *sql.DB) {
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

// namedTest is a test function and its name.
type namedTest struct {
	name string
	fn   func(*testing.T)
}

// postgresTests lists the tests TestPostgres runs on PostgreSQL: every test
// of the store, the auth and book handlers and the server that is not about
// SQLite itself (see sqliteOnlyTests).
func postgresTests() []namedTest {
	return []namedTest{
		// store_test.go
		{"TestOpenStoreReopenKeepsData", TestOpenStoreReopenKeepsData},
		{"TestStoreUsernamesUniqueInAnyCase", TestStoreUsernamesUniqueInAnyCase},
		{"TestStoreTitlesUniqueInUnicodeCase", TestStoreTitlesUniqueInUnicodeCase},
		{"TestStoreDeleteUserCascades", TestStoreDeleteUserCascades},
		{"TestStoreUserBookCounts", TestStoreUserBookCounts},
		{"TestStoreModifyBookRules", TestStoreModifyBookRules},
		{"TestStoreListBooksFilters", TestStoreListBooksFilters},
		{"TestStoreBookDocsNeverStale", TestStoreBookDocsNeverStale},
		{"TestOpenStoreBuildsSearchIndexOfOlderDatabase", TestOpenStoreBuildsSearchIndexOfOlderDatabase},
		{"TestStoreSessionUser", TestStoreSessionUser},
		{"TestStoreLookupsOfUnstorableText", TestStoreLookupsOfUnstorableText},
		{"TestGroupCommitIsolatesJobs", TestGroupCommitIsolatesJobs},
		{"TestTxAfterClose", TestTxAfterClose},
		// auth_test.go
		{"TestSeedSignup", TestSeedSignup},
		{"TestSeedLogin", TestSeedLogin},
		{"TestSeedGetBooksWithToken", TestSeedGetBooksWithToken},
		{"TestSeedInvalidToken", TestSeedInvalidToken},
		{"TestSignupCreated", TestSignupCreated},
		{"TestSignupConflict", TestSignupConflict},
		{"TestSignupValidation", TestSignupValidation},
		{"TestSignupRefusesAdminMember", TestSignupRefusesAdminMember},
		{"TestSignupHostileInput", TestSignupHostileInput},
		{"TestSignupAcceptedBodies", TestSignupAcceptedBodies},
		{"TestLoginResponse", TestLoginResponse},
		{"TestLoginFailures", TestLoginFailures},
		{"TestLoginHostileInput", TestLoginHostileInput},
		{"TestLoginUnknownUserLooksLikeWrongPassword", TestLoginUnknownUserLooksLikeWrongPassword},
		{"TestLoginPasswordOver72Bytes", TestLoginPasswordOver72Bytes},
		{"TestLoginUpgradesHashCost", TestLoginUpgradesHashCost},
		{"TestTokenDecorator", TestTokenDecorator},
		{"TestDemotedAdminLosesAccessAtOnce", TestDemotedAdminLosesAccessAtOnce},
		{"TestMe", TestMe},
		{"TestAdminRoutesRefuseNonAdmins", TestAdminRoutesRefuseNonAdmins},
		{"TestAdminListUsers", TestAdminListUsers},
		{"TestAdminListUsersBadParameters", TestAdminListUsersBadParameters},
		{"TestAdminUpdateUser", TestAdminUpdateUser},
		{"TestAdminDeleteUser", TestAdminDeleteUser},
		{"TestAuthCommonHeaders", TestAuthCommonHeaders},
		{"TestAuthRequestID", TestAuthRequestID},
		{"TestAuthAccessLog", TestAuthAccessLog},
		{"TestAuthRouteFallback", TestAuthRouteFallback},
		{"TestAuthCleanPathRedirect", TestAuthCleanPathRedirect},
		{"TestLoginThrottlesUsername", TestLoginThrottlesUsername},
		{"TestLoginThrottlesAddress", TestLoginThrottlesAddress},
		{"TestRefresh", TestRefresh},
		{"TestLogout", TestLogout},
		{"TestLogoutAll", TestLogoutAll},
		{"TestChangePassword", TestChangePassword},
		{"TestRefreshRotates", TestRefreshRotates},
		{"TestRefreshConcurrentSameTokenOneWins", TestRefreshConcurrentSameTokenOneWins},
		{"TestRefreshFailures", TestRefreshFailures},
		{"TestKeyRotationAcrossRestart", TestKeyRotationAcrossRestart},
		{"TestLoginThrottleTrustProxy", TestLoginThrottleTrustProxy},
		{"TestLoginThrottleSharedAndPruned", TestLoginThrottleSharedAndPruned},
		{"TestHashSlotsBusy", TestHashSlotsBusy},
		{"TestLoginThrottleHoldsUnderBurst", TestLoginThrottleHoldsUnderBurst},
		{"TestLoginAttemptNotCheckedDoesNotCount", TestLoginAttemptNotCheckedDoesNotCount},
		{"TestLoginWorkHidesCheapHashes", TestLoginWorkHidesCheapHashes},
		{"TestLoginHugeUsername", TestLoginHugeUsername},
		{"TestLoginThrottleJunkForwardedFor", TestLoginThrottleJunkForwardedFor},
		{"TestClientGoneIsNotAServerError", TestClientGoneIsNotAServerError},
		{"TestLifecycleSecretsNotLogged", TestLifecycleSecretsNotLogged},
		{"TestDeletedUserEndsSessions", TestDeletedUserEndsSessions},
		// books_test.go
		{"TestBooksAddBook", TestBooksAddBook},
		{"TestBooksCreate", TestBooksCreate},
		{"TestBooksGet", TestBooksGet},
		{"TestBooksUpdate", TestBooksUpdate},
		{"TestBooksDelete", TestBooksDelete},
		{"TestBooksList", TestBooksList},
		{"TestBooksSearchMatchesScan", TestBooksSearchMatchesScan},
		{"TestBooksHostileInput", TestBooksHostileInput},
		{"TestBooksSeedLiterals", TestBooksSeedLiterals},
		{"TestBooksRouteErrors", TestBooksRouteErrors},
		{"TestBooksConcurrentCreate", TestBooksConcurrentCreate},
		// reliability_test.go
		{"TestConcurrentWriters", TestConcurrentWriters},
		{"TestConcurrentCreatesOfOneTitle", TestConcurrentCreatesOfOneTitle},
		// main_test.go
		{"TestRunServesAndShutsDown", TestRunServesAndShutsDown},
		{"TestRunDrainsInFlightRequests", TestRunDrainsInFlightRequests},
		{"TestRunUserCommands", TestRunUserCommands},
	}
}

// sqliteOnlyTests names the tests TestPostgres does not run, and why.
func sqliteOnlyTests() map[string]string {
	const (
		noDB     = "no database: tokens, HTTP plumbing or configuration only"
		sqlite   = "about SQLite itself: its file, pragmas, result codes or query plans"
		twin     = "about SQLite's migrations (PRAGMA user_version); TestPostgresMigrate is its twin"
		classify = "SQLite's result codes; TestPostgresClassify is its twin"
		file     = "a SQLite file under a killed, full, read-only or broken process or disk"
		logs     = "logging or the debug listener, on a SQLite file: nothing of the store is tested"
	)
	return map[string]string{
		"TestOpenStoreSchemaAndSettings":        sqlite,
		"TestClientAddr":                        noDB,
		"TestHostileBodiesRefused":              noDB,
		"TestMigrateAppliesStepsInOrder":        twin,
		"TestMigrateBrokenStepIsRolledBack":     twin,
		"TestMigrateRefusesBadFileNames":        twin,
		"TestMigrateRefusesNewerDatabase":       twin,
		"TestClassifyRealErrors":                classify,
		"TestStoreListingQueriesUseIndexes":     sqlite,
		"TestOpenStoreFillsDocsOfOlderDatabase": "a SQLite file at schema version 3; TestStoreBookDocsNeverStale runs fillDocs on PostgreSQL",
		"TestCrashKeepsAcknowledgedWrites":      file,
		"TestShutdownUnderLoad":                 file,
		"TestFullDiskAnswers503AndRecovers":     file,
		"TestReadOnlyDatabaseAnswers503":        file,
		"TestStartRefusesUnusableDatabase":      file,
		"TestSoak":                              "opt-in soak of a SQLite child process",
		"TestRunSecretFile":                     "the secret file beside a SQLite database; PostgreSQL requires SECRET_KEY",
		"TestRunTokenTTLPrecedence":             noDB,
		"TestRunRefusesBadConfiguration":        noDB,
		"TestRunHelpPrintsUsage":                noDB,
		"TestTuneGC":                            noDB,
		"TestRunJSONLogs":                       logs,
		"TestRunVersion":                        noDB,
		"TestParseServePrecedence":              noDB,
		"TestPreviousKeysConfig":                noDB,
		"TestCORS":                              noDB,
		"TestAppendBook":                        noDB,
		"TestAppendJSONString":                  noDB,
		"TestServeErrorBody":                    noDB,
		"TestBatchWriterHoldsUntilFlush":        noDB,
		"TestBatchWriterDelay":                  noDB,
		"TestBatchWriterFull":                   noDB,
		"TestBatchWriterConcurrent":             noDB,
		"TestLoggerBatchesAccessLines":          noDB,
		"TestCORSOriginsConfig":                 noDB,
		"TestDebugListener":                     logs,
		"TestBcryptCounters":                    noDB,
		"TestPanicIsRecovered":                  noDB,
		"TestOpenAPIMatchesRoutes":              noDB,
		"TestOpenAPIDocumentShape":              noDB,
		"TestOpenAPIPublicPaths":                noDB,
		"TestVerifyRFC7515A1":                   noDB,
		"TestSignVerifyRoundTrip":               noDB,
		"TestSignHeader":                        noDB,
		"TestVerifyKeyRotation":                 noDB,
		"TestSignKeyIDHidesSecret":              noDB,
		"TestVerifyRefusesForgedTokens":         noDB,
		"TestVerifyAcceptsEdges":                noDB,
		"TestVerifyAllocs":                      noDB,
		"TestHMACSHA256":                        noDB,
		"TestHeaderKidGeneralPath":              noDB,
		"TestVerifyClaimsMatchJSON":             noDB,
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	postgresURL(t)
	for _, tt := range postgresTests() {
		t.Run(tt.name, tt.fn)
	}
}

// TestPostgresListsEveryTest keeps postgresTests whole: every test function
// of the package runs on PostgreSQL, is one of PostgreSQL's own, or is named
// in sqliteOnlyTests with a reason.
func TestPostgresListsEveryTest(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	onPG := map[string]bool{}
	for _, tt := range postgresTests() {
		onPG[tt.name] = true
	}
	skipped := sqliteOnlyTests()
	testFunc := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	seen := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(src), -1) {
			name := m[1]
			seen[name] = true
			switch {
			case strings.HasPrefix(name, "TestPostgres"):
			case onPG[name] && skipped[name] != "":
				t.Errorf("%s (%s) is both in postgresTests and in sqliteOnlyTests", name, f)
			case !onPG[name] && skipped[name] == "":
				t.Errorf("%s (%s) is neither in postgresTests nor in sqliteOnlyTests: run it on PostgreSQL or say why not", name, f)
			}
		}
	}
	for name := range onPG {
		if !seen[name] {
			t.Errorf("postgresTests lists %s, which no test file defines", name)
		}
	}
	for name := range skipped {
		if !seen[name] {
			t.Errorf("sqliteOnlyTests lists %s, which no test file defines", name)
		}
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

	// Transactions that each read a row, then write it, conflict under
	// SERIALIZABLE; the losers are run again until each has had its turn.
	storeBook(t, st, alice, "Counter", "0")
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT CAST(author AS INTEGER) FROM books WHERE title = 'Counter'`).Scan(&n); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, `UPDATE books SET author = ?, author_key = ? WHERE title = 'Counter'`, fmt.Sprint(n+1), fmt.Sprint(n+1))
				return err
			})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("read-modify-write #%d: %v", i, err)
		}
	}
	var got string
	if err := st.r.QueryRow(`SELECT author FROM books WHERE title = 'Counter'`).Scan(&got); err != nil || got != fmt.Sprint(writers) {
		t.Errorf("counter after %d concurrent increments = %q (%v), want %d: none lost", writers, got, err, writers)
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
