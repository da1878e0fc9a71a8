package main

import (
	"database/sql"
	"encoding/json"
	"expvar"
	"fmt"
	"math"
	"net/http"
	"net/http/pprof"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// latencyBuckets are the upper bounds of the request latency histogram.
var latencyBuckets = [...]time.Duration{
	time.Millisecond, 5 * time.Millisecond, 25 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, time.Second, 5 * time.Second,
}

// metrics are one server's counters. They are kept per server, not in
// expvar's global registry, so that any number of servers (as in tests) can
// live in one process; the debug listener serves them beside expvar's own.
type metrics struct {
	vars *expvar.Map // everything below, by name, for /debug/vars

	requests *expvar.Map // "METHOD /pattern 2xx" -> count
	latency  *histogram  // request durations in microseconds, bounded by latencyBuckets

	loginsOK        *expvar.Int // logins answered 201
	loginsFailed    *expvar.Int // logins answered 401
	loginsThrottled *expvar.Int // logins answered 429
	bcryptWaits     *expvar.Int // hashes that found every slot busy and waited
	bcryptRefusals  *expvar.Int // requests answered 503 after waiting for a slot too long
	dbUnavailable   *expvar.Int // requests answered 503 because the database was busy, full or unreachable
	internalErrors  *expvar.Int // requests answered 500
	sessionsStarted *expvar.Int // logins that started a session
	sessionsEnded   *expvar.Int // sessions ended by logout, password change, refresh reuse or user deletion
}

// newMetrics returns zeroed counters.
func newMetrics() *metrics {
	m := &metrics{vars: new(expvar.Map).Init()}
	m.requests = new(expvar.Map).Init()
	m.vars.Set("requests", m.requests)
	bounds := make([]int64, len(latencyBuckets))
	for i, b := range latencyBuckets {
		bounds[i] = b.Microseconds()
	}
	m.latency = newHistogram(bounds...)
	// /debug/vars shows the histogram as it always has: cumulative counts
	// by bucket, then the count and the sum in microseconds.
	latency := new(expvar.Map).Init()
	for i, b := range latencyBuckets {
		latency.Set("le_"+b.String(), expvar.Func(func() any { return m.latency.cumulative()[i] }))
	}
	latency.Set("count", expvar.Func(func() any { return m.latency.count() }))
	latency.Set("sum_us", expvar.Func(func() any { return m.latency.sum.Load() }))
	m.vars.Set("latency", latency)
	for name, v := range map[string]**expvar.Int{
		"logins_ok": &m.loginsOK, "logins_failed": &m.loginsFailed, "logins_throttled": &m.loginsThrottled,
		"bcrypt_waits": &m.bcryptWaits, "bcrypt_refusals": &m.bcryptRefusals,
		"db_unavailable": &m.dbUnavailable, "internal_errors": &m.internalErrors,
		"sessions_started": &m.sessionsStarted, "sessions_ended": &m.sessionsEnded,
	} {
		*v = new(expvar.Int)
		m.vars.Set(name, *v)
	}
	return m
}

// histogram counts observations of an integer quantity (microseconds,
// transactions) in fixed buckets, safely for concurrent use. An observation
// is one atomic add to its own bucket and one to the sum; readers add the
// buckets up, so what they read is cumulative, whatever is observed
// meanwhile, and its total is the count.
type histogram struct {
	bounds []int64        // inclusive upper bounds, ascending
	counts []atomic.Int64 // [i]: observations above bounds[i-1], at most bounds[i]; the last: above every bound
	sum    atomic.Int64
}

// newHistogram returns an empty histogram with these ascending bounds.
func newHistogram(bounds ...int64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Int64, len(bounds)+1)}
}

// observe counts the value v.
func (h *histogram) observe(v int64) {
	i, _ := slices.BinarySearch(h.bounds, v) // the first bound >= v, or len(bounds)
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// cumulative returns, for each bound, how many observations were at most
// it, and then how many there were in all.
func (h *histogram) cumulative() []int64 {
	cum := make([]int64, len(h.counts))
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
		cum[i] = n
	}
	return cum
}

// count returns how many values were observed.
func (h *histogram) count() int64 {
	cum := h.cumulative()
	return cum[len(cum)-1]
}

