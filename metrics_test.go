package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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
// pprof and /metrics answer there, and that none is served on the API's
// listener.
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
	if r := sendRequest(t, rs.client, "http://"+debug, "GET", "/metrics", nil); r.status != http.StatusOK || r.header.Get("Content-Type") != promContentType {
		t.Errorf("GET /metrics on the debug listener: status = %d, Content-Type %q; want 200 %q", r.status, r.header.Get("Content-Type"), promContentType)
	}
	for _, path := range []string{"/debug/vars", "/debug/pprof/", "/metrics"} {
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

// TestDebugListenerMasksPasswords serves the debug routes of a server whose
// command line holds PostgreSQL passwords: /debug/vars and pprof's cmdline
// show that command line with the passwords masked.
func TestDebugListenerMasksPasswords(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.cmdline = []string{"bookapi", "-db", "postgres://bookapi:sekrit-1@db.example/bookapi?password=sekrit-2", "-db=postgresql://db.example/x?sslpassword=sekrit-3"}
	ts := newTestServerWith(t, cfg)
	debug := httptest.NewServer(ts.s.debugRoutes())
	defer debug.Close()
	want := []string{"bookapi", "-db", "postgres://bookapi:xxxxx@db.example/bookapi?password=xxxxx", "-db=postgresql://db.example/x?sslpassword=xxxxx"}

	vars := get(t, debug.Client(), debug.URL+"/debug/vars")
	var all struct {
		Cmdline  []string
		Memstats map[string]any
		Bookapi  map[string]any
	}
	if err := json.Unmarshal(vars, &all); err != nil {
		t.Fatalf("GET /debug/vars: %v; body %s", err, vars)
	}
	if !slices.Equal(all.Cmdline, want) {
		t.Errorf("GET /debug/vars: cmdline = %q, want %q", all.Cmdline, want)
	}
	if all.Memstats == nil || all.Bookapi == nil {
		t.Errorf("GET /debug/vars: memstats %v, bookapi %v; want both", all.Memstats != nil, all.Bookapi != nil)
	}
	cmdline := get(t, debug.Client(), debug.URL+"/debug/pprof/cmdline")
	if string(cmdline) != strings.Join(want, "\x00") {
		t.Errorf("GET /debug/pprof/cmdline = %q, want %q", cmdline, strings.Join(want, "\x00"))
	}
	if strings.Contains(string(vars)+string(cmdline), "sekrit") {
		t.Errorf("the debug listener shows a password:\n%s\n%s", vars, cmdline)
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

// promSample is one sample line of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// promFamily is a metric family read from the Prometheus text format.
type promFamily struct {
	typ, help string
	samples   []promSample
}

// promNameRE and promLabelRE are the format's metric and label names.
var (
	promNameRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	promLabelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition reads text in the Prometheus text exposition format
// (version 0.0.4) line by line and reports every rule it breaks: each sample
// belongs to a family whose HELP and TYPE came before it, a family's samples
// are not split by another family's, names and label names are well formed,
// no series appears twice, counters end in _total and never go negative,
// and each histogram's buckets rise in le, are cumulative and end in +Inf
// equal to its _count, beside a _sum.
func parseExposition(t testing.TB, text string) map[string]*promFamily {
	t.Helper()
	families := map[string]*promFamily{}
	var current string // the family the last line belonged to
	seen := map[string]bool{}
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("exposition does not end in a newline")
	}
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n++
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kind, rest, _ := strings.Cut(rest, " ")
			name, text, _ := strings.Cut(rest, " ")
			if kind != "HELP" && kind != "TYPE" {
				continue // a comment
			}
			if !promNameRE.MatchString(name) {
				t.Errorf("line %d: %s of bad metric name %q", n, kind, name)
			}
			f := families[name]
			if f == nil {
				if seen[name] {
					t.Errorf("line %d: family %s resumes after another family", n, name)
				}
				f = &promFamily{}
				families[name] = f
			} else if name != current {
				t.Errorf("line %d: %s %s is not beside its family", n, kind, name)
			}
			if len(f.samples) > 0 {
				t.Errorf("line %d: %s %s after its samples", n, kind, name)
			}
			current = name
			seen[name] = true
			switch kind {
			case "HELP":
				if f.help != "" {
					t.Errorf("line %d: second HELP for %s", n, name)
				}
				if f.help = text; text == "" {
					t.Errorf("line %d: empty HELP for %s", n, name)
				}
			case "TYPE":
				if f.typ != "" {
					t.Errorf("line %d: second TYPE for %s", n, name)
				}
				switch f.typ = text; text {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					t.Errorf("line %d: TYPE %s %q is no metric type", n, name, text)
				}
			}
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Errorf("line %d %q: %v", n, line, err)
			continue
		}
		family := s.name
		if families[family] == nil {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(s.name, suffix); ok && families[base] != nil && families[base].typ == "histogram" {
					family = base
				}
			}
		}
		f := families[family]
		switch {
		case f == nil:
			t.Errorf("line %d: sample %s of no family declared before it", n, s.name)
			continue
		case f.help == "" || f.typ == "":
			t.Errorf("line %d: sample %s of family %s, which lacks HELP or TYPE", n, s.name, family)
		case family != current:
			t.Errorf("line %d: sample %s apart from its family %s", n, s.name, family)
		}
		series := s.name + " " + fmt.Sprint(s.labels) // fmt sorts map keys
		if seen[series] {
			t.Errorf("line %d: series %s appears twice", n, series)
		}
		seen[series] = true
		if f.typ == "counter" && (!strings.HasSuffix(s.name, "_total") || s.value < 0) {
			t.Errorf("line %d: counter sample %s = %v; want a name ending in _total and no negative value", n, s.name, s.value)
		}
		f.samples = append(f.samples, s)
	}
	for name, f := range families {
		if f.typ == "histogram" {
			checkHistogram(t, name, f)
		}
	}
	return families
}

