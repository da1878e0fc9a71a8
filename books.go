package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxTextLen is the longest title or author, in code points.
const maxTextLen = 200

// Page sizes for every list.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// newBook is the body of POST /bookapi/books and POST /bookapi/addbook.
type newBook struct {
	Title  string `json:"title"`
	Author string `json:"author"`
	ISBN   string `json:"isbn"`
}

// valid trims and checks the members and normalises the ISBN.
func (b *newBook) valid() error {
	var err error
	if b.Title, err = cleanText("title", b.Title); err != nil {
		return err
	}
	if b.Author, err = cleanText("author", b.Author); err != nil {
		return err
	}
	if b.ISBN != "" {
		if b.ISBN, err = cleanISBN(b.ISBN); err != nil {
			return err
		}
	}
	return nil
}

// bookPatch is the body of PATCH /bookapi/books/{id}. The members are kept
// raw to tell an absent member from null ("isbn": null clears the ISBN).
type bookPatch struct {
	Title  json.RawMessage `json:"title"`
	Author json.RawMessage `json:"author"`
	ISBN   json.RawMessage `json:"isbn"`

	change bookChange
}

func (p *bookPatch) valid() error {
	if p.Title == nil && p.Author == nil && p.ISBN == nil {
		return badRequest("Send at least one of \"title\", \"author\" and \"isbn\" to change.")
	}
	for _, m := range []struct {
		name string
		raw  json.RawMessage
		dst  **string
	}{{"title", p.Title, &p.change.Title}, {"author", p.Author, &p.change.Author}} {
		if m.raw == nil {
			continue
		}
		var s string
		if json.Unmarshal(m.raw, &s) != nil || string(m.raw) == "null" {
			return badRequest("Member %q must be a string.", m.name)
		}
		s, err := cleanText(m.name, s)
		if err != nil {
			return err
		}
		*m.dst = &s
	}
	if p.ISBN != nil {
		var s string
		if string(p.ISBN) != "null" && json.Unmarshal(p.ISBN, &s) != nil {
			return badRequest("Member \"isbn\" must be a string or null.")
		}
		if s == "" { // null, or the empty string a form sends: no ISBN
			p.change.ClearISBN = true
			return nil
		}
		s, err := cleanISBN(s)
		if err != nil {
			return err
		}
		p.change.ISBN = &s
	}
	return nil
}

// cleanText trims s and checks it holds 1-200 code points and no control characters.
func cleanText(member, s string) (string, error) {
	s = strings.TrimSpace(s)
	if n := utf8.RuneCountInString(s); n < 1 || n > maxTextLen {
		return "", badRequest("Member %q must be 1 to %d characters after trimming.", member, maxTextLen)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", badRequest("Member %q must not contain control characters.", member)
	}
	return s, nil
}

// cleanISBN removes hyphens and spaces and checks an ISBN-10 or ISBN-13 check digit.
func cleanISBN(s string) (string, error) {
	s = strings.NewReplacer("-", "", " ", "").Replace(s)
	if !validISBN(s) {
		return "", badRequest("Member \"isbn\" must be an ISBN-10 or ISBN-13 with a valid check digit.")
	}
	return s, nil
}

// validISBN checks the digits and check digit of a bare ISBN-10 or ISBN-13.
func validISBN(s string) bool {
	switch len(s) {
	case 10:
		sum := 0
		for i := range 10 {
			c := s[i]
			var d int
			switch {
			case c >= '0' && c <= '9':
				d = int(c - '0')
			case i == 9 && (c == 'X' || c == 'x'):
				d = 10
			default:
				return false
			}
			sum += (10 - i) * d
		}
		return sum%11 == 0
	case 13:
		sum := 0
		for i := range 13 {
			c := s[i]
			if c < '0' || c > '9' {
				return false
			}
			w := 1
			if i%2 == 1 {
				w = 3
			}
			sum += w * int(c-'0')
		}
		return sum%10 == 0
	}
	return false
}

