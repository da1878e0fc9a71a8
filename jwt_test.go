package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// jwtIssuer is the issuer every JWT test configures.
const jwtIssuer = "bookapi"

// jwtSecret, jwtOldSecret and jwtOtherSecret are test-only HS256 secrets:
// the current key, a verify-only previous key and a key nobody configured.
const (
	jwtSecret      = "jwt-test-current-secret-0123456789abcdef"
	jwtOldSecret   = "jwt-test-previous-secret-0123456789abcdef"
	jwtOtherSecret = "jwt-test-unconfigured-secret-0123456789ab"
)

// jwtAlphabet is the base64url alphabet in value order.
const jwtAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// jwtNow is the fixed clock of the JWT tests: 2026-01-01T00:00:00Z.
var jwtNow = time.Unix(1767225600, 0).UTC()

// jwtB64 returns s encoded as unpadded base64url, the only form a JWS segment may take.
func jwtB64(s string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// jwtSignInput returns signingInput with a correct HS256 signature under secret
// appended as the third segment, whatever bytes signingInput holds.
func jwtSignInput(signingInput, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// jwtForge base64url-encodes arbitrary header and payload JSON text and signs
// them correctly with HMAC-SHA256, so a refusal is never for a bad signature.
func jwtForge(header, payload, secret string) string {
	return jwtSignInput(jwtB64(header)+"."+jwtB64(payload), secret)
}

// jwtObject joins JSON members into one object text, in order, repeats included.
func jwtObject(members ...string) string {
	return "{" + strings.Join(members, ",") + "}"
}

// jwtAt returns the JSON member name:value whose value is offset seconds after jwtNow.
func jwtAt(name string, offset int64) string {
	return fmt.Sprintf("%q:%d", name, jwtNow.Unix()+offset)
}

// jwtHeader returns the header segment sign writes for k.
func jwtHeader(k key) string {
	return jwtB64(jwtObject(`"alg":"HS256"`, `"typ":"JWT"`, `"kid":"`+k.id+`"`))
}

// jwtSplit returns the three segments of token and fails the test if there are not three.
func jwtSplit(t *testing.T, token string) (header, payload, sig string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("jwtSplit: %d segments, want 3", len(parts))
	}
	return parts[0], parts[1], parts[2]
}

// jwtUnaligned prefixes JSON text with a space if needed so its length is not a
// multiple of three, which gives its base64 form a partial last group.
func jwtUnaligned(s string) string {
	if len(s)%3 == 0 {
		return " " + s
	}
	return s
}

// jwtNonCanonical sets an unused low bit in the last character of an unpadded
// base64url segment, so a lenient decoder still yields the same bytes.
func jwtNonCanonical(t *testing.T, seg string) string {
	t.Helper()
	if len(seg)%4 == 0 {
		t.Fatalf("jwtNonCanonical(%q): no unused bits in a whole last group", seg)
	}
	i := strings.IndexByte(jwtAlphabet, seg[len(seg)-1])
	if i < 0 || i&1 != 0 {
		t.Fatalf("jwtNonCanonical(%q): last character is not canonical base64url", seg)
	}
	out := seg[:len(seg)-1] + string(jwtAlphabet[i|1])
	want, err1 := base64.RawURLEncoding.DecodeString(seg)
	got, err2 := base64.RawURLEncoding.DecodeString(out)
	if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
		t.Fatalf("jwtNonCanonical(%q) = %q: lenient decoding differs", seg, out)
	}
	return out
}

// jwtStdSegment encodes JSON text in the standard base64 alphabet, shifted by
// leading spaces until the encoding holds c ('+' or '/'), which base64url never uses.
func jwtStdSegment(t *testing.T, payload string, c byte) string {
	t.Helper()
	for pad := range 3 {
		seg := base64.RawStdEncoding.EncodeToString([]byte(strings.Repeat(" ", pad) + payload))
		if strings.IndexByte(seg, c) >= 0 {
			return seg
		}
	}
	t.Fatalf("jwtStdSegment: no encoding of the payload holds %q", c)
	return ""
}

// jwtTokenOfLen returns a correctly signed, otherwise valid token of exactly n
// bytes, padded with a filler claim and header whitespace.
func jwtTokenOfLen(t *testing.T, kid string, n int) string {
	t.Helper()
	for fill := max(0, n*3/4-300); fill <= n; fill++ {
		for spaces := range 3 {
			header := "{" + strings.Repeat(" ", spaces) + `"alg":"HS256","typ":"JWT","kid":"` + kid + `"}`
			payload := jwtObject(`"iss":"bookapi"`, jwtAt("exp", 900), `"pad":"`+strings.Repeat("x", fill)+`"`)
			if tok := jwtForge(header, payload, jwtSecret); len(tok) == n {
				return tok
			}
		}
	}
	t.Fatalf("jwtTokenOfLen: no token of %d bytes", n)
	return ""
}

// jwtFiller returns n distinct members, "m0":0 and on, that verify does not read.
func jwtFiller(n int) []string {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf(`"m%d":%d`, i, i)
	}
	return members
}

// jwtWantRefused fails the test unless verify refused token with an error
// wrapping errToken and returned zero claims.
func jwtWantRefused(t *testing.T, name, token string, kr keyring, issuer string, now time.Time) {
	t.Helper()
	c, err := verify(token, kr, issuer, now)
	if err == nil {
		t.Fatalf("verify(%s): err = nil, want errToken", name)
	}
	if !errors.Is(err, errToken) {
		t.Fatalf("verify(%s): err = %v, want errToken", name, err)
	}
	if c != (claims{}) {
		t.Errorf("verify(%s): claims = %+v with an error, want zero claims", name, c)
	}
}

// jwtWantAccepted fails the test unless verify accepted token, and returns its claims.
func jwtWantAccepted(t *testing.T, name, token string, kr keyring, issuer string, now time.Time) claims {
	t.Helper()
	c, err := verify(token, kr, issuer, now)
	if err != nil {
		t.Fatalf("verify(%s): err = %v, want nil", name, err)
	}
	return c
}

// rfcA1Key, rfcA1Token and rfcA1Exp are the HS256 example key (base64url),
// token and expiry of RFC 7515 appendix A.1.
const (
	rfcA1Key   = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
	rfcA1Token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9" +
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
		".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcA1Exp = 1300819380
)

