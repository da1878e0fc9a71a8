package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
	"unicode/utf8"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// openTestStore opens a store on a new database (testDB), closed by
// t.Cleanup.
func openTestStore(t testing.TB) *store {
	t.Helper()
	st, err := openStore(context.Background(), testDB(t), defaultMaxConns(testDB(t)), discardLog())
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	t.Cleanup(func() {
		if err := st.close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// openRawDB opens the SQLite file at path with the writer's settings but
// without migrating it, as migrate sees it; closed by t.Cleanup.
func openRawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		t.Fatalf("sql.Open(%s): %v", path, err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// storeUser creates a user with a placeholder hash, failing the test on error.
func storeUser(t testing.TB, st *store, name string, admin bool) user {
	t.Helper()
	u, err := st.createUser(context.Background(), "pid-"+strings.ToLower(name), name, "hash-of-"+name, admin, testStart)
	if err != nil {
		t.Fatalf("createUser(%q): %v", name, err)
	}
	return u
}

// storeBook creates a book owned by owner, failing the test on error.
func storeBook(t *testing.T, st *store, owner user, title, author string) book {
	t.Helper()
	b, err := st.createBook(context.Background(), owner.ID, title, author, "", testStart)
	if err != nil {
		t.Fatalf("createBook(%q): %v", title, err)
	}
	return b
}

// countRows returns the rows of table matching the optional WHERE clause
// where, read through db.
func countRows(t *testing.T, db *sql.DB, table, where string, args ...any) int {
	t.Helper()
	q := "SELECT COUNT(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// userVersion returns PRAGMA user_version of db.
func userVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatalf("PRAGMA user_version: %v", err)
	}
	return v
}

// tableExists reports whether db has a table of that name.
func tableExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil {
		t.Fatalf("look up table %s: %v", name, err)
	}
	return n == 1
}

// connPragmas reads the settings every store connection must carry from one
// connection.
func connPragmas(t *testing.T, c *sql.Conn) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, p := range []string{"journal_mode", "foreign_keys", "synchronous", "busy_timeout", "query_only"} {
		var v string
		if err := c.QueryRowContext(context.Background(), "PRAGMA "+p).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", p, err)
		}
		got[p] = v
	}
	return got
}

func TestOpenStoreSchemaAndSettings(t *testing.T) {
	sqliteOnly(t, "about SQLite itself: its file, pragmas, result codes or query plans")
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)

	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v, %d files", err, len(files))
	}
	if v := userVersion(t, st.w); v != len(files) {
		t.Errorf("PRAGMA user_version = %d, want %d (one per migration file)", v, len(files))
	}
	for _, table := range []string{"users", "sessions", "refresh_tokens", "books"} {
		if !tableExists(t, st.w, table) {
			t.Errorf("table %s is missing after openStore", table)
		}
	}

	want := map[string]string{"journal_mode": "wal", "foreign_keys": "1", "synchronous": "2", "busy_timeout": "5000"}
	check := func(name string, c *sql.Conn, queryOnly string) {
		t.Helper()
		got := connPragmas(t, c)
		for p, w := range want {
			if got[p] != w {
				t.Errorf("%s: PRAGMA %s = %q, want %q", name, p, got[p], w)
			}
		}
		if got["query_only"] != queryOnly {
			t.Errorf("%s: PRAGMA query_only = %q, want %q", name, got["query_only"], queryOnly)
		}
	}
	wc, err := st.w.Conn(ctx)
	if err != nil {
		t.Fatalf("writer connection: %v", err)
	}
	check("writer", wc, "0")
	wc.Close()
	// Two reader connections at once: the pool must open a second one, and
	// it must carry the settings too.
	r1, err := st.r.Conn(ctx)
	if err != nil {
		t.Fatalf("reader connection: %v", err)
	}
	defer r1.Close()
	r2, err := st.r.Conn(ctx)
	if err != nil {
		t.Fatalf("second reader connection: %v", err)
	}
	defer r2.Close()
	check("reader 1", r1, "1")
	check("reader 2", r2, "1")

	if _, err := r1.ExecContext(ctx, `INSERT INTO users (public_id, username, username_key, password_hash, created_at)
		VALUES ('p', 'reader', 'reader', 'h', 0)`); err == nil {
		t.Errorf("INSERT through the reader: err = nil, want a refusal (query_only)")
	}
	if n := countRows(t, st.w, "users", ""); n != 0 {
		t.Errorf("users after an INSERT through the reader: %d rows, want 0", n)
	}
}

func TestOpenStoreReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := testDB(t)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	st, err := openStore(ctx, path, defaultMaxConns(path), log)
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	alice := storeUser(t, st, "alice", false)
	storeBook(t, st, alice, "Dune", "Frank Herbert")
	if err := st.close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	st, err = openStore(ctx, path, defaultMaxConns(path), log)
	if err != nil {
		t.Fatalf("openStore a second time: %v", err)
	}
	defer st.close()
	if _, _, err := st.credentials(ctx, "alice"); err != nil {
		t.Errorf("credentials(alice) after reopening: %v", err)
	}
	if n := countRows(t, st.r, "books", ""); n != 1 {
		t.Errorf("books after reopening: %d, want 1", n)
	}
	// A new database is created, and one that is up to date opened, in
	// silence: only upgrades are logged.
	if strings.Contains(logs.String(), "schema") {
		t.Errorf("creating and reopening a database logged\n%s\nwant no schema step", logs)
	}
}

func TestMigrateAppliesStepsInOrder(t *testing.T) {
	sqliteOnly(t, "about SQLite's migrations (PRAGMA user_version); TestPostgresMigrate is its twin")
	t.Parallel()
	ctx := context.Background()
	db := openRawDB(t, filepath.Join(t.TempDir(), "m.db"))

	// Each step needs the one before it, so they only work in order.
	steps := fstest.MapFS{
		"0001_create.sql": {Data: []byte(`CREATE TABLE log (step INTEGER NOT NULL);
			INSERT INTO log VALUES (1);`)},
		"0002_column.sql": {Data: []byte(`ALTER TABLE log ADD COLUMN note TEXT;
			INSERT INTO log VALUES (2, 'two');`)},
		"0003_index.sql": {Data: []byte(`CREATE INDEX log_note ON log(note);
			INSERT INTO log VALUES (3, 'three');`)},
		"README.md": {Data: []byte("not a migration")},
	}
	if err := migrate(ctx, db, steps, discardLog()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if v := userVersion(t, db); v != 3 {
		t.Errorf("user_version = %d, want 3", v)
	}
	rows, err := db.Query(`SELECT step FROM log ORDER BY rowid`)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	var order []int
	for rows.Next() {
		var s int
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("scan: %v", err)
		}
		order = append(order, s)
	}
	rows.Close()
	if fmt.Sprint(order) != "[1 2 3]" {
		t.Errorf("steps applied in order %v, want [1 2 3]", order)
	}

	// Re-running is a no-op: nothing is applied twice.
	if err := migrate(ctx, db, steps, discardLog()); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if n := countRows(t, db, "log", ""); n != 3 {
		t.Errorf("log rows after re-running migrate: %d, want 3", n)
	}

	// A new step is applied on its own.
	steps["0004_more.sql"] = &fstest.MapFile{Data: []byte(`INSERT INTO log VALUES (4, 'four');`)}
	if err := migrate(ctx, db, steps, discardLog()); err != nil {
		t.Fatalf("migrate with a fourth step: %v", err)
	}
	if v, n := userVersion(t, db), countRows(t, db, "log", ""); v != 4 || n != 4 {
		t.Errorf("after a fourth step: user_version = %d, log rows = %d; want 4 and 4", v, n)
	}
}

