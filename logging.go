package main

import (
	"io"
	"log/slog"
)

// accessMessage is the message of the access log's lines, one per request.
const accessMessage = "request"

// newLogger builds the one logger, writing text or JSON to w (stderr), each
// record as it is logged.
func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
