package main

// Reliability: what bookapi does when it is killed, loaded, stopped, starved
// of disk, handed a bad database, or panics. The crash, shutdown, start-up
// and soak tests build the real binary into t.TempDir() and run it as a child
// process; the others run the real server in process. The soak is opt-in:
//
//	BOOKAPI_SOAK=1 go test -run '^TestSoak$' -count=1 -v -timeout 10m .

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// buildBinary builds bookapi into a new t.TempDir() and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bookapi")
	// -buildvcs=false: a clone owned by another user would make git, and so
	// the build, fail.
	out, err := exec.Command("go", "build", "-buildvcs=false", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -o %s .: %v\n%s", bin, err, out)
	}
	return bin
}

// child is bookapi running as a child process of the test.
type child struct {
	cmd    *exec.Cmd
	addr   string // host:port from the listening line
	url    string
	log    string // the file that receives its stdout and stderr
	client *http.Client
	done   chan struct{} // closed once the process has exited
	err    error         // cmd.Wait's result, set before done is closed
}

// startChild runs `bin -addr 127.0.0.1:0 -db db -bcrypt-cost 4` with
// SECRET_KEY as its whole environment, waits with a deadline for its
// listening line and for /healthz to answer 200, and returns it. t.Cleanup
// kills it if the test has not stopped it.
func startChild(t *testing.T, bin, db string) *child {
	t.Helper()
	args := []string{"-addr", "127.0.0.1:0", "-db", db, "-bcrypt-cost", "4"}
	c := &child{
		log:    filepath.Join(t.TempDir(), "bookapi.log"),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		done:   make(chan struct{}),
	}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = []string{"SECRET_KEY=" + testSecret}
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	err = c.cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.client.CloseIdleConnections()
		if !c.exited() {
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	pollUntil(t, 30*time.Second, "the child's listening line", func() bool {
		c.addr = listenAddr(c.logs(t))
		return c.addr != "" || c.exited()
	})
	if c.addr == "" {
		t.Fatalf("bookapi %s exited before listening (%v); output:\n%s", strings.Join(args, " "), c.err, c.logs(t))
	}
	c.url = "http://" + c.addr
	waitHealthy(t, c.client, c.url)
	return c
}

// logs returns what the child has written to stdout and stderr so far.
func (c *child) logs(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(c.log)
	if err != nil {
		t.Fatalf("read the child's log: %v", err)
	}
	return string(b)
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to end and returns its exit code
// (-1 when a signal ended it), failing the test if it does not end in time.
func (c *child) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("bookapi still running %v after being told to stop", timeout)
	}
	return c.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and checks that the process exits 0 within the drain limit.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.client.CloseIdleConnections()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code := c.wait(t, shutdownTimeout); code != 0 {
		t.Fatalf("bookapi after SIGTERM: exit code %d (%v), want 0; output:\n%s", code, c.err, c.logs(t))
	}
}

// do sends a request to the child, as testServer.do does.
func (c *child) do(t *testing.T, method, path string, body any, headers ...string) *response {
	t.Helper()
	return sendRequest(t, c.client, c.url, method, path, body, headers...)
}

// newUser signs a user up on the child, logs them in and returns the access token.
func (c *child) newUser(t *testing.T, name string) string {
	t.Helper()
	creds := map[string]string{"username": name, "password": "password-of-" + name}
	if r := c.do(t, "POST", "/signup", creds); r.status != http.StatusCreated {
		t.Fatalf("POST /signup %s: status = %d, want 201; body %s", name, r.status, r.body)
	}
	r := c.do(t, "POST", "/login", creds)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /login %s: status = %d, want 201; body %s", name, r.status, r.body)
	}
	return r.json(t)["token"].(string)
}

// createdID returns the id of the book in a {"Book": {...}} body, or 0.
func createdID(r *response) int64 {
	var v struct {
		Book struct {
			ID int64 `json:"id"`
		} `json:"Book"`
	}
	json.Unmarshal(r.body, &v)
	return v.Book.ID
}

// storedBook is a book row as checkDatabase reads it.
type storedBook struct {
	title, author, owner string
}

// checkDatabase opens the SQLite file at path with no server running and
// checks that it is whole: PRAGMA integrity_check is ok, no foreign key
// dangles, and every user and book row is as the service writes it (keys
// are the case fold of their text, hashes are bcrypt, times are sane). It
// returns the books by id.
func checkDatabase(t *testing.T, path string) map[int64]storedBook {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	var integrity []string
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("PRAGMA integrity_check on %s: %v", path, err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		integrity = append(integrity, s)
	}
	rows.Close()
	if len(integrity) != 1 || integrity[0] != "ok" {
		t.Errorf("PRAGMA integrity_check on %s = %q, want [ok]", path, integrity)
	}
	rows, err = db.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatalf("PRAGMA foreign_key_check on %s: %v", path, err)
	}
	if rows.Next() {
		t.Errorf("PRAGMA foreign_key_check on %s: a row refers to a missing parent", path)
	}
	rows.Close()

	rows, err = db.Query(`SELECT id, username, username_key, password_hash, public_id, created_at FROM users`)
	if err != nil {
		t.Fatalf("read users: %v", err)
	}
	for rows.Next() {
		var id, created int64
		var name, key, hash, pid string
		if err := rows.Scan(&id, &name, &key, &hash, &pid, &created); err != nil {
			t.Fatalf("scan user: %v", err)
		}
		if key != foldKey(name) || !strings.HasPrefix(hash, "$2") || uuid.Validate(pid) != nil || created <= 0 {
			t.Errorf("user row %d (%q, key %q, hash %.4s..., public_id %q, created %d) is not as the service writes it", id, name, key, hash, pid, created)
		}
	}
	rows.Close()

	books := map[int64]storedBook{}
	rows, err = db.Query(`SELECT b.id, b.title, b.title_key, b.author, b.author_key, b.created_at, b.updated_at, u.username
		FROM books b LEFT JOIN users u ON u.id = b.owner_id`)
	if err != nil {
		t.Fatalf("read books: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, created, updated int64
		var title, titleKey, author, authorKey string
		var owner sql.NullString
		if err := rows.Scan(&id, &title, &titleKey, &author, &authorKey, &created, &updated, &owner); err != nil {
			t.Fatalf("scan book: %v", err)
		}
		switch {
		case !owner.Valid:
			t.Errorf("book %d (%q) has no owner", id, title)
		case title == "" || title != strings.TrimSpace(title) || titleKey != foldKey(title):
			t.Errorf("book %d: title %q, title_key %q; want a trimmed title and its fold", id, title, titleKey)
		case author == "" || authorKey != foldKey(author):
			t.Errorf("book %d: author %q, author_key %q; want an author and its fold", id, author, authorKey)
		case created <= 0 || updated < created:
			t.Errorf("book %d: created_at %d, updated_at %d; want 0 < created <= updated", id, created, updated)
		}
		books[id] = storedBook{title, author, owner.String}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read books: %v", err)
	}
	// AUTOINCREMENT never hands out an id again: its counter is at least
	// the largest id.
	var seq, maxID sql.NullInt64
	db.QueryRow(`SELECT seq FROM sqlite_sequence WHERE name = 'books'`).Scan(&seq)
	db.QueryRow(`SELECT MAX(id) FROM books`).Scan(&maxID)
	if maxID.Valid && (!seq.Valid || seq.Int64 < maxID.Int64) {
		t.Errorf("sqlite_sequence for books = %v, below the largest id %d", seq, maxID.Int64)
	}
	return books
}

