package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loginPair logs a user in and returns the access and refresh tokens.
func loginPair(t *testing.T, ts *testServer, name string) (access, refresh string) {
	t.Helper()
	m := ts.login(t, name, "password-of-"+name)
	return m["token"].(string), m["refresh_token"].(string)
}

// meStatus is the status of GET /me with the token.
func meStatus(t *testing.T, ts *testServer, token string) int {
	t.Helper()
	return ts.do(t, "GET", "/me", nil, bearer(token)...).status
}

// onlyStringsAndInts fails unless the JSON body holds only strings and integers.
func onlyStringsAndInts(t *testing.T, what string, body []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: body %q: %v", what, body, err)
	}
	for k, v := range m {
		switch v := v.(type) {
		case string:
		case json.Number:
			if _, err := v.Int64(); err != nil {
				t.Errorf("%s: member %q = %v, want an integer", what, k, v)
			}
		default:
			t.Errorf("%s: member %q = %#v, want a string or an integer", what, k, v)
		}
	}
}

func TestRefreshRotates(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	access, refresh := loginPair(t, ts, "alice")

	raw, err := base64.RawURLEncoding.Strict().DecodeString(refresh)
	if err != nil || len(raw) < 32 {
		t.Fatalf("refresh token %q: want at least 256 bits of base64url, got %d bytes (err %v)", refresh, len(raw), err)
	}
	// Stored only as its SHA-256 hash.
	var stored int
	sum := sha256.Sum256([]byte(refresh))
	ts.s.db.r.QueryRow(`SELECT COUNT(*) FROM refresh_tokens WHERE hash = ?`, sum[:]).Scan(&stored)
	if stored != 1 {
		t.Errorf("refresh_tokens rows with the token's hash = %d, want 1", stored)
	}
	var plain int
	ts.s.db.r.QueryRow(`SELECT COUNT(*) FROM refresh_tokens WHERE hash = ? OR CAST(hash AS TEXT) = ?`, refresh, refresh).Scan(&plain)
	if plain != 0 {
		t.Errorf("refresh token stored in plain text")
	}

	r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /refresh: status = %d, want 201; body %s", r.status, r.body)
	}
	onlyStringsAndInts(t, "POST /refresh", r.body)
	m := r.json(t)
	newAccess, newRefresh := m["token"].(string), m["refresh_token"].(string)
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(900) {
		t.Errorf("POST /refresh: body %s, want token_type Bearer and expires_in 900", r.body)
	}
	if newRefresh == refresh || newAccess == access {
		t.Errorf("POST /refresh returned the old tokens")
	}
	if got := meStatus(t, ts, newAccess); got != http.StatusOK {
		t.Errorf("GET /me with the refreshed token: status = %d, want 200", got)
	}
	if got := meStatus(t, ts, access); got != http.StatusOK {
		t.Errorf("GET /me with the first access token of the live session: status = %d, want 200", got)
	}
	r = ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": newRefresh})
	if r.status != http.StatusCreated {
		t.Errorf("POST /refresh with the new refresh token: status = %d, want 201", r.status)
	}
}

func TestRefreshReuseEndsOnlyThatSession(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	access1, refresh1 := loginPair(t, ts, "alice")
	access2, refresh2 := loginPair(t, ts, "alice") // another device

	r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh1})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /refresh: status = %d, want 201", r.status)
	}
	next := r.json(t)
	nextAccess, nextRefresh := next["token"].(string), next["refresh_token"].(string)

	// The spent token comes back: a thief or a confused client.
	r = ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh1})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("POST /refresh with a spent token: status = %d, want 401", r.status)
	}
	if m := r.json(t); m["message"] != "Invalid refresh token!" || m["error"] != "invalid_token" {
		t.Errorf("POST /refresh with a spent token: body %s", r.body)
	}
	for name, tok := range map[string]string{"first access": access1, "refreshed access": nextAccess} {
		if got := meStatus(t, ts, tok); got != http.StatusUnauthorized {
			t.Errorf("GET /me with the %s token after reuse: status = %d, want 401", name, got)
		}
	}
	if r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": nextRefresh}); r.status != http.StatusUnauthorized {
		t.Errorf("POST /refresh with the successor of a reused token: status = %d, want 401", r.status)
	}
	// The other session keeps working.
	if got := meStatus(t, ts, access2); got != http.StatusOK {
		t.Errorf("GET /me in the other session: status = %d, want 200", got)
	}
	if r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh2}); r.status != http.StatusCreated {
		t.Errorf("POST /refresh in the other session: status = %d, want 201", r.status)
	}
}

