package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxTokenLen bounds a token before any decoding is attempted.
const maxTokenLen = 8 << 10

// clockSkew is how far in the future nbf and iat may be.
const clockSkew = 60 * time.Second

// maxNumericDate is the last second of year 9999; time claims above it are refused.
const maxNumericDate = 253402300799

// b64 is the only base64 the verifier accepts: URL alphabet, no padding, and
// canonical (the unused bits of the last character are zero).
var b64 = base64.RawURLEncoding.Strict()

// errToken is every verification failure; the reason is wrapped for logs and
// tests, never shown to clients.
var errToken = errors.New("invalid token")

func tokenErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errToken}, a...)...)
}

// key is one HS256 secret and the id tokens name it by.
type key struct {
	id     string
	secret []byte
	header string // base64url of the JOSE header this key signs with
}

// newKey derives the key id from the secret with a one-way function, so the
// id names the key without revealing it.
func newKey(secret []byte) key {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("bookapi key id"))
	id := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:9])
	hdr, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}{"HS256", "JWT", id})
	return key{id: id, secret: secret, header: base64.RawURLEncoding.EncodeToString(hdr)}
}

// keyring is the signing key plus older keys that only verify.
type keyring struct {
	current key
	verify  []key // current first, then older keys
}

// newKeyring builds a keyring that signs with current and also verifies
// tokens signed with any of previous.
func newKeyring(current []byte, previous ...[]byte) keyring {
	kr := keyring{current: newKey(current)}
	kr.verify = append(kr.verify, kr.current)
	for _, p := range previous {
		kr.verify = append(kr.verify, newKey(p))
	}
	return kr
}

// lookup returns the key with this id.
func (kr keyring) lookup(kid string) (key, bool) {
	for _, k := range kr.verify {
		if k.id == kid {
			return k, true
		}
	}
	return key{}, false
}

