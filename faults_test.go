package main

// PostgreSQL faults under load: a TCP proxy between bookapi and PostgreSQL
// delays, black-holes or resets the connections while writers and readers
// keep going, and a fourth fault has the server terminate bookapi's
// connections, as a restart does. Like the other PostgreSQL tests it needs
// TEST_DATABASE_URL; with -v it logs what a client saw during each fault.

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultProxy is a TCP proxy for fault tests. In mode "pass" it forwards
// bytes both ways; "delay" holds each chunk for a while first; "blackhole"
// forwards nothing and answers nothing (connections stay open, new ones
// hang) until the mode changes, then delivers what it held, as TCP would
// after an outage; "reset" resets every connection, open or new.
type faultProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond // signalled when mode changes
	mode  string
	delay time.Duration
	conns map[net.Conn]bool
}

// startFaultProxy proxies a new local port to target until t ends.
func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, mode: "pass", conns: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.set("reset", 0)
	})
	return p
}

// set changes the mode; "reset" resets every open connection at once.
func (p *faultProxy) set(mode string, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay = mode, delay
	if mode == "reset" {
		for c := range p.conns {
			resetConn(c)
		}
		clear(p.conns)
	}
	p.cond.Broadcast()
}

// resetConn closes c with a TCP reset rather than an orderly close.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// pass waits while the proxy black-holes, then for the delay; it reports
// false if the connection is to be reset instead.
func (p *faultProxy) pass() bool {
	p.mu.Lock()
	for p.mode == "blackhole" {
		p.cond.Wait()
	}
	mode, delay := p.mode, p.delay
	p.mu.Unlock()
	if mode == "delay" {
		time.Sleep(delay)
	}
	return mode != "reset"
}

// track records an open connection, or resets it if the proxy resets.
func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "reset" {
		resetConn(c)
		return false
	}
	p.conns[c] = true
	return true
}

func (p *faultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

// serve connects one client to the target once the mode lets it through.
func (p *faultProxy) serve(client net.Conn) {
	if !p.track(client) || !p.pass() {
		resetConn(client)
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil || !p.track(server) {
		resetConn(client)
		return
	}
	go p.pipe(server, client)
	p.pipe(client, server)
}

// pipe copies src to dst through the fault until either side fails.
func (p *faultProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && (!p.pass() || writeAll(dst, buf[:n]) != nil) {
			break
		}
		if err != nil {
			break
		}
	}
	resetConn(dst)
	resetConn(src)
}

// writeAll writes b to c.
func writeAll(c net.Conn, b []byte) error {
	_, err := c.Write(b)
	return err
}

// faultCall is one request made during a fault test.
type faultCall struct {
	route      string // "create", "list" or "readyz"
	title      string // of a create
	start, end time.Time
	status     int
	retryAfter string
	err        error
}

// faultLoad makes requests in a loop until stop is closed: writers creating
// books with titles of their own, readers listing, and one /readyz prober.
func faultLoad(ts *testServer, token, name string, writers, readers int, stop <-chan struct{}) []faultCall {
	var mu sync.Mutex
	var calls []faultCall
	var wg sync.WaitGroup
	client := &http.Client{Transport: ts.Client().Transport, Timeout: 60 * time.Second}
	loop := func(route string, next func(i int) (string, string, any)) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			method, path, body := next(i)
			c := faultCall{route: route, start: time.Now()}
			if m, ok := body.(map[string]string); ok {
				c.title = m["title"]
			}
			r, err := exchange(client, ts.URL, method, path, body, bearer(token)...)
			c.end, c.err = time.Now(), err
			if err == nil {
				c.status, c.retryAfter = r.status, r.header.Get("Retry-After")
			}
			mu.Lock()
			calls = append(calls, c)
			mu.Unlock()
		}
	}
	for w := range writers {
		wg.Add(1)
		go loop("create", func(i int) (string, string, any) {
			return "POST", "/bookapi/books", map[string]string{"title": fmt.Sprintf("%s w%d b%d", name, w, i), "author": "Fault"}
		})
	}
	for range readers {
		wg.Add(1)
		go loop("list", func(int) (string, string, any) { return "GET", "/bookapi/books?limit=10", nil })
	}
	wg.Add(1)
	go loop("readyz", func(int) (string, string, any) { return "GET", "/readyz", nil })
	wg.Wait()
	return calls
}

