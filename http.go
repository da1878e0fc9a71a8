package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxBodyBytes is the largest request body read.
const maxBodyBytes = 1 << 20

// jsonContentType is the Content-Type of every response body.
const jsonContentType = "application/json; charset=utf-8"

// apiError is an error answered to the client as it is: a status, a stable
// machine code and a human sentence, plus the headers some of them need.
type apiError struct {
	status     int
	code       string
	msg        string
	authHeader string // WWW-Authenticate, for 401s
	retryAfter int    // seconds, for 429 and 503
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// The contract's fixed answers.
var (
	errTokenMissing = &apiError{status: http.StatusUnauthorized, code: "token_missing",
		msg: "A valid token is missing!", authHeader: `Bearer realm="bookapi"`}
	errInvalidToken = &apiError{status: http.StatusUnauthorized, code: "invalid_token",
		msg: "Invalid token!", authHeader: `Bearer realm="bookapi", error="invalid_token"`}
	errCouldNotVerify = &apiError{status: http.StatusUnauthorized, code: "invalid_credentials",
		msg: "Could not verify!", authHeader: `Basic realm="Login required!"`}
	errAdminRequired = &apiError{status: http.StatusForbidden, code: "admin_required",
		msg: "Admin privileges required!"}
	errForbiddenBook = &apiError{status: http.StatusForbidden, code: "forbidden",
		msg: "You are not allowed to modify this book!"}
	errBookNotFound = &apiError{status: http.StatusNotFound, code: "not_found",
		msg: "book does not exist"}
	errUserNotFound = &apiError{status: http.StatusNotFound, code: "not_found",
		msg: "user does not exist"}
	errUserExists = &apiError{status: http.StatusConflict, code: "conflict",
		msg: "User already exists!"}
	errBookExists = &apiError{status: http.StatusConflict, code: "conflict",
		msg: "Book with same title already exists!"}
	errRouteNotFound = &apiError{status: http.StatusNotFound, code: "not_found",
		msg: "The requested URL was not found on the server."}
	errMethodNotAllowed = &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		msg: "The method is not allowed for the requested URL."}
	errBodyTooLarge = &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
		msg: "The request body must not be larger than 1 MiB."}
	errMediaType = &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
		msg: "The request body must be sent as Content-Type: application/json."}
	errBusy = &apiError{status: http.StatusServiceUnavailable, code: "unavailable",
		msg: "The service is busy; try again shortly.", retryAfter: 1}
)

// badRequest is a 400 invalid_request naming what was wrong.
func badRequest(format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: fmt.Sprintf(format, a...)}
}

// badJSON is a 400 invalid_json: the body is not one readable JSON object.
func badJSON(format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_json", msg: fmt.Sprintf(format, a...)}
}

// statusClientClosed is the access log's status for a request whose client
// went away before it was answered, as nginx logs it. No client sees it.
const statusClientClosed = 499

// serveError writes err as the contract's error body: an *apiError as it is,
// errUnavailable as 503, and anything else as a 500 whose details go only to
// the log. Once the request's context has ended, whatever failed failed for
// that reason: past its deadline the request is a 503, like a database that
// does not answer; a client that went away is no error of the server's, and
// is logged as 499 by the access line and nothing else.
func (s *server) serveError(w http.ResponseWriter, r *http.Request, err error) {
	if ctx := r.Context(); ctx.Err() != nil {
		if !errors.Is(context.Cause(ctx), errDeadline) {
			w.WriteHeader(statusClientClosed)
			return
		}
		err = fmt.Errorf("%w: %w: %v", errUnavailable, errDeadline, err)
	}
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, errUnavailable):
		s.metrics.dbUnavailable.Add(1)
		s.log.Warn("database unavailable", "request_id", requestID(r), "err", err)
		ae = &apiError{status: http.StatusServiceUnavailable, code: "unavailable",
			msg: "The database is unavailable; try again shortly.", retryAfter: 1}
	default:
		s.metrics.internalErrors.Add(1)
		s.log.Error("internal error", "request_id", requestID(r), "err", err)
		ae = &apiError{status: http.StatusInternalServerError, code: "internal",
			msg: "Internal server error."}
	}
	if ae.authHeader != "" {
		w.Header().Set("WWW-Authenticate", ae.authHeader)
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(ae.retryAfter))
	}
	writeJSON(w, ae.status, errorBody{Message: ae.msg, Error: ae.code})
}

// errorBody is the one shape of every error answer.
type errorBody struct {
	Message string `json:"message"`
	Error   string `json:"error"`
}

// writeJSON writes v as the response body with the given status. Headers are
// set before WriteHeader, since any set later are dropped.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here; they always marshal.
		status = http.StatusInternalServerError
		body = []byte(`{"message":"Internal server error.","error":"internal"}`)
	}
	writeBody(w, status, append(body, '\n'))
}