func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	sqliteOnly(t, "a SQLite file under a killed, full, read-only or broken process or disk")
	t.Parallel()
	bin := buildBinary(t)
	db := filepath.Join(t.TempDir(), "crash.db")
	c := startChild(t, bin, db)
	tok := c.newUser(t, "alice")

	// 200 creates at once, each on its own connection; the goroutine that
	// receives the 50th 201 SIGKILLs the server, so the others are cut off
	// at every stage: queued, in a transaction, committed but not answered.
	const n, killAfter = 200, 50
	type result struct {
		title  string
		status int
		id     int64
		err    error
	}
	results := make([]result, n)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	var acked atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			title := fmt.Sprintf("Crash book %03d", i)
			<-start
			r, err := exchange(client, c.url, "POST", "/bookapi/books",
				map[string]string{"title": title, "author": "Crash Tester"}, bearer(tok)...)
			res := result{title: title, err: err}
			if err == nil {
				res.status = r.status
				res.id = createdID(r)
				if r.status == http.StatusCreated && acked.Add(1) == killAfter {
					c.cmd.Process.Kill()
				}
			}
			results[i] = res
		}()
	}
	close(start)
	wg.Wait()
	if code := c.wait(t, 10*time.Second); code != -1 {
		t.Fatalf("bookapi exit code %d, want death by SIGKILL", code)
	}

	var ok, failed int
	for _, r := range results {
		switch {
		case r.err != nil:
			failed++
		case r.status != http.StatusCreated || r.id == 0:
			t.Errorf("POST /bookapi/books %q before the kill: status = %d, id %d; want 201 and an id", r.title, r.status, r.id)
		default:
			ok++
		}
	}
	walSize := int64(-1)
	if fi, err := os.Stat(db + "-wal"); err == nil {
		walSize = fi.Size()
	}
	t.Logf("SIGKILL after %d acknowledged creates: %d of %d answered 201, %d cut off; WAL left behind: %d bytes", killAfter, ok, n, failed, walSize)
	if failed == 0 {
		t.Fatalf("every create was answered before the kill; the test did not crash the server mid-burst")
	}

	// Restart on the same file: every acknowledged create is there, whole.
	c2 := startChild(t, bin, db)
	for _, r := range results {
		if r.err != nil || r.status != http.StatusCreated {
			continue
		}
		got := c2.do(t, "GET", "/bookapi/books/"+strconv.FormatInt(r.id, 10), nil, bearer(tok)...)
		if got.status != http.StatusOK {
			t.Errorf("after restart, GET /bookapi/books/%d (%q, acknowledged): status = %d, want 200", r.id, r.title, got.status)
			continue
		}
		if b := got.json(t)["Book"].(map[string]any); b["title"] != r.title || b["owner"] != "alice" {
			t.Errorf("after restart, book %d = %v, want title %q owned by alice", r.id, b, r.title)
		}
	}
	if r := c2.do(t, "GET", "/readyz", nil); r.status != http.StatusOK {
		t.Errorf("after restart, GET /readyz: status = %d, want 200; body %s", r.status, r.body)
	}
	c2.stop(t)

	sent := map[string]bool{}
	for _, r := range results {
		sent[r.title] = true
	}
	books := checkDatabase(t, db)
	for id, b := range books {
		if !sent[b.title] || b.owner != "alice" || b.author != "Crash Tester" {
			t.Errorf("book %d = %+v, want one of the titles sent, by Crash Tester, owned by alice", id, b)
		}
	}
	if len(books) < ok {
		t.Errorf("%d books stored, want at least the %d acknowledged", len(books), ok)
	}
	t.Logf("after restart: %d books stored (%d acknowledged, %d committed but not answered)", len(books), ok, len(books)-ok)
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	defer client.CloseIdleConnections()
	const clients, perClient, signers, signups = 64, 20, 8, 5

	// The writers sign up one after another: 128 bcrypt hashes at once would
	// queue on the bcrypt slots for longer than their 5 s limit on a slow
	// machine, a 503 by design and no concern of this test. Eight clients
	// still sign up during the writes below.
	tokens := make([]string, clients)
	for i := range clients {
		tokens[i] = ts.newUser(t, fmt.Sprintf("writer%02d", i))
	}

	// All at once, each writer creates 20 books and deletes every fourth
	// right after creating it, while 8 more clients sign up 5 users each.
	type written struct {
		id      int64
		title   string
		deleted bool
	}
	books := make([][]written, clients)
	var statuses sync.Map // "METHOD route status" -> *atomic.Int64
	note := func(what string, r *response) {
		if r == nil {
			return
		}
		v, _ := statuses.LoadOrStore(fmt.Sprintf("%s %d", what, r.status), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	start := make(chan struct{})
	began := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := range perClient {
				title := fmt.Sprintf("Writer %02d book %02d", i, j)
				r, err := exchange(client, ts.URL, "POST", "/bookapi/books",
					map[string]string{"title": title, "author": "Concurrent Author"}, bearer(tokens[i])...)
				note("POST /bookapi/books", r)
				if err != nil || r.status != http.StatusCreated || createdID(r) == 0 {
					t.Errorf("POST /bookapi/books %q: %v, want 201", title, describe(r, err))
					continue
				}
				w := written{id: createdID(r), title: title}
				if j%4 == 3 {
					path := "/bookapi/books/" + strconv.FormatInt(w.id, 10)
					r, err := exchange(client, ts.URL, "DELETE", path, nil, bearer(tokens[i])...)
					note("DELETE /bookapi/books/{id}", r)
					if err != nil || r.status != http.StatusOK {
						t.Errorf("DELETE %s: %v, want 200", path, describe(r, err))
					} else {
						w.deleted = true
					}
				}
				books[i] = append(books[i], w)
			}
		}()
	}
	for i := range signers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := range signups {
				name := fmt.Sprintf("joiner%d-%d", i, j)
				r, err := exchange(client, ts.URL, "POST", "/signup", map[string]string{"username": name, "password": "password-of-" + name})
				note("POST /signup", r)
				if err != nil || r.status != http.StatusCreated {
					t.Errorf("POST /signup %s: %v, want 201", name, describe(r, err))
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	var summary []string
	statuses.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%s: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(summary)
	t.Logf("%d writers x %d creates (every 4th deleted) + %d x %d signups in %v: %s", clients, perClient, signers, signups, elapsed.Round(time.Millisecond), strings.Join(summary, ", "))

	// Every acknowledged row is there as written; every deleted one is gone.
	want := map[int64]string{}
	for i := range clients {
		for _, w := range books[i] {
			if !w.deleted {
				want[w.id] = w.title
			}
		}
	}
	rows, err := ts.s.db.r.Query(`SELECT id, title FROM books`)
	if err != nil {
		t.Fatalf("read books: %v", err)
	}
	got := map[int64]string{}
	for rows.Next() {
		var id int64
		var title string
		rows.Scan(&id, &title)
		got[id] = title
	}
	rows.Close()
	for id, title := range want {
		if got[id] != title {
			t.Errorf("book %d: stored title %q, want %q", id, got[id], title)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d books stored, want %d (created minus deleted)", len(got), len(want))
	}
	if n, want := ts.count(t, "users"), clients+signers*signups; n != want {
		t.Errorf("%d users stored, want %d", n, want)
	}
	logs := ts.logs.String()
	for _, bad := range []string{"database is locked", "SQLITE_BUSY", "level=ERROR", "level=WARN"} {
		if strings.Contains(logs, bad) {
			t.Errorf("server log contains %q", bad)
		}
	}
}

// describe renders an exchange's outcome for a failure message.
func describe(r *response, err error) string {
	if err != nil {
		return "error " + err.Error()
	}
	return fmt.Sprintf("status = %d (body %s)", r.status, bytes.TrimSpace(r.body))
}

func TestConcurrentCreatesOfOneTitle(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	tokens := []string{ts.newUser(t, "alice"), ts.newUser(t, "bob")}
	// Two users create the same title at the same moment, spelled in two
	// letter cases: exactly one 201 and one 409, and one row.
	for round := range 25 {
		titles := []string{fmt.Sprintf("Contested title %d", round), fmt.Sprintf("  CONTESTED TITLE %d ", round)}
		statuses := make([]int, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := exchange(client, ts.URL, "POST", "/bookapi/books",
					map[string]string{"title": titles[i], "author": "Someone"}, bearer(tokens[i])...)
				if err != nil {
					t.Errorf("POST /bookapi/books %q: %v", titles[i], err)
					return
				}
				statuses[i] = r.status
				if r.status == http.StatusConflict && r.json(t)["error"] != "conflict" {
					t.Errorf("POST /bookapi/books %q: 409 body %s, want error conflict", titles[i], r.body)
				}
			}()
		}
		close(start)
		wg.Wait()
		slices.Sort(statuses)
		if statuses[0] != http.StatusCreated || statuses[1] != http.StatusConflict {
			t.Errorf("round %d: two concurrent creates of %q: statuses %v, want one 201 and one 409", round, titles[0], statuses)
		}
		var n int
		if err := ts.s.db.r.QueryRow(`SELECT COUNT(*) FROM books WHERE title_key = ?`, foldKey(titles[0])).Scan(&n); err != nil || n != 1 {
			t.Errorf("round %d: rows titled %q: %d (%v), want 1", round, titles[0], n, err)
		}
	}
}

func TestShutdownUnderLoad(t *testing.T) {
	sqliteOnly(t, "a SQLite file under a killed, full, read-only or broken process or disk")
	t.Parallel()
	bin := buildBinary(t)
	db := filepath.Join(t.TempDir(), "shutdown.db")
	c := startChild(t, bin, db)
	tok := c.newUser(t, "alice")
	r := c.do(t, "POST", "/bookapi/books", map[string]string{"title": "Patch me", "author": "Before"}, bearer(tok)...)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /bookapi/books: status = %d, want 201; body %s", r.status, r.body)
	}
	patchID := createdID(r)

	// Held requests are certainly in flight: each asks for 100-continue,
	// which the server sends only once the handler reads the body, and the
	// body is held back until shutdown is under way.
	type heldRequest struct {
		method, path, body string
		want               int
	}
	var held []heldRequest
	for i := range 6 {
		held = append(held, heldRequest{"POST", "/bookapi/books", fmt.Sprintf(`{"title": "Held book %d", "author": "Held Author"}`, i), http.StatusCreated})
	}
	held = append(held,
		heldRequest{"POST", "/signup", `{"username": "latecomer", "password": "password-of-latecomer"}`, http.StatusCreated},
		heldRequest{"PATCH", "/bookapi/books/" + strconv.FormatInt(patchID, 10), `{"author": "Patched during shutdown"}`, http.StatusOK},
	)
	type result struct {
		r   *response
		err error
	}
	heldClient := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	defer heldClient.CloseIdleConnections()
	bodies := make([]*io.PipeWriter, len(held))
	results := make([]chan result, len(held))
	for i, h := range held {
		pr, pw := io.Pipe()
		bodies[i], results[i] = pw, make(chan result, 1)
		req, err := http.NewRequest(h.method, c.url+h.path, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(h.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Expect", "100-continue")
		req.Header.Set("Authorization", "Bearer "+tok)
		continued := make(chan struct{})
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			Got100Continue: func() { close(continued) },
		}))
		go func() {
			resp, err := heldClient.Do(req)
			if err != nil {
				results[i] <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results[i] <- result{&response{status: resp.StatusCode, body: b}, err}
		}()
		select {
		case <-continued:
		case res := <-results[i]:
			t.Fatalf("%s %s ended before 100 Continue: %s", h.method, h.path, describe(res.r, res.err))
		case <-time.After(30 * time.Second):
			t.Fatalf("%s %s: no 100 Continue within 30s", h.method, h.path)
		}
	}

	// Load: four clients creating and listing books on keep-alive
	// connections until the server stops answering.
	var signalled atomic.Bool
	type loadResult struct {
		what  string
		title string
		r     *response
		err   error
	}
	loadClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer loadClient.CloseIdleConnections()
	var loadMu sync.Mutex
	var load []loadResult
	var answered atomic.Int32
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				lr := loadResult{what: "GET /bookapi/books"}
				if i%2 == 0 {
					lr.what, lr.title = "POST /bookapi/books", fmt.Sprintf("Load %d-%d", g, i)
					lr.r, lr.err = exchange(loadClient, c.url, "POST", "/bookapi/books",
						map[string]string{"title": lr.title, "author": "Load Author"}, bearer(tok)...)
				} else {
					lr.r, lr.err = exchange(loadClient, c.url, "GET", "/bookapi/books?limit=5", nil, bearer(tok)...)
				}
				if lr.err == nil {
					answered.Add(1)
				}
				loadMu.Lock()
				load = append(load, lr)
				loadMu.Unlock()
				if lr.err != nil {
					if !signalled.Load() {
						t.Errorf("%s before SIGTERM: %v", lr.what, lr.err)
					}
					return
				}
			}
		}()
	}
	pollUntil(t, 30*time.Second, "50 answers to the load", func() bool { return answered.Load() >= 50 })

	signalled.Store(true)
	sigAt := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	pollUntil(t, 10*time.Second, "new connections to be refused after SIGTERM", func() bool {
		conn, err := net.DialTimeout("tcp", c.addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	wg.Wait() // the load has run into the closed listener
	if c.exited() {
		t.Fatalf("bookapi exited (%v) with %d requests in flight; want it to wait for them", c.err, len(held))
	}

	for i, h := range held {
		io.WriteString(bodies[i], h.body)
		bodies[i].Close()
	}
	for i, h := range held {
		select {
		case res := <-results[i]:
			if res.err != nil || res.r.status != h.want {
				t.Errorf("%s %s in flight at SIGTERM: %s, want %d", h.method, h.path, describe(res.r, res.err), h.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s %s in flight at SIGTERM: no answer within 30s", h.method, h.path)
		}
	}
	code := c.wait(t, shutdownTimeout)
	exitAfter := time.Since(sigAt)
	if code != 0 {
		t.Errorf("bookapi after SIGTERM: exit code %d (%v), want 0", code, c.err)
	}
	if exitAfter >= shutdownTimeout {
		t.Errorf("bookapi exited %v after SIGTERM, want within the %v drain limit", exitAfter, shutdownTimeout)
	}
	logs := c.logs(t)
	for _, want := range []string{`msg="shutting down"`, "msg=stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if strings.Contains(logs, "level=ERROR") {
		t.Errorf("log has errors:\n%s", logs)
	}

	// The load: whatever was answered was answered normally.
	acked := map[string]bool{}
	var loadErrs int
	for _, lr := range load {
		switch {
		case lr.err != nil:
			loadErrs++
		case lr.what == "POST /bookapi/books" && lr.r.status == http.StatusCreated:
			acked[lr.title] = true
		case lr.what == "GET /bookapi/books" && lr.r.status == http.StatusOK:
		default:
			t.Errorf("%s during shutdown: status = %d, want success; body %s", lr.what, lr.r.status, lr.r.body)
		}
	}
	t.Logf("%d load requests (%d creates acknowledged), %d ended by the closed listener; %d held requests answered; exit %d after %v",
		len(load), len(acked), loadErrs, len(held), code, exitAfter.Round(time.Millisecond))

	// The database file alone is complete: the WAL was checkpointed into it.
	if fi, err := os.Stat(db + "-wal"); err == nil && fi.Size() > 0 {
		t.Errorf("%s-wal after a clean exit: %d bytes, want it absent or empty", db, fi.Size())
	}
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	dbCopy := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(dbCopy, data, 0o600); err != nil {
		t.Fatal(err)
	}
	books := checkDatabase(t, dbCopy)
	titles := map[string]storedBook{}
	for _, b := range books {
		titles[b.title] = b
	}
	for i := range 6 {
		acked[fmt.Sprintf("Held book %d", i)] = true
	}
	for title := range acked {
		if _, ok := titles[title]; !ok {
			t.Errorf("copy of the database file alone: acknowledged book %q is missing", title)
		}
	}
	if b := books[patchID]; b.author != "Patched during shutdown" {
		t.Errorf("copy of the database file alone: book %d author %q, want the patch made during shutdown", patchID, b.author)
	}
	st, err := openStore(context.Background(), dbCopy, defaultMaxConns(dbCopy), discardLog())
	if err != nil {
		t.Fatalf("openStore on the copy: %v", err)
	}
	defer st.close()
	if _, _, err := st.credentials(context.Background(), "latecomer"); err != nil {
		t.Errorf("copy of the database file alone: user of the signup in flight: %v, want it stored", err)
	}
}

// mountTmpfs mounts a tmpfs of the given size on a new t.TempDir() and
// unmounts it in t.Cleanup, skipping the test where that is impossible.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs to fill up needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipping: mount -t tmpfs -o size=%s tmpfs %s: %v: %s", size, dir, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, bytes.TrimSpace(out))
		}
	})
	return dir
}