func TestRefreshConcurrentSameTokenOneWins(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	_, refresh := loginPair(t, ts, "alice")

	const n = 16
	var wg sync.WaitGroup
	statuses := make([]int, n)
	body, _ := json.Marshal(map[string]string{"refresh_token": refresh})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := ts.Client().Post(ts.URL+"/refresh", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Errorf("POST /refresh: %v", err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			won++
		case http.StatusUnauthorized:
		default:
			t.Errorf("POST /refresh: status = %d, want 201 or 401", s)
		}
	}
	if won != 1 {
		t.Errorf("concurrent refreshes with one token: %d succeeded, want exactly 1 (statuses %v)", won, statuses)
	}
}

func TestRefreshFailures(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	_, refresh := loginPair(t, ts, "alice")

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"no member", map[string]string{}, 400, "invalid_request"},
		{"empty", map[string]string{"refresh_token": ""}, 400, "invalid_request"},
		{"wrong type", map[string]int{"refresh_token": 5}, 400, "invalid_request"},
		{"unknown member", map[string]string{"refresh_token": refresh, "x": "y"}, 400, "invalid_request"},
		{"not JSON", "{", 400, "invalid_json"},
		{"unknown token", map[string]string{"refresh_token": "bm90LWEtdG9rZW4"}, 401, "invalid_token"},
		{"access token instead", map[string]string{"refresh_token": ts.newUser(t, "bob")}, 401, "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(t, "POST", "/refresh", tc.body)
			if r.status != tc.status || r.json(t)["error"] != tc.code {
				t.Errorf("POST /refresh: status = %d body %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	// The malformed requests spent nothing.
	if r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh}); r.status != http.StatusCreated {
		t.Errorf("POST /refresh after refused attempts: status = %d, want 201", r.status)
	}
}

func TestRefreshExpires(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	_, refresh := loginPair(t, ts, "alice")
	ts.clock.advance(720 * time.Hour)
	if r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh}); r.status != http.StatusUnauthorized {
		t.Errorf("POST /refresh after 720h: status = %d, want 401", r.status)
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	access1, refresh1 := loginPair(t, ts, "alice")
	access2, refresh2 := loginPair(t, ts, "alice")

	// Someone else's refresh token (here: another session's) is refused and ends nothing.
	r := ts.do(t, "POST", "/logout", map[string]string{"refresh_token": refresh2}, bearer(access1)...)
	if r.status != http.StatusBadRequest {
		t.Errorf("POST /logout with another session's refresh token: status = %d, want 400", r.status)
	}
	if got := meStatus(t, ts, access1); got != http.StatusOK {
		t.Fatalf("GET /me after a refused logout: status = %d, want 200", got)
	}

	r = ts.do(t, "POST", "/logout", map[string]string{"refresh_token": refresh1}, bearer(access1)...)
	if r.status != http.StatusOK || r.json(t)["message"] != "logged out" {
		t.Fatalf("POST /logout: status = %d body %s, want 200 logged out", r.status, r.body)
	}
	if got := meStatus(t, ts, access1); got != http.StatusUnauthorized {
		t.Errorf("GET /me after logout: status = %d, want 401", got)
	}
	if r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh1}); r.status != http.StatusUnauthorized {
		t.Errorf("POST /refresh after logout: status = %d, want 401", r.status)
	}
	if got := meStatus(t, ts, access2); got != http.StatusOK {
		t.Errorf("GET /me in the other session after logout: status = %d, want 200", got)
	}

	// No body at all is fine.
	r = ts.do(t, "POST", "/logout", nil, bearer(access2)...)
	if r.status != http.StatusOK {
		t.Errorf("POST /logout without a body: status = %d, want 200", r.status)
	}
	if got := meStatus(t, ts, access2); got != http.StatusUnauthorized {
		t.Errorf("GET /me after the second logout: status = %d, want 401", got)
	}
	if r := ts.do(t, "POST", "/logout", nil, bearer(access2)...); r.status != http.StatusUnauthorized {
		t.Errorf("POST /logout with a logged-out token: status = %d, want 401", r.status)
	}
}

