package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBatchWriterHoldsUntilFlush(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	b := newBatchWriter(&out, time.Hour)
	fmt.Fprintln(b, "one")
	fmt.Fprintln(b, "two")
	if got := out.String(); got != "" {
		t.Fatalf("before flush: wrote %q, want nothing yet", got)
	}
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "one\ntwo\n" {
		t.Fatalf("after flush: wrote %q, want both lines in order", got)
	}
	if err := b.flush(); err != nil || out.String() != "one\ntwo\n" {
		t.Fatalf("second flush: wrote %q (err %v), want nothing more", out.String(), err)
	}
}

func TestBatchWriterDelay(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	b := newBatchWriter(&out, 20*time.Millisecond)
	fmt.Fprintln(b, "late")
	pollUntil(t, 10*time.Second, "the batch to go out after its delay", func() bool { return out.String() == "late\n" })
	fmt.Fprintln(b, "later") // a new batch arms the timer again
	pollUntil(t, 10*time.Second, "the second batch", func() bool { return out.String() == "late\nlater\n" })
}

func TestBatchWriterFull(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	b := newBatchWriter(&out, time.Hour)
	line := strings.Repeat("x", 1023) + "\n"
	for range batchBytes / len(line) {
		fmt.Fprint(b, line)
	}
	if got := len(out.String()); got != batchBytes {
		t.Fatalf("a full batch: wrote %d bytes, want %d at once", got, batchBytes)
	}
}

func TestBatchWriterConcurrent(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	b := newBatchWriter(&out, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				fmt.Fprintf(b, "writer %d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	b.flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("wrote %d lines, want %d", len(lines), 8*500)
	}
	for _, l := range lines {
		var g, i int
		if n, err := fmt.Sscanf(l, "writer %d line %d", &g, &i); n != 2 || err != nil {
			t.Fatalf("line %q is not one whole record", l)
		}
	}
}

func TestLoggerBatchesAccessLines(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		var out syncBuffer
		b := newBatchWriter(&out, time.Hour)
		log := newLogger(format, b).With("component", "test")
		log.LogAttrs(context.Background(), slog.LevelInfo, accessMessage, slog.Int("status", 200))
		if got := out.String(); got != "" {
			t.Fatalf("%s: an access line went out at once: %q", format, got)
		}
		log.Info("listening", "addr", "127.0.0.1:1")
		got := out.String()
		access, listening := strings.Index(got, accessMessage), strings.Index(got, "listening")
		if access < 0 || listening < access || strings.Count(got, "\n") != 2 {
			t.Fatalf("%s: after a start-up line wrote %q, want the access line, then the start-up line", format, got)
		}
		log.Warn("database unavailable")
		if !strings.Contains(out.String(), "database unavailable") {
			t.Fatalf("%s: a warning waited in the batch", format)
		}
	}
}
