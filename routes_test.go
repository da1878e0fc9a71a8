package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
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
