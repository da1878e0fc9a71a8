package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testSecret signs every token in tests.
const testSecret = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"

// testStart is the fixed time every test server starts at.
var testStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testClock is a settable clock for the server under test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// advance moves the clock forward by d.
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is the real server on a database of its own (testDB), behind a
// real HTTP listener, with a fixed clock and bcrypt at its minimum cost.
type testServer struct {
	*httptest.Server
	s     *server
	clock *testClock
	logs  *syncBuffer
	path  string // the database file or URL
}

// discardLog returns a logger for tests that read none of its lines.
func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testDB returns a new, empty database for t: a SQLite file in t.TempDir(),
// or, with TEST_DATABASE_URL set (onPostgres), a PostgreSQL schema of its own.
func testDB(t testing.TB) string {
	t.Helper()
	if onPostgres() {
		return postgresDB(t)
	}
	return filepath.Join(t.TempDir(), "bookapi.db")
}

// testConfig is the configuration newTestServer uses; tests may start from
// it to change a setting. Its database is testDB's.
func testConfig(t *testing.T) config {
	t.Helper()
	db := testDB(t)
	return config{
		addr:       "127.0.0.1:0",
		db:         db,
		dbMaxConns: defaultMaxConns(db),
		issuer:     "bookapi",
		tokenTTL:   15 * time.Minute,
		refreshTTL: 720 * time.Hour,
		bcryptCost: bcrypt.MinCost,
		logFormat:  "text",
		secret:     []byte(testSecret),

		loginMaxFailures:        5,
		loginMaxAddressFailures: 50,
		loginWindow:             15 * time.Minute,
		dbTimeout:               5 * time.Second,
	}
}

// newTestServer starts a server with testConfig.
func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerWith(t, testConfig(t))
}