// fillDisk writes the file path until its file system has no space left and
// returns how many bytes it took.
func fillDisk(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	// Large writes first, then smaller ones for the last partly free pages.
	for _, size := range []int{64 << 10, 4 << 10, 512, 1} {
		chunk := bytes.Repeat([]byte{'j'}, size)
		for {
			n, err := f.Write(chunk)
			total += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("fill %s: %v", path, err)
			}
		}
	}
	return total
}

func TestFullDiskAnswers503AndRecovers(t *testing.T) {
	sqliteOnly(t, "a SQLite file under a killed, full, read-only or broken process or disk")
	t.Parallel()
	dir := mountTmpfs(t, "2m")
	cfg := testConfig(t)
	cfg.db = filepath.Join(dir, "bookapi.db")
	ts := newTestServerWith(t, cfg)
	tok := ts.newUser(t, "alice")
	var ids []string
	for _, title := range []string{"Dune", "Emma", "Ulysses"} {
		r := ts.do(t, "POST", "/bookapi/books", map[string]string{"title": title, "author": "Before"}, bearer(tok)...)
		if r.status != http.StatusCreated {
			t.Fatalf("POST /bookapi/books %q: status = %d, want 201", title, r.status)
		}
		ids = append(ids, strconv.FormatInt(createdID(r), 10))
	}
	if r := ts.do(t, "GET", "/readyz", nil); r.status != http.StatusOK {
		t.Fatalf("GET /readyz before the disk is full: status = %d, want 200; body %s", r.status, r.body)
	}
	counts := func() [3]int { return [3]int{ts.count(t, "users"), ts.count(t, "books"), ts.count(t, "sessions")} }
	before := counts()

	junk := filepath.Join(dir, "junk")
	t.Logf("filled the 2 MiB tmpfs with %d bytes of junk", fillDisk(t, junk))

	// Every write is refused as unavailable, and leaves nothing behind.
	creds := map[string]string{"username": "bob", "password": "password-of-bob"}
	writes := []struct {
		method, path string
		body         any
		auth         bool
	}{
		{"POST", "/bookapi/books", map[string]string{"title": "Full disk book", "author": "Nobody"}, true},
		{"POST", "/bookapi/books", map[string]string{"title": "Full disk book", "author": "Nobody"}, true},
		{"POST", "/bookapi/addbook", map[string]string{"title": "Full disk seed book", "author": "Nobody"}, true},
		{"PATCH", "/bookapi/books/" + ids[0], map[string]string{"title": "Renamed on a full disk"}, true},
		{"DELETE", "/bookapi/books/" + ids[1], nil, true},
		{"POST", "/signup", creds, false},
		{"POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"}, false},
		{"POST", "/logout/all", nil, true},
	}
	for _, w := range writes {
		var h []string
		if w.auth {
			h = bearer(tok)
		}
		r := ts.do(t, w.method, w.path, w.body, h...)
		if r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s on a full disk: status = %d, Retry-After %q, body %s; want 503 unavailable with Retry-After",
				w.method, w.path, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	r := ts.do(t, "GET", "/readyz", nil)
	if r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "unavailable" {
		t.Errorf("GET /readyz on a full disk: status = %d, body %s; want 503 unavailable", r.status, r.body)
	}
	// Reads go on.
	for _, path := range []string{"/healthz", "/me", "/bookapi/books", "/bookapi/books/" + ids[0]} {
		if r := ts.do(t, "GET", path, nil, bearer(tok)...); r.status != http.StatusOK {
			t.Errorf("GET %s on a full disk: status = %d, want 200; body %s", path, r.status, r.body)
		}
	}
	if r := ts.do(t, "GET", "/bookapi/books/"+ids[0], nil, bearer(tok)...); r.json(t)["Book"].(map[string]any)["title"] != "Dune" {
		t.Errorf("book %s after a PATCH refused on a full disk: %s, want it unchanged", ids[0], r.body)
	}
	if after := counts(); after != before {
		t.Errorf("users, books, sessions after the refused writes: %v, want %v (nothing stored)", after, before)
	}

	// Free the space: the same server recovers by itself.
	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	probes := 0
	pollUntil(t, 10*time.Second, "GET /readyz to answer 200 once the disk has room", func() bool {
		probes++
		return ts.do(t, "GET", "/readyz", nil).status == http.StatusOK
	})
	t.Logf("GET /readyz answered 200 at probe %d after the junk was deleted", probes)
	// The refused title was not half-stored: creating it now is a 201, not a 409.
	if r := ts.do(t, "POST", "/bookapi/books", writes[0].body, bearer(tok)...); r.status != http.StatusCreated {
		t.Errorf("POST /bookapi/books after recovery: status = %d, want 201; body %s", r.status, r.body)
	}
	if r := ts.do(t, "PATCH", "/bookapi/books/"+ids[0], writes[3].body, bearer(tok)...); r.status != http.StatusOK {
		t.Errorf("PATCH after recovery: status = %d, want 200; body %s", r.status, r.body)
	}
	if r := ts.do(t, "DELETE", "/bookapi/books/"+ids[1], nil, bearer(tok)...); r.status != http.StatusOK {
		t.Errorf("DELETE after recovery: status = %d, want 200; body %s", r.status, r.body)
	}
	ts.signup(t, "bob", "password-of-bob")
	ts.login(t, "alice", "password-of-alice")
	wantCleanRecovery(t, ts, "full disk")
}