// parseSample reads one sample line: name{label="value",...} value.
func parseSample(line string) (promSample, error) {
	s := promSample{labels: map[string]string{}}
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:end], line[end:]
	if !promNameRE.MatchString(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	if rest, ok := strings.CutPrefix(line, "{"); ok {
		line = rest
		for !strings.HasPrefix(line, "}") {
			name, rest, ok := strings.Cut(line, `="`)
			if !ok || !promLabelRE.MatchString(name) || strings.HasPrefix(name, "__") {
				return s, fmt.Errorf("bad label at %q", line)
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("label %s given twice", name)
			}
			var value strings.Builder
			for {
				if rest == "" {
					return s, fmt.Errorf("label %s: unterminated value", name)
				}
				c := rest[0]
				rest = rest[1:]
				if c == '"' {
					break
				}
				if c == '\\' {
					if rest == "" {
						return s, fmt.Errorf("label %s: escape at the end", name)
					}
					switch rest[0] {
					case '\\', '"':
						c = rest[0]
					case 'n':
						c = '\n'
					default:
						return s, fmt.Errorf("label %s: bad escape \\%c", name, rest[0])
					}
					rest = rest[1:]
				}
				value.WriteByte(c)
			}
			if !utf8.ValidString(value.String()) {
				return s, fmt.Errorf("label %s: value is not UTF-8", name)
			}
			s.labels[name] = value.String()
			line, _ = strings.CutPrefix(rest, ",")
			if line == "" {
				return s, errors.New("unterminated labels")
			}
		}
		line = line[1:]
	}
	rest, ok := strings.CutPrefix(line, " ")
	if !ok || strings.Contains(rest, " ") {
		return s, fmt.Errorf("want one space, then the value, at %q", line)
	}
	v, err := strconv.ParseFloat(rest, 64)
	if err != nil {
		return s, fmt.Errorf("value: %v", err)
	}
	s.value = v
	return s, nil
}