// claims are the registered and private claims bookapi issues and reads.
type claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	PublicID  string `json:"public_id"`
	SessionID string `json:"sid"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	ID        string `json:"jti"`
}

// sign returns the compact JWS of c, signed by k with HS256.
func sign(c claims, k key) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	n := len(k.header) + 1 + base64.RawURLEncoding.EncodedLen(len(payload))
	buf := make([]byte, 0, n+1+base64.RawURLEncoding.EncodedLen(sha256.Size))
	buf = append(buf, k.header...)
	buf = append(buf, '.')
	buf = base64.RawURLEncoding.AppendEncode(buf, payload)
	mac := hmac.New(sha256.New, k.secret)
	mac.Write(buf)
	buf = append(buf, '.')
	buf = base64.RawURLEncoding.AppendEncode(buf, mac.Sum(nil))
	return string(buf), nil
}

// verify checks a compact JWS against the keyring and returns its claims.
// The signature is checked over the bytes exactly as received, in constant
// time, before any claim is read. The header must name HS256 and a known key;
// the payload must carry a numeric exp after now, iss equal to issuer, and
// nbf and iat (when present) no more than clockSkew in the future.
func verify(token string, kr keyring, issuer string, now time.Time) (claims, error) {
	if len(token) > maxTokenLen {
		return claims{}, tokenErr("longer than %d bytes", maxTokenLen)
	}
	// base64 decoders skip CR and LF even in strict mode; one token must
	// have one spelling.
	for i := 0; i < len(token); i++ {
		if !isTokenByte(token[i]) {
			return claims{}, tokenErr("byte %d is outside base64url", i)
		}
	}
	if strings.Count(token, ".") != 2 {
		return claims{}, tokenErr("want three segments")
	}
	first := strings.IndexByte(token, '.')
	second := strings.LastIndexByte(token, '.')
	headerSeg, payloadSeg, sigSeg := token[:first], token[first+1:second], token[second+1:]

	header, err := decodeSegment(headerSeg)
	if err != nil {
		return claims{}, tokenErr("header: %v", err)
	}
	// Members are read by exact name: encoding/json alone would let "ALG"
	// or "EXP" stand in for "alg" and "exp".
	var h map[string]json.RawMessage
	if err := json.Unmarshal(header, &h); err != nil {
		return claims{}, tokenErr("header: %v", err)
	}
	var alg string
	if json.Unmarshal(h["alg"], &alg) != nil || alg != "HS256" {
		return claims{}, tokenErr("alg is not HS256")
	}
	if _, ok := h["crit"]; ok {
		return claims{}, tokenErr("crit header is not supported")
	}
	kid := ""
	if raw, ok := h["kid"]; ok {
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &kid) != nil {
			return claims{}, tokenErr("kid is not a string")
		}
	}
	k, ok := kr.lookup(kid)
	if !ok {
		return claims{}, tokenErr("unknown kid")
	}

	sig := make([]byte, 0, sha256.Size)
	sig, err = b64.AppendDecode(sig, []byte(sigSeg))
	if err != nil {
		return claims{}, tokenErr("signature: %v", err)
	}
	mac := hmac.New(sha256.New, k.secret)
	mac.Write([]byte(token[:second]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return claims{}, tokenErr("bad signature")
	}

	payload, err := decodeSegment(payloadSeg)
	if err != nil {
		return claims{}, tokenErr("payload: %v", err)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(payload, &p); err != nil {
		return claims{}, tokenErr("payload: %v", err)
	}
	var c claims
	for name, dst := range map[string]*string{"iss": &c.Issuer, "sub": &c.Subject, "public_id": &c.PublicID, "sid": &c.SessionID, "jti": &c.ID} {
		if raw, ok := p[name]; ok && (raw[0] != '"' || json.Unmarshal(raw, dst) != nil) {
			return claims{}, tokenErr("%s is not a string", name)
		}
	}
	if _, ok := p["iss"]; !ok || c.Issuer != issuer {
		return claims{}, tokenErr("wrong issuer")
	}
	if p["exp"] == nil {
		return claims{}, tokenErr("exp missing")
	}
	exp, err := numericDate(p["exp"])
	if err != nil {
		return claims{}, tokenErr("exp: %v", err)
	}
	// Dead from its exp second on: valid only while now < exp.
	if !now.Before(exp) {
		return claims{}, tokenErr("expired")
	}
	c.ExpiresAt = exp.Unix()
	if raw, ok := p["nbf"]; ok {
		nbf, err := numericDate(raw)
		if err != nil {
			return claims{}, tokenErr("nbf: %v", err)
		}
		if now.Add(clockSkew).Before(nbf) {
			return claims{}, tokenErr("not yet valid")
		}
	}
	if raw, ok := p["iat"]; ok {
		iat, err := numericDate(raw)
		if err != nil {
			return claims{}, tokenErr("iat: %v", err)
		}
		if now.Add(clockSkew).Before(iat) {
			return claims{}, tokenErr("issued in the future")
		}
		c.IssuedAt = iat.Unix()
	}
	return c, nil
}

// isTokenByte reports whether c may appear in a compact JWS: base64url or '.'.
func isTokenByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// decodeSegment decodes a canonical base64url segment that must hold one JSON
// object, valid UTF-8, with no member repeated at any depth.
func decodeSegment(seg string) ([]byte, error) {
	data, err := b64.DecodeString(seg)
	if err != nil {
		return nil, err
	}
	if err := checkObject(data); err != nil {
		return nil, err
	}
	return data, nil
}

// numericDate parses a JWT NumericDate: a JSON number (not a string) of
// seconds since the epoch, between 0 and the end of year 9999.
func numericDate(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, errors.New("not a number")
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, errors.New("out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// checkObject reports whether data is exactly one JSON object in valid UTF-8,
// with no member given twice in any object, no lone UTF-16 surrogate escapes
// (encoding/json would silently turn them into U+FFFD), and nothing after it.
// It is shared by the token verifier and the request decoder.
func checkObject(data []byte) error {
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walkValue(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
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