// statusClasses names status/100.
var statusClasses = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// observe counts one answered request. A request that matched a route is
// counted under its pattern (which names the method); others under
// "METHOD unmatched", where METHOD is OTHER for a method HTTP does not
// define.
func (m *metrics) observe(method, pattern string, status int, d time.Duration) {
	class := "5xx"
	if c := status / 100; c >= 0 && c < len(statusClasses) {
		class = statusClasses[c]
	}
	if pattern == "" {
		m.requests.Add(countedMethod(method)+" unmatched "+class, 1)
	} else {
		m.requests.Add(pattern+" "+class, 1)
	}
	m.latency.observe(d.Microseconds())
}

// countedMethod is method if HTTP defines it, else OTHER. net/http passes
// any token as a method, and a counter for each one a client makes up would
// grow without bound.
func countedMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// serveVars answers expvar's JSON: its process-wide variables (memstats),
// the command line run was given (cmdline, where expvar's own would be
// os.Args) with its passwords masked, and this server's under "bookapi".
func (m *metrics) serveVars(cmdline []string) http.HandlerFunc {
	line, _ := json.Marshal(redactArgs(cmdline))
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonContentType)
		fmt.Fprint(w, "{\n")
		expvar.Do(func(kv expvar.KeyValue) {
			v := kv.Value.String()
			if kv.Key == "cmdline" {
				v = string(line)
			}
			fmt.Fprintf(w, "%q: %s,\n", kv.Key, v)
		})
		fmt.Fprintf(w, "%q: %s\n}\n", "bookapi", m.vars)
	}
}

// serveCmdline answers pprof's /debug/pprof/cmdline, the command line run
// was given, with its passwords masked: pprof's own handler shows os.Args.
func serveCmdline(cmdline []string) http.HandlerFunc {
	line := strings.Join(redactArgs(cmdline), "\x00")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, line)
	}
}

// promContentType is the Content-Type of the Prometheus text exposition
// format, version 0.0.4.
const promContentType = "text/plain; version=0.0.4; charset=utf-8"

// serveMetrics answers the server's metrics, its database pools and its
// build in the Prometheus text exposition format.
func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var p promWriter
	m := s.metrics

	p.family("bookapi_build_info", "gauge", "The running build: its version and the Go version it was built with. Always 1.")
	p.sample("bookapi_build_info", 1, "version", buildVersion(), "goversion", runtime.Version())

	p.family("bookapi_http_requests_total", "counter",
		`Answered requests by route pattern ("METHOD unmatched" for requests no route matched) and status class.`)
	m.requests.Do(func(kv expvar.KeyValue) {
		// Keys are "PATTERN CLASS" (see observe); a class has no space.
		i := strings.LastIndexByte(kv.Key, ' ')
		p.sample("bookapi_http_requests_total", float64(kv.Value.(*expvar.Int).Value()),
			"pattern", kv.Key[:i], "class", kv.Key[i+1:])
	})

	p.family("bookapi_http_request_duration_seconds", "histogram", "Time from reading a request to having answered it.")
	p.histogram("bookapi_http_request_duration_seconds", m.latency, 1e6)

	p.family("bookapi_logins_total", "counter", "Logins by outcome: success (201), failure (401) or throttled (429).")
	for _, o := range []struct {
		outcome string
		n       *expvar.Int
	}{{"success", m.loginsOK}, {"failure", m.loginsFailed}, {"throttled", m.loginsThrottled}} {
		p.sample("bookapi_logins_total", float64(o.n.Value()), "outcome", o.outcome)
	}
	for _, c := range []struct {
		name, help string
		n          *expvar.Int
	}{
		{"bookapi_bcrypt_waits_total", "Password hashes that found every bcrypt slot busy and waited for one.", m.bcryptWaits},
		{"bookapi_bcrypt_refusals_total", "Requests answered 503 after waiting too long for a bcrypt slot.", m.bcryptRefusals},
		{"bookapi_db_unavailable_total", "Requests answered 503 because the database was busy, full or unreachable.", m.dbUnavailable},
		{"bookapi_internal_errors_total", "Requests answered 500.", m.internalErrors},
		{"bookapi_sessions_started_total", "Login sessions started.", m.sessionsStarted},
		{"bookapi_sessions_ended_total", "Login sessions ended by logout, a password change, the reuse of a spent refresh token or the deletion of the user.", m.sessionsEnded},
	} {
		p.family(c.name, "counter", c.help)
		p.sample(c.name, float64(c.n.Value()))
	}

	pools := s.db.pools()
	stats := make([]sql.DBStats, len(pools))
	for i, pl := range pools {
		stats[i] = pl.db.Stats()
	}
	p.family("bookapi_db_connections", "gauge", "Open database connections by pool and state (in_use or idle).")
	for i, pl := range pools {
		p.sample("bookapi_db_connections", float64(stats[i].InUse), "pool", pl.name, "state", "in_use")
		p.sample("bookapi_db_connections", float64(stats[i].Idle), "pool", pl.name, "state", "idle")
	}
	p.family("bookapi_db_max_open_connections", "gauge", "The most connections each database pool opens.")
	for i, pl := range pools {
		p.sample("bookapi_db_max_open_connections", float64(stats[i].MaxOpenConnections), "pool", pl.name)
	}
	p.family("bookapi_db_waits_total", "counter", "Times a query waited for a free connection of the pool.")
	for i, pl := range pools {
		p.sample("bookapi_db_waits_total", float64(stats[i].WaitCount), "pool", pl.name)
	}
	p.family("bookapi_db_wait_seconds_total", "counter", "Time spent waiting for a free connection of the pool.")
	for i, pl := range pools {
		p.sample("bookapi_db_wait_seconds_total", stats[i].WaitDuration.Seconds(), "pool", pl.name)
	}
	if h := s.db.groupSizes; h != nil {
		p.family("bookapi_db_commit_group_size", "histogram", "Write transactions committed together, in one commit of the SQLite writer.")
		p.histogram("bookapi_db_commit_group_size", h, 1)
	}

	w.Header().Set("Content-Type", promContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(p.buf)))
	w.Write(p.buf)
}