// checkHistogram checks each series of histogram family name: buckets in
// rising le, cumulative, the last +Inf and equal to _count, and a _sum.
func checkHistogram(t testing.TB, name string, f *promFamily) {
	t.Helper()
	type series struct {
		les, counts []float64
		sum, count  []float64
	}
	all := map[string]*series{}
	for _, s := range f.samples {
		le, hasLE := s.labels["le"]
		rest := maps.Clone(s.labels)
		delete(rest, "le")
		key := " " + fmt.Sprint(rest) // fmt sorts map keys
		if all[key] == nil {
			all[key] = &series{}
		}
		sr := all[key]
		switch s.name {
		case name + "_bucket":
			v, err := strconv.ParseFloat(le, 64)
			if !hasLE || err != nil {
				t.Errorf("%s%s: le %q is not a number", s.name, key, le)
			}
			sr.les, sr.counts = append(sr.les, v), append(sr.counts, s.value)
		case name + "_sum":
			sr.sum = append(sr.sum, s.value)
		case name + "_count":
			sr.count = append(sr.count, s.value)
		default:
			t.Errorf("histogram %s has a sample %s", name, s.name)
		}
	}
	for key, sr := range all {
		if len(sr.les) == 0 || len(sr.sum) != 1 || len(sr.count) != 1 {
			t.Errorf("histogram %s%s: %d buckets, %d _sum and %d _count; want buckets and one of each", name, key, len(sr.les), len(sr.sum), len(sr.count))
			continue
		}
		for i := 1; i < len(sr.les); i++ {
			if sr.les[i] <= sr.les[i-1] || sr.counts[i] < sr.counts[i-1] {
				t.Errorf("histogram %s%s: bucket le=%v holds %v after le=%v held %v; want rising le and cumulative counts",
					name, key, sr.les[i], sr.counts[i], sr.les[i-1], sr.counts[i-1])
			}
		}
		last := len(sr.les) - 1
		if !math.IsInf(sr.les[last], 1) || sr.counts[last] != sr.count[0] {
			t.Errorf("histogram %s%s: last bucket le=%v holds %v, _count %v; want le=+Inf equal to _count", name, key, sr.les[last], sr.counts[last], sr.count[0])
		}
	}
}

// scrapeMetrics sends ts some traffic of every kind the metrics count, then
// returns what the debug listener's /metrics answers.
func scrapeMetrics(t *testing.T, ts *testServer) string {
	t.Helper()
	debug := httptest.NewServer(ts.s.debugRoutes())
	t.Cleanup(debug.Close)
	tok := ts.newUser(t, "alice")
	ts.do(t, "POST", "/login", map[string]string{"username": "alice", "password": "wrong password"})
	ts.do(t, "POST", "/bookapi/books", map[string]string{"title": "Dune", "author": "Frank Herbert"}, bearer(tok)...)
	ts.do(t, "GET", "/bookapi/books", nil, bearer(tok)...)
	ts.do(t, "FROBNICATE", "/healthz", nil)
	r := sendRequest(t, debug.Client(), debug.URL, "GET", "/metrics", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != promContentType {
		t.Fatalf("GET /metrics: status = %d, Content-Type %q; want 200 %q", r.status, r.header.Get("Content-Type"), promContentType)
	}
	return string(r.body)
}

// value returns the value of the sample of f named name whose labels
// include labels (name, value pairs), failing the test when there is none.
func (f *promFamily) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	if f == nil {
		t.Fatalf("no family for %s", name)
	}
next:
	for _, s := range f.samples {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value
	}
	t.Fatalf("no sample %s%q in %v", name, labels, f.samples)
	return 0
}

