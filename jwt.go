package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
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

// tokenErr returns a verification failure wrapping errToken, with the reason.
func tokenErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errToken}, a...)...)
}

// key is one HS256 secret and the id tokens name it by.
type key struct {
	id     string
	header string     // base64url of the JOSE header this key signs with
	macs   *sync.Pool // crypto/hmac hashes keyed with the secret, reset after each use
}

// newKey derives the key id from the secret with a one-way function, so the
// id names the key without revealing it.
func newKey(secret []byte) key {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("bookapi key id"))
	id := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:9])
	header, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}{"HS256", "JWT", id})
	return key{
		id:     id,
		header: b64.EncodeToString(header),
		macs:   &sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }},
	}
}

// mac returns the HMAC-SHA256 of msg under k's secret.
func (k key) mac(msg string) []byte {
	h := k.macs.Get().(hash.Hash)
	io.WriteString(h, msg)
	sum := h.Sum(nil)
	h.Reset()
	k.macs.Put(h)
	return sum
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
	input := k.header + "." + b64.EncodeToString(payload)
	return input + "." + b64.EncodeToString(k.mac(input)), nil
}

// verify checks a compact JWS against the keyring and returns its claims.
// The signature is checked over the bytes exactly as received, in constant
// time, before any claim is read. The header must name HS256 and a known key;
// the payload must carry a numeric exp after now, iss equal to issuer, and
// nbf and iat (when present) no more than clockSkew in the future. Header and
// payload must each be one JSON object in valid UTF-8 with no member given
// twice (checkObject), and members are matched by their exact decoded names.
//
// Every authenticated request runs it, so a token sign produced takes a
// shorter way to the same answer: its header is recognised by its bytes, and
// flatClaims reads its payload without encoding/json.
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

	kid, err := headerKid(headerSeg, kr)
	if err != nil {
		return claims{}, err
	}
	k, ok := kr.lookup(kid)
	if !ok {
		return claims{}, tokenErr("unknown kid")
	}
	// Strict decoding admits only the one canonical spelling of 32 bytes.
	sig, err := b64.DecodeString(sigSeg)
	if err != nil {
		return claims{}, tokenErr("signature: %v", err)
	}
	if len(sig) != sha256.Size || !hmac.Equal(sig, k.mac(token[:second])) {
		return claims{}, tokenErr("bad signature")
	}

	payload, err := b64.DecodeString(payloadSeg)
	if err != nil {
		return claims{}, tokenErr("payload: %v", err)
	}
	raw, ok := flatClaims(payload)
	if !ok {
		if raw, err = parseClaims(payload); err != nil {
			return claims{}, tokenErr("payload: %v", err)
		}
	}
	return readClaims(raw, issuer, now)
}

// headerKid checks the header segment and returns the key id it names.
func headerKid(seg string, kr keyring) (string, error) {
	// sign writes one exact header per key, {"alg":"HS256","typ":"JWT",
	// "kid":<id>}, which passes every check below; seeing those bytes again
	// is proof enough, and spares decoding them on every request.
	for _, k := range kr.verify {
		if k.header != "" && seg == k.header {
			return k.id, nil
		}
	}
	h, err := decodeSegment(seg)
	if err != nil {
		return "", tokenErr("header: %v", err)
	}
	if alg, ok := unquote(h["alg"]); !ok || alg != "HS256" {
		return "", tokenErr("alg is not HS256")
	}
	if _, ok := h["crit"]; ok {
		return "", tokenErr("crit header is not supported")
	}
	kid, ok := unquote(h["kid"])
	if _, present := h["kid"]; present && !ok {
		return "", tokenErr("kid is not a string")
	}
	return kid, nil
}

// The payload members verify reads, as indices into a rawClaims.
const (
	claimIss = iota
	claimSub
	claimPublicID
	claimSID
	claimJTI
	claimExp
	claimNbf
	claimIat
	numClaims
)

// claimNames are the member names of the claims verify reads, by index.
var claimNames = [numClaims]string{"iss", "sub", "public_id", "sid", "jti", "exp", "nbf", "iat"}

// rawClaims holds the JSON text of each payload member verify reads, exactly
// as it appears in the payload, indexed by claimIss and its kin; nil means the
// member is absent.
type rawClaims [numClaims][]byte

// claimIndex returns the index in a rawClaims of the member with this decoded
// name, or -1 for a member verify does not read.
func claimIndex(name []byte) int {
	for i, n := range claimNames {
		if string(name) == n {
			return i
		}
	}
	return -1
}

// maxFlatMembers is the most members flatClaims reads; sign writes seven.
const maxFlatMembers = 16