// TestVerifyRFC7515A1 pins verify to the HS256 example of RFC 7515 appendix A.1,
// whose header carries \r\n whitespace, so the HMAC must cover the bytes as received.
func TestVerifyRFC7515A1(t *testing.T) {
	t.Parallel()
	rawKey, err := base64.RawURLEncoding.DecodeString(rfcA1Key)
	if err != nil {
		t.Fatalf("decode RFC 7515 A.1 key: %v", err)
	}
	// The example header has no kid, and verify looks such a header up as kid "".
	k := newKey(rawKey)
	k.id = ""
	kr := keyring{verify: []key{k}}

	t.Run("before exp", func(t *testing.T) {
		t.Parallel()
		c := jwtWantAccepted(t, "RFC 7515 A.1", rfcA1Token, kr, "joe", time.Unix(rfcA1Exp-1, 0))
		want := claims{Issuer: "joe", ExpiresAt: rfcA1Exp}
		if c != want {
			t.Errorf("verify(RFC 7515 A.1): claims = %+v, want %+v", c, want)
		}
	})
	for _, tc := range []struct {
		name string
		now  time.Time
	}{
		{"at exp", time.Unix(rfcA1Exp, 0)},
		{"half a second after exp", time.Unix(rfcA1Exp, 5e8)},
		{"one second after exp", time.Unix(rfcA1Exp+1, 0)},
		{"today", jwtNow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jwtWantRefused(t, "RFC 7515 A.1 "+tc.name, rfcA1Token, kr, "joe", tc.now)
		})
	}
	t.Run("wrong issuer", func(t *testing.T) {
		t.Parallel()
		jwtWantRefused(t, "RFC 7515 A.1 for issuer bookapi", rfcA1Token, kr, jwtIssuer, time.Unix(rfcA1Exp-1, 0))
	})
	t.Run("keyring without an empty kid", func(t *testing.T) {
		t.Parallel()
		jwtWantRefused(t, "RFC 7515 A.1 with newKeyring", rfcA1Token, newKeyring(rawKey), "joe", time.Unix(rfcA1Exp-1, 0))
	})
	t.Run("empty header for a key without one", func(t *testing.T) {
		t.Parallel()
		// This key has no pre-encoded header, and an empty segment must not pass for it.
		_, p, _ := jwtSplit(t, rfcA1Token)
		mac := hmac.New(sha256.New, rawKey)
		mac.Write([]byte("." + p))
		tok := "." + p + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		jwtWantRefused(t, "RFC 7515 A.1 payload with an empty header", tok, kr, "joe", time.Unix(rfcA1Exp-1, 0))
	})
	t.Run("HMAC over the received bytes", func(t *testing.T) {
		t.Parallel()
		h, p, s := jwtSplit(t, rfcA1Token)
		mac := hmac.New(sha256.New, rawKey)
		mac.Write([]byte(h + "." + p))
		if got := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); got != s {
			t.Fatalf("HMAC of the received RFC 7515 A.1 segments = %s, want %s", got, s)
		}
		header, _ := base64.RawURLEncoding.DecodeString(h)
		payload, _ := base64.RawURLEncoding.DecodeString(p)
		if !bytes.Contains(header, []byte("\r\n")) || !bytes.Contains(payload, []byte("\r\n")) {
			t.Fatalf("RFC 7515 A.1 header %q and payload %q: want both to hold \\r\\n", header, payload)
		}
		// The same JSON re-encoded without the whitespace no longer matches the signature.
		var ch, cp bytes.Buffer
		if err := json.Compact(&ch, header); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&cp, payload); err != nil {
			t.Fatal(err)
		}
		now := time.Unix(rfcA1Exp-1, 0)
		jwtWantRefused(t, "RFC 7515 A.1 with compacted header", jwtB64(ch.String())+"."+p+"."+s, kr, "joe", now)
		jwtWantRefused(t, "RFC 7515 A.1 with compacted payload", h+"."+jwtB64(cp.String())+"."+s, kr, "joe", now)
	})
}

// TestSignVerifyRoundTrip checks that verify returns exactly the claims sign was given.
func TestSignVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	kr := newKeyring([]byte(jwtSecret))
	for _, tc := range []struct {
		name string
		c    claims
	}{
		{"typical", claims{
			Issuer: jwtIssuer, Subject: "0b9f6c1e-3f7a-4a43-9d55-8a1d1f2b7c10", PublicID: "0b9f6c1e-3f7a-4a43-9d55-8a1d1f2b7c10",
			SessionID: "s-1", IssuedAt: jwtNow.Unix(), ExpiresAt: jwtNow.Unix() + 900, ID: "jti-1",
		}},
		{"empty strings", claims{Issuer: jwtIssuer, ExpiresAt: jwtNow.Unix() + 1}},
		{"JSON and HTML specials", claims{
			Issuer: jwtIssuer, Subject: `"quoted" \back\slash <script>&amp;`, PublicID: "\u2028\u2029\t\n",
			SessionID: "é ß 日本 😀", IssuedAt: jwtNow.Unix() - 3600, ExpiresAt: jwtNow.Unix() + 60, ID: "jti/+=.",
		}},
		{"issued a minute ahead", claims{Issuer: jwtIssuer, IssuedAt: jwtNow.Unix() + 60, ExpiresAt: jwtNow.Unix() + 900}},
		{"expires at the end of year 9999", claims{Issuer: jwtIssuer, ExpiresAt: maxNumericDate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := sign(tc.c, kr.current)
			if err != nil {
				t.Fatalf("sign(%s): %v", tc.name, err)
			}
			got := jwtWantAccepted(t, "sign("+tc.name+")", tok, kr, jwtIssuer, jwtNow)
			if got != tc.c {
				t.Errorf("verify(sign(%s)): claims = %+v, want %+v", tc.name, got, tc.c)
			}
		})
	}
}

// TestSignHeader checks that sign writes the contract header {"alg":"HS256","typ":"JWT","kid":...}.
func TestSignHeader(t *testing.T) {
	t.Parallel()
	k := newKey([]byte(jwtSecret))
	tok, err := sign(claims{Issuer: jwtIssuer, ExpiresAt: jwtNow.Unix() + 900}, k)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	h, _, _ := jwtSplit(t, tok)
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("sign: header segment: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("sign: header %q: %v", raw, err)
	}
	want := map[string]any{"alg": "HS256", "typ": "JWT", "kid": k.id}
	if len(got) != len(want) || got["alg"] != want["alg"] || got["typ"] != want["typ"] || got["kid"] != want["kid"] {
		t.Errorf("sign: header = %v, want %v", got, want)
	}
}