// TestMetricsFormat checks /metrics on the debug listener: the exposition
// format, line by line (parseExposition), and the values after known
// traffic.
func TestMetricsFormat(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	text := scrapeMetrics(t, ts)
	fams := parseExposition(t, text)
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}

	if v := fams["bookapi_build_info"].value(t, "bookapi_build_info", "version", buildVersion(), "goversion", runtime.Version()); v != 1 {
		t.Errorf("bookapi_build_info = %v, want 1", v)
	}
	requests := fams["bookapi_http_requests_total"]
	for _, tt := range []struct {
		pattern, class string
		want           float64
	}{
		{"POST /signup", "2xx", 1},
		{"POST /login", "2xx", 1},
		{"POST /login", "4xx", 1},
		{"POST /bookapi/books", "2xx", 1},
		{"GET /bookapi/books", "2xx", 1},
		{"OTHER unmatched", "4xx", 1},
	} {
		if v := requests.value(t, "bookapi_http_requests_total", "pattern", tt.pattern, "class", tt.class); v != tt.want {
			t.Errorf(`bookapi_http_requests_total{pattern=%q,class=%q} = %v, want %v`, tt.pattern, tt.class, v, tt.want)
		}
	}
	latency := fams["bookapi_http_request_duration_seconds"]
	if n := latency.value(t, "bookapi_http_request_duration_seconds_count"); n != 6 {
		t.Errorf("bookapi_http_request_duration_seconds_count = %v, want 6 (the requests sent)", n)
	}
	if sum := latency.value(t, "bookapi_http_request_duration_seconds_sum"); sum <= 0 || sum > 6*30 {
		t.Errorf("bookapi_http_request_duration_seconds_sum = %v, want seconds, above 0", sum)
	}
	if le := latency.value(t, "bookapi_http_request_duration_seconds_bucket", "le", "0.001"); le > 6 {
		t.Errorf(`bucket le="0.001" = %v; want the 1 ms bucket in seconds`, le)
	}
	for outcome, want := range map[string]float64{"success": 1, "failure": 1, "throttled": 0} {
		if v := fams["bookapi_logins_total"].value(t, "bookapi_logins_total", "outcome", outcome); v != want {
			t.Errorf("bookapi_logins_total{outcome=%q} = %v, want %v", outcome, v, want)
		}
	}
	for _, name := range []string{"bookapi_bcrypt_waits_total", "bookapi_bcrypt_refusals_total", "bookapi_db_unavailable_total", "bookapi_internal_errors_total"} {
		if v := fams[name].value(t, name); v != 0 {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}

	cfg := ts.s.cfg
	pools := map[string]float64{"write": 1, "read": float64(cfg.dbMaxConns)}
	if onPostgres() {
		pools = map[string]float64{"shared": float64(cfg.dbMaxConns)}
	}
	for pool, max := range pools {
		if v := fams["bookapi_db_max_open_connections"].value(t, "bookapi_db_max_open_connections", "pool", pool); v != max {
			t.Errorf("bookapi_db_max_open_connections{pool=%q} = %v, want %v", pool, v, max)
		}
		for _, state := range []string{"in_use", "idle"} {
			if v := fams["bookapi_db_connections"].value(t, "bookapi_db_connections", "pool", pool, "state", state); v < 0 || v > max {
				t.Errorf("bookapi_db_connections{pool=%q,state=%q} = %v, want 0 to %v", pool, state, v, max)
			}
		}
		fams["bookapi_db_waits_total"].value(t, "bookapi_db_waits_total", "pool", pool)
		fams["bookapi_db_wait_seconds_total"].value(t, "bookapi_db_wait_seconds_total", "pool", pool)
	}
	groups := fams["bookapi_db_commit_group_size"]
	if onPostgres() {
		if groups != nil {
			t.Errorf("bookapi_db_commit_group_size on PostgreSQL, which has no group commit")
		}
		return
	}
	// The signup, two logins (a session, a failure) and the book: at least
	// four write transactions, in as many groups or fewer.
	if n, sum := groups.value(t, "bookapi_db_commit_group_size_count"), groups.value(t, "bookapi_db_commit_group_size_sum"); n < 1 || sum < 4 || sum < n {
		t.Errorf("bookapi_db_commit_group_size: _count %v, _sum %v; want at least 4 transactions in at least 1 group", n, sum)
	}
}

// TestMetricsEscaping checks that HELP texts and label values are escaped
// as the format wants, and that they read back as written.
func TestMetricsEscaping(t *testing.T) {
	t.Parallel()
	var p promWriter
	p.family("x_total", "counter", "back\\slash, \"quotes\" and\nnewline")
	p.sample("x_total", 1.5, "a", "back\\slash \"quotes\"\nnewline", "b", "not UTF-8 \xff")
	p.sample("x_total", 2e21, "a", "")
	want := `# HELP x_total back\\slash, "quotes" and\nnewline
# TYPE x_total counter
x_total{a="back\\slash \"quotes\"\nnewline",b="not UTF-8 ` + "\uFFFD" + `"} 1.5
x_total{a=""} 2e+21
`
	if got := string(p.buf); got != want {
		t.Errorf("promWriter wrote\n%s\nwant\n%s", got, want)
	}
	f := parseExposition(t, string(p.buf))["x_total"]
	if v := f.value(t, "x_total", "a", "back\\slash \"quotes\"\nnewline", "b", "not UTF-8 \uFFFD"); v != 1.5 {
		t.Errorf("escaped sample read back as %v, want 1.5", v)
	}
}

// TestMetricsPromtool runs Prometheus's own checker, promtool check
// metrics, on what /metrics answers.
func TestMetricsPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("skipping: promtool is not on PATH (Debian package prometheus; .ci/run installs it where it can)")
	}
	text := scrapeMetrics(t, newTestServer(t))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v, output:\n%s\non /metrics:\n%s", err, out, text)
	}
}
