package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// credentials is the body of POST /signup.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// valid applies the signup rules: a 3-64 character username of
// A-Z a-z 0-9 . _ - and an 8-72 byte password.
func (c *credentials) valid() error {
	if err := validUsername(c.Username); err != nil {
		return err
	}
	return validPassword("password", c.Password)
}

// maxUsernameLen is the longest username signup accepts, in bytes.
const maxUsernameLen = 64

// validUsername applies the username rule.
func validUsername(name string) error {
	if len(name) < 3 || len(name) > maxUsernameLen || strings.Trim(name, usernameChars) != "" {
		return badRequest("Member \"username\" must be 3 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'.")
	}
	return nil
}

const usernameChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

// validPassword applies the password rule; bcrypt reads at most 72 bytes.
func validPassword(member, pw string) error {
	if len(pw) < 8 || len(pw) > 72 {
		return badRequest("Member %q must be 8 to 72 bytes long.", member)
	}
	return nil
}

// loginRequest is the body of POST /login. Missing or empty credentials are
// a failed login (401), as in the seed, not a malformed request.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (l *loginRequest) valid() error {
	if l.Username == "" || l.Password == "" {
		return errCouldNotVerify
	}
	return nil
}

// tokenResponse is the answer to a login: strings and integers only, since
// seed clients read it with Python's ast.literal_eval.
type tokenResponse struct {
	Token        string `json:"token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// userResponse is a user as /me and /admin/users show it.
type userResponse struct {
	PublicID  string `json:"public_id"`
	Username  string `json:"username"`
	Admin     bool   `json:"admin"`
	CreatedAt string `json:"created_at"`
	Books     *int   `json:"books,omitempty"`
}

func newUserResponse(u user, withBooks bool) userResponse {
	r := userResponse{PublicID: u.PublicID, Username: u.Username, Admin: u.Admin, CreatedAt: timestamp(u.CreatedAt)}
	if withBooks {
		n := u.Books
		r.Books = &n
	}
	return r
}

// timestamp formats t as RFC 3339 in UTC.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// withSlot runs fn on one of the bounded bcrypt slots, so a flood of logins
// cannot starve the rest of the API of CPU.
func (s *server) withSlot(ctx context.Context, fn func()) error {
	select {
	case s.slots <- struct{}{}:
	default:
		s.metrics.bcryptWaits.Add(1)
		t := time.NewTimer(s.slotWait)
		defer t.Stop()
		select {
		case s.slots <- struct{}{}:
		case <-t.C:
			s.metrics.bcryptRefusals.Add(1)
			return errBusy
		case <-ctx.Done():
			return errBusy
		}
	}
	defer func() { <-s.slots }()
	fn()
	return nil
}

// hashPassword hashes pw at the configured cost on a bcrypt slot.
func (s *server) hashPassword(ctx context.Context, pw string) (string, error) {
	var hash []byte
	var herr error
	if err := s.withSlot(ctx, func() { hash, herr = bcrypt.GenerateFromPassword([]byte(pw), s.cfg.bcryptCost) }); err != nil {
		return "", err
	}
	if herr != nil {
		return "", fmt.Errorf("hash password: %w", herr)
	}
	return string(hash), nil
}

// signup creates an account.
func (s *server) signup(w http.ResponseWriter, r *http.Request) error {
	var req credentials
	if err := decode(w, r, &req); err != nil {
		return err
	}
	hash, err := s.hashPassword(r.Context(), req.Password)
	if err != nil {
		return err
	}
	u, err := s.db.createUser(r.Context(), uuid.NewString(), req.Username, hash, false, s.now())
	if errors.Is(err, errConflict) {
		return errUserExists
	}
	if err != nil {
		return err
	}
	noteUser(r, u.PublicID)
	writeJSON(w, http.StatusCreated, struct {
		Message  string `json:"message"`
		PublicID string `json:"public_id"`
		Username string `json:"username"`
	}{"registered successfully", u.PublicID, u.Username})
	return nil
}

// readLogin reads a login body. An empty body or a JSON value that is not an
// object is a failed login (401, as in the seed); a body that is not JSON at
// all is a 400 like anywhere else.
func readLogin(w http.ResponseWriter, r *http.Request) (loginRequest, error) {
	var req loginRequest
	body, err := readBody(w, r)
	if err != nil {
		return req, err
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' && json.Valid(trimmed) {
		return req, errCouldNotVerify
	}
	return req, parseObject(body, &req)
}

// login checks a username and password and starts a session. Unknown users
// and wrong passwords get the same answer after the same work: a reserved
// attempt, kept as a failure, and a bcrypt comparison at the configured cost.
func (s *server) login(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	addr := s.clientAddr(r)
	now := s.now()
	req, err := readLogin(w, r)
	if errors.Is(err, errCouldNotVerify) {
		// No credentials: a failure that counts for the address only.
		if _, err := s.admitLogin(ctx, "", addr, now); err != nil {
			return err
		}
		s.metrics.loginsFailed.Add(1)
		return errCouldNotVerify
	}
	if err != nil {
		return err
	}
	key := throttleKey(req.Username)
	attempt, err := s.admitLogin(ctx, key, addr, now)
	if err != nil {
		return err
	}
	u, hash, err := s.checkPassword(ctx, req.Username, req.Password)
	if errors.Is(err, errCouldNotVerify) {
		s.metrics.loginsFailed.Add(1)
		return errCouldNotVerify // the reserved attempt stays, as the failure
	}
	if err != nil {
		s.releaseLogin(r, attempt) // no password was checked
		return err
	}
	noteUser(r, u.PublicID)
	if err := s.db.clearLoginFailures(ctx, key); err != nil {
		s.log.Warn("clear login failures", "request_id", requestID(r), "err", err)
	}
	s.upgradeHash(ctx, u, hash, req.Password)
	resp, err := s.startSession(ctx, u)
	if err != nil {
		return err
	}
	s.metrics.loginsOK.Add(1)
	s.metrics.sessionsStarted.Add(1)
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// checkPassword returns the user with this username if pw is their password,
// else errCouldNotVerify. Whether or not the user exists, a wrong password
// costs at least one bcrypt comparison at the configured cost: an unknown
// user's is made against a dummy hash, and so is a second one for a user
// whose stored hash is cheaper (made before the cost was raised), who would
// otherwise answer sooner. A username longer than any account may have is
// not looked up, and a password over 72 bytes never matches (bcrypt would
// compare only its first 72 bytes) but costs the same.
func (s *server) checkPassword(ctx context.Context, username, pw string) (user, string, error) {
	var u user
	var hash string
	err := errNotFound
	if len(username) <= maxUsernameLen {
		u, hash, err = s.db.credentials(ctx, username)
	}
	known := err == nil
	if err != nil && !errors.Is(err, errNotFound) {
		return user{}, "", err
	}
	if !known {
		hash = string(s.dummyHash())
	}
	b := []byte(pw)
	tooLong := len(b) > 72
	if tooLong {
		b = b[:72]
	}
	var ok bool
	err = s.withSlot(ctx, func() {
		ok = s.compareHash([]byte(hash), b) == nil && known && !tooLong
		if cost, err := bcrypt.Cost([]byte(hash)); !ok && (err != nil || cost < s.cfg.bcryptCost) {
			s.compareHash(s.dummyHash(), b)
		}
	})
	if err != nil {
		return user{}, "", err
	}
	if !ok {
		return user{}, "", errCouldNotVerify
	}
	return u, hash, nil
}

// throttleKey is the key failed logins for username are counted under: its
// case-folded form, or for a name longer than any account may have, a digest
// of it, so that a login with a huge username stores a few bytes, not the name.
func throttleKey(username string) string {
	if len(username) > maxUsernameLen {
		sum := sha256.Sum256([]byte(foldKey(username)))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return foldKey(username)
}

// clientAddr is the address failed logins are counted against (see
// addressKey): the connection's, or with -trust-proxy the last
// X-Forwarded-For entry (the one our own proxy appended; earlier entries are
// the client's to forge). An entry that is not an address is counted under a
// digest of itself, never under the proxy's own address, which every client
// shares.
func (s *server) clientAddr(r *http.Request) string {
	if s.cfg.trustProxy {
		if vals := r.Header.Values("X-Forwarded-For"); len(vals) > 0 {
			last := vals[len(vals)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			last = strings.TrimSpace(last)
			if ip, ok := parseForwarded(last); ok {
				return addressKey(ip)
			}
			sum := sha256.Sum256([]byte(last))
			return "unparsed:" + hex.EncodeToString(sum[:8])
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return addressKey(ap.Addr())
	}
	return r.RemoteAddr
}

// parseForwarded reads an X-Forwarded-For entry as proxies write it: an
// address, with or without a port, IPv6 with or without brackets.
func parseForwarded(entry string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(entry); err == nil {
		return ap.Addr(), true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(entry, "["), "]"))
	return ip, err == nil
}

// addressKey is what failures from ip are counted under: an IPv4 address
// (also when written IPv4-mapped in IPv6), or an IPv6 client's /64 prefix,
// since one host commonly holds a whole /64.
func addressKey(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// admitLogin reserves one password check for usernameKey ("" for none) from
// addr, or refuses it with 429 while too many failures for either fall
// within the window. The reservation counts as a failure unless it is
// released.
func (s *server) admitLogin(ctx context.Context, usernameKey, addr string, now time.Time) (int64, error) {
	id, at, err := s.db.reserveLogin(ctx, usernameKey, addr, now, s.cfg.loginWindow,
		s.cfg.loginMaxFailures, s.cfg.loginMaxAddressFailures)
	if err != nil {
		return 0, err
	}
	if at.IsZero() {
		return id, nil
	}
	wait := int(math.Ceil(at.Sub(now).Seconds()))
	s.metrics.loginsThrottled.Add(1)
	return 0, &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
		msg: "Too many failed logins; try again later.", retryAfter: max(1, wait)}
}

// releaseLogin forgets a reserved attempt that did not fail. It runs even if
// the client has gone or the request's deadline has passed (the attempt may
// have failed for that very reason), under a deadline of its own, so that a
// database that does not answer cannot hold the request; a failure is
// logged, and the attempt then counts.
func (s *server) releaseLogin(r *http.Request, attempt int64) {
	ctx := context.WithoutCancel(r.Context())
	if s.cfg.dbTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.dbTimeout)
		defer cancel()
	}
	if err := s.db.releaseLogin(ctx, attempt); err != nil {
		s.log.Warn("release login attempt", "request_id", requestID(r), "err", err)
	}
}

// upgradeHash re-hashes a password whose stored hash has a lower cost than
// the configured one. A failure is logged and the old hash kept.
func (s *server) upgradeHash(ctx context.Context, u user, hash, pw string) {
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil || cost >= s.cfg.bcryptCost {
		return
	}
	newHash, err := s.hashPassword(ctx, pw)
	if err == nil {
		err = s.db.setPasswordHash(ctx, u.ID, newHash)
	}
	if err != nil {
		s.log.Warn("upgrade password hash", "user", u.PublicID, "err", err)
	}
}

// newRefreshToken returns an opaque refresh token of 256 random bits and the
// SHA-256 hash under which it is stored.
func newRefreshToken() (string, []byte) {
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	return tok, hashRefresh(tok)
}

// startSession creates a login session for u and its first token pair.
func (s *server) startSession(ctx context.Context, u user) (tokenResponse, error) {
	now := s.now()
	sid := uuid.NewString()
	refresh, refreshHash := newRefreshToken()
	if err := s.db.createSession(ctx, sid, u.ID, refreshHash, now, s.cfg.refreshTTL); err != nil {
		return tokenResponse{}, err
	}
	access, err := s.accessToken(u, sid, now)
	if err != nil {
		return tokenResponse{}, err
	}
	return tokenResponse{Token: access, TokenType: "Bearer", ExpiresIn: int64(s.cfg.tokenTTL / time.Second), RefreshToken: refresh}, nil
}

// accessToken signs an access token for u in session sid.
func (s *server) accessToken(u user, sid string, now time.Time) (string, error) {
	return sign(claims{
		Issuer:    s.cfg.issuer,
		Subject:   u.PublicID,
		PublicID:  u.PublicID,
		SessionID: sid,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(s.cfg.tokenTTL).Unix(),
		ID:        uuid.NewString(),
	}, s.keys.current)
}

// bearerToken returns the access token of a request: x-access-token (the
// seed's header) or Authorization: Bearer. Both may be sent only if equal.
// A header sent more than once is refused.
func bearerToken(r *http.Request) (string, error) {
	var fromHeader, fromAuth string
	if vals := r.Header.Values("X-Access-Token"); len(vals) > 1 {
		return "", errInvalidToken
	} else if len(vals) == 1 {
		fromHeader = strings.TrimSpace(vals[0])
	}
	if vals := r.Header.Values("Authorization"); len(vals) > 1 {
		return "", errInvalidToken
	} else if len(vals) == 1 {
		scheme, tok, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
		if strings.EqualFold(scheme, "Bearer") {
			fromAuth = strings.TrimSpace(tok)
		}
	}
	switch {
	case fromHeader == "" && fromAuth == "":
		return "", errTokenMissing
	case fromHeader != "" && fromAuth != "" && fromHeader != fromAuth:
		return "", errInvalidToken
	case fromHeader != "":
		return fromHeader, nil
	}
	return fromAuth, nil
}

// tokenClaims verifies the request's token: its signature, expiry and
// issuer. It reads no database.
func (s *server) tokenClaims(r *http.Request) (claims, error) {
	tok, err := bearerToken(r)
	if err != nil {
		return claims{}, err
	}
	c, err := verify(tok, s.keys, s.cfg.issuer, s.now())
	if err != nil || c.Subject == "" || c.PublicID != c.Subject || c.SessionID == "" {
		return claims{}, errInvalidToken
	}
	return c, nil
}

// sessionUser loads the user and session a verified token names from the
// database, so a deleted user or an ended session is refused at once.
func (s *server) sessionUser(r *http.Request, c claims) (user, error) {
	u, err := s.db.sessionUser(r.Context(), c.SessionID, c.Subject, s.now())
	if errors.Is(err, errNotFound) {
		return user{}, errInvalidToken
	}
	return u, err
}

// requireToken wraps a handler that needs an authenticated user and hands it
// that user, as the seed's @token_required decorator did. The token is
// checked before the request's database deadline starts (see serve): a
// token refused on its own bytes costs no database work, so no deadline.
func (s *server) requireToken(h func(http.ResponseWriter, *http.Request, user) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.tokenClaims(r)
		if err != nil {
			s.serveError(w, r, err)
			return
		}
		s.serve(w, r, func(w http.ResponseWriter, r *http.Request) error {
			u, err := s.sessionUser(r, c)
			if err != nil {
				return err
			}
			noteUser(r, u.PublicID)
			return h(w, r, u)
		})
	})
}

// requireAdmin is requireToken for administrators only.
func (s *server) requireAdmin(h func(http.ResponseWriter, *http.Request, user) error) http.Handler {
	return s.requireToken(func(w http.ResponseWriter, r *http.Request, u user) error {
		if !u.Admin {
			return errAdminRequired
		}
		return h(w, r, u)
	})
}

// errInvalidRefresh answers an unknown, expired or spent refresh token.
var errInvalidRefresh = &apiError{status: http.StatusUnauthorized, code: "invalid_token", msg: "Invalid refresh token!"}

// errWrongPassword answers a password change with the wrong old password.
var errWrongPassword = &apiError{status: http.StatusForbidden, code: "invalid_credentials", msg: "Old password is incorrect!"}

// refreshRequest is the body of POST /refresh.
type refreshRequest struct {
	RefreshToken *string `json:"refresh_token"`
}

// valid requires the member; an empty token is merely an unknown one (401).
func (q *refreshRequest) valid() error {
	if q.RefreshToken == nil {
		return badRequest("Member \"refresh_token\" is required.")
	}
	return nil
}

// hashRefresh is the form a refresh token is stored and looked up in.
func hashRefresh(tok string) []byte {
	sum := sha256.Sum256([]byte(tok))
	return sum[:]
}

// refresh trades a refresh token for a new token pair, spending it. A token
// that was spent before ends its session.
func (s *server) refresh(w http.ResponseWriter, r *http.Request) error {
	var req refreshRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	now := s.now()
	next, nextHash := newRefreshToken()
	u, err := s.db.rotateRefresh(r.Context(), hashRefresh(*req.RefreshToken), nextHash, now, s.cfg.refreshTTL)
	if errors.Is(err, errReused) {
		s.metrics.sessionsEnded.Add(1)
		s.log.Warn("spent refresh token presented; session ended", "request_id", requestID(r))
		return errInvalidRefresh
	}
	if errors.Is(err, errNotFound) {
		return errInvalidRefresh
	}
	if err != nil {
		return err
	}
	noteUser(r, u.PublicID)
	access, err := s.accessToken(u, u.SessionID, now)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, tokenResponse{Token: access, TokenType: "Bearer",
		ExpiresIn: int64(s.cfg.tokenTTL / time.Second), RefreshToken: next})
	return nil
}

// logoutRequest is the optional body of POST /logout.
type logoutRequest struct {
	RefreshToken *string `json:"refresh_token"`
}

func (q *logoutRequest) valid() error {
	if q.RefreshToken != nil && *q.RefreshToken == "" {
		return badRequest("Member \"refresh_token\" must not be empty.")
	}
	return nil
}

// logout ends the session of the presented token, and with it that
// session's refresh token. A refresh token in the body must be that session's.
func (s *server) logout(w http.ResponseWriter, r *http.Request, u user) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var req logoutRequest
		if err := parseObject(body, &req); err != nil {
			return err
		}
		if req.RefreshToken != nil {
			ok, err := s.db.refreshInSession(r.Context(), hashRefresh(*req.RefreshToken), u.SessionID, s.now())
			if err != nil {
				return err
			}
			if !ok {
				return badRequest("Member \"refresh_token\" is not the current session's refresh token.")
			}
		}
	}
	n, err := s.db.endSession(r.Context(), u.SessionID)
	if err != nil {
		return err
	}
	s.metrics.sessionsEnded.Add(n)
	writeJSON(w, http.StatusOK, map[string]string{"message": "logged out"})
	return nil
}

// logoutAll ends every session of the caller.
func (s *server) logoutAll(w http.ResponseWriter, r *http.Request, u user) error {
	n, err := s.db.endUserSessions(r.Context(), u.ID)
	if err != nil {
		return err
	}
	s.metrics.sessionsEnded.Add(n)
	writeJSON(w, http.StatusOK, map[string]string{"message": "logged out everywhere"})
	return nil
}

// passwordChange is the body of POST /me/password.
type passwordChange struct {
	OldPassword string `json:"old_password"`
	NewPassword string `json:"new_password"`
}

func (p *passwordChange) valid() error {
	if p.OldPassword == "" {
		return badRequest("Member \"old_password\" is required.")
	}
	return validPassword("new_password", p.NewPassword)
}

// changePassword replaces the caller's password after checking the old one,
// and ends every session of the caller. A wrong old password counts as a
// failed login, so a stolen access token cannot be used to guess passwords
// faster than the login throttle allows.
func (s *server) changePassword(w http.ResponseWriter, r *http.Request, u user) error {
	var req passwordChange
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	attempt, err := s.admitLogin(ctx, throttleKey(u.Username), s.clientAddr(r), s.now())
	if err != nil {
		return err
	}
	if _, _, err := s.checkPassword(ctx, u.Username, req.OldPassword); err != nil {
		if errors.Is(err, errCouldNotVerify) {
			return errWrongPassword // the reserved attempt stays, as a failure
		}
		s.releaseLogin(r, attempt)
		return err
	}
	s.releaseLogin(r, attempt)
	hash, err := s.hashPassword(ctx, req.NewPassword)
	if err != nil {
		return err
	}
	n, err := s.db.changePassword(ctx, u.ID, hash)
	if err != nil {
		return err
	}
	s.metrics.sessionsEnded.Add(n)
	writeJSON(w, http.StatusOK, map[string]string{"message": "password changed"})
	return nil
}

// me answers the caller's own account.
func (s *server) me(w http.ResponseWriter, r *http.Request, u user) error {
	writeJSON(w, http.StatusOK, newUserResponse(u, false))
	return nil
}

// listUsers answers a page of users in signup order with their book counts.
func (s *server) listUsers(w http.ResponseWriter, r *http.Request, _ user) error {
	q := r.URL.Query()
	limit, err := parseLimit(q)
	if err != nil {
		return err
	}
	after := q.Get("after")
	if q.Has("after") && after == "" {
		return badRequest("Parameter \"after\" must be a user's public_id.")
	}
	users, err := s.db.listUsers(r.Context(), after, limit+1)
	if errors.Is(err, errNotFound) {
		return badRequest("Parameter \"after\" names no user.")
	}
	if err != nil {
		return err
	}
	if len(users) > limit {
		users = users[:limit]
		w.Header().Set("Link", nextLink("/admin/users", limit, users[limit-1].PublicID, nil))
	}
	out := make([]userResponse, len(users))
	for i, u := range users {
		out[i] = newUserResponse(u, true)
	}
	writeJSON(w, http.StatusOK, struct {
		Users []userResponse `json:"Users"`
	}{out})
	return nil
}

// adminChange is the body of PATCH /admin/users/{public_id}.
type adminChange struct {
	Admin *bool `json:"admin"`
}

func (a *adminChange) valid() error {
	if a.Admin == nil {
		return badRequest("Member \"admin\" (true or false) is required.")
	}
	return nil
}

// updateUser sets or clears a user's admin flag.
func (s *server) updateUser(w http.ResponseWriter, r *http.Request, _ user) error {
	var req adminChange
	if err := decode(w, r, &req); err != nil {
		return err
	}
	u, err := s.db.setAdmin(r.Context(), r.PathValue("public_id"), *req.Admin)
	if errors.Is(err, errNotFound) {
		return errUserNotFound
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newUserResponse(u, true))
	return nil
}

// deleteUser removes a user with their books and sessions.
func (s *server) deleteUser(w http.ResponseWriter, r *http.Request, _ user) error {
	n, err := s.db.deleteUser(r.Context(), r.PathValue("public_id"))
	if errors.Is(err, errNotFound) {
		return errUserNotFound
	}
	if err != nil {
		return err
	}
	s.metrics.sessionsEnded.Add(n)
	writeJSON(w, http.StatusOK, map[string]string{"message": "User deleted"})
	return nil
}