// TestVerifyKeyRotation checks that a previous key still verifies and a removed one does not.
func TestVerifyKeyRotation(t *testing.T) {
	t.Parallel()
	c := claims{Issuer: jwtIssuer, Subject: "u1", PublicID: "u1", SessionID: "s1", IssuedAt: jwtNow.Unix(), ExpiresAt: jwtNow.Unix() + 900, ID: "j1"}
	oldRing := newKeyring([]byte(jwtOldSecret))
	rotated := newKeyring([]byte(jwtSecret), []byte(jwtOldSecret))
	removed := newKeyring([]byte(jwtSecret))

	oldTok, err := sign(c, oldRing.current)
	if err != nil {
		t.Fatalf("sign with the old key: %v", err)
	}
	newTok, err := sign(c, rotated.current)
	if err != nil {
		t.Fatalf("sign with the new key: %v", err)
	}
	if got := jwtWantAccepted(t, "old-key token, old key previous", oldTok, rotated, jwtIssuer, jwtNow); got != c {
		t.Errorf("verify(old-key token, old key previous): claims = %+v, want %+v", got, c)
	}
	if got := jwtWantAccepted(t, "new-key token, rotated keyring", newTok, rotated, jwtIssuer, jwtNow); got != c {
		t.Errorf("verify(new-key token, rotated keyring): claims = %+v, want %+v", got, c)
	}
	jwtWantRefused(t, "old-key token, old key removed", oldTok, removed, jwtIssuer, jwtNow)
	jwtWantRefused(t, "new-key token, keyring of only the old key", newTok, oldRing, jwtIssuer, jwtNow)
	if rotated.current.id != removed.current.id {
		t.Errorf("newKeyring: current kid differs with and without a previous key")
	}
}

// TestSignKeyIDHidesSecret checks that a kid is stable and distinct per secret and
// that neither it nor a signed token holds the secret.
func TestSignKeyIDHidesSecret(t *testing.T) {
	t.Parallel()
	secrets := []string{jwtSecret, jwtOldSecret, jwtOtherSecret, "0123456789abcdef", strings.Repeat("k", 64)}
	seen := map[string]bool{}
	for _, s := range secrets {
		k := newKey([]byte(s))
		if k.id == "" {
			t.Errorf("newKey(%q): empty kid", s)
		}
		if again := newKey([]byte(s)); again.id != k.id {
			t.Errorf("newKey(%q): kid %q then %q, want a stable kid", s, k.id, again.id)
		}
		if seen[k.id] {
			t.Errorf("newKey(%q): kid %q shared with another secret", s, k.id)
		}
		seen[k.id] = true
		for _, form := range []string{s, base64.RawURLEncoding.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s))} {
			if k.id == form || strings.Contains(k.id, form) {
				t.Errorf("newKey(%q): kid %q holds the secret", s, k.id)
			}
		}
		tok, err := sign(claims{Issuer: jwtIssuer, ExpiresAt: jwtNow.Unix() + 900}, k)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		h, p, _ := jwtSplit(t, tok)
		header, _ := base64.RawURLEncoding.DecodeString(h)
		payload, _ := base64.RawURLEncoding.DecodeString(p)
		if strings.Contains(tok, s) || bytes.Contains(header, []byte(s)) || bytes.Contains(payload, []byte(s)) {
			t.Errorf("sign with secret %q: token holds the secret", s)
		}
	}
}

// jwtForgedCase is one token that verify must refuse, and why.
type jwtForgedCase struct {
	name  string
	token string
}