func TestMigrateBrokenStepIsRolledBack(t *testing.T) {
	sqliteOnly(t, "about SQLite's migrations (PRAGMA user_version); TestPostgresMigrate is its twin")
	t.Parallel()
	ctx := context.Background()
	db := openRawDB(t, filepath.Join(t.TempDir(), "m.db"))
	steps := fstest.MapFS{
		"0001_good.sql": {Data: []byte(`CREATE TABLE good (x INTEGER);`)},
		// The first statement works; the second does not.
		"0002_broken.sql": {Data: []byte(`CREATE TABLE half (x INTEGER);
			INSERT INTO good VALUES (1);
			INSERT INTO no_such_table VALUES (1);`)},
		"0003_later.sql": {Data: []byte(`CREATE TABLE later (x INTEGER);`)},
	}
	err := migrate(ctx, db, steps, discardLog())
	if err == nil {
		t.Fatalf("migrate with a broken 0002: err = nil, want an error")
	}
	if !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Errorf("migrate error %q does not name 0002_broken.sql", err)
	}
	if v := userVersion(t, db); v != 1 {
		t.Errorf("user_version after a broken 0002 = %d, want 1", v)
	}
	if tableExists(t, db, "half") {
		t.Errorf("table half of the broken step exists; want the whole step rolled back")
	}
	if n := countRows(t, db, "good", ""); n != 0 {
		t.Errorf("rows the broken step inserted into good: %d, want 0", n)
	}
	if tableExists(t, db, "later") {
		t.Errorf("step 0003 ran after the broken 0002")
	}

	// Once fixed, migration resumes from the last good step.
	steps["0002_broken.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE half (x INTEGER);`)}
	if err := migrate(ctx, db, steps, discardLog()); err != nil {
		t.Fatalf("migrate after fixing 0002: %v", err)
	}
	if v := userVersion(t, db); v != 3 {
		t.Errorf("user_version after fixing 0002 = %d, want 3", v)
	}
}

func TestMigrateRefusesBadFileNames(t *testing.T) {
	sqliteOnly(t, "about SQLite's migrations (PRAGMA user_version); TestPostgresMigrate is its twin")
	t.Parallel()
	step := func(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }
	tests := []struct {
		name  string
		files fstest.MapFS
	}{
		{"gap", fstest.MapFS{"0001_a.sql": step("CREATE TABLE a (x);"), "0003_c.sql": step("CREATE TABLE c (x);")}},
		{"starts at 2", fstest.MapFS{"0002_a.sql": step("CREATE TABLE a (x);")}},
		{"duplicate number", fstest.MapFS{"0001_a.sql": step("CREATE TABLE a (x);"), "0001_b.sql": step("CREATE TABLE b (x);")}},
		{"no number", fstest.MapFS{"init.sql": step("CREATE TABLE a (x);")}},
		{"no underscore", fstest.MapFS{"0001-init.sql": step("CREATE TABLE a (x);")}},
		{"not a number", fstest.MapFS{"00x1_init.sql": step("CREATE TABLE a (x);")}},
		{"zero", fstest.MapFS{"0000_init.sql": step("CREATE TABLE a (x);")}},
		{"not four digits", fstest.MapFS{"1_init.sql": step("CREATE TABLE a (x);")}},
		{"five digits", fstest.MapFS{"00001_init.sql": step("CREATE TABLE a (x);")}},
		{"signed", fstest.MapFS{"+001_init.sql": step("CREATE TABLE a (x);")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := openRawDB(t, filepath.Join(t.TempDir(), "m.db"))
			err := migrate(context.Background(), db, tt.files, discardLog())
			if err == nil {
				t.Fatalf("migrate(%v): err = nil, want a refusal of the file name", names(tt.files))
			}
			if v := userVersion(t, db); v != 0 {
				t.Errorf("migrate(%v): user_version = %d, want 0 (nothing applied)", names(tt.files), v)
			}
			if tableExists(t, db, "a") {
				t.Errorf("migrate(%v): table a was created; want nothing applied", names(tt.files))
			}
		})
	}
}

// names lists the files of a MapFS, for failure messages.
func names(m fstest.MapFS) []string {
	var out []string
	for name := range m {
		out = append(out, name)
	}
	return out
}

func TestMigrateRefusesNewerDatabase(t *testing.T) {
	sqliteOnly(t, "about SQLite's migrations (PRAGMA user_version); TestPostgresMigrate is its twin")
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "future.db")
	db := openRawDB(t, path)
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatalf("set user_version: %v", err)
	}
	err := migrate(ctx, db, fstest.MapFS{"0001_a.sql": {Data: []byte("CREATE TABLE a (x);")}}, discardLog())
	if err == nil || !strings.Contains(err.Error(), "99") || !strings.Contains(err.Error(), "newer") {
		t.Errorf("migrate on user_version 99 with 1 step: err = %v, want an error saying version 99 is newer", err)
	}
	if tableExists(t, db, "a") {
		t.Errorf("migrate on a newer database created table a")
	}
	db.Close()

	st, err := openStore(ctx, path, defaultMaxConns(path), discardLog())
	if err == nil {
		st.close()
		t.Fatalf("openStore on user_version 99: err = nil, want a refusal")
	}
	if !strings.Contains(err.Error(), "newer") || strings.Contains(err.Error(), "\n") {
		t.Errorf("openStore on user_version 99: err = %q, want one line saying the database is newer", err)
	}
	db = openRawDB(t, path)
	if v := userVersion(t, db); v != 99 {
		t.Errorf("user_version after the refused openStore = %d, want 99 (untouched)", v)
	}
}

func TestStoreUsernamesUniqueInAnyCase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	storeUser(t, st, "Alice", false)
	for _, name := range []string{"Alice", "alice", "ALICE", "aLiCe"} {
		_, err := st.createUser(ctx, "other-"+name, name, "h", false, testStart)
		if !errors.Is(err, errConflict) {
			t.Errorf("createUser(%q) after Alice: err = %v, want errConflict", name, err)
		}
	}
	if _, err := st.createUser(ctx, "pid-alice", "bob", "h", false, testStart); !errors.Is(err, errConflict) {
		t.Errorf("createUser with a taken public_id: err = %v, want errConflict", err)
	}
	if n := countRows(t, st.r, "users", ""); n != 1 {
		t.Errorf("users after refused duplicates: %d, want 1", n)
	}

	u, hash, err := st.credentials(ctx, "aLICE")
	if err != nil {
		t.Fatalf("credentials(aLICE): %v", err)
	}
	if u.Username != "Alice" || hash != "hash-of-Alice" {
		t.Errorf("credentials(aLICE) = %q, %q; want the user as first written, Alice, hash-of-Alice", u.Username, hash)
	}
	if _, _, err := st.credentials(ctx, "nobody"); !errors.Is(err, errNotFound) {
		t.Errorf("credentials(nobody): err = %v, want errNotFound", err)
	}
}

func TestStoreTitlesUniqueInUnicodeCase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	bob := storeUser(t, st, "bob", false)
	first := storeBook(t, st, alice, "Ωmega Éclair", "Zoë")
	storeBook(t, st, alice, "Other", "Zoë")

	for _, title := range []string{"Ωmega Éclair", "ωMEGA éCLAIR", "ΩMEGA ÉCLAIR"} {
		_, err := st.createBook(ctx, bob.ID, title, "someone", "", testStart)
		if !errors.Is(err, errConflict) {
			t.Errorf("createBook(%q) after %q: err = %v, want errConflict", title, first.Title, err)
		}
	}
	if n := countRows(t, st.r, "books", ""); n != 2 {
		t.Errorf("books after refused duplicates: %d, want 2", n)
	}

	renamed := "ωmega éclair"
	_, err := st.updateBook(ctx, first.ID+1, alice, bookChange{Title: &renamed}, testStart)
	if !errors.Is(err, errConflict) {
		t.Errorf("updateBook to %q, taken by book %d: err = %v, want errConflict", renamed, first.ID, err)
	}
	if b, _ := st.book(ctx, first.ID+1); b.Title != "Other" {
		t.Errorf("book %d after a refused rename: title %q, want Other", first.ID+1, b.Title)
	}
}

