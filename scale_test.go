package main

// The scale benchmark: how each route answers as the library grows. It loads
// SCALE_N books straight into a database at the schema before search
// (scaleLoadVersion), opens it with openStore, which upgrades it, and times
// requests through the real handler. bench/scale.sh runs it for several N on
// both stores and prints the table of docs/scale.md.
//
//	SCALE_N=100000 SCALE_DB=/tmp/scale.db go test -run '^$' -bench '^BenchmarkScale$' -benchtime 1x .

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"
)

// scaleLoadVersion is the schema version the loader writes books at: the
// last one before the search index, so that opening the loaded database
// measures the upgrade an existing library goes through.
const scaleLoadVersion = 4

// scaleBatch is how many rows one INSERT statement of the loader carries on
// PostgreSQL, where each statement is a round trip, and scaleTxRows how many
// one transaction commits. On SQLite a statement carries one row: SQLite
// keeps a statement journal of every page a multi-row INSERT changes, and
// 200,000 books loaded in 10.5 s with 500 rows a statement, 3.5 s with one.
const (
	scaleBatch  = 500
	scaleTxRows = 100_000
)

// The search terms the benchmark asks for: half the titles start with "The";
// five books at any N hold "Quokka"; no book holds scaleMissing, and some of
// its trigrams are in no book either; and scaleMissingCommon is made of
// trigrams that are all common (each in a few percent of the books or more)
// but never stand together, the most work a search that finds nothing can be;
// scaleNoLetters holds no letter or digit, of which pg_trgm makes no trigram.
const (
	scaleRare          = "quokka"
	scaleCommon        = "the"
	scaleMissing       = "zeppelin"
	scaleMissingCommon = "crown garden"
	scaleNoLetters     = "%_%"
)

// scaleLibrary makes up the n books and their owners the loader stores.
type scaleLibrary struct {
	n                         int
	adjectives, nouns, places []string
	first, last               []string
}

// newScaleLibrary returns the library of n books.
func newScaleLibrary(n int) *scaleLibrary {
	return &scaleLibrary{
		n:          n,
		adjectives: strings.Fields("Silent Hidden Broken Golden Distant Burning Frozen Secret Lost Crimson Quiet Wild Iron Bright Hollow Last"),
		nouns:      strings.Fields("River Garden Crown Storm Mirror Forest Harbor Tower Letter Island Winter Road Shadow Bridge Song House"),
		places:     strings.Fields("North Sea Valley Empire Moon Desert City Mountains"),
		first: strings.Fields("Anna Björn Chloé David Elena François Grace Hiro Ingrid José Katarzyna Liam María Nikolaos Olga " +
			"Pierre Quentin Rosa Søren Tomás Ursula Vera William Xenia Yusuf Zoë Ελένη Δημήτρης İlkay Łukasz " +
			"Ada Ben Cora Dmitri Emma Farah Gustav Hana Ivan Jane"),
		last: strings.Fields("Smith Müller García Rossi Nowak Johansson Dubois Tanaka Papadopoulos Öztürk Kowalski Novák " +
			"Jensen Silva Ivanova O'Brien Nguyen Kim Wagner Costa Fischer Lindqvist Moreau Sato Petrov Horvat Bianchi " +
			"Fernández Schmidt Andersen Brown Clarke Dąbrowski Eriksen Ferreira Gallo Haas Iglesias Janssen Weiß"),
	}
}

// users is how many users own the books: one per hundred books, and at
// least a hundred, so the admin list's first page is full at any N.
func (l *scaleLibrary) users() int { return max(100, l.n/100) }

// owner returns the user id owning book i: user 1, the librarian, owns
// every tenth book, as a catalog imported by one account would be; the
// others own about ninety each.
func (l *scaleLibrary) owner(i int) int {
	if i%10 == 0 {
		return 1
	}
	return 2 + i%(l.users()-1)
}

// username returns the name of user id.
func (l *scaleLibrary) username(id int) string {
	if id == 1 {
		return "librarian"
	}
	return fmt.Sprintf("reader%06d", id)
}

// title returns the title of book i; each is unique.
func (l *scaleLibrary) title(i int) string {
	adj, noun := l.adjectives[i%len(l.adjectives)], l.nouns[(i/len(l.adjectives))%len(l.nouns)]
	vol := ", vol. " + strconv.FormatInt(int64(i), 36)
	switch {
	case i%max(1, l.n/5) == 3:
		return "Quokka " + noun + vol
	case i%2 == 0:
		return "The " + adj + " " + noun + vol
	}
	return adj + " " + noun + " of " + l.places[(i/7)%len(l.places)] + vol
}