// TestVerifyRefusesForgedTokens feeds verify forged and malformed tokens, each
// correctly signed unless the row is about the signature, and wants errToken for all.
func TestVerifyRefusesForgedTokens(t *testing.T) {
	t.Parallel()
	kr := newKeyring([]byte(jwtSecret), []byte(jwtOldSecret))
	kid := kr.current.id
	removedKid := newKey([]byte(jwtOtherSecret)).id

	hdrKid := `"kid":"` + kid + `"`
	hdr := jwtObject(`"alg":"HS256"`, `"typ":"JWT"`, hdrKid)
	iss := `"iss":"bookapi"`
	exp := jwtAt("exp", 900)
	body := jwtObject(iss, `"sub":"u1"`, `"public_id":"u1"`, `"sid":"s1"`, jwtAt("iat", 0), exp, `"jti":"j1"`)
	alg := func(a string) string { return jwtObject(`"alg":`+a, `"typ":"JWT"`, hdrKid) }
	claim := func(members ...string) string { return jwtForge(hdr, jwtObject(members...), jwtSecret) }

	valid := jwtForge(hdr, body, jwtSecret)
	vh, vp, vs := jwtSplit(t, valid)
	// Control: the helper's own token passes, so each row below fails for its stated reason.
	jwtWantAccepted(t, "forged control", valid, kr, jwtIssuer, jwtNow)

	tamperedBody := jwtB64(jwtObject(iss, `"sub":"admin"`, `"public_id":"admin"`, `"sid":"s1"`, jwtAt("iat", 0), exp, `"jti":"j1"`))
	tamperedHdr := jwtB64(jwtObject(`"alg":"HS256"`, `"typ":"JOSE"`, hdrKid))
	_, _, otherSig := jwtSplit(t, jwtForge(hdr, jwtObject(iss, jwtAt("exp", 901)), jwtSecret))
	unaligned := jwtUnaligned(body)
	stdSig := strings.NewReplacer("-", "+", "_", "/").Replace(vs)
	if stdSig == vs {
		t.Fatalf("fixture: signature %s has no - or _ to swap for + or /", vs)
	}
	stdBody := jwtObject(iss, `"sub":"??????~~~~~~"`, exp)

	cases := []jwtForgedCase{
		// alg
		{"alg none", jwtForge(alg(`"none"`), body, jwtSecret)},
		{"alg none unsigned", jwtB64(alg(`"none"`)) + "." + vp + "."},
		{"alg None", jwtForge(alg(`"None"`), body, jwtSecret)},
		{"alg HS512", jwtForge(alg(`"HS512"`), body, jwtSecret)},
		{"alg RS256", jwtForge(alg(`"RS256"`), body, jwtSecret)},
		{"alg hs256", jwtForge(alg(`"hs256"`), body, jwtSecret)},
		{"alg HS256 with a trailing space", jwtForge(alg(`"HS256 "`), body, jwtSecret)},
		{"alg empty", jwtForge(alg(`""`), body, jwtSecret)},
		{"alg missing", jwtForge(jwtObject(`"typ":"JWT"`, hdrKid), body, jwtSecret)},
		{"alg null", jwtForge(alg(`null`), body, jwtSecret)},
		{"alg number", jwtForge(alg(`256`), body, jwtSecret)},
		{"alg array", jwtForge(alg(`["HS256"]`), body, jwtSecret)},
		{"alg given twice", jwtForge(jwtObject(`"alg":"HS256"`, `"alg":"HS256"`, hdrKid), body, jwtSecret)},
		{"alg none then HS256", jwtForge(jwtObject(`"alg":"none"`, `"alg":"HS256"`, hdrKid), body, jwtSecret)},
		{"alg member spelled ALG", jwtForge(jwtObject(`"ALG":"HS256"`, `"typ":"JWT"`, hdrKid), body, jwtSecret)},
		{"kid member spelled with a Kelvin sign", jwtForge(jwtObject(`"alg":"HS256"`, `"\u212aid":"`+kid+`"`), body, jwtSecret)},

		// signature
		{"tampered payload with the original signature", vh + "." + tamperedBody + "." + vs},
		{"tampered header with the original signature", tamperedHdr + "." + vp + "." + vs},
		{"signature of another token", vh + "." + vp + "." + otherSig},
		{"stripped signature", vh + "." + vp + "."},
		{"missing signature", vh + "." + vp},
		{"signature one character short", vh + "." + vp + "." + vs[:len(vs)-1]},
		{"signature one character long", vh + "." + vp + "." + vs + "A"},
		{"signature with = padding", valid + "="},
		{"signature non-canonical last character", vh + "." + vp + "." + jwtNonCanonical(t, vs)},
		{"signature in the standard alphabet", vh + "." + vp + "." + stdSig},
		{"signature with a newline inside", vh + "." + vp + "." + vs[:20] + "\n" + vs[20:]},
		{"signature followed by CRLF", valid + "\r\n"},

		// segments and base64
		{"two segments", vh + "." + vs},
		{"four segments", valid + "." + vs},
		{"trailing dot", valid + "."},
		{"empty header segment", "." + vp + "." + vs},
		{"empty string", ""},
		{"two dots", ".."},
		{"leading space", " " + valid},
		{"header with = padding", jwtSignInput(base64.URLEncoding.EncodeToString([]byte(jwtUnaligned(hdr)))+"."+vp, jwtSecret)},
		{"payload with = padding", jwtSignInput(vh+"."+base64.URLEncoding.EncodeToString([]byte(unaligned)), jwtSecret)},
		{"payload with +", jwtSignInput(vh+"."+jwtStdSegment(t, stdBody, '+'), jwtSecret)},
		{"payload with /", jwtSignInput(vh+"."+jwtStdSegment(t, stdBody, '/'), jwtSecret)},
		{"payload non-canonical last character", jwtSignInput(vh+"."+jwtNonCanonical(t, jwtB64(unaligned)), jwtSecret)},
		{"header non-canonical last character", jwtSignInput(jwtNonCanonical(t, jwtB64(jwtUnaligned(hdr)))+"."+vp, jwtSecret)},
		{"header segment with a newline inside", jwtSignInput(vh[:8]+"\n"+vh[8:]+"."+vp, jwtSecret)},
		{"payload segment with a newline inside", jwtSignInput(vh+"."+vp[:8]+"\r\n"+vp[8:], jwtSecret)},

		// header JSON
		{"header not JSON", jwtForge(`alg=HS256`, body, jwtSecret)},
		{"header JSON array", jwtForge(`[`+hdr+`]`, body, jwtSecret)},
		{"header JSON string", jwtForge(`"HS256"`, body, jwtSecret)},
		{"header empty", jwtForge(``, body, jwtSecret)},
		{"header trailing data", jwtForge(hdr+`{}`, body, jwtSecret)},
		{"header kid given twice", jwtForge(jwtObject(`"alg":"HS256"`, hdrKid, hdrKid), body, jwtSecret)},
		{"header invalid UTF-8", jwtForge(jwtObject(`"alg":"HS256"`, "\"typ\":\"\xff\"", hdrKid), body, jwtSecret)},
		{"header crit", jwtForge(jwtObject(`"alg":"HS256"`, hdrKid, `"crit":["exp"]`), body, jwtSecret)},
		{"header crit empty", jwtForge(jwtObject(`"alg":"HS256"`, hdrKid, `"crit":[]`), body, jwtSecret)},

		// kid
		{"kid unknown", jwtForge(jwtObject(`"alg":"HS256"`, `"kid":"nope"`), body, jwtSecret)},
		{"kid missing", jwtForge(jwtObject(`"alg":"HS256"`, `"typ":"JWT"`), body, jwtSecret)},
		{"kid null", jwtForge(jwtObject(`"alg":"HS256"`, `"kid":null`), body, jwtSecret)},
		{"kid empty", jwtForge(jwtObject(`"alg":"HS256"`, `"kid":""`), body, jwtSecret)},
		{"kid of the current key signed with another secret", jwtForge(hdr, body, jwtOtherSecret)},
		{"kid of the previous key signed with the current secret", jwtForge(jwtObject(`"alg":"HS256"`, `"kid":"`+kr.verify[1].id+`"`), body, jwtSecret)},
		{"kid of a removed key", jwtForge(jwtObject(`"alg":"HS256"`, `"kid":"`+removedKid+`"`), body, jwtOtherSecret)},
		{"kid is the secret", jwtForge(jwtObject(`"alg":"HS256"`, `"kid":"`+jwtSecret+`"`), body, jwtSecret)},

		// payload JSON
		{"payload not JSON", jwtForge(hdr, `iss=bookapi`, jwtSecret)},
		{"payload JSON array", jwtForge(hdr, `[`+body+`]`, jwtSecret)},
		{"payload JSON null", jwtForge(hdr, `null`, jwtSecret)},
		{"payload empty", jwtForge(hdr, ``, jwtSecret)},
		{"payload trailing data", jwtForge(hdr, body+`{}`, jwtSecret)},
		{"payload truncated", jwtForge(hdr, body[:len(body)-1], jwtSecret)},
		{"payload exp given twice", claim(iss, jwtAt("exp", -10), jwtAt("exp", 900))},
		{"payload exp given twice, once escaped", claim(iss, jwtAt("exp", -10), fmt.Sprintf(`"\u0065xp":%d`, jwtNow.Unix()+900))},
		{"payload iss given twice", claim(`"iss":"evil"`, iss, exp)},
		{"payload nested member given twice", claim(iss, exp, `"x":{"a":1,"a":2}`)},
		{"payload invalid UTF-8", claim(iss, exp, "\"sub\":\"u1\xff\"")},
		{"payload overlong UTF-8", claim(iss, exp, "\"sub\":\"\xc0\xaf\"")},
		{"payload lone surrogate", claim(iss, exp, `"sub":"\ud800"`)},
		{"payload lone low surrogate", claim(iss, exp, `"sub":"\udc00x"`)},
		{"payload surrogate in a member name", claim(iss, exp, `"\ud800":1`)},
		{"payload sub not a string", claim(iss, exp, `"sub":1`)},
		{"payload nested too deeply", claim(iss, exp, `"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100))},
		{"payload exp member spelled EXP", claim(iss, jwtAt("EXP", 900))},
		{"payload exp then EXP", claim(iss, jwtAt("exp", -10), jwtAt("EXP", 900))},

		// exp
		{"exp missing", claim(iss)},
		{"exp in the past", claim(iss, jwtAt("exp", -1))},
		{"exp half a second ago", claim(iss, fmt.Sprintf(`"exp":%d.5`, jwtNow.Unix()-1))},
		{"exp exactly now", claim(iss, jwtAt("exp", 0))},
		{"exp as a string", claim(iss, `"exp":"9999999999"`)},
		{"exp huge", claim(iss, `"exp":1e300`)},
		{"exp overflows float64", claim(iss, `"exp":1e400`)},
		{"exp after year 9999", claim(iss, fmt.Sprintf(`"exp":%d`, maxNumericDate+1))},
		{"exp negative", claim(iss, `"exp":-1`)},
		{"exp NaN", claim(iss, `"exp":NaN`)},
		{"exp NaN string", claim(iss, `"exp":"NaN"`)},
		{"exp Infinity", claim(iss, `"exp":Infinity`)},
		{"exp hexadecimal", claim(iss, `"exp":0x7fffffff`)},
		{"exp null", claim(iss, `"exp":null`)},
		{"exp true", claim(iss, `"exp":true`)},
		{"exp object", claim(iss, `"exp":{}`)},

		// nbf and iat
		{"nbf 61 s ahead", claim(iss, exp, jwtAt("nbf", 61))},
		{"nbf 60.5 s ahead", claim(iss, exp, fmt.Sprintf(`"nbf":%d.5`, jwtNow.Unix()+60))},
		{"nbf as a string", claim(iss, exp, `"nbf":"0"`)},
		{"nbf null", claim(iss, exp, `"nbf":null`)},
		{"nbf negative", claim(iss, exp, `"nbf":-1`)},
		{"iat 61 s ahead", claim(iss, exp, jwtAt("iat", 61))},
		{"iat as a string", claim(iss, exp, `"iat":"0"`)},
		{"iat huge", claim(iss, exp, `"iat":1e300`)},

		// iss
		{"iss wrong", claim(`"iss":"evil"`, exp)},
		{"iss missing", claim(exp)},
		{"iss null", claim(`"iss":null`, exp)},
		{"iss empty", claim(`"iss":""`, exp)},
		{"iss different case", claim(`"iss":"BookAPI"`, exp)},
		{"iss with a trailing space", claim(`"iss":"bookapi "`, exp)},
		{"iss not a string", claim(`"iss":["bookapi"]`, exp)},

		// the header sign writes, byte for byte, under the wrong secret or altered
		{"header of the previous key signed with the current secret", jwtSignInput(jwtHeader(kr.verify[1])+"."+vp, jwtSecret)},
		{"header of the current key signed with the previous secret", jwtSignInput(jwtHeader(kr.current)+"."+vp, jwtOldSecret)},
		{"header of an unconfigured key", jwtSignInput(jwtHeader(newKey([]byte(jwtOtherSecret)))+"."+vp, jwtOtherSecret)},
		{"header of the current key with one more character", jwtSignInput(jwtHeader(kr.current)+"A."+vp, jwtSecret)},
		{"header of the current key less its last character", jwtSignInput(jwtHeader(kr.current)[:len(jwtHeader(kr.current))-1]+"."+vp, jwtSecret)},

		// payload members and structure
		{"payload iss given twice, once escaped", claim(`"iss":"evil"`, `"\u0069ss":"bookapi"`, exp)},
		{"payload iss given twice, escaped first", claim(`"\u0069ss":"bookapi"`, `"iss":"evil"`, exp)},
		{"payload iss by an escaped name, wrong", claim(`"\u0069ss":"evil"`, exp)},
		{"payload exp by an escaped name, expired", claim(iss, fmt.Sprintf(`"\u0065xp":%d`, jwtNow.Unix()-1))},
		{"payload unknown member given twice", claim(iss, exp, `"x":1`, `"x":1`)},
		{"payload sid given twice, same value", claim(iss, exp, `"sid":"s1"`, `"sid":"s1"`)},
		{"payload member given twice, 16 members", claim(append(jwtFiller(13), iss, exp, iss)...)},
		{"payload member given twice after 16 others", claim(append(jwtFiller(16), iss, exp, iss)...)},
		{"payload non-ASCII member given twice, once escaped", claim(iss, exp, `"é":1`, `"\u00e9":2`)},
		{"payload nested member given twice, once escaped", claim(iss, exp, `"x":{"a":1,"\u0061":2}`)},
		{"payload nested object given twice", claim(iss, exp, `"x":{}`, `"x":{}`)},
		{"payload trailing comma", claim(iss, exp+",")},
		{"payload leading comma", jwtForge(hdr, "{,"+iss+","+exp+"}", jwtSecret)},
		{"payload missing comma", jwtForge(hdr, "{"+iss+" "+exp+"}", jwtSecret)},
		{"payload missing colon", claim(`"iss" "bookapi"`, exp)},
		{"payload double colon", claim(`"iss"::"bookapi"`, exp)},
		{"payload missing closing brace", jwtForge(hdr, "{"+iss+","+exp, jwtSecret)},
		{"payload empty object", jwtForge(hdr, "{}", jwtSecret)},
		{"payload unquoted member name", claim(`iss:"bookapi"`, exp)},
		{"payload single-quoted member name", claim(`'iss':"bookapi"`, exp)},
		{"payload member name with a raw tab", claim(iss, exp, "\"a\tb\":1")},
		{"payload member name unterminated", claim(iss, exp, `"x`)},
		{"payload form feed as whitespace", jwtForge(hdr, "{\f"+iss+","+exp+"}", jwtSecret)},
		{"payload vertical tab as whitespace", jwtForge(hdr, "{"+iss+",\v"+exp+"}", jwtSecret)},
		{"payload no-break space as whitespace", jwtForge(hdr, "{"+iss+",\u00a0"+exp+"}", jwtSecret)},
		{"payload byte order mark first", jwtForge(hdr, "\ufeff"+jwtObject(iss, exp), jwtSecret)},
		{"payload NUL after the object", jwtForge(hdr, jwtObject(iss, exp)+"\x00", jwtSecret)},
		{"payload two objects", jwtForge(hdr, jwtObject(iss, exp)+" "+jwtObject(iss, exp), jwtSecret)},

		// payload strings
		{"sub with a raw tab", claim(iss, exp, "\"sub\":\"a\tb\"")},
		{"sub with a raw newline", claim(iss, exp, "\"sub\":\"a\nb\"")},
		{"sub with a raw NUL", claim(iss, exp, "\"sub\":\"a\x00b\"")},
		{`sub with a \x escape`, claim(iss, exp, `"sub":"\x41"`)},
		{`sub with a \' escape`, claim(iss, exp, `"sub":"\'"`)},
		{`sub with a \U escape`, claim(iss, exp, `"sub":"\U0041"`)},
		{`sub with a short \u escape`, claim(iss, exp, `"sub":"\u41"`)},
		{`sub with a non-hex \u escape`, claim(iss, exp, `"sub":"\uZZZZ"`)},
		{`sub with a signed \u escape`, claim(iss, exp, `"sub":"\u+041"`)},
		{"sub unterminated", claim(iss, exp, `"sub":"u1`)},
		{"sub ending in a backslash", claim(iss, exp, `"sub":"u1\"`)},
		{"sub high surrogate twice", claim(iss, exp, `"sub":"\ud83d\ud83d"`)},
		{"sub surrogates reversed", claim(iss, exp, `"sub":"\ude00\ud83d"`)},
		{"sub high surrogate then a letter escape", claim(iss, exp, `"sub":"\ud83d\u0041"`)},
		{"sub high surrogate then a letter", claim(iss, exp, `"sub":"\ud83dx"`)},
		{"sub high surrogate at the end", claim(iss, exp, `"sub":"x\ud83d"`)},
		{"sub surrogates in CESU-8", claim(iss, exp, "\"sub\":\"\xed\xa0\xbd\xed\xb8\x80\"")},
		{"jti lone surrogate", claim(iss, exp, `"jti":"\udfff"`)},
		{"unknown member with a lone surrogate", claim(iss, exp, `"x":"\ud800"`)},
		{"unknown member with a lone low surrogate", claim(iss, exp, `"x":"a\udc00"`)},
		{`unknown member with a \q escape`, claim(iss, exp, `"x":"\q"`)},
		{"unknown member with a raw control character", claim(iss, exp, "\"x\":\"\x1f\"")},
		{"unknown member with invalid UTF-8", claim(iss, exp, "\"x\":\"\xc3\"")},
		{"unknown member unterminated string", claim(iss, exp, `"x":"abc`)},
		{"unknown member number with a leading zero", claim(iss, exp, `"x":007`)},
		{"unknown member number with an empty fraction", claim(iss, exp, `"x":1.e5`)},
		{"sid not a string", claim(iss, exp, `"sid":["s1"]`)},
		{"public_id null", claim(iss, exp, `"public_id":null`)},
		{`iss with a trailing \u0000`, claim(`"iss":"bookapi\u0000"`, exp)},
		{"iss escaped in another case", claim(`"iss":"\u0042ookapi"`, exp)},
		{"iss as a number", claim(`"iss":1`, exp)},

		// payload literals
		{"unknown member truex", claim(iss, exp, `"x":truex`)},
		{"unknown member nul", claim(iss, exp, `"x":nul`)},
		{"unknown member tru", claim(iss, exp, `"x":tru`)},
		{"unknown member fals", claim(iss, exp, `"x":fals`)},
		{"unknown member True", claim(iss, exp, `"x":True`)},
		{"unknown member undefined", claim(iss, exp, `"x":undefined`)},
		{"unknown member without a value", claim(iss, exp, `"x":`)},
		{"unknown member two values", claim(iss, exp, `"x":1 2`)},

		// payload numbers
		{"exp with a leading zero", claim(iss, fmt.Sprintf(`"exp":0%d`, jwtNow.Unix()+900))},
		{"exp with a plus sign", claim(iss, fmt.Sprintf(`"exp":+%d`, jwtNow.Unix()+900))},
		{"exp with a trailing dot", claim(iss, fmt.Sprintf(`"exp":%d.`, jwtNow.Unix()+900))},
		{"exp with a leading dot", claim(iss, `"exp":.5e10`)},
		{"exp with an empty exponent", claim(iss, `"exp":1.8e`)},
		{"exp with a signed empty exponent", claim(iss, `"exp":1.8e+`)},
		{"exp with a letter after it", claim(iss, fmt.Sprintf(`"exp":%dx`, jwtNow.Unix()+900))},
		{"exp with underscores", claim(iss, `"exp":1_800_000_000`)},
		{"exp with two minus signs", claim(iss, `"exp":--1`)},
		{"exp minus sign only", claim(iss, `"exp":-`)},
		{"exp hexadecimal float", claim(iss, `"exp":0x1p31`)},
		{"exp Inf", claim(iss, `"exp":Inf`)},
		{"exp huge exponent", claim(iss, `"exp":1e999999999999`)},
		{"exp underflows to zero", claim(iss, `"exp":1e-400`)},
		{"exp 1e3", claim(iss, `"exp":1e3`)},
		{"exp 1E9", claim(iss, `"exp":1E9`)},
		{"exp negative zero", claim(iss, `"exp":-0`)},
		{"exp negative fraction", claim(iss, `"exp":-0.5`)},
		{"nbf far ahead in exponent form", claim(iss, exp, `"nbf":1.9e9`)},
		{"iat negative fraction", claim(iss, exp, `"iat":-0.5`)},
		{"iat with a leading zero", claim(iss, exp, `"iat":00`)},

		// size
		{"token of 8 KiB + 1", jwtTokenOfLen(t, kid, maxTokenLen+1)},
		{"token of 1 MiB", jwtForge(hdr, jwtObject(iss, exp, `"pad":"`+strings.Repeat("x", 1<<20)+`"`), jwtSecret)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jwtWantRefused(t, tc.name, tc.token, kr, jwtIssuer, jwtNow)
		})
	}
}

// TestVerifyAcceptsEdges checks the accepting side of each edge the forged table refuses.
func TestVerifyAcceptsEdges(t *testing.T) {
	t.Parallel()
	kr := newKeyring([]byte(jwtSecret), []byte(jwtOldSecret))
	kid := kr.current.id
	hdr := jwtObject(`"alg":"HS256"`, `"typ":"JWT"`, `"kid":"`+kid+`"`)
	iss := `"iss":"bookapi"`
	exp := jwtAt("exp", 900)
	claim := func(members ...string) string { return jwtForge(hdr, jwtObject(members...), jwtSecret) }

	for _, tc := range []struct {
		name  string
		token string
	}{
		{"exp 1 s ahead", claim(iss, jwtAt("exp", 1))},
		{"exp half a second ahead", claim(iss, fmt.Sprintf(`"exp":%d.5`, jwtNow.Unix()))},
		{"exp at the end of year 9999", claim(iss, fmt.Sprintf(`"exp":%d`, maxNumericDate))},
		{"exp in exponent form", claim(iss, `"exp":1.8e9`)},
		{"nbf 59 s ahead", claim(iss, exp, jwtAt("nbf", 59))},
		{"nbf 60 s ahead", claim(iss, exp, jwtAt("nbf", 60))},
		{"nbf in the past", claim(iss, exp, jwtAt("nbf", -3600))},
		{"iat 60 s ahead", claim(iss, exp, jwtAt("iat", 60))},
		{"iat missing", claim(iss, exp)},
		{"iat zero", claim(iss, exp, `"iat":0`)},
		{"surrogate pair", claim(iss, exp, `"sub":"\ud83d\ude00"`)},
		{"unknown claim", claim(iss, exp, `"admin":true`)},
		{"whitespace in the JSON", jwtForge(" {\r\n"+hdr[1:], "{ \t"+iss+" ,\n "+exp+"}\n", jwtSecret)},
		{"jku header is ignored", jwtForge(jwtObject(`"alg":"HS256"`, `"kid":"`+kid+`"`, `"jku":"https://attacker.example/keys"`), jwtObject(iss, exp), jwtSecret)},
		{"previous key", jwtForge(jwtObject(`"alg":"HS256"`, `"kid":"`+kr.verify[1].id+`"`), jwtObject(iss, exp), jwtOldSecret)},
		{"exp given by an escaped name", claim(iss, fmt.Sprintf(`"\u0065xp":%d`, jwtNow.Unix()+900))},
		{"iss given by an escaped name", claim(`"\u0069ss":"bookapi"`, exp)},
		{"iss with escapes", claim(`"iss":"book\u0061p\u0069"`, exp)},
		{"iss with an escaped solidus", claim(`"iss":"bookapi"`, exp, `"x":"a\/b"`)},
		{"exp with a capital exponent", claim(iss, `"exp":1.8E9`)},
		{"exp with a signed exponent", claim(iss, `"exp":1.8e+9`)},
		{"exp with a negative exponent", claim(iss, `"exp":180000000000e-2`)},
		{"exp with a fraction and an exponent", claim(iss, `"exp":18.0e8`)},
		{"iat negative zero", claim(iss, exp, `"iat":-0`)},
		{"iat zero with a fraction", claim(iss, exp, `"iat":0.0`)},
		{"nbf zero", claim(iss, exp, `"nbf":0`)},
		{"every escape in a string", claim(iss, exp, `"sub":"\"\\\/\b\f\n\r\t\u0000\u001f\u0041\u00e9\u20AC\ufffd\ud83d\ude00"`)},
		{"raw DEL and non-ASCII in a string", claim(iss, exp, "\"sub\":\"\x7f é 日本 😀\"")},
		{"whitespace around every token", jwtForge(hdr, " \t\r\n{ \"iss\" :\t\"bookapi\" ,\n\"exp\"\r: "+strings.TrimPrefix(exp, `"exp":`)+" \n} \t\r\n", jwtSecret)},
		{"unknown members of every scalar type", claim(iss, exp, `"a":true`, `"b":false`, `"c":null`, `"d":-1.5e-3`, `"e":""`, `"f":0`)},
		{"nested unknown claim", claim(iss, exp, `"x":{"a":[1,{"b":null}],"c":{},"d":[]}`)},
		{"same name at different depths", claim(iss, exp, `"x":{"iss":1,"x":{"x":2}}`)},
		{"non-ASCII member name", claim(iss, exp, `"é":1`)},
		{"escaped member name of an unknown claim", claim(iss, exp, `"\u0078":1`)},
		{"16 members", claim(append(jwtFiller(14), iss, exp)...)},
		{"17 members", claim(append(jwtFiller(15), iss, exp)...)},
		{"header sign writes for the previous key", jwtSignInput(jwtHeader(kr.verify[1])+"."+jwtB64(jwtObject(iss, exp)), jwtOldSecret)},
		{"token of exactly 8 KiB", jwtTokenOfLen(t, kid, maxTokenLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jwtWantAccepted(t, tc.name, tc.token, kr, jwtIssuer, jwtNow)
		})
	}
}

// jwtFuzzTokens deterministically signs fixed claims with two fixed keys and
// returns the keyring holding both keys and every token mapped to its claims.
// Some of the claims are not acceptable at jwtNow (jwtAcceptable).
func jwtFuzzTokens(tb testing.TB) (keyring, map[string]claims) {
	tb.Helper()
	kr := newKeyring([]byte(jwtSecret), []byte(jwtOldSecret))
	now := jwtNow.Unix()
	fixed := []claims{
		{Issuer: jwtIssuer, Subject: "u1", PublicID: "u1", SessionID: "s1", IssuedAt: now, ExpiresAt: now + 900, ID: "jti-1"},
		{Issuer: jwtIssuer, Subject: "u2", PublicID: "u2", SessionID: "s2", IssuedAt: now - 60, ExpiresAt: now + 1, ID: "jti-2"},
		{Issuer: jwtIssuer, Subject: "é\"<>&\u2028", IssuedAt: now + 60, ExpiresAt: maxNumericDate, ID: "jti-3"},
		{Issuer: jwtIssuer, Subject: "expired", IssuedAt: now - 900, ExpiresAt: now, ID: "jti-4"},
		{Issuer: "someone-else", Subject: "u5", IssuedAt: now, ExpiresAt: now + 900, ID: "jti-5"},
	}
	tokens := map[string]claims{}
	for _, k := range kr.verify {
		for _, c := range fixed {
			tok, err := sign(c, k)
			if err != nil {
				tb.Fatalf("sign(%+v): %v", c, err)
			}
			tokens[tok] = c
		}
	}
	return kr, tokens
}

// jwtAcceptable reports whether verify must accept a token sign produced for
// c with a configured key at jwtNow: the issuer is jwtIssuer, jwtNow is
// before exp, and iat is at most clockSkew ahead.
func jwtAcceptable(c claims) bool {
	return c.Issuer == jwtIssuer && jwtNow.Unix() < c.ExpiresAt && c.IssuedAt <= jwtNow.Add(clockSkew).Unix()
}

// FuzzVerify checks that verify never panics, accepts only tokens, byte for
// byte, that sign produced with a configured key for acceptable claims, and
// accepts each of those with its claims.
func FuzzVerify(f *testing.F) {
	kr, tokens := jwtFuzzTokens(f)
	none := jwtB64(`{"alg":"none","typ":"JWT","kid":"` + kr.current.id + `"}`)
	for _, tok := range slices.Sorted(maps.Keys(tokens)) {
		parts := strings.Split(tok, ".")
		h, p, s := parts[0], parts[1], parts[2]
		f.Add(tok)
		f.Add(h + "." + p + ".")
		f.Add(h + "." + p)
		f.Add(none + "." + p + ".")
		f.Add(none + "." + p + "." + s)
		f.Add(tok + "=")
		f.Add(tok + "." + s)
		f.Add(tok[:len(tok)-1])
		f.Add(h + "." + p + "." + s[:len(s)-1] + string(jwtAlphabet[strings.IndexByte(jwtAlphabet, s[len(s)-1])|1]))
		f.Add(h + "." + jwtB64(`{"iss":"bookapi","exp":99999999999}`) + "." + s)
	}
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")

	f.Fuzz(func(t *testing.T, token string) {
		c, err := verify(token, kr, jwtIssuer, jwtNow)
		want, signed := tokens[token]
		switch {
		case err == nil && !signed:
			t.Fatalf("verify(%q): err = nil, want errToken (not a token sign produced)", token)
		case err == nil && !jwtAcceptable(want):
			t.Fatalf("verify(%q): err = nil for claims %+v, want errToken (expired, wrong issuer or issued ahead)", token, want)
		case err == nil && c != want:
			t.Fatalf("verify(%q): claims = %+v, want %+v", token, c, want)
		case err != nil && signed && jwtAcceptable(want):
			t.Fatalf("verify(%q) of claims %+v signed with a configured key: %v, want them accepted", token, want, err)
		case err != nil && !errors.Is(err, errToken):
			t.Fatalf("verify(%q): err = %v, want errToken", token, err)
		case err != nil && c != (claims{}):
			t.Fatalf("verify(%q): claims = %+v with an error, want zero claims", token, c)
		}
	})
}

// BenchmarkVerify measures verifying one valid token.
func BenchmarkVerify(b *testing.B) {
	kr := newKeyring([]byte(jwtSecret), []byte(jwtOldSecret))
	c := claims{Issuer: jwtIssuer, Subject: "u1", PublicID: "u1", SessionID: "s1", IssuedAt: jwtNow.Unix(), ExpiresAt: jwtNow.Unix() + 900, ID: "jti-1"}
	tok, err := sign(c, kr.current)
	if err != nil {
		b.Fatalf("sign: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := verify(tok, kr, jwtIssuer, jwtNow); err != nil {
			b.Fatalf("verify: %v", err)
		}
	}
}

// BenchmarkSign measures signing one set of claims.
func BenchmarkSign(b *testing.B) {
	k := newKey([]byte(jwtSecret))
	c := claims{Issuer: jwtIssuer, Subject: "u1", PublicID: "u1", SessionID: "s1", IssuedAt: jwtNow.Unix(), ExpiresAt: jwtNow.Unix() + 900, ID: "jti-1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sign(c, k); err != nil {
			b.Fatalf("sign: %v", err)
		}
	}
}

