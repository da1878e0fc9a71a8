package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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

// testServer is the real server on a SQLite file in t.TempDir(), behind a
// real HTTP listener, with a fixed clock and bcrypt at its minimum cost.
type testServer struct {
	*httptest.Server
	s     *server
	clock *testClock
	logs  *syncBuffer
	path  string // the database file
}

// testConfig is the configuration newTestServer uses; tests may start from
// it to change a setting.
func testConfig(t *testing.T) config {
	t.Helper()
	return config{
		addr:       "127.0.0.1:0",
		db:         filepath.Join(t.TempDir(), "bookapi.db"),
		issuer:     "bookapi",
		tokenTTL:   15 * time.Minute,
		refreshTTL: 720 * time.Hour,
		bcryptCost: bcrypt.MinCost,
		logFormat:  "text",
		secret:     []byte(testSecret),

		loginMaxFailures:        5,
		loginMaxAddressFailures: 50,
		loginWindow:             15 * time.Minute,
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
	st, err := openStore(context.Background(), cfg.db)
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	logs := &syncBuffer{}
	clock := &testClock{t: testStart}
	s := newServer(cfg, st, slog.New(slog.NewTextHandler(logs, nil)), newKeyring(cfg.secret, cfg.previous...), clock.now)
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
			t.Fatalf("marshal request body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}
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
