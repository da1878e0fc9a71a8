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
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// authJSONType is the Content-Type the contract requires of every response body.
const authJSONType = "application/json; charset=utf-8"

// authOtherSecret is a well-formed signing secret the test server does not know.
const authOtherSecret = "another-secret-0123456789-abcdefghijklmnopqrstuvwxyz"

// authWantError checks that r is an error answer: the given status, the JSON
// Content-Type, and a body that is a JSON object with a non-empty string
// "message" and the given "error" code, holding no true, false or null.
// what names the request in failure messages. It returns the decoded body.
func authWantError(t *testing.T, what string, r *response, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		// The rest would only repeat this failure.
		t.Errorf("%s: status = %d, want %d; body %s", what, r.status, status, r.body)
		return nil
	}
	if ct := r.header.Get("Content-Type"); ct != authJSONType {
		t.Errorf("%s: Content-Type = %q, want %q", what, ct, authJSONType)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Errorf("%s: body %q is not a JSON object: %v", what, r.body, err)
		return nil
	}
	if msg, ok := m["message"].(string); !ok || msg == "" {
		t.Errorf("%s: message = %#v, want a non-empty string", what, m["message"])
	}
	if got := m["error"]; got != code {
		t.Errorf("%s: error = %#v, want %q; body %s", what, got, code, r.body)
	}
	authOnlyStringsAndIntegers(t, what, r.body)
	return m
}

// authWantBody checks that r has the given status and a JSON body that decodes
// to exactly want (no member more or less).
func authWantBody(t *testing.T, what string, r *response, status int, want map[string]any) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status = %d, want %d; body %s", what, r.status, status, r.body)
	}
	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Errorf("%s: body %q is not a JSON object: %v", what, r.body, err)
		return
	}
	if len(got) != len(want) {
		t.Errorf("%s: body = %s, want exactly %v", what, r.body, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %#v, want %#v", what, k, got[k], v)
		}
	}
}

// authWantKeys checks that the object m has exactly the given member names.
func authWantKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: members = %q, want %q", what, got, want)
	}
}

// authOnlyStringsAndIntegers fails unless body is JSON holding only strings,
// integers, lists and objects, as the seed's clients (Python's
// ast.literal_eval) require: no true, false or null in the raw bytes outside
// string literals, and no such value or fractional number when decoded.
func authOnlyStringsAndIntegers(t *testing.T, what string, body []byte) {
	t.Helper()
	bare := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAll(body, []byte(`""`))
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.Contains(bare, []byte(lit)) {
			t.Errorf("%s: body %s holds %s; want only strings and integers", what, body, lit)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Errorf("%s: body %q is not JSON: %v", what, body, err)
			return
		}
		switch v := tok.(type) {
		case json.Delim, string:
		case json.Number:
			if _, err := v.Int64(); err != nil {
				t.Errorf("%s: body %s holds the number %s; want only integers", what, body, v)
			}
		default:
			t.Errorf("%s: body %s holds %#v (%T); want only strings and integers", what, body, tok, tok)
		}
	}
}

// authSend sends a request ts.do cannot express (a JSON body without a
// Content-Type, or a header given twice). header may be nil.
func authSend(t *testing.T, ts *testServer, method, path string, body io.Reader, header http.Header) *response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if header != nil {
		req.Header = header.Clone()
	}
	r, err := roundTrip(ts.Client(), req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// authClaims decodes the payload of a token the server issued, without
// verifying it.
func authClaims(t *testing.T, token string) claims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments, want 3", token, len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("token payload %s: %v", payload, err)
	}
	return c
}

// authResign returns token's claims, changed by change, signed with k.
func authResign(t *testing.T, token string, k key, change func(*claims)) string {
	t.Helper()
	c := authClaims(t, token)
	change(&c)
	tok, err := sign(c, k)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// authPassword returns a password of exactly n ASCII bytes.
func authPassword(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	for i := range n {
		b.WriteByte(chars[i%len(chars)])
	}
	return b.String()
}

// authPadded returns the JSON object obj padded with spaces before its
// closing brace to exactly n bytes.
func authPadded(t *testing.T, obj string, n int) []byte {
	t.Helper()
	if len(obj) > n || !strings.HasSuffix(obj, "}") {
		t.Fatalf("authPadded: cannot pad %q to %d bytes", obj, n)
	}
	b := make([]byte, 0, n)
	b = append(b, obj[:len(obj)-1]...)
	b = append(b, bytes.Repeat([]byte(" "), n-len(obj))...)
	return append(b, '}')
}

// authNested returns a member value nested depth lists deep.
func authNested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// authUsers decodes a GET /admin/users answer, which must be exactly {"Users": [...]}.
func authUsers(t *testing.T, what string, r *response) []map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: status = %d, want 200; body %s", what, r.status, r.body)
	}
	var body map[string][]map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("%s: body %s: %v", what, r.body, err)
	}
	if _, ok := body["Users"]; !ok || len(body) != 1 {
		t.Fatalf("%s: body %s, want exactly one member \"Users\"", what, r.body)
	}
	return body["Users"]
}

// authMe returns the GET /me answer for a token, failing unless it is a 200.
func authMe(t *testing.T, ts *testServer, token string) map[string]any {
	t.Helper()
	r := ts.do(t, "GET", "/me", nil, bearer(token)...)
	if r.status != http.StatusOK {
		t.Fatalf("GET /me: status = %d, want 200; body %s", r.status, r.body)
	}
	return r.json(t)
}

// authCreateBook creates a book through POST /bookapi/books.
func authCreateBook(t *testing.T, ts *testServer, token, title string) {
	t.Helper()
	r := ts.do(t, "POST", "/bookapi/books", map[string]string{"title": title, "author": "Some Author"}, bearer(token)...)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /bookapi/books %q: status = %d, want 201; body %s", title, r.status, r.body)
	}
}

// TestSeedSignup ports the seed's signup test.
func TestSeedSignup(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	r := ts.do(t, "POST", "/signup", map[string]string{"username": "testuser", "password": "testpassword"})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /signup: status = %d, want 201; body %s", r.status, r.body)
	}
	if got := r.json(t)["message"]; got != "registered successfully" {
		t.Errorf("POST /signup: message = %#v, want %q", got, "registered successfully")
	}
}

// TestSeedLogin ports the seed's login test.
func TestSeedLogin(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "testuser", "testpassword")
	r := ts.do(t, "POST", "/login", map[string]string{"username": "testuser", "password": "testpassword"})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /login: status = %d, want 201; body %s", r.status, r.body)
	}
	if tok, _ := r.json(t)["token"].(string); tok == "" {
		t.Errorf("POST /login: body %s has no token", r.body)
	}
}

// TestSeedGetBooksWithToken ports the seed's book-list test: a fresh user
// with the seed's header sees exactly {"Books": []}.
func TestSeedGetBooksWithToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tok := ts.newUser(t, "testuser")
	r := ts.do(t, "GET", "/bookapi/books", map[string]any{}, "x-access-token", tok, "Content-Type", "application/json")
	if r.status != http.StatusOK {
		t.Fatalf("GET /bookapi/books: status = %d, want 200; body %s", r.status, r.body)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("GET /bookapi/books: body %q: %v", r.body, err)
	}
	if len(body) != 1 {
		t.Errorf("GET /bookapi/books: body %s, want exactly one member \"Books\"", r.body)
	}
	var books []any
	if err := json.Unmarshal(body["Books"], &books); err != nil || books == nil || len(books) != 0 {
		t.Errorf("GET /bookapi/books: Books = %s, want []", body["Books"])
	}
}

// TestSeedInvalidToken ports the seed's invalid-token test.
func TestSeedInvalidToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	r := ts.do(t, "GET", "/bookapi/books", nil, "x-access-token", "invalid-token")
	m := authWantError(t, "GET /bookapi/books", r, http.StatusUnauthorized, "invalid_token")
	if m["message"] != "Invalid token!" {
		t.Errorf("GET /bookapi/books: message = %#v, want %q", m["message"], "Invalid token!")
	}
}

// TestSignupCreated checks the shape of a successful signup.
func TestSignupCreated(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	r := ts.do(t, "POST", "/signup", map[string]string{"username": "Alice.B_c-9", "password": "password123"})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /signup: status = %d, want 201; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != authJSONType {
		t.Errorf("POST /signup: Content-Type = %q, want %q", ct, authJSONType)
	}
	m := r.json(t)
	authWantKeys(t, "POST /signup", m, "message", "public_id", "username")
	if m["message"] != "registered successfully" {
		t.Errorf("POST /signup: message = %#v, want %q", m["message"], "registered successfully")
	}
	if m["username"] != "Alice.B_c-9" {
		t.Errorf("POST /signup: username = %#v, want %q", m["username"], "Alice.B_c-9")
	}
	pid, _ := m["public_id"].(string)
	if id, err := uuid.Parse(pid); err != nil || id.Version() != 4 || id.String() != pid {
		t.Errorf("POST /signup: public_id = %#v, want a random (version 4) UUID in canonical form", m["public_id"])
	}
	authOnlyStringsAndIntegers(t, "POST /signup", r.body)
	if n := ts.count(t, "users"); n != 1 {
		t.Errorf("users = %d after one signup, want 1", n)
	}
	tok := ts.login(t, "Alice.B_c-9", "password123")["token"].(string)
	if got := authMe(t, ts, tok)["public_id"]; got != pid {
		t.Errorf("GET /me: public_id = %#v, want the signup's %q", got, pid)
	}
}

// TestSignupConflict checks that usernames are unique in any letter case and
// kept as first written.
func TestSignupConflict(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "Alice", "password-of-Alice")
	for _, name := range []string{"Alice", "alice", "ALICE", "aLICE"} {
		r := ts.do(t, "POST", "/signup", map[string]string{"username": name, "password": "another-password"})
		what := "POST /signup " + name
		authWantError(t, what, r, http.StatusConflict, "conflict")
		authWantBody(t, what, r, http.StatusConflict, map[string]any{"message": "User already exists!", "error": "conflict"})
	}
	if n := ts.count(t, "users"); n != 1 {
		t.Errorf("users = %d, want 1", n)
	}
	tok := ts.login(t, "Alice", "password-of-Alice")["token"].(string)
	if got := authMe(t, ts, tok)["username"]; got != "Alice" {
		t.Errorf("GET /me: username = %#v, want %q as first written", got, "Alice")
	}
	// The refused signups did not replace the password.
	r := ts.do(t, "POST", "/login", map[string]string{"username": "Alice", "password": "another-password"})
	authWantError(t, "POST /login with a refused signup's password", r, http.StatusUnauthorized, "invalid_credentials")
}

