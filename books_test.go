package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// The contract's fixed book messages (API.md).
const (
	bookMsgExists    = "Book with same title already exists!"
	bookMsgNotFound  = "book does not exist"
	bookMsgForbidden = "You are not allowed to modify this book!"
	bookMsgDeleted   = "Book deleted"
	bookMsgNoToken   = "A valid token is missing!"
)

// bookStamp is the created_at and updated_at of a book stored before the
// test clock moves: testStart in RFC 3339, UTC.
var bookStamp = testStart.UTC().Format(time.RFC3339)

// bookExchange is an answered request together with "METHOD /path", so that
// failures read like "POST /bookapi/books: status = 409, want 201".
type bookExchange struct {
	*response
	req string
}

// bookDo sends a request with ts.do and remembers what was asked.
func bookDo(t *testing.T, ts *testServer, method, path string, body any, headers ...string) bookExchange {
	t.Helper()
	return bookExchange{ts.do(t, method, path, body, headers...), method + " " + path}
}

// wantStatus reports an error unless the answer has status want and a JSON
// Content-Type, and returns whether the status matched.
func (x bookExchange) wantStatus(t *testing.T, want int) bool {
	t.Helper()
	if x.status != want {
		t.Errorf("%s: status = %d, want %d; body %s", x.req, x.status, want, x.body)
		return false
	}
	if ct := x.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s: Content-Type = %q, want %q", x.req, ct, "application/json; charset=utf-8")
	}
	return true
}

// mustStatus is wantStatus that stops the test on a wrong status.
func (x bookExchange) mustStatus(t *testing.T, want int) {
	t.Helper()
	if !x.wantStatus(t, want) {
		t.FailNow()
	}
}

// value decodes the body, numbers as json.Number, failing the test unless
// it is exactly one JSON value.
func (x bookExchange) value(t *testing.T) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(x.body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", x.req, x.body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s: body %q holds more than one JSON value", x.req, x.body)
	}
	return v
}

// object is value for a body that must be a JSON object.
func (x bookExchange) object(t *testing.T) map[string]any {
	t.Helper()
	m, ok := x.value(t).(map[string]any)
	if !ok {
		t.Fatalf("%s: body %s is not a JSON object", x.req, x.body)
	}
	return m
}

// wantError checks an error answer: the status, the body
// {"message": <sentence>, "error": code} (message must equal msg unless msg
// is ""), and no true, false or null anywhere in it.
func (x bookExchange) wantError(t *testing.T, status int, code, msg string) {
	t.Helper()
	if !x.wantStatus(t, status) {
		return
	}
	m := x.object(t)
	bookNoLiterals(t, x)
	got, ok := m["message"].(string)
	if !ok || got == "" {
		t.Errorf("%s: message = %#v, want a sentence", x.req, m["message"])
	}
	if msg != "" && got != msg {
		t.Errorf("%s: message = %q, want %q", x.req, got, msg)
	}
	if m["error"] != code {
		t.Errorf("%s: error = %#v, want %q", x.req, m["error"], code)
	}
}

// message returns the message member of an error body, or "".
func (x bookExchange) message(t *testing.T) string {
	t.Helper()
	s, _ := x.object(t)["message"].(string)
	return s
}

// book checks that the body is exactly {"Book": <book>} and returns the book.
func (x bookExchange) book(t *testing.T) bookView {
	t.Helper()
	m := x.object(t)
	v, ok := m["Book"]
	if !ok || len(m) != 1 {
		t.Fatalf("%s: body %s, want exactly one member \"Book\"", x.req, x.body)
	}
	return bookParse(t, x.req, v)
}

// books checks that the body is exactly {"Books": [<book>...]} and returns them.
func (x bookExchange) books(t *testing.T) []bookView {
	t.Helper()
	m := x.object(t)
	list, ok := m["Books"].([]any)
	if !ok || len(m) != 1 {
		t.Fatalf("%s: body %s, want exactly one member \"Books\", a list", x.req, x.body)
	}
	out := make([]bookView, len(list))
	for i, v := range list {
		out[i] = bookParse(t, x.req, v)
	}
	return out
}

// bookNoLiterals reports every true, false, null or non-integer number in
// the body: seed clients parse bodies with Python's ast.literal_eval, so
// they may hold only strings, integers, lists and objects.
func bookNoLiterals(t *testing.T, x bookExchange) {
	t.Helper()
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case string:
		case json.Number:
			if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
				t.Errorf("%s: %s = %s, want only integers", x.req, path, v)
			}
		default:
			t.Errorf("%s: %s = %#v; only strings, integers, lists and objects are allowed", x.req, path, v)
		}
	}
	walk("body", x.value(t))
}

// bookView is a book object as a client decodes it; hasISBN tells an absent
// isbn member from a present one.
type bookView struct {
	id                   int64
	title, author, isbn  string
	hasISBN              bool
	owner                string
	createdAt, updatedAt string
}

// bookParse checks that v is a book object as API.md defines it — id, title,
// author, optional isbn (absent, never null, when unset), owner, created_at
// and updated_at in RFC 3339 UTC — and returns it.
func bookParse(t *testing.T, req string, v any) bookView {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: book = %#v, want an object", req, v)
	}
	for name := range m {
		switch name {
		case "id", "title", "author", "isbn", "owner", "created_at", "updated_at":
		default:
			t.Errorf("%s: book has an unexpected member %q", req, name)
		}
	}
	str := func(name string) string {
		t.Helper()
		s, ok := m[name].(string)
		if !ok {
			t.Errorf("%s: book %s = %#v, want a string", req, name, m[name])
		}
		return s
	}
	var b bookView
	if n, ok := m["id"].(json.Number); !ok {
		t.Errorf("%s: book id = %#v, want an integer", req, m["id"])
	} else if id, err := strconv.ParseInt(string(n), 10, 64); err != nil || id < 1 {
		t.Errorf("%s: book id = %s, want a positive integer", req, n)
	} else {
		b.id = id
	}
	b.title, b.author, b.owner = str("title"), str("author"), str("owner")
	b.createdAt, b.updatedAt = str("created_at"), str("updated_at")
	for _, s := range []string{b.createdAt, b.updatedAt} {
		if _, err := time.Parse(time.RFC3339, s); err != nil || !strings.HasSuffix(s, "Z") {
			t.Errorf("%s: book timestamp %q, want RFC 3339 in UTC", req, s)
		}
	}
	if v, ok := m["isbn"]; ok {
		s, ok := v.(string)
		if !ok || s == "" {
			t.Errorf("%s: book isbn = %#v, want a non-empty string or no member", req, v)
		}
		b.isbn, b.hasISBN = s, true
	}
	return b
}

// bookPath is the URL path of the book with this id.
func bookPath(id int64) string { return "/bookapi/books/" + strconv.FormatInt(id, 10) }

// bookCreate stores a book through POST /bookapi/books (isbn "" for none)
// and returns it.
func bookCreate(t *testing.T, ts *testServer, token, title, author, isbn string) bookView {
	t.Helper()
	body := map[string]string{"title": title, "author": author}
	if isbn != "" {
		body["isbn"] = isbn
	}
	x := bookDo(t, ts, "POST", "/bookapi/books", body, bearer(token)...)
	x.mustStatus(t, http.StatusCreated)
	return x.book(t)
}

// bookFetch returns the book with this id through GET /bookapi/books/{id}.
func bookFetch(t *testing.T, ts *testServer, token string, id int64) bookView {
	t.Helper()
	x := bookDo(t, ts, "GET", bookPath(id), nil, bearer(token)...)
	x.mustStatus(t, http.StatusOK)
	return x.book(t)
}

// bookWantGone fails the test unless GET /bookapi/books/{id} is a 404.
func bookWantGone(t *testing.T, ts *testServer, token string, id int64) {
	t.Helper()
	bookDo(t, ts, "GET", bookPath(id), nil, bearer(token)...).
		wantError(t, http.StatusNotFound, "not_found", bookMsgNotFound)
}

// bookWantCount fails the test unless the books table holds n rows.
func bookWantCount(t *testing.T, ts *testServer, n int) {
	t.Helper()
	if got := ts.count(t, "books"); got != n {
		t.Errorf("books stored = %d, want %d", got, n)
	}
}

// bookIDs returns the ids of books, in order.
func bookIDs(books []bookView) []int64 {
	ids := make([]int64, len(books))
	for i, b := range books {
		ids[i] = b.id
	}
	return ids
}

// bookFixture is a server with users alice and bob and one book of
// alice's. Tests that need an administrator create one with ts.newAdmin.
type bookFixture struct {
	ts         *testServer
	alice, bob string   // access tokens
	dune       bookView // alice's "Dune" by Frank Herbert, ISBN 9780306406157
}

// bookNewFixture builds a bookFixture on a fresh server.
func bookNewFixture(t *testing.T) bookFixture {
	t.Helper()
	ts := newTestServer(t)
	f := bookFixture{ts: ts, alice: ts.newUser(t, "alice"), bob: ts.newUser(t, "bob")}
	f.dune = bookCreate(t, ts, f.alice, "Dune", "Frank Herbert", "978-0-306-40615-7")
	want := bookView{id: f.dune.id, title: "Dune", author: "Frank Herbert", isbn: "9780306406157", hasISBN: true,
		owner: "alice", createdAt: bookStamp, updatedAt: bookStamp}
	if f.dune != want {
		t.Fatalf("POST /bookapi/books: book = %+v, want %+v", f.dune, want)
	}
	return f
}

// unchanged fails the test unless alice's Dune is the only book and is
// exactly as it was created.
func (f bookFixture) unchanged(t *testing.T) {
	t.Helper()
	bookWantCount(t, f.ts, 1)
	if got := bookFetch(t, f.ts, f.alice, f.dune.id); got != f.dune {
		t.Errorf("GET %s: book = %+v, want it unchanged: %+v", bookPath(f.dune.id), got, f.dune)
	}
}

// bookLinkPattern matches a Link header with one rel="next" target.
var bookLinkPattern = regexp.MustCompile(`^<([^<>]+)>; rel="next"$`)

// bookNextLink returns the target of the answer's rel="next" Link header, or
// "" when there is none.
func bookNextLink(t *testing.T, x bookExchange) string {
	t.Helper()
	links := x.header.Values("Link")
	switch len(links) {
	case 0:
		return ""
	case 1:
	default:
		t.Fatalf("%s: %d Link headers %q, want at most one", x.req, len(links), links)
	}
	m := bookLinkPattern.FindStringSubmatch(links[0])
	if m == nil {
		t.Fatalf("%s: Link = %q, want </bookapi/books?...>; rel=\"next\"", x.req, links[0])
	}
	return m[1]
}