func TestLogoutAll(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	bob := ts.newUser(t, "bob")
	access1, refresh1 := loginPair(t, ts, "alice")
	access2, refresh2 := loginPair(t, ts, "alice")

	r := ts.do(t, "POST", "/logout/all", nil, bearer(access1)...)
	if r.status != http.StatusOK || r.json(t)["message"] != "logged out everywhere" {
		t.Fatalf("POST /logout/all: status = %d body %s", r.status, r.body)
	}
	for i, tok := range []string{access1, access2} {
		if got := meStatus(t, ts, tok); got != http.StatusUnauthorized {
			t.Errorf("GET /me with session %d after logout/all: status = %d, want 401", i+1, got)
		}
	}
	for i, tok := range []string{refresh1, refresh2} {
		if r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": tok}); r.status != http.StatusUnauthorized {
			t.Errorf("POST /refresh of session %d after logout/all: status = %d, want 401", i+1, r.status)
		}
	}
	if got := meStatus(t, ts, bob); got != http.StatusOK {
		t.Errorf("GET /me for another user after logout/all: status = %d, want 200", got)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	access1, refresh1 := loginPair(t, ts, "alice")
	access2, _ := loginPair(t, ts, "alice")

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"wrong old password", map[string]string{"old_password": "not-her-password", "new_password": "a new password"}, 403, "invalid_credentials"},
		{"weak new password", map[string]string{"old_password": "password-of-alice", "new_password": "short"}, 400, "invalid_request"},
		{"new password too long", map[string]string{"old_password": "password-of-alice", "new_password": strings.Repeat("x", 73)}, 400, "invalid_request"},
		{"missing old", map[string]string{"new_password": "a new password"}, 400, "invalid_request"},
		{"unknown member", map[string]string{"old_password": "password-of-alice", "new_password": "a new password", "admin": "1"}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(t, "POST", "/me/password", tc.body, bearer(access1)...)
			if r.status != tc.status || r.json(t)["error"] != tc.code {
				t.Errorf("POST /me/password: status = %d body %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if got := meStatus(t, ts, access1); got != http.StatusOK {
				t.Errorf("GET /me after a refused password change: status = %d, want 200", got)
			}
		})
	}

	r := ts.do(t, "POST", "/me/password",
		map[string]string{"old_password": "password-of-alice", "new_password": "a brand new password"}, bearer(access1)...)
	if r.status != http.StatusOK || r.json(t)["message"] != "password changed" {
		t.Fatalf("POST /me/password: status = %d body %s, want 200 password changed", r.status, r.body)
	}
	for i, tok := range []string{access1, access2} {
		if got := meStatus(t, ts, tok); got != http.StatusUnauthorized {
			t.Errorf("GET /me with session %d after a password change: status = %d, want 401", i+1, got)
		}
	}
	if r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh1}); r.status != http.StatusUnauthorized {
		t.Errorf("POST /refresh after a password change: status = %d, want 401", r.status)
	}
	if r := ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"}); r.status != http.StatusUnauthorized {
		t.Errorf("POST /login with the old password: status = %d, want 401", r.status)
	}
	ts.login(t, "alice", "a brand new password")
}

func TestKeyRotationAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	oldSecret := []byte("the-old-secret-0123456789-abcdefghijklmnop")
	newSecret := []byte("the-new-secret-0123456789-abcdefghijklmnop")

	cfg.secret = oldSecret
	first := newTestServerWith(t, cfg)
	oldToken := first.newUser(t, "alice")
	first.Close()
	first.s.db.close()

	// Restart: the new key signs, the old one only verifies.
	cfg.secret, cfg.previous = newSecret, [][]byte{oldSecret}
	second := newTestServerWith(t, cfg)
	if got := meStatus(t, second, oldToken); got != http.StatusOK {
		t.Errorf("GET /me with a token of the previous key: status = %d, want 200", got)
	}
	newToken := second.login(t, "alice", "password-of-alice")["token"].(string)
	if kid := tokenKid(t, newToken); kid != newKey(newSecret).id {
		t.Errorf("new token kid = %q, want the new key's %q", kid, newKey(newSecret).id)
	}
	if tokenKid(t, oldToken) == tokenKid(t, newToken) {
		t.Errorf("old and new tokens carry the same kid")
	}
	second.Close()
	second.s.db.close()

	// The old key is retired: its tokens are refused.
	cfg.previous = nil
	third := newTestServerWith(t, cfg)
	if got := meStatus(t, third, oldToken); got != http.StatusUnauthorized {
		t.Errorf("GET /me with a token of a removed key: status = %d, want 401", got)
	}
	if got := meStatus(t, third, newToken); got != http.StatusOK {
		t.Errorf("GET /me with a token of the current key: status = %d, want 200", got)
	}
}

