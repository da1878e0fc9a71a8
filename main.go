// Command bookapi is a book-management REST API with JWT authentication,
// served from one binary over a SQLite file, or from several instances
// sharing one PostgreSQL database.
//
// Usage:
//
//	bookapi [serve] [flags]                 serve the API (the default)
//	bookapi user add [-admin] [flags] NAME  create a user; password on stdin
//	bookapi user promote|demote [flags] NAME
//	bookapi backup [-force] [flags] DEST    copy the live SQLite database to DEST
//	bookapi version
//
// Flags override the environment, which overrides the defaults; see README.md.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// version is the release, set at build time with -ldflags "-X main.version=v1.2.3".
var version string

// minSecretLen is the shortest signing secret accepted, in bytes.
const minSecretLen = 32

// shutdownTimeout is how long in-flight requests get to finish after SIGTERM.
const shutdownTimeout = 30 * time.Second

// maxDBTimeout is the longest -db-timeout: a request that waited longer
// could not be answered before the server's 30 s write timeout.
const maxDBTimeout = 20 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bookapi:", err)
		os.Exit(exitCode(err))
	}
}

// exitError is an error for which the command exits with a status other
// than 1.
type exitError struct {
	code int
	err  error
}

// Error returns the message of the wrapped error.
func (e *exitError) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the exit status for an error of run: an exitError's code,
// else 1.
func exitCode(err error) int {
	if ee, ok := errors.AsType[*exitError](err); ok {
		return ee.code
	}
	return 1
}

// config is everything the server reads at start-up; read-only afterwards.
type config struct {
	addr       string
	db         string // a SQLite file, or a postgres:// URL
	dbMaxConns int    // PostgreSQL's pool size; caps SQLite's read pool
	issuer     string
	tokenTTL   time.Duration
	refreshTTL time.Duration
	bcryptCost int
	hashSlots  int // 0: max(1, cores-1)
	logFormat  string
	secret     []byte
	previous   [][]byte // verify-only older secrets

	loginMaxFailures        int           // failed logins per username per window
	loginMaxAddressFailures int           // failed logins per client address per window
	loginWindow             time.Duration // the sliding throttling window
	trustProxy              bool          // take the client address from X-Forwarded-For

	corsOrigins []string      // origins allowed by CORS; "*" for any
	debugAddr   string        // listen address of expvar, /metrics and pprof; "" for none
	dbTimeout   time.Duration // the deadline of a request's database work; 0 for none
	cmdline     []string      // the command line run was given, shown (passwords masked) by the debug listener
}

// run is the whole program with its surroundings passed in, so tests can
// drive it: the subcommand, flags and environment, and the standard streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, rest, getenv, stdout, stderr)
	case "user":
		return userCommand(ctx, rest, getenv, stdin, stdout, stderr)
	case "backup":
		return backupCommand(ctx, rest, getenv, stdout)
	case "version":
		fmt.Fprintln(stdout, "bookapi", buildVersion())
		return nil
	}
	return fmt.Errorf("unknown command %q: want serve, user, backup or version", cmd)
}

// buildVersion is the -X version, else the module version and VCS revision.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}

// flags is a flag set whose defaults come from the environment: a flag on
// the command line beats its variable, which beats the built-in default.
type flags struct {
	*flag.FlagSet
	env    map[string]string // flag name -> environment variable
	name   string            // the command, for the usage line
	stdout io.Writer         // where -h prints the usage
}

// newFlags returns an empty flag set for the command name. Errors come back
// as one line from parse; the usage is printed only when asked for with -h.
func newFlags(name string, stdout io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package would print it on every error
	return &flags{FlagSet: fs, env: map[string]string{}, name: name, stdout: stdout}
}

// usage prints every flag with its default.
func (f *flags) usage() {
	fmt.Fprintf(f.stdout, "Usage of bookapi %s:\n", f.name)
	f.SetOutput(f.stdout)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

// bind records the environment variable that sets flag name.
func (f *flags) bind(name, env string) { f.env[name] = env }

// parse applies the arguments, then the environment for every flag the
// arguments did not set, so a bad variable behind a given flag is ignored.
func (f *flags) parse(args []string, getenv func(string) string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.usage()
		}
		return err
	}
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for name, env := range f.env {
		if v := getenv(env); v != "" && !given[name] {
			if err := f.Set(name, v); err != nil {
				return fmt.Errorf("%s: invalid value %q: %v", env, v, err)
			}
		}
	}
	return nil
}

