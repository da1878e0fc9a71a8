package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// accessMessage is the message of the access log's lines, one per request.
const accessMessage = "request"

// A batch of log lines goes out when it holds batchBytes, or batchDelay after
// its first line.
const (
	batchBytes = 32 << 10
	batchDelay = 100 * time.Millisecond
)

// newLogger builds the one logger, writing text or JSON to b. Access lines
// wait in b's batch; any other record goes out at once, after the lines
// batched before it, so start-up lines, warnings and errors are never late.
func newLogger(format string, b *batchWriter) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(b, nil)
	if format == "json" {
		h = slog.NewJSONHandler(b, nil)
	}
	return slog.New(flushing{h, b})
}

// flushing is a handler that flushes its batchWriter after every record
// but an access line.
type flushing struct {
	slog.Handler
	b *batchWriter
}

// Handle implements slog.Handler.
func (h flushing) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Message != accessMessage {
		if ferr := h.b.flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// WithAttrs implements slog.Handler.
func (h flushing) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushing{h.Handler.WithAttrs(attrs), h.b}
}

// WithGroup implements slog.Handler.
func (h flushing) WithGroup(name string) slog.Handler {
	return flushing{h.Handler.WithGroup(name), h.b}
}

// batchWriter gathers log records on their way to w (stderr) and writes them
// in batches: under load the access log then costs one system call per batch
// rather than one per request, as with nginx's buffered access_log. A batch
// is written when it reaches batchBytes, delay after its first record, or on
// flush. Each Write is one whole record, so a batch holds whole lines.
type batchWriter struct {
	w     io.Writer
	delay time.Duration
	timer *time.Timer // flushes delay after the first record of a batch

	mu    sync.Mutex
	buf   []byte
	armed bool // timer is set for the batch in buf
}

func newBatchWriter(w io.Writer, delay time.Duration) *batchWriter {
	b := &batchWriter{w: w, delay: delay}
	b.timer = time.AfterFunc(time.Hour, func() { b.flush() })
	b.timer.Stop()
	return b
}

// Write adds p to the batch.
func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchBytes {
		return len(p), b.flushLocked()
	}
	if !b.armed {
		b.armed = true
		b.timer.Reset(b.delay)
	}
	return len(p), nil
}

// flush writes the batch out now.
func (b *batchWriter) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *batchWriter) flushLocked() error {
	if b.armed {
		b.timer.Stop() // if it has fired already, its flush finds nothing
		b.armed = false
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	if cap(b.buf) > 4*batchBytes {
		b.buf = nil // a burst of long lines need not stay allocated
	}
	return err
}