// wantCleanRecovery checks, once a server whose database refused writes has
// taken them again, that the file is intact and that the log named the
// refusals (the cause, such as "full disk") as the database being
// unavailable, with no errors.
func wantCleanRecovery(t *testing.T, ts *testServer, cause string) {
	t.Helper()
	var check string
	if err := ts.s.db.r.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("PRAGMA integrity_check after recovery: %q, %v; want ok", check, err)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "database unavailable") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("log: want the %s logged as database unavailable, and no errors:\n%s", cause, logs)
	}
}

// TestFullDatabaseAnswers503AndRecovers stops the database growing with a
// page limit on the writer's connection (PRAGMA max_page_count), as a full
// disk would, so that it runs anywhere, without root or mount: a write that
// needs one page more is a 503 unavailable and stores nothing, reads go on,
// and once the limit is raised the same writes succeed.
func TestFullDatabaseAnswers503AndRecovers(t *testing.T) {
	sqliteOnly(t, "about SQLite itself: its file, pragmas, result codes or query plans")
	t.Parallel()
	ts := newTestServer(t)
	tok := ts.newUser(t, "alice")
	maxPages := func(n int64) int64 {
		t.Helper()
		var got int64
		// PRAGMA takes no parameters; n is the test's own integer.
		if err := ts.s.db.w.QueryRow(fmt.Sprintf("PRAGMA max_page_count = %d", n)).Scan(&got); err != nil {
			t.Fatalf("PRAGMA max_page_count = %d: %v", n, err)
		}
		return got
	}
	var pages, defaultMax int64
	if err := ts.s.db.w.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatalf("PRAGMA page_count: %v", err)
	}
	if err := ts.s.db.w.QueryRow("PRAGMA max_page_count").Scan(&defaultMax); err != nil {
		t.Fatalf("PRAGMA max_page_count: %v", err)
	}
	if got := maxPages(pages); got != pages {
		t.Fatalf("PRAGMA max_page_count = %d: the limit is %d", pages, got)
	}

	// Books of long titles, so that pages fill up within a few of them.
	bookOf := func(i int) map[string]string {
		return map[string]string{"title": fmt.Sprintf("%03d %s", i, strings.Repeat("t", 190)), "author": strings.Repeat("a", 200)}
	}
	wantUnavailable := func(what string, r *response) {
		t.Helper()
		if r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s on a full database: status = %d, Retry-After %q, body %s; want 503 unavailable with Retry-After",
				what, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	full := -1
	for i := 0; i < 200 && full < 0; i++ {
		r := ts.do(t, "POST", "/bookapi/books", bookOf(i), bearer(tok)...)
		if r.status != http.StatusCreated {
			wantUnavailable(fmt.Sprintf("POST /bookapi/books %d", i), r)
			full = i
		}
	}
	if full < 0 {
		t.Fatalf("200 books created within max_page_count %d; want the database full", pages)
	}
	t.Logf("the database of %d pages was full after %d books", pages, full)
	stored := ts.count(t, "books")
	if stored != full {
		t.Errorf("books after %d created and one refused: %d", full, stored)
	}

	// Still full: the same book is refused again, by either route, and
	// nothing of it is stored.
	wantUnavailable("POST /bookapi/books again", ts.do(t, "POST", "/bookapi/books", bookOf(full), bearer(tok)...))
	wantUnavailable("POST /bookapi/addbook", ts.do(t, "POST", "/bookapi/addbook", bookOf(full), bearer(tok)...))
	if n := ts.count(t, "books"); n != stored {
		t.Errorf("books after the refused writes: %d, want %d", n, stored)
	}
	// Reads go on.
	if r := ts.do(t, "GET", "/bookapi/books?limit=1000", nil, bearer(tok)...); r.status != http.StatusOK || len(r.json(t)["Books"].([]any)) != stored {
		t.Errorf("GET /bookapi/books on a full database: status = %d, body %s; want 200 with %d books", r.status, r.body, stored)
	}
	if r := ts.do(t, "GET", "/me", nil, bearer(tok)...); r.status != http.StatusOK {
		t.Errorf("GET /me on a full database: status = %d, want 200", r.status)
	}

	// Room again: the refused title was not half-stored, so it is a 201, not a 409.
	maxPages(defaultMax)
	r := ts.do(t, "POST", "/bookapi/books", bookOf(full), bearer(tok)...)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /bookapi/books once the limit is raised: status = %d, want 201; body %s", r.status, r.body)
	}
	id := createdID(r)
	if got := ts.do(t, "GET", "/bookapi/books?limit=1000", nil, bearer(tok)...).json(t)["Books"].([]any); len(got) != stored+1 ||
		got[stored].(map[string]any)["id"] != float64(id) {
		t.Errorf("GET /bookapi/books once the limit is raised: %d books, want %d ending with book %d", len(got), stored+1, id)
	}
	if r := ts.do(t, "POST", "/bookapi/books", bookOf(full+1), bearer(tok)...); r.status != http.StatusCreated {
		t.Errorf("POST /bookapi/books of another book once the limit is raised: status = %d, want 201", r.status)
	}
	wantCleanRecovery(t, ts, "full database")
}