// defaultMaxConns is the default of -db-max-conns for the database db. On
// SQLite, enough readers that concurrent requests rarely wait for one (see
// openStore). On PostgreSQL, pgxpool's default, which leaves room on the
// server for more instances.
func defaultMaxConns(db string) int {
	if isPostgres(db) {
		return max(4, runtime.NumCPU())
	}
	return 16
}

// dbFlags defines the flags every command shares.
func dbFlags(f *flags, cfg *config) {
	f.StringVar(&cfg.db, "db", "bookapi.db", "SQLite file path or file: URI, or a postgres:// URL")
	f.bind("db", "DATABASE_URL")
	// Its default depends on -db, so checkDB sets it; the flag's own is the
	// zero value, which -h does not print beside the one in the text.
	f.IntVar(&cfg.dbMaxConns, "db-max-conns", 0, "SQLite: read-only connections; PostgreSQL: connections in the pool (default 16 on SQLite, max(4, cores) on PostgreSQL)")
	f.bind("db-max-conns", "DB_MAX_CONNS")
	f.IntVar(&cfg.bcryptCost, "bcrypt-cost", 12, "bcrypt cost (4-31)")
	f.bind("bcrypt-cost", "BOOKAPI_BCRYPT_COST")
}

// checkDB validates the flags of dbFlags, after it gives -db-max-conns the
// default of the database -db names when neither it nor DB_MAX_CONNS was set.
func checkDB(f *flags, cfg *config) error {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == "db-max-conns" })
	if !set {
		cfg.dbMaxConns = defaultMaxConns(cfg.db)
	}
	// Only a SQLite value can ask for memory, and only it may be repeated:
	// a PostgreSQL URL may hold a password, ":memory:" in it or not.
	if cfg.db == "" || !isPostgres(cfg.db) && (strings.Contains(cfg.db, ":memory:") || strings.Contains(cfg.db, "mode=memory")) {
		return fmt.Errorf("-db: want a database file, not %q", redactDSN(cfg.db))
	}
	// pgx ends the user information at its first @, url.Parse (and so
	// redactDSN) at its last: the rest of a password would be a host name in
	// pgx's messages.
	if _, rest, ok := strings.Cut(cfg.db, "://"); ok && isPostgres(cfg.db) {
		if end := strings.IndexAny(rest, "/?#"); end >= 0 {
			rest = rest[:end]
		}
		if strings.Count(rest, "@") > 1 {
			return errors.New("-db: the PostgreSQL URL holds more than one @; write an @ in the user name or password as %40")
		}
	}
	if cfg.dbMaxConns < 1 {
		return fmt.Errorf("-db-max-conns: %d is less than 1", cfg.dbMaxConns)
	}
	if cfg.bcryptCost < bcrypt.MinCost || cfg.bcryptCost > bcrypt.MaxCost {
		return fmt.Errorf("-bcrypt-cost: %d is outside %d-%d", cfg.bcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

// parseServe reads and validates the server's configuration.
func parseServe(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	var cfg config
	f := newFlags("serve", stdout)
	f.StringVar(&cfg.addr, "addr", ":8080", "listen address; port 0 picks a free port")
	f.bind("addr", "BOOKAPI_ADDR")
	dbFlags(f, &cfg)
	f.StringVar(&cfg.issuer, "issuer", "bookapi", "iss claim of access tokens")
	f.bind("issuer", "BOOKAPI_ISSUER")
	f.DurationVar(&cfg.tokenTTL, "token-ttl", 15*time.Minute, "access-token lifetime")
	f.bind("token-ttl", "BOOKAPI_TOKEN_TTL")
	f.DurationVar(&cfg.refreshTTL, "refresh-ttl", 720*time.Hour, "refresh-token lifetime")
	f.bind("refresh-ttl", "BOOKAPI_REFRESH_TTL")
	f.StringVar(&cfg.logFormat, "log-format", "text", "log format: text or json")
	f.bind("log-format", "BOOKAPI_LOG_FORMAT")
	f.IntVar(&cfg.loginMaxFailures, "login-max-failures", 5, "failed logins per username per window")
	f.bind("login-max-failures", "BOOKAPI_LOGIN_MAX_FAILURES")
	f.IntVar(&cfg.loginMaxAddressFailures, "login-max-address-failures", 50, "failed logins per client address per window")
	f.bind("login-max-address-failures", "BOOKAPI_LOGIN_MAX_ADDRESS_FAILURES")
	f.DurationVar(&cfg.loginWindow, "login-window", 15*time.Minute, "login throttling window")
	f.bind("login-window", "BOOKAPI_LOGIN_WINDOW")
	f.BoolVar(&cfg.trustProxy, "trust-proxy", false, "take the client address from the last X-Forwarded-For entry")
	f.bind("trust-proxy", "BOOKAPI_TRUST_PROXY")
	f.IntVar(&cfg.hashSlots, "bcrypt-slots", 0, "concurrent bcrypt hashes; 0 means max(1, cores-1)")
	f.bind("bcrypt-slots", "BOOKAPI_BCRYPT_SLOTS")
	var cors string
	f.StringVar(&cors, "cors-origins", "", "comma-separated origins allowed by CORS (* for any)")
	f.bind("cors-origins", "BOOKAPI_CORS_ORIGINS")
	f.StringVar(&cfg.debugAddr, "debug-addr", "", "listen address for expvar (/debug/vars), Prometheus metrics (/metrics) and pprof; off when empty")
	f.bind("debug-addr", "BOOKAPI_DEBUG_ADDR")
	f.DurationVar(&cfg.dbTimeout, "db-timeout", 5*time.Second, "the most time a request may wait for the database; then 503")
	f.bind("db-timeout", "BOOKAPI_DB_TIMEOUT")
	if err := f.parse(args, getenv); err != nil {
		return cfg, err
	}
	if f.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", f.Arg(0))
	}
	var err error
	if cfg.corsOrigins, err = parseOrigins(cors); err != nil {
		return cfg, fmt.Errorf("-cors-origins: %w", err)
	}
	if err := checkDB(f, &cfg); err != nil {
		return cfg, err
	}
	switch {
	case cfg.addr == "":
		return cfg, errors.New("-addr: must not be empty")
	case cfg.issuer == "":
		return cfg, errors.New("-issuer: must not be empty")
	case cfg.tokenTTL < time.Second:
		return cfg, fmt.Errorf("-token-ttl: %v is shorter than 1s", cfg.tokenTTL)
	case cfg.refreshTTL < time.Second:
		return cfg, fmt.Errorf("-refresh-ttl: %v is shorter than 1s", cfg.refreshTTL)
	case cfg.logFormat != "text" && cfg.logFormat != "json":
		return cfg, fmt.Errorf("-log-format: %q is neither text nor json", cfg.logFormat)
	case cfg.loginMaxFailures < 1:
		return cfg, fmt.Errorf("-login-max-failures: %d is less than 1", cfg.loginMaxFailures)
	case cfg.loginMaxAddressFailures < 1:
		return cfg, fmt.Errorf("-login-max-address-failures: %d is less than 1", cfg.loginMaxAddressFailures)
	case cfg.loginWindow < time.Second:
		return cfg, fmt.Errorf("-login-window: %v is shorter than 1s", cfg.loginWindow)
	case cfg.hashSlots < 0:
		return cfg, fmt.Errorf("-bcrypt-slots: %d is negative", cfg.hashSlots)
	case cfg.dbTimeout < 10*time.Millisecond || cfg.dbTimeout > maxDBTimeout:
		return cfg, fmt.Errorf("-db-timeout: %v is outside 10ms-%v", cfg.dbTimeout, maxDBTimeout)
	}
	if s := getenv("SECRET_KEY"); s != "" {
		if len(s) < minSecretLen {
			return cfg, fmt.Errorf("SECRET_KEY: %d bytes is shorter than the minimum of %d", len(s), minSecretLen)
		}
		cfg.secret = []byte(s)
	} else if isPostgres(cfg.db) {
		// The file beside a SQLite database has no place here, and instances
		// sharing the database must share the secret.
		return cfg, errors.New("SECRET_KEY: must be set with a PostgreSQL database; every instance needs the same one")
	}
	if prev := getenv("BOOKAPI_PREVIOUS_KEYS"); prev != "" {
		for i, p := range strings.Split(prev, ",") {
			p = strings.TrimSpace(p)
			if len(p) < minSecretLen {
				return cfg, fmt.Errorf("BOOKAPI_PREVIOUS_KEYS: key %d is shorter than %d bytes", i+1, minSecretLen)
			}
			cfg.previous = append(cfg.previous, []byte(p))
		}
	}
	return cfg, nil
}

// parseOrigins reads a comma-separated list of CORS origins: "*", or
// scheme://host[:port] with no path.
func parseOrigins(list string) ([]string, error) {
	var origins []string
	for o := range strings.SplitSeq(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
				return nil, fmt.Errorf("%q is not * or an origin like https://example.com", o)
			}
		}
		origins = append(origins, o)
	}
	return origins, nil
}