func TestStoreDeleteUserCascades(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	bob := storeUser(t, st, "bob", false)
	storeBook(t, st, alice, "A1", "x")
	storeBook(t, st, alice, "A2", "x")
	storeBook(t, st, bob, "B1", "x")
	for i, u := range []user{alice, alice, bob} {
		sid := fmt.Sprintf("sid-%s-%d", u.Username, i)
		if err := st.createSession(ctx, sid, u.ID, []byte(sid), testStart, time.Hour); err != nil {
			t.Fatalf("createSession %s: %v", sid, err)
		}
	}

	if n, err := st.deleteUser(ctx, alice.PublicID); err != nil || n != 2 {
		t.Fatalf("deleteUser(alice) = %d sessions, %v; want 2 sessions ended", n, err)
	}
	for _, c := range []struct {
		table, where string
		arg          any
		want         int
	}{
		{"users", "id = ?", alice.ID, 0},
		{"books", "owner_id = ?", alice.ID, 0},
		{"sessions", "user_id = ?", alice.ID, 0},
		{"refresh_tokens", "session_id LIKE ?", "sid-alice-%", 0},
		{"books", "owner_id = ?", bob.ID, 1},
		{"sessions", "user_id = ?", bob.ID, 1},
		{"refresh_tokens", "session_id LIKE ?", "sid-bob-%", 1},
	} {
		if n := countRows(t, st.r, c.table, c.where, c.arg); n != c.want {
			t.Errorf("after deleteUser(alice): %s where %s (%v): %d rows, want %d", c.table, c.where, c.arg, n, c.want)
		}
	}
	if _, err := st.deleteUser(ctx, alice.PublicID); !errors.Is(err, errNotFound) {
		t.Errorf("deleteUser(alice) again: err = %v, want errNotFound", err)
	}
}

func TestStoreModifyBookRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	bob := storeUser(t, st, "bob", false)
	root := storeUser(t, st, "root", true)
	b := storeBook(t, st, alice, "Dune", "Frank Herbert")
	const missing = 9999
	title := "Dune Messiah"
	later := testStart.Add(time.Hour)

	if _, err := st.updateBook(ctx, b.ID, bob, bookChange{Title: &title}, later); !errors.Is(err, errNotOwner) {
		t.Errorf("updateBook by bob (not owner, not admin): err = %v, want errNotOwner", err)
	}
	if err := st.deleteBook(ctx, b.ID, bob); !errors.Is(err, errNotOwner) {
		t.Errorf("deleteBook by bob (not owner, not admin): err = %v, want errNotOwner", err)
	}
	if got, err := st.book(ctx, b.ID); err != nil || got.Title != "Dune" || !got.UpdatedAt.Equal(b.UpdatedAt) {
		t.Errorf("book after bob's refused changes = %+v, %v; want it unchanged", got, err)
	}
	for _, actor := range []user{alice, bob, root} {
		if _, err := st.updateBook(ctx, missing, actor, bookChange{Title: &title}, later); !errors.Is(err, errNotFound) {
			t.Errorf("updateBook(missing) by %s: err = %v, want errNotFound", actor.Username, err)
		}
		if err := st.deleteBook(ctx, missing, actor); !errors.Is(err, errNotFound) {
			t.Errorf("deleteBook(missing) by %s: err = %v, want errNotFound", actor.Username, err)
		}
	}

	got, err := st.updateBook(ctx, b.ID, alice, bookChange{Title: &title}, later)
	if err != nil || got.Title != title || !got.UpdatedAt.Equal(later) {
		t.Errorf("updateBook by the owner = %+v, %v; want title %q, updated %v", got, err, title, later)
	}
	isbn := "9780441172719"
	got, err = st.updateBook(ctx, b.ID, root, bookChange{ISBN: &isbn}, later)
	if err != nil || got.ISBN != isbn || got.Title != title {
		t.Errorf("updateBook of the ISBN by an admin = %+v, %v; want isbn %s and the title kept", got, err, isbn)
	}
	got, err = st.updateBook(ctx, b.ID, alice, bookChange{ClearISBN: true}, later)
	if err != nil || got.ISBN != "" {
		t.Errorf("updateBook clearing the ISBN = %+v, %v; want no isbn", got, err)
	}
	if err := st.deleteBook(ctx, b.ID, root); err != nil {
		t.Errorf("deleteBook by an admin: %v", err)
	}
	if _, err := st.book(ctx, b.ID); !errors.Is(err, errNotFound) {
		t.Errorf("book after deletion: err = %v, want errNotFound", err)
	}
}

func TestStoreListBooksFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "Alice", false)
	bob := storeUser(t, st, "bob", false)
	for _, b := range []struct {
		owner         user
		title, author string
	}{
		{alice, "100% Pure", "Ann"},
		{alice, "1000 Pure", "Ann"},
		{bob, "snake_case", "Bo"},
		{bob, "snakeXcase", "ann"},
		{bob, `back\slash`, "Bo"},
		{alice, "backXslash", "Bo"},
	} {
		storeBook(t, st, b.owner, b.title, b.author)
	}
	tests := []struct {
		name   string
		filter bookFilter
		want   []string
	}{
		{"percent is literal", bookFilter{Q: "0%"}, []string{"100% Pure"}},
		{"underscore is literal", bookFilter{Q: "e_c"}, []string{"snake_case"}},
		{"backslash is literal", bookFilter{Q: `k\s`}, []string{`back\slash`}},
		{"lone percent", bookFilter{Q: "%"}, []string{"100% Pure"}},
		{"lone underscore", bookFilter{Q: "_"}, []string{"snake_case"}},
		{"q matches author", bookFilter{Q: "bo"}, []string{"snake_case", `back\slash`, "backXslash"}},
		{"author exact", bookFilter{Author: "ann"}, []string{"100% Pure", "1000 Pure", "snakeXcase"}},
		{"author is not a substring", bookFilter{Author: "an"}, nil},
		{"owner", bookFilter{Owner: "alice"}, []string{"100% Pure", "1000 Pure", "backXslash"}},
		{"owner and author", bookFilter{Owner: "alice", Author: "bo"}, []string{"backXslash"}},
		{"after and limit", bookFilter{After: 2, Limit: 2}, []string{"snake_case", "snakeXcase"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := tt.filter
			if f.Limit == 0 {
				f.Limit = 100
			}
			books, err := st.listBooks(ctx, f)
			if err != nil {
				t.Fatalf("listBooks(%+v): %v", f, err)
			}
			var got []string
			for _, b := range books {
				got = append(got, b.Title)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("listBooks(%+v) = %q, want %q", f, got, tt.want)
			}
			checkPage(t, st, f)
		})
	}
}

// checkPage holds appendBooks, which copies each book's stored doc, to what
// listBooks reads from the columns for the same page, written by appendBook.
func checkPage(t *testing.T, st *store, f bookFilter) {
	t.Helper()
	ctx := context.Background()
	probe := f
	probe.Limit++
	books, err := st.listBooks(ctx, probe)
	if err != nil {
		t.Fatalf("listBooks(%+v): %v", probe, err)
	}
	wantMore := len(books) > f.Limit
	if wantMore {
		books = books[:f.Limit]
	}
	want := []byte("[")
	var wantLast int64
	for i, b := range books {
		if i > 0 {
			want = append(want, ',')
		}
		want = appendBook(want, b)
		wantLast = b.ID
	}
	got, last, more, err := st.appendBooks(ctx, []byte("["), f)
	if err != nil {
		t.Fatalf("appendBooks(%+v): %v", f, err)
	}
	if string(got) != string(want) || last != wantLast || more != wantMore {
		t.Errorf("appendBooks(%+v) = %s, last %d, more %v; the columns give %s, last %d, more %v",
			f, got, last, more, want, wantLast, wantMore)
	}
}