func TestReadOnlyDatabaseAnswers503(t *testing.T) {
	sqliteOnly(t, "a SQLite file under a killed, full, read-only or broken process or disk")
	t.Parallel()
	// A database file the server may only read (opened read-only, as SQLite
	// also does when the file is write-protected): writes and /readyz are
	// 503, reads go on.
	cfg := testConfig(t)
	rw := newTestServerWith(t, cfg)
	tok := rw.newUser(t, "alice")
	r := rw.do(t, "POST", "/bookapi/books", map[string]string{"title": "Dune", "author": "Frank Herbert"}, bearer(tok)...)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /bookapi/books: status = %d, want 201", r.status)
	}
	id := strconv.FormatInt(createdID(r), 10)

	roCfg := cfg
	roCfg.db = "file:" + cfg.db + "?mode=ro"
	ro := newTestServerWith(t, roCfg)
	if r := ro.do(t, "GET", "/readyz", nil); r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "unavailable" {
		t.Errorf("GET /readyz on a read-only database: status = %d, body %s; want 503 unavailable", r.status, r.body)
	}
	if r := rw.do(t, "GET", "/readyz", nil); r.status != http.StatusOK {
		t.Errorf("GET /readyz on the same database opened read-write: status = %d, want 200", r.status)
	}
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/bookapi/books", map[string]string{"title": "Emma", "author": "Jane Austen"}},
		{"PATCH", "/bookapi/books/" + id, map[string]string{"author": "Someone else"}},
		{"DELETE", "/bookapi/books/" + id, nil},
		{"POST", "/signup", map[string]string{"username": "bob", "password": "password-of-bob"}},
		{"POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"}},
	} {
		r := ro.do(t, w.method, w.path, w.body, bearer(tok)...)
		if r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "unavailable" {
			t.Errorf("%s %s on a read-only database: status = %d, body %s; want 503 unavailable", w.method, w.path, r.status, r.body)
		}
	}
	for _, path := range []string{"/me", "/bookapi/books", "/bookapi/books/" + id} {
		if r := ro.do(t, "GET", path, nil, bearer(tok)...); r.status != http.StatusOK {
			t.Errorf("GET %s on a read-only database: status = %d, want 200; body %s", path, r.status, r.body)
		}
	}
	if n := rw.count(t, "books"); n != 1 {
		t.Errorf("books after writes refused by the read-only server: %d, want 1", n)
	}
}