// flatClaims reads in one pass, without encoding/json, a payload of the shape sign writes:
// one JSON object of at most maxFlatMembers members, each with a name of
// printable ASCII and no escapes, and a string, number, true, false or null
// value. It reports false for anything else, valid or not (nested values,
// escaped names, a lone surrogate, a repeated member, bad JSON), and leaves
// that payload to parseClaims. So whenever it says true, parseClaims would
// have accepted the payload with the same members; it can make verify
// faster, never more lenient. FuzzFlatClaims checks exactly that.
func flatClaims(data []byte) (rawClaims, bool) {
	var r rawClaims
	if !utf8.Valid(data) {
		return r, false
	}
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return r, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return r, skipSpace(data, i+1) == len(data)
	}
	// Names without escapes are their own decoded form, so comparing bytes
	// finds every repeat.
	var names [maxFlatMembers][]byte
	for n := 0; ; n++ {
		if n == len(names) || i == len(data) || data[i] != '"' {
			return r, false
		}
		end := i + 1
		for end < len(data) && data[end] >= 0x20 && data[end] < 0x7f && data[end] != '"' && data[end] != '\\' {
			end++
		}
		if end == len(data) || data[end] != '"' {
			return r, false
		}
		name := data[i+1 : end]
		for _, prev := range names[:n] {
			if bytes.Equal(prev, name) {
				return r, false
			}
		}
		names[n] = name
		i = skipSpace(data, end+1)
		if i == len(data) || data[i] != ':' {
			return r, false
		}
		i = skipSpace(data, i+1)
		vend := scalarEnd(data, i)
		if vend < 0 {
			return r, false
		}
		if c := claimIndex(name); c >= 0 {
			r[c] = data[i:vend]
		}
		i = skipSpace(data, vend)
		if i == len(data) {
			return r, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return r, skipSpace(data, i+1) == len(data)
		default:
			return r, false
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// scalarEnd returns the index just past the JSON string, number, true, false
// or null starting at data[i], or -1 if there is none. A string holding an
// escaped UTF-16 surrogate counts as none: pairs are rare enough to leave to
// the general path, and lone ones must be refused. The caller checks that a
// delimiter follows, which is what rules out "01" or "truex".
func scalarEnd(data []byte, i int) int {
	if i == len(data) {
		return -1
	}
	switch c := data[i]; {
	case c == '"':
		return stringEnd(data, i)
	case c == '-' || '0' <= c && c <= '9':
		return numberEnd(data, i)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(data[i:], []byte(lit)) {
			return i + len(lit)
		}
	}
	return -1
}

// stringEnd returns the index just past the JSON string whose opening quote
// is data[i], or -1 if it is malformed or escapes a UTF-16 surrogate. The
// caller has checked that data is valid UTF-8.
func stringEnd(data []byte, i int) int {
	for i++; i < len(data); {
		switch c := data[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c != '\\':
			i++
		case i+1 == len(data):
			return -1
		case strings.IndexByte(`"\/bfnrt`, data[i+1]) >= 0:
			i += 2
		case data[i+1] == 'u':
			r, ok := hex4(data, i+2)
			if !ok || utf16.IsSurrogate(r) {
				return -1
			}
			i += 6
		default:
			return -1
		}
	}
	return -1
}

// numberEnd returns the index just past the JSON number starting at data[i],
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, or -1 if there is none.
func numberEnd(data []byte, i int) int {
	digits := func(i int) int { // index past a run of at least one digit, or -1
		j := i
		for j < len(data) && '0' <= data[j] && data[j] <= '9' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i == len(data):
		return -1
	case data[i] == '0':
		i++
	default:
		if i = digits(i); i < 0 {
			return -1
		}
	}
	if i < len(data) && data[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}

// parseClaims reads any payload: it must be one JSON object in valid UTF-8
// with no member repeated at any depth (checkObject). Members are matched by
// their decoded names, exactly, so "\u0065xp" is exp.
func parseClaims(payload []byte) (rawClaims, error) {
	var r rawClaims
	members, err := objectMembers(payload)
	if err != nil {
		return r, err
	}
	for name, raw := range members {
		if c := claimIndex([]byte(name)); c >= 0 {
			r[c] = raw
		}
	}
	return r, nil
}

// readClaims checks the members verify reads and returns the claims.
func readClaims(r rawClaims, issuer string, now time.Time) (claims, error) {
	var c claims
	for _, m := range []struct {
		claim int
		dst   *string
	}{{claimIss, &c.Issuer}, {claimSub, &c.Subject}, {claimPublicID, &c.PublicID}, {claimSID, &c.SessionID}, {claimJTI, &c.ID}} {
		if r[m.claim] == nil {
			continue
		}
		var ok bool
		if *m.dst, ok = unquote(r[m.claim]); !ok {
			return claims{}, tokenErr("%s is not a string", claimNames[m.claim])
		}
	}
	if r[claimIss] == nil || c.Issuer != issuer {
		return claims{}, tokenErr("wrong issuer")
	}
	if r[claimExp] == nil {
		return claims{}, tokenErr("exp missing")
	}
	exp, err := numericDate(r[claimExp])
	if err != nil {
		return claims{}, tokenErr("exp: %v", err)
	}
	// Dead from its exp second on: valid only while now < exp.
	if !now.Before(exp) {
		return claims{}, tokenErr("expired")
	}
	c.ExpiresAt = exp.Unix()
	if r[claimNbf] != nil {
		nbf, err := numericDate(r[claimNbf])
		if err != nil {
			return claims{}, tokenErr("nbf: %v", err)
		}
		if now.Add(clockSkew).Before(nbf) {
			return claims{}, tokenErr("not yet valid")
		}
	}
	if r[claimIat] != nil {
		iat, err := numericDate(r[claimIat])
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

// unquote returns the value of raw, a JSON string literal with its quotes
// that checkObject or flatClaims has let through, and false if raw is not a
// string (null included: encoding/json alone would let it pass for "").
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true // nothing to decode
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// isTokenByte reports whether c may appear in a compact JWS: base64url or '.'.
func isTokenByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// decodeSegment decodes a canonical base64url segment that must hold one JSON
// object and returns its members (objectMembers).
func decodeSegment(seg string) (map[string]json.RawMessage, error) {
	data, err := b64.DecodeString(seg)
	if err != nil {
		return nil, err
	}
	return objectMembers(data)
}

// objectMembers returns the members of data, which must be one JSON object in
// valid UTF-8 with no member repeated at any depth (checkObject), by their
// decoded names: encoding/json alone would let "ALG" or "EXP" stand in for
// "alg" and "exp", and a later "exp" override an earlier one.
func objectMembers(data []byte) (map[string]json.RawMessage, error) {
	if err := checkObject(data); err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	return obj, nil
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