// TestSignupValidation checks the username and password rules, counting the
// password in bytes.
func TestSignupValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     map[string]string
		want     int
		member   string // named in the message of a 400
		loginsAs string // for a 201, the password that must then log in
	}{
		{"username 2 characters", map[string]string{"username": "ab", "password": "password123"}, 400, "username", ""},
		{"username 3 characters", map[string]string{"username": "abc", "password": "password123"}, 201, "", "password123"},
		{"username 64 characters", map[string]string{"username": strings.Repeat("u", 64), "password": "password123"}, 201, "", "password123"},
		{"username 65 characters", map[string]string{"username": strings.Repeat("u", 65), "password": "password123"}, 400, "username", ""},
		{"username empty", map[string]string{"username": "", "password": "password123"}, 400, "username", ""},
		{"username missing", map[string]string{"password": "password123"}, 400, "username", ""},
		{"username with a space", map[string]string{"username": "al ice", "password": "password123"}, 400, "username", ""},
		{"username with leading space", map[string]string{"username": " alice", "password": "password123"}, 400, "username", ""},
		{"username with a slash", map[string]string{"username": "al/ice", "password": "password123"}, 400, "username", ""},
		{"username with an at sign", map[string]string{"username": "al@ice", "password": "password123"}, 400, "username", ""},
		{"username with NUL", map[string]string{"username": "al\x00ice", "password": "password123"}, 400, "username", ""},
		{"username with a non-ASCII letter", map[string]string{"username": "ålice", "password": "password123"}, 400, "username", ""},
		{"username with every allowed kind", map[string]string{"username": "Az09._-", "password": "password123"}, 201, "", "password123"},
		{"password 7 bytes", map[string]string{"username": "alice", "password": authPassword(7)}, 400, "password", ""},
		{"password 8 bytes", map[string]string{"username": "alice", "password": authPassword(8)}, 201, "", authPassword(8)},
		{"password 72 bytes", map[string]string{"username": "alice", "password": authPassword(72)}, 201, "", authPassword(72)},
		{"password 73 bytes", map[string]string{"username": "alice", "password": authPassword(73)}, 400, "password", ""},
		{"password empty", map[string]string{"username": "alice", "password": ""}, 400, "password", ""},
		{"password missing", map[string]string{"username": "alice"}, 400, "password", ""},
		{"password 4 two-byte characters is 8 bytes", map[string]string{"username": "alice", "password": "éééé"}, 201, "", "éééé"},
		{"password 24 three-byte characters is 72 bytes", map[string]string{"username": "alice", "password": strings.Repeat("€", 24)}, 201, "", strings.Repeat("€", 24)},
		{"password 25 three-byte characters is 75 bytes", map[string]string{"username": "alice", "password": strings.Repeat("€", 25)}, 400, "password", ""},
		{"password 37 two-byte characters is 74 bytes", map[string]string{"username": "alice", "password": strings.Repeat("é", 37)}, 400, "password", ""},
		{"password of spaces and controls", map[string]string{"username": "alice", "password": "  \t\n\x00\x01  "}, 201, "", "  \t\n\x00\x01  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			r := ts.do(t, "POST", "/signup", tt.body)
			if tt.want != http.StatusCreated {
				m := authWantError(t, "POST /signup", r, tt.want, "invalid_request")
				if msg, _ := m["message"].(string); !strings.Contains(msg, tt.member) {
					t.Errorf("POST /signup: message %q does not name %q", msg, tt.member)
				}
				if n := ts.count(t, "users"); n != 0 {
					t.Errorf("users = %d after a refused signup, want 0", n)
				}
				return
			}
			if r.status != http.StatusCreated {
				t.Fatalf("POST /signup: status = %d, want 201; body %s", r.status, r.body)
			}
			if n := ts.count(t, "users"); n != 1 {
				t.Errorf("users = %d, want 1", n)
			}
			ts.login(t, tt.body["username"], tt.loginsAs)
		})
	}
}

// TestSignupRefusesAdminMember checks that a client cannot make itself an admin.
func TestSignupRefusesAdminMember(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"username":"mallory","password":"password123","admin":true}`,
		`{"username":"mallory","password":"password123","admin":1}`,
		`{"username":"mallory","password":"password123","Admin":true}`,
	} {
		ts := newTestServer(t)
		r := ts.do(t, "POST", "/signup", body)
		authWantError(t, "POST /signup "+body, r, http.StatusBadRequest, "invalid_request")
		if n := ts.count(t, "users"); n != 0 {
			t.Errorf("POST /signup %s: users = %d, want 0", body, n)
		}
		var admins int
		if err := ts.s.db.r.QueryRow("SELECT COUNT(*) FROM users WHERE admin <> 0").Scan(&admins); err != nil {
			t.Fatalf("count admins: %v", err)
		}
		if admins != 0 {
			t.Errorf("POST /signup %s: %d admins, want 0", body, admins)
		}
	}
}

// TestSignupHostileInput feeds POST /signup bodies a careful client never
// sends; each must be refused with the right code and store nothing.
func TestSignupHostileInput(t *testing.T) {
	t.Parallel()
	const ok = `{"username":"alice","password":"password123"}`
	tests := []struct {
		name    string
		body    any
		headers []string
		status  int
		code    string
	}{
		{"text/plain", ok, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"form encoded", "username=alice&password=password123", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"multipart", ok, []string{"Content-Type", "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"},
		{"malformed Content-Type", ok, []string{"Content-Type", "application/json; charset"}, 415, "unsupported_media_type"},
		{"json prefix only", ok, []string{"Content-Type", "application/jsonx"}, 415, "unsupported_media_type"},
		{"1 MiB + 1", authPadded(t, ok, 1<<20+1), nil, 413, "body_too_large"},
		{"empty body", "", nil, 400, "invalid_json"},
		{"whitespace body", " \n\t ", nil, 400, "invalid_json"},
		{"unclosed object", `{"username":"alice","password":"password123"`, nil, 400, "invalid_json"},
		{"trailing object", ok + `{}`, nil, 400, "invalid_json"},
		{"trailing garbage", ok + `x`, nil, 400, "invalid_json"},
		{"trailing comma", `{"username":"alice","password":"password123",}`, nil, 400, "invalid_json"},
		{"null", `null`, nil, 400, "invalid_json"},
		{"empty list", `[]`, nil, 400, "invalid_json"},
		{"list of the object", `[` + ok + `]`, nil, 400, "invalid_json"},
		{"a string", `"alice"`, nil, 400, "invalid_json"},
		{"a number", `42`, nil, 400, "invalid_json"},
		{"unknown member", `{"username":"alice","password":"password123","nickname":"al"}`, nil, 400, "invalid_request"},
		{"member in another case", `{"Username":"alice","password":"password123"}`, nil, 400, "invalid_request"},
		{"PASSWORD in capitals", `{"username":"alice","PASSWORD":"password123"}`, nil, 400, "invalid_request"},
		{"admin member", `{"username":"alice","password":"password123","admin":true}`, nil, 400, "invalid_request"},
		{"duplicate username", `{"username":"alice","username":"bob","password":"password123"}`, nil, 400, "invalid_json"},
		{"duplicate password", `{"username":"alice","password":"password123","password":"password456"}`, nil, 400, "invalid_json"},
		{"bad UTF-8 in username", "{\"username\":\"al\xffice\",\"password\":\"password123\"}", nil, 400, "invalid_json"},
		{"bad UTF-8 in password", "{\"username\":\"alice\",\"password\":\"password\xc3\x28\"}", nil, 400, "invalid_json"},
		{"bad UTF-8 in a member name", "{\"user\xfename\":\"alice\",\"password\":\"password123\"}", nil, 400, "invalid_json"},
		{"overlong UTF-8", "{\"username\":\"alice\",\"password\":\"password\xc0\xaf\"}", nil, 400, "invalid_json"},
		{"lone high surrogate", `{"username":"alice","password":"pass\ud800word"}`, nil, 400, "invalid_json"},
		{"lone low surrogate", `{"username":"alice","password":"pass\udc00word"}`, nil, 400, "invalid_json"},
		{"username a number", `{"username":12345,"password":"password123"}`, nil, 400, "invalid_request"},
		{"username true", `{"username":true,"password":"password123"}`, nil, 400, "invalid_request"},
		{"username null", `{"username":null,"password":"password123"}`, nil, 400, "invalid_request"},
		{"username a list", `{"username":["alice"],"password":"password123"}`, nil, 400, "invalid_request"},
		{"username an object", `{"username":{"name":"alice"},"password":"password123"}`, nil, 400, "invalid_request"},
		{"password a number", `{"username":"alice","password":12345678}`, nil, 400, "invalid_request"},
		{"deeply nested list", `{"username":` + authNested(10000) + `,"password":"password123"}`, nil, 400, "invalid_json"},
		{"deeply nested object", `{"username":"alice","password":"password123","x":` + strings.Repeat(`{"x":`, 10000) + `1` + strings.Repeat(`}`, 10000) + `}`, nil, 400, "invalid_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			r := ts.do(t, "POST", "/signup", tt.body, tt.headers...)
			authWantError(t, "POST /signup", r, tt.status, tt.code)
			if n := ts.count(t, "users"); n != 0 {
				t.Errorf("POST /signup: users = %d after a refused body, want 0", n)
			}
		})
	}
}

// TestSignupAcceptedBodies checks the Content-Types and sizes a signup may use.
func TestSignupAcceptedBodies(t *testing.T) {
	t.Parallel()
	const ok = `{"username":"alice","password":"password123"}`
	tests := []struct {
		name        string
		body        []byte
		contentType string // "" sends no Content-Type header at all
	}{
		{"application/json", []byte(ok), "application/json"},
		{"charset parameter", []byte(ok), "application/json; charset=utf-8"},
		{"vendor +json type", []byte(ok), "application/vnd.api+json"},
		{"type in capitals", []byte(ok), "Application/JSON"},
		{"no Content-Type", []byte(ok), ""},
		{"exactly 1 MiB", authPadded(t, ok, 1<<20), "application/json"},
		{"leading whitespace", []byte(" \r\n\t" + ok + "\n"), "application/json"},
		{"escaped letters", []byte(`{"username":"\u0061lice","password":"password123"}`), "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			h := http.Header{}
			if tt.contentType != "" {
				h.Set("Content-Type", tt.contentType)
			}
			r := authSend(t, ts, "POST", "/signup", bytes.NewReader(tt.body), h)
			if r.status != http.StatusCreated {
				t.Fatalf("POST /signup: status = %d, want 201; body %s", r.status, r.body)
			}
			if n := ts.count(t, "users"); n != 1 {
				t.Errorf("users = %d, want 1", n)
			}
			ts.login(t, "alice", "password123")
		})
	}
}

// TestLoginResponse checks a successful login: status, members, types and
// the claims of its token.
func TestLoginResponse(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	pid := ts.signup(t, "alice", "password-of-alice")
	r := ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /login: status = %d, want 201; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != authJSONType {
		t.Errorf("POST /login: Content-Type = %q, want %q", ct, authJSONType)
	}
	authOnlyStringsAndIntegers(t, "POST /login", r.body)

	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("POST /login: body %q: %v", r.body, err)
	}
	authWantKeys(t, "POST /login", m, "token", "token_type", "expires_in", "refresh_token")
	for _, k := range []string{"token", "token_type", "refresh_token"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("POST /login: %s = %#v (%T), want a string", k, m[k], m[k])
		}
	}
	if n, ok := m["expires_in"].(json.Number); !ok || n.String() != "900" {
		t.Errorf("POST /login: expires_in = %#v, want the integer 900", m["expires_in"])
	}
	if m["token_type"] != "Bearer" {
		t.Errorf("POST /login: token_type = %#v, want %q", m["token_type"], "Bearer")
	}
	refresh, _ := m["refresh_token"].(string)
	if len(refresh) < 43 {
		t.Errorf("POST /login: refresh_token %q is shorter than 256 bits of base64url", refresh)
	}
	tok, _ := m["token"].(string)
	c := authClaims(t, tok)
	if c.Issuer != "bookapi" || c.Subject != pid || c.PublicID != pid || c.SessionID == "" || c.ID == "" {
		t.Errorf("token claims = %+v, want iss bookapi, sub and public_id %s, a sid and a jti", c, pid)
	}
	if c.IssuedAt != testStart.Unix() || c.ExpiresAt != testStart.Unix()+900 {
		t.Errorf("token iat, exp = %d, %d; want %d, %d", c.IssuedAt, c.ExpiresAt, testStart.Unix(), testStart.Unix()+900)
	}
	if got := authMe(t, ts, tok)["public_id"]; got != pid {
		t.Errorf("GET /me: public_id = %#v, want %q", got, pid)
	}

	again := ts.login(t, "alice", "password-of-alice")
	c2 := authClaims(t, again["token"].(string))
	if c2.ID == c.ID || c2.SessionID == c.SessionID || again["refresh_token"] == refresh {
		t.Errorf("second login reused jti, sid or refresh token: %+v, %+v", c, c2)
	}
	if n := ts.count(t, "sessions"); n != 2 {
		t.Errorf("sessions = %d after two logins, want 2", n)
	}
}

// TestLoginFailures checks the seed's 401 for missing or empty credentials
// and bodies that are JSON but not an object.
func TestLoginFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body any // nil sends no body and no Content-Type
	}{
		{"no body", nil},
		{"empty body", ""},
		{"whitespace body", " \n "},
		{"null", `null`},
		{"empty list", `[]`},
		{"list", `["alice","password-of-alice"]`},
		{"a string", `"x"`},
		{"a number", `42`},
		{"true", `true`},
		{"empty object", `{}`},
		{"username missing", `{"password":"password-of-alice"}`},
		{"password missing", `{"username":"alice"}`},
		{"username empty", `{"username":"","password":"password-of-alice"}`},
		{"password empty", `{"username":"alice","password":""}`},
		{"both empty", `{"username":"","password":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			ts.signup(t, "alice", "password-of-alice")
			r := ts.do(t, "POST", "/login", tt.body)
			authWantError(t, "POST /login", r, http.StatusUnauthorized, "invalid_credentials")
			authWantBody(t, "POST /login", r, http.StatusUnauthorized, map[string]any{"message": "Could not verify!", "error": "invalid_credentials"})
			if got, want := r.header.Get("WWW-Authenticate"), `Basic realm="Login required!"`; got != want {
				t.Errorf("POST /login: WWW-Authenticate = %q, want %q", got, want)
			}
			if n := ts.count(t, "sessions"); n != 0 {
				t.Errorf("POST /login: sessions = %d, want 0", n)
			}
		})
	}
}