// maxPooledBody is the largest list buffer kept for reuse: a page of 1000
// books with long titles can be several times this, and a pool of such
// buffers would hold memory no other page needs.
const maxPooledBody = 256 << 10

// bookResponse is a book as every answer shows it.
type bookResponse struct {
	ID        int64  `json:"id"`
	Title     string `json:"title"`
	Author    string `json:"author"`
	ISBN      string `json:"isbn,omitempty"`
	Owner     string `json:"owner"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func newBookResponse(b book) bookResponse {
	return bookResponse{ID: b.ID, Title: b.Title, Author: b.Author, ISBN: b.ISBN, Owner: b.Owner,
		CreatedAt: timestamp(b.CreatedAt), UpdatedAt: timestamp(b.UpdatedAt)}
}

// appendBook appends b as encoding/json writes its bookResponse (TestAppendBook
// holds the two to the same bytes). It renders the docs that book lists copy
// as they are stored (see store.appendBooks): lists, up to 1000 books each,
// are the largest answers the API writes and the most frequent.
func appendBook(dst []byte, b book) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, b.ID, 10)
	dst = append(dst, `,"title":`...)
	dst = appendJSONString(dst, b.Title)
	dst = append(dst, `,"author":`...)
	dst = appendJSONString(dst, b.Author)
	if b.ISBN != "" {
		dst = append(dst, `,"isbn":`...)
		dst = appendJSONString(dst, b.ISBN)
	}
	dst = append(dst, `,"owner":`...)
	dst = appendJSONString(dst, b.Owner)
	dst = append(dst, `,"created_at":"`...)
	dst = b.CreatedAt.UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","updated_at":"`...)
	dst = b.UpdatedAt.UTC().AppendFormat(dst, time.RFC3339)
	return append(dst, `"}`...)
}

// docVersion is the format of the docs appendBook writes, stored with each
// doc. Bump it whenever appendBook's output changes (TestAppendBookGolden
// pins its bytes): a start with a newer version writes every older doc
// again, and until it has, lists read those books from their columns.
const docVersion = 1

// writeBook answers one book in its envelope.
func writeBook(w http.ResponseWriter, status int, b book) {
	writeJSON(w, status, struct {
		Book bookResponse `json:"Book"`
	}{newBookResponse(b)})
}

// storeBook validates and stores a new book for u; a taken title is a 409.
func (s *server) storeBook(w http.ResponseWriter, r *http.Request, u user) (book, error) {
	var req newBook
	if err := decode(w, r, &req); err != nil {
		return book{}, err
	}
	b, err := s.db.createBook(r.Context(), u.ID, req.Title, req.Author, req.ISBN, s.now())
	if errors.Is(err, errConflict) {
		return book{}, errBookExists
	}
	return b, err
}

// addBook is the seed's create: 200 with a message and the new id.
func (s *server) addBook(w http.ResponseWriter, r *http.Request, u user) error {
	b, err := s.storeBook(w, r, u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Message string `json:"message"`
		ID      int64  `json:"id"`
	}{"new book created", b.ID})
	return nil
}

// createBook is the REST create: 201, the book, and its Location.
func (s *server) createBook(w http.ResponseWriter, r *http.Request, u user) error {
	b, err := s.storeBook(w, r, u)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/bookapi/books/"+strconv.FormatInt(b.ID, 10))
	writeBook(w, http.StatusCreated, b)
	return nil
}