// loadSecret returns the signing secret stored beside the database, creating
// it (mode 0600) on first start. A secret file that others may read or write,
// or that is not a regular file, is refused.
func loadSecret(dbFile string) ([]byte, bool, error) {
	path := dbFile + ".secret"
	secret, err := readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, false, err
	}
	secret, err = createSecret(path)
	if errors.Is(err, fs.ErrExist) {
		// Another process won the race, or path is a symbolic link to a
		// file that does not exist, which O_EXCL refuses to follow.
		secret, err = readSecret(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("secret file %s is a symbolic link to a missing file; remove it to generate a new secret, or set SECRET_KEY", path)
		}
		return secret, false, err
	}
	return secret, err == nil, err
}

// readSecret reads the secret file at path, following a symbolic link, after
// checking the file it opened: a regular file that only its owner may read
// and write. It opens without blocking, so that a named pipe is refused
// rather than waited on. A missing file is an fs.ErrNotExist.
func readSecret(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if err := privateFile(path, info.Mode()); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < minSecretLen {
		return nil, fmt.Errorf("secret file %s: shorter than %d bytes", path, minSecretLen)
	}
	return []byte(s), nil
}

// privateFile returns an error naming the secret file at path and its fix
// unless mode is that of a regular file only its owner may use, as ssh
// treats a private key.
func privateFile(path string, mode fs.FileMode) error {
	if !mode.IsRegular() {
		kind := "of type " + mode.Type().String()
		switch {
		case mode.IsDir():
			kind = "a directory"
		case mode&fs.ModeNamedPipe != 0:
			kind = "a named pipe"
		case mode&fs.ModeSocket != 0:
			kind = "a socket"
		case mode&fs.ModeDevice != 0:
			kind = "a device"
		}
		return fmt.Errorf("secret file %s is %s, not a regular file; remove it to generate a new secret, or set SECRET_KEY", path, kind)
	}
	var access string
	switch {
	case mode&0o077 == 0, runtime.GOOS == "windows": // whose ACLs Go does not map to these bits
		return nil
	case mode&0o044 != 0:
		access = "readable"
	case mode&0o022 != 0:
		access = "writable"
	default:
		access = "executable"
	}
	return fmt.Errorf("secret file %s is %s by others; run: chmod 600 %s", path, access, path)
}