// TestLoginHostileInput checks the login bodies that are a 400, 413 or 415
// like anywhere else, not the seed's 401, and that no session starts.
func TestLoginHostileInput(t *testing.T) {
	t.Parallel()
	const ok = `{"username":"alice","password":"password-of-alice"}`
	tests := []struct {
		name    string
		body    any
		headers []string
		status  int
		code    string
	}{
		{"text/plain", ok, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"form encoded", "username=alice&password=password-of-alice", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"1 MiB + 1", authPadded(t, ok, 1<<20+1), nil, 413, "body_too_large"},
		{"unclosed object", `{`, nil, 400, "invalid_json"},
		{"unclosed string", `{"username":"alice`, nil, 400, "invalid_json"},
		{"not JSON", `username=alice`, nil, 400, "invalid_json"},
		{"trailing object", ok + `{}`, nil, 400, "invalid_json"},
		{"trailing garbage", ok + `x`, nil, 400, "invalid_json"},
		{"unclosed list", `[`, nil, 400, "invalid_json"},
		{"bad UTF-8 in username", "{\"username\":\"al\xffice\",\"password\":\"password-of-alice\"}", nil, 400, "invalid_json"},
		{"bad UTF-8 in password", "{\"username\":\"alice\",\"password\":\"password-of-alice\xff\"}", nil, 400, "invalid_json"},
		{"lone surrogate", `{"username":"alice","password":"password-of-alice\ud800"}`, nil, 400, "invalid_json"},
		{"duplicate member", `{"username":"bob","username":"alice","password":"password-of-alice"}`, nil, 400, "invalid_json"},
		{"unknown member Username", `{"Username":"alice","password":"password-of-alice"}`, nil, 400, "invalid_request"},
		{"extra member", `{"username":"alice","password":"password-of-alice","admin":true}`, nil, 400, "invalid_request"},
		{"username a number", `{"username":1,"password":"password-of-alice"}`, nil, 400, "invalid_request"},
		{"password a list", `{"username":"alice","password":["password-of-alice"]}`, nil, 400, "invalid_request"},
		{"password an object", `{"username":"alice","password":{}}`, nil, 400, "invalid_request"},
		{"password true", `{"username":"alice","password":true}`, nil, 400, "invalid_request"},
		{"deeply nested", `{"username":"alice","password":` + authNested(10000) + `}`, nil, 400, "invalid_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			ts.signup(t, "alice", "password-of-alice")
			r := ts.do(t, "POST", "/login", tt.body, tt.headers...)
			authWantError(t, "POST /login", r, tt.status, tt.code)
			if n := ts.count(t, "sessions"); n != 0 {
				t.Errorf("POST /login: sessions = %d, want 0", n)
			}
		})
	}
}

// TestLoginUnknownUserLooksLikeWrongPassword checks that the answers to an
// unknown user and to a wrong password are identical.
func TestLoginUnknownUserLooksLikeWrongPassword(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	unknown := ts.do(t, "POST", "/login", map[string]string{"username": "bob", "password": "password-of-alice"})
	wrong := ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "password-of-bob"})
	authWantError(t, "POST /login unknown user", unknown, http.StatusUnauthorized, "invalid_credentials")
	authWantError(t, "POST /login wrong password", wrong, http.StatusUnauthorized, "invalid_credentials")
	if unknown.status != wrong.status {
		t.Errorf("POST /login: status %d for an unknown user, %d for a wrong password", unknown.status, wrong.status)
	}
	if !bytes.Equal(unknown.body, wrong.body) {
		t.Errorf("POST /login: body %q for an unknown user, %q for a wrong password", unknown.body, wrong.body)
	}
	if got, want := wrong.header.Get("WWW-Authenticate"), `Basic realm="Login required!"`; got != want {
		t.Errorf("POST /login wrong password: WWW-Authenticate = %q, want %q", got, want)
	}
	// Every header but the per-request ones must match too.
	names := map[string]bool{}
	for k := range unknown.header {
		names[k] = true
	}
	for k := range wrong.header {
		names[k] = true
	}
	for k := range names {
		if k == "Date" || k == "X-Request-Id" {
			continue
		}
		if u, w := unknown.header.Values(k), wrong.header.Values(k); !slices.Equal(u, w) {
			t.Errorf("POST /login: header %s = %q for an unknown user, %q for a wrong password", k, u, w)
		}
	}
}

// TestLoginPasswordOver72Bytes checks that bcrypt's 72-byte truncation
// cannot be used to log in with a longer password.
func TestLoginPasswordOver72Bytes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	pw := authPassword(72)
	ts.signup(t, "alice", pw)
	ts.login(t, "alice", pw)
	for _, extra := range []string{"x", "-and-some-more-bytes"} {
		r := ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": pw + extra})
		authWantError(t, "POST /login with 72 matching bytes and more", r, http.StatusUnauthorized, "invalid_credentials")
	}
	if n := ts.count(t, "sessions"); n != 1 {
		t.Errorf("sessions = %d, want 1 (the one good login)", n)
	}
}

// TestLoginUpgradesHashCost checks that a hash below the configured cost is
// replaced at the next successful login.
func TestLoginUpgradesHashCost(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.bcryptCost = 5
	ts := newTestServerWith(t, cfg)
	hash, err := bcrypt.GenerateFromPassword([]byte("password-of-carol"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ts.s.db.createUser(ctx, uuid.NewString(), "carol", string(hash), false, testStart); err != nil {
		t.Fatalf("createUser: %v", err)
	}
	storedCost := func() int {
		t.Helper()
		var h string
		if err := ts.s.db.r.QueryRow("SELECT password_hash FROM users WHERE username = ?", "carol").Scan(&h); err != nil {
			t.Fatalf("read password_hash: %v", err)
		}
		cost, err := bcrypt.Cost([]byte(h))
		if err != nil {
			t.Fatalf("bcrypt.Cost: %v", err)
		}
		return cost
	}

	r := ts.do(t, "POST", "/login", map[string]string{"username": "carol", "password": "wrong-password"})
	authWantError(t, "POST /login wrong password", r, http.StatusUnauthorized, "invalid_credentials")
	if got := storedCost(); got != bcrypt.MinCost {
		t.Errorf("after a failed login: cost = %d, want %d (unchanged)", got, bcrypt.MinCost)
	}
	ts.login(t, "carol", "password-of-carol")
	if got := storedCost(); got != 5 {
		t.Errorf("after a login: cost = %d, want 5", got)
	}
	ts.login(t, "carol", "password-of-carol")
}

// TestTokenDecorator drives requireToken through GET /me: where the token may
// come from, and every way it can be missing, forged or dead.
func TestTokenDecorator(t *testing.T) {
	t.Parallel()
	const (
		ok      = 0
		missing = 1
		invalid = 2
	)
	serverKey := newKey([]byte(testSecret))
	tests := []struct {
		name string
		// setup returns the request's header pairs, given alice's token.
		setup func(t *testing.T, ts *testServer, tok string) []string
		want  int
	}{
		{"no header", func(*testing.T, *testServer, string) []string { return nil }, missing},
		{"empty x-access-token", func(*testing.T, *testServer, string) []string { return []string{"x-access-token", ""} }, missing},
		{"blank x-access-token", func(*testing.T, *testServer, string) []string { return []string{"x-access-token", "   "} }, missing},
		{"empty Authorization", func(*testing.T, *testServer, string) []string { return []string{"Authorization", ""} }, missing},
		{"Bearer without a token", func(*testing.T, *testServer, string) []string { return []string{"Authorization", "Bearer"} }, missing},
		{"x-access-token", func(_ *testing.T, _ *testServer, tok string) []string { return []string{"x-access-token", tok} }, ok},
		{"Authorization Bearer", func(_ *testing.T, _ *testServer, tok string) []string { return bearer(tok) }, ok},
		{"bearer in lower case", func(_ *testing.T, _ *testServer, tok string) []string {
			return []string{"Authorization", "bearer " + tok}
		}, ok},
		{"BEARER in capitals", func(_ *testing.T, _ *testServer, tok string) []string {
			return []string{"Authorization", "BEARER " + tok}
		}, ok},
		{"both headers equal", func(_ *testing.T, _ *testServer, tok string) []string {
			return append([]string{"x-access-token", tok}, bearer(tok)...)
		}, ok},
		{"both headers differ", func(t *testing.T, ts *testServer, tok string) []string {
			other := ts.login(t, "alice", "password-of-alice")["token"].(string)
			return append([]string{"x-access-token", tok}, bearer(other)...)
		}, invalid},
		{"x-access-token invalid", func(*testing.T, *testServer, string) []string { return []string{"x-access-token", "invalid-token"} }, invalid},
		{"Bearer invalid", func(*testing.T, *testServer, string) []string { return bearer("invalid-token") }, invalid},
		{"token with a flipped signature", func(_ *testing.T, _ *testServer, tok string) []string {
			b := []byte(tok)
			last := len(b) - 2
			if b[last] == 'A' {
				b[last] = 'B'
			} else {
				b[last] = 'A'
			}
			return bearer(string(b))
		}, invalid},
		{"one second before expiry", func(_ *testing.T, ts *testServer, tok string) []string {
			ts.clock.advance(15*time.Minute - time.Second)
			return bearer(tok)
		}, ok},
		{"expired", func(_ *testing.T, ts *testServer, tok string) []string {
			ts.clock.advance(15 * time.Minute)
			return bearer(tok)
		}, invalid},
		{"long expired", func(_ *testing.T, ts *testServer, tok string) []string {
			ts.clock.advance(24 * time.Hour)
			return bearer(tok)
		}, invalid},
		{"user deleted", func(t *testing.T, ts *testServer, tok string) []string {
			admin := ts.newAdmin(t, "root")
			r := ts.do(t, "DELETE", "/admin/users/"+authClaims(t, tok).Subject, nil, bearer(admin)...)
			if r.status != http.StatusOK {
				t.Fatalf("DELETE /admin/users/{alice}: status = %d, want 200; body %s", r.status, r.body)
			}
			return bearer(tok)
		}, invalid},
		{"session row deleted", func(t *testing.T, ts *testServer, tok string) []string {
			if _, err := ts.s.db.w.Exec("DELETE FROM sessions"); err != nil {
				t.Fatalf("delete sessions: %v", err)
			}
			return bearer(tok)
		}, invalid},
		{"re-signed with the server's key", func(t *testing.T, _ *testServer, tok string) []string {
			return bearer(authResign(t, tok, serverKey, func(c *claims) { c.ID = "another-jti" }))
		}, ok},
		{"signed with another secret", func(t *testing.T, _ *testServer, tok string) []string {
			return bearer(authResign(t, tok, newKey([]byte(authOtherSecret)), func(*claims) {}))
		}, invalid},
		{"another secret under the server's kid", func(t *testing.T, _ *testServer, tok string) []string {
			k := newKey([]byte(authOtherSecret))
			k.id = serverKey.id
			return bearer(authResign(t, tok, k, func(*claims) {}))
		}, invalid},
		{"another issuer", func(t *testing.T, _ *testServer, tok string) []string {
			return bearer(authResign(t, tok, serverKey, func(c *claims) { c.Issuer = "not-bookapi" }))
		}, invalid},
		{"unknown session", func(t *testing.T, _ *testServer, tok string) []string {
			return bearer(authResign(t, tok, serverKey, func(c *claims) { c.SessionID = uuid.NewString() }))
		}, invalid},
		{"another user's public_id on alice's session", func(t *testing.T, ts *testServer, tok string) []string {
			bob := ts.signup(t, "bob", "password-of-bob")
			return bearer(authResign(t, tok, serverKey, func(c *claims) { c.Subject, c.PublicID = bob, bob }))
		}, invalid},
		{"sub and public_id differ", func(t *testing.T, ts *testServer, tok string) []string {
			bob := ts.signup(t, "bob", "password-of-bob")
			return bearer(authResign(t, tok, serverKey, func(c *claims) { c.PublicID = bob }))
		}, invalid},
		{"no session id", func(t *testing.T, _ *testServer, tok string) []string {
			return bearer(authResign(t, tok, serverKey, func(c *claims) { c.SessionID = "" }))
		}, invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			tok := ts.newUser(t, "alice")
			r := ts.do(t, "GET", "/me", nil, tt.setup(t, ts, tok)...)
			auth := r.header.Get("WWW-Authenticate")
			switch tt.want {
			case ok:
				if r.status != http.StatusOK {
					t.Fatalf("GET /me: status = %d, want 200; body %s", r.status, r.body)
				}
				if got, want := r.json(t)["public_id"], authClaims(t, tok).Subject; got != want {
					t.Errorf("GET /me: public_id = %#v, want %q", got, want)
				}
			case missing:
				authWantBody(t, "GET /me", r, http.StatusUnauthorized, map[string]any{"message": "A valid token is missing!", "error": "token_missing"})
				authWantError(t, "GET /me", r, http.StatusUnauthorized, "token_missing")
				if want := `Bearer realm="bookapi"`; auth != want {
					t.Errorf("GET /me: WWW-Authenticate = %q, want %q", auth, want)
				}
			case invalid:
				authWantBody(t, "GET /me", r, http.StatusUnauthorized, map[string]any{"message": "Invalid token!", "error": "invalid_token"})
				authWantError(t, "GET /me", r, http.StatusUnauthorized, "invalid_token")
				if !strings.HasPrefix(auth, `Bearer realm="bookapi"`) || !strings.Contains(auth, `error="invalid_token"`) {
					t.Errorf("GET /me: WWW-Authenticate = %q, want Bearer realm=\"bookapi\" with error=\"invalid_token\"", auth)
				}
			}
		})
	}
}

// TestDemotedAdminLosesAccessAtOnce checks that the admin flag is read from
// the database on every request, not from the token.
func TestDemotedAdminLosesAccessAtOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	root := ts.newAdmin(t, "root")
	boss := ts.newAdmin(t, "boss")
	rootID := authClaims(t, root).Subject
	if r := ts.do(t, "GET", "/admin/users", nil, bearer(root)...); r.status != http.StatusOK {
		t.Fatalf("GET /admin/users as admin: status = %d, want 200; body %s", r.status, r.body)
	}
	r := ts.do(t, "PATCH", "/admin/users/"+rootID, map[string]bool{"admin": false}, bearer(boss)...)
	if r.status != http.StatusOK {
		t.Fatalf("PATCH /admin/users/{root}: status = %d, want 200; body %s", r.status, r.body)
	}
	r = ts.do(t, "GET", "/admin/users", nil, bearer(root)...)
	authWantBody(t, "GET /admin/users after demotion", r, http.StatusForbidden,
		map[string]any{"message": "Admin privileges required!", "error": "admin_required"})
	if got := authMe(t, ts, root)["admin"]; got != false {
		t.Errorf("GET /me after demotion: admin = %#v, want false", got)
	}
	r = ts.do(t, "PATCH", "/admin/users/"+rootID, map[string]bool{"admin": true}, bearer(boss)...)
	if r.status != http.StatusOK {
		t.Fatalf("PATCH /admin/users/{root}: status = %d, want 200; body %s", r.status, r.body)
	}
	if r := ts.do(t, "GET", "/admin/users", nil, bearer(root)...); r.status != http.StatusOK {
		t.Errorf("GET /admin/users after promotion: status = %d, want 200; body %s", r.status, r.body)
	}
}