// bookWalk lists books from path (GET /bookapi/books with a query) and
// follows rel="next" links to the end. Each link must point at
// /bookapi/books, keep limit, q, author and owner, continue after the page's
// last book, and lead to a non-empty page. It returns every book seen and
// the number of pages.
func bookWalk(t *testing.T, ts *testServer, token, path string) ([]bookView, int) {
	t.Helper()
	first, err := url.Parse(path)
	if err != nil {
		t.Fatalf("parse %q: %v", path, err)
	}
	wantLimit := first.Query().Get("limit")
	if !first.Query().Has("limit") {
		wantLimit = "100"
	}
	var all []bookView
	for pages := 1; ; pages++ {
		if pages > 2000 {
			t.Fatalf("GET %s: still following Link after %d pages", path, pages)
		}
		x := bookDo(t, ts, "GET", path, nil, bearer(token)...)
		x.mustStatus(t, http.StatusOK)
		page := x.books(t)
		if pages > 1 && len(page) == 0 {
			t.Errorf("%s: empty page, but the previous page's Link said more books follow", x.req)
		}
		all = append(all, page...)
		next := bookNextLink(t, x)
		if next == "" {
			return all, pages
		}
		u, err := url.Parse(next)
		if err != nil {
			t.Fatalf("%s: Link target %q: %v", x.req, next, err)
		}
		q := u.Query()
		if u.Path != "/bookapi/books" || u.Host != "" {
			t.Errorf("%s: Link target %q, want a path /bookapi/books", x.req, next)
		}
		if got := q.Get("limit"); got != wantLimit {
			t.Errorf("%s: Link limit = %q, want %q", x.req, got, wantLimit)
		}
		if len(page) > 0 {
			if got, want := q.Get("after"), strconv.FormatInt(page[len(page)-1].id, 10); got != want {
				t.Errorf("%s: Link after = %q, want %q (the page's last id)", x.req, got, want)
			}
		}
		for _, name := range []string{"q", "author", "owner"} {
			if q.Has(name) != first.Query().Has(name) || q.Get(name) != first.Query().Get(name) {
				t.Errorf("%s: Link %s = %q (present %t), want %q (present %t)", x.req, name,
					q.Get(name), q.Has(name), first.Query().Get(name), first.Query().Has(name))
			}
		}
		path = next
	}
}

// bookSend is ts.do for goroutines other than the test's: it returns an
// error instead of failing the test.
func bookSend(ts *testServer, method, path string, body []byte, headers ...string) (int, []byte, error) {
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// TestBooksAddBook checks the seed create route: its 200 body, title conflicts in any
// letter case or padding, and its 401s.
func TestBooksAddBook(t *testing.T) {
	t.Parallel()

	t.Run("created", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		tok := ts.newUser(t, "alice")
		x := bookDo(t, ts, "POST", "/bookapi/addbook",
			map[string]string{"title": "Dune", "author": "Frank Herbert", "isbn": "978-0-306-40615-7"},
			"x-access-token", tok)
		x.mustStatus(t, http.StatusOK)
		bookNoLiterals(t, x)
		m := x.object(t)
		if len(m) != 2 || m["message"] != "new book created" {
			t.Errorf("%s: body %s, want {\"message\": \"new book created\", \"id\": N}", x.req, x.body)
		}
		n, _ := m["id"].(json.Number)
		id, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || id < 1 {
			t.Fatalf("%s: id = %#v, want a positive integer", x.req, m["id"])
		}
		want := bookView{id: id, title: "Dune", author: "Frank Herbert", isbn: "9780306406157", hasISBN: true,
			owner: "alice", createdAt: bookStamp, updatedAt: bookStamp}
		if got := bookFetch(t, ts, tok, id); got != want {
			t.Errorf("GET %s: book = %+v, want %+v", bookPath(id), got, want)
		}
		bookWantCount(t, ts, 1)
	})

	t.Run("bearer token", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		tok := ts.newUser(t, "alice")
		bookDo(t, ts, "POST", "/bookapi/addbook", map[string]string{"title": "Dune", "author": "Frank Herbert"},
			bearer(tok)...).wantStatus(t, http.StatusOK)
		bookWantCount(t, ts, 1)
	})

	conflicts := []struct {
		name, first, second string
	}{
		{"same title", "Dune", "Dune"},
		{"other letter case", "Dune", "dUNE"},
		{"after trimming", "Dune", "  Dune \t"},
		{"trimmed and upper case", "Dune", "\u00a0DUNE\n"},
		{"unicode case", "Ärger", "ärger"},
		{"unicode case, longer", "ärger im büro", "ÄRGER IM BÜRO"},
		{"unicode case after trimming", "Ärger", " ÄRGER "},
		{"greek case", "Οδύσσεια", "ΟΔΎΣΣΕΙΑ"},
		// Unicode's lower case of a word-final capital sigma is ς (the
		// Final_Sigma rule of toLowercase; Python's str.lower, the seed's
		// language, applies it), so these two have the same lower-case form.
		{"greek final sigma", "Οδυσσεύς", "ΟΔΥΣΣΕΎΣ"},
	}
	for _, tc := range conflicts {
		t.Run("conflict/"+tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			alice, bob := ts.newUser(t, "alice"), ts.newUser(t, "bob")
			bookDo(t, ts, "POST", "/bookapi/addbook", map[string]string{"title": tc.first, "author": "A"},
				"x-access-token", alice).mustStatus(t, http.StatusOK)
			x := bookDo(t, ts, "POST", "/bookapi/addbook", map[string]string{"title": tc.second, "author": "B"},
				"x-access-token", bob)
			x.wantError(t, http.StatusConflict, "conflict", bookMsgExists)
			bookWantCount(t, ts, 1)
			list := bookDo(t, ts, "GET", "/bookapi/books", nil, bearer(alice)...)
			list.mustStatus(t, http.StatusOK)
			if books := list.books(t); len(books) != 1 || books[0].title != tc.first || books[0].owner != "alice" {
				t.Errorf("%s: books %+v, want only alice's %q", list.req, books, tc.first)
			}
		})
	}

	t.Run("conflict with a book from POST /bookapi/books", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		bookDo(t, f.ts, "POST", "/bookapi/addbook", map[string]string{"title": "dune", "author": "Someone"},
			"x-access-token", f.bob).wantError(t, http.StatusConflict, "conflict", bookMsgExists)
		f.unchanged(t)
	})

	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		x := bookDo(t, ts, "POST", "/bookapi/addbook", map[string]string{"title": "Dune", "author": "Frank Herbert"})
		x.wantError(t, http.StatusUnauthorized, "token_missing", bookMsgNoToken)
		if got, want := x.header.Get("WWW-Authenticate"), `Bearer realm="bookapi"`; got != want {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", x.req, got, want)
		}
		bookWantCount(t, ts, 0)
	})

	t.Run("invalid token", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		x := bookDo(t, ts, "POST", "/bookapi/addbook", map[string]string{"title": "Dune", "author": "Frank Herbert"},
			"x-access-token", "not.a.token")
		x.wantError(t, http.StatusUnauthorized, "invalid_token", "Invalid token!")
		bookWantCount(t, ts, 0)
	})

	t.Run("invalid input", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		tok := ts.newUser(t, "alice")
		bookDo(t, ts, "POST", "/bookapi/addbook", map[string]string{"title": " ", "author": "Frank Herbert"},
			"x-access-token", tok).wantError(t, http.StatusBadRequest, "invalid_request", "")
		bookWantCount(t, ts, 0)
	})
}