// scanMatch reports whether the book with this id, title, author and owner
// belongs in the answer to f, by the definitions, in Go: what the search
// index and the other filters must select.
func scanMatch(f bookFilter, id int64, title, author, owner string) bool {
	q := foldKey(f.Q)
	return id > f.After &&
		(strings.Contains(foldKey(title), q) || strings.Contains(foldKey(author), q)) &&
		(f.Author == "" || foldKey(author) == foldKey(f.Author)) &&
		(f.Owner == "" || foldKey(owner) == foldKey(f.Owner))
}

// checkScan holds listBooks(f) to a scan in Go (scanMatch) of every book as
// its columns hold it.
func checkScan(t *testing.T, st *store, f bookFilter) {
	t.Helper()
	rows, err := st.r.Query(`SELECT b.id, b.title, b.author, u.username FROM books b JOIN users u ON u.id = b.owner_id ORDER BY b.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := []int64{}
	for rows.Next() {
		var id int64
		var title, author, owner string
		if err := rows.Scan(&id, &title, &author, &owner); err != nil {
			t.Fatal(err)
		}
		if len(want) < f.Limit && scanMatch(f, id, title, author, owner) {
			want = append(want, id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	books, err := st.listBooks(context.Background(), f)
	if err != nil {
		t.Fatalf("listBooks(%+v): %v", f, err)
	}
	got := []int64{}
	for _, b := range books {
		got = append(got, b.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("listBooks(%+v) = ids %v; a scan of every book finds %v", f, got, want)
	}
}

// checkSearchIndex has SQLite compare the search index with the books it
// was made from (FTS5's integrity-check). PostgreSQL keeps its indexes
// itself: there it checks nothing.
func checkSearchIndex(t *testing.T, st *store) {
	t.Helper()
	if st.postgres {
		return
	}
	if _, err := st.w.Exec(`INSERT INTO books_search (books_search, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Errorf("search index integrity-check: %v", err)
	}
}

// FuzzSearchTerm stores a book whose title holds the fuzzed term, as
// cleanText would accept it, and searches for the term: the index query made
// of it (searchTrigrams) must be valid FTS5 whatever it holds, and the first
// book found from there on must be that one.
func FuzzSearchTerm(f *testing.F) {
	for _, s := range []string{"abc", `"*" AND NEAR(x`, `""" OR "`, "ßẞſ", `%_\`, "crown garden", "🙂🙂🙂🙂", "İIıi"} {
		f.Add(s)
	}
	ctx := context.Background()
	st := openTestStore(f)
	owner := storeUser(f, st, "alice", false)
	n := 0
	f.Fuzz(func(t *testing.T, term string) {
		title, err := cleanText("title", "“"+term+"”")
		if err != nil || utf8.RuneCountInString(term) < minSearchLen {
			t.Skip()
		}
		n++
		b, err := st.createBook(ctx, owner.ID, fmt.Sprint(n, title), "Anon", "", testStart)
		if err != nil {
			t.Fatalf("createBook(%q): %v", title, err)
		}
		found, err := st.listBooks(ctx, bookFilter{Q: term, After: b.ID - 1, Limit: 1})
		if err != nil || len(found) != 1 || found[0].ID != b.ID {
			t.Fatalf("search for %q after %d: %+v, %v; want book %d", term, b.ID-1, found, err, b.ID)
		}
	})
}

func TestStoreSessionUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	bob := storeUser(t, st, "bob", false)
	if err := st.createSession(ctx, "sid-1", alice.ID, []byte("refresh-1"), testStart, time.Hour); err != nil {
		t.Fatalf("createSession: %v", err)
	}
	tests := []struct {
		name     string
		sid, pid string
		at       time.Time
		ok       bool
	}{
		{"live", "sid-1", alice.PublicID, testStart, true},
		{"last live second", "sid-1", alice.PublicID, testStart.Add(time.Hour - time.Second), true},
		{"expired at expires_at", "sid-1", alice.PublicID, testStart.Add(time.Hour), false},
		{"expired", "sid-1", alice.PublicID, testStart.Add(2 * time.Hour), false},
		{"another user's public_id", "sid-1", bob.PublicID, testStart, false},
		{"unknown public_id", "sid-1", "no-such-user", testStart, false},
		{"unknown session", "sid-2", alice.PublicID, testStart, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := st.sessionUser(ctx, tt.sid, tt.pid, tt.at)
			switch {
			case tt.ok && (err != nil || u.ID != alice.ID):
				t.Errorf("sessionUser(%s, %s, %v) = %+v, %v; want alice", tt.sid, tt.pid, tt.at, u, err)
			case !tt.ok && !errors.Is(err, errNotFound):
				t.Errorf("sessionUser(%s, %s, %v): err = %v, want errNotFound", tt.sid, tt.pid, tt.at, err)
			}
		})
	}
}

// TestStoreLookupsOfUnstorableText looks up names, titles and public ids
// holding NUL or invalid UTF-8, which no stored name, title or id holds (and
// PostgreSQL text cannot): each lookup finds nothing rather than failing, and
// a failed login under such a name is counted like any other.
func TestStoreLookupsOfUnstorableText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	storeBook(t, st, alice, "Dune", "Frank Herbert")
	for _, s := range []string{"ali\x00ce", "\x00", "ali\xffce", "\xff", "Du\x00ne"} {
		if _, _, err := st.credentials(ctx, s); !errors.Is(err, errNotFound) {
			t.Errorf("credentials(%q): err = %v, want errNotFound", s, err)
		}
		if _, err := userInfo(ctx, st.r, st.postgres, s); !errors.Is(err, errNotFound) {
			t.Errorf("userInfo(%q): err = %v, want errNotFound", s, err)
		}
		if _, err := st.setAdmin(ctx, s, true); !errors.Is(err, errNotFound) {
			t.Errorf("setAdmin(%q): err = %v, want errNotFound", s, err)
		}
		for _, f := range []bookFilter{{Q: s}, {Author: s}, {Owner: s}} {
			f.Limit = 10
			if books, err := st.listBooks(ctx, f); err != nil || len(books) != 0 {
				t.Errorf("listBooks(%+v) = %d books, %v; want none", f, len(books), err)
			}
		}
		key := foldKey(s)
		if _, at, err := st.reserveLogin(ctx, key, "192.0.2.1", testStart, time.Minute, 1, 1000); err != nil || !at.IsZero() {
			t.Errorf("reserveLogin(%q) = %v, %v; want a reservation", key, at, err)
		}
		if _, at, err := st.reserveLogin(ctx, key, "192.0.2.1", testStart, time.Minute, 1, 1000); err != nil || at.IsZero() {
			t.Errorf("reserveLogin(%q) after one failure, limit 1 = %v, %v; want a time to wait for", key, at, err)
		}
		if err := st.clearLoginFailures(ctx, key); err != nil {
			t.Errorf("clearLoginFailures(%q): %v", key, err)
		}
	}
}

func TestClassifyRealErrors(t *testing.T) {
	sqliteOnly(t, "SQLite's result codes; TestPostgresClassify is its twin")
	t.Parallel()
	ctx := context.Background()

	t.Run("plain values", func(t *testing.T) {
		t.Parallel()
		if err := classify(nil); err != nil {
			t.Errorf("classify(nil) = %v, want nil", err)
		}
		if err := classify(fmt.Errorf("scan: %w", sql.ErrNoRows)); !errors.Is(err, errNotFound) {
			t.Errorf("classify(ErrNoRows) = %v, want errNotFound", err)
		}
		other := errors.New("something else")
		if err := classify(other); err != other {
			t.Errorf("classify(other) = %v, want it unchanged", err)
		}
	})

	t.Run("constraints", func(t *testing.T) {
		t.Parallel()
		err := checkConstraintErrors(t, openTestStore(t))
		wantCode(t, "duplicate username_key", err, sqlite3.SQLITE_CONSTRAINT_UNIQUE)
	})

	t.Run("read-only connection", func(t *testing.T) {
		t.Parallel()
		st := openTestStore(t)
		_, err := st.r.ExecContext(ctx, `DELETE FROM users`)
		wantCode(t, "write through the query_only reader", err, sqlite3.SQLITE_READONLY)
		if !errors.Is(classify(err), errUnavailable) {
			t.Errorf("classify(write through the reader: %v) = %v, want errUnavailable", err, classify(err))
		}
	})

	t.Run("read-only file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "ro.db")
		rw, err := openStore(ctx, path, defaultMaxConns(path), discardLog())
		if err != nil {
			t.Fatalf("openStore: %v", err)
		}
		defer rw.close()
		ro, err := openStore(ctx, "file:"+path+"?mode=ro", defaultMaxConns("file:"+path+"?mode=ro"), discardLog())
		if err != nil {
			t.Fatalf("openStore(mode=ro) on a migrated file: %v", err)
		}
		defer ro.close()
		_, err = ro.createUser(ctx, "p", "alice", "h", false, testStart)
		if !errors.Is(err, errUnavailable) {
			t.Errorf("createUser on a read-only file: err = %v, want errUnavailable", err)
		}
		if n := countRows(t, rw.r, "users", ""); n != 0 {
			t.Errorf("users after a write on a read-only file: %d, want 0", n)
		}
	})

	t.Run("database full", func(t *testing.T) {
		t.Parallel()
		st := openTestStore(t)
		alice := storeUser(t, st, "alice", false)
		// The writer has exactly one connection, so the limit stays on it.
		var pages int
		if err := st.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatalf("PRAGMA page_count: %v", err)
		}
		var limit int
		if err := st.w.QueryRowContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)).Scan(&limit); err != nil || limit != pages {
			t.Fatalf("PRAGMA max_page_count = %d: got %d, %v", pages, limit, err)
		}
		big := strings.Repeat("x", 64<<10)
		_, err := st.createBook(ctx, alice.ID, big, "author", "", testStart)
		if !errors.Is(err, errUnavailable) {
			t.Errorf("createBook on a full database: err = %v, want errUnavailable", err)
		}
		if n := countRows(t, st.r, "books", ""); n != 0 {
			t.Errorf("books after a write on a full database: %d, want 0", n)
		}
	})

	t.Run("busy", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "busy.db")
		st, err := openStore(ctx, path, defaultMaxConns(path), discardLog())
		if err != nil {
			t.Fatalf("openStore: %v", err)
		}
		defer st.close()
		other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
		if err != nil {
			t.Fatalf("open a second writer: %v", err)
		}
		defer other.Close()
		var busyErr error
		// While the store holds the write lock, the second writer is refused at once.
		err = st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET admin = 0`); err != nil {
				return err
			}
			_, busyErr = other.ExecContext(ctx, `DELETE FROM users`)
			return nil
		})
		if err != nil {
			t.Fatalf("st.tx: %v", err)
		}
		wantCode(t, "second writer while the store writes", busyErr, sqlite3.SQLITE_BUSY)
		if !errors.Is(classify(busyErr), errUnavailable) {
			t.Errorf("classify(busy: %v) = %v, want errUnavailable", busyErr, classify(busyErr))
		}
	})

	t.Run("cannot open", func(t *testing.T) {
		t.Parallel()
		db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(t.TempDir(), "missing", "x.db"), false))
		if err != nil {
			t.Fatalf("sql.Open: %v", err)
		}
		defer db.Close()
		err = db.PingContext(ctx)
		wantCode(t, "open in a missing directory", err, sqlite3.SQLITE_CANTOPEN)
		if !errors.Is(classify(err), errUnavailable) {
			t.Errorf("classify(cannot open: %v) = %v, want errUnavailable", err, classify(err))
		}
	})

	t.Run("closed store", func(t *testing.T) {
		t.Parallel()
		st, err := openStore(ctx, filepath.Join(t.TempDir(), "closed.db"), defaultMaxConns(""), discardLog())
		if err != nil {
			t.Fatalf("openStore: %v", err)
		}
		if err := st.close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := st.ping(ctx); !errors.Is(err, errUnavailable) {
			t.Errorf("ping on a closed store: err = %v, want errUnavailable", err)
		}
		if _, _, err := st.credentials(ctx, "alice"); !errors.Is(err, errUnavailable) {
			t.Errorf("credentials on a closed store: err = %v, want errUnavailable", err)
		}
		if _, err := st.createUser(ctx, "p", "alice", "h", false, testStart); !errors.Is(err, errUnavailable) {
			t.Errorf("createUser on a closed store: err = %v, want errUnavailable", err)
		}
	})
}

