//go:build linux

package main

// The tests of user add on a terminal: a pseudo-terminal opened with Linux's
// ioctls, its controlling side played by the test.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/crypto/bcrypt"
)

// ioctl runs the ioctl request req on f with a pointer argument.
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := conn.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// openPTY opens a new pseudo-terminal: ctl is the side the test types into
// and reads what the terminal shows from, tty the terminal bookapi reads.
// t.Cleanup closes both; t is skipped where Linux's /dev/ptmx and /dev/pts
// are unavailable.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test user add on: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	var unlock int32
	var n uint32
	if err := ioctl(ctl, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Skipf("no pseudo-terminal to test user add on: unlock: %v", err)
	}
	if err := ioctl(ctl, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Skipf("no pseudo-terminal to test user add on: get its number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test user add on: %v", err)
	}
	// Closed before ctl (Cleanup runs last in, first out): the hang-up
	// then ends any read of it still waiting.
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// echoOn reports whether the terminal tty echoes what is typed.
func echoOn(t *testing.T, tty *os.File) bool {
	t.Helper()
	var tios syscall.Termios
	if err := ioctl(tty, syscall.TCGETS, unsafe.Pointer(&tios)); err != nil {
		t.Fatalf("get the terminal's settings: %v", err)
	}
	return tios.Lflag&syscall.ECHO != 0
}

// ttyRun is `bookapi user add -db db -bcrypt-cost 4 alice` run on a
// pseudo-terminal.
type ttyRun struct {
	ctl, tty       *os.File
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan error
}

// startTTYRun starts user add for alice on the database db with a new
// pseudo-terminal as its standard input.
func startTTYRun(t *testing.T, db string) *ttyRun {
	t.Helper()
	r := &ttyRun{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	r.ctl, r.tty = openPTY(t)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	t.Cleanup(cancel)
	args := []string{"bookapi", "user", "add", "-db", db, "-bcrypt-cost", "4", "alice"}
	go func() { r.done <- run(ctx, args, runEnv(nil), r.tty, r.stdout, r.stderr) }()
	return r
}

// waitPrompt waits for prompt on stderr and for the terminal's echo to be
// off: only then is a password typed, as a person would type it.
func (r *ttyRun) waitPrompt(t *testing.T, prompt string) {
	t.Helper()
	pollUntil(t, 10*time.Second, fmt.Sprintf("the prompt %q with echo off", prompt), func() bool {
		return strings.HasSuffix(r.stderr.String(), prompt) && !echoOn(t, r.tty)
	})
}

// typeLine types line and Enter on the terminal.
func (r *ttyRun) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := r.ctl.WriteString(line + "\r"); err != nil {
		t.Fatalf("type on the terminal: %v", err)
	}
}

// answer types first at the password prompt and second when asked to
// repeat it, and returns run's result.
func (r *ttyRun) answer(t *testing.T, first, second string) error {
	t.Helper()
	r.waitPrompt(t, "Password for alice: ")
	r.typeLine(t, first)
	r.waitPrompt(t, "Repeat the password: ")
	r.typeLine(t, second)
	return r.wait(t)
}

// wait returns run's result, which must come within 10 s.
func (r *ttyRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("user add on a terminal did not return within 10s; stderr %q", r.stderr)
		return nil
	}
}

// shown returns what the terminal has shown: its echo of what was typed.
// A marker written to the terminal ends it, so the test reads to the
// marker rather than waiting for silence.
func (r *ttyRun) shown(t *testing.T) string {
	t.Helper()
	const marker = "END-OF-TEST"
	if _, err := r.tty.WriteString(marker + "\n"); err != nil {
		t.Fatalf("write to the terminal: %v", err)
	}
	if err := r.ctl.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("set a read deadline on the terminal: %v", err)
	}
	var out []byte
	buf := make([]byte, 1024)
	for !strings.Contains(string(out), marker) {
		n, err := r.ctl.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			t.Fatalf("read what the terminal showed (%q so far): %v", out, err)
		}
	}
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(out)), marker))
}

// userHash returns alice's password hash in db, or "" when she does not exist.
func userHash(t *testing.T, db string) string {
	t.Helper()
	st, err := openStore(context.Background(), db, defaultMaxConns(db), discardLog())
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	defer st.close()
	_, hash, err := st.credentials(context.Background(), "alice")
	if errors.Is(err, errNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("credentials(alice): %v", err)
	}
	return hash
}

// TestRunUserAddTerminal types passwords for user add on a terminal: it
// must ask twice with echo off, refuse two entries that differ, and turn
// echo back on, also when interrupted. The subtests run one at a time: a
// read of an interrupted run outlives it, and must not reach another's
// terminal.
func TestRunUserAddTerminal(t *testing.T) {
	t.Parallel()
	t.Run("same password twice", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "tty.db")
		r := startTTYRun(t, db)
		if err := r.answer(t, "password-of-alice", "password-of-alice"); err != nil {
			t.Fatalf("user add on a terminal: %v; stderr %q", err, r.stderr)
		}
		if !strings.Contains(r.stdout.String(), "created user alice") {
			t.Errorf("user add on a terminal: stdout %q, want created user alice", r.stdout)
		}
		if shown := r.shown(t); strings.Contains(shown, "password") {
			t.Errorf("the terminal showed %q: the password was echoed", shown)
		}
		if !echoOn(t, r.tty) {
			t.Errorf("echo is still off after user add")
		}
		if err := bcrypt.CompareHashAndPassword([]byte(userHash(t, db)), []byte("password-of-alice")); err != nil {
			t.Errorf("alice's stored hash against the password typed: %v", err)
		}
	})
	t.Run("entries differ", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "tty.db")
		r := startTTYRun(t, db)
		if err := r.answer(t, "password-one", "password-two"); err == nil || !strings.Contains(err.Error(), "differ") {
			t.Errorf("user add with two passwords that differ: err = %v, want one saying they differ", err)
		}
		if shown := r.shown(t); strings.Contains(shown, "password") {
			t.Errorf("the terminal showed %q: a password was echoed", shown)
		}
		if hash := userHash(t, db); hash != "" {
			t.Errorf("user add with two passwords that differ created alice")
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "tty.db")
		r := startTTYRun(t, db)
		r.waitPrompt(t, "Password for alice: ")
		r.cancel() // as main's context is on Ctrl-C
		if err := r.wait(t); !errors.Is(err, context.Canceled) {
			t.Errorf("user add interrupted at the prompt: err = %v, want context.Canceled", err)
		}
		if !echoOn(t, r.tty) {
			t.Errorf("echo is still off after user add was interrupted")
		}
		if hash := userHash(t, db); hash != "" {
			t.Errorf("user add interrupted at the prompt created alice")
		}
	})
}