// parseLimit reads the limit parameter: 1-1000, 100 when absent.
func parseLimit(q url.Values) (int, error) {
	if !q.Has("limit") {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n < 1 || n > maxLimit {
		return 0, badRequest("Parameter \"limit\" must be a whole number from 1 to %d.", maxLimit)
	}
	return n, nil
}

// nextLink builds an RFC 8288 Link header for the page after the last item,
// keeping the other parameters.
func nextLink(path string, limit int, after string, keep url.Values) string {
	var b strings.Builder
	b.WriteString("<")
	b.WriteString(path)
	b.WriteString("?limit=")
	b.WriteString(strconv.Itoa(limit))
	b.WriteString("&after=")
	b.WriteString(url.QueryEscape(after))
	for _, name := range []string{"q", "author", "owner"} {
		if keep.Has(name) {
			b.WriteString("&" + name + "=" + url.QueryEscape(keep.Get(name)))
		}
	}
	b.WriteString(`>; rel="next"`)
	return b.String()
}

// listBooks answers a page of books in id order, filtered by q, author and
// owner. A q shorter than minSearchLen characters, or empty, is refused: the
// search index cannot answer it, and a read of every book would.
func (s *server) listBooks(w http.ResponseWriter, r *http.Request, _ user) error {
	q := r.URL.Query()
	limit, err := parseLimit(q)
	if err != nil {
		return err
	}
	f := bookFilter{Limit: limit}
	if q.Has("after") {
		f.After, err = strconv.ParseInt(q.Get("after"), 10, 64)
		if err != nil || f.After < 0 {
			return badRequest("Parameter \"after\" must be a book id (a whole number, 0 or more).")
		}
	}
	if q.Has("q") {
		f.Q = q.Get("q")
		if utf8.RuneCountInString(f.Q) < minSearchLen {
			return badRequest("Parameter \"q\" must be at least %d characters.", minSearchLen)
		}
	}
	f.Author = strings.TrimSpace(q.Get("author"))
	f.Owner = strings.TrimSpace(q.Get("owner"))
	buf := s.bodies.Get().(*[]byte)
	body, last, more, err := s.db.appendBooks(r.Context(), append((*buf)[:0], `{"Books":[`...), f)
	if err == nil {
		if more {
			w.Header().Set("Link", nextLink("/bookapi/books", limit, strconv.FormatInt(last, 10), q))
		}
		writeBody(w, http.StatusOK, append(body, "]}\n"...))
	}
	if cap(body) <= maxPooledBody {
		*buf = body
		s.bodies.Put(buf)
	}
	return err
}

// bookID reads the {id} path value. Anything but a positive integer in its
// canonical form names no book, so each book has exactly one URL ("01" and
// "+1" are not book 1).
func bookID(r *http.Request) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 || strconv.FormatInt(id, 10) != v {
		return 0, errBookNotFound
	}
	return id, nil
}

// bookError maps the store's errors for one book to contract answers.
func bookError(err error) error {
	switch {
	case errors.Is(err, errNotFound):
		return errBookNotFound
	case errors.Is(err, errNotOwner):
		return errForbiddenBook
	case errors.Is(err, errConflict):
		return errBookExists
	}
	return err
}

// getBook answers one book.
func (s *server) getBook(w http.ResponseWriter, r *http.Request, _ user) error {
	id, err := bookID(r)
	if err != nil {
		return err
	}
	b, err := s.db.book(r.Context(), id)
	if err != nil {
		return bookError(err)
	}
	writeBook(w, http.StatusOK, b)
	return nil
}

// updateBook changes a book's title, author or ISBN; only its owner or an admin may.
func (s *server) updateBook(w http.ResponseWriter, r *http.Request, u user) error {
	id, err := bookID(r)
	if err != nil {
		return err
	}
	var req bookPatch
	if err := decode(w, r, &req); err != nil {
		return err
	}
	b, err := s.db.updateBook(r.Context(), id, u, req.change, s.now())
	if err != nil {
		return bookError(err)
	}
	writeBook(w, http.StatusOK, b)
	return nil
}

// deleteBook removes a book; only its owner or an admin may.
func (s *server) deleteBook(w http.ResponseWriter, r *http.Request, u user) error {
	id, err := bookID(r)
	if err != nil {
		return err
	}
	if err := s.db.deleteBook(r.Context(), id, u); err != nil {
		return bookError(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Book deleted"})
	return nil
}
