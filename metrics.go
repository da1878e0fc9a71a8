package main

import (
	"expvar"
	"fmt"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync/atomic"
	"time"
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

// serveVars answers expvar's JSON: its process-wide variables (cmdline,
// memstats) and this server's under "bookapi".
func (m *metrics) serveVars(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", jsonContentType)
	fmt.Fprint(w, "{\n")
	expvar.Do(func(kv expvar.KeyValue) {
		fmt.Fprintf(w, "%q: %s,\n", kv.Key, kv.Value)
	})
	fmt.Fprintf(w, "%q: %s\n}\n", "bookapi", m.vars)
}

// debugRoutes is the debug listener's handler: expvar and pprof, never on
// the API's own listener.
func (s *server) debugRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/vars", s.metrics.serveVars)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