// newTestServerWith starts a server with cfg; it is closed by t.Cleanup.
func newTestServerWith(t *testing.T, cfg config) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	st, err := openStore(context.Background(), cfg.db, cfg.dbMaxConns, log)
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	if err := st.setLockTimeout(context.Background(), cfg.dbTimeout); err != nil {
		t.Fatalf("setLockTimeout: %v", err)
	}
	clock := &testClock{t: testStart}
	s := newServer(cfg, st, log, newKeyring(cfg.secret, cfg.previous...), clock.now)
	ts := &testServer{Server: httptest.NewServer(s.routes()), s: s, clock: clock, logs: logs, path: cfg.db}
	t.Cleanup(func() {
		ts.Close()
		if err := st.close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return ts
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic map, failing the test if it is not an object.
func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends a request. body may be nil, a string or []byte (sent as is), or
// any other value (sent as JSON). headers are name, value pairs; a JSON
// Content-Type is added for a body unless headers set one.
func (ts *testServer) do(t *testing.T, method, path string, body any, headers ...string) *response {
	t.Helper()
	return sendRequest(t, ts.Client(), ts.URL, method, path, body, headers...)
}

// sendRequest is do for any client and base URL.
func sendRequest(t *testing.T, client *http.Client, baseURL, method, path string, body any, headers ...string) *response {
	t.Helper()
	r, err := exchange(client, baseURL, method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// exchange sends one request like sendRequest, but returns a transport error
// instead of stopping the test, so goroutines may use it and tests may
// expect errors.
func exchange(client *http.Client, baseURL, method, path string, body any, headers ...string) (*response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("marshal request body: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, baseURL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return roundTrip(client, req)
}

// roundTrip sends req and reads the whole answer.
func roundTrip(client *http.Client, req *http.Request) (*response, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// signup creates a user and returns their public_id.
func (ts *testServer) signup(t *testing.T, username, password string) string {
	t.Helper()
	r := ts.do(t, "POST", "/signup", map[string]string{"username": username, "password": password})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /signup %s: status = %d, want 201; body %s", username, r.status, r.body)
	}
	return r.json(t)["public_id"].(string)
}

// login returns the login response of an existing user.
func (ts *testServer) login(t *testing.T, username, password string) map[string]any {
	t.Helper()
	r := ts.do(t, "POST", "/login", map[string]string{"username": username, "password": password})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /login %s: status = %d, want 201; body %s", username, r.status, r.body)
	}
	return r.json(t)
}

// newUser signs a user up and logs them in, returning an access token.
func (ts *testServer) newUser(t *testing.T, username string) string {
	t.Helper()
	ts.signup(t, username, "password-of-"+username)
	return ts.login(t, username, "password-of-"+username)["token"].(string)
}

// newAdmin is newUser for an administrator.
func (ts *testServer) newAdmin(t *testing.T, username string) string {
	t.Helper()
	ts.signup(t, username, "password-of-"+username)
	if err := ts.s.db.setAdminByName(context.Background(), username, true); err != nil {
		t.Fatalf("promote %s: %v", username, err)
	}
	return ts.login(t, username, "password-of-"+username)["token"].(string)
}

// count returns the number of rows in a table, read straight from the database.
func (ts *testServer) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := ts.s.db.r.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// bearer returns the Authorization header pair for a token.
func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// runEnv returns a getenv that reads only env, so the tests never see the
// environment they run in.
func runEnv(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// pollUntil calls cond every few milliseconds until it reports true, failing
// the test with what if that takes longer than timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("waited %v for %s", timeout, what)
		}
	}
}

// listeningRE finds the address in the text-format listening line.
var listeningRE = regexp.MustCompile(`(?m)\bmsg=listening addr=(\S+)`)

// listenAddr returns the address of the listening log line in logs, text or
// JSON, or "" when there is none yet.
func listenAddr(logs string) string {
	if m := listeningRE.FindStringSubmatch(logs); m != nil {
		return m[1]
	}
	for _, line := range strings.Split(logs, "\n") {
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
			return rec.Addr
		}
	}
	return ""
}

// runServer is bookapi started through run in a goroutine, as main starts it.
type runServer struct {
	addr   string // host:port from the listening line
	url    string
	stderr *syncBuffer
	stdout *syncBuffer
	client *http.Client
	cancel context.CancelFunc
	done   chan error // receives run's result
	ended  bool
}

// startRun runs `bookapi -addr 127.0.0.1:0 -db db -bcrypt-cost 4 extra...`
// with env as its environment, waits for the listening line and for /healthz
// to answer 200, and returns the running server. t.Cleanup stops it if the
// test has not.
func startRun(t *testing.T, db string, env map[string]string, extra ...string) *runServer {
	t.Helper()
	args := append([]string{"bookapi", "-addr", "127.0.0.1:0", "-db", db, "-bcrypt-cost", "4"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runServer{
		stderr: &syncBuffer{},
		stdout: &syncBuffer{},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { rs.done <- run(ctx, args, runEnv(env), strings.NewReader(""), rs.stdout, rs.stderr) }()
	t.Cleanup(func() {
		rs.client.CloseIdleConnections()
		if rs.ended {
			return
		}
		cancel()
		select {
		case err := <-rs.done:
			if err != nil {
				t.Errorf("run(%s) after cancel: err = %v, want nil", strings.Join(args[1:], " "), err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("run(%s) did not return within 30s of cancel", strings.Join(args[1:], " "))
		}
	})

	var early error
	pollUntil(t, 30*time.Second, "the listening log line", func() bool {
		select {
		case early = <-rs.done:
			rs.ended = true
			return true
		default:
		}
		rs.addr = listenAddr(rs.stderr.String())
		return rs.addr != ""
	})
	if rs.ended {
		t.Fatalf("run(%s) returned before listening: %v; stderr:\n%s", strings.Join(args[1:], " "), early, rs.stderr)
	}
	rs.url = "http://" + rs.addr
	waitHealthy(t, rs.client, rs.url)
	return rs
}

// waitHealthy polls GET /healthz at url until it answers 200, failing the
// test after a deadline.
func waitHealthy(t *testing.T, client *http.Client, url string) {
	t.Helper()
	pollUntil(t, 30*time.Second, "GET "+url+"/healthz to answer 200", func() bool {
		resp, err := client.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// stop cancels run's context and checks that run returns nil promptly and
// that the port then refuses connections.
func (rs *runServer) stop(t *testing.T) {
	t.Helper()
	rs.client.CloseIdleConnections()
	rs.cancel()
	select {
	case err := <-rs.done:
		rs.ended = true
		if err != nil {
			t.Fatalf("run after cancel: err = %v, want nil; stderr:\n%s", err, rs.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return within 10s of cancel")
	}
	if c, err := net.DialTimeout("tcp", rs.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("dial %s after run returned: connected, want refused", rs.addr)
	}
}

// do sends a request to the server started by run; body and headers are as
// for testServer.do.
func (rs *runServer) do(t *testing.T, method, path string, body any, headers ...string) *response {
	t.Helper()
	return sendRequest(t, rs.client, rs.url, method, path, body, headers...)
}

// signupLogin signs a user up on a server started by run, logs them in and
// returns the login response.
func (rs *runServer) signupLogin(t *testing.T, username, password string) map[string]any {
	t.Helper()
	creds := map[string]string{"username": username, "password": password}
	if r := rs.do(t, "POST", "/signup", creds); r.status != http.StatusCreated {
		t.Fatalf("POST /signup %s: status = %d, want 201; body %s", username, r.status, r.body)
	}
	return rs.loginAs(t, username, password)
}

// loginAs logs an existing user in on a server started by run.
func (rs *runServer) loginAs(t *testing.T, username, password string) map[string]any {
	t.Helper()
	r := rs.do(t, "POST", "/login", map[string]string{"username": username, "password": password})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /login %s: status = %d, want 201; body %s", username, r.status, r.body)
	}
	return r.json(t)
}

func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	rs := startRun(t, db, map[string]string{"SECRET_KEY": testSecret})
	if r := rs.do(t, "GET", "/readyz", nil); r.status != http.StatusOK {
		t.Errorf("GET /readyz: status = %d, want 200; body %s", r.status, r.body)
	}
	tok := rs.signupLogin(t, "alice", "password-of-alice")["token"].(string)
	if r := rs.do(t, "GET", "/me", nil, bearer(tok)...); r.status != http.StatusOK {
		t.Errorf("GET /me: status = %d, want 200; body %s", r.status, r.body)
	}
	rs.stop(t)
	for _, msg := range []string{"msg=\"shutting down\"", "msg=stopped"} {
		if !strings.Contains(rs.stderr.String(), msg) {
			t.Errorf("stderr after shutdown lacks %s:\n%s", msg, rs.stderr)
		}
	}
}

func TestRunDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	rs := startRun(t, db, map[string]string{"SECRET_KEY": testSecret})

	// The signup asks for 100-continue: the server sends it only once the
	// handler reads the body, so when it arrives the request is in flight.
	// The body is held back until shutdown is under way.
	body := `{"username": "late", "password": "password-of-late"}`
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", rs.url+"/signup", pr)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	continued := make(chan struct{})
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got100Continue: func() { close(continued) },
	}))
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	type result struct {
		status int
		body   []byte
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{resp.StatusCode, b, err}
	}()
	select {
	case <-continued:
	case r := <-resc:
		t.Fatalf("POST /signup ended before 100 Continue: %d %s %v", r.status, r.body, r.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no 100 Continue for POST /signup within 30s")
	}

	rs.client.CloseIdleConnections()
	rs.cancel()
	pollUntil(t, 10*time.Second, "the listener to close after cancel", func() bool {
		c, err := net.DialTimeout("tcp", rs.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-rs.done:
		rs.ended = true
		t.Fatalf("run returned (err = %v) while a request was in flight; want it to wait", err)
	default:
	}

	io.WriteString(pw, body)
	pw.Close()
	var r result
	select {
	case r = <-resc:
	case <-time.After(30 * time.Second):
		t.Fatalf("POST /signup in flight during shutdown: no answer within 30s")
	}
	if r.err != nil || r.status != http.StatusCreated {
		t.Errorf("POST /signup in flight during shutdown: status = %d, err = %v, want 201; body %s", r.status, r.err, r.body)
	}
	select {
	case err := <-rs.done:
		rs.ended = true
		if err != nil {
			t.Errorf("run after draining: err = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return within 10s of the last request ending")
	}

	st, err := openStore(context.Background(), db, defaultMaxConns(db), discardLog())
	if err != nil {
		t.Fatalf("openStore after shutdown: %v", err)
	}
	defer st.close()
	if _, _, err := st.credentials(context.Background(), "late"); err != nil {
		t.Errorf("user of the drained signup: %v, want it stored", err)
	}
}

func TestParseServePrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(config) string // "" when cfg is right, else what is wrong
	}{
		{"token-ttl default", nil, nil, func(c config) string { return wantDur("tokenTTL", c.tokenTTL, 15*time.Minute) }},
		{"token-ttl env", nil, map[string]string{"BOOKAPI_TOKEN_TTL": "1m"}, func(c config) string { return wantDur("tokenTTL", c.tokenTTL, time.Minute) }},
		{"token-ttl flag beats env", []string{"-token-ttl", "2m"}, map[string]string{"BOOKAPI_TOKEN_TTL": "1m"}, func(c config) string { return wantDur("tokenTTL", c.tokenTTL, 2*time.Minute) }},
		{"refresh-ttl env", nil, map[string]string{"BOOKAPI_REFRESH_TTL": "1h"}, func(c config) string { return wantDur("refreshTTL", c.refreshTTL, time.Hour) }},
		{"addr default", nil, nil, func(c config) string { return wantStr("addr", c.addr, ":8080") }},
		{"addr env", nil, map[string]string{"BOOKAPI_ADDR": ":9000"}, func(c config) string { return wantStr("addr", c.addr, ":9000") }},
		{"addr flag beats env", []string{"-addr", ":9001"}, map[string]string{"BOOKAPI_ADDR": ":9000"}, func(c config) string { return wantStr("addr", c.addr, ":9001") }},
		{"db default", nil, nil, func(c config) string { return wantStr("db", c.db, "bookapi.db") }},
		{"db env", nil, map[string]string{"DATABASE_URL": "env.db"}, func(c config) string { return wantStr("db", c.db, "env.db") }},
		{"db flag beats env", []string{"-db", "flag.db"}, map[string]string{"DATABASE_URL": "env.db"}, func(c config) string { return wantStr("db", c.db, "flag.db") }},
		{"db-max-conns default", nil, nil, func(c config) string { return wantInt("dbMaxConns", c.dbMaxConns, defaultMaxConns("bookapi.db")) }},
		{"db-max-conns default on PostgreSQL", []string{"-db", "postgres://db.example/bookapi"}, map[string]string{"SECRET_KEY": testSecret}, func(c config) string {
			return wantInt("dbMaxConns", c.dbMaxConns, max(4, runtime.NumCPU()))
		}},
		{"db-max-conns env on PostgreSQL", []string{"-db", "postgres://db.example/bookapi"}, map[string]string{"SECRET_KEY": testSecret, "DB_MAX_CONNS": "7"}, func(c config) string {
			return wantInt("dbMaxConns", c.dbMaxConns, 7)
		}},
		{"db-max-conns env", nil, map[string]string{"DB_MAX_CONNS": "7"}, func(c config) string { return wantInt("dbMaxConns", c.dbMaxConns, 7) }},
		{"db-max-conns flag beats env", []string{"-db-max-conns", "3"}, map[string]string{"DB_MAX_CONNS": "7"}, func(c config) string { return wantInt("dbMaxConns", c.dbMaxConns, 3) }},
		{"bcrypt-cost default", nil, nil, func(c config) string { return wantInt("bcryptCost", c.bcryptCost, 12) }},
		{"bcrypt-cost env", nil, map[string]string{"BOOKAPI_BCRYPT_COST": "10"}, func(c config) string { return wantInt("bcryptCost", c.bcryptCost, 10) }},
		{"bcrypt-cost flag beats env", []string{"-bcrypt-cost", "5"}, map[string]string{"BOOKAPI_BCRYPT_COST": "10"}, func(c config) string { return wantInt("bcryptCost", c.bcryptCost, 5) }},
		{"issuer env", nil, map[string]string{"BOOKAPI_ISSUER": "shelf"}, func(c config) string { return wantStr("issuer", c.issuer, "shelf") }},
		{"log-format default", nil, nil, func(c config) string { return wantStr("logFormat", c.logFormat, "text") }},
		{"log-format env", nil, map[string]string{"BOOKAPI_LOG_FORMAT": "json"}, func(c config) string { return wantStr("logFormat", c.logFormat, "json") }},
		{"log-format flag beats env", []string{"-log-format", "text"}, map[string]string{"BOOKAPI_LOG_FORMAT": "json"}, func(c config) string { return wantStr("logFormat", c.logFormat, "text") }},
		{"secret unset", nil, nil, func(c config) string {
			if c.secret != nil {
				return fmt.Sprintf("secret = %q, want nil (generated later)", c.secret)
			}
			return ""
		}},
		{"secret env", nil, map[string]string{"SECRET_KEY": testSecret}, func(c config) string { return wantStr("secret", string(c.secret), testSecret) }},
		{"cors-origins default", nil, nil, func(c config) string { return wantStr("corsOrigins", strings.Join(c.corsOrigins, ","), "") }},
		{"cors-origins env", nil, map[string]string{"BOOKAPI_CORS_ORIGINS": "https://app.example.com, http://localhost:3000"}, func(c config) string {
			return wantStr("corsOrigins", strings.Join(c.corsOrigins, ","), "https://app.example.com,http://localhost:3000")
		}},
		{"cors-origins flag beats env", []string{"-cors-origins", "*"}, map[string]string{"BOOKAPI_CORS_ORIGINS": "https://app.example.com"}, func(c config) string {
			return wantStr("corsOrigins", strings.Join(c.corsOrigins, ","), "*")
		}},
		{"trust-proxy default", nil, nil, func(c config) string { return wantBool("trustProxy", c.trustProxy, false) }},
		{"trust-proxy env", nil, map[string]string{"BOOKAPI_TRUST_PROXY": "true"}, func(c config) string { return wantBool("trustProxy", c.trustProxy, true) }},
		{"trust-proxy flag beats env", []string{"-trust-proxy=false"}, map[string]string{"BOOKAPI_TRUST_PROXY": "true"}, func(c config) string { return wantBool("trustProxy", c.trustProxy, false) }},
		{"login-max-failures default", nil, nil, func(c config) string { return wantInt("loginMaxFailures", c.loginMaxFailures, 5) }},
		{"login-max-failures env", nil, map[string]string{"BOOKAPI_LOGIN_MAX_FAILURES": "3"}, func(c config) string { return wantInt("loginMaxFailures", c.loginMaxFailures, 3) }},
		{"login-max-failures flag beats env", []string{"-login-max-failures", "4"}, map[string]string{"BOOKAPI_LOGIN_MAX_FAILURES": "3"}, func(c config) string { return wantInt("loginMaxFailures", c.loginMaxFailures, 4) }},
		{"login-max-address-failures default", nil, nil, func(c config) string { return wantInt("loginMaxAddressFailures", c.loginMaxAddressFailures, 50) }},
		{"login-max-address-failures env", nil, map[string]string{"BOOKAPI_LOGIN_MAX_ADDRESS_FAILURES": "20"}, func(c config) string {
			return wantInt("loginMaxAddressFailures", c.loginMaxAddressFailures, 20)
		}},
		{"login-max-address-failures flag beats env", []string{"-login-max-address-failures", "30"}, map[string]string{"BOOKAPI_LOGIN_MAX_ADDRESS_FAILURES": "20"}, func(c config) string {
			return wantInt("loginMaxAddressFailures", c.loginMaxAddressFailures, 30)
		}},
		{"login-window default", nil, nil, func(c config) string { return wantDur("loginWindow", c.loginWindow, 15*time.Minute) }},
		{"login-window env", nil, map[string]string{"BOOKAPI_LOGIN_WINDOW": "1h"}, func(c config) string { return wantDur("loginWindow", c.loginWindow, time.Hour) }},
		{"login-window flag beats env", []string{"-login-window", "2m"}, map[string]string{"BOOKAPI_LOGIN_WINDOW": "1h"}, func(c config) string { return wantDur("loginWindow", c.loginWindow, 2*time.Minute) }},
		{"bcrypt-slots default", nil, nil, func(c config) string { return wantInt("hashSlots", c.hashSlots, 0) }},
		{"bcrypt-slots env", nil, map[string]string{"BOOKAPI_BCRYPT_SLOTS": "3"}, func(c config) string { return wantInt("hashSlots", c.hashSlots, 3) }},
		{"bcrypt-slots flag beats env", []string{"-bcrypt-slots", "2"}, map[string]string{"BOOKAPI_BCRYPT_SLOTS": "3"}, func(c config) string { return wantInt("hashSlots", c.hashSlots, 2) }},
		{"db-timeout default", nil, nil, func(c config) string { return wantDur("dbTimeout", c.dbTimeout, 5*time.Second) }},
		{"db-timeout env", nil, map[string]string{"BOOKAPI_DB_TIMEOUT": "250ms"}, func(c config) string { return wantDur("dbTimeout", c.dbTimeout, 250*time.Millisecond) }},
		{"db-timeout flag beats env", []string{"-db-timeout", "2s"}, map[string]string{"BOOKAPI_DB_TIMEOUT": "250ms"}, func(c config) string { return wantDur("dbTimeout", c.dbTimeout, 2*time.Second) }},
		{"debug-addr default", nil, nil, func(c config) string { return wantStr("debugAddr", c.debugAddr, "") }},
		{"debug-addr env", nil, map[string]string{"BOOKAPI_DEBUG_ADDR": "127.0.0.1:6060"}, func(c config) string { return wantStr("debugAddr", c.debugAddr, "127.0.0.1:6060") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseServe(tt.args, runEnv(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("parseServe(%q, env %v): %v", tt.args, tt.env, err)
			}
			if msg := tt.want(cfg); msg != "" {
				t.Errorf("parseServe(%q, env %v): %s", tt.args, tt.env, msg)
			}
		})
	}
}

// wantDur describes a wrong duration setting, or returns "".
func wantDur(name string, got, want time.Duration) string {
	if got != want {
		return fmt.Sprintf("%s = %v, want %v", name, got, want)
	}
	return ""
}

// wantStr describes a wrong string setting, or returns "".
func wantStr(name, got, want string) string {
	if got != want {
		return fmt.Sprintf("%s = %q, want %q", name, got, want)
	}
	return ""
}

// wantBool describes a wrong boolean setting, or returns "".
func wantBool(name string, got, want bool) string {
	if got != want {
		return fmt.Sprintf("%s = %v, want %v", name, got, want)
	}
	return ""
}

// wantInt describes a wrong integer setting, or returns "".
func wantInt(name string, got, want int) string {
	if got != want {
		return fmt.Sprintf("%s = %d, want %d", name, got, want)
	}
	return ""
}

func TestRunTokenTTLPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want float64
	}{
		{"default", nil, nil, 900},
		{"env", map[string]string{"BOOKAPI_TOKEN_TTL": "1m"}, nil, 60},
		{"flag beats env", map[string]string{"BOOKAPI_TOKEN_TTL": "1m"}, []string{"-token-ttl", "2m"}, 120},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"SECRET_KEY": testSecret}
			for k, v := range tt.env {
				env[k] = v
			}
			rs := startRun(t, filepath.Join(t.TempDir(), "ttl.db"), env, tt.args...)
			got := rs.signupLogin(t, "alice", "password-of-alice")["expires_in"]
			if got != tt.want {
				t.Errorf("run(%q, env %v): login expires_in = %v, want %v", tt.args, tt.env, got, tt.want)
			}
			rs.stop(t)
		})
	}
}

// TestRunAppliesSettings starts bookapi through run with CORS, proxy and
// login-limit settings from the environment and a flag, and checks that the
// server it starts behaves by them, not by the defaults.
func TestRunAppliesSettings(t *testing.T) {
	t.Parallel()
	const origin = "https://app.example.com"
	env := map[string]string{
		"SECRET_KEY":                 testSecret,
		"BOOKAPI_CORS_ORIGINS":       origin,
		"BOOKAPI_TRUST_PROXY":        "true",
		"BOOKAPI_LOGIN_MAX_FAILURES": "2",
	}
	rs := startRun(t, filepath.Join(t.TempDir(), "settings.db"), env, "-login-max-address-failures", "3")

	if r := rs.do(t, "GET", "/healthz", nil, "Origin", origin); r.header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("GET /healthz from %s: Access-Control-Allow-Origin = %q, want the origin (BOOKAPI_CORS_ORIGINS)", origin, r.header.Get("Access-Control-Allow-Origin"))
	}

	login := func(name, password, from string) int {
		t.Helper()
		return rs.do(t, "POST", "/login", map[string]string{"username": name, "password": password}, "X-Forwarded-For", from).status
	}
	if r := rs.do(t, "POST", "/signup", map[string]string{"username": "bob", "password": "password-of-bob"}); r.status != http.StatusCreated {
		t.Fatalf("POST /signup bob: status = %d, want 201", r.status)
	}
	// Two failures for bob, each from its own address, reach his limit of 2
	// (BOOKAPI_LOGIN_MAX_FAILURES; the default is 5).
	for i, from := range []string{"198.51.100.1", "198.51.100.2"} {
		if got := login("bob", "wrong password", from); got != http.StatusUnauthorized {
			t.Fatalf("failed login %d for bob: status = %d, want 401", i+1, got)
		}
	}
	if got := login("bob", "password-of-bob", "198.51.100.3"); got != http.StatusTooManyRequests {
		t.Errorf("login for bob after 2 failures: status = %d, want 429", got)
	}
	// Three failures from one forwarded address reach its limit of 3
	// (-login-max-address-failures); another forwarded address is another
	// client (BOOKAPI_TRUST_PROXY), though every request comes from 127.0.0.1.
	for i := range 3 {
		if got := login(fmt.Sprintf("carol%d", i), "wrong password", "203.0.113.9"); got != http.StatusUnauthorized {
			t.Fatalf("failed login %d from 203.0.113.9: status = %d, want 401", i+1, got)
		}
	}
	if got := login("carol3", "wrong password", "203.0.113.9"); got != http.StatusTooManyRequests {
		t.Errorf("fourth failed login from 203.0.113.9: status = %d, want 429", got)
	}
	if got := login("carol4", "wrong password", "203.0.113.10"); got != http.StatusUnauthorized {
		t.Errorf("failed login from 203.0.113.10 after 203.0.113.9 reached its limit: status = %d, want 401", got)
	}
	rs.stop(t)
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	junk := bytes.Repeat([]byte("this is not a SQLite database\n"), 200)
	if err := os.WriteFile(garbage, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	short := strings.Repeat("k", minSecretLen-1)
	tests := []struct {
		name string
		args []string // after "bookapi"
		env  map[string]string
		want string // the error must name this, or one of these "|"-separated names
	}{
		{"unknown flag", []string{"-nope"}, nil, "-nope"},
		{"bad token-ttl flag", []string{"-token-ttl", "banana"}, nil, "-token-ttl"},
		{"bad token-ttl env", nil, map[string]string{"BOOKAPI_TOKEN_TTL": "banana"}, "BOOKAPI_TOKEN_TTL"},
		{"token-ttl under a second", []string{"-token-ttl", "10ms"}, nil, "-token-ttl"},
		{"bcrypt-cost 3", []string{"-bcrypt-cost", "3"}, nil, "-bcrypt-cost"},
		{"bcrypt-cost 32", []string{"-bcrypt-cost", "32"}, nil, "-bcrypt-cost"},
		{"bad bcrypt-cost env", nil, map[string]string{"BOOKAPI_BCRYPT_COST": "3"}, "-bcrypt-cost"},
		{"log-format xml", []string{"-log-format", "xml"}, nil, "-log-format"},
		{"short SECRET_KEY", nil, map[string]string{"SECRET_KEY": short}, "SECRET_KEY"},
		{"extra argument", []string{"extra"}, nil, "extra"},
		{"extra argument after serve", []string{"serve", "-addr", "127.0.0.1:0", "extra"}, nil, "extra"},
		{"unknown subcommand", []string{"frobnicate"}, nil, "frobnicate"},
		{"db in memory", []string{"-db", ":memory:"}, nil, "-db"},
		{"db in memory URI", []string{"-db", "file::memory:?cache=shared"}, nil, "-db"},
		{"db in a missing directory", []string{"-db", filepath.Join(dir, "no", "such", "dir", "x.db")}, nil, "-db|" + filepath.Join(dir, "no", "such", "dir", "x.db")},
		{"db not SQLite", []string{"-db", garbage}, nil, "-db|" + garbage},
		{"empty addr", []string{"-addr", ""}, nil, "-addr"},
		{"db-max-conns 0", []string{"-db-max-conns", "0"}, nil, "-db-max-conns"},
		{"db-max-conns negative", []string{"-db-max-conns", "-2"}, nil, "-db-max-conns"},
		{"db-max-conns not a number", []string{"-db-max-conns", "many"}, nil, "-db-max-conns"},
		{"bad DB_MAX_CONNS env", nil, map[string]string{"DB_MAX_CONNS": "0"}, "-db-max-conns"},
		{"postgres without SECRET_KEY", []string{"-db", "postgres://127.0.0.1:1/bookapi"}, nil, "SECRET_KEY"},
		{"postgres unreachable", []string{"-db", "postgres://postgres:hunter2@127.0.0.1:1/bookapi"}, map[string]string{"SECRET_KEY": testSecret}, "postgres://127.0.0.1:1/bookapi"},
		{"postgres password with :memory:", []string{"-db", "postgres://postgres:hunter2:memory:@127.0.0.1:1/bookapi"}, map[string]string{"SECRET_KEY": testSecret}, "postgres://127.0.0.1:1/bookapi"},
		{"postgres password as a parameter", []string{"-db", "postgres://postgres@127.0.0.1:1/bookapi?sslmode=disable&password=hunter2"}, map[string]string{"SECRET_KEY": testSecret}, "postgres://127.0.0.1:1/bookapi"},
		{"postgres password with an @", []string{"-db", "postgres://postgres:hunter2@hunter2@127.0.0.1:1/bookapi"}, map[string]string{"SECRET_KEY": testSecret}, "-db"},
		{"postgres scheme misspelt", []string{"-db", "postgress://postgres:hunter2@127.0.0.1:1/bookapi"}, nil, "postgress://postgres:xxxxx@127.0.0.1:1/bookapi"},
		{"postgres scheme misspelt with :memory:", []string{"-db", "postgress://postgres:hunter2@127.0.0.1:1/:memory:"}, nil, "-db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "never.db")
			args := []string{"bookapi", "-addr", "127.0.0.1:0", "-db", db}
			if len(tt.args) > 0 && !strings.HasPrefix(tt.args[0], "-") {
				args = []string{"bookapi"} // a subcommand or argument must come first
			}
			args = append(args, tt.args...)
			stdout, stderr, err := runRefused(t, args, tt.env)
			switch {
			case err == nil:
				t.Errorf("run(%s): err = nil, want an error naming %s", strings.Join(args[1:], " "), strings.ReplaceAll(tt.want, "|", " or "))
			case !containsAny(err.Error(), strings.Split(tt.want, "|")):
				t.Errorf("run(%s): err = %q, want an error naming %s", strings.Join(args[1:], " "), err, strings.ReplaceAll(tt.want, "|", " or "))
			case strings.Contains(strings.TrimSuffix(err.Error(), "\n"), "\n"):
				t.Errorf("run(%s): err = %q, want one line", strings.Join(args[1:], " "), err)
			}
			if err != nil && (strings.Contains(err.Error()+stderr, short) || strings.Contains(err.Error()+stderr, "hunter2")) {
				t.Errorf("run(%s): err = %q, stderr %q: repeats a secret", strings.Join(args[1:], " "), err, stderr)
			}
			if strings.Contains(stderr, "listening") {
				t.Errorf("run(%s) logged listening; want no listener on a bad configuration:\n%s", strings.Join(args[1:], " "), stderr)
			}
			if stdout != "" {
				t.Errorf("run(%s) printed %q; want the one-line error only", strings.Join(args[1:], " "), stdout)
			}
			if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) && !strings.HasPrefix(tt.name, "db ") {
				t.Errorf("run(%s) created %s (%v); want nothing opened on a bad configuration", strings.Join(args[1:], " "), db, err)
			}
		})
	}
	t.Run("garbage file untouched", func(t *testing.T) {
		t.Parallel()
		// A refused database file is left as it was, with no secret beside it.
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		other := filepath.Join(t.TempDir(), "garbage.db")
		if err := os.WriteFile(other, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		err := run(context.Background(), []string{"bookapi", "-addr", "127.0.0.1:0", "-db", other}, runEnv(nil), strings.NewReader(""), stdout, stderr)
		if err == nil {
			t.Fatalf("run(-db %s) on a file that is not SQLite: err = nil, want an error", other)
		}
		if got, _ := os.ReadFile(other); !bytes.Equal(got, junk) {
			t.Errorf("run(-db garbage) changed the file")
		}
		if _, err := os.Stat(other + ".secret"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("run(-db garbage) created a secret file (%v)", err)
		}
	})
}

// runRefused runs bookapi with args (args[0] is "bookapi") and env until it
// returns, which it must within 10 s, and returns its output and error.
func runRefused(t *testing.T, args []string, env map[string]string) (stdout, stderr string, err error) {
	t.Helper()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, runEnv(env), strings.NewReader(""), out, errOut) }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		t.Fatalf("run(%s) kept running; want it to refuse to start; stderr:\n%s", strings.Join(args[1:], " "), errOut)
	}
	return out.String(), errOut.String(), err
}