// writeBody writes body, JSON ending in a newline, with the given status.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// errDeadline is the cause of a request's context once its -db-timeout has
// passed.
var errDeadline = errors.New("request deadline (-db-timeout) passed")

// handle adapts a handler that returns an error to http.Handler.
func (s *server) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, h) })
}

// serve runs h and answers the error it returns. h's context ends
// -db-timeout after serve is called (at once if the client goes away),
// which bounds every wait for the database: for a connection, a lock, a
// query or the SQLite writer.
func (s *server) serve(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request) error) {
	if s.cfg.dbTimeout > 0 {
		ctx, cancel := context.WithTimeoutCause(r.Context(), s.cfg.dbTimeout, errDeadline)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if err := h(w, r); err != nil {
		s.serveError(w, r, err)
	}
}

// validator is a request body that checks (and normalises) itself after decoding.
type validator interface {
	valid() error
}

// readBody enforces the Content-Type and size rules and returns the raw body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
			return nil, errMediaType
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge
		}
		return nil, badJSON("The request body could not be read.")
	}
	return body, nil
}

// decode reads the request body into v: one JSON object in valid UTF-8, with
// only v's members, spelled exactly, each at most once and of the right type,
// then v.valid(). It is the only way a request body is read.
func decode(w http.ResponseWriter, r *http.Request, v validator) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return parseObject(body, v)
}

// parseObject is decode without the HTTP: body must be one JSON object
// acceptable to v. Each member is decoded into the field of v with exactly
// its name (encoding/json alone would match "Username" to "username"), and
// the first member that is unknown, given twice or of the wrong type ends
// the reading: a body of a hundred thousand members costs no more than one
// long string, since both are scanned once as a whole, then only up to the
// offending member.
func parseObject(body []byte, v validator) error {
	if err := checkJSONText(body); err != nil {
		if len(bytes.TrimSpace(body)) == 0 {
			return badJSON("The request body must be a JSON object; it is empty.")
		}
		return badJSON("The request body must be one JSON object: %v.", err)
	}
	fields := reflect.ValueOf(v).Elem()
	seen := make(map[string]bool, fields.NumField())
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.Token() // the opening brace; the text is known to be well formed
	for dec.More() {
		t, _ := dec.Token()
		name, _ := t.(string)
		if seen[name] {
			return badJSON("The request body must be one JSON object: member %q given twice.", name)
		}
		f, ok := fieldNamed(fields, name)
		if !ok {
			return badRequest("Unknown member %q.", name)
		}
		seen[name] = true
		if err := dec.Decode(f.Addr().Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return badRequest("Member %q has the wrong type: want %s.", name, jsonKind(te.Type))
			}
			return badRequest("Member %q is not acceptable: %v.", name, err)
		}
	}
	return v.valid()
}

// fieldNamed returns the exported field of the struct v whose JSON name is
// exactly name.
func fieldNamed(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); t.Field(i).IsExported() && tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// jsonKind names a Go type as the JSON kind a client should send.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	}
	return "another type"
}

// ctxKey is the type of this package's context keys.
type ctxKey int

const recordKey ctxKey = iota

// accessRecord is what the access log learns during a request.
type accessRecord struct {
	requestID string
	user      string
}

func record(r *http.Request) *accessRecord {
	rec, _ := r.Context().Value(recordKey).(*accessRecord)
	return rec
}

// requestID returns the request's id, or "" outside the middleware.
func requestID(r *http.Request) string {
	if rec := record(r); rec != nil {
		return rec.requestID
	}
	return ""
}