// checkConstraintErrors breaks the unique, primary key and foreign key
// constraints of a new store and checks what classify makes of each; it
// returns the driver's error for the duplicate username_key.
func checkConstraintErrors(t *testing.T, st *store) error {
	t.Helper()
	ctx := context.Background()
	alice := storeUser(t, st, "alice", false)
	insert := `INSERT INTO users (public_id, username, username_key, password_hash, created_at) VALUES (?, ?, ?, 'h', 0)`
	_, dup := st.w.ExecContext(ctx, insert, "p2", "ALICE", "alice")
	if !errors.Is(classify(dup), errConflict) {
		t.Errorf("classify(duplicate username_key: %v) = %v, want errConflict", dup, classify(dup))
	}
	_, err := st.w.ExecContext(ctx, `INSERT INTO users (id, public_id, username, username_key, password_hash, created_at) VALUES (?, 'p3', 'x', 'x', 'h', 0)`, alice.ID)
	if !errors.Is(classify(err), errConflict) {
		t.Errorf("classify(duplicate primary key: %v) = %v, want errConflict", err, classify(err))
	}
	// Other constraints are bugs of ours, not conflicts nor outages.
	_, err = st.w.ExecContext(ctx, `INSERT INTO books (title, title_key, author, author_key, owner_id, created_at, updated_at) VALUES ('t', 't', 'a', 'a', 4242, 0, 0)`)
	if err == nil || errors.Is(classify(err), errConflict) || errors.Is(classify(err), errUnavailable) {
		t.Errorf("classify(foreign key violation: %v) = %v, want neither errConflict nor errUnavailable", err, classify(err))
	}
	return dup
}

// wantCode fails the test unless err is a SQLite error with that extended
// (or, for a primary code, base) result code.
func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	var se *sqlite.Error
	if !errors.As(err, &se) {
		t.Fatalf("%s: err = %v (%T), want a *sqlite.Error", what, err, err)
	}
	if got := se.Code(); got != code && (code > 0xff || got&0xff != code) {
		t.Fatalf("%s: SQLite code = %d (%v), want %d", what, got, err, code)
	}
}