// containsAny reports whether s contains one of subs.
func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestRunHelpPrintsUsage(t *testing.T) {
	t.Parallel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	db := filepath.Join(t.TempDir(), "help.db")
	err := run(context.Background(), []string{"bookapi", "-db", db, "-h"}, runEnv(nil), strings.NewReader(""), stdout, stderr)
	if err != nil {
		t.Errorf("run(-h): err = %v, want nil", err)
	}
	for _, flag := range []string{"-addr", "-db", "-token-ttl", "-log-format"} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("run(-h): usage lacks %s:\n%s", flag, stdout)
		}
	}
	if n := strings.Count(stdout.String(), "Usage of"); n != 1 {
		t.Errorf("run(-h): usage printed %d times, want once", n)
	}
	checkOneDefault(t, "run(-h)", stdout.String())
	out, err := runCLI(t, "", "user", "add", "-h")
	if err != nil || !strings.Contains(out, "-db-max-conns") {
		t.Errorf("run(user add -h) = %q, %v; want the usage with -db-max-conns", out, err)
	}
	checkOneDefault(t, "run(user add -h)", out)
	if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("run(-h) created the database (%v)", err)
	}
}

// checkOneDefault fails the test if a flag in the usage text names more than
// one default.
func checkOneDefault(t *testing.T, what, usage string) {
	t.Helper()
	for _, entry := range strings.Split(usage, "\n  -")[1:] {
		if n := strings.Count(entry, "(default "); n > 1 {
			t.Errorf("%s: flag -%s shows %d defaults, want at most one", what, strings.TrimSpace(entry), n)
		}
	}
}

