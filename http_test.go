package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestServeErrorBody checks that every error answer is the one object
// {"message", "error"}, whatever its text holds, with a right Content-Length.
func TestServeErrorBody(t *testing.T) {
	t.Parallel()
	s := newTestServer(t).s
	for _, ae := range []*apiError{
		errInvalidToken, errBookExists, errMethodNotAllowed,
		badRequest("Member %q must be a string.", "<tïtle>\"&\\"),
		badJSON("The body is not valid JSON: %s.", "invalid character '\\x00' \u2028"),
	} {
		w := httptest.NewRecorder()
		s.serveError(w, httptest.NewRequest("GET", "/", nil), ae)
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("serveError(%s): body %s: %v", ae.code, w.Body, err)
		}
		want := map[string]any{"message": ae.msg, "error": ae.code}
		if w.Code != ae.status || !maps.Equal(got, want) {
			t.Errorf("serveError(%s): %d %v, want %d %v", ae.code, w.Code, got, ae.status, want)
		}
		if got := w.Header().Get("Content-Length"); got != strconv.Itoa(w.Body.Len()) {
			t.Errorf("serveError(%s): Content-Length %s for a body of %d bytes", ae.code, got, w.Body.Len())
		}
	}
}

// corsServer starts a test server allowing the given origins.
func corsServer(t *testing.T, origins ...string) *testServer {
	t.Helper()
	cfg := testConfig(t)
	cfg.corsOrigins = origins
	return newTestServerWith(t, cfg)
}

func TestCORS(t *testing.T) {
	t.Parallel()
	const app, evil = "https://app.example.com", "https://evil.example"
	off := newTestServer(t)
	list := corsServer(t, app, "http://localhost:3000")
	star := corsServer(t, "*")

	for _, tc := range []struct {
		name      string
		ts        *testServer
		method    string
		origin    string
		preflight bool
		status    int
		allow     string // Access-Control-Allow-Origin, "" for none
	}{
		{"off by default", off, "GET", app, false, 200, ""},
		{"off by default, preflight", off, "OPTIONS", app, true, 405, ""},
		{"listed origin", list, "GET", app, false, 200, app},
		{"second listed origin", list, "GET", "http://localhost:3000", false, 200, "http://localhost:3000"},
		{"unlisted origin", list, "GET", evil, false, 200, ""},
		{"origin differing in case", list, "GET", "https://APP.example.com", false, 200, ""},
		{"no origin", list, "GET", "", false, 200, ""},
		{"listed origin, preflight", list, "OPTIONS", app, true, 204, app},
		{"unlisted origin, preflight", list, "OPTIONS", evil, true, 405, ""},
		{"any origin", star, "GET", evil, false, 200, "*"},
		{"any origin, preflight", star, "OPTIONS", evil, true, 204, "*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			headers := []string{}
			if tc.origin != "" {
				headers = append(headers, "Origin", tc.origin)
			}
			if tc.preflight {
				headers = append(headers, "Access-Control-Request-Method", "POST",
					"Access-Control-Request-Headers", "authorization, content-type")
			}
			path := "/healthz"
			if tc.preflight {
				path = "/bookapi/books"
			}
			r := tc.ts.do(t, tc.method, path, nil, headers...)
			what := tc.method + " " + path + " from " + tc.origin
			if r.status != tc.status {
				t.Errorf("%s: status = %d, want %d", what, r.status, tc.status)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tc.allow {
				t.Errorf("%s: Access-Control-Allow-Origin = %q, want %q", what, got, tc.allow)
			}
			if got := r.header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("%s: Access-Control-Allow-Credentials = %q, want none", what, got)
			}
			if tc.ts != off && !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
				t.Errorf("%s: Vary = %q, want Origin", what, r.header.Values("Vary"))
			}
			if tc.allow == "" {
				for name := range r.header {
					if strings.HasPrefix(name, "Access-Control-") {
						t.Errorf("%s: %s set for a refused origin", what, name)
					}
				}
			}
			if tc.preflight && tc.status == 204 {
				methods := r.header.Get("Access-Control-Allow-Methods")
				for _, m := range []string{"GET", "POST", "PATCH", "DELETE"} {
					if !strings.Contains(methods, m) {
						t.Errorf("%s: Access-Control-Allow-Methods = %q, want %s", what, methods, m)
					}
				}
				allowed := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
				for _, h := range []string{"x-access-token", "authorization", "content-type"} {
					if !strings.Contains(allowed, h) {
						t.Errorf("%s: Access-Control-Allow-Headers = %q, want %s", what, allowed, h)
					}
				}
				if len(r.body) != 0 {
					t.Errorf("%s: 204 with a body %q", what, r.body)
				}
			}
			if !tc.preflight && tc.allow != "" && !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Link") {
				t.Errorf("%s: Access-Control-Expose-Headers = %q, want Link among them", what, r.header.Get("Access-Control-Expose-Headers"))
			}
		})
	}
}

