package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// server holds what handlers need; run builds each piece once and passes it to newServer.
type server struct {
	cfg   config           // read-only after start
	db    *store           // the database
	log   *slog.Logger     // the one logger
	keys  keyring          // signing key plus verify-only older keys
	now   func() time.Time // time.Now in production, a fixed clock in tests
	slots chan struct{}    // bounds concurrent bcrypt work

	// slotWait is how long a request waits for a bcrypt slot before a 503.
	slotWait time.Duration

	// dummyHash is compared against at login when the user does not exist,
	// so that an unknown user costs the same bcrypt work as a wrong password.
	dummyHash func() []byte
}

// newServer wires a server from its parts.
func newServer(cfg config, db *store, log *slog.Logger, keys keyring, now func() time.Time) *server {
	n := cfg.hashSlots
	if n <= 0 {
		n = max(1, runtime.NumCPU()-1)
	}
	s := &server{cfg: cfg, db: db, log: log, keys: keys, now: now, slots: make(chan struct{}, n), slotWait: 5 * time.Second}
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

// routes lists every route, its wrapper and the middleware stack.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()

	// Seed routes.
	mux.Handle("POST /signup", s.handle(s.signup))
	mux.Handle("POST /login", s.handle(s.login))
	mux.Handle("POST /bookapi/addbook", s.requireToken(s.addBook))

	// Books.
	mux.Handle("GET /bookapi/books", s.requireToken(s.listBooks))
	mux.Handle("POST /bookapi/books", s.requireToken(s.createBook))
	mux.Handle("GET /bookapi/books/{id}", s.requireToken(s.getBook))
	mux.Handle("PATCH /bookapi/books/{id}", s.requireToken(s.updateBook))
	mux.Handle("DELETE /bookapi/books/{id}", s.requireToken(s.deleteBook))

	// Sessions and the caller's account.
	mux.Handle("POST /refresh", s.handle(s.refresh))
	mux.Handle("POST /logout", s.requireToken(s.logout))
	mux.Handle("POST /logout/all", s.requireToken(s.logoutAll))
	mux.Handle("GET /me", s.requireToken(s.me))
	mux.Handle("POST /me/password", s.requireToken(s.changePassword))

	// Administration.
	mux.Handle("GET /admin/users", s.requireAdmin(s.listUsers))
	mux.Handle("PATCH /admin/users/{public_id}", s.requireAdmin(s.updateUser))
	mux.Handle("DELETE /admin/users/{public_id}", s.requireAdmin(s.deleteUser))

	// Operations.
	mux.Handle("GET /healthz", s.handle(s.healthz))
	mux.Handle("GET /readyz", s.handle(s.readyz))

	return s.logRequests(s.recoverPanics(s.commonHeaders(s.jsonFallback(mux))))
}

// healthz answers while the process runs.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 200 while the database answers, else 503.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.db.ping(r.Context()); err != nil {
		return fmt.Errorf("%w: %v", errUnavailable, err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