func TestRunSecretFile(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "secret.db")
	first := startRun(t, db, nil)
	path := db + ".secret"
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("secret file after the first start: %v", err)
	}
	if mode := info.Mode(); mode.Perm() != 0o600 || !mode.IsRegular() {
		t.Errorf("secret file mode = %v, want -rw-------", mode)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(raw))
	if len(secret) < minSecretLen {
		t.Errorf("secret file holds %d bytes, want at least %d", len(secret), minSecretLen)
	}
	login := first.signupLogin(t, "alice", "password-of-alice")
	tok := login["token"].(string)
	first.stop(t)

	second := startRun(t, db, nil)
	if r := second.do(t, "GET", "/me", nil, bearer(tok)...); r.status != http.StatusOK {
		t.Errorf("GET /me on the second start with a token of the first: status = %d, want 200; body %s", r.status, r.body)
	}
	second.stop(t)
	if again, err := os.ReadFile(path); err != nil || !bytes.Equal(again, raw) {
		t.Errorf("secret file after the second start changed (err %v); want it reused", err)
	}
	for i, logs := range []string{first.stderr.String(), second.stderr.String()} {
		for what, s := range map[string]string{"secret": secret, "access token": tok, "refresh token": login["refresh_token"].(string)} {
			if strings.Contains(logs, s) {
				t.Errorf("logs of start %d contain the %s:\n%s", i+1, what, logs)
			}
		}
	}
}