func TestStoreListingQueriesUseIndexes(t *testing.T) {
	sqliteOnly(t, "about SQLite itself: its file, pragmas, result codes or query plans")
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	for i := range 50 {
		storeBook(t, st, alice, fmt.Sprintf("title %d", i), fmt.Sprintf("author %d", i%5))
	}
	type listing struct {
		name   string
		sel    string // the page's SELECT ... FROM, as listBooks or appendBooks runs it
		filter bookFilter
		index  string
	}
	var tests []listing
	for _, sel := range []struct{ name, text string }{{"columns", selectBooks}, {"docs", selectDocs}} {
		tests = append(tests,
			listing{"author/" + sel.name, sel.text, bookFilter{Author: "author 1", Limit: 101}, "books_author"},
			listing{"owner/" + sel.name, sel.text, bookFilter{Owner: "alice", Limit: 101}, "books_owner"},
			listing{"q/" + sel.name, sel.text, bookFilter{Q: "Title 4", Limit: 101}, "VIRTUAL TABLE INDEX"},
			listing{"q after/" + sel.name, sel.text, bookFilter{Q: "Title 4", After: 20, Limit: 101}, "VIRTUAL TABLE INDEX"},
			listing{"q and author/" + sel.name, sel.text, bookFilter{Q: "Title 4", Author: "author 1", Limit: 101}, "books_author"},
			listing{"q and owner/" + sel.name, sel.text, bookFilter{Q: "Title 4", Owner: "alice", Limit: 101}, "books_owner"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			query, args := bookPage(tt.sel, tt.filter, false)
			rows, err := st.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
			if err != nil {
				t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatalf("scan plan: %v", err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("plan rows: %v", err)
			}
			text := strings.Join(plan, "; ")
			for _, step := range plan {
				if strings.HasPrefix(step, "SCAN b") {
					t.Errorf("listing by %s: plan %q scans all of books, want a search on index %s", tt.name, text, tt.index)
				}
				// A sort would read every book found before the first answer.
				if strings.Contains(step, "TEMP B-TREE") {
					t.Errorf("listing by %s: plan %q sorts, want the index's id order", tt.name, text)
				}
			}
			if !strings.Contains(text, tt.index) {
				t.Errorf("listing by %s: plan %q does not use index %s", tt.name, text, tt.index)
			}
		})
	}
}

// TestGroupCommitSizes checks the histogram of the writer's group sizes: a
// job holds the writer while ten more queue behind it, which makes one group
// of 1 and then one of 10.
func TestGroupCommitSizes(t *testing.T) {
	sqliteOnly(t, "SQLite's writer goroutine; PostgreSQL commits each transaction alone")
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	if n := st.groupSizes.count(); n != 0 {
		t.Fatalf("groups committed by a new store: %d, want 0", n)
	}
	held, release := make(chan struct{}), make(chan struct{})
	const queued = 10
	errs := make(chan error, queued+1)
	go func() {
		errs <- st.tx(ctx, func(context.Context, *sql.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	select {
	case <-held:
	case err := <-errs:
		t.Fatalf("holding job: %v, want it to run", err)
	}
	for range queued {
		go func() { errs <- st.tx(ctx, func(context.Context, *sql.Tx) error { return nil }) }()
	}
	pollUntil(t, 10*time.Second, "ten jobs queued behind the writer", func() bool { return len(st.writes) == queued })
	close(release)
	for range queued + 1 {
		if err := <-errs; err != nil {
			t.Errorf("job: %v", err)
		}
	}
	// Bounds 1, 2, 4, 8, 16, ...: the group of 1 is at most 1, the group of
	// 10 at most 16.
	want := []int64{1, 1, 1, 1, 2, 2, 2, 2, 2, 2}
	if got := st.groupSizes.cumulative(); !slices.Equal(got, want) {
		t.Errorf("group sizes, cumulative by bound %v then in all: %v, want %v", groupBuckets, got, want)
	}
	if sum := st.groupSizes.sum.Load(); sum != queued+1 {
		t.Errorf("group sizes sum to %d, want %d", sum, queued+1)
	}
}

// TestGroupCommitIsolatesJobs runs many write transactions at once, so the
// writer groups them, and checks that each job's changes are all there or
// not at all: a job that fails after writing leaves no trace, and its
// failure does not touch the jobs it shared a commit with (the group runs
// again, with a savepoint a job).
func TestGroupCommitIsolatesJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	storeBook(t, st, alice, "Taken", "a")
	errBoom := errors.New("boom")
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				title := fmt.Sprintf("Book %d", i)
				if _, err := tx.ExecContext(ctx,
					`INSERT INTO books (title, title_key, author, author_key, owner_id, created_at, updated_at) VALUES (?, ?, 'a', 'a', ?, 0, 0)`,
					title, foldKey(title), alice.ID); err != nil {
					return err
				}
				if i%3 == 0 { // wrote, then failed: must be rolled back
					return errBoom
				}
				if i%7 == 0 { // a conflict inside the shared transaction
					_, err := tx.ExecContext(ctx,
						`INSERT INTO books (title, title_key, author, author_key, owner_id, created_at, updated_at) VALUES ('x', ?, 'a', 'a', ?, 0, 0)`,
						foldKey("Taken"), alice.ID)
					return err
				}
				return nil
			})
		}()
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		title := fmt.Sprintf("Book %d", i)
		var rows int
		if qerr := st.r.QueryRow(`SELECT COUNT(*) FROM books WHERE title = ?`, title).Scan(&rows); qerr != nil {
			t.Fatal(qerr)
		}
		switch {
		case i%3 == 0:
			if !errors.Is(err, errBoom) || rows != 0 {
				t.Errorf("job %d failed after writing: err = %v, rows = %d; want errBoom and 0 rows", i, err, rows)
			}
		case i%7 == 0:
			if !errors.Is(err, errConflict) || rows != 0 {
				t.Errorf("job %d hit a conflict: err = %v, rows = %d; want errConflict and 0 rows", i, err, rows)
			}
		default:
			want++
			if err != nil || rows != 1 {
				t.Errorf("job %d: err = %v, rows = %d; want nil and 1 row", i, err, rows)
			}
		}
	}
	var total int
	st.r.QueryRow(`SELECT COUNT(*) FROM books`).Scan(&total)
	if total != want+1 {
		t.Errorf("books = %d, want %d", total, want+1)
	}
}

// TestConcurrentCreates releases 120 creates at once, in 40 titles taken
// three times each in different letter cases: each title is stored once,
// the other two are conflicts, and every stored book is counted for its
// owner and found by a search for its title, on both stores.
func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	owners := []user{storeUser(t, st, "alice", false), storeUser(t, st, "bob", false)}
	const titles = 40
	title := func(i int) string { return fmt.Sprintf("Concurrent title %03d", i%titles) }
	cases := []func(string) string{strings.Clone, strings.ToUpper, strings.ToLower}
	start := make(chan struct{})
	var wg sync.WaitGroup
	created := make([]book, 3*titles)
	errs := make([]error, 3*titles)
	for i := range 3 * titles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			created[i], errs[i] = st.createBook(ctx, owners[i%2].ID, cases[i/titles](title(i)), "Author", "", time.Now())
		}()
	}
	close(start)
	wg.Wait()
	stored := map[string]book{}
	for i, err := range errs {
		switch {
		case err == nil:
			if _, dup := stored[foldKey(title(i))]; dup {
				t.Errorf("%q stored twice", title(i))
			}
			stored[foldKey(title(i))] = created[i]
		case !errors.Is(err, errConflict):
			t.Errorf("create %q: %v, want success or errConflict", created[i].Title, err)
		}
	}
	if len(stored) != titles {
		t.Errorf("%d titles stored, want %d", len(stored), titles)
	}
	for _, b := range stored {
		found, err := st.listBooks(ctx, bookFilter{Q: strings.ToLower(b.Title), Limit: 10})
		if err != nil || len(found) != 1 || found[0].ID != b.ID {
			t.Errorf("search for %q: %v, %v; want book %d alone", b.Title, found, err, b.ID)
		}
	}
	listed, err := st.listUsers(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range listed {
		if want := countRows(t, st.r, "books", "owner_id = ?", u.ID); u.Books != want {
			t.Errorf("%s has %d books listed, %d stored", u.Username, u.Books, want)
		}
	}
	checkSearchIndex(t, st)
}