// noteUser tells the access log which user made the request.
func noteUser(r *http.Request, publicID string) {
	if rec := record(r); rec != nil {
		rec.user = publicID
	}
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (sw *statusWriter) WriteHeader(code int) {
	if sw.status == 0 {
		sw.status = code
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Write(b []byte) (int, error) {
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	n, err := sw.ResponseWriter.Write(b)
	sw.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// logRequests writes one access line per request, after it is answered.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The writer and the record in one allocation.
		a := &struct {
			statusWriter
			accessRecord
		}{statusWriter{ResponseWriter: w}, accessRecord{requestID: s.clientRequestID(r.Header.Get("X-Request-ID"))}}
		sw, rec := &a.statusWriter, &a.accessRecord
		r = r.WithContext(context.WithValue(r.Context(), recordKey, rec))
		next.ServeHTTP(sw, r)
		end := time.Now()
		d := end.Sub(start)
		s.metrics.observe(r.Method, r.Pattern, sw.status, d)
		// Straight to the handler: Logger.LogAttrs would walk the stack for
		// the caller's address (runtime.Callers) on every request, and an
		// access line never shows its source.
		h := s.log.Handler()
		if !h.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		line := slog.NewRecord(end, slog.LevelInfo, accessMessage, 0)
		line.AddAttrs(
			slog.String("method", r.Method),
			slog.String("pattern", r.Pattern),
			slog.Int("status", sw.status),
			slog.Duration("duration", d),
			slog.Int("bytes", sw.bytes),
			slog.String("request_id", rec.requestID),
			slog.String("user", rec.user),
		)
		h.Handle(r.Context(), line)
	})
}

// clientRequestID keeps the client's X-Request-ID when it is 1-64 characters
// of A-Z a-z 0-9 . _ - and otherwise makes a new one.
func (s *server) clientRequestID(id string) string {
	if len(id) >= 1 && len(id) <= 64 && strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == "" {
		return id
	}
	return s.requestIDs.next()
}

// idSource makes request ids: a random prefix chosen at start and a
// counter. They only need to be unique, not secret, so no request pays for a
// read of crypto/rand.
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() *idSource {
	var b [6]byte
	rand.Read(b[:])
	return &idSource{prefix: hex.EncodeToString(b[:])}
}

// next returns the next id: the prefix and 8 hex digits of the counter.
func (ids *idSource) next() string {
	var buf [12 + 1 + 16]byte
	out := append(buf[:0], ids.prefix...)
	out = append(out, '-')
	out = strconv.AppendUint(out, ids.n.Add(1), 16)
	return string(out)
}

// recoverPanics turns a panic in a handler into a logged stack and a 500.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic", "request_id", requestID(r), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				// The response is under way, so no 500 can follow it. Returning
				// would let net/http end it cleanly (a last empty chunk), and
				// the client would take the part for the whole; abort the
				// connection instead, so it sees the response cut off.
				panic(http.ErrAbortHandler)
			}
			s.serveError(w, r, errors.New("panic"))
		}()
		next.ServeHTTP(w, r)
	})
}

// commonHeaders sets the headers every response carries.
func (s *server) commonHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		// Tokens and user data must not sit in shared caches; every answer
		// here carries one or the other, or is cheap to ask again.
		h.Set("Cache-Control", "no-store")
		h.Set("X-Request-ID", requestID(r))
		next.ServeHTTP(w, r)
	})
}

// corsMethods and corsHeaders are what a preflight allows.
const (
	corsMethods = "GET, POST, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, X-Access-Token, X-Request-ID"
	corsExpose  = "Link, Location, Retry-After, WWW-Authenticate, X-Request-ID"
)

// cors lets the configured origins call the API from a browser. Tokens travel
// in headers, never cookies, so credentials are never allowed. With no
// origins configured it adds nothing.
func (s *server) cors(next http.Handler) http.Handler {
	if len(s.cfg.corsOrigins) == 0 {
		return next
	}
	any := slices.Contains(s.cfg.corsOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" || !any && !slices.Contains(s.cfg.corsOrigins, origin) {
			next.ServeHTTP(w, r)
			return
		}
		if any {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExpose)
		next.ServeHTTP(w, r)
	})
}

// jsonFallback answers the mux's own responses in JSON: its 404 and 405
// (keeping Allow), which come with r.Pattern empty because no route matched,
// and its path-cleaning redirects (keeping Location).
func (s *server) jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Set before the mux runs, so http.Redirect writes no HTML body.
		w.Header().Set("Content-Type", jsonContentType)
		mux.ServeHTTP(&fallbackWriter{ResponseWriter: w, r: r, s: s}, r)
	})
}

// fallbackWriter replaces the mux's plain-text and empty answers with JSON.
type fallbackWriter struct {
	http.ResponseWriter
	r        *http.Request
	s        *server
	replaced bool
}

func (f *fallbackWriter) WriteHeader(code int) {
	switch {
	case f.r.Pattern == "" && code == http.StatusNotFound:
		f.replaced = true
		f.s.serveError(f.ResponseWriter, f.r, errRouteNotFound)
	case f.r.Pattern == "" && code == http.StatusMethodNotAllowed:
		f.replaced = true
		f.s.serveError(f.ResponseWriter, f.r, errMethodNotAllowed)
	case code >= 300 && code < 400 && f.Header().Get("Location") != "":
		// Only the mux redirects: to the cleaned form of a path such as //healthz.
		f.replaced = true
		loc := f.Header().Get("Location")
		writeJSON(f.ResponseWriter, code, map[string]string{"message": "Moved to " + loc + ".", "location": loc})
	default:
		f.ResponseWriter.WriteHeader(code)
	}
}

func (f *fallbackWriter) Write(b []byte) (int, error) {
	if f.replaced {
		return len(b), nil
	}
	return f.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (f *fallbackWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }
