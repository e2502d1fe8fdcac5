package localsvc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresConfig configures a local Postgres server.
type PostgresConfig struct {
	// Dir holds the cluster (in Dir/data, made by initdb on first start),
	// the server log postgres.log and the Unix socket. It is created if
	// missing. Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one. Restart keeps
	// the port chosen at start.
	Port int
	// User is the superuser that initdb creates and DSN names; default
	// "seckill". Authentication is "trust": the server listens on loopback
	// only and exists for one developer or one test run, so a password would
	// protect nothing that the machine's own accounts do not.
	User string
	// Fast trades crash safety of the machine for speed, for tests: initdb
	// skips fsync, and the server runs with fsync=off and full_page_writes=off.
	// Committed data still survives Kill (the kernel holds it), not a power
	// loss. synchronous_commit stays on on purpose: off would let Kill lose
	// commits already acknowledged, which fault tests must be able to rely on.
	Fast bool
	// ExtraArgs are passed to postgres after ours, e.g. "-c", "max_connections=300".
	ExtraArgs []string
}

// withDefaults fills the defaults and makes Dir absolute.
func (c PostgresConfig) withDefaults() (PostgresConfig, error) {
	if c.User == "" {
		c.User = "seckill"
	}
	if c.Dir != "" {
		abs, err := filepath.Abs(c.Dir)
		if err != nil {
			return c, fmt.Errorf("postgres dir: %w", err)
		}
		c.Dir = abs
	}
	return c, c.Validate()
}

// Validate reports every problem with the configuration at once.
func (c PostgresConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("postgres: Dir is required"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("postgres: Port %d out of range", c.Port))
	}
	return errors.Join(errs...)
}

// Postgres is a Postgres server child process. Its methods are safe for
// concurrent use.
type Postgres struct {
	cfg     PostgresConfig // defaults filled, Port fixed once started
	bin     string         // the postgres server binary
	dataDir string
	sockDir string              // "" when Dir is too long for a socket path
	cred    *syscall.Credential // whom to run as; nil means as ourselves

	mu sync.Mutex // serializes Stop, Kill and Restart
	p  *proc      // the current process, guarded by mu; it may have exited
}

const (
	// postgresReadyTimeout bounds the wait for a starting server when ctx has
	// no deadline; crash recovery after a Kill replays WAL first.
	postgresReadyTimeout = 60 * time.Second
	// postgresStopTimeout is how long Stop waits for a fast shutdown (which
	// writes a checkpoint) before it kills the server.
	postgresStopTimeout = 60 * time.Second
	// maxSocketPath is the room for a Unix socket path (sun_path) minus one.
	maxSocketPath = 107
)

// StartPostgres starts a Postgres server as configured, making the cluster
// with initdb first if Dir has none, and returns once it accepts connections.
// ctx bounds the start only: the server runs until Stop or Kill, or until
// this process exits.
//
// Postgres refuses to run as root. When we are root, initdb and the server run
// as the "postgres" user (which the Debian package creates): Dir is handed to
// that user, and any directory above it that the user could not pass through
// gets the search bit for others (chmod o+x, which lists nothing).
func StartPostgres(ctx context.Context, cfg PostgresConfig) (*Postgres, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Postgres{cfg: cfg, dataDir: filepath.Join(cfg.Dir, "data")}
	if len(cfg.Dir)+len("/.s.PGSQL.65535") <= maxSocketPath {
		p.sockDir = cfg.Dir
	}
	initdb, err := p.findBinaries()
	if err != nil {
		return nil, err
	}
	if p.cred, err = postgresCredential(); err != nil {
		return nil, err
	}
	if err := p.prepareDirs(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if _, err := os.Stat(p.dataDir); errors.Is(err, fs.ErrNotExist) {
		if err := p.initdb(ctx, initdb); err != nil {
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		port := cfg.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, fmt.Errorf("postgres: %w", err)
			}
		}
		err = p.start(ctx, port)
		if err == nil {
			p.cfg.Port = port
			return p, nil
		}
		// Someone took the port between freePort and our bind: pick another.
		if !errors.Is(err, errPortTaken) || cfg.Port != 0 || attempt == maxStartAttempts {
			return nil, fmt.Errorf("postgres on port %d: %w", port, err)
		}
	}
}

