//go:build unix

package main

// The run tests about file modes, which need the process umask and
// syscalls that only Unix has.

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunFilesPrivate is not parallel: the umask is the whole process's.
// With umask 0, anything created with 0644 is readable by every user of the
// machine; the database, its WAL and shared-memory files and the generated
// secret must be 0600 all the same.
func TestRunFilesPrivate(t *testing.T) {
	sqliteOnly(t, "about SQLite itself: its file, pragmas, result codes or query plans")
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

// TestRunRefusesUnsafeSecretFile starts bookapi beside a secret file that
// others may read or write, or that is no regular file: the start must stop
// with one line naming the file and what to do, as ssh does with keys.
func TestRunRefusesUnsafeSecretFile(t *testing.T) {
	t.Parallel()
	private := func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withMode := func(mode os.FileMode) func(*testing.T, string) {
		return func(t *testing.T, path string) {
			private(t, path)
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, secret string)
		want  string // the error must say this; %s is the secret file's path
		fixed bool   // chmod 600 then lets it start
	}{
		{"readable by others", withMode(0o644), "secret file %s is readable by others; run: chmod 600 %s", true},
		{"readable by the group", withMode(0o640), "secret file %s is readable by others; run: chmod 600 %s", true},
		{"writable by others", withMode(0o602), "secret file %s is writable by others; run: chmod 600 %s", true},
		{"executable by others", withMode(0o601), "run: chmod 600 %s", true},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "secret file %s is a directory, not a regular file", false},
		{"a named pipe", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "secret file %s is a named pipe, not a regular file", false},
		{"a symbolic link to a directory", func(t *testing.T, path string) {
			if err := os.Symlink(t.TempDir(), path); err != nil {
				t.Fatal(err)
			}
		}, "secret file %s is a directory, not a regular file", false},
		{"a symbolic link to nothing", func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(t.TempDir(), "missing"), path); err != nil {
				t.Fatal(err)
			}
		}, "secret file %s is a symbolic link to a missing file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "bookapi.db")
			secret := db + ".secret"
			tt.setup(t, secret)
			args := []string{"bookapi", "-addr", "127.0.0.1:0", "-db", db}
			_, stderr, err := runRefused(t, args, nil)
			want := strings.ReplaceAll(tt.want, "%s", secret)
			switch {
			case err == nil:
				t.Fatalf("run with the secret file %s: err = nil, want %q", tt.name, want)
			case !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n"):
				t.Errorf("run with the secret file %s: err = %q, want one line with %q", tt.name, err, want)
			}
			if strings.Contains(stderr, "listening") {
				t.Errorf("run with the secret file %s logged listening:\n%s", tt.name, stderr)
			}
			if !tt.fixed {
				return
			}
			if err := os.Chmod(secret, 0o600); err != nil {
				t.Fatal(err)
			}
			startRun(t, db, nil).stop(t)
		})
	}
	t.Run("a symbolic link to a private file", func(t *testing.T) {
		t.Parallel()
		db := filepath.Join(t.TempDir(), "bookapi.db")
		target := filepath.Join(t.TempDir(), "secret")
		private(t, target)
		if err := os.Symlink(target, db+".secret"); err != nil {
			t.Fatal(err)
		}
		rs := startRun(t, db, nil)
		tok := rs.signupLogin(t, "alice", "password-of-alice")["token"].(string)
		if _, err := verify(tok, newKeyring([]byte(testSecret)), "bookapi", time.Now()); err != nil {
			t.Errorf("token of a server whose secret file links to one holding testSecret: verify with testSecret: %v", err)
		}
		rs.stop(t)
	})
}