// tokenKid returns the kid of a token's header.
func tokenKid(t *testing.T, token string) string {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return h.Kid
}

func TestPreviousKeysConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"SECRET_KEY":            strings.Repeat("s", 32),
		"BOOKAPI_PREVIOUS_KEYS": strings.Repeat("a", 32) + ", " + strings.Repeat("b", 40),
	}
	cfg, err := parseServe(nil, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseServe: %v", err)
	}
	if len(cfg.previous) != 2 || string(cfg.previous[1]) != strings.Repeat("b", 40) {
		t.Errorf("previous keys = %q, want the two configured", cfg.previous)
	}
	env["BOOKAPI_PREVIOUS_KEYS"] = strings.Repeat("a", 32) + ",short"
	if _, err := parseServe(nil, func(k string) string { return env[k] }, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "BOOKAPI_PREVIOUS_KEYS") {
		t.Errorf("parseServe with a short previous key: err = %v, want one naming BOOKAPI_PREVIOUS_KEYS", err)
	}
}

// loginAs posts a login with extra headers and returns the response.
func loginAs(t *testing.T, ts *testServer, name, password string, headers ...string) *response {
	t.Helper()
	return ts.do(t, "POST", "/login", map[string]string{"username": name, "password": password}, headers...)
}

func TestLoginThrottlePerUsername(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")

	for i := range 5 {
		if r := loginAs(t, ts, "alice", "wrong password"); r.status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: status = %d, want 401", i+1, r.status)
		}
		ts.clock.advance(time.Minute)
	}
	// Five failures in the window: even the right password waits.
	r := loginAs(t, ts, "ALICE", "password-of-alice")
	if r.status != http.StatusTooManyRequests || r.json(t)["error"] != "rate_limited" {
		t.Fatalf("login after 5 failures: status = %d body %s, want 429 rate_limited", r.status, r.body)
	}
	// The oldest failure ages out 15 minutes after it happened: 10 minutes from now.
	if got := r.header.Get("Retry-After"); got != "600" {
		t.Errorf("Retry-After = %q, want 600", got)
	}
	for range 3 { // refused attempts do not count
		loginAs(t, ts, "alice", "wrong password")
	}
	ts.clock.advance(10 * time.Minute)
	if r := loginAs(t, ts, "alice", "password-of-alice"); r.status != http.StatusCreated {
		t.Errorf("login after the oldest failure aged out: status = %d, want 201", r.status)
	}
	// Other usernames were never affected, and unknown ones count the same.
	for i := range 5 {
		if r := loginAs(t, ts, "nobody", "wrong password"); r.status != http.StatusUnauthorized {
			t.Fatalf("unknown-user login %d: status = %d, want 401", i+1, r.status)
		}
	}
	if r := loginAs(t, ts, "nobody", "wrong password"); r.status != http.StatusTooManyRequests {
		t.Errorf("sixth unknown-user login: status = %d, want 429", r.status)
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.loginMaxAddressFailures = 4
	ts := newTestServerWith(t, cfg)
	ts.signup(t, "alice", "password-of-alice")

	// Empty credentials count for the address only.
	for range 2 {
		if r := ts.do(t, "POST", "/login", map[string]string{}); r.status != http.StatusUnauthorized {
			t.Fatalf("login without credentials: status = %d, want 401", r.status)
		}
	}
	for i := range 2 {
		loginAs(t, ts, fmt.Sprintf("user%d", i), "wrong password")
	}
	r := loginAs(t, ts, "alice", "password-of-alice")
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("login after 4 failures from one address: status = %d, want 429", r.status)
	}
	if got, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || got < 1 || got > 900 {
		t.Errorf("Retry-After = %q, want 1..900 seconds", r.header.Get("Retry-After"))
	}
}

