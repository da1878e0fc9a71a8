package main

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// server holds what handlers need; run builds each piece once and passes it to newServer.
type server struct {
	cfg        config           // read-only after start
	db         *store           // the database
	log        *slog.Logger     // the one logger
	keys       keyring          // signing key plus verify-only older keys
	now        func() time.Time // time.Now in production, a fixed clock in tests
	slots      chan struct{}    // bounds concurrent bcrypt work
	metrics    *metrics         // counters for the debug listener
	requestIDs *idSource        // ids for requests that bring none

	// slotWait is how long a request waits for a bcrypt slot before a 503.
	slotWait time.Duration

	// bodies recycles the buffers book lists are written into
	// (*[]byte, each at most maxPooledBody).
	bodies sync.Pool

	// dummyHash is compared against at login when the user does not exist,
	// so that an unknown user costs the same bcrypt work as a wrong password.
	dummyHash func() []byte

	// compareHash is bcrypt.CompareHashAndPassword; tests wrap it to see
	// which hashes a login compares against.
	compareHash func(hash, pw []byte) error
}

// newServer wires a server from its parts.
func newServer(cfg config, db *store, log *slog.Logger, keys keyring, now func() time.Time) *server {
	n := cfg.hashSlots
	if n <= 0 {
		n = max(1, runtime.NumCPU()-1)
	}
	s := &server{cfg: cfg, db: db, log: log, keys: keys, now: now, slots: make(chan struct{}, n), slotWait: 5 * time.Second,
		metrics: newMetrics(), requestIDs: newIDSource(), compareHash: bcrypt.CompareHashAndPassword}
	s.bodies.New = func() any { return new([]byte) }
	cost := cfg.bcryptCost
	s.dummyHash = sync.OnceValue(func() []byte {
		h, err := bcrypt.GenerateFromPassword([]byte("bookapi dummy password"), cost)
		if err != nil {
			panic(err) // cost was validated at start-up
		}
		return h
	})
	return s
}

// route is one entry of the route table: a method-and-path pattern and its
// handler, wrapped by requireToken or requireAdmin where it is protected.
type route struct {
	pattern string
	handler http.Handler
}

// routeTable lists every route the API serves.
func (s *server) routeTable() []route {
	return []route{
		// Seed routes.
		{"POST /signup", s.handle(s.signup)},
		{"POST /login", s.handle(s.login)},
		{"POST /bookapi/addbook", s.requireToken(s.addBook)},

		// Books.
		{"GET /bookapi/books", s.requireToken(s.listBooks)},
		{"POST /bookapi/books", s.requireToken(s.createBook)},
		{"GET /bookapi/books/{id}", s.requireToken(s.getBook)},
		{"PATCH /bookapi/books/{id}", s.requireToken(s.updateBook)},
		{"DELETE /bookapi/books/{id}", s.requireToken(s.deleteBook)},

		// Sessions and the caller's account.
		{"POST /refresh", s.handle(s.refresh)},
		{"POST /logout", s.requireToken(s.logout)},
		{"POST /logout/all", s.requireToken(s.logoutAll)},
		{"GET /me", s.requireToken(s.me)},
		{"POST /me/password", s.requireToken(s.changePassword)},

		// Administration.
		{"GET /admin/users", s.requireAdmin(s.listUsers)},
		{"PATCH /admin/users/{public_id}", s.requireAdmin(s.updateUser)},
		{"DELETE /admin/users/{public_id}", s.requireAdmin(s.deleteUser)},

		// Operations.
		{"GET /healthz", s.handle(s.healthz)},
		{"GET /readyz", s.handle(s.readyz)},
		{"GET /openapi.json", s.handle(s.openAPI)},
	}
}

// routes puts the route table on one mux behind the middleware stack.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		mux.Handle(rt.pattern, rt.handler)
	}
	return s.middleware(mux)
}

// middleware is the stack every request passes through, outermost first:
// the access log, panic recovery, the common headers, CORS, and the JSON
// 404/405 fallback in front of mux. Tests wrap a mux of their own in it.
func (s *server) middleware(mux *http.ServeMux) http.Handler {
	return s.logRequests(s.recoverPanics(s.commonHeaders(s.cors(s.jsonFallback(mux)))))
}

// openAPIDocument describes every route; a test keeps it and routeTable in step.
//
//go:embed openapi.json
var openAPIDocument []byte

// openAPI answers the OpenAPI 3.1 document.
func (s *server) openAPI(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	w.WriteHeader(http.StatusOK)
	w.Write(openAPIDocument)
	return nil
}

// healthz answers while the process runs.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyTimeout bounds /readyz: a load balancer's probe must get an answer
// quickly, above all when the database does not give one.
const readyTimeout = time.Second

// readyz answers 200 while the database answers a read and takes a write
// (see store.ping) within readyTimeout, else 503.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.db.ping(ctx); err != nil {
		return fmt.Errorf("%w: %v", errUnavailable, err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