// promWriter writes metric families in the Prometheus text exposition
// format, version 0.0.4: each family's HELP and TYPE lines, then its
// samples, one per line.
type promWriter struct{ buf []byte }

// family starts the metric family name of type typ.
func (p *promWriter) family(name, typ, help string) {
	p.buf = append(p.buf, "# HELP "...)
	p.buf = append(p.buf, name...)
	p.buf = append(p.buf, ' ')
	p.buf = appendEscaped(p.buf, help, false)
	p.buf = append(p.buf, "\n# TYPE "...)
	p.buf = append(p.buf, name...)
	p.buf = append(p.buf, ' ')
	p.buf = append(p.buf, typ...)
	p.buf = append(p.buf, '\n')
}

// sample writes one sample of name with value v and labels, given as name,
// value pairs.
func (p *promWriter) sample(name string, v float64, labels ...string) {
	p.buf = append(p.buf, name...)
	for i := 0; i+1 < len(labels); i += 2 {
		if i == 0 {
			p.buf = append(p.buf, '{')
		} else {
			p.buf = append(p.buf, ',')
		}
		p.buf = append(p.buf, labels[i]...)
		p.buf = append(p.buf, `="`...)
		p.buf = appendEscaped(p.buf, labels[i+1], true)
		p.buf = append(p.buf, '"')
	}
	if len(labels) > 1 {
		p.buf = append(p.buf, '}')
	}
	p.buf = append(p.buf, ' ')
	p.buf = appendValue(p.buf, v)
	p.buf = append(p.buf, '\n')
}

// histogram writes h as the samples of histogram name: a cumulative
// _bucket for each bound and +Inf, _sum and _count. scale is how many of h's
// units make one of the family's (1e6 microseconds in a second).
func (p *promWriter) histogram(name string, h *histogram, scale float64) {
	cum := h.cumulative()
	var le []byte
	for i, b := range h.bounds {
		le = appendValue(le[:0], float64(b)/scale)
		p.sample(name+"_bucket", float64(cum[i]), "le", string(le))
	}
	total := float64(cum[len(cum)-1])
	p.sample(name+"_bucket", total, "le", "+Inf")
	p.sample(name+"_sum", float64(h.sum.Load())/scale)
	p.sample(name+"_count", total)
}

// appendValue appends v as a sample value: a whole number without exponent
// or fraction, anything else as Go's shortest float.
func appendValue(b []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendEscaped appends s escaped as the format wants a label value (quote
// set: backslash, double quote and newline) or a HELP text (backslash and
// newline). Each byte of s that is not UTF-8 becomes U+FFFD, as ranging over
// a string yields it.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for _, r := range s {
		switch {
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// debugRoutes is the debug listener's handler: expvar, Prometheus metrics
// and pprof, never on the API's own listener.
func (s *server) debugRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/vars", s.metrics.serveVars(s.cfg.cmdline))
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", serveCmdline(s.cfg.cmdline))
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