// TestCORSOriginsConfig checks -cors-origins parsing: origins and * pass,
// anything else is refused naming the flag.
func TestCORSOriginsConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"", true},
		{"*", true},
		{"https://app.example.com", true},
		{"https://app.example.com, http://localhost:3000", true},
		{"https://app.example.com/", false},
		{"https://app.example.com/path", false},
		{"app.example.com", false},
		{"ftp://app.example.com", false},
		{"https://user@app.example.com", false},
	} {
		_, err := parseServe([]string{"-cors-origins", tc.value}, func(string) string { return "" }, &bytes.Buffer{})
		if tc.ok && err != nil {
			t.Errorf("parseServe(-cors-origins %q): %v, want ok", tc.value, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "-cors-origins")) {
			t.Errorf("parseServe(-cors-origins %q): err = %v, want one naming -cors-origins", tc.value, err)
		}
	}
}

// hostileBodies are request bodies of nearly 1 MiB that cost a careless
// decoder very differently: one long string, and very many small members,
// unknown or nested in a known one.
func hostileBodies() map[string][]byte {
	const size = 1<<20 - 64
	long := []byte(`{"username":"` + strings.Repeat("a", size-len(`{"username":""}`)) + `"}`)
	many := []byte("{")
	for i := 0; len(many) < size-16; i++ {
		if i > 0 {
			many = append(many, ',')
		}
		many = strconv.AppendQuote(append(many, ""...), "m"+strconv.Itoa(i))
		many = append(many, ":0"...)
	}
	many = append(many, '}')
	nested := []byte(`{"username":[`)
	for len(nested) < size-16 {
		nested = append(nested, "0,"...)
	}
	nested = append(nested, "0]}"...)
	nestedObj := []byte(`{"username":{`)
	for i := 0; len(nestedObj) < size-16; i++ {
		if i > 0 {
			nestedObj = append(nestedObj, ',')
		}
		nestedObj = strconv.AppendQuote(nestedObj, "m"+strconv.Itoa(i))
		nestedObj = append(nestedObj, ":0"...)
	}
	nestedObj = append(nestedObj, '}', '}')
	return map[string][]byte{"long-string": long, "many-members": many, "nested-array": nested, "nested-members": nestedObj}
}

// BenchmarkDecodeHostile compares refusing each hostile body: the many-member
// ones should cost about what the long string costs.
func BenchmarkDecodeHostile(b *testing.B) {
	for _, name := range []string{"long-string", "many-members", "nested-array", "nested-members"} {
		body := hostileBodies()[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var c credentials
				if err := parseObject(body, &c); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// TestHostileBodiesRefused sends each hostile body to POST /signup: every
// one is refused as invalid_request, and nothing is stored.
func TestHostileBodiesRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for name, body := range hostileBodies() {
		r := ts.do(t, "POST", "/signup", body)
		if r.status != 400 || !strings.Contains(string(r.body), `"error":"invalid_request"`) {
			t.Errorf("POST /signup %s: %d %s, want 400 invalid_request", name, r.status, r.body)
		}
	}
	if n := ts.count(t, "users"); n != 0 {
		t.Errorf("users = %d after hostile signups, want 0", n)
	}
}