// author returns the author of book i: about 250 books each, at any N.
func (l *scaleLibrary) author(i int) string {
	a := i % max(len(l.first), l.n/250)
	name := l.first[a%len(l.first)] + " " + l.last[(a/len(l.first))%len(l.last)]
	if per := len(l.first) * len(l.last); a >= per {
		name += " " + strconv.Itoa(a/per+1)
	}
	return name
}

// scaleLoad fills the empty database at dsn with n books at schema version
// scaleLoadVersion, in large transactions of multi-row INSERTs, and returns
// how long it took. A database that already holds books is left as it is,
// and scaleLoad returns 0.
func scaleLoad(b *testing.B, dsn string, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	var db *sql.DB
	var schema fstest.MapFS
	if isPostgres(dsn) {
		var err error
		if db, err = postgresPool(dsn, 2); err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		scaleCreateSchema(b, db, dsn)
		sub, _ := fs.Sub(postgresMigrationFiles, "migrations/postgres")
		schema = schemaUpTo(b, sub, scaleLoadVersion)
		var tables int
		if err := db.QueryRow(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'books'`).Scan(&tables); err != nil {
			b.Fatal(err)
		}
		if tables == 0 {
			if err := migratePostgres(ctx, db, schema, discardLog()); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		var err error
		if db, err = sql.Open("sqlite", sqliteDSN(dsn, false)); err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		// The loader's one connection: a page cache that holds the indexes
		// being filled (they grow in title and author order, not id order),
		// statement journals in memory, and no fsync until the end: a load
		// that fails is started again.
		for _, p := range []string{`PRAGMA cache_size = -262144`, `PRAGMA synchronous = OFF`, `PRAGMA temp_store = MEMORY`} {
			if _, err := db.Exec(p); err != nil {
				b.Fatal(err)
			}
		}
		sub, _ := fs.Sub(migrationFiles, "migrations")
		schema = schemaUpTo(b, sub, scaleLoadVersion)
		var version int
		if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
			b.Fatal(err)
		}
		if version == 0 {
			if err := migrate(ctx, db, schema, discardLog()); err != nil {
				b.Fatal(err)
			}
		}
	}
	var books int
	if err := db.QueryRow(`SELECT COUNT(*) FROM books`).Scan(&books); err != nil {
		b.Fatal(err)
	}
	if books > 0 {
		return 0
	}
	start := time.Now()
	lib := newScaleLibrary(n)
	batch := 1
	if isPostgres(dsn) {
		batch = scaleBatch
	}
	scaleInsert(b, db, `INSERT INTO users (id, public_id, username, username_key, password_hash, admin, created_at) VALUES `, 7, batch, lib.users(),
		func(i int) []any {
			id := i + 1
			name := lib.username(id)
			return []any{id, fmt.Sprintf("00000000-0000-4000-8000-%012d", id), name, foldKey(name), "not a hash", 0, 1_700_000_000}
		})
	created := time.Unix(1_700_000_000, 0).UTC()
	scaleInsert(b, db, `INSERT INTO books (id, title, title_key, author, author_key, owner_id, created_at, updated_at, doc) VALUES `, 9, batch, n,
		func(i int) []any {
			id := i + 1
			bk := book{ID: int64(id), Title: lib.title(id), Author: lib.author(id), Owner: lib.username(lib.owner(id)),
				CreatedAt: created.Add(time.Duration(id) * time.Second)}
			bk.UpdatedAt = bk.CreatedAt
			return []any{id, bk.Title, foldKey(bk.Title), bk.Author, foldKey(bk.Author), lib.owner(id),
				unix(bk.CreatedAt), unix(bk.UpdatedAt), string(appendBook(nil, bk))}
		})
	if isPostgres(dsn) {
		// Ids were given, so the identity columns must be told where to go on.
		for _, table := range []string{"users", "books"} {
			if _, err := db.Exec(`SELECT setval(pg_get_serial_sequence('` + table + `', 'id'), (SELECT MAX(id) FROM ` + table + `))`); err != nil {
				b.Fatal(err)
			}
		}
		// What autovacuum would have done by the time a library this size
		// is read: statistics, and a visibility map that lets a count read
		// the index alone.
		if _, err := db.Exec(`VACUUM ANALYZE users, books`); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// scaleCreateSchema creates the schema a PostgreSQL URL's search_path
// names, if it is missing.
func scaleCreateSchema(b *testing.B, db *sql.DB, dsn string) {
	b.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	if schema == "" {
		return
	}
	if _, err := db.Exec(`CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{schema}.Sanitize()); err != nil {
		b.Fatal(err)
	}
}

// scaleInsert inserts rows 0 to count-1, each the cols values row(i)
// returns, with the INSERT prefix given: batch rows a statement,
// scaleTxRows a transaction.
func scaleInsert(b *testing.B, db *sql.DB, prefix string, cols, batch, count int, row func(int) []any) {
	b.Helper()
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	full := prefix + strings.TrimSuffix(strings.Repeat(one+", ", batch), ", ")
	args := make([]any, 0, cols*batch)
	for txStart := 0; txStart < count; txStart += scaleTxRows {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		stmt, err := tx.Prepare(full)
		if err != nil {
			b.Fatal(err)
		}
		for i := txStart; i < min(count, txStart+scaleTxRows); i += batch {
			args = args[:0]
			rows := min(batch, count-i)
			for j := range rows {
				args = append(args, row(i+j)...)
			}
			if rows == batch {
				_, err = stmt.Exec(args...)
			} else {
				_, err = tx.Exec(prefix+strings.TrimSuffix(strings.Repeat(one+", ", rows), ", "), args...)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// A route is timed over SCALE_REQUESTS requests, but it stops after
// scaleRouteTime once it has scaleMinRequests: a search that reads every
// book would otherwise take many minutes at a million.
const (
	scaleMinRequests = 200
	scaleRouteTime   = 10 * time.Second
)

// scaleRoute is one measured request: path returns the i-th request's path
// and body its body ("" for none).
type scaleRoute struct {
	name   string
	method string
	path   func(i int) string
	body   func(i int) string
	status int
}

// BenchmarkScale loads SCALE_N books into SCALE_DB (a SQLite file or a
// postgres:// URL whose search_path names a schema; by default a file in a
// temporary directory), unless it holds books already, and prints the p50
// and p99 of each route over SCALE_REQUESTS (1000) requests, one at a time,
// after 20 unmeasured ones (fewer, down to scaleMinRequests, for a route
// that takes over scaleRouteTime). Each line starts with "scale" for
// bench/scale.sh.
func BenchmarkScale(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("SCALE_N"))
	if n < 5 {
		b.Skip("SCALE_N is not set: the number of books to load, e.g. SCALE_N=100000 (see bench/scale.sh)")
	}
	requests := 1000
	if v, err := strconv.Atoi(os.Getenv("SCALE_REQUESTS")); err == nil && v > 0 {
		requests = v
	}
	dsn := os.Getenv("SCALE_DB")
	if dsn == "" {
		dsn = filepath.Join(b.TempDir(), "scale.db")
	}
	storeName := "sqlite"
	if isPostgres(dsn) {
		storeName = "postgres"
	}
	emit := func(format string, args ...any) {
		fmt.Printf("scale\t%s\t%d\t"+format+"\n", append([]any{storeName, n}, args...)...)
	}

	load := scaleLoad(b, dsn, n)
	start := time.Now()
	st, err := openStore(context.Background(), dsn, defaultMaxConns(dsn), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		b.Fatal(err)
	}
	opened := time.Since(start)
	closed := false
	defer func() {
		if !closed {
			st.close()
		}
	}()
	var books, maxID int
	if err := st.r.QueryRow(`SELECT COUNT(*), MAX(id) FROM books`).Scan(&books, &maxID); err != nil {
		b.Fatal(err)
	}
	if load > 0 {
		emit("load\t%.1f s\t%.0f books/s", load.Seconds(), float64(n)/load.Seconds())
	}
	emit("open\t%.1f s", opened.Seconds())

	cfg := config{db: dsn, issuer: "bookapi", tokenTTL: time.Hour, refreshTTL: time.Hour, bcryptCost: bcrypt.MinCost,
		secret: []byte(testSecret), loginMaxFailures: 5, loginMaxAddressFailures: 50, loginWindow: time.Minute}
	s := newServer(cfg, st, discardLog(), newKeyring(cfg.secret), time.Now)
	bs := &benchServer{h: s.routes(), s: s}
	creds := `{"username":"scaleadmin","password":"password-of-scaleadmin"}`
	if status := scaleServe(bs, "POST", "/signup", creds); status != http.StatusCreated && status != http.StatusConflict {
		b.Fatalf("POST /signup: status %d", status)
	}
	if err := st.setAdminByName(context.Background(), "scaleadmin", true); err != nil {
		b.Fatal(err)
	}
	var login tokenResponse
	if err := json.Unmarshal(bs.serve(b, "POST", "/login", creds, http.StatusCreated), &login); err != nil {
		b.Fatal(err)
	}
	bs.token = login.Token

	rng := rand.New(rand.NewPCG(uint64(n), 1))
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	fixed := func(p string) func(int) string { return func(int) string { return p } }
	routes := []scaleRoute{
		{"first page", "GET", fixed("/bookapi/books"), nil, http.StatusOK},
		{"deep page", "GET", func(int) string {
			return "/bookapi/books?after=" + strconv.Itoa(max(0, maxID-150-rng.IntN(1000)))
		}, nil, http.StatusOK},
		{"one book", "GET", func(int) string { return "/bookapi/books/" + strconv.Itoa(1+rng.IntN(maxID)) }, nil, http.StatusOK},
		{"q rare", "GET", fixed("/bookapi/books?q=" + scaleRare), nil, http.StatusOK},
		{"q missing", "GET", fixed("/bookapi/books?q=" + scaleMissing), nil, http.StatusOK},
		{"q missing, common trigrams", "GET", fixed("/bookapi/books?q=" + url.QueryEscape(scaleMissingCommon)), nil, http.StatusOK},
		{"q common", "GET", fixed("/bookapi/books?q=" + scaleCommon), nil, http.StatusOK},
		{"q without letters", "GET", fixed("/bookapi/books?q=" + url.QueryEscape(scaleNoLetters)), nil, http.StatusOK},
		{"author", "GET", fixed("/bookapi/books?author=" + url.QueryEscape(newScaleLibrary(n).author(1))), nil, http.StatusOK},
		{"owner", "GET", fixed("/bookapi/books?owner=librarian"), nil, http.StatusOK},
		{"admin users", "GET", fixed("/admin/users"), nil, http.StatusOK},
		{"create", "POST", fixed("/bookapi/books"), func(i int) string {
			return `{"title":"Scale run ` + run + ` book ` + strconv.Itoa(i) + `","author":"Bench Author"}`
		}, http.StatusCreated},
	}
	for _, r := range routes {
		body := func(int) string { return "" }
		if r.body != nil {
			body = r.body
		}
		took := make([]time.Duration, 0, requests)
		began := time.Now()
		for i := 0; len(took) < requests; i++ {
			if len(took) >= scaleMinRequests && time.Since(began) > scaleRouteTime {
				break
			}
			path, payload := r.path(i), body(i)
			t0 := time.Now()
			bs.serve(b, r.method, path, payload, r.status)
			if i >= 20 {
				took = append(took, time.Since(t0))
			}
		}
		slices.Sort(took)
		var sum time.Duration
		for _, d := range took {
			sum += d
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		emit("route\t%s\t%.2f\t%.2f\t%.0f/s\t%d requests", r.name, ms(took[len(took)/2]), ms(took[len(took)*99/100]),
			float64(len(took))/sum.Seconds(), len(took))
	}

	size := scaleSize(b, st, dsn)
	closed = true
	if err := st.close(); err != nil {
		b.Fatal(err)
	}
	if !isPostgres(dsn) {
		fi, err := os.Stat(dbPath(dsn))
		if err != nil {
			b.Fatal(err)
		}
		size = fi.Size() // after close's checkpoint, the whole database
	}
	emit("size\t%d bytes\t%d bytes/book\t%d books", size, size/int64(books), books)
}

// scaleServe sends one request through the handler and returns its status.
func scaleServe(bs *benchServer, method, path, body string) int {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	bs.h.ServeHTTP(w, req)
	return w.Code
}

// scaleSize returns the bytes the database takes: on PostgreSQL every table
// of the schema with its indexes and TOAST; on SQLite 0, as the file is
// measured once closed.
func scaleSize(b *testing.B, st *store, dsn string) int64 {
	b.Helper()
	if !isPostgres(dsn) {
		return 0
	}
	var size int64
	err := st.r.QueryRow(`SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'`).Scan(&size)
	if err != nil {
		b.Fatal(err)
	}
	return size
}