// TestBooksCreate checks POST /bookapi/books: the 201 book and Location, ISBN and
// text normalisation, and every validation rule.
func TestBooksCreate(t *testing.T) {
	t.Parallel()

	accepted := []struct {
		name                string
		body                map[string]string
		title, author, isbn string // isbn "" means absent
	}{
		{"title and author", map[string]string{"title": "Dune", "author": "Frank Herbert"}, "Dune", "Frank Herbert", ""},
		{"isbn-13 with hyphens", map[string]string{"title": "Dune", "author": "F", "isbn": "978-0-306-40615-7"}, "Dune", "F", "9780306406157"},
		{"isbn-13 with spaces", map[string]string{"title": "Dune", "author": "F", "isbn": "978 0 306 40615 7"}, "Dune", "F", "9780306406157"},
		{"isbn-13 bare", map[string]string{"title": "Dune", "author": "F", "isbn": "9780306406157"}, "Dune", "F", "9780306406157"},
		{"isbn-10 with hyphens", map[string]string{"title": "Dune", "author": "F", "isbn": "0-306-40615-2"}, "Dune", "F", "0306406152"},
		{"isbn-10 with X check digit", map[string]string{"title": "Dune", "author": "F", "isbn": "0-8044-2957-X"}, "Dune", "F", "080442957X"},
		{"isbn-10 with spaces and hyphens", map[string]string{"title": "Dune", "author": "F", "isbn": " 0 8044-2957 X "}, "Dune", "F", "080442957X"},
		{"title and author trimmed", map[string]string{"title": "  Dune \t\n", "author": "\u00a0Frank Herbert\u2003"}, "Dune", "Frank Herbert", ""},
		{"inner spaces kept", map[string]string{"title": "The  Hobbit", "author": "J. R. R.  Tolkien"}, "The  Hobbit", "J. R. R.  Tolkien", ""},
		{"200 two-byte code points", map[string]string{"title": strings.Repeat("é", 200), "author": strings.Repeat("ß", 200)},
			strings.Repeat("é", 200), strings.Repeat("ß", 200), ""},
		{"200 three-byte code points", map[string]string{"title": strings.Repeat("界", 200), "author": strings.Repeat("界", 200)},
			strings.Repeat("界", 200), strings.Repeat("界", 200), ""},
		{"200 four-byte code points", map[string]string{"title": strings.Repeat("😀", 200), "author": "F"}, strings.Repeat("😀", 200), "F", ""},
		{"200 code points after trimming", map[string]string{"title": "  " + strings.Repeat("é", 200) + "  ", "author": "F"},
			strings.Repeat("é", 200), "F", ""},
		{"one code point", map[string]string{"title": "é", "author": "F"}, "é", "F", ""},
		{"SQL in title and author", map[string]string{"title": "'; DROP TABLE books; --", "author": "Robert'); DROP TABLE users;--"},
			"'; DROP TABLE books; --", "Robert'); DROP TABLE users;--", ""},
		{"quotes, backslashes and markup", map[string]string{"title": `"Q" \ <b>&amp;</b> %_`, "author": `O'Brien \n`},
			`"Q" \ <b>&amp;</b> %_`, `O'Brien \n`, ""},
	}
	for _, tc := range accepted {
		t.Run("accepted/"+tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			tok := ts.newUser(t, "alice")
			x := bookDo(t, ts, "POST", "/bookapi/books", tc.body, bearer(tok)...)
			x.mustStatus(t, http.StatusCreated)
			got := x.book(t)
			want := bookView{id: got.id, title: tc.title, author: tc.author, isbn: tc.isbn, hasISBN: tc.isbn != "",
				owner: "alice", createdAt: bookStamp, updatedAt: bookStamp}
			if got != want {
				t.Errorf("%s: book = %+v, want %+v", x.req, got, want)
			}
			if loc, want := x.header.Get("Location"), bookPath(got.id); loc != want {
				t.Errorf("%s: Location = %q, want %q", x.req, loc, want)
			}
			if fetched := bookFetch(t, ts, tok, got.id); fetched != got {
				t.Errorf("GET %s: book = %+v, want %+v", bookPath(got.id), fetched, got)
			}
			bookWantCount(t, ts, 1)
		})
	}

	t.Run("owner is the caller's username as written", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		tok := ts.newUser(t, "Carol.Smith")
		if b := bookCreate(t, ts, tok, "Dune", "Frank Herbert", ""); b.owner != "Carol.Smith" {
			t.Errorf("POST /bookapi/books: owner = %q, want %q", b.owner, "Carol.Smith")
		}
	})

	t.Run("ids and Location of successive books", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		tok := ts.newUser(t, "alice")
		a := bookCreate(t, ts, tok, "A", "X", "")
		b := bookCreate(t, ts, tok, "B", "X", "")
		if b.id <= a.id {
			t.Errorf("POST /bookapi/books: second id %d, want more than the first, %d", b.id, a.id)
		}
	})

	contentTypes := []struct{ name, contentType string }{
		{"with charset", "application/json; charset=utf-8"},
		{"upper case", "Application/JSON"},
		{"+json suffix", "application/vnd.bookapi+json"},
		{"none", ""},
	}
	for _, tc := range contentTypes {
		t.Run("content type/"+tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			tok := ts.newUser(t, "alice")
			bookDo(t, ts, "POST", "/bookapi/books", `{"title":"Dune","author":"Frank Herbert"}`,
				"Content-Type", tc.contentType, "Authorization", "Bearer "+tok).wantStatus(t, http.StatusCreated)
			bookWantCount(t, ts, 1)
		})
	}

	rejected := []struct {
		name    string
		body    map[string]string
		mention string // the member the message must name
	}{
		{"empty title", map[string]string{"title": "", "author": "F"}, "title"},
		{"whitespace-only title", map[string]string{"title": " \t\n ", "author": "F"}, "title"},
		{"unicode-space-only title", map[string]string{"title": "\u00a0\u2003", "author": "F"}, "title"},
		{"empty author", map[string]string{"title": "Dune", "author": ""}, "author"},
		{"whitespace-only author", map[string]string{"title": "Dune", "author": "   "}, "author"},
		{"missing title", map[string]string{"author": "F"}, "title"},
		{"missing author", map[string]string{"title": "Dune"}, "author"},
		{"201 two-byte code points", map[string]string{"title": strings.Repeat("é", 201), "author": "F"}, "title"},
		{"201 three-byte code points in author", map[string]string{"title": "Dune", "author": strings.Repeat("界", 201)}, "author"},
		{"201 ASCII characters", map[string]string{"title": strings.Repeat("a", 201), "author": "F"}, "title"},
		{"NUL in title", map[string]string{"title": "Du\x00ne", "author": "F"}, "title"},
		{"newline in title", map[string]string{"title": "Du\nne", "author": "F"}, "title"},
		{"tab in author", map[string]string{"title": "Dune", "author": "Frank\tHerbert"}, "author"},
		{"escape in title", map[string]string{"title": "\x1b[31mDune", "author": "F"}, "title"},
		{"DEL in title", map[string]string{"title": "Du\x7fne", "author": "F"}, "title"},
		{"C1 control in title", map[string]string{"title": "Du\u0085ne", "author": "F"}, "title"},
		{"isbn-13 bad check digit", map[string]string{"title": "Dune", "author": "F", "isbn": "978-0-306-40615-8"}, "isbn"},
		{"isbn-10 bad check digit", map[string]string{"title": "Dune", "author": "F", "isbn": "0-306-40615-3"}, "isbn"},
		{"isbn-10 X not last", map[string]string{"title": "Dune", "author": "F", "isbn": "X306406152"}, "isbn"},
		{"isbn-13 with X", map[string]string{"title": "Dune", "author": "F", "isbn": "978030640615X"}, "isbn"},
		{"isbn 9 digits", map[string]string{"title": "Dune", "author": "F", "isbn": "030640615"}, "isbn"},
		{"isbn 11 digits", map[string]string{"title": "Dune", "author": "F", "isbn": "03064061520"}, "isbn"},
		{"isbn 14 digits", map[string]string{"title": "Dune", "author": "F", "isbn": "97803064061570"}, "isbn"},
		{"isbn letters", map[string]string{"title": "Dune", "author": "F", "isbn": "abcdefghij"}, "isbn"},
		{"isbn with dots", map[string]string{"title": "Dune", "author": "F", "isbn": "978.0.306.40615.7"}, "isbn"},
		{"isbn with full-width digits", map[string]string{"title": "Dune", "author": "F", "isbn": "９７８０３０６４０６１５７"}, "isbn"},
	}
	for _, tc := range rejected {
		t.Run("rejected/"+tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			tok := ts.newUser(t, "alice")
			x := bookDo(t, ts, "POST", "/bookapi/books", tc.body, bearer(tok)...)
			x.wantError(t, http.StatusBadRequest, "invalid_request", "")
			if msg := x.message(t); !strings.Contains(msg, tc.mention) {
				t.Errorf("%s: message %q does not name %q", x.req, msg, tc.mention)
			}
			if loc := x.header.Get("Location"); loc != "" {
				t.Errorf("%s: Location = %q on a failure", x.req, loc)
			}
			bookWantCount(t, ts, 0)
		})
	}

	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		bookDo(t, ts, "POST", "/bookapi/books", map[string]string{"title": "Dune", "author": "F"}).
			wantError(t, http.StatusUnauthorized, "token_missing", bookMsgNoToken)
		bookWantCount(t, ts, 0)
	})
}

// TestBooksGet checks GET /bookapi/books/{id}, and that any id that is not a
// stored positive integer is a 404.
func TestBooksGet(t *testing.T) {
	t.Parallel()
	f := bookNewFixture(t)

	t.Run("owner", func(t *testing.T) {
		t.Parallel()
		if got := bookFetch(t, f.ts, f.alice, f.dune.id); got != f.dune {
			t.Errorf("GET %s: book = %+v, want %+v", bookPath(f.dune.id), got, f.dune)
		}
	})
	t.Run("any user", func(t *testing.T) {
		t.Parallel()
		if got := bookFetch(t, f.ts, f.bob, f.dune.id); got != f.dune {
			t.Errorf("GET %s: book = %+v, want %+v", bookPath(f.dune.id), got, f.dune)
		}
	})
	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		bookDo(t, f.ts, "GET", bookPath(f.dune.id), nil).
			wantError(t, http.StatusUnauthorized, "token_missing", bookMsgNoToken)
	})

	missing := []struct{ name, id string }{
		{"no such book", strconv.FormatInt(f.dune.id+1000, 10)},
		{"letters", "abc"},
		{"zero", "0"},
		{"negative", "-1"},
		{"negative of an existing id", "-" + strconv.FormatInt(f.dune.id, 10)},
		{"fraction", "1.5"},
		{"exponent", "1e0"},
		{"hex", "0x1"},
		{"huge", "99999999999999999999"},
		{"max int64", "9223372036854775807"},
		{"space", "%201"},
		{"leading zero", "0" + strconv.FormatInt(f.dune.id, 10)},
		{"plus sign", "%2B" + strconv.FormatInt(f.dune.id, 10)},
	}
	for _, tc := range missing {
		t.Run("not found/"+tc.name, func(t *testing.T) {
			t.Parallel()
			bookDo(t, f.ts, "GET", "/bookapi/books/"+tc.id, nil, bearer(f.alice)...).
				wantError(t, http.StatusNotFound, "not_found", bookMsgNotFound)
		})
	}
}