func TestStartRefusesUnusableDatabase(t *testing.T) {
	sqliteOnly(t, "a SQLite file under a killed, full, read-only or broken process or disk")
	t.Parallel()
	bin := buildBinary(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database\n"), 300), 0o600); err != nil {
		t.Fatal(err)
	}
	aDir := filepath.Join(dir, "a-directory.db")
	if err := os.Mkdir(aDir, 0o700); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer.db")
	st, err := openStore(context.Background(), newer, defaultMaxConns(newer), discardLog())
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	if _, err := st.w.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatalf("PRAGMA user_version = 99: %v", err)
	}
	st.close()
	newerBytes, err := os.ReadFile(newer)
	if err != nil {
		t.Fatal(err)
	}
	// A good database cut short inside its second page, as a failed copy
	// leaves it.
	good := filepath.Join(dir, "good.db")
	if st, err = openStore(context.Background(), good, defaultMaxConns(good), discardLog()); err != nil {
		t.Fatalf("openStore: %v", err)
	}
	st.close()
	goodBytes, err := os.ReadFile(good)
	if err != nil || len(goodBytes) < 8192 {
		t.Fatalf("read %s: %d bytes, %v; want at least two pages", good, len(goodBytes), err)
	}
	truncated := filepath.Join(dir, "truncated.db")
	if err := os.WriteFile(truncated, goodBytes[:6000], 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, db string
		want     []string // the one line must name each
	}{
		{"missing directory", filepath.Join(dir, "no", "such", "x.db"), []string{filepath.Join(dir, "no", "such", "x.db"), "no such file or directory"}},
		{"a directory", aDir, []string{aDir}},
		{"not SQLite", garbage, []string{garbage, "not a database"}},
		{"truncated", truncated, []string{truncated, "malformed"}},
		{"newer schema", newer, []string{newer, "schema version 99 is newer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0", "-db", tt.db, "-bcrypt-cost", "4")
			cmd.Env = []string{"SECRET_KEY=" + testSecret}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() < 1 {
				t.Fatalf("bookapi -db %s: %v, want a non-zero exit; stderr:\n%s", tt.db, err, &stderr)
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "bookapi: ") || !strings.HasSuffix(line, "\n") {
				t.Errorf("bookapi -db %s: stderr %q, want one line starting \"bookapi: \"", tt.db, line)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("bookapi -db %s: stderr %q, want it to name %q", tt.db, line, w)
				}
			}
			if stdout.Len() > 0 {
				t.Errorf("bookapi -db %s: stdout %q, want nothing", tt.db, &stdout)
			}
			t.Logf("exit %d: %s", ee.ExitCode(), strings.TrimSpace(line))
		})
	}
	t.Cleanup(func() {
		if got, _ := os.ReadFile(newer); !bytes.Equal(got, newerBytes) {
			t.Errorf("bookapi changed the database with the newer schema")
		}
	})
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	s := ts.s
	// The real routes and middleware, plus routes that panic, which exist
	// only here.
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		mux.Handle(rt.pattern, rt.handler)
	}
	mux.Handle("GET /test/panic", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		panic("secret detail: SELECT password_hash FROM users")
	}))
	mux.Handle("GET /test/nil-map", s.requireToken(func(w http.ResponseWriter, r *http.Request, u user) error {
		var m map[string]int
		m[u.Username]++ // a runtime error
		return nil
	}))
	mux.Handle("GET /test/panic-after-write", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"Books": [`)
		http.NewResponseController(w).Flush()
		panic("half-way through the body")
	}))
	srv := httptest.NewServer(s.middleware(mux))
	defer srv.Close()
	client := srv.Client()
	tok := ts.newUser(t, "alice") // the same database; tokens work on both

	for _, tt := range []struct {
		path, id, panicText string
	}{
		{"/test/panic", "panic-1", "secret detail"},
		{"/test/nil-map", "panic-2", "assignment to entry in nil map"},
	} {
		r := sendRequest(t, client, srv.URL, "GET", tt.path, nil, append(bearer(tok), "X-Request-ID", tt.id)...)
		var body map[string]any
		json.Unmarshal(r.body, &body)
		if r.status != http.StatusInternalServerError || len(body) != 2 || body["error"] != "internal" || body["message"] != "Internal server error." {
			t.Errorf("GET %s: status = %d, body %s; want 500 {message, error: internal}", tt.path, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != jsonContentType || r.header.Get("X-Request-ID") != tt.id {
			t.Errorf("GET %s: Content-Type %q, X-Request-ID %q; want %q and %q", tt.path, ct, r.header.Get("X-Request-ID"), jsonContentType, tt.id)
		}
		for _, leak := range []string{"secret", "SELECT", "nil map", "goroutine", ".go:"} {
			if bytes.Contains(r.body, []byte(leak)) {
				t.Errorf("GET %s: body %s reveals %q", tt.path, r.body, leak)
			}
		}
		// Logged once with its stack and request id, and in the access log as a 500.
		var panicLine, accessLine string
		for _, line := range strings.Split(ts.logs.String(), "\n") {
			if !strings.Contains(line, "request_id="+tt.id) {
				continue
			}
			if strings.Contains(line, "msg=panic") {
				panicLine = line
			}
			if strings.Contains(line, "msg=request") {
				accessLine = line
			}
		}
		if !strings.Contains(panicLine, tt.panicText) || !strings.Contains(panicLine, "reliability_test.go") || !strings.Contains(panicLine, "goroutine") {
			t.Errorf("GET %s: panic log line %q, want the panic value, the stack and the request id", tt.path, panicLine)
		}
		if !strings.Contains(accessLine, "status=500") {
			t.Errorf("GET %s: access log line %q, want status=500", tt.path, accessLine)
		}
	}

	// A panic after the response has begun cannot become a 500; the
	// connection is cut so the client cannot take the part for the whole.
	if r, err := exchange(client, srv.URL, "GET", "/test/panic-after-write", nil); err == nil {
		t.Errorf("GET /test/panic-after-write: status = %d, body %q, no error; want the response cut off", r.status, r.body)
	}

	// The server keeps serving, also while panics happen concurrently.
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, want := "/test/panic", http.StatusInternalServerError
			if i%2 == 1 {
				path, want = "/bookapi/books", http.StatusOK
			}
			if r, err := exchange(client, srv.URL, "GET", path, nil, bearer(tok)...); err != nil || r.status != want {
				t.Errorf("GET %s among panics: %s, want %d", path, describe(r, err), want)
			}
		}()
	}
	wg.Wait()
	r := sendRequest(t, client, srv.URL, "POST", "/bookapi/books", map[string]string{"title": "After the panics", "author": "Survivor"}, bearer(tok)...)
	if r.status != http.StatusCreated {
		t.Errorf("POST /bookapi/books after the panics: status = %d, want 201; body %s", r.status, r.body)
	}
}

// vmRSS returns the resident set size of process pid in KiB, from
// /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// workload is the soak's mixed traffic against one server: logins and
// logouts, listings, creates (some of a taken title), reads, patches,
// deletes, bad tokens and malformed bodies, each checked against the one
// status it must get.
type workload struct {
	base   string
	client *http.Client

	mu         sync.Mutex
	counts     map[string]int // "op status" -> answers
	unexpected []string       // the first few wrong answers
	wrong      int            // all wrong answers and transport errors
	latencies  []time.Duration
}

// soakWorker is one connection's user and the books it owns.
type soakWorker struct {
	w     *workload
	name  string
	token string
	books []int64
	seq   int
	rng   *rand.Rand
}

// step sends one request and checks its status.
func (sw *soakWorker) step(op string, want int, method, path string, body any, headers ...string) *response {
	start := time.Now()
	r, err := exchange(sw.w.client, sw.w.base, method, path, body, headers...)
	d := time.Since(start)
	w := sw.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.latencies = append(w.latencies, d)
	if err != nil {
		w.wrong++
		if len(w.unexpected) < 10 {
			w.unexpected = append(w.unexpected, fmt.Sprintf("%s %s %s: %v", op, method, path, err))
		}
		return nil
	}
	w.counts[fmt.Sprintf("%s %d", op, r.status)]++
	if r.status != want {
		w.wrong++
		if len(w.unexpected) < 10 {
			w.unexpected = append(w.unexpected, fmt.Sprintf("%s %s %s: status %d, want %d; body %s", op, method, path, r.status, want, bytes.TrimSpace(r.body)))
		}
		return nil
	}
	return r
}

// malformed are request bodies POST /bookapi/books must refuse, with the
// Content-Type sent and the status wanted.
var malformed = []struct {
	body, contentType string
	want              int
}{
	{`{"title": "Unclosed", "author": `, "application/json", http.StatusBadRequest},
	{`[]`, "application/json", http.StatusBadRequest},
	{`{"title": 42, "author": "Numbers"}`, "application/json", http.StatusBadRequest},
	{`{"title": "T", "author": "A", "admin": true}`, "application/json", http.StatusBadRequest},
	{`{"title": "T", "author": "A"} {}`, "application/json", http.StatusBadRequest},
	{`{"title": "", "author": "A"}`, "application/json", http.StatusBadRequest},
	{`title=T&author=A`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
}

// run drives the workload until ctx ends.
func (sw *soakWorker) run(ctx context.Context) {
	auth := func() []string { return bearer(sw.token) }
	for ctx.Err() == nil {
		n := sw.rng.IntN(100)
		if len(sw.books) > 30 {
			n = 70 // delete
		}
		if len(sw.books) == 0 && n >= 45 && n < 74 {
			n = 30 // create
		}
		switch {
		case n < 30:
			paths := []string{"/bookapi/books?limit=20", "/bookapi/books?limit=50&after=" + strconv.Itoa(sw.rng.IntN(1000)),
				"/bookapi/books?q=book+1", "/bookapi/books?owner=" + sw.name, "/bookapi/books?author=Soak+Author&limit=10"}
			sw.step("list", http.StatusOK, "GET", paths[sw.rng.IntN(len(paths))], nil, auth()...)
		case n < 45:
			sw.seq++
			title := fmt.Sprintf("%s book %d", sw.name, sw.seq)
			if r := sw.step("create", http.StatusCreated, "POST", "/bookapi/books", map[string]string{"title": title, "author": "Soak Author"}, auth()...); r != nil {
				sw.books = append(sw.books, createdID(r))
			}
		case n < 50:
			// A title taken in another letter case.
			id := sw.books[sw.rng.IntN(len(sw.books))]
			if r := sw.step("get", http.StatusOK, "GET", "/bookapi/books/"+strconv.FormatInt(id, 10), nil, auth()...); r != nil {
				var v struct{ Book struct{ Title string } }
				json.Unmarshal(r.body, &v)
				sw.step("create-taken", http.StatusConflict, "POST", "/bookapi/books", map[string]string{"title": strings.ToUpper(v.Book.Title), "author": "Soak Author"}, auth()...)
			}
		case n < 58:
			id := sw.books[sw.rng.IntN(len(sw.books))]
			sw.step("get", http.StatusOK, "GET", "/bookapi/books/"+strconv.FormatInt(id, 10), nil, auth()...)
		case n < 66:
			id := sw.books[sw.rng.IntN(len(sw.books))]
			sw.step("patch", http.StatusOK, "PATCH", "/bookapi/books/"+strconv.FormatInt(id, 10), map[string]string{"author": fmt.Sprintf("Soak Author rev %d", sw.rng.IntN(1000))}, auth()...)
		case n < 74:
			i := sw.rng.IntN(len(sw.books))
			if sw.step("delete", http.StatusOK, "DELETE", "/bookapi/books/"+strconv.FormatInt(sw.books[i], 10), nil, auth()...) != nil {
				sw.books = slices.Delete(sw.books, i, i+1)
			}
		case n < 79:
			// Log in again, then log the old session out.
			old := sw.token
			if r := sw.step("login", http.StatusCreated, "POST", "/login", map[string]string{"username": sw.name, "password": "password-of-" + sw.name}); r != nil {
				var v struct{ Token string }
				json.Unmarshal(r.body, &v)
				sw.token = v.Token
				sw.step("logout", http.StatusOK, "POST", "/logout", nil, bearer(old)...)
			}
		case n < 84:
			bad := [][]string{
				bearer("not-a-token"),
				bearer(sw.token[:len(sw.token)-4] + "AAAA"),
				{"x-access-token", sw.token + "x"},
				{"Authorization", "Bearer "},
			}
			sw.step("bad-token", http.StatusUnauthorized, "GET", "/bookapi/books", nil, bad[sw.rng.IntN(len(bad))]...)
		case n < 92:
			m := malformed[sw.rng.IntN(len(malformed))]
			sw.step("malformed", m.want, "POST", "/bookapi/books", m.body, append(auth(), "Content-Type", m.contentType)...)
		case n < 96:
			sw.step("me", http.StatusOK, "GET", "/me", nil, auth()...)
		case n < 98:
			sw.step("readyz", http.StatusOK, "GET", "/readyz", nil)
		default:
			sw.step("missing", http.StatusNotFound, "GET", "/bookapi/books/999999999", nil, auth()...)
		}
	}
}

// runWorkload signs up one user per worker, then runs the workers until
// ctx ends and returns the workload's results.
func runWorkload(ctx context.Context, t *testing.T, base string, client *http.Client, workers int, prefix string) *workload {
	t.Helper()
	w := &workload{base: base, client: client, counts: map[string]int{}}
	sws := make([]*soakWorker, workers)
	for i := range workers {
		name := fmt.Sprintf("%s%02d", prefix, i)
		creds := map[string]string{"username": name, "password": "password-of-" + name}
		sendRequest(t, client, base, "POST", "/signup", creds)
		r := sendRequest(t, client, base, "POST", "/login", creds)
		if r.status != http.StatusCreated {
			t.Fatalf("POST /login %s: status = %d, want 201", name, r.status)
		}
		sws[i] = &soakWorker{w: w, name: name, token: r.json(t)["token"].(string), rng: rand.New(rand.NewPCG(uint64(i), 42))}
	}
	var wg sync.WaitGroup
	for _, sw := range sws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sw.run(ctx)
		}()
	}
	wg.Wait()
	return w
}

// report logs what a workload did and fails the test on any wrong answer.
func (w *workload) report(t *testing.T, d time.Duration) {
	t.Helper()
	slices.Sort(w.latencies)
	var keys []string
	total := 0
	for k, n := range w.counts {
		keys = append(keys, fmt.Sprintf("%s: %d", k, n))
		total += n
	}
	slices.Sort(keys)
	pct := func(p float64) time.Duration {
		if len(w.latencies) == 0 {
			return 0
		}
		return w.latencies[int(p*float64(len(w.latencies)-1))]
	}
	t.Logf("%d requests in %v (%.0f/s), p50 %v, p99 %v, max %v; wrong answers: %d",
		total, d.Round(time.Millisecond), float64(total)/d.Seconds(), pct(0.5), pct(0.99), pct(1), w.wrong)
	t.Logf("by op and status: %s", strings.Join(keys, ", "))
	for k := range w.counts {
		if code, _ := strconv.Atoi(k[strings.LastIndexByte(k, ' ')+1:]); code >= 500 {
			t.Errorf("%s: a 5xx answer", k)
		}
	}
	if w.wrong > 0 {
		t.Errorf("%d wrong answers; the first: %s", w.wrong, strings.Join(w.unexpected, "\n"))
	}
}

// soakDuration is how long TestSoak loads the child: 60 s, or
// BOOKAPI_SOAK_DURATION (a Go duration).
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("BOOKAPI_SOAK_DURATION")
	if v == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second {
		t.Fatalf("BOOKAPI_SOAK_DURATION=%q: want a Go duration of 1s or more", v)
	}
	return d
}

func TestSoak(t *testing.T) {
	sqliteOnly(t, "opt-in soak of a SQLite child process")
	if os.Getenv("BOOKAPI_SOAK") == "" {
		t.Skip("set BOOKAPI_SOAK=1 to run the 60 s soak (BOOKAPI_SOAK_DURATION=10s for a shorter one)")
	}
	d := soakDuration(t)
	const conns = 32

	t.Run("child process", func(t *testing.T) {
		bin := buildBinary(t)
		db := filepath.Join(t.TempDir(), "soak.db")
		c := startChild(t, bin, db)
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
		defer client.CloseIdleConnections()
		pid := c.cmd.Process.Pid
		warm := min(10*time.Second, d/2)
		rssStart, err := vmRSS(pid)
		if err != nil {
			t.Fatal(err)
		}

		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		// VmRSS once a second while the load runs.
		var samples []int64
		var rssErr error
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				rss, err := vmRSS(pid)
				if err != nil {
					rssErr = err
					return
				}
				samples = append(samples, rss)
			}
		}()
		begin := time.Now()
		w := runWorkload(ctx, t, c.url, client, conns, "soak")
		elapsed := time.Since(begin)
		<-sampled
		rssEnd, err := vmRSS(pid)
		if err = errors.Join(rssErr, err); err != nil {
			t.Fatalf("VmRSS: %v", err)
		}
		w.report(t, elapsed)
		warmAt := int(warm/time.Second) - 1
		if warmAt >= len(samples) {
			t.Fatalf("%d VmRSS samples, want one at %v", len(samples), warm)
		}
		rssWarm := samples[warmAt]
		var every10 []string
		for i := 9; i < len(samples); i += 10 {
			every10 = append(every10, fmt.Sprintf("%ds %d", i+1, samples[i]))
		}
		t.Logf("VmRSS (KiB): %d at start, %d at %v (warm), %d at %v (end), %d at most; every 10 s: %s",
			rssStart, rssWarm, warm, rssEnd, elapsed.Round(time.Second), slices.Max(samples), strings.Join(every10, ", "))
		// Flat after warm-up: less than a quarter (and 16 MiB) more than at
		// the warm-up sample.
		if rssEnd > rssWarm+max(rssWarm/4, 16<<10) {
			t.Errorf("VmRSS grew from %d KiB at %v to %d KiB at the end; want it flat after warm-up", rssWarm, warm, rssEnd)
		}
		c.stop(t)
		logs := c.logs(t)
		for _, bad := range []string{"level=ERROR", "level=WARN"} {
			if n := strings.Count(logs, bad); n > 0 {
				t.Errorf("the child logged %d lines with %s", n, bad)
			}
		}
		books := checkDatabase(t, db)
		t.Logf("database after the soak: %d books, integrity ok", len(books))
	})

	t.Run("goroutines in process", func(t *testing.T) {
		// runtime.NumGoroutine counts the whole test process, so this part
		// runs alone (no t.Parallel) against an in-process server.
		ts := newTestServer(t)
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
		idle := runtime.NumGoroutine()
		span := min(d, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), span)
		defer cancel()
		var peak atomic.Int64
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				<-tick.C
				peak.Store(max(peak.Load(), int64(runtime.NumGoroutine())))
			}
		}()
		begin := time.Now()
		w := runWorkload(ctx, t, ts.URL, client, conns, "inproc")
		w.report(t, time.Since(begin))
		client.CloseIdleConnections()
		var after int
		pollUntil(t, 10*time.Second, "the goroutine count to return to idle", func() bool {
			after = runtime.NumGoroutine()
			return after <= idle
		})
		t.Logf("goroutines: %d idle before, %d at peak, %d after the load", idle, peak.Load(), after)
	})
}

// TestLockedDatabaseKeepsDeadline holds SQLite's write lock from another
// connection, as another process could, and checks that writes and /readyz
// are answered 503 within their deadlines instead of waiting for the lock,
// that reads go on, and that writes succeed again once the lock is gone.
func TestLockedDatabaseKeepsDeadline(t *testing.T) {
	sqliteOnly(t, "a SQLite file under a killed, full, read-only or broken process or disk")
	t.Parallel()
	cfg := testConfig(t)
	cfg.dbTimeout = 300 * time.Millisecond
	ts := newTestServerWith(t, cfg)
	tok := ts.newUser(t, "alice")

	other, err := sql.Open("sqlite", "file:"+cfg.db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
				t.Errorf("release the write lock: %v", err)
			}
		}
	}
	defer unlock()

	// Writers that queue behind the one waiting for the lock, and /readyz.
	// Without deadlines each would wait for the lock as long as it is held.
	const limit = 3 * time.Second // the deadline, plus a generous margin
	rs := burst(t, 8, func(i int) (*response, error) {
		start := time.Now()
		r, err := exchange(ts.Client(), ts.URL, "POST", "/bookapi/books",
			map[string]string{"title": fmt.Sprintf("Locked %d", i), "author": "Someone"}, bearer(tok)...)
		if err == nil && time.Since(start) > limit {
			err = fmt.Errorf("answered after %v, want within %v", time.Since(start), limit)
		}
		return r, err
	})
	for i, r := range rs {
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("POST /bookapi/books %d while the file is locked: status = %d, Retry-After %q; want 503 with Retry-After", i, r.status, r.header.Get("Retry-After"))
		}
	}
	start := time.Now()
	if r := ts.do(t, "GET", "/readyz", nil); r.status != http.StatusServiceUnavailable || time.Since(start) > limit {
		t.Errorf("GET /readyz while the file is locked: status = %d after %v, want 503 within %v", r.status, time.Since(start), limit)
	}
	if r := ts.do(t, "GET", "/bookapi/books", nil, bearer(tok)...); r.status != http.StatusOK {
		t.Errorf("GET /bookapi/books while the file is locked: status = %d, want 200", r.status)
	}

	unlock()
	pollUntil(t, 10*time.Second, "a create after the lock is released", func() bool {
		r, err := exchange(ts.Client(), ts.URL, "POST", "/bookapi/books", map[string]string{"title": "Unlocked", "author": "Someone"}, bearer(tok)...)
		return err == nil && r.status == http.StatusCreated
	})
	if n := ts.count(t, "books"); n != 1 {
		t.Errorf("books = %d, want 1: no write refused while the file was locked may be stored", n)
	}
	if strings.Contains(ts.logs.String(), "level=ERROR") {
		t.Errorf("a locked database was logged as an error:\n%s", ts.logs.String())
	}
}