// TestMe checks the caller's own account.
func TestMe(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	pid := ts.signup(t, "alice", "password-of-alice")
	tok := ts.login(t, "alice", "password-of-alice")["token"].(string)
	r := ts.do(t, "GET", "/me", nil, bearer(tok)...)
	if r.status != http.StatusOK {
		t.Fatalf("GET /me: status = %d, want 200; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != authJSONType {
		t.Errorf("GET /me: Content-Type = %q, want %q", ct, authJSONType)
	}
	m := r.json(t)
	authWantKeys(t, "GET /me", m, "public_id", "username", "admin", "created_at")
	if m["public_id"] != pid || m["username"] != "alice" || m["admin"] != false {
		t.Errorf("GET /me = %s, want public_id %s, username alice, admin false", r.body, pid)
	}
	created, _ := m["created_at"].(string)
	at, err := time.Parse(time.RFC3339, created)
	if err != nil || !at.Equal(testStart) || !strings.HasSuffix(created, "Z") {
		t.Errorf("GET /me: created_at = %q, want %q (RFC 3339 in UTC)", created, testStart.Format(time.RFC3339))
	}

	admin := ts.newAdmin(t, "root")
	if got := authMe(t, ts, admin)["admin"]; got != true {
		t.Errorf("GET /me as admin: admin = %#v, want true", got)
	}
}

// TestAdminRoutesRefuseNonAdmins checks the 403 for users and the 401 for
// anonymous callers on every admin route, and that nothing changed.
func TestAdminRoutesRefuseNonAdmins(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tok := ts.newUser(t, "alice")
	victim := ts.signup(t, "bob", "password-of-bob")
	tests := []struct {
		method, path string
		body         any
	}{
		{"GET", "/admin/users", nil},
		{"PATCH", "/admin/users/" + victim, map[string]bool{"admin": true}},
		{"PATCH", "/admin/users/" + authClaims(t, tok).Subject, map[string]bool{"admin": true}},
		{"DELETE", "/admin/users/" + victim, nil},
	}
	for _, tt := range tests {
		what := tt.method + " " + tt.path
		r := ts.do(t, tt.method, tt.path, tt.body, bearer(tok)...)
		authWantError(t, what, r, http.StatusForbidden, "admin_required")
		authWantBody(t, what, r, http.StatusForbidden, map[string]any{"message": "Admin privileges required!", "error": "admin_required"})
		r = ts.do(t, tt.method, tt.path, tt.body)
		authWantError(t, what+" without a token", r, http.StatusUnauthorized, "token_missing")
	}
	if n := ts.count(t, "users"); n != 2 {
		t.Errorf("users = %d, want 2", n)
	}
	if got := authMe(t, ts, tok)["admin"]; got != false {
		t.Errorf("GET /me: admin = %#v, want false", got)
	}
	bob := ts.login(t, "bob", "password-of-bob")["token"].(string)
	if got := authMe(t, ts, bob)["admin"]; got != false {
		t.Errorf("GET /me bob: admin = %#v, want false", got)
	}
}

// TestAdminListUsers checks the user list: order, members, book counts and paging.
func TestAdminListUsers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.newAdmin(t, "root")
	u1 := ts.newUser(t, "usr1")
	authCreateBook(t, ts, u1, "First Book")
	authCreateBook(t, ts, u1, "Second Book")
	// Later signups show a later created_at; the admin logs in again, as
	// their first token has expired by then.
	ts.clock.advance(time.Hour)
	ts.newUser(t, "usr2")
	u3 := ts.newUser(t, "usr3")
	authCreateBook(t, ts, u3, "Third Book")
	root := ts.login(t, "root", "password-of-root")["token"].(string)

	type want struct {
		username string
		admin    bool
		books    float64
		created  time.Time
	}
	wants := []want{
		{"root", true, 0, testStart},
		{"usr1", false, 2, testStart},
		{"usr2", false, 0, testStart.Add(time.Hour)},
		{"usr3", false, 1, testStart.Add(time.Hour)},
	}
	r := ts.do(t, "GET", "/admin/users", nil, bearer(root)...)
	if link := r.header.Get("Link"); link != "" {
		t.Errorf("GET /admin/users: Link = %q, want none (no more users)", link)
	}
	users := authUsers(t, "GET /admin/users", r)
	if len(users) != len(wants) {
		t.Fatalf("GET /admin/users: %d users, want %d; body %s", len(users), len(wants), r.body)
	}
	var ids []string
	for i, u := range users {
		w := wants[i]
		what := "GET /admin/users: user " + w.username
		authWantKeys(t, what, u, "public_id", "username", "admin", "created_at", "books")
		if u["username"] != w.username || u["admin"] != w.admin || u["books"] != w.books {
			t.Errorf("%s: got %v, want username %s, admin %v, books %v", what, u, w.username, w.admin, w.books)
		}
		if u["created_at"] != w.created.Format(time.RFC3339) {
			t.Errorf("%s: created_at = %#v, want %q", what, u["created_at"], w.created.Format(time.RFC3339))
		}
		id, _ := u["public_id"].(string)
		if _, err := uuid.Parse(id); err != nil {
			t.Errorf("%s: public_id = %#v, want a UUID", what, u["public_id"])
		}
		ids = append(ids, id)
	}
	if got, want := ids[1], authClaims(t, u1).Subject; got != want {
		t.Errorf("GET /admin/users: usr1 public_id = %q, want %q", got, want)
	}

	for _, limit := range []int{1, 2, 3} {
		path := "/admin/users?limit=" + strconv.Itoa(limit)
		var seen []string
		for page := 0; path != ""; page++ {
			if page > len(wants) {
				t.Fatalf("limit %d: more pages than users", limit)
			}
			r := ts.do(t, "GET", path, nil, bearer(root)...)
			users := authUsers(t, "GET "+path, r)
			if len(users) > limit {
				t.Errorf("GET %s: %d users, want at most %d", path, len(users), limit)
			}
			for _, u := range users {
				seen = append(seen, u["username"].(string))
			}
			link := r.header.Get("Link")
			if len(seen) == len(wants) {
				if link != "" {
					t.Errorf("GET %s: Link = %q on the last page, want none", path, link)
				}
				break
			}
			wantLink := "</admin/users?limit=" + strconv.Itoa(limit) + "&after=" + ids[len(seen)-1] + `>; rel="next"`
			if link != wantLink {
				t.Fatalf("GET %s: Link = %q, want %q", path, link, wantLink)
			}
			path = strings.TrimPrefix(strings.TrimSuffix(link, `>; rel="next"`), "<")
		}
		if !slices.Equal(seen, []string{"root", "usr1", "usr2", "usr3"}) {
			t.Errorf("limit %d: paged through %q, want root usr1 usr2 usr3", limit, seen)
		}
	}
	for _, path := range []string{"/admin/users?limit=4", "/admin/users?limit=1000", "/admin/users?after=" + ids[3]} {
		r := ts.do(t, "GET", path, nil, bearer(root)...)
		authUsers(t, "GET "+path, r)
		if link := r.header.Get("Link"); link != "" {
			t.Errorf("GET %s: Link = %q, want none", path, link)
		}
	}
	// An empty last page is an empty list, not null.
	r = ts.do(t, "GET", "/admin/users?after="+ids[3], nil, bearer(root)...)
	var empty map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &empty); err != nil || string(empty["Users"]) != "[]" {
		t.Errorf("GET /admin/users?after={usr3}: body %s, want {\"Users\": []}", r.body)
	}
	r = ts.do(t, "GET", "/admin/users?after="+ids[1], nil, bearer(root)...)
	if got := authUsers(t, "GET /admin/users?after={usr1}", r); len(got) != 2 || got[0]["username"] != "usr2" {
		t.Errorf("GET /admin/users?after={usr1}: body %s, want usr2 and usr3", r.body)
	}
}