// TestBooksUpdate checks PATCH /bookapi/books/{id}: partial changes, clearing the
// ISBN, bad members, conflicts, timestamps, and who may change a book.
func TestBooksUpdate(t *testing.T) {
	t.Parallel()

	changes := []struct {
		name   string
		body   string
		change func(b *bookView)
	}{
		{"title", `{"title":"Dune Messiah"}`, func(b *bookView) { b.title = "Dune Messiah" }},
		{"title trimmed", `{"title":"  Children of Dune \t"}`, func(b *bookView) { b.title = "Children of Dune" }},
		{"title in another case of its own", `{"title":"DUNE"}`, func(b *bookView) { b.title = "DUNE" }},
		{"title of 200 code points", `{"title":"` + strings.Repeat("界", 200) + `"}`, func(b *bookView) { b.title = strings.Repeat("界", 200) }},
		{"SQL title", `{"title":"'; DROP TABLE books; --"}`, func(b *bookView) { b.title = "'; DROP TABLE books; --" }},
		{"author", `{"author":"Brian Herbert"}`, func(b *bookView) { b.author = "Brian Herbert" }},
		{"isbn normalised", `{"isbn":"0-8044-2957-X"}`, func(b *bookView) { b.isbn = "080442957X" }},
		{"isbn null clears it", `{"isbn":null}`, func(b *bookView) { b.isbn, b.hasISBN = "", false }},
		{"empty isbn clears it, as on create", `{"isbn":""}`, func(b *bookView) { b.isbn, b.hasISBN = "", false }},
		{"everything", `{"title":"Emma","author":"Jane Austen","isbn":"0 306 40615 2"}`, func(b *bookView) {
			b.title, b.author, b.isbn = "Emma", "Jane Austen", "0306406152"
		}},
	}
	for _, tc := range changes {
		t.Run("owner changes/"+tc.name, func(t *testing.T) {
			t.Parallel()
			f := bookNewFixture(t)
			want := f.dune
			tc.change(&want)
			x := bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), tc.body, bearer(f.alice)...)
			x.mustStatus(t, http.StatusOK)
			if got := x.book(t); got != want {
				t.Errorf("%s: book = %+v, want %+v", x.req, got, want)
			}
			if got := bookFetch(t, f.ts, f.alice, f.dune.id); got != want {
				t.Errorf("GET %s: book = %+v, want %+v", bookPath(f.dune.id), got, want)
			}
			bookWantCount(t, f.ts, 1)
		})
	}

	t.Run("isbn set on a book without one", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		emma := bookCreate(t, f.ts, f.alice, "Emma", "Jane Austen", "")
		x := bookDo(t, f.ts, "PATCH", bookPath(emma.id), `{"isbn":"978-0-306-40615-7"}`, bearer(f.alice)...)
		x.mustStatus(t, http.StatusOK)
		want := emma
		want.isbn, want.hasISBN = "9780306406157", true
		if got := x.book(t); got != want {
			t.Errorf("%s: book = %+v, want %+v", x.req, got, want)
		}
	})

	invalid := []struct {
		name, body, code, mention string
	}{
		{"empty object", `{}`, "invalid_request", ""},
		{"title null", `{"title":null}`, "invalid_request", "title"},
		{"title number", `{"title":5}`, "invalid_request", "title"},
		{"title true", `{"title":true}`, "invalid_request", "title"},
		{"title list", `{"title":["Dune"]}`, "invalid_request", "title"},
		{"title object", `{"title":{"text":"Dune"}}`, "invalid_request", "title"},
		{"author null", `{"author":null}`, "invalid_request", "author"},
		{"author number", `{"author":5}`, "invalid_request", "author"},
		{"isbn number", `{"isbn":5}`, "invalid_request", "isbn"},
		{"isbn as a JSON number", `{"isbn":9780306406157}`, "invalid_request", "isbn"},
		{"isbn false", `{"isbn":false}`, "invalid_request", "isbn"},
		{"isbn bad check digit", `{"isbn":"978-0-306-40615-8"}`, "invalid_request", "isbn"},
		{"title empty", `{"title":""}`, "invalid_request", "title"},
		{"title whitespace", `{"title":"  \t "}`, "invalid_request", "title"},
		{"title of 201 code points", `{"title":"` + strings.Repeat("é", 201) + `"}`, "invalid_request", "title"},
		{"title control character", `{"title":"Du\u0000ne"}`, "invalid_request", "title"},
		{"author control character", `{"author":"Frank\nHerbert"}`, "invalid_request", "author"},
		{"good title, bad author", `{"title":"Emma","author":""}`, "invalid_request", "author"},
		{"good title, bad isbn", `{"title":"Emma","isbn":"123"}`, "invalid_request", "isbn"},
		{"owner member", `{"owner":"bob"}`, "invalid_request", "owner"},
		{"id member", `{"id":99,"title":"Emma"}`, "invalid_request", "id"},
		{"timestamp member", `{"updated_at":"2000-01-01T00:00:00Z"}`, "invalid_request", "updated_at"},
	}
	for _, tc := range invalid {
		t.Run("invalid/"+tc.name, func(t *testing.T) {
			t.Parallel()
			f := bookNewFixture(t)
			x := bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), tc.body, bearer(f.alice)...)
			x.wantError(t, http.StatusBadRequest, tc.code, "")
			if msg := x.message(t); !strings.Contains(msg, tc.mention) {
				t.Errorf("%s: message %q does not name %q", x.req, msg, tc.mention)
			}
			f.unchanged(t)
		})
	}

	t.Run("title clash", func(t *testing.T) {
		t.Parallel()
		for _, title := range []string{"Dune", "dune", " DUNE "} {
			f := bookNewFixture(t)
			emma := bookCreate(t, f.ts, f.alice, "Emma", "Jane Austen", "")
			bookDo(t, f.ts, "PATCH", bookPath(emma.id), map[string]string{"title": title}, bearer(f.alice)...).
				wantError(t, http.StatusConflict, "conflict", bookMsgExists)
			if got := bookFetch(t, f.ts, f.alice, emma.id); got != emma {
				t.Errorf("GET %s after a clash with %q: book = %+v, want %+v", bookPath(emma.id), title, got, emma)
			}
			if got := bookFetch(t, f.ts, f.alice, f.dune.id); got != f.dune {
				t.Errorf("GET %s: book = %+v, want %+v", bookPath(f.dune.id), got, f.dune)
			}
		}
	})

	t.Run("freed title can be taken", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), `{"title":"Dune (1965)"}`, bearer(f.alice)...).
			mustStatus(t, http.StatusOK)
		bookCreate(t, f.ts, f.bob, "dune", "Someone", "")
	})

	t.Run("timestamps", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		f.ts.clock.advance(time.Minute)
		x := bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), `{"author":"F. Herbert"}`, bearer(f.alice)...)
		x.mustStatus(t, http.StatusOK)
		want := f.dune
		want.author = "F. Herbert"
		want.updatedAt = testStart.Add(time.Minute).UTC().Format(time.RFC3339)
		if got := x.book(t); got != want {
			t.Errorf("%s: book = %+v, want %+v (created_at kept, updated_at moved)", x.req, got, want)
		}
		if got := bookFetch(t, f.ts, f.alice, f.dune.id); got != want {
			t.Errorf("GET %s: book = %+v, want %+v", bookPath(f.dune.id), got, want)
		}
	})

	t.Run("non-owner forbidden", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{`{"title":"Mine now"}`, `{"isbn":null}`, `{"author":"Bob"}`} {
			f := bookNewFixture(t)
			bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), body, bearer(f.bob)...).
				wantError(t, http.StatusForbidden, "forbidden", bookMsgForbidden)
			f.unchanged(t)
		}
	})

	t.Run("admin may change another's book", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		x := bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), `{"title":"Dune (edited)","isbn":null}`,
			bearer(f.ts.newAdmin(t, "root"))...)
		x.mustStatus(t, http.StatusOK)
		want := f.dune
		want.title, want.isbn, want.hasISBN = "Dune (edited)", "", false
		if got := x.book(t); got != want {
			t.Errorf("%s: book = %+v, want %+v (owner still alice)", x.req, got, want)
		}
	})

	missing := []struct{ name, id string }{
		{"no such book", "999"},
		{"letters", "abc"},
		{"zero", "0"},
		{"negative", "-1"},
	}
	for _, tc := range missing {
		t.Run("not found/"+tc.name, func(t *testing.T) {
			t.Parallel()
			f := bookNewFixture(t)
			bookDo(t, f.ts, "PATCH", "/bookapi/books/"+tc.id, `{"title":"Emma"}`, bearer(f.alice)...).
				wantError(t, http.StatusNotFound, "not_found", bookMsgNotFound)
			f.unchanged(t)
		})
	}

	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), `{"title":"Emma"}`).
			wantError(t, http.StatusUnauthorized, "token_missing", bookMsgNoToken)
		f.unchanged(t)
	})
}

// TestBooksDelete checks DELETE /bookapi/books/{id}: owner and admin may, others
// get 403, and a missing book is a 404.
func TestBooksDelete(t *testing.T) {
	t.Parallel()

	deleters := []struct {
		name    string
		headers func(t *testing.T, f bookFixture) []string
	}{
		{"owner with x-access-token", func(_ *testing.T, f bookFixture) []string { return []string{"x-access-token", f.alice} }},
		{"owner with bearer", func(_ *testing.T, f bookFixture) []string { return bearer(f.alice) }},
		{"admin", func(t *testing.T, f bookFixture) []string { return bearer(f.ts.newAdmin(t, "root")) }},
	}
	for _, tc := range deleters {
		t.Run("deleted by "+tc.name, func(t *testing.T) {
			t.Parallel()
			f := bookNewFixture(t)
			headers := tc.headers(t, f)
			x := bookDo(t, f.ts, "DELETE", bookPath(f.dune.id), nil, headers...)
			x.mustStatus(t, http.StatusOK)
			bookNoLiterals(t, x)
			if got, want := x.object(t), map[string]any{"message": bookMsgDeleted}; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: body %v, want %v", x.req, got, want)
			}
			bookWantGone(t, f.ts, f.alice, f.dune.id)
			bookWantCount(t, f.ts, 0)
			bookDo(t, f.ts, "DELETE", bookPath(f.dune.id), nil, headers...).
				wantError(t, http.StatusNotFound, "not_found", bookMsgNotFound)
		})
	}

	t.Run("non-owner forbidden", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		bookDo(t, f.ts, "DELETE", bookPath(f.dune.id), nil, "x-access-token", f.bob).
			wantError(t, http.StatusForbidden, "forbidden", bookMsgForbidden)
		f.unchanged(t)
	})

	t.Run("title free again", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		bookDo(t, f.ts, "DELETE", bookPath(f.dune.id), nil, bearer(f.alice)...).mustStatus(t, http.StatusOK)
		bookCreate(t, f.ts, f.bob, "DUNE", "Someone", "")
	})

	missing := []struct{ name, id string }{
		{"no such book", "999"},
		{"letters", "abc"},
		{"zero", "0"},
		{"negative", "-1"},
		{"fraction", "1.5"},
		{"huge", "99999999999999999999"},
	}
	for _, tc := range missing {
		t.Run("not found/"+tc.name, func(t *testing.T) {
			t.Parallel()
			f := bookNewFixture(t)
			bookDo(t, f.ts, "DELETE", "/bookapi/books/"+tc.id, nil, "x-access-token", f.alice).
				wantError(t, http.StatusNotFound, "not_found", bookMsgNotFound)
			f.unchanged(t)
		})
	}

	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		bookDo(t, f.ts, "DELETE", bookPath(f.dune.id), nil).
			wantError(t, http.StatusUnauthorized, "token_missing", bookMsgNoToken)
		f.unchanged(t)
	})
}

// bookShelf starts a server with users alice and bob and seven books chosen
// to tell substrings from exact matches, letter cases apart, and LIKE
// wildcards from literal characters. It returns alice's token and the id of
// each book by title.
func bookShelf(t *testing.T) (*testServer, string, map[string]int64) {
	t.Helper()
	ts := newTestServer(t)
	tokens := map[string]string{"alice": ts.newUser(t, "alice"), "bob": ts.newUser(t, "bob")}
	ids := map[string]int64{}
	for _, b := range []struct{ owner, title, author string }{
		{"alice", "The Hobbit", "J. R. R. Tolkien"},
		{"bob", "Dune", "Frank Herbert"},
		{"alice", "100% Pure", "Ann Smith"},
		{"bob", "100 Pure Days", "Ann_Smith"},
		{"alice", "Ärger im Büro", "ANN SMITH"},
		{"alice", "Dune Messiah", "Frank Herbert"},
		{"bob", "Children", "Frank Herbertson"},
	} {
		ids[b.title] = bookCreate(t, ts, tokens[b.owner], b.title, b.author, "").id
	}
	return ts, tokens["alice"], ids
}

