//go:build unix

package main

// The run tests about file modes, which need the process umask and
// syscalls that only Unix has.

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRunFilesPrivate is not parallel: the umask is the whole process's.
// With umask 0, anything created with 0644 is readable by every user of the
// machine; the database, its WAL and shared-memory files and the generated
// secret must be 0600 all the same.
func TestRunFilesPrivate(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0))
	db := filepath.Join(t.TempDir(), "private.db")
	rs := startRun(t, db, nil)
	tok := rs.signupLogin(t, "alice", "password-of-alice")["token"].(string)
	if r := rs.do(t, "POST", "/bookapi/books", map[string]string{"title": "Dune", "author": "Frank Herbert"}, bearer(tok)...); r.status != http.StatusCreated {
		t.Fatalf("POST /bookapi/books: status = %d, want 201; body %s", r.status, r.body)
	}
	// While the server runs: SQLite removes -wal and -shm when it closes.
	for _, path := range []string{db, db + "-wal", db + "-shm", db + ".secret"} {
		info, err := os.Lstat(path)
		if err != nil {
			t.Errorf("after a start under umask 0 and some writes: %v", err)
			continue
		}
		if mode := info.Mode(); mode != 0o600 {
			t.Errorf("%s: mode %v under umask 0, want -rw-------", filepath.Base(path), mode)
		}
	}
	rs.stop(t)
}