// TestAdminListUsersBadParameters checks that bad paging parameters are a 400.
func TestAdminListUsersBadParameters(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	root := ts.newAdmin(t, "root")
	for _, query := range []string{
		"limit=0", "limit=1001", "limit=", "limit=x", "limit=-1", "limit=1.5", "limit=99999999999999999999",
		"after=" + uuid.NewString(), "after=", "after=not-a-uuid",
	} {
		r := ts.do(t, "GET", "/admin/users?"+query, nil, bearer(root)...)
		authWantError(t, "GET /admin/users?"+query, r, http.StatusBadRequest, "invalid_request")
	}
}

// TestAdminUpdateUser checks promotion and demotion, bad bodies and unknown users.
func TestAdminUpdateUser(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	root := ts.newAdmin(t, "root")
	bob := ts.newUser(t, "bob")
	bobID := authClaims(t, bob).Subject
	authCreateBook(t, ts, bob, "Bob's Book")

	if r := ts.do(t, "GET", "/admin/users", nil, bearer(bob)...); r.status != http.StatusForbidden {
		t.Fatalf("GET /admin/users as bob: status = %d, want 403", r.status)
	}
	r := ts.do(t, "PATCH", "/admin/users/"+bobID, map[string]bool{"admin": true}, bearer(root)...)
	authWantBody(t, "PATCH /admin/users/{bob}", r, http.StatusOK, map[string]any{
		"public_id": bobID, "username": "bob", "admin": true, "created_at": testStart.Format(time.RFC3339), "books": float64(1),
	})
	if ct := r.header.Get("Content-Type"); ct != authJSONType {
		t.Errorf("PATCH /admin/users/{bob}: Content-Type = %q, want %q", ct, authJSONType)
	}
	if r := ts.do(t, "GET", "/admin/users", nil, bearer(bob)...); r.status != http.StatusOK {
		t.Errorf("GET /admin/users as promoted bob: status = %d, want 200; body %s", r.status, r.body)
	}
	r = ts.do(t, "PATCH", "/admin/users/"+bobID, map[string]bool{"admin": false}, bearer(root)...)
	if r.status != http.StatusOK || r.json(t)["admin"] != false {
		t.Errorf("PATCH /admin/users/{bob} admin false: status = %d, body %s; want 200 with admin false", r.status, r.body)
	}
	if r := ts.do(t, "GET", "/admin/users", nil, bearer(bob)...); r.status != http.StatusForbidden {
		t.Errorf("GET /admin/users as demoted bob: status = %d, want 403", r.status)
	}

	tests := []struct {
		name    string
		body    any
		headers []string
		status  int
		code    string
	}{
		{"empty object", `{}`, nil, 400, "invalid_request"},
		{"admin a string", `{"admin":"yes"}`, nil, 400, "invalid_request"},
		{"admin a number", `{"admin":1}`, nil, 400, "invalid_request"},
		{"admin null", `{"admin":null}`, nil, 400, "invalid_request"},
		{"Admin in another case", `{"Admin":true}`, nil, 400, "invalid_request"},
		{"unknown member", `{"admin":true,"username":"root2"}`, nil, 400, "invalid_request"},
		{"duplicate member", `{"admin":false,"admin":true}`, nil, 400, "invalid_json"},
		{"null", `null`, nil, 400, "invalid_json"},
		{"no body", nil, nil, 400, "invalid_json"},
		{"trailing data", `{"admin":true}x`, nil, 400, "invalid_json"},
		{"text/plain", `{"admin":true}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"1 MiB + 1", authPadded(t, `{"admin":true}`, 1<<20+1), nil, 413, "body_too_large"},
	}
	for _, tt := range tests {
		r := ts.do(t, "PATCH", "/admin/users/"+bobID, tt.body, append(bearer(root), tt.headers...)...)
		authWantError(t, "PATCH /admin/users/{bob} "+tt.name, r, tt.status, tt.code)
	}
	if got := authMe(t, ts, bob)["admin"]; got != false {
		t.Errorf("GET /me bob after refused PATCHes: admin = %#v, want false", got)
	}

	for _, id := range []string{uuid.NewString(), "12", "bob"} {
		r := ts.do(t, "PATCH", "/admin/users/"+id, map[string]bool{"admin": true}, bearer(root)...)
		authWantError(t, "PATCH /admin/users/"+id, r, http.StatusNotFound, "not_found")
		authWantBody(t, "PATCH /admin/users/"+id, r, http.StatusNotFound, map[string]any{"message": "user does not exist", "error": "not_found"})
	}
}

// TestAdminDeleteUser checks that deleting a user takes their books and
// tokens with them, and that an unknown user is a 404.
func TestAdminDeleteUser(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	root := ts.newAdmin(t, "root")
	bob := ts.newUser(t, "bob")
	bobID := authClaims(t, bob).Subject
	carol := ts.newUser(t, "carol")
	authCreateBook(t, ts, bob, "Bob One")
	authCreateBook(t, ts, bob, "Bob Two")
	authCreateBook(t, ts, carol, "Carol One")
	if n := ts.count(t, "books"); n != 3 {
		t.Fatalf("books = %d, want 3", n)
	}

	r := ts.do(t, "DELETE", "/admin/users/"+bobID, nil, bearer(root)...)
	authWantBody(t, "DELETE /admin/users/{bob}", r, http.StatusOK, map[string]any{"message": "User deleted"})
	if n := ts.count(t, "books"); n != 1 {
		t.Errorf("books = %d after deleting bob, want 1 (carol's)", n)
	}
	if n := ts.count(t, "users"); n != 2 {
		t.Errorf("users = %d after deleting bob, want 2", n)
	}
	var sessions int
	if err := ts.s.db.r.QueryRow("SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id").Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	if n := ts.count(t, "sessions"); n != sessions || n != 2 {
		t.Errorf("sessions = %d (%d of live users), want 2: bob's must go with him", n, sessions)
	}
	r = ts.do(t, "GET", "/me", nil, bearer(bob)...)
	authWantError(t, "GET /me with deleted bob's token", r, http.StatusUnauthorized, "invalid_token")
	r = ts.do(t, "POST", "/login", map[string]string{"username": "bob", "password": "password-of-bob"})
	authWantError(t, "POST /login as deleted bob", r, http.StatusUnauthorized, "invalid_credentials")
	authMe(t, ts, carol)

	for _, id := range []string{bobID, uuid.NewString(), "12"} {
		r := ts.do(t, "DELETE", "/admin/users/"+id, nil, bearer(root)...)
		authWantBody(t, "DELETE /admin/users/"+id, r, http.StatusNotFound, map[string]any{"message": "user does not exist", "error": "not_found"})
	}
	if n := ts.count(t, "users"); n != 2 {
		t.Errorf("users = %d, want 2", n)
	}
}

// TestAuthCommonHeaders checks the headers every response carries, whatever
// its status.
func TestAuthCommonHeaders(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "taken", "password-of-taken")
	tok := ts.newUser(t, "alice")
	tests := []struct {
		name         string
		method, path string
		body         any
		headers      []string
		status       int
	}{
		{"signup created", "POST", "/signup", map[string]string{"username": "bob", "password": "password123"}, nil, 201},
		{"signup conflict", "POST", "/signup", map[string]string{"username": "taken", "password": "password123"}, nil, 409},
		{"signup bad request", "POST", "/signup", `{}`, nil, 400},
		{"signup wrong type", "POST", "/signup", `{}`, []string{"Content-Type", "text/plain"}, 415},
		{"signup too large", "POST", "/signup", authPadded(t, `{}`, 1<<20+1), nil, 413},
		{"login created", "POST", "/login", map[string]string{"username": "taken", "password": "password-of-taken"}, nil, 201},
		{"login refused", "POST", "/login", `{}`, nil, 401},
		{"me", "GET", "/me", nil, bearer(tok), 200},
		{"me without token", "GET", "/me", nil, nil, 401},
		{"me with bad token", "GET", "/me", nil, bearer("x.y.z"), 401},
		{"admin refused", "GET", "/admin/users", nil, bearer(tok), 403},
		{"unknown path", "GET", "/no/such/path", nil, nil, 404},
		{"wrong method", "PUT", "/signup", nil, nil, 405},
		{"healthz", "GET", "/healthz", nil, nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			what := tt.method + " " + tt.path
			r := ts.do(t, tt.method, tt.path, tt.body, tt.headers...)
			if r.status != tt.status {
				t.Errorf("%s: status = %d, want %d; body %s", what, r.status, tt.status, r.body)
			}
			for name, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"Cache-Control":          "no-store",
				"Content-Type":           authJSONType,
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s: %s = %q, want %q", what, name, got, want)
				}
			}
			if id := r.header.Get("X-Request-ID"); !authRequestIDOK(id) {
				t.Errorf("%s: X-Request-ID = %q, want 1-64 characters of A-Z a-z 0-9 . _ -", what, id)
			}
		})
	}
}

// authRequestIDOK reports whether id is a well-formed request id.
func authRequestIDOK(id string) bool {
	return regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`).MatchString(id)
}

// TestAuthRequestID checks that a well-formed client X-Request-ID is echoed
// and any other is replaced.
func TestAuthRequestID(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tests := []struct {
		name string
		id   string // "" with absent true sends no header
		echo bool
	}{
		{"simple", "abc-123", true},
		{"one character", "x", true},
		{"every allowed character", "AZaz09._-", true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"65 characters", strings.Repeat("a", 65), false},
		{"space", "abc def", false},
		{"slash", "abc/def", false},
		{"colon", "abc:def", false},
		{"quote", `abc"def`, false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ts.do(t, "GET", "/healthz", nil, "X-Request-ID", tt.id)
			got := r.header.Get("X-Request-ID")
			if tt.echo && got != tt.id {
				t.Errorf("GET /healthz with X-Request-ID %q: X-Request-ID = %q, want it echoed", tt.id, got)
			}
			if !tt.echo && (got == tt.id || !authRequestIDOK(got)) {
				t.Errorf("GET /healthz with X-Request-ID %q: X-Request-ID = %q, want a new well-formed id", tt.id, got)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		t.Parallel()
		a := ts.do(t, "GET", "/healthz", nil).header.Get("X-Request-ID")
		b := ts.do(t, "GET", "/healthz", nil).header.Get("X-Request-ID")
		if !authRequestIDOK(a) || !authRequestIDOK(b) || a == b {
			t.Errorf("GET /healthz twice: X-Request-ID = %q, %q; want two different well-formed ids", a, b)
		}
	})
}

// TestAuthAccessLog checks one access line per request, naming the user, and
// that no password, token or secret reaches the log.
func TestAuthAccessLog(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	const password = "correct-horse-battery"
	const wrongPassword = "wrong-horse-battery"
	r := ts.do(t, "POST", "/signup", map[string]string{"username": "alice", "password": password}, "X-Request-ID", "log-signup")
	if r.status != http.StatusCreated {
		t.Fatalf("POST /signup: status = %d, want 201; body %s", r.status, r.body)
	}
	pid := r.json(t)["public_id"].(string)
	r = ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": password}, "X-Request-ID", "log-login")
	if r.status != http.StatusCreated {
		t.Fatalf("POST /login: status = %d, want 201; body %s", r.status, r.body)
	}
	login := r.json(t)
	tok, refresh := login["token"].(string), login["refresh_token"].(string)
	ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": wrongPassword}, "X-Request-ID", "log-login-failed")
	ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+tok, "X-Request-ID", "log-me")
	ts.do(t, "GET", "/bookapi/books", nil, "x-access-token", tok, "X-Request-ID", "log-books")
	ts.do(t, "GET", "/me", nil, "X-Request-ID", "log-anonymous")
	ts.do(t, "GET", "/me", nil, "Authorization", "Bearer "+tok+"x", "X-Request-ID", "log-bad-token")
	// Close waits for every handler, so every access line has been written.
	ts.Close()
	logs := ts.logs.String()

	tests := []struct {
		id, method, pattern, status, user string
	}{
		{"log-signup", "POST", "POST /signup", "201", pid},
		{"log-login", "POST", "POST /login", "201", pid},
		{"log-login-failed", "POST", "POST /login", "401", ""},
		{"log-me", "GET", "GET /me", "200", pid},
		{"log-books", "GET", "GET /bookapi/books", "200", pid},
		{"log-anonymous", "GET", "GET /me", "401", `""`},
		{"log-bad-token", "GET", "GET /me", "401", `""`},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			var lines []string
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, " request_id="+tt.id+" ") || strings.HasSuffix(line, " request_id="+tt.id) {
					lines = append(lines, line)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("%d log lines with request_id=%s, want 1:\n%s", len(lines), tt.id, logs)
			}
			line := lines[0]
			wants := []string{
				" msg=request ",
				" method=" + tt.method + " ",
				` pattern="` + tt.pattern + `" `,
				" status=" + tt.status + " ",
			}
			if tt.user != "" {
				wants = append(wants, " user="+tt.user)
			}
			for _, w := range wants {
				if !strings.Contains(line+" ", w) {
					t.Errorf("access line for %s %s lacks %q:\n%s", tt.method, tt.pattern, strings.TrimSpace(w), line)
				}
			}
		})
	}
	t.Run("no secrets", func(t *testing.T) {
		t.Parallel()
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		for name, secret := range map[string]string{
			"password":            password,
			"wrong password":      wrongPassword,
			"access token":        tok,
			"access token's MAC":  sig,
			"refresh token":       refresh,
			"signing secret":      testSecret,
			"access token prefix": tok[:len(tok)/2],
		} {
			if strings.Contains(logs, secret) {
				t.Errorf("the log holds the %s:\n%s", name, logs)
			}
		}
	})
}