func TestLoginThrottleTrustProxy(t *testing.T) {
	t.Parallel()
	for _, trust := range []bool{false, true} {
		t.Run(fmt.Sprintf("trust-proxy=%v", trust), func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.loginMaxAddressFailures = 2
			cfg.trustProxy = trust
			ts := newTestServerWith(t, cfg)
			ts.signup(t, "alice", "password-of-alice")
			for i := range 2 {
				loginAs(t, ts, fmt.Sprintf("user%d", i), "wrong password", "X-Forwarded-For", "203.0.113.9, 198.51.100.1")
			}
			// A different right-most hop is a different client only behind a trusted proxy.
			r := loginAs(t, ts, "alice", "password-of-alice", "X-Forwarded-For", "198.51.100.1, 198.51.100.2")
			want := http.StatusTooManyRequests
			if trust {
				want = http.StatusCreated
			}
			if r.status != want {
				t.Errorf("login from another forwarded address: status = %d, want %d", r.status, want)
			}
			var addr string
			ts.s.db.r.QueryRow(`SELECT address FROM login_failures LIMIT 1`).Scan(&addr)
			wantAddr := "127.0.0.1"
			if trust {
				wantAddr = "198.51.100.1"
			}
			if addr != wantAddr {
				t.Errorf("failure recorded for address %q, want %q", addr, wantAddr)
			}
		})
	}
}

func TestLoginThrottleSharedAndPruned(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	a := newTestServerWith(t, cfg)
	b := newTestServerWith(t, cfg) // a second server on the same database
	a.signup(t, "alice", "password-of-alice")
	for i := range 5 {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		loginAs(t, srv, "alice", "wrong password")
	}
	if r := loginAs(t, b, "alice", "password-of-alice"); r.status != http.StatusTooManyRequests {
		t.Errorf("login on server B after failures on A and B: status = %d, want 429", r.status)
	}
	if n := a.count(t, "login_failures"); n != 5 {
		t.Errorf("login_failures rows = %d, want 5", n)
	}
	a.clock.advance(16 * time.Minute)
	loginAs(t, a, "bob", "wrong password")
	if n := a.count(t, "login_failures"); n != 1 {
		t.Errorf("login_failures rows after the window passed = %d, want 1 (old rows pruned)", n)
	}
}

func TestHashSlotsBusy(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	ts.s.slotWait = 20 * time.Millisecond
	for range cap(ts.s.slots) { // every slot taken
		ts.s.slots <- struct{}{}
	}
	for _, path := range []string{"/login", "/signup"} {
		r := ts.do(t, "POST", path, map[string]string{"username": "bobby", "password": "password-of-bobby"})
		if r.status != http.StatusServiceUnavailable || r.json(t)["error"] != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("POST %s with every bcrypt slot busy: status = %d body %s Retry-After %q, want 503 unavailable with Retry-After",
				path, r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	if n := ts.count(t, "users"); n != 1 {
		t.Errorf("users = %d after refused signups, want 1", n)
	}
	// Reads never wait for bcrypt.
	tok, err := sign(claims{Issuer: "bookapi", Subject: "x", PublicID: "x", SessionID: "y",
		IssuedAt: testStart.Unix(), ExpiresAt: testStart.Add(time.Minute).Unix()}, ts.s.keys.current)
	if err != nil {
		t.Fatal(err)
	}
	if got := meStatus(t, ts, tok); got != http.StatusUnauthorized {
		t.Errorf("GET /me while bcrypt is saturated: status = %d, want a prompt 401", got)
	}
	for range cap(ts.s.slots) {
		<-ts.s.slots
	}
	ts.login(t, "alice", "password-of-alice")
}

func TestLifecycleSecretsNotLogged(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	access, refresh := loginPair(t, ts, "alice")
	r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh})
	next := r.json(t)["refresh_token"].(string)
	ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh}) // reuse: logged as a warning
	ts.do(t, "POST", "/me/password", map[string]string{"old_password": "password-of-alice", "new_password": "another password"}, bearer(access)...)
	logs := ts.logs.String()
	for _, secret := range []string{"password-of-alice", "another password", access, refresh, next, testSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q", secret)
		}
	}
	if !strings.Contains(logs, "spent refresh token presented") {
		t.Errorf("logs lack the refresh-reuse warning")
	}
}