// createSecret writes a new random secret to path, which must not exist,
// with mode 0600.
func createSecret(path string) ([]byte, error) {
	var raw [48]byte
	rand.Read(raw[:])
	s := base64.RawURLEncoding.EncodeToString(raw[:])
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	_, werr := file.WriteString(s + "\n")
	if err := errors.Join(werr, file.Sync(), file.Close()); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("secret file: %w", err)
	}
	return []byte(s), nil
}

// serve runs the HTTP server until ctx is cancelled, then drains it. args
// are its flags; cmdline is the whole command line, for the debug listener.
func serve(ctx context.Context, cmdline, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.cmdline = cmdline
	log := newLogger(cfg.logFormat, stderr)

	st, err := openStore(ctx, cfg.db, cfg.dbMaxConns, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.close(); err != nil {
			log.Error("close database", "err", err)
		}
	}()
	if err := st.setLockTimeout(ctx, cfg.dbTimeout); err != nil {
		return err
	}
	if cfg.secret == nil {
		secret, created, err := loadSecret(dbPath(cfg.db))
		if err != nil {
			return err
		}
		cfg.secret = secret
		if created {
			log.Info("generated signing secret", "file", dbPath(cfg.db)+".secret")
		}
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	s := newServer(cfg, st, log, newKeyring(cfg.secret, cfg.previous...), time.Now)
	go s.dummyHash() // ready before the first login for an unknown user
	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	log.Info("listening", "addr", ln.Addr().String(), "version", buildVersion())

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if cfg.debugAddr != "" {
		dln, err := net.Listen("tcp", cfg.debugAddr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("-debug-addr: %w", err)
		}
		dsrv := &http.Server{Handler: s.debugRoutes(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: srv.ErrorLog}
		defer dsrv.Close()
		log.Info("debug listening", "addr", dln.Addr().String())
		go func() { errc <- dsrv.Serve(dln) }()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// userCommand runs "user add|promote|demote". user add prompts for the
// password on stderr when stdin is a terminal. A schema upgrade on opening
// the database is logged to stderr.
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("user: want add, promote or demote")
	}
	verb := args[0]
	var cfg config
	var admin bool
	f := newFlags("user "+verb, stdout)
	dbFlags(f, &cfg)
	switch verb {
	case "add":
		f.BoolVar(&admin, "admin", false, "make the user an administrator")
	case "promote", "demote":
	default:
		return fmt.Errorf("user: unknown command %q: want add, promote or demote", verb)
	}
	if err := f.parse(args[1:], getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if f.NArg() != 1 {
		return fmt.Errorf("user %s: want exactly one user name", verb)
	}
	name := f.Arg(0)
	if err := checkDB(f, &cfg); err != nil {
		return err
	}
	if verb == "add" {
		if err := validUsername(name); err != nil {
			return errors.New("user add: a user name is 3 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
		}
	}
	st, err := openStore(ctx, cfg.db, cfg.dbMaxConns, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer st.close()
	switch verb {
	case "add":
		pw, err := readPassword(ctx, stdin, stderr, name)
		if err != nil {
			return fmt.Errorf("user add: %w", err)
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), cfg.bcryptCost)
		if err != nil {
			return fmt.Errorf("user add: %w", err)
		}
		u, err := st.createUser(ctx, uuid.NewString(), name, string(hash), admin, time.Now())
		if errors.Is(err, errConflict) {
			return fmt.Errorf("user add: user %q already exists", name)
		}
		if err != nil {
			return fmt.Errorf("user add: %w", err)
		}
		fmt.Fprintf(stdout, "created user %s (public_id %s, admin %t)\n", u.Username, u.PublicID, u.Admin)
	case "promote", "demote":
		err := st.setAdminByName(ctx, name, verb == "promote")
		if errors.Is(err, errNotFound) {
			return fmt.Errorf("user %s: no user %q", verb, name)
		}
		if err != nil {
			return fmt.Errorf("user %s: %w", verb, err)
		}
		fmt.Fprintf(stdout, "%sd user %s\n", verb, name)
	}
	return nil
}

// readPassword returns the password for user add: the first line of stdin,
// or, when stdin is a terminal, a line typed twice without echo after
// prompts written to prompt. It refuses a password the signup rules refuse,
// and two entries that differ.
func readPassword(ctx context.Context, stdin io.Reader, prompt io.Writer, name string) (string, error) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if validPassword("password", pw) != nil {
			return "", errors.New("the password (one line on standard input) must be 8 to 72 bytes")
		}
		return pw, nil
	}
	fmt.Fprintf(prompt, "Password for %s: ", name)
	pw, err := readNoEcho(ctx, int(f.Fd()), prompt)
	if err != nil {
		return "", err
	}
	if validPassword("password", pw) != nil {
		return "", errors.New("the password must be 8 to 72 bytes")
	}
	fmt.Fprint(prompt, "Repeat the password: ")
	again, err := readNoEcho(ctx, int(f.Fd()), prompt)
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ")
	}
	return pw, nil
}

// readNoEcho reads a line from the terminal fd with echo off, then ends the
// prompt's line, as the Enter typed was not echoed. When ctx ends first (on
// Ctrl-C, which main catches) it turns echo back on and returns ctx's error.
func readNoEcho(ctx context.Context, fd int, prompt io.Writer) (string, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	type line struct {
		b   []byte
		err error
	}
	read := make(chan line, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		read <- line{b, err}
	}()
	defer fmt.Fprintln(prompt)
	select {
	case l := <-read:
		if l.err != nil {
			return "", fmt.Errorf("read password: %w", l.err)
		}
		return string(l.b), nil
	case <-ctx.Done():
		term.Restore(fd, state)
		return "", fmt.Errorf("read password: %w", ctx.Err())
	}
}

// backupCommand runs "backup [-force] DEST": it copies the SQLite database
// -db names, while a server may use it, to the file DEST (writeBackup) and
// prints one line about the copy. A PostgreSQL database is refused with
// exit status 2: pg_dump backs it up.
func backupCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg config
	var force bool
	f := newFlags("backup", stdout)
	dbFlags(f, &cfg)
	f.BoolVar(&force, "force", false, "replace DEST if it exists")
	if err := f.parse(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if f.NArg() != 1 {
		return fmt.Errorf("backup: want one destination file after the flags, got %d arguments", f.NArg())
	}
	if err := checkDB(f, &cfg); err != nil {
		return err
	}
	if isPostgres(cfg.db) {
		return &exitError{code: 2, err: fmt.Errorf("backup: %s is a PostgreSQL database: back it up with pg_dump (pg_dump -Fc -f bookapi.dump \"$DATABASE_URL\")", postgresName(cfg.db))}
	}
	b, err := writeBackup(ctx, cfg.db, f.Arg(0), force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s: %d bytes, users: %d, books: %d\n", dbPath(cfg.db), b.path, b.size, b.users, b.books)
	return nil
}

// backup describes a finished backup.
type backup struct {
	path         string // absolute
	size         int64  // bytes
	users, books int
}

// writeBackup copies the SQLite database dsn to the file dest. The copy is
// written to a new temporary file beside dest (mode 0600), checked, synced,
// and only then given dest's name, and the directory is synced. Without
// force an existing dest is an error and is left as it was. On any error
// nothing is left at dest (it keeps what it held) and no temporary file
// stays behind.
func writeBackup(ctx context.Context, dsn, dest string, force bool) (backup, error) {
	src := dbPath(dsn)
	srcInfo, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return backup{}, fmt.Errorf("backup: database %s does not exist", src)
	}
	if err != nil {
		return backup{}, fmt.Errorf("backup: %w", err)
	}
	// Absolute, so that SQLite never reads the name as a file: URI.
	if dest, err = filepath.Abs(dest); err != nil {
		return backup{}, fmt.Errorf("backup: %w", err)
	}
	exists := fmt.Errorf("backup: %s exists; -force replaces it", dest)
	if info, err := os.Stat(dest); err == nil && os.SameFile(info, srcInfo) {
		return backup{}, fmt.Errorf("backup: %s is the database itself", dest)
	}
	if _, err := os.Lstat(dest); err == nil && !force {
		return backup{}, exists
	}
	dir := filepath.Dir(dest)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".tmp-*")
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return backup{}, fmt.Errorf("backup: cannot create a file in %s: %w", dir, pe.Err)
	}
	if err != nil {
		return backup{}, fmt.Errorf("backup: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name) // gone already once renamed; a second link once linked
	// VACUUM INTO writes through a rollback journal beside the copy, which
	// SQLite removes itself unless it is stopped short.
	defer os.Remove(name + "-journal")
	if err := tmp.Close(); err != nil {
		return backup{}, fmt.Errorf("backup: %w", err)
	}
	if err := vacuumInto(ctx, dsn, name); err != nil {
		return backup{}, fmt.Errorf("backup: copy %s to %s: %w", src, dest, err)
	}
	b := backup{path: dest}
	if b.users, b.books, err = checkCopy(ctx, name); err != nil {
		return backup{}, fmt.Errorf("backup: check the copy of %s: %w", src, err)
	}
	if b.size, err = syncFile(name); err != nil {
		return backup{}, fmt.Errorf("backup: %w", err)
	}
	if force {
		err = os.Rename(name, dest)
	} else if err = os.Link(name, dest); err != nil && !errors.Is(err, fs.ErrExist) {
		// A file system without hard links: check, then rename.
		if _, lerr := os.Lstat(dest); lerr == nil {
			return backup{}, exists
		}
		err = os.Rename(name, dest)
	}
	if errors.Is(err, fs.ErrExist) {
		return backup{}, exists
	}
	if err != nil {
		return backup{}, fmt.Errorf("backup: %w", err)
	}
	if _, err := syncFile(dir); err != nil {
		return backup{}, fmt.Errorf("backup: %s is written, but its directory was not synced: %w", dest, err)
	}
	return b, nil
}

// syncFile flushes the file or directory path to stable storage and returns
// its size.
func syncFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	info, err := f.Stat()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}