// TestAuthRouteFallback checks the JSON 404 and 405 answers.
func TestAuthRouteFallback(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tok := ts.newUser(t, "alice")
	tests := []struct {
		method, path string
		status       int
		code         string
		allow        []string // methods the Allow header must list
	}{
		{"GET", "/no/such/path", 404, "not_found", nil},
		{"POST", "/signup/", 404, "not_found", nil},
		{"GET", "/admin", 404, "not_found", nil},
		{"PUT", "/signup", 405, "method_not_allowed", []string{"POST"}},
		{"GET", "/signup", 405, "method_not_allowed", []string{"POST"}},
		{"DELETE", "/login", 405, "method_not_allowed", []string{"POST"}},
		{"POST", "/me", 405, "method_not_allowed", []string{"GET"}},
		{"GET", "/admin/users/" + uuid.NewString(), 405, "method_not_allowed", []string{"DELETE", "PATCH"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			what := tt.method + " " + tt.path
			r := ts.do(t, tt.method, tt.path, nil, bearer(tok)...)
			authWantError(t, what, r, tt.status, tt.code)
			allow := strings.Split(strings.ReplaceAll(r.header.Get("Allow"), " ", ""), ",")
			for _, m := range tt.allow {
				if !slices.Contains(allow, m) {
					t.Errorf("%s: Allow = %q, want it to list %s", what, r.header.Get("Allow"), m)
				}
			}
			if tt.method == "PUT" && tt.path == "/signup" && r.header.Get("Allow") != "POST" {
				t.Errorf("%s: Allow = %q, want %q", what, r.header.Get("Allow"), "POST")
			}
		})
	}
}

// TestAuthCleanPathRedirect checks that net/http's redirect to a cleaned
// path keeps its status and Location but answers in JSON, like everything else.
func TestAuthCleanPathRedirect(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, ts.URL+"//healthz", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s //healthz: %v", method, err)
		}
		var body map[string]string
		derr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/healthz" {
			t.Errorf("%s //healthz: status = %d, Location %q; want 307 to /healthz", method, resp.StatusCode, resp.Header.Get("Location"))
		}
		if ct := resp.Header.Get("Content-Type"); ct != authJSONType || derr != nil || body["location"] != "/healthz" {
			t.Errorf("%s //healthz: Content-Type %q, body %v (err %v); want JSON naming /healthz", method, ct, body, derr)
		}
	}
}

// authWantTokenPair checks a login-shaped 201 answer (login or refresh) and
// returns its access and refresh tokens.
func authWantTokenPair(t *testing.T, what string, r *response) (access, refresh string) {
	t.Helper()
	if r.status != http.StatusCreated {
		t.Fatalf("%s: status = %d, want 201; body %s", what, r.status, r.body)
	}
	authOnlyStringsAndIntegers(t, what, r.body)
	m := r.json(t)
	authWantKeys(t, what, m, "token", "token_type", "expires_in", "refresh_token")
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(900) {
		t.Errorf("%s: token_type, expires_in = %#v, %#v; want \"Bearer\", 900", what, m["token_type"], m["expires_in"])
	}
	access, _ = m["token"].(string)
	refresh, _ = m["refresh_token"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("%s: body %s lacks a token or refresh_token", what, r.body)
	}
	return access, refresh
}

// authWantRoute stops the test when the route answered the JSON 404 of an
// unknown path: every later check would fail for the same reason.
func authWantRoute(t *testing.T, what string, r *response) {
	t.Helper()
	if r.status == http.StatusNotFound && strings.Contains(string(r.body), `"not_found"`) {
		t.Fatalf("%s: the route does not exist (status = 404, body %s)", what, bytes.TrimSpace(r.body))
	}
}

// authWantStatus checks the status of a response to a request that must
// succeed, stopping the test otherwise (a missing route fails here once).
func authWantStatus(t *testing.T, what string, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status = %d, want %d; body %s", what, r.status, status, r.body)
	}
}

// TestLoginThrottlesUsername checks that 5 failures for one username within
// 15 minutes (the documented defaults) shut that username out until they age
// out, correct password or not, and for unknown users alike.
func TestLoginThrottlesUsername(t *testing.T) {
	t.Parallel()
	for _, username := range []string{"alice", "ghost"} {
		t.Run(username, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			ts.signup(t, "alice", "password-of-alice")
			ts.signup(t, "bob", "password-of-bob")
			for i := range 5 {
				r := ts.do(t, "POST", "/login", map[string]string{"username": username, "password": "wrong-password"})
				authWantError(t, "POST /login failure "+strconv.Itoa(i+1), r, http.StatusUnauthorized, "invalid_credentials")
			}
			try := map[string]string{"username": username, "password": "password-of-alice"}
			r := ts.do(t, "POST", "/login", try)
			if authWantError(t, "POST /login after 5 failures", r, http.StatusTooManyRequests, "rate_limited") == nil {
				t.FailNow()
			}
			// Five failures at one instant age out together, 900 s later.
			if got := r.header.Get("Retry-After"); got != "900" {
				t.Errorf("POST /login after 5 failures: Retry-After = %q, want 900", got)
			}
			if n := ts.count(t, "sessions"); n != 0 {
				t.Errorf("sessions = %d after a throttled login, want 0", n)
			}
			// Another username from the same address is not affected.
			ts.login(t, "bob", "password-of-bob")
			// Throttled attempts do not count: the wait ends 15 minutes after
			// the failures, not after the last refused attempt.
			ts.clock.advance(10 * time.Minute)
			r = ts.do(t, "POST", "/login", try)
			authWantError(t, "POST /login 10 minutes after 5 failures", r, http.StatusTooManyRequests, "rate_limited")
			ts.clock.advance(5*time.Minute + time.Second)
			r = ts.do(t, "POST", "/login", try)
			if username == "alice" {
				authWantTokenPair(t, "POST /login once the failures aged out", r)
			} else {
				authWantError(t, "POST /login once the failures aged out", r, http.StatusUnauthorized, "invalid_credentials")
			}
		})
	}
}

// TestLoginThrottlesAddress checks that 50 failures from one client address
// within 15 minutes (the documented default) shut that address out, counting
// logins that sent no credentials.
func TestLoginThrottlesAddress(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	for i := range 45 {
		name := "ghost" + strconv.Itoa(i)
		r := ts.do(t, "POST", "/login", map[string]string{"username": name, "password": "wrong-password"})
		authWantError(t, "POST /login "+name, r, http.StatusUnauthorized, "invalid_credentials")
	}
	for range 5 {
		r := ts.do(t, "POST", "/login", `{}`)
		authWantError(t, "POST /login {}", r, http.StatusUnauthorized, "invalid_credentials")
	}
	r := ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"})
	if authWantError(t, "POST /login after 50 failures from one address", r, http.StatusTooManyRequests, "rate_limited") == nil {
		t.FailNow()
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("POST /login after 50 failures: no Retry-After header")
	}
	ts.clock.advance(15*time.Minute + time.Second)
	authWantTokenPair(t, "POST /login once the failures aged out", ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"}))
}

// TestRefresh checks refresh-token rotation, and that reusing a spent refresh
// token ends its session but not the user's other sessions.
func TestRefresh(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	access1, refresh1 := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"}))
	other, otherRefresh := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"}))

	r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh1})
	authWantRoute(t, "POST /refresh", r)
	access2, refresh2 := authWantTokenPair(t, "POST /refresh", r)
	if refresh2 == refresh1 || access2 == access1 {
		t.Errorf("POST /refresh returned the same tokens again")
	}
	authMe(t, ts, access2)

	invalid := map[string]any{"message": "Invalid refresh token!", "error": "invalid_token"}
	// refresh1 is spent: presenting it again ends the whole session.
	r = ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh1})
	authWantBody(t, "POST /refresh with a spent token", r, http.StatusUnauthorized, invalid)
	for what, tok := range map[string]string{"first access token": access1, "refreshed access token": access2} {
		r := ts.do(t, "GET", "/me", nil, bearer(tok)...)
		authWantError(t, "GET /me with the reused session's "+what, r, http.StatusUnauthorized, "invalid_token")
	}
	r = ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh2})
	authWantBody(t, "POST /refresh with the reused session's newest token", r, http.StatusUnauthorized, invalid)

	// The other login is untouched.
	authMe(t, ts, other)
	authWantTokenPair(t, "POST /refresh other session", ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": otherRefresh}))

	for name, body := range map[string]any{
		"unknown token": map[string]string{"refresh_token": "bm90LWEtcmVhbC1yZWZyZXNoLXRva2VuLWF0LWFsbC0xMjM0"},
		"empty token":   map[string]string{"refresh_token": ""},
	} {
		r := ts.do(t, "POST", "/refresh", body)
		authWantBody(t, "POST /refresh "+name, r, http.StatusUnauthorized, invalid)
	}
	r = ts.do(t, "POST", "/refresh", `{}`)
	authWantError(t, "POST /refresh {}", r, http.StatusBadRequest, "invalid_request")

	// A refresh token dies after 30 days.
	_, late := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "password-of-alice"}))
	ts.clock.advance(720*time.Hour + time.Second)
	r = ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": late})
	authWantBody(t, "POST /refresh after 30 days", r, http.StatusUnauthorized, invalid)
}