func TestRunJSONLogs(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "json.db")
	rs := startRun(t, db, map[string]string{"SECRET_KEY": testSecret}, "-log-format", "json")
	tok := rs.signupLogin(t, "alice", "password-of-alice")["token"].(string)
	me := rs.do(t, "GET", "/me", nil, append(bearer(tok), "X-Request-ID", "json-log-test")...)
	if me.status != http.StatusOK {
		t.Fatalf("GET /me: status = %d, want 200; body %s", me.status, me.body)
	}
	publicID := me.json(t)["public_id"]
	rs.stop(t)

	var listening, request map[string]any
	for i, line := range strings.Split(strings.TrimSpace(rs.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line %d %q is not a JSON object: %v", i+1, line, err)
			continue
		}
		switch {
		case rec["msg"] == "listening" && listening == nil:
			listening = rec
		case rec["msg"] == "request" && rec["request_id"] == "json-log-test":
			request = rec
		}
	}
	if listening == nil || listening["addr"] != rs.addr {
		t.Errorf("JSON listening line = %v, want msg listening with addr %s", listening, rs.addr)
	}
	if request == nil {
		t.Fatalf("no JSON request line with request_id json-log-test in:\n%s", rs.stderr)
	}
	want := map[string]any{"method": "GET", "pattern": "GET /me", "status": float64(200), "user": publicID}
	for k, v := range want {
		if request[k] != v {
			t.Errorf("JSON request line %s = %v, want %v", k, request[k], v)
		}
	}
	for _, k := range []string{"duration", "bytes"} {
		if n, ok := request[k].(float64); !ok || n <= 0 {
			t.Errorf("JSON request line %s = %v, want a positive number", k, request[k])
		}
	}
}

