package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestNewLoggerWritesAtOnce checks that each record, access lines included,
// is on the writer as soon as it is logged, as one line of the chosen format.
func TestNewLoggerWritesAtOnce(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		var out bytes.Buffer
		log := newLogger(format, &out)
		log.Info(accessMessage, "status", 200)
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.HasSuffix(out.String(), "\n") {
			t.Fatalf("newLogger(%s) after one record: wrote %q, want one whole line", format, out.String())
		}
		switch format {
		case "text":
			if !strings.Contains(lines[0], "msg="+accessMessage) || !strings.Contains(lines[0], "status=200") {
				t.Errorf("newLogger(text): line %q, want msg=%s and status=200", lines[0], accessMessage)
			}
		case "json":
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["msg"] != accessMessage || rec["status"] != float64(200) {
				t.Errorf("newLogger(json): line %q (%v), want a JSON object with msg %q and status 200", lines[0], err, accessMessage)
			}
		}
		log.Warn("database unavailable")
		if n := strings.Count(out.String(), "\n"); n != 2 {
			t.Errorf("newLogger(%s) after two records: %d lines, want 2", format, n)
		}
	}
}