// TestLogout checks that logout ends only the presented session.
func TestLogout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	creds := map[string]string{"username": "alice", "password": "password-of-alice"}
	access, refresh := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", creds))
	other, otherRefresh := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", creds))

	r := ts.do(t, "POST", "/logout", map[string]string{"refresh_token": otherRefresh}, bearer(access)...)
	authWantRoute(t, "POST /logout", r)
	authWantError(t, "POST /logout with another session's refresh token", r, http.StatusBadRequest, "invalid_request")
	authMe(t, ts, access)

	r = ts.do(t, "POST", "/logout", map[string]string{"refresh_token": refresh}, bearer(access)...)
	authWantStatus(t, "POST /logout", r, http.StatusOK)
	authWantBody(t, "POST /logout", r, http.StatusOK, map[string]any{"message": "logged out"})
	r = ts.do(t, "GET", "/me", nil, bearer(access)...)
	authWantError(t, "GET /me after logout", r, http.StatusUnauthorized, "invalid_token")
	r = ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": refresh})
	authWantError(t, "POST /refresh after logout", r, http.StatusUnauthorized, "invalid_token")
	authMe(t, ts, other)

	// Without a body, logout ends the access token's session all the same.
	authWantStatus(t, "POST /logout without a body", ts.do(t, "POST", "/logout", nil, bearer(other)...), http.StatusOK)
	r = ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": otherRefresh})
	authWantError(t, "POST /refresh after logout without a body", r, http.StatusUnauthorized, "invalid_token")
	r = ts.do(t, "POST", "/logout", nil)
	authWantError(t, "POST /logout without a token", r, http.StatusUnauthorized, "token_missing")
}

// TestLogoutAll checks that logout/all ends every session of the user only.
func TestLogoutAll(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	bob := ts.newUser(t, "bob")
	creds := map[string]string{"username": "alice", "password": "password-of-alice"}
	a1, r1 := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", creds))
	a2, r2 := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", creds))

	r := ts.do(t, "POST", "/logout/all", nil, bearer(a1)...)
	authWantRoute(t, "POST /logout/all", r)
	authWantStatus(t, "POST /logout/all", r, http.StatusOK)
	authWantBody(t, "POST /logout/all", r, http.StatusOK, map[string]any{"message": "logged out everywhere"})
	for _, tok := range []string{a1, a2} {
		authWantError(t, "GET /me after logout/all", ts.do(t, "GET", "/me", nil, bearer(tok)...), http.StatusUnauthorized, "invalid_token")
	}
	for _, tok := range []string{r1, r2} {
		r := ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": tok})
		authWantError(t, "POST /refresh after logout/all", r, http.StatusUnauthorized, "invalid_token")
	}
	authMe(t, ts, bob)
	ts.login(t, "alice", "password-of-alice")
}

// TestChangePassword checks POST /me/password: a wrong old password keeps the
// token, a weak new one is refused, and a change revokes every token.
func TestChangePassword(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	creds := map[string]string{"username": "alice", "password": "password-of-alice"}
	a1, r1 := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", creds))
	a2, _ := authWantTokenPair(t, "POST /login", ts.do(t, "POST", "/login", creds))

	r := ts.do(t, "POST", "/me/password", map[string]string{"old_password": "not-the-password", "new_password": "new-password-1"}, bearer(a1)...)
	authWantRoute(t, "POST /me/password", r)
	authWantError(t, "POST /me/password with a wrong old password", r, http.StatusForbidden, "invalid_credentials")
	authMe(t, ts, a1)
	for name, pw := range map[string]string{"7 bytes": authPassword(7), "73 bytes": authPassword(73), "empty": ""} {
		r := ts.do(t, "POST", "/me/password", map[string]string{"old_password": "password-of-alice", "new_password": pw}, bearer(a1)...)
		authWantError(t, "POST /me/password new password "+name, r, http.StatusBadRequest, "invalid_request")
	}
	r = ts.do(t, "POST", "/me/password", `{"old_password":"password-of-alice","new_password":"new-password-1","admin":true}`, bearer(a1)...)
	authWantError(t, "POST /me/password with an admin member", r, http.StatusBadRequest, "invalid_request")
	authMe(t, ts, a1)

	r = ts.do(t, "POST", "/me/password", map[string]string{"old_password": "password-of-alice", "new_password": "new-password-1"}, bearer(a1)...)
	authWantStatus(t, "POST /me/password", r, http.StatusOK)
	authWantBody(t, "POST /me/password", r, http.StatusOK, map[string]any{"message": "password changed"})
	for _, tok := range []string{a1, a2} {
		authWantError(t, "GET /me after a password change", ts.do(t, "GET", "/me", nil, bearer(tok)...), http.StatusUnauthorized, "invalid_token")
	}
	authWantError(t, "POST /refresh after a password change", ts.do(t, "POST", "/refresh", map[string]string{"refresh_token": r1}), http.StatusUnauthorized, "invalid_token")
	authWantError(t, "POST /login with the old password", ts.do(t, "POST", "/login", creds), http.StatusUnauthorized, "invalid_credentials")
	ts.login(t, "alice", "new-password-1")
}

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
	if err := ts.s.db.r.QueryRow(`SELECT COUNT(*) FROM refresh_tokens WHERE hash = ?`, sum[:]).Scan(&stored); err != nil {
		t.Fatalf("count refresh_tokens by the token's hash: %v", err)
	}
	if stored != 1 {
		t.Errorf("refresh_tokens rows with the token's hash = %d, want 1", stored)
	}
	var plain int
	if err := ts.s.db.r.QueryRow(`SELECT COUNT(*) FROM refresh_tokens WHERE hash = ? OR CAST(hash AS TEXT) = ?`, refresh, refresh).Scan(&plain); err != nil {
		t.Fatalf("count refresh_tokens holding the token itself: %v", err)
	}
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
		{"empty", map[string]string{"refresh_token": ""}, 401, "invalid_token"},
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
			if err := ts.s.db.r.QueryRow(`SELECT address FROM login_failures LIMIT 1`).Scan(&addr); err != nil {
				t.Fatalf("read a login failure's address: %v", err)
			}
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
	cfg := testConfig(t)
	cfg.hashSlots = 2
	ts := newTestServerWith(t, cfg)
	if n := cap(ts.s.slots); n != cfg.hashSlots {
		t.Fatalf("bcrypt slots = %d with -bcrypt-slots %d", n, cfg.hashSlots)
	}
	ts.signup(t, "alice", "password-of-alice")
	tok := ts.login(t, "alice", "password-of-alice")["token"].(string)
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
	// Authenticated reads never wait for bcrypt: alice's session still works.
	if got := meStatus(t, ts, tok); got != http.StatusOK {
		t.Errorf("GET /me with a live session while bcrypt is saturated: status = %d, want 200", got)
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
	st, err := openStore(context.Background(), cfg.db, defaultMaxConns(cfg.db), discardLog())
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

	const samples = 2000
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
		// The flood is under way once this iteration's clients have logged
		// in 4 times; logins counts every iteration's.
		for started := logins.Load(); logins.Load() < started+4; {
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
	st, err := openStore(context.Background(), cfg.db, defaultMaxConns(cfg.db), discardLog())
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

// burst sends the n requests that req describes at one instant: n goroutines
// wait on one channel and are released together. It returns the responses in
// order, failing t if any request could not be made.
func burst(t *testing.T, n int, req func(i int) (*response, error)) []*response {
	t.Helper()
	out := make([]*response, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			out[i], errs[i] = req(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d of the burst: %v", i, err)
		}
	}
	return out
}

// statusCounts tallies the statuses of rs, and fails t for any 429 without
// a Retry-After of at least one second.
func statusCounts(t *testing.T, what string, rs []*response) map[int]int {
	t.Helper()
	n := map[int]int{}
	for _, r := range rs {
		n[r.status]++
		if r.status == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("%s: 429 with Retry-After %q, want a number of seconds", what, r.header.Get("Retry-After"))
			}
		}
	}
	return n
}

// hashWatch records the bcrypt cost of every hash a server compares a
// password against.
type hashWatch struct {
	mu    sync.Mutex
	costs []int
}

// watchHashes makes the servers report their bcrypt comparisons to the
// returned watch. Call it before they answer any request.
func watchHashes(servers ...*testServer) *hashWatch {
	hw := &hashWatch{}
	for _, ts := range servers {
		compare := ts.s.compareHash
		ts.s.compareHash = func(hash, pw []byte) error {
			cost, _ := bcrypt.Cost(hash)
			hw.mu.Lock()
			hw.costs = append(hw.costs, cost)
			hw.mu.Unlock()
			return compare(hash, pw)
		}
	}
	return hw
}

// compared returns the costs compared so far, in order.
func (hw *hashWatch) compared() []int {
	hw.mu.Lock()
	defer hw.mu.Unlock()
	return slices.Clone(hw.costs)
}

// throttleServers starts n servers on one database with the given limits;
// with n = 2 they act as two instances sharing it.
func throttleServers(t *testing.T, n, maxUser, maxAddr int) []*testServer {
	t.Helper()
	cfg := testConfig(t)
	cfg.loginMaxFailures, cfg.loginMaxAddressFailures = maxUser, maxAddr
	var out []*testServer
	for range n {
		out = append(out, newTestServerWith(t, cfg))
	}
	return out
}

// TestLoginThrottleHoldsUnderBurst sends bursts of attempts released at one
// instant, against one server and against two sharing the database, and
// checks that no more passwords are checked than the limits allow: the rest
// are answered 429 and cost no bcrypt work.
func TestLoginThrottleHoldsUnderBurst(t *testing.T) {
	t.Parallel()
	for _, servers := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d servers", servers), func(t *testing.T) {
			t.Parallel()
			t.Run("username", func(t *testing.T) {
				t.Parallel()
				ts := throttleServers(t, servers, 5, 1000)
				ts[0].signup(t, "alice", "password-of-alice")
				hw := watchHashes(ts...)
				rs := burst(t, 30, func(i int) (*response, error) {
					s := ts[i%len(ts)]
					return exchange(s.Client(), s.URL, "POST", "/login", map[string]string{"username": "alice", "password": "wrong-password"})
				})
				n := statusCounts(t, "30 wrong passwords at once", rs)
				if n[401] != 5 || n[429] != 25 {
					t.Errorf("30 wrong passwords at once, limit 5: statuses %v, want 5 x 401 and 25 x 429", n)
				}
				if n := len(hw.compared()); n != 5 {
					t.Errorf("30 wrong passwords at once, limit 5: %d bcrypt comparisons, want 5", n)
				}
				if r := loginAs(t, ts[len(ts)-1], "alice", "password-of-alice"); r.status != http.StatusTooManyRequests {
					t.Errorf("right password after the burst: status = %d, want 429", r.status)
				}
			})
			t.Run("address", func(t *testing.T) {
				t.Parallel()
				ts := throttleServers(t, servers, 5, 10)
				rs := burst(t, 30, func(i int) (*response, error) {
					s := ts[i%len(ts)]
					return exchange(s.Client(), s.URL, "POST", "/login", map[string]string{"username": fmt.Sprintf("ghost%d", i), "password": "wrong-password"})
				})
				if n := statusCounts(t, "30 unknown users at once", rs); n[401] != 10 || n[429] != 20 {
					t.Errorf("30 unknown users from one address at once, limit 10: statuses %v, want 10 x 401 and 20 x 429", n)
				}
			})
			t.Run("no credentials", func(t *testing.T) {
				t.Parallel()
				ts := throttleServers(t, servers, 5, 10)
				rs := burst(t, 30, func(i int) (*response, error) {
					s := ts[i%len(ts)]
					return exchange(s.Client(), s.URL, "POST", "/login", `{}`)
				})
				if n := statusCounts(t, "30 empty logins at once", rs); n[401] != 10 || n[429] != 20 {
					t.Errorf("30 logins without credentials at once, limit 10: statuses %v, want 10 x 401 and 20 x 429", n)
				}
			})
			t.Run("right password within the limit", func(t *testing.T) {
				t.Parallel()
				ts := throttleServers(t, servers, 5, 1000)
				ts[0].signup(t, "alice", "password-of-alice")
				rs := burst(t, 5, func(i int) (*response, error) {
					s := ts[i%len(ts)]
					pw := "wrong-password"
					if i == 4 {
						pw = "password-of-alice"
					}
					return exchange(s.Client(), s.URL, "POST", "/login", map[string]string{"username": "alice", "password": pw})
				})
				for i, r := range rs {
					want := http.StatusUnauthorized
					if i == 4 {
						want = http.StatusCreated
					}
					if r.status != want {
						t.Errorf("attempt %d of 4 wrong and 1 right at once, limit 5: status = %d, want %d", i, r.status, want)
					}
				}
			})
			t.Run("password change", func(t *testing.T) {
				t.Parallel()
				ts := throttleServers(t, servers, 5, 1000)
				ts[0].signup(t, "alice", "password-of-alice")
				token := ts[0].login(t, "alice", "password-of-alice")["token"].(string)
				hw := watchHashes(ts...)
				rs := burst(t, 20, func(i int) (*response, error) {
					s := ts[i%len(ts)]
					return exchange(s.Client(), s.URL, "POST", "/me/password",
						map[string]string{"old_password": "wrong-password", "new_password": "new-password-1"}, bearer(token)...)
				})
				if n := statusCounts(t, "20 wrong old passwords at once", rs); n[403] != 5 || n[429] != 15 {
					t.Errorf("20 wrong old passwords at once, limit 5: statuses %v, want 5 x 403 and 15 x 429", n)
				}
				if n := len(hw.compared()); n != 5 {
					t.Errorf("20 wrong old passwords at once, limit 5: %d bcrypt comparisons, want 5", n)
				}
				// They count against the username: a login must wait too.
				if r := loginAs(t, ts[0], "alice", "password-of-alice"); r.status != http.StatusTooManyRequests {
					t.Errorf("login after 5 wrong old passwords: status = %d, want 429", r.status)
				}
			})
		})
	}
}

