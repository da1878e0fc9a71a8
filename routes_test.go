package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// openAPIPublicPaths are the paths served without a token; every other
// route is wrapped by requireToken or requireAdmin.
var openAPIPublicPaths = []string{"/signup", "/login", "/refresh", "/healthz", "/readyz", "/openapi.json"}

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openAPIDoc is the part of the OpenAPI document the tests read.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
	} `json:"components"`
}

// openAPIOperation is one documented method and path.
type openAPIOperation struct {
	// method is upper-case, as in route patterns.
	method, path string

	OperationID string                     `json:"operationId"`
	Security    *[]map[string][]string     `json:"security"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

// route names the operation as a route pattern does: "GET /me".
func (op openAPIOperation) route() string { return op.method + " " + op.path }

// loadOpenAPI decodes the embedded document.
func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// operations lists every operation of the document, sorted by route.
func (doc openAPIDoc) operations(t *testing.T) []openAPIOperation {
	t.Helper()
	var ops []openAPIOperation
	for path, item := range doc.Paths {
		for key, raw := range item {
			if !slices.Contains(openAPIMethods, key) {
				continue // summary, description, parameters, servers
			}
			op := openAPIOperation{method: strings.ToUpper(key), path: path}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("openapi.json: %s %s: %v", op.method, path, err)
			}
			ops = append(ops, op)
		}
	}
	slices.SortFunc(ops, func(a, b openAPIOperation) int { return strings.Compare(a.route(), b.route()) })
	return ops
}

// servedRoutes lists the route table's patterns as "METHOD /path".
func servedRoutes(t *testing.T, s *server) []string {
	t.Helper()
	var routes []string
	for _, rt := range s.routeTable() {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok || method == "" || !strings.HasPrefix(path, "/") {
			t.Fatalf("routeTable: pattern %q is not \"METHOD /path\"", rt.pattern)
		}
		routes = append(routes, method+" "+path)
	}
	return routes
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	served := servedRoutes(t, ts.s)
	var documented []string
	for _, op := range loadOpenAPI(t).operations(t) {
		documented = append(documented, op.route())
	}

	t.Run("served over HTTP", func(t *testing.T) {
		t.Parallel()
		r := ts.do(t, "GET", "/openapi.json", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /openapi.json: status = %d, want 200", r.status)
		}
		if ct := r.header.Get("Content-Type"); ct != jsonContentType {
			t.Errorf("GET /openapi.json: Content-Type = %q, want %q", ct, jsonContentType)
		}
		if !bytes.Equal(r.body, openAPIDocument) {
			t.Errorf("GET /openapi.json: body (%d bytes) differs from the embedded openapi.json (%d bytes)", len(r.body), len(openAPIDocument))
		}
	})

	for _, tc := range []struct {
		name      string
		have, in  []string
		complaint string
	}{
		{"every route is documented", served, documented, "missing from the document"},
		{"every operation is served", documented, served, "documented but not served by routeTable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, route := range tc.have {
				if !slices.Contains(tc.in, route) {
					t.Errorf("openapi.json: %s %s", route, tc.complaint)
				}
			}
		})
	}
}

func TestOpenAPIDocumentShape(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi.json: openapi = %q, want \"3.1.0\"", doc.OpenAPI)
	}
	ops := doc.operations(t)
	if len(ops) == 0 {
		t.Fatal("openapi.json: no operations")
	}

	byID := map[string]string{}
	for _, op := range ops {
		if op.OperationID == "" {
			continue // reported below
		}
		if prev, ok := byID[op.OperationID]; ok {
			t.Errorf("openapi.json: operationId %q used by both %s and %s", op.OperationID, prev, op.route())
		}
		byID[op.OperationID] = op.route()
	}

	for _, op := range ops {
		t.Run(op.route(), func(t *testing.T) {
			t.Parallel()
			public := slices.Contains(openAPIPublicPaths, op.path)
			if op.OperationID == "" {
				t.Errorf("openapi.json: %s has no operationId", op.route())
			}
			security := doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			switch {
			case public && len(security) != 0:
				t.Errorf("openapi.json: %s is public but has security %v, want []", op.route(), security)
			case !public && len(security) == 0:
				t.Errorf("openapi.json: %s is protected but has no security", op.route())
			}
			for _, req := range security {
				for name := range req {
					if _, ok := doc.Components.SecuritySchemes[name]; !ok {
						t.Errorf("openapi.json: %s names security scheme %q, which components.securitySchemes lacks", op.route(), name)
					}
				}
			}
			success := false
			for status := range op.Responses {
				if n, err := strconv.Atoi(status); (err == nil && n >= 200 && n < 300) || status == "2XX" {
					success = true
				}
			}
			if !success {
				t.Errorf("openapi.json: %s documents no 2xx response", op.route())
			}
			if _, ok := op.Responses["401"]; !public && !ok {
				t.Errorf("openapi.json: %s is protected but documents no 401", op.route())
			}
		})
	}

	t.Run("every $ref resolves", func(t *testing.T) {
		t.Parallel()
		var root any
		if err := json.Unmarshal(openAPIDocument, &root); err != nil {
			t.Fatalf("openapi.json: %v", err)
		}
		refs := collectRefs(root, "#", nil)
		if len(refs) == 0 {
			t.Fatal("openapi.json: no $ref found; the walk is broken")
		}
		for _, rf := range refs {
			if !strings.HasPrefix(rf.ref, "#/components/") {
				t.Errorf("openapi.json: %s: $ref %q does not point into #/components/", rf.at, rf.ref)
				continue
			}
			if _, ok := resolvePointer(root, strings.TrimPrefix(rf.ref, "#")); !ok {
				t.Errorf("openapi.json: %s: $ref %q does not resolve", rf.at, rf.ref)
			}
		}
	})
}

// TestOpenAPIPublicPaths checks the tests' list of public paths against the
// server: a route is protected exactly when it answers a request without a
// token with 401 token_missing.
func TestOpenAPIPublicPaths(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, route := range servedRoutes(t, ts.s) {
		t.Run(route, func(t *testing.T) {
			t.Parallel()
			method, path, _ := strings.Cut(route, " ")
			url := strings.NewReplacer("{id}", "1", "{public_id}", "00000000-0000-4000-8000-000000000000").Replace(path)
			r := ts.do(t, method, url, nil)
			var body errorBody
			json.Unmarshal(r.body, &body) // a success body leaves it empty
			protected := r.status == http.StatusUnauthorized && body.Error == "token_missing"
			if public := slices.Contains(openAPIPublicPaths, path); public == protected {
				t.Errorf("%s %s without a token: status = %d, error = %q; the test lists the path as public = %v", method, url, r.status, body.Error, public)
			}
		})
	}
}

// TestOpenAPIAdmitsValidRequests sends request members at the edges of the
// server's rules, which it accepts, and checks that the document's schemas
// admit them too, so that a client generated from it refuses nothing the
// server takes; and that the error codes are an open set, not an enum.
func TestOpenAPIAdmitsValidRequests(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	// admits reports whether the member's schema admits s by its length,
	// which JSON Schema counts in characters.
	admits := func(schema, member, s string) bool {
		t.Helper()
		m, ok := doc.Components.Schemas[schema].Properties[member]
		if !ok {
			t.Fatalf("openapi.json: no schema for %s.%s", schema, member)
		}
		n := float64(utf8.RuneCountInString(s))
		if min, ok := m["minLength"].(float64); ok && n < min {
			return false
		}
		if max, ok := m["maxLength"].(float64); ok && n > max {
			return false
		}
		return true
	}

	ts := newTestServer(t)
	for i, pw := range []string{"éééé", "😀😀", strings.Repeat("é", 36), strings.Repeat("x", 72)} {
		ts.signup(t, fmt.Sprintf("user%d", i), pw) // fails the test unless 201
		for _, m := range [][2]string{{"Credentials", "password"}, {"PasswordChange", "new_password"}} {
			if !admits(m[0], m[1], pw) {
				t.Errorf("openapi.json: %s.%s refuses the password %q (%d bytes), which the server accepts", m[0], m[1], pw, len(pw))
			}
		}
	}

	tok := ts.newUser(t, "alice")
	text := " \t" + strings.Repeat("é", maxTextLen) + "  "
	if r := ts.do(t, "POST", "/bookapi/books", map[string]string{"title": text, "author": text}, bearer(tok)...); r.status != http.StatusCreated {
		t.Fatalf("POST /bookapi/books with %d characters and surrounding spaces: status = %d, want 201; body %s", maxTextLen, r.status, r.body)
	}
	for _, m := range [][2]string{{"NewBook", "title"}, {"NewBook", "author"}, {"BookPatch", "title"}, {"BookPatch", "author"}} {
		if !admits(m[0], m[1], text) {
			t.Errorf("openapi.json: %s.%s refuses %d characters with surrounding spaces, which the server accepts", m[0], m[1], maxTextLen)
		}
	}

	if _, ok := doc.Components.Schemas["Error"].Properties["error"]["enum"]; ok {
		t.Errorf("openapi.json: Error.error is an enum; a client generated from it would break on any code added later")
	}
}

// TestHeadAnswersEveryGetRoute checks what the document says of HEAD: every
// GET route answers it with the status and headers of the GET, and no body.
func TestHeadAnswersEveryGetRoute(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	admin := ts.newAdmin(t, "root")
	book := ts.do(t, "POST", "/bookapi/books", map[string]string{"title": "Dune", "author": "Frank Herbert"}, bearer(admin)...)
	if book.status != http.StatusCreated {
		t.Fatalf("POST /bookapi/books: status = %d, want 201", book.status)
	}
	id := strconv.FormatInt(int64(book.json(t)["Book"].(map[string]any)["id"].(float64)), 10)
	for _, route := range servedRoutes(t, ts.s) {
		method, path, _ := strings.Cut(route, " ")
		if method != "GET" {
			continue
		}
		path = strings.NewReplacer("{id}", id).Replace(path)
		get := ts.do(t, "GET", path, nil, bearer(admin)...)
		head := ts.do(t, "HEAD", path, nil, bearer(admin)...)
		if head.status != get.status || len(head.body) != 0 {
			t.Errorf("HEAD %s: status = %d with %d bytes of body, want %d (the GET's) and none", path, head.status, len(head.body), get.status)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control"} {
			if head.header.Get(h) != get.header.Get(h) {
				t.Errorf("HEAD %s: %s = %q, GET's = %q", path, h, head.header.Get(h), get.header.Get(h))
			}
		}
	}
}

// jsonRef is one "$ref" of the document and where it sits.
type jsonRef struct {
	at, ref string
}

// collectRefs returns every "$ref" string under v, a decoded JSON value at
// pointer at.
func collectRefs(v any, at string, refs []jsonRef) []jsonRef {
	switch v := v.(type) {
	case map[string]any:
		if rf, ok := v["$ref"].(string); ok {
			refs = append(refs, jsonRef{at, rf})
		}
		for k, child := range v {
			refs = collectRefs(child, at+"/"+escapePointer(k), refs)
		}
	case []any:
		for i, child := range v {
			refs = collectRefs(child, at+"/"+strconv.Itoa(i), refs)
		}
	}
	return refs
}

// escapePointer escapes a member name as an RFC 6901 reference token.
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// resolvePointer follows an RFC 6901 JSON pointer such as
// "/components/schemas/Book" from root.
func resolvePointer(root any, pointer string) (any, bool) {
	if pointer == "" {
		return root, true
	}
	if !strings.HasPrefix(pointer, "/") {
		return nil, false
	}
	v := root
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch node := v.(type) {
		case map[string]any:
			child, ok := node[tok]
			if !ok {
				return nil, false
			}
			v = child
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			v = node[i]
		default:
			return nil, false
		}
	}
	return v, true
}