// TestGroupOfCreatesWritesOneSegment queues 50 creates behind a job that
// holds the writer, so they are committed as one group, and checks that
// the search index received their entries as one segment, not 50: a
// trigger on INSERT, a RETURNING clause or a savepoint a job would each
// make FTS5 write a segment a book (migrations/0009_search_insert.sql).
// Merging is off, so each segment written stays to be counted.
func TestGroupOfCreatesWritesOneSegment(t *testing.T) {
	sqliteOnly(t, "SQLite's FTS5 search index and writer goroutine")
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	for _, cfg := range []string{`('automerge', 0)`, `('crisismerge', 1000)`} {
		if _, err := st.w.Exec(`INSERT INTO books_search (books_search, rank) VALUES ` + cfg); err != nil {
			t.Fatal(err)
		}
	}
	dataRows := func() int { return countRows(t, st.r, "books_search_data", "1") }
	before := dataRows()
	held, release := make(chan struct{}), make(chan struct{})
	go st.tx(ctx, func(context.Context, *sql.Tx) error {
		close(held)
		<-release
		return nil
	})
	<-held
	const n = 50
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := st.createBook(ctx, alice.ID, fmt.Sprintf("Grouped book %02d", i), "Same Author", "", time.Now())
			errs <- err
		}()
	}
	pollUntil(t, 10*time.Second, "50 creates queued behind the writer", func() bool { return len(st.writes) == n })
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One segment of 50 short titles fills a few pages; a segment a book
	// would be at least 50 rows.
	if grew := dataRows() - before; grew > 10 {
		t.Errorf("search index data grew by %d rows for one group of %d creates; want one segment (a few rows)", grew, n)
	}
	checkSearchIndex(t, st)
	found, err := st.listBooks(ctx, bookFilter{Q: "grouped book", Limit: 100})
	if err != nil || len(found) != n {
		t.Errorf("search for the group's books: %d found, %v; want %d", len(found), err, n)
	}
}

// TestTxAfterClose checks that a write after close is refused as
// unavailable rather than hanging or panicking, and so are a read and ping.
func TestTxAfterClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := openStore(ctx, testDB(t), defaultMaxConns(testDB(t)), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	err = st.tx(ctx, func(context.Context, *sql.Tx) error { return nil })
	if !errors.Is(err, errUnavailable) {
		t.Errorf("tx after close: err = %v, want errUnavailable", err)
	}
	if _, _, err := st.credentials(ctx, "alice"); !errors.Is(err, errUnavailable) {
		t.Errorf("credentials after close: err = %v, want errUnavailable", err)
	}
	if err := st.ping(ctx); !errors.Is(err, errUnavailable) {
		t.Errorf("ping after close: err = %v, want errUnavailable", err)
	}
}

// TestStoreBookDocsNeverStale changes books and users behind the service's
// back, in SQL, as an operator or an older bookapi sharing the database
// could: every page must still show what the columns hold, and fillDocs must
// write the docs those changes cleared.
func TestStoreBookDocsNeverStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	bob := storeUser(t, st, "bob", false)
	var ids []int64
	for i := range 6 {
		owner := alice
		if i%2 == 1 {
			owner = bob
		}
		ids = append(ids, storeBook(t, st, owner, fmt.Sprintf("Book %d", i), "Ann").ID)
	}
	isbn := "0-19-852663-6"
	if _, err := st.updateBook(ctx, ids[0], alice, bookChange{ISBN: &isbn}, testStart.Add(time.Hour)); err != nil {
		t.Fatalf("updateBook: %v", err)
	}
	pages := []bookFilter{{Limit: 100}, {Limit: 2}, {After: ids[1], Limit: 2}, {Owner: "bob", Limit: 100}, {Q: "book", Limit: 3},
		{Q: "ook 3", Limit: 100}, {Q: "RENAMED <", Limit: 100}, {Q: "ann", Owner: "bobby", Limit: 100}}
	checkAll := func(when string) {
		t.Helper()
		for _, f := range pages {
			t.Run(when, func(t *testing.T) {
				checkPage(t, st, f)
				checkScan(t, st, f)
			})
		}
		checkSearchIndex(t, st)
	}
	missing := func() int { return countRows(t, st.w, "books", "doc IS NULL") }
	if n := missing(); n != 0 {
		t.Fatalf("after creates and an update through the store: %d books without a doc, want 0", n)
	}
	checkAll("as stored")

	for _, change := range []struct {
		name    string
		sql     string
		args    []any
		cleared int
	}{
		{"title", `UPDATE books SET title = ?, title_key = ? WHERE id = ?`, []any{"Renamed <&>", "renamed <&>", ids[2]}, 1},
		{"isbn", `UPDATE books SET isbn = NULL, updated_at = updated_at + 60 WHERE id = ?`, []any{ids[0]}, 1},
		{"owner", `UPDATE books SET owner_id = ? WHERE id = ?`, []any{bob.ID, ids[4]}, 1},
		{"username", `UPDATE users SET username = ?, username_key = ? WHERE id = ?`, []any{"Bobby", "bobby", bob.ID}, 4},
		{"doc", `UPDATE books SET doc = NULL WHERE id = ?`, []any{ids[5]}, 1},
		{"id", `UPDATE books SET id = id + 1000 WHERE id = ?`, []any{ids[3]}, 1},
		{"delete", `DELETE FROM books WHERE id = ?`, []any{ids[0]}, 0},
	} {
		if _, err := st.w.ExecContext(ctx, change.sql, change.args...); err != nil {
			t.Fatalf("%s: %v", change.sql, err)
		}
		if n := missing(); n != change.cleared {
			t.Errorf("after %s: %d books without a doc, want %d", change.sql, n, change.cleared)
		}
		checkAll("changed " + change.name)
		n, err := st.fillDocs(ctx, discardLog())
		if err != nil || n != change.cleared {
			t.Errorf("fillDocs after %s = %d, %v; want %d, nil", change.sql, n, err, change.cleared)
		}
		if n := missing(); n != 0 {
			t.Errorf("after fillDocs: %d books without a doc, want 0", n)
		}
		checkAll("filled " + change.name)
	}
	// A change that writes its own doc keeps it: the service's own updates.
	title := "Kept"
	if _, err := st.updateBook(ctx, ids[1], bob, bookChange{Title: &title}, testStart.Add(2*time.Hour)); err != nil {
		t.Fatalf("updateBook: %v", err)
	}
	if n := missing(); n != 0 {
		t.Errorf("after updateBook: %d books without a doc, want 0", n)
	}
	checkAll("updateBook")
}