// TestBooksList checks GET /bookapi/books: the envelope, id order, limit and after,
// the rel="next" Link, and the q, author and owner filters.
func TestBooksList(t *testing.T) {
	t.Parallel()

	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		tok := ts.newUser(t, "alice")
		x := bookDo(t, ts, "GET", "/bookapi/books", nil, "x-access-token", tok)
		x.mustStatus(t, http.StatusOK)
		if got, want := x.value(t), map[string]any{"Books": []any{}}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: body %s, want exactly {\"Books\": []}", x.req, x.body)
		}
		if link := x.header.Get("Link"); link != "" {
			t.Errorf("%s: Link = %q, want none", x.req, link)
		}
	})

	t.Run("id order and whole books", func(t *testing.T) {
		t.Parallel()
		f := bookNewFixture(t)
		want := []bookView{
			f.dune,
			bookCreate(t, f.ts, f.bob, "Emma", "Jane Austen", ""),
			bookCreate(t, f.ts, f.alice, "Beloved", "Toni Morrison", "0-306-40615-2"),
			bookCreate(t, f.ts, f.bob, "Anna Karenina", "Leo Tolstoy", ""),
		}
		x := bookDo(t, f.ts, "GET", "/bookapi/books", nil, bearer(f.bob)...)
		x.mustStatus(t, http.StatusOK)
		bookNoLiterals(t, x)
		if got := x.books(t); !slices.Equal(got, want) {
			t.Errorf("%s: books\n%+v\nwant\n%+v", x.req, got, want)
		}
		if link := x.header.Get("Link"); link != "" {
			t.Errorf("%s: Link = %q, want none", x.req, link)
		}
	})

	t.Run("default limit is 100", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		tok := ts.newUser(t, "alice")
		var ids []int64
		for i := range 101 {
			ids = append(ids, bookCreate(t, ts, tok, fmt.Sprintf("Book %03d", i), "A", "").id)
		}
		x := bookDo(t, ts, "GET", "/bookapi/books", nil, bearer(tok)...)
		x.mustStatus(t, http.StatusOK)
		if got := bookIDs(x.books(t)); !slices.Equal(got, ids[:100]) {
			t.Errorf("%s: ids %v, want the first 100 %v", x.req, got, ids[:100])
		}
		want := fmt.Sprintf("/bookapi/books?limit=100&after=%d", ids[99])
		if got := bookNextLink(t, x); got != want {
			t.Errorf("%s: next link %q, want %q", x.req, got, want)
		}
		all, pages := bookWalk(t, ts, tok, "/bookapi/books")
		if got := bookIDs(all); !slices.Equal(got, ids) || pages != 2 {
			t.Errorf("walk /bookapi/books: %d pages, ids %v, want 2 pages, ids %v", pages, got, ids)
		}
	})

	t.Run("limit and after", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		tok := ts.newUser(t, "alice")
		var ids []int64
		for _, title := range []string{"A", "B", "C", "D"} {
			ids = append(ids, bookCreate(t, ts, tok, title, "X", "").id)
		}
		pages := []struct {
			name, query string
			want        []int64
			more        bool
		}{
			{"limit 1", "limit=1", ids[:1], true},
			{"limit 3", "limit=3", ids[:3], true},
			{"limit equal to the count", "limit=4", ids, false},
			{"limit 1000", "limit=1000", ids, false},
			{"after 0", "after=0", ids, false},
			{"after the first", "after=" + strconv.FormatInt(ids[0], 10), ids[1:], false},
			{"after the first, limit 2", "after=" + strconv.FormatInt(ids[0], 10) + "&limit=2", ids[1:3], true},
			{"after the second last, limit 1", "after=" + strconv.FormatInt(ids[2], 10) + "&limit=1", ids[3:], false},
			{"after the last", "after=" + strconv.FormatInt(ids[3], 10), []int64{}, false},
			{"after beyond every id", "after=1000000", []int64{}, false},
		}
		for _, tc := range pages {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				x := bookDo(t, ts, "GET", "/bookapi/books?"+tc.query, nil, bearer(tok)...)
				x.mustStatus(t, http.StatusOK)
				if got := bookIDs(x.books(t)); !slices.Equal(got, tc.want) {
					t.Errorf("%s: ids %v, want %v", x.req, got, tc.want)
				}
				if more := bookNextLink(t, x) != ""; more != tc.more {
					t.Errorf("%s: next link present = %t, want %t (Link %q)", x.req, more, tc.more, x.header.Get("Link"))
				}
			})
		}

		bad := []struct{ name, query, mention string }{
			{"limit empty", "limit=", "limit"},
			{"limit 0", "limit=0", "limit"},
			{"limit 1001", "limit=1001", "limit"},
			{"limit letters", "limit=x", "limit"},
			{"limit negative", "limit=-1", "limit"},
			{"limit fraction", "limit=1.5", "limit"},
			{"limit huge", "limit=99999999999999999999", "limit"},
			{"after letters", "after=x", "after"},
			{"after negative", "after=-1", "after"},
			{"after empty", "after=", "after"},
			{"after fraction", "after=1.5", "after"},
			{"q empty", "q=", "q"},
			{"q of one character", "q=a", "q"},
			{"q of two characters", "q=du", "q"},
			{"q of two characters in four bytes", "q=%C3%A4%C3%B6", "q"},
			{"q of a letter and a combining mark", "q=e%CC%81", "q"},
		}
		for _, tc := range bad {
			t.Run("bad/"+tc.name, func(t *testing.T) {
				t.Parallel()
				x := bookDo(t, ts, "GET", "/bookapi/books?"+tc.query, nil, bearer(tok)...)
				x.wantError(t, http.StatusBadRequest, "invalid_request", "")
				if msg := x.message(t); !strings.Contains(msg, tc.mention) {
					t.Errorf("%s: message %q does not name %q", x.req, msg, tc.mention)
				}
			})
		}
	})

	t.Run("filters", func(t *testing.T) {
		t.Parallel()
		ts, tok, ids := bookShelf(t)
		filters := []struct {
			name  string
			query url.Values
			want  []string // titles, in id order
		}{
			{"none", url.Values{}, []string{"The Hobbit", "Dune", "100% Pure", "100 Pure Days", "Ärger im Büro", "Dune Messiah", "Children"}},
			{"q in title", url.Values{"q": {"hobbit"}}, []string{"The Hobbit"}},
			{"q in title, upper case", url.Values{"q": {"HOBB"}}, []string{"The Hobbit"}},
			{"q in author", url.Values{"q": {"tolkien"}}, []string{"The Hobbit"}},
			{"q in title or author", url.Values{"q": {"herbert"}}, []string{"Dune", "Dune Messiah", "Children"}},
			{"q substring", url.Values{"q": {"une"}}, []string{"Dune", "Dune Messiah"}},
			{"q unicode case", url.Values{"q": {"ÄRGER"}}, []string{"Ärger im Büro"}},
			{"q unicode lower case", url.Values{"q": {"büro"}}, []string{"Ärger im Büro"}},
			{"q percent is literal", url.Values{"q": {"% P"}}, []string{"100% Pure"}},
			{"q percent inside is literal", url.Values{"q": {"100%"}}, []string{"100% Pure"}},
			{"q underscore is literal", url.Values{"q": {"_sm"}}, []string{"100 Pure Days"}},
			{"q underscore inside is literal", url.Values{"q": {"n_s"}}, []string{"100 Pure Days"}},
			{"q backslash is literal", url.Values{"q": {`n\_s`}}, nil},
			{"q star is literal", url.Values{"q": {"une*"}}, nil},
			{"q quotes are literal", url.Values{"q": {`"dune"`}}, nil},
			{"q OR is literal", url.Values{"q": {"dune OR hobbit"}}, nil},
			{"q three characters in six bytes", url.Values{"q": {"BÜR"}}, []string{"Ärger im Büro"}},
			{"q no match", url.Values{"q": {"zzz"}}, nil},
			{"author exact", url.Values{"author": {"Frank Herbert"}}, []string{"Dune", "Dune Messiah"}},
			{"author other case", url.Values{"author": {"fRANK hERBERT"}}, []string{"Dune", "Dune Messiah"}},
			{"author of mixed cases", url.Values{"author": {"ann smith"}}, []string{"100% Pure", "Ärger im Büro"}},
			{"author underscore", url.Values{"author": {"Ann_Smith"}}, []string{"100 Pure Days"}},
			{"author not a substring", url.Values{"author": {"Frank"}}, nil},
			{"author no wildcard", url.Values{"author": {"Ann%"}}, nil},
			{"owner", url.Values{"owner": {"alice"}}, []string{"The Hobbit", "100% Pure", "Ärger im Büro", "Dune Messiah"}},
			{"owner other case", url.Values{"owner": {"BOB"}}, []string{"Dune", "100 Pure Days", "Children"}},
			{"owner not a prefix", url.Values{"owner": {"ali"}}, nil},
			{"owner unknown", url.Values{"owner": {"carol"}}, nil},
			{"q and owner", url.Values{"q": {"dune"}, "owner": {"bob"}}, []string{"Dune"}},
			{"author and owner", url.Values{"author": {"frank herbert"}, "owner": {"alice"}}, []string{"Dune Messiah"}},
			{"q and author", url.Values{"q": {"pure"}, "author": {"ann smith"}}, []string{"100% Pure"}},
			{"all three", url.Values{"q": {"ert"}, "author": {"Frank Herbertson"}, "owner": {"Bob"}}, []string{"Children"}},
			{"all three, no match", url.Values{"q": {"100"}, "author": {"ann smith"}, "owner": {"bob"}}, nil},
		}
		for _, tc := range filters {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				want := []int64{}
				for _, title := range tc.want {
					want = append(want, ids[title])
				}
				whole := url.Values{"limit": {"1000"}}
				for k, v := range tc.query {
					whole[k] = v
				}
				x := bookDo(t, ts, "GET", "/bookapi/books?"+whole.Encode(), nil, bearer(tok)...)
				x.mustStatus(t, http.StatusOK)
				if got := bookIDs(x.books(t)); !slices.Equal(got, want) {
					t.Errorf("%s: ids %v, want %v (%q)", x.req, got, want, tc.want)
				}
				for _, limit := range []string{"1", "2", "3"} {
					paged := url.Values{"limit": {limit}}
					for k, v := range tc.query {
						paged[k] = v
					}
					path := "/bookapi/books?" + paged.Encode()
					all, pages := bookWalk(t, ts, tok, path)
					n, _ := strconv.Atoi(limit)
					wantPages := max(1, (len(want)+n-1)/n)
					if got := bookIDs(all); !slices.Equal(got, want) || pages != wantPages {
						t.Errorf("walk %s: %d pages, ids %v, want %d pages, ids %v", path, pages, got, wantPages, want)
					}
				}
			})
		}
	})

	t.Run("link keeps filters", func(t *testing.T) {
		t.Parallel()
		ts, tok, ids := bookShelf(t)
		x := bookDo(t, ts, "GET", "/bookapi/books?q=Dune&owner=ALICE&author=frank+herbert&limit=1&after=0", nil, bearer(tok)...)
		x.mustStatus(t, http.StatusOK)
		if got := bookIDs(x.books(t)); len(got) != 1 || got[0] != ids["Dune Messiah"] {
			t.Fatalf("%s: ids %v, want [%d]", x.req, got, ids["Dune Messiah"])
		}
		if link := bookNextLink(t, x); link != "" {
			t.Errorf("%s: Link target %q, want none: nothing more matches", x.req, link)
		}
		x = bookDo(t, ts, "GET", "/bookapi/books?q=Dune&owner=bob&author=Frank%20Herbert&limit=1", nil, bearer(tok)...)
		x.mustStatus(t, http.StatusOK)
		if got := bookIDs(x.books(t)); len(got) != 1 || got[0] != ids["Dune"] {
			t.Errorf("%s: ids %v, want [%d]", x.req, got, ids["Dune"])
		}
		if link := bookNextLink(t, x); link != "" {
			t.Errorf("%s: Link target %q, want none: nothing more matches", x.req, link)
		}
		x = bookDo(t, ts, "GET", "/bookapi/books?q=100&limit=1", nil, bearer(tok)...)
		x.mustStatus(t, http.StatusOK)
		link := bookNextLink(t, x)
		u, err := url.Parse(link)
		if err != nil || link == "" {
			t.Fatalf("%s: Link target %q, want a next page", x.req, link)
		}
		want := url.Values{"limit": {"1"}, "after": {strconv.FormatInt(ids["100% Pure"], 10)}, "q": {"100"}}
		if u.Path != "/bookapi/books" || !reflect.DeepEqual(u.Query(), want) {
			t.Errorf("%s: Link target %q, want /bookapi/books with %v", x.req, link, want)
		}
	})

	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t)
		bookDo(t, ts, "GET", "/bookapi/books", nil).
			wantError(t, http.StatusUnauthorized, "token_missing", bookMsgNoToken)
	})
}