// findBinaries picks the server binary, preferring the major version that
// made an existing cluster (a cluster made by 15 does not start on 16), and
// returns the initdb that belongs to it.
func (p *Postgres) findBinaries() (initdb string, err error) {
	if v, err := readFirstLine(filepath.Join(p.dataDir, "PG_VERSION")); err == nil && v != "" {
		if bin := filepath.Join("/usr/lib/postgresql", v, "bin", "postgres"); isExecutable(bin) {
			p.bin = bin
		}
	}
	if p.bin == "" {
		if p.bin, err = FindBinary("postgres"); err != nil {
			return "", err
		}
	}
	// initdb must match the server, so look next to the real server binary
	// first (on PATH there may be only symlinks to it).
	real, err := filepath.EvalSymlinks(p.bin)
	if err != nil {
		real = p.bin
	}
	if bin := filepath.Join(filepath.Dir(real), "initdb"); isExecutable(bin) {
		return bin, nil
	}
	return FindBinary("initdb")
}

// postgresCredential returns nil when we are not root, else the postgres
// user to run initdb and the server as. Its supplementary groups are left out
// (Go then clears root's), which prepareDirs relies on.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres refuses to run as root and there is no postgres user to run it as (%v): "+
			"`apt-get install -y postgresql` creates one", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// prepareDirs creates Dir and, when we run the server as another user, gives