// TestVerifyClaimsMatchJSON checks that the claims verify returns are what
// encoding/json decodes from the same payload.
func TestVerifyClaimsMatchJSON(t *testing.T) {
	t.Parallel()
	kr := newKeyring([]byte(jwtSecret))
	hdr := jwtObject(`"alg":"HS256"`, `"typ":"JWT"`, `"kid":"`+kr.current.id+`"`)
	iss := `"iss":"bookapi"`
	exp := jwtAt("exp", 900)
	iat := jwtAt("iat", -5)
	for _, tc := range []struct {
		name    string
		payload string
	}{
		{"plain", jwtObject(iss, `"sub":"u1"`, `"public_id":"u1"`, `"sid":"s1"`, iat, exp, `"jti":"j1"`)},
		{"every escape", jwtObject(iss, `"sub":"\"\\\/\b\f\n\r\t\u0000\u001f\u0041\u00e9\u20AC\ufffd"`, `"public_id":"a\u003cb\u003e\u0026"`, `"sid":"\u2028\u2029"`, exp, `"jti":"\\\\"`)},
		{"surrogate pair", jwtObject(iss, `"sub":"\ud83d\ude00 \uD83D\uDE00"`, exp)},
		{"raw UTF-8", jwtObject(iss, "\"sub\":\"é ß 日本 😀 \x7f\"", `"sid":""`, exp)},
		{"escaped names", jwtObject(`"\u0069ss":"bookapi"`, `"\u0073ub":"u2"`, `"public\u005fid":"u2"`, `"si\u0064":"s2"`, `"\u006a\u0074\u0069":"j2"`, exp)},
		{"escaped issuer", jwtObject(`"iss":"\u0062ookapi"`, `"sub":"u3"`, exp)},
		{"nested", jwtObject(iss, `"sub":"u4"`, `"x":{"sub":"other","y":[{"jti":1}]}`, `"jti":"j4"`, exp)},
		{"many members", jwtObject(append(jwtFiller(20), iss, `"sid":"s5"`, exp, iat)...)},
		{"whitespace", " {\n\t" + iss + " , \"sub\" : \"u6\"\r\n," + exp + " } "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want claims
			if err := json.Unmarshal([]byte(tc.payload), &want); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", tc.payload, err)
			}
			got := jwtWantAccepted(t, tc.name, jwtForge(hdr, tc.payload, jwtSecret), kr, jwtIssuer, jwtNow)
			if got != want {
				t.Errorf("verify(%s): claims = %+v, want %+v", tc.name, got, want)
			}
		})
	}
}