// searchPieces are what TestBooksSearchMatchesScan makes titles, authors and
// searches of: letters whose case mappings are not one to one (ß and ẞ,
// final sigma, dotted and dotless i, the Kelvin sign, a titlecase digraph, a
// ligature), precomposed and combining accents, emoji, LIKE's and FTS5's
// metacharacters and operators, and plain words in several cases.
func searchPieces() []string {
	return []string{
		"a", "B", "c", "ß", "SS", "ss", "ẞ", "Σ", "σ", "ς", "İ", "ı", "i", "I", "\u212a", "k", "K",
		"é", "e\u0301", "É", "ǅ", "ǆ", "ﬁ", "Ά", "ά", "ΐ", "Ä", "ä", "a\u0308", "ö", "😀", "👍🏽",
		"%", "_", `\`, "'", `"`, "*", " ", "(", ")", ":", "^", "+", "-", "{", "}",
		"AND", "NEAR", "OR", "NOT", "the", "The", "THE", "İstanbul", "Straße", "STRASSE", "Σίσυφος",
	}
}

// TestBooksSearchMatchesScan holds every answer to q to a scan in Go of the
// books the test knows it stored (strings.Contains over foldKey of title and
// author, in id order), over random titles and authors made of
// searchPieces, alone and with author, owner, after and a small limit whose
// Link pages are followed to the end. It checks again after creates, after
// PATCHes of titles and authors, after deletes of books, and after the
// deletion of a user with their books, so the search index must follow each.
func TestBooksSearchMatchesScan(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	admin := ts.newAdmin(t, "admin")
	owners := []string{"Ann", "bob", "Carol"}
	tokens := map[string]string{}
	for _, o := range owners {
		tokens[o] = ts.newUser(t, o)
	}
	rng := rand.New(rand.NewPCG(16, 3))
	pieces := searchPieces()
	text := func(most int) string {
		for {
			var b strings.Builder
			for range 1 + rng.IntN(most) {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
			if s := strings.TrimSpace(b.String()); s != "" && utf8.RuneCountInString(s) <= maxTextLen {
				return s
			}
		}
	}
	type entry struct{ title, author, owner string }
	lib := map[int64]entry{} // what the test stored, by id
	create := func(owner string) {
		x := bookDo(t, ts, "POST", "/bookapi/books", map[string]string{"title": text(8), "author": text(4)}, bearer(tokens[owner])...)
		if x.status == http.StatusConflict { // a title taken in another case
			return
		}
		x.mustStatus(t, http.StatusCreated)
		b := x.book(t)
		lib[b.id] = entry{b.title, b.author, b.owner}
	}
	pick := func() int64 {
		ids := slices.Sorted(maps.Keys(lib))
		return ids[rng.IntN(len(ids))]
	}
	// scan is every book the test stored that f selects, in id order.
	scan := func(f bookFilter) []int64 {
		var ids []int64
		for _, id := range slices.Sorted(maps.Keys(lib)) {
			if e := lib[id]; scanMatch(f, id, e.title, e.author, e.owner) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	check := func(stage string) {
		t.Helper()
		found := 0 // searches that find a book: the pieces of stored text at least
		queries := []string{"%%%", "___", `\\\`, `"""`, "***", "and", "NEAR", "ß s", "STRASSE", "σς", "e\u0301e"}
		for range 20 { // pieces of stored titles and authors, as stored or in another case: found
			e := lib[pick()]
			s := []rune([]string{e.title, e.author}[rng.IntN(2)])
			if len(s) < minSearchLen {
				continue
			}
			start := rng.IntN(len(s) - minSearchLen + 1)
			sub := string(s[start : start+minSearchLen+rng.IntN(len(s)-start-minSearchLen+1)])
			queries = append(queries, []func(string) string{strings.ToUpper, strings.ToLower, strings.Clone}[rng.IntN(3)](sub))
		}
		for range 10 { // made of pieces: mostly found nowhere
			queries = append(queries, text(4))
		}
		for _, q := range queries {
			if utf8.RuneCountInString(q) < minSearchLen {
				continue
			}
			anyAuthor := []func(string) string{strings.ToUpper, strings.ToLower, strings.Clone}[rng.IntN(3)](lib[pick()].author)
			after := pick()
			for _, v := range []struct {
				query url.Values
				f     bookFilter // what the query selects
			}{
				{url.Values{"limit": {"1000"}}, bookFilter{}},
				{url.Values{"limit": {"2"}}, bookFilter{}},
				{url.Values{"limit": {"1000"}, "author": {anyAuthor}}, bookFilter{Author: anyAuthor}},
				{url.Values{"limit": {"3"}, "owner": {"ann"}}, bookFilter{Owner: "ann"}},
				{url.Values{"limit": {"1000"}, "after": {strconv.FormatInt(after, 10)}}, bookFilter{After: after}},
			} {
				v.query.Set("q", q)
				v.f.Q = q
				path := "/bookapi/books?" + v.query.Encode()
				books, _ := bookWalk(t, ts, admin, path)
				want := scan(v.f)
				if got := bookIDs(books); !slices.Equal(got, want) {
					t.Errorf("%s: walk %s: ids %v, want %v (q %q)", stage, path, got, want, q)
				}
				if len(want) > 0 {
					found++
				}
			}
		}
		if found < 20 {
			t.Errorf("%s: %d searches found a book, want at least the 20 made of stored text", stage, found)
		}
		checkSearchIndex(t, ts.s.db)
	}

	for i := range 150 {
		create(owners[i%len(owners)])
	}
	check("after creates")

	for range 40 {
		id := pick()
		change := map[string]string{}
		switch rng.IntN(3) {
		case 0:
			change["title"] = text(8)
		case 1:
			change["author"] = text(4)
		default:
			change["title"], change["author"] = text(8), text(4)
		}
		token := admin
		if rng.IntN(2) == 0 {
			token = tokens[lib[id].owner]
		}
		x := bookDo(t, ts, "PATCH", bookPath(id), change, bearer(token)...)
		if x.status == http.StatusConflict {
			continue
		}
		x.mustStatus(t, http.StatusOK)
		b := x.book(t)
		lib[id] = entry{b.title, b.author, b.owner}
	}
	check("after PATCHes")

	for range 15 {
		id := pick()
		bookDo(t, ts, "DELETE", bookPath(id), nil, bearer(tokens[lib[id].owner])...).mustStatus(t, http.StatusOK)
		delete(lib, id)
	}
	check("after deletes")

	carol := ts.do(t, "GET", "/me", nil, bearer(tokens["Carol"])...).json(t)["public_id"].(string)
	bookDo(t, ts, "DELETE", "/admin/users/"+carol, nil, bearer(admin)...).mustStatus(t, http.StatusOK)
	maps.DeleteFunc(lib, func(_ int64, e entry) bool { return e.owner == "Carol" })
	for i := range 20 {
		create(owners[i%2])
	}
	check("after a user's deletion")
}

// TestBooksSearchLongTerm searches for terms longer than the trigrams the
// index is asked for (maxSearchTrigrams): books that hold the start of the
// term but not all of it, or all of it only across title and author, are
// not answered; the book holding it is; and a term of thousands of
// characters is answered at once, not refused.
func TestBooksSearchLongTerm(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	token := ts.newUser(t, "alice")
	long := "abcdefghijklmnopqrstuvwxyz0123" // 28 trigrams
	books := map[string][2]string{
		"whole":    {"The " + long + " Book", "Anon"},
		"start":    {"The " + long[:24] + " Book", "Anon"},
		"split":    {long[:15], long[15:]},
		"shuffled": {long[10:] + long[:10], "Anon"},
	}
	ids := map[string]int64{}
	for name, b := range books {
		x := bookDo(t, ts, "POST", "/bookapi/books", map[string]string{"title": b[0], "author": b[1]}, bearer(token)...)
		x.mustStatus(t, http.StatusCreated)
		ids[name] = x.book(t).id
	}
	for _, c := range []struct {
		q    string
		want []int64
	}{
		{long, []int64{ids["whole"]}},
		{strings.ToUpper(long[2:]), []int64{ids["whole"]}},
		{long[:24], []int64{ids["whole"], ids["start"]}},
		{long + "4", nil},
		{strings.Repeat(long, 200), nil},
		{strings.Repeat(`\"%_ AND `, 500), nil},
	} {
		found, _ := bookWalk(t, ts, token, "/bookapi/books?"+url.Values{"q": {c.q}}.Encode())
		got := bookIDs(found)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("q %.40q (%d characters): ids %v, want %v", c.q, len(c.q), got, want)
		}
	}
}

// TestSearchTrigrams pins the index query a search term becomes: the
// trigrams at every third character and the last one, each once, quoted,
// at most maxSearchTrigrams of them.
func TestSearchTrigrams(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ab", ""},
		{"abc", `"abc"`},
		{"abcd", `"abc" AND "bcd"`},
		{"abcdef", `"abc" AND "def"`},
		{"abcdefg", `"abc" AND "def" AND "efg"`},
		{"crown garden", `"cro" AND "wn " AND "gar" AND "den"`},
		{"aaaaaaa", `"aaa"`},
		{`a"b"`, `"a""b" AND """b"""`},
		{"äöü\x00", "\"äöü\" AND \"öü\x01\""},
		{"NOT*", `"NOT" AND "OT*"`},
		{strings.Repeat("abcdefghijklmnopqrstuvwxyz", 3), `"abc" AND "def" AND "ghi" AND "jkl" AND "mno" AND "pqr" AND ` +
			`"stu" AND "vwx" AND "yza" AND "bcd" AND "efg" AND "hij" AND "klm" AND "nop" AND "qrs" AND "tuv"`},
	} {
		if got := searchTrigrams(c.in); got != c.want {
			t.Errorf("searchTrigrams(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// bookHugeBody returns a JSON object of exactly n bytes whose author is
// padded to size.
func bookHugeBody(n int) string {
	head, tail := `{"title":"Emma","author":"`, `"}`
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

// TestBooksHostileInput sends bodies that must be refused to every route that
// reads a book, and checks that nothing was stored or changed.
func TestBooksHostileInput(t *testing.T) {
	t.Parallel()
	type input struct {
		name        string
		contentType string // "-" sends none
		body        string
		status      int
		code        string
		mention     string // a member the message must name, if any
	}
	rows := []input{
		{"text/plain", "text/plain", `{"title":"Emma","author":"Jane Austen"}`, 415, "unsupported_media_type", ""},
		{"form", "application/x-www-form-urlencoded", "title=Emma&author=Jane+Austen", 415, "unsupported_media_type", ""},
		{"text/json", "text/json", `{"title":"Emma","author":"Jane Austen"}`, 415, "unsupported_media_type", ""},
		{"application/jsonx", "application/jsonx", `{"title":"Emma","author":"Jane Austen"}`, 415, "unsupported_media_type", ""},
		{"malformed content type", "application/json; charset", `{"title":"Emma","author":"Jane Austen"}`, 415, "unsupported_media_type", ""},
		{"1 MiB + 1", "", bookHugeBody(1<<20 + 1), 413, "body_too_large", ""},
		{"1 MiB is read, then refused by the rules", "", bookHugeBody(1 << 20), 400, "invalid_request", "author"},
		{"empty body", "", "", 400, "invalid_json", ""},
		{"empty body without content type", "-", "", 400, "invalid_json", ""},
		{"whitespace body", "", " \n", 400, "invalid_json", ""},
		{"syntax error", "", `{"title":"Emma",`, 400, "invalid_json", ""},
		{"single quotes", "", `{'title':'Emma','author':'Jane Austen'}`, 400, "invalid_json", ""},
		{"trailing object", "", `{"title":"Emma","author":"Jane Austen"} {}`, 400, "invalid_json", ""},
		{"trailing garbage", "", `{"title":"Emma","author":"Jane Austen"}x`, 400, "invalid_json", ""},
		{"null", "", `null`, 400, "invalid_json", ""},
		{"empty list", "", `[]`, 400, "invalid_json", ""},
		{"list of the object", "", `[{"title":"Emma","author":"Jane Austen"}]`, 400, "invalid_json", ""},
		{"string", "", `"Emma"`, 400, "invalid_json", ""},
		{"number", "", `42`, 400, "invalid_json", ""},
		{"true", "", `true`, 400, "invalid_json", ""},
		{"unknown member owner", "", `{"title":"Emma","author":"Jane Austen","owner":"x"}`, 400, "invalid_request", "owner"},
		{"unknown member id", "", `{"id":1,"title":"Emma","author":"Jane Austen"}`, 400, "invalid_request", "id"},
		{"unknown member admin", "", `{"title":"Emma","author":"Jane Austen","admin":true}`, 400, "invalid_request", "admin"},
		{"member in other case", "", `{"Title":"Emma","author":"Jane Austen"}`, 400, "invalid_request", "Title"},
		{"member all upper case", "", `{"title":"Emma","AUTHOR":"Jane Austen"}`, 400, "invalid_request", "AUTHOR"},
		{"duplicate member", "", `{"title":"Emma","title":"Emma","author":"Jane Austen"}`, 400, "invalid_json", "title"},
		{"duplicate member with other values", "", `{"title":"Emma","author":"Jane Austen","author":"X"}`, 400, "invalid_json", "author"},
		{"bad UTF-8", "", "{\"title\":\"Em\xffma\",\"author\":\"Jane Austen\"}", 400, "invalid_json", ""},
		{"truncated UTF-8", "", "{\"title\":\"Emma\xc3\",\"author\":\"Jane Austen\"}", 400, "invalid_json", ""},
		{"bad UTF-8 in a member name", "", "{\"title\":\"Emma\",\"author\":\"Jane Austen\",\"\xfe\":\"x\"}", 400, "invalid_json", ""},
		{"lone surrogate escape", "", `{"title":"Em\ud800ma","author":"Jane Austen"}`, 400, "invalid_json", ""},
		{"title number", "", `{"title":5,"author":"Jane Austen"}`, 400, "invalid_request", "title"},
		{"title true", "", `{"title":true,"author":"Jane Austen"}`, 400, "invalid_request", "title"},
		{"title null", "", `{"title":null,"author":"Jane Austen"}`, 400, "invalid_request", "title"},
		{"title object", "", `{"title":{"t":"Emma"},"author":"Jane Austen"}`, 400, "invalid_request", "title"},
		{"author list", "", `{"title":"Emma","author":["Jane Austen"]}`, 400, "invalid_request", "author"},
		{"isbn number", "", `{"title":"Emma","author":"Jane Austen","isbn":9780306406157}`, 400, "invalid_request", "isbn"},
		{"isbn true", "", `{"title":"Emma","author":"Jane Austen","isbn":true}`, 400, "invalid_request", "isbn"},
	}
	routes := []struct {
		name, method string
		path         func(f bookFixture) string
		headers      func(f bookFixture) []string
	}{
		{"POST /bookapi/books", "POST", func(bookFixture) string { return "/bookapi/books" },
			func(f bookFixture) []string { return bearer(f.bob) }},
		{"POST /bookapi/addbook", "POST", func(bookFixture) string { return "/bookapi/addbook" },
			func(f bookFixture) []string { return []string{"x-access-token", f.bob} }},
		{"PATCH /bookapi/books/{id}", "PATCH", func(f bookFixture) string { return bookPath(f.dune.id) },
			func(f bookFixture) []string { return bearer(f.alice) }},
	}
	for _, route := range routes {
		for _, tc := range rows {
			t.Run(route.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				f := bookNewFixture(t)
				headers := route.headers(f)
				switch tc.contentType {
				case "":
					headers = append(headers, "Content-Type", "application/json")
				case "-":
					headers = append(headers, "Content-Type", "")
				default:
					headers = append(headers, "Content-Type", tc.contentType)
				}
				x := bookDo(t, f.ts, route.method, route.path(f), tc.body, headers...)
				x.wantError(t, tc.status, tc.code, "")
				if tc.mention != "" && x.status == tc.status {
					if msg := x.message(t); !strings.Contains(msg, tc.mention) {
						t.Errorf("%s: message %q does not name %q", x.req, msg, tc.mention)
					}
				}
				f.unchanged(t)
			})
		}
	}
}

// TestBooksSeedLiterals checks that seed-route answers and error bodies hold no
// true, false or null, which Python's ast.literal_eval would refuse.
func TestBooksSeedLiterals(t *testing.T) {
	t.Parallel()
	rows := []struct {
		name   string
		status int
		code   string // for errors
		send   func(t *testing.T, f bookFixture) bookExchange
	}{
		{"addbook created", 200, "", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", map[string]string{"title": "Emma", "author": "Jane Austen"}, "x-access-token", f.bob)
		}},
		{"addbook created with isbn", 200, "", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook",
				map[string]string{"title": "Emma", "author": "Jane Austen", "isbn": "0306406152"}, "x-access-token", f.bob)
		}},
		{"addbook conflict", 409, "conflict", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", map[string]string{"title": "DUNE", "author": "X"}, "x-access-token", f.bob)
		}},
		{"addbook invalid", 400, "invalid_request", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", map[string]string{"title": "", "author": "X"}, "x-access-token", f.bob)
		}},
		{"addbook unknown member", 400, "invalid_request", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", `{"title":"Emma","author":"X","public":true}`, "x-access-token", f.bob)
		}},
		{"addbook null body", 400, "invalid_json", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", `null`, "x-access-token", f.bob)
		}},
		{"addbook wrong content type", 415, "unsupported_media_type", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", `{"title":"Emma","author":"X"}`, "x-access-token", f.bob, "Content-Type", "text/plain")
		}},
		{"addbook too large", 413, "body_too_large", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", bookHugeBody(1<<20+1), "x-access-token", f.bob)
		}},
		{"addbook no token", 401, "token_missing", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", map[string]string{"title": "Emma", "author": "X"})
		}},
		{"addbook bad token", 401, "invalid_token", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/addbook", map[string]string{"title": "Emma", "author": "X"}, "x-access-token", "x.y.z")
		}},
		{"list with and without isbn", 200, "", func(t *testing.T, f bookFixture) bookExchange {
			bookCreate(t, f.ts, f.bob, "Emma", "Jane Austen", "")
			return bookDo(t, f.ts, "GET", "/bookapi/books", nil, "x-access-token", f.bob)
		}},
		{"list with a next page", 200, "", func(t *testing.T, f bookFixture) bookExchange {
			bookCreate(t, f.ts, f.bob, "Emma", "Jane Austen", "")
			return bookDo(t, f.ts, "GET", "/bookapi/books?limit=1", nil, "x-access-token", f.bob)
		}},
		{"list empty page", 200, "", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "GET", "/bookapi/books?owner=nobody", nil, "x-access-token", f.bob)
		}},
		{"list bad limit", 400, "invalid_request", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "GET", "/bookapi/books?limit=x", nil, "x-access-token", f.bob)
		}},
		{"list no token", 401, "token_missing", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "GET", "/bookapi/books", nil)
		}},
		{"delete", 200, "", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "DELETE", bookPath(f.dune.id), nil, "x-access-token", f.alice)
		}},
		{"delete missing", 404, "not_found", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "DELETE", bookPath(f.dune.id+1), nil, "x-access-token", f.alice)
		}},
		{"delete bad id", 404, "not_found", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "DELETE", "/bookapi/books/abc", nil, "x-access-token", f.alice)
		}},
		{"delete not owner", 403, "forbidden", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "DELETE", bookPath(f.dune.id), nil, "x-access-token", f.bob)
		}},
		{"delete no token", 401, "token_missing", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "DELETE", bookPath(f.dune.id), nil)
		}},
		{"REST get missing", 404, "not_found", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "GET", bookPath(f.dune.id+1), nil, bearer(f.bob)...)
		}},
		{"REST patch forbidden", 403, "forbidden", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), `{"title":"X"}`, bearer(f.bob)...)
		}},
		{"REST patch empty", 400, "invalid_request", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "PATCH", bookPath(f.dune.id), `{}`, bearer(f.alice)...)
		}},
		{"REST create conflict", 409, "conflict", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "POST", "/bookapi/books", `{"title":"dune","author":"X"}`, bearer(f.bob)...)
		}},
		{"unknown route", 404, "not_found", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "GET", "/bookapi/nope", nil, bearer(f.bob)...)
		}},
		{"wrong method", 405, "method_not_allowed", func(t *testing.T, f bookFixture) bookExchange {
			return bookDo(t, f.ts, "PUT", bookPath(f.dune.id), `{"title":"X"}`, bearer(f.bob)...)
		}},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := bookNewFixture(t)
			x := tc.send(t, f)
			if tc.status >= 400 {
				x.wantError(t, tc.status, tc.code, "")
				return
			}
			if x.wantStatus(t, tc.status) {
				bookNoLiterals(t, x)
			}
		})
	}
}

// TestBooksRouteErrors checks the JSON 404 for unknown paths and the JSON 405,
// with its Allow header, for known paths with the wrong method.
func TestBooksRouteErrors(t *testing.T) {
	t.Parallel()
	f := bookNewFixture(t)
	// Runs after every parallel row, before the server closes.
	t.Cleanup(func() { f.unchanged(t) })
	rows := []struct {
		name, method, path string
		status             int
		allow              []string // for 405
	}{
		{"PUT a book", "PUT", bookPath(f.dune.id), 405, []string{"GET", "HEAD", "PATCH", "DELETE"}},
		{"POST a book", "POST", bookPath(f.dune.id), 405, []string{"GET", "HEAD", "PATCH", "DELETE"}},
		{"PUT a missing book", "PUT", "/bookapi/books/999", 405, []string{"GET", "HEAD", "PATCH", "DELETE"}},
		{"DELETE the list", "DELETE", "/bookapi/books", 405, []string{"GET", "HEAD", "POST"}},
		{"PATCH the list", "PATCH", "/bookapi/books", 405, []string{"GET", "HEAD", "POST"}},
		{"GET addbook", "GET", "/bookapi/addbook", 405, []string{"POST"}},
		{"unknown path", "GET", "/bookapi/nope", 404, nil},
		{"unknown path, POST", "POST", "/bookapi/nope", 404, nil},
		{"below a book", "GET", bookPath(f.dune.id) + "/extra", 404, nil},
		{"the bare prefix", "GET", "/bookapi", 404, nil},
		{"trailing slash", "GET", "/bookapi/books/", 404, nil},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			x := bookDo(t, f.ts, tc.method, tc.path, `{"title":"X"}`, bearer(f.alice)...)
			if tc.status == 404 {
				x.wantError(t, 404, "not_found", "")
				return
			}
			x.wantError(t, 405, "method_not_allowed", "")
			var got []string
			for _, v := range x.header.Values("Allow") {
				for _, m := range strings.Split(v, ",") {
					got = append(got, strings.TrimSpace(m))
				}
			}
			want := slices.Clone(tc.allow)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: Allow = %q, want %v", x.req, x.header.Values("Allow"), tc.allow)
			}
		})
	}
}

// TestBooksConcurrentCreate creates one title from many goroutines at once: exactly
// one wins and the rest get 409.
func TestBooksConcurrentCreate(t *testing.T) {
	t.Parallel()
	rows := []struct {
		name   string
		path   string
		status int
		titles func(i int) string
	}{
		{"POST /bookapi/books, same title", "/bookapi/books", 201, func(int) string { return "Dune" }},
		{"POST /bookapi/addbook, same title", "/bookapi/addbook", 200, func(int) string { return "Dune" }},
		{"POST /bookapi/books, letter-case variants", "/bookapi/books", 201, func(i int) string {
			return []string{"Dune", "DUNE", " dune", "dUNE ", "DuNe"}[i%5]
		}},
	}
	const n = 20
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			tokens := []string{ts.newUser(t, "alice"), ts.newUser(t, "bob")}
			type result struct {
				status int
				body   []byte
				err    error
			}
			results := make([]result, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, _ := json.Marshal(map[string]string{"title": tc.titles(i), "author": "Frank Herbert"})
					<-start
					st, data, err := bookSend(ts, "POST", tc.path, body, "Authorization", "Bearer "+tokens[i%2])
					results[i] = result{st, data, err}
				}()
			}
			close(start)
			wg.Wait()
			created := 0
			for i, r := range results {
				switch {
				case r.err != nil:
					t.Errorf("POST %s #%d: %v", tc.path, i, r.err)
				case r.status == tc.status:
					created++
				case r.status == http.StatusConflict:
					var e map[string]any
					if err := json.Unmarshal(r.body, &e); err != nil || e["error"] != "conflict" || e["message"] != bookMsgExists {
						t.Errorf("POST %s #%d: 409 body %s, want the conflict error", tc.path, i, r.body)
					}
				default:
					t.Errorf("POST %s #%d: status = %d, want %d or 409; body %s", tc.path, i, r.status, tc.status, r.body)
				}
			}
			if created != 1 {
				t.Errorf("POST %s ×%d at once: %d created, want exactly 1", tc.path, n, created)
			}
			bookWantCount(t, ts, 1)
		})
	}
}

// benchServer is a server on a SQLite file for benchmarks, with one user
// and a token, served through the real middleware and mux (no network).
type benchServer struct {
	h     http.Handler
	token string
	s     *server
}

// newBenchServer builds a benchServer; books are created through the API.
func newBenchServer(b *testing.B, books int) *benchServer {
	b.Helper()
	cfg := config{db: filepath.Join(b.TempDir(), "bench.db"), issuer: "bookapi", tokenTTL: time.Hour,
		refreshTTL: time.Hour, bcryptCost: bcrypt.MinCost, secret: []byte(testSecret),
		loginMaxFailures: 5, loginMaxAddressFailures: 50, loginWindow: time.Minute}
	st, err := openStore(context.Background(), cfg.db, defaultMaxConns(cfg.db), discardLog())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.close() })
	s := newServer(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)), newKeyring(cfg.secret), time.Now)
	bs := &benchServer{h: s.routes(), s: s}
	bs.serve(b, "POST", "/signup", `{"username":"alice","password":"password-of-alice"}`, http.StatusCreated)
	var login tokenResponse
	json.Unmarshal(bs.serve(b, "POST", "/login", `{"username":"alice","password":"password-of-alice"}`, http.StatusCreated), &login)
	bs.token = login.Token
	for i := range books {
		bs.serve(b, "POST", "/bookapi/books", fmt.Sprintf(`{"title":"Book %d","author":"Author %d","isbn":"9780441172719"}`, i, i%7), http.StatusCreated)
	}
	return bs
}

// serve sends one request straight to the handler and checks its status.
func (bs *benchServer) serve(b *testing.B, method, path, body string, want int) []byte {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	// A cancellable context, as net/http gives every request: the store
	// treats those differently from context.Background.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	if bs.token != "" {
		req.Header.Set("Authorization", "Bearer "+bs.token)
	}
	w := httptest.NewRecorder()
	bs.h.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s: status = %d, want %d; body %s", method, path, w.Code, want, w.Body)
	}
	return w.Body.Bytes()
}

func TestAppendBook(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 16, 20, 11, 999, time.UTC)
	zone := time.FixedZone("UTC+5", 5*3600)
	for i, b := range []book{
		{ID: 1, Title: "Dune", Author: "Frank Herbert", ISBN: "9780441172719", Owner: "alice", CreatedAt: at, UpdatedAt: at},
		{ID: 1 << 62, Title: "No ISBN", Author: "A", Owner: "bob", CreatedAt: at, UpdatedAt: at.Add(time.Hour)},
		{ID: 7, Title: `<script>"x" & \y</script>`, Author: "Οδυσσεύς \u2028", ISBN: "0-19-852663-6", Owner: "ΟΔΥΣΣΕΎΣ",
			CreatedAt: at.In(zone), UpdatedAt: time.Unix(0, 0).UTC()},
		{ID: 8, Title: "ctl \x00\x1f\t\n", Author: "bad \xff utf-8", Owner: "o", CreatedAt: at, UpdatedAt: at},
	} {
		want, err := json.Marshal(newBookResponse(b))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendBook([]byte("["), b); string(got) != "["+string(want) {
			t.Errorf("book %d: appendBook = %s, want [%s", i, got, want)
		}
	}
}

// TestAppendBookGolden pins the bytes appendBook writes, which lists copy
// from the docs stored with each book. If this test fails because the JSON
// of a book changed on purpose, bump docVersion (books.go) and update the
// bytes here: every doc stored in the old format is then written again at
// the next start, and lists never serve the old shape meanwhile.
func TestAppendBookGolden(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 16, 20, 11, 0, time.UTC)
	b := book{ID: 42, Title: "Dune <1>", Author: "Frank Herbert", ISBN: "9780441172719", Owner: "alice", CreatedAt: at, UpdatedAt: at.Add(time.Hour)}
	const want = `{"id":42,"title":"Dune \u003c1\u003e","author":"Frank Herbert","isbn":"9780441172719","owner":"alice",` +
		`"created_at":"2026-11-27T16:20:11Z","updated_at":"2026-11-27T17:20:11Z"}`
	if got := string(appendBook(nil, b)); got != want || docVersion != 1 {
		t.Errorf("appendBook = %s (docVersion %d)\nwant       %s (docVersion 1)\n"+
			"The JSON of a stored doc changed: bump docVersion and update this test.", got, docVersion, want)
	}
}

// BenchmarkAPI measures whole requests through the middleware, the mux and
// a real SQLite file: go test -run '^$' -bench API -benchmem
func BenchmarkAPI(b *testing.B) {
	for _, tc := range []struct {
		name       string
		books      int
		method     string
		path, body string
		status     int
	}{
		{"list-empty", 0, "GET", "/bookapi/books", "", 200},
		{"list-100", 100, "GET", "/bookapi/books", "", 200},
		{"get", 1, "GET", "/bookapi/books/1", "", 200},
		{"me", 0, "GET", "/me", "", 200},            // requireToken and one small answer
		{"invalid-token", 0, "GET", "/me", "", 401}, // refused by the verifier
		{"healthz", 0, "GET", "/healthz", "", 200},  // the middleware alone
	} {
		b.Run(tc.name, func(b *testing.B) {
			bs := newBenchServer(b, tc.books)
			if tc.status == 401 {
				bs.token = bs.token[:len(bs.token)-2] + "xx"
			}
			b.ReportAllocs()
			for b.Loop() {
				bs.serve(b, tc.method, tc.path, tc.body, tc.status)
			}
		})
	}
}

// BenchmarkCreate measures book creation, one client at a time and from
// many at once (where group commit shares fsyncs):
// go test -run '^$' -bench Create -benchmem
func BenchmarkCreate(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		bs := newBenchServer(b, 0)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			bs.serve(b, "POST", "/bookapi/books", `{"title":"Book `+strconv.Itoa(i)+`","author":"A"}`, http.StatusCreated)
		}
	})
	b.Run("parallel-64", func(b *testing.B) {
		bs := newBenchServer(b, 0)
		b.ReportAllocs()
		b.SetParallelism(32) // 64 goroutines on 2 cores
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				bs.serve(b, "POST", "/bookapi/books", `{"title":"Book `+strconv.FormatInt(i, 10)+`","author":"A"}`, http.StatusCreated)
			}
		})
	})
}
