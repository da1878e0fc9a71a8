package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// debugListenRE finds the debug listener's address in text logs.
var debugListenRE = regexp.MustCompile(`msg="debug listening" addr=(\S+)`)

// debugVars fetches the bookapi counters from a debug listener.
func debugVars(t *testing.T, client *http.Client, addr string) map[string]any {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/debug/vars")
	if err != nil {
		t.Fatalf("GET /debug/vars: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != jsonContentType {
		t.Fatalf("GET /debug/vars: status = %d, Content-Type %q; want 200 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var all map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatalf("GET /debug/vars: %v", err)
	}
	if _, ok := all["memstats"]; !ok {
		t.Errorf("GET /debug/vars: no memstats")
	}
	var vars map[string]any
	if err := json.Unmarshal(all["bookapi"], &vars); err != nil {
		t.Fatalf("GET /debug/vars: bookapi: %v", err)
	}
	return vars
}

// TestDebugListener runs the binary's run with -debug-addr, sends traffic to
// the API, and checks that the counters on the second listener moved, that
// pprof answers there, and that neither is served on the API's listener.
func TestDebugListener(t *testing.T) {
	t.Parallel()
	rs := startRun(t, filepath.Join(t.TempDir(), "bookapi.db"), nil, "-debug-addr", "127.0.0.1:0")
	m := debugListenRE.FindStringSubmatch(rs.stderr.String())
	if m == nil {
		t.Fatalf("no debug listening line in:\n%s", rs.stderr)
	}
	debug := m[1]

	creds := map[string]string{"username": "alice", "password": "password-of-alice"}
	rs.do(t, "POST", "/signup", creds)
	rs.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "wrong password"})
	tok := rs.do(t, "POST", "/login", creds).json(t)["token"].(string)
	rs.do(t, "GET", "/bookapi/books", nil, bearer(tok)...)
	rs.do(t, "GET", "/bookapi/books", nil, "x-access-token", "bad")
	rs.do(t, "POST", "/logout", nil, bearer(tok)...)
	for _, method := range []string{"FROBNICATE", "X-1", "X-2"} {
		if r := rs.do(t, method, "/healthz", nil); r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s /healthz: status = %d, want 405", method, r.status)
		}
	}
	for range 5 {
		rs.do(t, "POST", "/login", map[string]string{"username": "bob", "password": "wrong password"})
	}
	if r := rs.do(t, "POST", "/login", map[string]string{"username": "bob", "password": "wrong password"}); r.status != http.StatusTooManyRequests {
		t.Fatalf("sixth failed login: status = %d, want 429", r.status)
	}

	vars := debugVars(t, rs.client, debug)
	for name, want := range map[string]float64{
		"logins_ok": 1, "logins_failed": 6, "logins_throttled": 1,
		"sessions_started": 1, "sessions_ended": 1,
		"bcrypt_refusals": 0, "db_unavailable": 0, "internal_errors": 0,
	} {
		if got := vars[name]; got != want {
			t.Errorf("/debug/vars %s = %v, want %v", name, got, want)
		}
	}
	requests, _ := vars["requests"].(map[string]any)
	for key, want := range map[string]float64{
		"POST /signup 2xx": 1, "POST /login 2xx": 1, "POST /login 4xx": 7,
		"GET /bookapi/books 2xx": 1, "GET /bookapi/books 4xx": 1, "POST /logout 2xx": 1,
		"OTHER unmatched 4xx": 3, // made-up methods share one counter
	} {
		if got := requests[key]; got != want {
			t.Errorf("/debug/vars requests[%q] = %v, want %v (all: %v)", key, got, want, requests)
		}
	}
	latency, _ := vars["latency"].(map[string]any)
	if n, _ := latency["count"].(float64); n < 16 || latency["le_5s"] != latency["count"] {
		t.Errorf("/debug/vars latency = %v, want count >= 16 with every request under 5 s", latency)
	}

	resp, err := rs.client.Get("http://" + debug + "/debug/pprof/")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/pprof/ on the debug listener: %v %v, want 200", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	for _, path := range []string{"/debug/vars", "/debug/pprof/"} {
		if r := rs.do(t, "GET", path, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s on the API listener: status = %d, want 404", path, r.status)
		}
	}
}

// TestBcryptCounters checks the pool counters: a wait, then a refusal.
func TestBcryptCounters(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.s.slotWait = 0
	for range cap(ts.s.slots) {
		ts.s.slots <- struct{}{}
	}
	r := ts.do(t, "POST", "/signup", map[string]string{"username": "alice", "password": "password-of-alice"})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("POST /signup with every slot busy: status = %d, want 503", r.status)
	}
	if w, f := ts.s.metrics.bcryptWaits.Value(), ts.s.metrics.bcryptRefusals.Value(); w != 1 || f != 1 {
		t.Errorf("bcrypt_waits = %d, bcrypt_refusals = %d; want 1 and 1", w, f)
	}
}

// TestHistogram checks bucketing at and beside the bounds, the cumulative
// counts, the count and the sum.
func TestHistogram(t *testing.T) {
	t.Parallel()
	h := newHistogram(10, 20)
	for _, v := range []int64{0, 10, 11, 20, 21, 1000} {
		h.observe(v)
	}
	if got, want := h.cumulative(), []int64{2, 4, 6}; !slices.Equal(got, want) {
		t.Errorf("cumulative() = %v, want %v", got, want)
	}
	if n := h.count(); n != 6 {
		t.Errorf("count() = %d, want 6", n)
	}
	if sum := h.sum.Load(); sum != 1062 {
		t.Errorf("sum = %d, want 1062", sum)
	}
}