// runCLI runs a bookapi command to completion with stdin as its standard
// input, returning its error and standard output.
func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr syncBuffer
	err := run(context.Background(), append([]string{"bookapi"}, args...), runEnv(nil), strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), err
}

func TestRunUserCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testDB(t)
	isAdmin := func(name string) bool {
		t.Helper()
		st, err := openStore(ctx, db, defaultMaxConns(db), discardLog())
		if err != nil {
			t.Fatalf("openStore: %v", err)
		}
		defer st.close()
		u, _, err := st.credentials(ctx, name)
		if err != nil {
			t.Fatalf("credentials(%s): %v", name, err)
		}
		return u.Admin
	}

	out, err := runCLI(t, "password-of-root\n", "user", "add", "-admin", "-db", db, "-bcrypt-cost", "4", "root")
	if err != nil {
		t.Fatalf("user add -admin root: %v", err)
	}
	if !strings.Contains(out, "root") {
		t.Errorf("user add -admin root: stdout %q does not name the user", out)
	}
	if !isAdmin("root") {
		t.Errorf("user add -admin root: root is not an admin")
	}
	if _, err := runCLI(t, "password-of-bob", "user", "add", "-db", db, "-bcrypt-cost", "4", "bob"); err != nil {
		t.Fatalf("user add bob (password without a newline): %v", err)
	}
	if isAdmin("bob") {
		t.Errorf("user add bob: bob is an admin, want not")
	}

	for _, tt := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"duplicate in another case", "password-of-root\n", []string{"user", "add", "-db", db, "-bcrypt-cost", "4", "ROOT"}, "ROOT"},
		{"short password", "short\n", []string{"user", "add", "-db", db, "-bcrypt-cost", "4", "carol"}, "password"},
		{"empty password", "", []string{"user", "add", "-db", db, "-bcrypt-cost", "4", "carol"}, "password"},
		{"bad user name", "password-of-x\n", []string{"user", "add", "-db", db, "-bcrypt-cost", "4", "no spaces"}, "user name"},
		{"no user name", "", []string{"user", "add", "-db", db}, "user name"},
		{"promote unknown", "", []string{"user", "promote", "-db", db, "nobody"}, "nobody"},
		{"demote unknown", "", []string{"user", "demote", "-db", db, "nobody"}, "nobody"},
		{"unknown verb", "", []string{"user", "rename", "-db", db, "bob"}, "rename"},
		{"no verb", "", []string{"user"}, "user"},
		{"bad bcrypt-cost", "password-of-x\n", []string{"user", "add", "-db", db, "-bcrypt-cost", "3", "dave"}, "-bcrypt-cost"},
	} {
		_, err := runCLI(t, tt.stdin, tt.args...)
		switch {
		case err == nil:
			t.Errorf("run(%s): err = nil, want an error naming %s", strings.Join(tt.args, " "), tt.want)
		case !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n"):
			t.Errorf("run(%s): err = %q, want one line naming %s", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	st, err := openStore(ctx, db, defaultMaxConns(db), discardLog())
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	if n := countRows(t, st.r, "users", ""); n != 2 {
		t.Errorf("users after the refused commands: %d, want 2 (root, bob)", n)
	}
	st.close()

	if _, err := runCLI(t, "", "user", "promote", "-db", db, "BOB"); err != nil {
		t.Fatalf("user promote BOB: %v", err)
	}
	if !isAdmin("bob") {
		t.Errorf("user promote BOB: bob is not an admin")
	}
	if _, err := runCLI(t, "", "user", "demote", "-db", db, "bob"); err != nil {
		t.Fatalf("user demote bob: %v", err)
	}
	if isAdmin("bob") {
		t.Errorf("user demote bob: bob is still an admin")
	}

	rs := startRun(t, db, map[string]string{"SECRET_KEY": testSecret})
	rootTok := rs.loginAs(t, "root", "password-of-root")["token"].(string)
	if r := rs.do(t, "GET", "/admin/users", nil, bearer(rootTok)...); r.status != http.StatusOK {
		t.Errorf("GET /admin/users as root made by user add -admin: status = %d, want 200; body %s", r.status, r.body)
	}
	bobTok := rs.loginAs(t, "bob", "password-of-bob")["token"].(string)
	if r := rs.do(t, "GET", "/admin/users", nil, bearer(bobTok)...); r.status != http.StatusForbidden {
		t.Errorf("GET /admin/users as demoted bob: status = %d, want 403; body %s", r.status, r.body)
	}
	rs.stop(t)
}

func TestRunVersion(t *testing.T) {
	t.Parallel()
	out, err := runCLI(t, "", "version")
	if err != nil || !strings.HasPrefix(out, "bookapi") {
		t.Errorf("run(version) = %q, %v; want a line starting bookapi", out, err)
	}
}

// backupLineRE matches the line bookapi backup prints.
var backupLineRE = regexp.MustCompile(`^backed up \S+ to (\S+): (\d+) bytes, users: (\d+), books: (\d+)\n$`)

// integrityCheck returns PRAGMA integrity_check of the SQLite file path,
// opened read-only.
func integrityCheck(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var result string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&result); err != nil {
		t.Fatalf("PRAGMA integrity_check of %s: %v", path, err)
	}
	return result
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestBackupRestoreUnderWriters takes a backup with bookapi backup while 32
// writers create books through a running server, then restores it as the
// README says (stop, put the copy in place, start): every book acknowledged
// before the backup began is there, the copy passes PRAGMA integrity_check,
// and a token signed before the backup, with the secret file that stayed
// beside the database, still works.
func TestBackupRestoreUnderWriters(t *testing.T) {
	sqliteOnly(t, "bookapi backup copies a SQLite file; on PostgreSQL it points to pg_dump (TestBackupRefusals)")
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bookapi.db")
	rs := startRun(t, db, nil)
	tok := rs.signupLogin(t, "alice", "password-of-alice")["token"].(string)

	const writers = 32
	var (
		mu    sync.Mutex
		acked []int64 // ids of created books, in the order they were answered
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				book := map[string]string{"title": fmt.Sprintf("Book %d of writer %d", i, w), "author": "Writer"}
				r, err := exchange(rs.client, rs.url, "POST", "/bookapi/books", book, bearer(tok)...)
				if err == nil && r.status != http.StatusCreated {
					err = fmt.Errorf("status %d, body %s", r.status, r.body)
				}
				var created struct {
					Book struct {
						ID int64 `json:"id"`
					}
				}
				if err == nil {
					err = json.Unmarshal(r.body, &created)
				}
				if err != nil {
					errs <- fmt.Errorf("POST /bookapi/books: %w", err)
					return
				}
				mu.Lock()
				acked = append(acked, created.Book.ID)
				mu.Unlock()
			}
		}()
	}
	ackedNow := func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(acked)
	}
	pollUntil(t, 30*time.Second, "100 books acknowledged", func() bool { return len(ackedNow()) >= 100 })
	before := ackedNow()
	destDir := t.TempDir()
	dest := filepath.Join(destDir, "backup.db")
	out, err := runCLI(t, "", "backup", "-db", db, dest)
	during := len(ackedNow()) - len(before)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("writer: %v", err)
	}
	if err != nil {
		t.Fatalf("backup -db %s %s while writing: %v", db, dest, err)
	}
	t.Logf("%d books acknowledged before the backup began, %d while it ran; it printed %q", len(before), during, out)
	m := backupLineRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("backup printed %q, want one line: backed up DB to DEST: N bytes, users: N, books: N", out)
	}
	if books, _ := strconv.Atoi(m[4]); m[1] != dest || m[3] != "1" || books < len(before) {
		t.Errorf("backup printed %q; want %s, 1 user and at least %d books", out, dest, len(before))
	}
	info, err := os.Stat(dest)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if size, _ := strconv.ParseInt(m[2], 10, 64); info.Size() != size || info.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %d bytes, mode %v; want the %s bytes printed and mode 0600", info.Size(), info.Mode(), m[2])
	}
	if names := dirNames(t, destDir); !slices.Equal(names, []string{"backup.db"}) {
		t.Errorf("backup directory holds %q, want only backup.db (no temporary file, no secret)", names)
	}
	if got := integrityCheck(t, dest); got != "ok" {
		t.Errorf("PRAGMA integrity_check of the backup = %q, want ok", got)
	}

	// Restore: stop the server, put the copy in place of the database (its
	// -wal and -shm files gone), start again.
	rs.stop(t)
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(db + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if err := os.Rename(dest, db); err != nil {
		t.Fatal(err)
	}
	restored := startRun(t, db, nil)
	if r := restored.do(t, "GET", "/me", nil, bearer(tok)...); r.status != http.StatusOK {
		t.Errorf("GET /me after the restore with a token from before the backup: status = %d, want 200; body %s", r.status, r.body)
	}
	missing := 0
	for _, id := range before {
		if r := restored.do(t, "GET", fmt.Sprintf("/bookapi/books/%d", id), nil, bearer(tok)...); r.status != http.StatusOK {
			missing++
			if missing <= 5 {
				t.Errorf("GET /bookapi/books/%d, acknowledged before the backup, after the restore: status = %d, want 200", id, r.status)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of the %d books acknowledged before the backup are missing after the restore", missing, len(before))
	}
	restored.stop(t)
}

// TestBackupRefusals checks every way bookapi backup refuses: a one-line
// error and a non-zero exit status, the database never created, and
// nothing new at the destination or beside it. Then -force replaces.
func TestBackupRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "bookapi.db")
	if _, err := runCLI(t, "password-of-root\n", "user", "add", "-db", db, "-bcrypt-cost", "4", "root"); err != nil {
		t.Fatalf("user add: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not SQLite\n"), 500), 0o600); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(t.TempDir(), "existing.db")
	if err := os.WriteFile(existing, []byte("an older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	unwritable := t.TempDir()
	if os.Geteuid() == 0 {
		unwritable = mountTmpfs(t, "1m")
		if out, err := exec.Command("mount", "-o", "remount,ro", unwritable).CombinedOutput(); err != nil {
			t.Skipf("skipping: mount -o remount,ro %s: %v: %s", unwritable, err, bytes.TrimSpace(out))
		}
	} else if err := os.Chmod(unwritable, 0o500); err != nil {
		t.Fatal(err)
	}
	missingDB := filepath.Join(dir, "missing.db")
	tests := []struct {
		name string
		args []string // after "backup"
		dest string   // the destination, whose directory must not change
		want string   // the error names this
		code int      // exit status
	}{
		{"missing database", []string{"-db", missingDB}, filepath.Join(t.TempDir(), "b.db"), missingDB + " does not exist", 1},
		{"not a database", []string{"-db", garbage}, filepath.Join(t.TempDir(), "b.db"), garbage, 1},
		{"existing destination", []string{"-db", db}, existing, existing + " exists; -force replaces it", 1},
		{"destination is the database", []string{"-db", db, "-force"}, db, "the database itself", 1},
		{"missing directory", []string{"-db", db}, filepath.Join(dir, "no", "such", "b.db"), filepath.Join(dir, "no", "such"), 1},
		{"directory is a file", []string{"-db", db}, filepath.Join(garbage, "b.db"), "not a directory", 1},
		{"unwritable directory", []string{"-db", db}, filepath.Join(unwritable, "b.db"), unwritable, 1},
		{"PostgreSQL", []string{"-db", "postgres://bookapi:hunter2@127.0.0.1:1/bookapi"}, filepath.Join(t.TempDir(), "b.db"), "pg_dump", 2},
		{"no destination", []string{"-db", db}, "", "destination", 1},
		{"two destinations", []string{"-db", db, filepath.Join(t.TempDir(), "a.db")}, filepath.Join(t.TempDir(), "b.db"), "destination", 1},
	}
	for _, tt := range tests {
		args := append([]string{"backup"}, tt.args...)
		if tt.dest != "" {
			args = append(args, tt.dest)
		}
		destDir := filepath.Dir(tt.dest)
		var before []string
		if info, err := os.Stat(destDir); err == nil && info.IsDir() {
			before = dirNames(t, destDir)
		}
		out, err := runCLI(t, "", args...)
		switch {
		case err == nil:
			t.Errorf("%s: run(%s): err = nil, want an error naming %q", tt.name, strings.Join(args, " "), tt.want)
			continue
		case !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n"):
			t.Errorf("%s: run(%s): err = %q, want one line naming %q", tt.name, strings.Join(args, " "), err, tt.want)
		case exitCode(err) != tt.code:
			t.Errorf("%s: run(%s): exit status %d, want %d", tt.name, strings.Join(args, " "), exitCode(err), tt.code)
		case strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%s: run(%s): err = %q repeats the password", tt.name, strings.Join(args, " "), err)
		}
		if out != "" {
			t.Errorf("%s: run(%s) printed %q, want nothing", tt.name, strings.Join(args, " "), out)
		}
		if before != nil {
			if after := dirNames(t, destDir); !slices.Equal(after, before) {
				t.Errorf("%s: run(%s): %s held %q, now %q; want it unchanged", tt.name, strings.Join(args, " "), destDir, before, after)
			}
		}
	}
	for _, name := range []string{missingDB, missingDB + "-wal", missingDB + "-shm"} {
		if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("backup of a missing database: %s exists (%v), want it never created", name, err)
		}
	}
	if got, _ := os.ReadFile(existing); string(got) != "an older backup" {
		t.Errorf("backup without -force changed %s: now %d bytes starting %q", existing, len(got), got[:min(len(got), 16)])
	}
	if got := integrityCheck(t, db); got != "ok" {
		t.Errorf("the database after a backup onto itself was refused: integrity_check %q, want ok", got)
	}

	// Interrupted (SIGINT cancels run's context): nothing is left either.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	interrupted := t.TempDir()
	err := run(ctx, []string{"bookapi", "backup", "-db", db, filepath.Join(interrupted, "b.db")}, runEnv(nil), strings.NewReader(""), io.Discard, io.Discard)
	if err == nil {
		t.Errorf("backup with its context cancelled: err = nil, want an error")
	}
	if names := dirNames(t, interrupted); len(names) > 0 {
		t.Errorf("backup with its context cancelled left %q", names)
	}

	out, err := runCLI(t, "", "backup", "-db", db, "-force", existing)
	if err != nil {
		t.Fatalf("backup -force onto %s: %v", existing, err)
	}
	if m := backupLineRE.FindStringSubmatch(out); m == nil || m[3] != "1" || m[4] != "0" {
		t.Errorf("backup -force printed %q, want a line with users: 1, books: 0", out)
	}
	if got := integrityCheck(t, existing); got != "ok" {
		t.Errorf("backup -force: integrity_check of %s = %q, want ok", existing, got)
	}
	if names := dirNames(t, filepath.Dir(existing)); !slices.Equal(names, []string{"existing.db"}) {
		t.Errorf("after backup -force the directory holds %q, want only existing.db", names)
	}
}