// TestPostgresFaults runs writers and readers against bookapi while the
// connection to PostgreSQL fails in each way a network or a server can, and
// checks what a client sees: only 2xx and 503 with Retry-After, never a 500
// or no answer at all; no request longer than its deadline and a margin;
// every acknowledged write stored exactly once; 2xx again within 2 s of the
// fault ending.
func TestPostgresFaults(t *testing.T) {
	db := postgresDB(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startFaultProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	q := u.Query()
	app := "bookapi_faults_" + q.Get("search_path")
	q.Set("application_name", app)
	u.RawQuery = q.Encode()

	cfg := testConfig(t)
	cfg.db = u.String()
	cfg.dbMaxConns = 8
	cfg.dbTimeout = time.Second
	ts := newTestServerWith(t, cfg)
	token := ts.newUser(t, "alice")
	admin := postgresAdmin(t)

	const (
		before    = 500 * time.Millisecond
		during    = 3 * time.Second
		after     = 3 * time.Second
		margin    = 1500 * time.Millisecond // past the deadline, for a loaded machine
		recovery  = 2 * time.Second
		readyWait = readyTimeout + margin
	)
	terminate := func(stop <-chan struct{}) {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}
	for _, fault := range []struct {
		name  string
		start func(stop <-chan struct{})
	}{
		{"delay", func(<-chan struct{}) { proxy.set("delay", 200*time.Millisecond) }},
		{"blackhole", func(<-chan struct{}) { proxy.set("blackhole", 0) }},
		{"reset", func(<-chan struct{}) { proxy.set("reset", 0) }},
		{"terminated", terminate},
	} {
		goroutines := runtime.NumGoroutine()
		stop := make(chan struct{})
		var calls []faultCall
		done := make(chan struct{})
		go func() {
			calls = faultLoad(ts, token, fault.name, 8, 2, stop)
			close(done)
		}()
		time.Sleep(before) // load before the fault; the test waits for nothing here
		faultStart := time.Now()
		faultStop := make(chan struct{})
		go fault.start(faultStop)
		peak := 0
		for time.Since(faultStart) < during {
			peak = max(peak, runtime.NumGoroutine())
			time.Sleep(50 * time.Millisecond)
		}
		close(faultStop)
		proxy.set("pass", 0)
		faultEnd := time.Now()
		time.Sleep(after)
		close(stop)
		<-done

		statuses := map[string]map[int]int{}
		var longest time.Duration
		var acknowledged []string
		recovered := time.Duration(-1)
		for _, c := range calls {
			if statuses[c.route] == nil {
				statuses[c.route] = map[int]int{}
			}
			statuses[c.route][c.status]++
			took := c.end.Sub(c.start)
			longest = max(longest, took)
			switch {
			case c.err != nil:
				t.Errorf("%s: %s got no answer after %v: %v", fault.name, c.route, took, c.err)
			case c.status == http.StatusServiceUnavailable && c.retryAfter == "":
				t.Errorf("%s: %s answered 503 without Retry-After", fault.name, c.route)
			case c.status != http.StatusServiceUnavailable && (c.status < 200 || c.status > 299):
				t.Errorf("%s: %s answered %d, want 2xx or 503", fault.name, c.route, c.status)
			}
			limit := cfg.dbTimeout + margin
			if c.route == "readyz" {
				limit = readyWait
			}
			if took > limit {
				t.Errorf("%s: %s took %v, want at most %v", fault.name, c.route, took, limit)
			}
			if c.route == "create" && c.status == http.StatusCreated {
				acknowledged = append(acknowledged, c.title)
			}
			if c.route == "create" && c.status == http.StatusCreated && c.start.After(faultEnd) {
				if d := c.end.Sub(faultEnd); recovered < 0 || d < recovered {
					recovered = d
				}
			}
		}
		if recovered < 0 || recovered > recovery {
			t.Errorf("%s: first create acknowledged %v after the fault ended, want within %v", fault.name, recovered, recovery)
		}
		var stored []string
		rows, err := admin.Query(`SELECT title FROM `+q.Get("search_path")+`.books WHERE author = 'Fault' AND title LIKE $1`, fault.name+" %")
		if err != nil {
			t.Fatalf("read books: %v", err)
		}
		for rows.Next() {
			var title string
			if err := rows.Scan(&title); err != nil {
				t.Fatal(err)
			}
			stored = append(stored, title)
		}
		rows.Close()
		for _, title := range acknowledged {
			if n := countOf(stored, title); n != 1 {
				t.Errorf("%s: acknowledged book %q stored %d times, want once", fault.name, title, n)
			}
		}
		t.Logf("%s: %d requests; creates %v, lists %v, readyz %v; %d acknowledged, %d stored; longest %v; 2xx again %v after; goroutines %d before, at most %d during",
			fault.name, len(calls), statuses["create"], statuses["list"], statuses["readyz"], len(acknowledged), len(stored),
			longest.Round(time.Millisecond), recovered.Round(time.Millisecond), goroutines, peak)
	}
	if logs := ts.logs.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "status=500") {
		t.Errorf("a fault was logged as an internal error")
	}
}

// countOf reports how many times s occurs in list.
func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