// schemaUpTo returns the migration steps of fsys up to version upTo: the
// schema an older bookapi left.
func schemaUpTo(tb testing.TB, fsys fs.FS, upTo int) fstest.MapFS {
	tb.Helper()
	steps, err := migrationSteps(fsys)
	if err != nil {
		tb.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, s := range steps[:upTo] {
		data, err := fs.ReadFile(fsys, s.name)
		if err != nil {
			tb.Fatal(err)
		}
		out[s.name] = &fstest.MapFile{Data: data}
	}
	return out
}

// TestOpenStoreBuildsSearchIndexOfOlderDatabase opens a database last
// migrated by a bookapi without the search index, with books in it: the
// upgrade indexes them, and says so in the log.
func TestOpenStoreBuildsSearchIndexOfOlderDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testDB(t)
	var db *sql.DB
	if onPostgres() {
		db = pgRaw(t, dsn)
		sub, _ := fs.Sub(postgresMigrationFiles, "migrations/postgres")
		if err := migratePostgres(ctx, db, schemaUpTo(t, sub, 4), discardLog()); err != nil {
			t.Fatalf("migrate to version 4: %v", err)
		}
	} else {
		db = openRawDB(t, dsn)
		sub, _ := fs.Sub(migrationFiles, "migrations")
		if err := migrate(ctx, db, schemaUpTo(t, sub, 4), discardLog()); err != nil {
			t.Fatalf("migrate to version 4: %v", err)
		}
	}
	if _, err := db.Exec(`INSERT INTO users (id, public_id, username, username_key, password_hash, created_at)
		VALUES (1, 'p', 'Ann', 'ann', 'h', 0)`); err != nil {
		t.Fatal(err)
	}
	for i, title := range []string{"Die Straße", "ΣΊΣΥΦΟΣ", "100% \\ \"quoted\"", "Plain"} {
		if _, err := db.Exec(`INSERT INTO books (title, title_key, author, author_key, owner_id, created_at, updated_at)
			VALUES (?, ?, 'Old Author', 'old author', 1, ?, ?)`, title, foldKey(title), i, i); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	logs := &syncBuffer{}
	st, err := openStore(ctx, dsn, defaultMaxConns(dsn), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("openStore on a version 4 database: %v", err)
	}
	defer st.close()
	for _, step := range []string{"0005_search.sql", "0008_search_rowids.sql"} {
		for _, line := range []string{`msg="upgrading database schema" step=` + step, `msg="upgraded database schema" step=` + step + ` duration=`} {
			if !strings.Contains(logs.String(), line) {
				t.Errorf("openStore on a version 4 database logged\n%s\nwant a line with %s", logs, line)
			}
		}
	}
	if !st.postgres {
		var def string
		if err := st.r.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = 'books_search'`).Scan(&def); err != nil || !strings.Contains(def, "detail = 'none'") {
			t.Errorf("books_search after the upgrade: %q, %v; want the table of 0008_search_rowids.sql", def, err)
		}
	}
	for _, q := range []string{"STRAẞE", "σίσυφος", `% \ "q`, "old", "lai", "none"} {
		f := bookFilter{Q: q, Limit: 100}
		if books, err := st.listBooks(ctx, f); err != nil || (q != "none" && len(books) == 0) {
			t.Errorf("listBooks(%+v) = %d books, %v; want the old books holding %q", f, len(books), err, q)
		}
		checkScan(t, st, f)
	}
	checkSearchIndex(t, st)
	if users, err := st.listUsers(ctx, "", 10); err != nil || len(users) != 1 || users[0].Books != 4 {
		t.Errorf("listUsers after the upgrade = %+v, %v; want Ann with 4 books", users, err)
	}
}

// TestStoreUserBookCounts holds the book counts of the admin list to a
// COUNT(*) of each user's books through creates, deletes, a change of owner
// behind the service's back, and the deletion of a user with their books.
func TestStoreUserBookCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	users := []user{storeUser(t, st, "alice", false), storeUser(t, st, "bob", false), storeUser(t, st, "carol", false)}
	var ids []int64
	for i := range 12 {
		ids = append(ids, storeBook(t, st, users[i%3], fmt.Sprintf("Book %d", i), "A").ID)
	}
	check := func(when string) {
		t.Helper()
		listed, err := st.listUsers(ctx, "", 100)
		if err != nil {
			t.Fatalf("%s: listUsers: %v", when, err)
		}
		for _, u := range listed {
			if want := countRows(t, st.r, "books", "owner_id = ?", u.ID); u.Books != want {
				t.Errorf("%s: listUsers: %s has %d books, want %d", when, u.Username, u.Books, want)
			}
			one, err := userInfo(ctx, st.r, st.postgres, u.PublicID)
			if err != nil || one.Books != u.Books {
				t.Errorf("%s: userInfo(%s) = %d books, %v; want %d", when, u.Username, one.Books, err, u.Books)
			}
		}
	}
	check("after creates")
	for _, id := range ids[:3] {
		if err := st.deleteBook(ctx, id, users[0]); err != nil && !errors.Is(err, errNotOwner) {
			t.Fatal(err)
		}
	}
	check("after deletes")
	if _, err := st.w.ExecContext(ctx, `UPDATE books SET owner_id = ? WHERE id = ?`, users[1].ID, ids[5]); err != nil {
		t.Fatal(err)
	}
	check("after a change of owner in SQL")
	if _, err := st.deleteUser(ctx, users[2].PublicID); err != nil {
		t.Fatal(err)
	}
	check("after deleting a user")
}

// TestOpenStoreFillsDocsOfOlderDatabase opens a database last migrated by a
// bookapi that kept no docs: the docs of its books are written on opening.
func TestOpenStoreFillsDocsOfOlderDatabase(t *testing.T) {
	sqliteOnly(t, "a SQLite file at schema version 3; TestStoreBookDocsNeverStale runs fillDocs on PostgreSQL")
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db := openRawDB(t, path)
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, schemaUpTo(t, sub, 3), discardLog()); err != nil {
		t.Fatalf("migrate to version 3: %v", err)
	}
	if _, err := db.Exec(`INSERT INTO users (id, public_id, username, username_key, password_hash, created_at)
		VALUES (1, 'p', 'Ann', 'ann', 'h', 0)`); err != nil {
		t.Fatal(err)
	}
	for i := range docBatch + 3 { // more than one batch
		if _, err := db.Exec(`INSERT INTO books (title, title_key, author, author_key, isbn, owner_id, created_at, updated_at)
			VALUES (?, ?, 'A "quoted" author', 'a "quoted" author', ?, 1, ?, ?)`,
			fmt.Sprintf("Old %d", i), fmt.Sprintf("old %d", i), nullable(strings.Repeat("1", i%2*10)), 1700000000+i, 1700000000+2*i); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	logs := &syncBuffer{}
	st, err := openStore(ctx, path, defaultMaxConns(path), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("openStore on a version 3 database: %v", err)
	}
	defer st.close()
	for _, line := range []string{`msg="upgrading database schema" step=0004_book_docs.sql`, `msg="upgraded database schema" step=0004_book_docs.sql duration=`} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("openStore on a version 3 database logged\n%s\nwant a line with %s", logs, line)
		}
	}
	if n := countRows(t, st.w, "books", "doc IS NULL"); n != 0 {
		t.Errorf("after openStore: %d of %d books without a doc, want 0", n, docBatch+3)
	}
	checkPage(t, st, bookFilter{Limit: maxLimit})
	checkPage(t, st, bookFilter{After: docBatch - 2, Limit: 4})
}

// TestStoreDocsOfOtherFormatsAreRewritten stores docs of an older and of a
// newer format than docVersion, as another version of bookapi would have:
// lists never serve them, and fillDocs, which runs at every start, writes
// them again in this code's format.
func TestStoreDocsOfOtherFormatsAreRewritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	alice := storeUser(t, st, "alice", false)
	var books []book
	for _, title := range []string{"Dune", "Emma", "Ulysses", "Beloved"} {
		books = append(books, storeBook(t, st, alice, title, "Someone"))
	}
	for i, version := range []int{docVersion - 1, docVersion + 1, 0} {
		if _, err := st.w.Exec(`UPDATE books SET doc = ?, doc_version = ? WHERE id = ?`,
			`{"format":"another"}`, version, books[i].ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []bookFilter{{Limit: 10}, {Limit: 2}, {Limit: 1, After: books[0].ID}} {
		checkPage(t, st, f)
		page, _, _, err := st.appendBooks(ctx, nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(page, []byte("another")) {
			t.Errorf("appendBooks(%+v) served a doc of another format: %s", f, page)
		}
	}
	n, err := st.fillDocs(ctx, discardLog())
	if err != nil || n != 3 {
		t.Fatalf("fillDocs = %d, %v; want 3 docs written again", n, err)
	}
	for _, b := range books {
		var doc string
		var version int
		if err := st.r.QueryRow(`SELECT doc, doc_version FROM books WHERE id = ?`, b.ID).Scan(&doc, &version); err != nil {
			t.Fatal(err)
		}
		if want := string(appendBook(nil, b)); doc != want || version != docVersion {
			t.Errorf("book %d after fillDocs: doc %s, format %d; want %s, format %d", b.ID, doc, version, want, docVersion)
		}
	}
	if n, err := st.fillDocs(ctx, discardLog()); err != nil || n != 0 {
		t.Errorf("fillDocs again = %d, %v; want 0", n, err)
	}
}