// TestBackupFullDisk fills the destination's file system to a few pages
// short of the copy: the backup fails with a one-line error and leaves only
// what was there, and succeeds once there is room.
func TestBackupFullDisk(t *testing.T) {
	sqliteOnly(t, "a SQLite file under a killed, full, read-only or broken process or disk")
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bookapi.db")
	if _, err := runCLI(t, "password-of-root\n", "user", "add", "-db", db, "-bcrypt-cost", "4", "root"); err != nil {
		t.Fatalf("user add: %v", err)
	}
	dir := mountTmpfs(t, "1m")
	junk := filepath.Join(dir, "junk")
	filled := fillDisk(t, junk)
	if err := os.Truncate(junk, filled-16<<10); err != nil { // room for 4 pages of the copy's 20 or so
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "backup.db")
	out, err := runCLI(t, "", "backup", "-db", db, dest)
	if err == nil || !strings.Contains(err.Error(), "full") || strings.Contains(err.Error(), "\n") {
		t.Errorf("backup onto a full disk: err = %v, printed %q; want one line saying the disk is full", err, out)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"junk"}) {
		t.Errorf("after the failed backup the file system holds %q, want only junk", names)
	}
	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "", "backup", "-db", db, dest); err != nil {
		t.Fatalf("backup once there is room: %v", err)
	}
	if got := integrityCheck(t, dest); got != "ok" {
		t.Errorf("integrity_check of the backup = %q, want ok", got)
	}
}