// that user Dir (for the socket and initdb) and a way through to it.
func (p *Postgres) prepareDirs() error {
	if err := os.MkdirAll(p.cfg.Dir, 0o700); err != nil {
		return err
	}
	if p.cred == nil {
		return nil
	}
	uid, gid := int(p.cred.Uid), int(p.cred.Gid)
	if err := os.Chown(p.cfg.Dir, uid, gid); err != nil {
		return err
	}
	for dir := filepath.Dir(p.cfg.Dir); ; dir = filepath.Dir(dir) {
		if err := allowSearch(dir, p.cred); err != nil {
			return err
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	// A cluster copied in or made by another user: Postgres insists on owning it.
	fi, err := os.Stat(p.dataDir)
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid == p.cred.Uid {
		return nil
	}
	return filepath.WalkDir(p.dataDir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// allowSearch makes sure the user of cred can pass through dir, adding the
// search bit for its class (usually others) if it cannot.
func allowSearch(dir string, cred *syscall.Credential) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	// Only the class the user falls in counts: owner, else group, else others.
	st := fi.Sys().(*syscall.Stat_t)
	var bit fs.FileMode = 0o001
	switch {
	case st.Uid == cred.Uid:
		bit = 0o100
	case st.Gid == cred.Gid:
		bit = 0o010
	}
	if fi.Mode()&bit != 0 {
		return nil
	}
	if err := os.Chmod(dir, fi.Mode()|bit); err != nil {
		return fmt.Errorf("let the postgres user reach %s: %w", dir, err)
	}
	return nil
}

// initdb makes a new cluster. It works in a scratch directory renamed into
// place at the end, so a half-made cluster (initdb killed midway) is never
// mistaken for a real one: the next start simply makes it again.
func (p *Postgres) initdb(ctx context.Context, bin string) error {
	tmp := p.dataDir + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	args := []string{
		"-D", tmp,
		"-U", p.cfg.User,
		"--auth=trust",
		"--encoding=UTF8",
		// C sorts by code point and exists everywhere; a locale from the
		// environment may not be installed.
		"--locale=C",
		"--no-instructions",
	}
	if p.cfg.Fast {
		args = append(args, "--no-sync")
	}
	pr, err := startProc(bin, args, p.cfg.Dir, p.LogFile(), p.cred)
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	select {
	case <-pr.done:
	case <-ctx.Done():
		pr.kill()
		return fmt.Errorf("initdb: %w", ctx.Err())
	}
	if pr.err != nil {
		return fmt.Errorf("initdb %s: %v; log %s:\n%s", p.dataDir, pr.err, pr.logPath, pr.logTail())
	}
	if err := os.Rename(tmp, p.dataDir); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// start runs the server on port and waits until it accepts connections. On
// failure no process is left running. The caller holds mu or owns p alone.
func (p *Postgres) start(ctx context.Context, port int) error {
	if err := p.removeStalePid(); err != nil {
		return err
	}
	args := []string{
		"-D", p.dataDir,
		"-p", strconv.Itoa(port),
		"-k", p.sockDir,
		"-c", "listen_addresses=127.0.0.1",
	}
	if p.cfg.Fast {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	args = append(args, p.cfg.ExtraArgs...)
	pr, err := startProc(p.bin, args, p.cfg.Dir, p.LogFile(), p.cred)
	if err != nil {
		return err
	}
	if err := p.wait(ctx, pr, port); err != nil {
		pr.kill()
		return err
	}
	p.p = pr
	return nil
}

// removeStalePid deletes a postmaster.pid left by a server that was killed.
// Postgres would do it itself, unless the pid in it has been reused by another
// process meanwhile, which is likely in a container that restarted.
func (p *Postgres) removeStalePid() error {
	pidFile := filepath.Join(p.dataDir, "postmaster.pid")
	line, err := readFirstLine(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if pid, err := strconv.Atoi(line); err == nil && pid > 0 && servesDataDir(pid, p.dataDir) {
		return fmt.Errorf("a Postgres server (pid %d) already runs on %s; if it does not, remove %s", pid, p.dataDir, pidFile)
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", pidFile, err)
	}
	return nil
}

// wait polls until the server on port accepts connections and is our child pr.
func (p *Postgres) wait(ctx context.Context, pr *proc, port int) error {
	ctx, cancel := context.WithTimeout(ctx, postgresReadyTimeout)
	defer cancel()
	probeCtx, stop := pr.untilExit(ctx)
	defer stop()
	for {
		if pr.exited() {
			return pr.exitError("postgres")
		}
		dir, err := p.probe(probeCtx, port)
		switch {
		case err == nil && dir == p.dataDir:
			return nil
		case err == nil:
			// Another server answers on the port: ours failed to bind it.
			return errPortTaken
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready: %w (last error: %v); log %s:\n%s", ctx.Err(), err, pr.logPath, pr.logTail())
		case <-pr.done:
		case <-time.After(waitStep):
		}
	}
}

// probe connects to the server on port and returns its data directory, which
// tells our server from another that holds the port.
func (p *Postgres) probe(ctx context.Context, port int) (string, error) {
	cfg, err := pgx.ParseConfig(p.dsn(port, "postgres"))
	if err != nil {
		return "", err
	}
	cfg.ConnectTimeout = time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return "", err
	}
	return dir, nil
}

func (p *Postgres) dsn(port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(p.cfg.User),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// DSN is the URL of database db on this server, for pgx:
// postgres://user@127.0.0.1:port/db?sslmode=disable.
func (p *Postgres) DSN(db string) string { return p.dsn(p.cfg.Port, db) }

// Addr is the server's address, "127.0.0.1:port".
func (p *Postgres) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.cfg.Port)) }

// Port is the server's TCP port.
func (p *Postgres) Port() int { return p.cfg.Port }

// User is the superuser that DSN connects as.
func (p *Postgres) User() string { return p.cfg.User }

// Dir is the directory given in PostgresConfig, made absolute.
func (p *Postgres) Dir() string { return p.cfg.Dir }

// LogFile is the server's log (initdb's output too).
func (p *Postgres) LogFile() string { return filepath.Join(p.cfg.Dir, "postgres.log") }

// DataDir is the cluster directory inside Dir.
func (p *Postgres) DataDir() string { return p.dataDir }

// SocketDir is the directory of the server's Unix socket (for psql -h), or ""
// when Dir is too long for a socket path and the server has no Unix socket.
func (p *Postgres) SocketDir() string { return p.sockDir }

// CreateDatabase creates database name, owned by User.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("create database: empty name")
	}
	if err := p.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// EnsureDatabase creates database name unless it exists, for `seckill dev`
// starting on a data folder that it made before.
func (p *Postgres) EnsureDatabase(ctx context.Context, name string) error {
	err := p.CreateDatabase(ctx, name)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	return err
}

// DropDatabase drops database name if it exists, ending its sessions first.
func (p *Postgres) DropDatabase(ctx context.Context, name string) error {
	if err := p.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// exec runs one statement in the maintenance database "postgres". CREATE and
// DROP DATABASE cannot run inside a transaction or in the database they name.
func (p *Postgres) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop shuts the server down with a fast shutdown (SIGINT: sessions end, a
// checkpoint is written), killing it if it does not exit in time. Stopping a
// stopped or killed server does nothing.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stop()
}

func (p *Postgres) stop() error {
	if p.p == nil {
		return nil
	}
	if err := p.p.stop(syscall.SIGINT, postgresStopTimeout); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	return nil
}

// Kill ends the server and all its backends with SIGKILL, as a crash would.
// The next start runs crash recovery; committed transactions survive.
func (p *Postgres) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p != nil {
		p.p.kill()
	}
	return nil
}

// Restart stops the server if it runs (fast shutdown) and starts it again on
// the same port with the same cluster.
func (p *Postgres) Restart(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stop(); err != nil {
		return err
	}
	if err := p.start(ctx, p.cfg.Port); err != nil {
		return fmt.Errorf("restart postgres on port %d: %w", p.cfg.Port, err)
	}
	return nil
}
