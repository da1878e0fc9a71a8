// Command baseline is the yardstick bench/run.sh measures bookapi against: a
// bare net/http server that answers the benchmarked routes with the same JSON
// bookapi writes and verifies the same HS256 tokens, but keeps everything in
// memory. It takes none of bookapi's other costs (SQLite, the user and session
// lookup, strict JSON checks, the access log), so bookapi ÷ baseline shows
// what those cost.
//
//	baseline -addr 127.0.0.1:18081 -books 100 -user bench -bcrypt-cost 10   # password on stdin
//	baseline startup -url http://127.0.0.1:18080/healthz -- bookapi -addr ...
//
// The second form is a helper: it starts the command, polls the URL every
// 0.2 ms and prints the milliseconds from exec to the first 200.
package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// main runs serve, or startup when the first argument is "startup".
func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "startup" {
		err = startup(os.Args[2:])
	} else {
		err = serve(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

// book has the members, order and omitempty of bookapi's bookResponse.
type book struct {
	ID        int64  `json:"id"`
	Title     string `json:"title"`
	Author    string `json:"author"`
	ISBN      string `json:"isbn,omitempty"`
	Owner     string `json:"owner"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// claims has the members and order of the claims bookapi signs.
type claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	PublicID  string `json:"public_id"`
	SessionID string `json:"sid"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	ID        string `json:"jti"`
}

// app is the baseline's whole state: a canned book list, one user, a key.
type app struct {
	books []book // the canned list; never changes
	// Canned bodies, encoded once at start: the list, each book, the 401.
	listBody, unauthorizedBody []byte
	bookBodies                 [][]byte
	user                       string
	publicID                   string
	hash                       []byte        // bcrypt hash of the user's password
	slots                      chan struct{} // bounds bcrypt work like bookapi's pool
	secret                     []byte
	header                     string // base64url of the JOSE header, as bookapi's newKey builds it
	ttl                        time.Duration
	nextID                     atomic.Int64
	creates                    atomic.Int64
}

// serve runs the baseline server until SIGINT or SIGTERM.
func serve(args []string) error {
	f := flag.NewFlagSet("baseline", flag.ContinueOnError)
	addr := f.String("addr", "127.0.0.1:18081", "listen address")
	nbooks := f.Int("books", 0, "books in the canned list")
	name := f.String("user", "bench", "the one user (and owner of the books)")
	cost := f.Int("bcrypt-cost", 10, "bcrypt cost of the user's password")
	ttl := f.Duration("token-ttl", 24*time.Hour, "access-token lifetime")
	if err := f.Parse(args); err != nil {
		return err
	}
	secret := []byte(os.Getenv("SECRET_KEY"))
	if len(secret) < 32 {
		return errors.New("SECRET_KEY must be at least 32 bytes")
	}
	pw, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && pw == "" {
		return fmt.Errorf("read password from stdin: %w", err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(strings.TrimSuffix(pw, "\n")), *cost)
	if err != nil {
		return err
	}

	// The key id and header bytes of bookapi's newKey.
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("bookapi key id"))
	kid := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:9])
	hdr := `{"alg":"HS256","typ":"JWT","kid":"` + kid + `"}`

	a := &app{user: *name, publicID: uuid.NewString(), hash: hash, secret: secret, ttl: *ttl,
		header: base64.RawURLEncoding.EncodeToString([]byte(hdr)),
		slots:  make(chan struct{}, max(1, runtime.NumCPU()-1))}
	now := time.Now().UTC().Format(time.RFC3339)
	for i := 1; i <= *nbooks; i++ {
		a.books = append(a.books, book{ID: int64(i), Title: fmt.Sprintf("Bench book %03d", i),
			Author: "Bench Author", Owner: a.user, CreatedAt: now, UpdatedAt: now})
	}
	a.nextID.Store(int64(*nbooks))
	a.encodeBodies()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("GET /bookapi/books", a.auth(a.list))
	mux.HandleFunc("GET /bookapi/books/{id}", a.auth(a.get))
	mux.HandleFunc("POST /bookapi/books", a.auth(a.create))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("listening addr=%s books=%d", *addr, *nbooks)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Printf("stopped creates=%d", a.creates.Load())
	return nil
}

// apiError is bookapi's error body, members in its order.
type apiError struct {
	Message string `json:"message"`
	Error   string `json:"error"`
}

// encodeBodies encodes the answers that never change, once.
func (a *app) encodeBodies() {
	books := a.books
	if books == nil {
		books = []book{}
	}
	a.listBody = encode(struct {
		Books []book `json:"Books"`
	}{books})
	for _, b := range a.books {
		a.bookBodies = append(a.bookBodies, encode(struct {
			Book book `json:"Book"`
		}{b}))
	}
	a.unauthorizedBody = encode(apiError{"Invalid token!", "invalid_token"})
}