// jwtPayloadSeeds seed FuzzFlatClaims: what sign writes, and shapes the
// flatClaims must leave to the general path.
var jwtPayloadSeeds = []string{
	`{"iss":"bookapi","sub":"u1","public_id":"u1","sid":"s1","iat":1767225600,"exp":1767226500,"jti":"jti-1"}`,
	`{"iss":"bookapi","sub":"\"\\\/\b\f\n\r\t\u0000\u00e9","exp":1.8e9,"x":true,"y":false,"z":null}`,
	` { "iss" : "bookapi" , "exp" : -0 } `,
	`{"iss":"bookapi","exp":1,"exp":2}`,
	`{"iss":"bookapi","\u0065xp":1,"exp":2}`,
	`{"iss":"bookapi","sub":"\ud83d\ude00","exp":01}`,
	`{"iss":"bookapi","sub":"\ud83d","x":{"a":[1,2,{"b":null}]}}`,
	`{"iss":"bookapi","x":truex}`,
	`{"iss":"bookapi",}`,
	`{}`,
	"{\"sub\":\"\xff\"}",
}

// FuzzFlatClaims checks that the payload reader flatClaims accepts only
// what the general reader accepts, and reads the same members from it.
func FuzzFlatClaims(f *testing.F) {
	for _, s := range jwtPayloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fast, ok := flatClaims(payload)
		if !ok {
			return
		}
		general, err := parseClaims(payload)
		if err != nil {
			t.Fatalf("flatClaims(%q) accepted what parseClaims refuses: %v", payload, err)
		}
		for i := range fast {
			if (fast[i] == nil) != (general[i] == nil) || !bytes.Equal(fast[i], general[i]) {
				t.Fatalf("flatClaims(%q): %s = %q, parseClaims: %q", payload, claimNames[i], fast[i], general[i])
			}
		}
	})
}
