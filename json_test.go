package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

// jsonStringSeeds are strings that exercise every escape of a JSON string.
var jsonStringSeeds = []string{
	"", "plain", `"quoted" \back\slash/`, "<a href='x'>&amp;</a>",
	"\x00\x01\x1f\b\f\n\r\t\x7f", "Οδυσσεύς ΟΔΥΣΣΕΎΣ", "line\u2028para\u2029end",
	"\xff\xfe bad \xc3", "\xed\xa0\x80 surrogate half", "emoji 😀 \U0010ffff",
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range jsonStringSeeds {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("appendJSONString(%q) = %s, want x%s", s, got, want)
		}
	}
}

// FuzzAppendJSONString holds appendJSONString to json.Marshal's bytes for
// any string: go test -fuzz FuzzAppendJSONString
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}