// TestDeletedUserEndsSessions checks an admin's delete ends the user's
// refresh tokens as well as access tokens.
func TestDeletedUserEndsSessions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	admin := ts.newAdmin(t, "root")
	id := ts.signup(t, "alice", "password-of-alice")
	_, refresh := loginPair(t, ts, "alice")
	if r := ts.do(t, "DELETE", "/admin/users/"+id, nil, bearer(admin)...); r.status != http.StatusOK {
		t.Fatalf("DELETE /admin/users: status = %d", r.status)
	}
	if r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh}); r.status != http.StatusUnauthorized {
		t.Errorf("POST /refresh of a deleted user: status = %d, want 401", r.status)
	}
	if n := ts.count(t, "sessions"); n != 1 { // the admin's own
		t.Errorf("sessions = %d after deleting the user, want 1", n)
	}
}

// benchClient is an HTTP client that keeps enough idle connections for a flood.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
}

// percentile returns the p-th percentile (0-100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// timedGets sends n authenticated GET /bookapi/books and returns the sorted latencies.
func timedGets(b *testing.B, c *http.Client, url, token string, n int) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, 0, n)
	for range n {
		req, _ := http.NewRequest("GET", url+"/bookapi/books", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			b.Fatalf("GET /bookapi/books: %v", err)
		}
		_, _ = bytes.NewBuffer(nil).ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /bookapi/books: status = %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat
}

// BenchmarkLoginFlood measures the p99 latency of authenticated book lists
// alone and while 64 clients log in as fast as they can, at bcrypt cost 10
// on the default number of bcrypt slots. It reports both and their ratio:
//
//	go test -run '^$' -bench LoginFlood -benchtime 1x
func BenchmarkLoginFlood(b *testing.B) {
	cfg := config{
		db: b.TempDir() + "/bench.db", issuer: "bookapi", tokenTTL: time.Hour, refreshTTL: time.Hour,
		bcryptCost: 10, secret: []byte(testSecret),
		loginMaxFailures: 5, loginMaxAddressFailures: 50, loginWindow: time.Minute,
	}
	st, err := openStore(context.Background(), cfg.db)
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	s := newServer(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)), newKeyring(cfg.secret), time.Now)
	srv := httptest.NewServer(s.routes())
	defer srv.Close()
	c := benchClient()
	post := func(path, body string, header ...string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if len(header) == 2 {
			req.Header.Set(header[0], header[1])
		}
		resp, err := c.Do(req)
		if err != nil {
			b.Fatalf("POST %s: %v", path, err)
		}
		return resp
	}
	creds := `{"username":"alice","password":"password-of-alice"}`
	post("/signup", creds).Body.Close()
	resp := post("/login", creds)
	var login tokenResponse
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	for i := range 20 {
		post("/bookapi/books", fmt.Sprintf(`{"title":"Book %d","author":"Author"}`, i), "Authorization", "Bearer "+login.Token).Body.Close()
	}

	const samples = 400
	var base, flood time.Duration
	var logins, busy atomic.Int64
	for b.Loop() {
		timedGets(b, c, srv.URL, login.Token, 50) // warm up
		base = percentile(timedGets(b, c, srv.URL, login.Token, samples), 99)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp := post("/login", creds)
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusCreated:
						logins.Add(1)
					case http.StatusServiceUnavailable:
						busy.Add(1)
					}
				}
			}()
		}
		for logins.Load() < 4 { // the flood is under way
			runtime.Gosched()
		}
		flood = percentile(timedGets(b, c, srv.URL, login.Token, samples), 99)
		close(stop)
		wg.Wait()
	}
	b.ReportMetric(float64(base.Microseconds())/1000, "p99-alone-ms")
	b.ReportMetric(float64(flood.Microseconds())/1000, "p99-flood-ms")
	b.ReportMetric(float64(flood)/float64(base), "p99-ratio")
	b.ReportMetric(float64(logins.Load()), "logins")
	b.ReportMetric(float64(busy.Load()), "login-503s")
}

