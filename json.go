package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// checkObject reports whether data is exactly one JSON object in valid UTF-8,
// with no member given twice in any object, no lone UTF-16 surrogate escapes
// (encoding/json would silently turn them into U+FFFD), and nothing after it.
// The token verifier uses it on a header or payload of at most 8 KiB.
func checkObject(data []byte) error {
	if err := checkJSONText(data); err != nil {
		return err
	}
	return walkValue(json.NewDecoder(bytes.NewReader(data)), 0)
}

// checkJSONText reports whether data is one well-formed JSON object in valid
// UTF-8, with no lone UTF-16 surrogate escapes and nothing after it. It
// reads data once, allocating nothing for its members.
func checkJSONText(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := checkEscapes(data); err != nil {
		return err
	}
	if !json.Valid(data) {
		// Decode again, only to say where and why.
		var v json.RawMessage
		err := json.Unmarshal(data, &v)
		if err == nil {
			err = errors.New("invalid")
		}
		return fmt.Errorf("malformed JSON: %v", err)
	}
	return nil
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

// walkValue reads one JSON value from dec, refusing repeated object members.
func walkValue(dec *json.Decoder, depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	t, err := dec.Token()
	if err != nil {
		return fmt.Errorf("malformed JSON: %v", err)
	}
	d, ok := t.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("malformed JSON: %v", err)
			}
			name, _ := kt.(string)
			if seen[name] {
				return fmt.Errorf("member %q given twice", name)
			}
			seen[name] = true
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
	default:
		return errors.New("malformed JSON")
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("malformed JSON: %v", err)
	}
	return nil
}

// checkEscapes refuses \u escapes that encode a lone UTF-16 surrogate.
func checkEscapes(data []byte) error {
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(data) {
				return nil // the JSON parser reports the truncation
			}
			if data[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(data, i+2)
			if !ok {
				return nil
			}
			i += 5
			switch {
			case r >= 0xD800 && r <= 0xDBFF:
				if i+2 < len(data) && data[i+1] == '\\' && data[i+2] == 'u' {
					if lo, ok := hex4(data, i+3); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						i += 6
						continue
					}
				}
				return errors.New("string holds a lone UTF-16 surrogate")
			case r >= 0xDC00 && r <= 0xDFFF:
				return errors.New("string holds a lone UTF-16 surrogate")
			}
		}
	}
	return nil
}

// hex4 returns the value of the four hex digits at data[at:], and false if
// there are not four.
func hex4(data []byte, at int) (rune, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[at:at+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it: <, > and & escaped for HTML, control characters escaped,
// invalid UTF-8 replaced by U+FFFD, and U+2028 and U+2029 escaped.
// FuzzAppendJSONString holds the two to the same bytes.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // s[start:i] is waiting to be copied as it is
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