// TestLoginAttemptNotCheckedDoesNotCount checks that an attempt refused
// before its password was compared (every bcrypt slot busy) leaves no
// failure behind, and that a right password leaves none either.
func TestLoginAttemptNotCheckedDoesNotCount(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	ts.s.slotWait = 10 * time.Millisecond
	for range cap(ts.s.slots) {
		ts.s.slots <- struct{}{}
	}
	r := loginAs(t, ts, "alice", "wrong-password")
	authWantError(t, "POST /login with every bcrypt slot busy", r, http.StatusServiceUnavailable, "unavailable")
	for range cap(ts.s.slots) {
		<-ts.s.slots
	}
	if n := ts.count(t, "login_failures"); n != 0 {
		t.Errorf("login_failures = %d after an attempt that was never checked, want 0", n)
	}
	ts.login(t, "alice", "password-of-alice")
	if n := ts.count(t, "login_failures"); n != 0 {
		t.Errorf("login_failures = %d after a right password, want 0", n)
	}
}

// TestLoginWorkHidesCheapHashes checks that a wrong password costs at least
// one comparison at the configured cost, also for a user whose stored hash
// is cheaper, as for an unknown user: otherwise the quicker answer would
// tell that the user exists.
func TestLoginWorkHidesCheapHashes(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.bcryptCost = bcrypt.MinCost + 1
	ts := newTestServerWith(t, cfg)
	hash, err := bcrypt.GenerateFromPassword([]byte("password-of-carol"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.s.db.createUser(context.Background(), uuid.NewString(), "carol", string(hash), false, testStart); err != nil {
		t.Fatalf("createUser: %v", err)
	}
	ts.signup(t, "dave", "password-of-dave") // hashed at the configured cost
	hw := watchHashes(ts)
	for _, tc := range []struct {
		username, password string
		status             int
	}{
		{"carol", "wrong-password", http.StatusUnauthorized},                              // cheap hash, wrong password
		{"ghost", "wrong-password", http.StatusUnauthorized},                              // unknown user
		{"dave", "wrong-password", http.StatusUnauthorized},                               // hash at the configured cost
		{"carol", "password-of-carol" + strings.Repeat("x", 60), http.StatusUnauthorized}, // over 72 bytes
		{"carol", "password-of-carol", http.StatusCreated},
	} {
		before := len(hw.compared())
		r := loginAs(t, ts, tc.username, tc.password)
		if r.status != tc.status {
			t.Fatalf("POST /login %s: status = %d, want %d", tc.username, r.status, tc.status)
		}
		costs := hw.compared()[before:]
		if tc.status == http.StatusUnauthorized && slices.Max(costs) < cfg.bcryptCost {
			t.Errorf("POST /login %s with a wrong password compared costs %v, want one at %d at least", tc.username, costs, cfg.bcryptCost)
		}
		if tc.status == http.StatusCreated && !slices.Equal(costs, []int{bcrypt.MinCost}) {
			t.Errorf("POST /login %s with the right password compared costs %v, want [%d]", tc.username, costs, bcrypt.MinCost)
		}
	}
}

// TestLoginHugeUsername checks that a username longer than any account may
// have is answered as an unknown user is, and is not stored.
func TestLoginHugeUsername(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	huge := strings.Repeat("a", 500<<10)
	unknown := loginAs(t, ts, "ghost", "wrong-password")
	pages := func() int {
		t.Helper()
		if onPostgres() {
			return 0
		}
		var n int
		if err := ts.s.db.r.QueryRow("PRAGMA page_count").Scan(&n); err != nil {
			t.Fatalf("page_count: %v", err)
		}
		return n
	}
	before := pages()
	for i := range 3 {
		r := loginAs(t, ts, huge, "wrong-password")
		if r.status != unknown.status || !bytes.Equal(r.body, unknown.body) || r.header.Get("WWW-Authenticate") != unknown.header.Get("WWW-Authenticate") {
			t.Errorf("login %d with a 500 kB username: %d %s, want what an unknown user gets: %d %s", i, r.status, r.body, unknown.status, unknown.body)
		}
	}
	var longest int
	if err := ts.s.db.r.QueryRow("SELECT MAX(LENGTH(username_key)) FROM login_failures").Scan(&longest); err != nil {
		t.Fatalf("read login_failures: %v", err)
	}
	if longest > 100 {
		t.Errorf("login_failures holds a username key of %d characters, want at most 100", longest)
	}
	if grown := pages() - before; grown > 2 {
		t.Errorf("the database grew by %d pages after three logins with a 500 kB username, want at most 2", grown)
	}
	// The same huge name is still one username to the throttle.
	for range 2 {
		loginAs(t, ts, huge, "wrong-password")
	}
	if r := loginAs(t, ts, huge, "wrong-password"); r.status != http.StatusTooManyRequests {
		t.Errorf("sixth login with the same 500 kB username: status = %d, want 429", r.status)
	}
}

// TestClientAddr checks how the address failures are counted under is read:
// from the connection, or behind a trusted proxy from the last
// X-Forwarded-For entry, tolerating ports and brackets, folding IPv4-mapped
// addresses and IPv6 /64s.
func TestClientAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, remote, xff string
		trust             bool
		want              string
	}{
		{"ipv4 connection", "192.0.2.1:5000", "", false, "192.0.2.1"},
		{"ipv6 connection", "[2001:db8:1:2:3:4:5:6]:5000", "", false, "2001:db8:1:2::/64"},
		{"ipv4-mapped connection", "[::ffff:192.0.2.1]:5000", "", false, "192.0.2.1"},
		{"forwarded ignored untrusted", "192.0.2.1:5000", "203.0.113.7", false, "192.0.2.1"},
		{"forwarded ipv4", "192.0.2.1:5000", "198.51.100.1, 203.0.113.7", true, "203.0.113.7"},
		{"forwarded ipv4 with port", "192.0.2.1:5000", "203.0.113.7:5555", true, "203.0.113.7"},
		{"forwarded ipv6 with port", "192.0.2.1:5000", "[2001:db8::1]:443", true, "2001:db8::/64"},
		{"forwarded ipv6 bracketed", "192.0.2.1:5000", "[2001:db8::1]", true, "2001:db8::/64"},
		{"forwarded ipv6 same /64", "192.0.2.1:5000", "2001:db8::ffff:1", true, "2001:db8::/64"},
		{"forwarded ipv4-mapped", "192.0.2.1:5000", "::ffff:203.0.113.7", true, "203.0.113.7"},
		{"forwarded ipv6 zone", "192.0.2.1:5000", "fe80::1%eth0", true, "fe80::/64"},
	} {
		s := &server{cfg: config{trustProxy: tc.trust}}
		r := httptest.NewRequest("POST", "/login", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.clientAddr(r); got != tc.want {
			t.Errorf("%s: clientAddr(remote %s, X-Forwarded-For %q) = %q, want %q", tc.name, tc.remote, tc.xff, got, tc.want)
		}
	}
}

// TestLoginThrottleJunkForwardedFor checks that X-Forwarded-For entries that
// are not addresses are never charged to the proxy's own address, which
// would lock out every client behind it.
func TestLoginThrottleJunkForwardedFor(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.trustProxy = true
	cfg.loginMaxAddressFailures = 3
	ts := newTestServerWith(t, cfg)
	ts.signup(t, "alice", "password-of-alice")
	for _, junk := range []string{"junk", "unknown", "not an address"} {
		loginAs(t, ts, "ghost", "wrong-password", "X-Forwarded-For", junk)
	}
	for _, xff := range []string{"", "203.0.113.7:5555", "[2001:db8::1]:443"} {
		r := loginAs(t, ts, "alice", "password-of-alice", "X-Forwarded-For", xff)
		if r.status != http.StatusCreated {
			t.Errorf("login with X-Forwarded-For %q after three junk entries: status = %d, want 201", xff, r.status)
		}
	}
	// The same junk again is one client to the throttle.
	if r := loginAs(t, ts, "ghost", "wrong-password", "X-Forwarded-For", "junk, junk"); r.status != http.StatusUnauthorized {
		t.Errorf("fourth failure from junk: status = %d, want 401 (each junk entry its own client)", r.status)
	}
}

// TestClientGoneIsNotAServerError cancels a login while it waits for a bcrypt
// slot and checks that the server logs a 499 client close, no error, counts
// no 5xx, and keeps no failure for the attempt it never checked.
func TestClientGoneIsNotAServerError(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.signup(t, "alice", "password-of-alice")
	ts.s.slotWait = time.Minute
	for range cap(ts.s.slots) {
		ts.s.slots <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", ts.URL+"/login", strings.NewReader(`{"username":"alice","password":"wrong-password"}`))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := ts.Client().Do(req)
		errc <- err
	}()
	pollUntil(t, 10*time.Second, "the login waiting for a bcrypt slot", func() bool { return ts.s.metrics.bcryptWaits.Value() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled login: err = %v, want context.Canceled", err)
	}
	pollUntil(t, 10*time.Second, "the access line of the cancelled login", func() bool { return strings.Contains(ts.logs.String(), "status=499") })
	for range cap(ts.s.slots) {
		<-ts.s.slots
	}
	if logs := ts.logs.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "level=WARN") {
		t.Errorf("a client that went away was logged as a server problem:\n%s", logs)
	}
	if n := ts.s.metrics.internalErrors.Value() + ts.s.metrics.dbUnavailable.Value(); n != 0 {
		t.Errorf("server errors counted = %d, want 0", n)
	}
	if n := ts.count(t, "login_failures"); n != 0 {
		t.Errorf("login_failures = %d after a login cancelled before its check, want 0", n)
	}
}