// BenchmarkLoginEnumeration times logins for an unknown user and for a known
// user with a wrong password, interleaved, at bcrypt cost 10, and reports the
// two medians and their ratio:
//
//	go test -run '^$' -bench LoginEnumeration -benchtime 100x
func BenchmarkLoginEnumeration(b *testing.B) {
	cfg := config{
		db: b.TempDir() + "/bench.db", issuer: "bookapi", tokenTTL: time.Hour, refreshTTL: time.Hour,
		bcryptCost: 10, secret: []byte(testSecret),
		loginMaxFailures: 1 << 30, loginMaxAddressFailures: 1 << 30, loginWindow: time.Minute,
	}
	st, err := openStore(context.Background(), cfg.db)
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	s := newServer(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)), newKeyring(cfg.secret), time.Now)
	srv := httptest.NewServer(s.routes())
	defer srv.Close()
	c := benchClient()
	try := func(body string) (time.Duration, []byte) {
		start := time.Now()
		resp, err := c.Post(srv.URL+"/login", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != http.StatusUnauthorized {
			b.Fatalf("POST /login: status = %d, want 401", resp.StatusCode)
		}
		return d, buf.Bytes()
	}
	resp, _ := c.Post(srv.URL+"/signup", "application/json", strings.NewReader(`{"username":"alice","password":"password-of-alice"}`))
	resp.Body.Close()
	try(`{"username":"nobody","password":"wrong password"}`) // build the dummy hash

	var unknown, wrong []time.Duration
	for b.Loop() {
		d1, body1 := try(`{"username":"nobody","password":"wrong password"}`)
		d2, body2 := try(`{"username":"alice","password":"wrong password"}`)
		if !bytes.Equal(body1, body2) {
			b.Fatalf("bodies differ: %s vs %s", body1, body2)
		}
		unknown, wrong = append(unknown, d1), append(wrong, d2)
	}
	slices.Sort(unknown)
	slices.Sort(wrong)
	mu, mw := percentile(unknown, 50), percentile(wrong, 50)
	b.ReportMetric(float64(mu.Microseconds())/1000, "median-unknown-ms")
	b.ReportMetric(float64(mw.Microseconds())/1000, "median-wrong-ms")
	b.ReportMetric(float64(mu)/float64(mw), "ratio")
}

// FuzzDecode feeds arbitrary bodies to the request reader for every request
// type. It must never panic, and whatever it accepts must re-encode to JSON
// that the reader accepts again as the same value: validation is stable.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password":"correct horse"}`,
		`{"title":" Dune ","author":"Frank Herbert","isbn":"978-0-441-17271-9"}`,
		`{"title":"Emma","isbn":null}`,
		`{"refresh_token":"abc"}`,
		`{"old_password":"12345678","new_password":"abcdefgh"}`,
		`{"admin":true}`,
		`{"a":1,"a":2}`, `{"title":"\ud800"}`, `[]`, `null`, `{} {}`, "{\"title\":\"\xff\"}",
		`{"Title":"x","author":"y"}`, `{"title":{"nested":[1,2,{"x":null}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzDecodeAs(t, body, func() validator { return &credentials{} })
		fuzzDecodeAs(t, body, func() validator { return &newBook{} })
		fuzzDecodeAs(t, body, func() validator { return &refreshRequest{} })
		fuzzDecodeAs(t, body, func() validator { return &passwordChange{} })
		fuzzDecodeAs(t, body, func() validator { return &adminChange{} })
		fuzzDecodeAs(t, body, func() validator { return &logoutRequest{} })
		var p bookPatch
		if parseObject(body, &p) == nil {
			if p.change.Title == nil && p.change.Author == nil && p.change.ISBN == nil && !p.change.ClearISBN {
				t.Fatalf("accepted a patch that changes nothing: %q", body)
			}
		}
	})
}

// fuzzDecodeAs checks the round trip of one body through one request type.
func fuzzDecodeAs(t *testing.T, body []byte, fresh func() validator) {
	t.Helper()
	v := fresh()
	err := parseObject(body, v)
	if err == nil {
		out, merr := json.Marshal(v)
		if merr != nil {
			t.Fatalf("%T accepted %q but does not re-encode: %v", v, body, merr)
		}
		again := fresh()
		if err := parseObject(out, again); err != nil {
			t.Fatalf("%T accepted %q but not its re-encoding %q: %v", v, body, out, err)
		}
		if out2, _ := json.Marshal(again); !bytes.Equal(out, out2) {
			t.Fatalf("%T: re-encoding is not stable: %q then %q", v, out, out2)
		}
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusBadRequest && ae.status != http.StatusUnauthorized {
		t.Fatalf("%T refused %q with %v, want a 400 or 401 apiError", v, body, err)
	}
}