// encode returns v marshalled, with bookapi's trailing newline.
func encode(v any) []byte {
	body, _ := json.Marshal(v)
	return append(body, '\n')
}

// writeJSON writes v as bookapi's writeJSON does: marshalled, a newline,
// Content-Type and Content-Length.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, encode(v))
}

// writeBody writes an encoded body with bookapi's headers.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// auth lets a request with a valid token through, else answers bookapi's 401.
func (a *app) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			tok = r.Header.Get("X-Access-Token")
		}
		if !a.valid(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bookapi", error="invalid_token"`)
			writeBody(w, http.StatusUnauthorized, a.unauthorizedBody)
			return
		}
		h(w, r)
	}
}

// valid checks the header bytes, the HMAC-SHA256 signature (hmac.Equal) and exp.
func (a *app) valid(tok string) bool {
	i, j := strings.IndexByte(tok, '.'), strings.LastIndexByte(tok, '.')
	if i < 0 || j <= i || tok[:i] != a.header {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[j+1:])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(tok[:j]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(tok[i+1 : j])
	if err != nil {
		return false
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	return json.Unmarshal(payload, &c) == nil && time.Now().Unix() < c.Exp
}

// list answers the canned books, encoded once at start: the ceiling of a
// list, with nothing to read and nothing to encode.
func (a *app) list(w http.ResponseWriter, r *http.Request) {
	writeBody(w, http.StatusOK, a.listBody)
}

// get answers one canned book by id.
func (a *app) get(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 1 || id > len(a.books) {
		writeJSON(w, http.StatusNotFound, apiError{"book does not exist", "not_found"})
		return
	}
	writeBody(w, http.StatusOK, a.bookBodies[id-1])
}

// create decodes and answers a book like bookapi, without storing it.
func (a *app) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Title  string `json:"title"`
		Author string `json:"author"`
		ISBN   string `json:"isbn"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || strings.TrimSpace(req.Title) == "" || strings.TrimSpace(req.Author) == "" {
		writeJSON(w, http.StatusBadRequest, apiError{"Bad book.", "invalid_request"})
		return
	}
	a.creates.Add(1)
	now := time.Now().UTC().Format(time.RFC3339)
	b := book{ID: a.nextID.Add(1), Title: strings.TrimSpace(req.Title), Author: strings.TrimSpace(req.Author),
		ISBN: req.ISBN, Owner: a.user, CreatedAt: now, UpdatedAt: now}
	w.Header().Set("Location", "/bookapi/books/"+strconv.FormatInt(b.ID, 10))
	writeJSON(w, http.StatusCreated, struct {
		Book book `json:"Book"`
	}{b})
}

// login compares the password on a bcrypt slot and answers a signed token in
// bookapi's login shape.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"Bad login.", "invalid_json"})
		return
	}
	select {
	case a.slots <- struct{}{}: // like bookapi, give up the wait if the client has gone
	case <-r.Context().Done():
		return
	}
	err := bcrypt.CompareHashAndPassword(a.hash, []byte(req.Password))
	<-a.slots
	if err != nil || !strings.EqualFold(req.Username, a.user) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Login required!"`)
		writeJSON(w, http.StatusUnauthorized, apiError{"Could not verify!", "invalid_credentials"})
		return
	}
	now := time.Now()
	payload, _ := json.Marshal(claims{Issuer: "bookapi", Subject: a.publicID, PublicID: a.publicID,
		SessionID: uuid.NewString(), IssuedAt: now.Unix(), ExpiresAt: now.Add(a.ttl).Unix(), ID: uuid.NewString()})
	tok := a.header + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(tok))
	tok += "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	refresh := make([]byte, 32)
	rand.Read(refresh)
	writeJSON(w, http.StatusCreated, struct {
		Token        string `json:"token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}{tok, "Bearer", int64(a.ttl / time.Second), base64.RawURLEncoding.EncodeToString(refresh)})
}

// startup starts a command and prints the milliseconds from exec to the first
// 200 from url, polling every 0.2 ms, then stops the command.
func startup(args []string) error {
	f := flag.NewFlagSet("startup", flag.ContinueOnError)
	url := f.String("url", "", "URL that answers 200 once the command is up")
	limit := f.Duration("timeout", 30*time.Second, "give up after this long")
	if err := f.Parse(args); err != nil {
		return err
	}
	if *url == "" || f.NArg() == 0 {
		return errors.New("usage: baseline startup -url URL -- COMMAND [ARG...]")
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	cmd := exec.Command(f.Arg(0), f.Args()[1:]...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	for time.Since(start) < *limit {
		resp, err := client.Get(*url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Printf("%.1f\n", float64(time.Since(start).Microseconds())/1000)
				return nil
			}
		}
		time.Sleep(200 * time.Microsecond) // leave the CPU to the starting server
	}
	return fmt.Errorf("no 200 from %s within %v", *url, *limit)
}
