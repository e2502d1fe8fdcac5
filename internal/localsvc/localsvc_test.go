package localsvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestFindBinary(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"redis-server", "postgres", "initdb"} {
		got, err := FindBinary(name)
		if err != nil {
			t.Fatalf("FindBinary(%q): %v", name, err)
		}
		if !filepath.IsAbs(got) || !isExecutable(got) {
			t.Errorf("FindBinary(%q) = %q, want an absolute path to an executable", name, got)
		}
	}
	_, err := FindBinary("no-such-binary-seckill")
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("FindBinary(missing) error = %v, want a not found error", err)
	}
}

func TestInstallHint(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"redis-server": "apt-get install -y redis-server",
		"initdb":       "apt-get install -y postgresql",
		"postgres":     "apt-get install -y postgresql",
	} {
		if got := installHint(name); !strings.Contains(got, want) {
			t.Errorf("installHint(%q) = %q, want it to contain %q", name, got, want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int // sign
	}{
		{"15", "9.6", 1},
		{"9.6", "10", -1},
		{"16", "16", 0},
	} {
		got := compareVersions(tc.a, tc.b)
		if sign(got) != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (RedisConfig{Port: -1, AppendFsync: "sometimes"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "Dir") || !strings.Contains(err.Error(), "AppendFsync") || !strings.Contains(err.Error(), "Port") {
		t.Errorf("RedisConfig.Validate() = %v, want errors for Dir, Port and AppendFsync", err)
	}
	if err := (PostgresConfig{Port: 70000}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "Dir") || !strings.Contains(err.Error(), "Port") {
		t.Errorf("PostgresConfig.Validate() = %v, want errors for Dir and Port", err)
	}
}

// startTestRedis starts a server for one test and stops it at cleanup.
func startTestRedis(t *testing.T, cfg RedisConfig) *Redis {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	r, err := StartRedis(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// redisDo sends one inline command and returns its reply, flattened:
// "+OK", "$-1" for nil, a bulk string's value, an array's values joined by " ".
func redisDo(addr string, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	var n int
	switch {
	case line == "$-1":
		return line, nil
	case strings.HasPrefix(line, "$"):
		line, err = br.ReadString('\n')
		return strings.TrimSpace(line), err
	case strings.HasPrefix(line, "*"):
		if _, err := fmt.Sscanf(line, "*%d", &n); err != nil {
			return "", err
		}
		vals := make([]string, n)
		for i := range vals {
			if vals[i], err = readReply(br); err != nil {
				return "", err
			}
		}
		return strings.Join(vals, " "), nil
	}
	return line, nil
}

func mustRedisDo(t *testing.T, r *Redis, cmd, want string) {
	t.Helper()
	got, err := redisDo(r.Addr(), cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if got != want {
		t.Fatalf("%s = %q, want %q", cmd, got, want)
	}
}

func TestRedisStartStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startTestRedis(t, RedisConfig{Dir: dir})

	if want := fmt.Sprintf("127.0.0.1:%d", r.Port()); r.Addr() != want {
		t.Errorf("Addr() = %q, want %q", r.Addr(), want)
	}
	if want := fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port()); r.URL() != want {
		t.Errorf("URL() = %q, want %q", r.URL(), want)
	}
	mustRedisDo(t, r, "PING", "+PONG")
	mustRedisDo(t, r, "CONFIG GET bind", "bind 127.0.0.1")
	mustRedisDo(t, r, "CONFIG GET protected-mode", "protected-mode yes")
	if _, err := os.Stat(filepath.Join(dir, "redis.log")); err != nil {
		t.Errorf("no log file: %v", err)
	}

	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := redisDo(r.Addr(), "PING"); err == nil {
		t.Error("PING answered after Stop")
	}
	if err := r.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRedisWithoutAppendOnlyKeepsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startTestRedis(t, RedisConfig{Dir: dir})
	mustRedisDo(t, r, "SET k v", "+OK")
	if err := r.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustRedisDo(t, r, "GET k", "$-1")
	if _, err := os.Stat(filepath.Join(dir, "dump.rdb")); err == nil {
		t.Error("dump.rdb written although snapshots are off")
	}
}

func TestRedisAppendOnlyKeepsData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fsync string
		down  func(*Redis) error
	}{
		{"stop", "everysec", (*Redis).Stop},
		// The kernel keeps what the server wrote; "always" makes sure it wrote
		// before it answered, so the test does not depend on timing.
		{"kill", "always", (*Redis).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startTestRedis(t, RedisConfig{AppendOnly: true, AppendFsync: tc.fsync})
			port := r.Port()
			mustRedisDo(t, r, "SET k v", "+OK")
			if err := tc.down(r); err != nil {
				t.Fatal(err)
			}
			if _, err := redisDo(r.Addr(), "PING"); err == nil {
				t.Fatal("PING answered while the server is down")
			}
			if err := r.Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
			if r.Port() != port {
				t.Errorf("port after Restart = %d, want %d", r.Port(), port)
			}
			mustRedisDo(t, r, "GET k", "v")
		})
	}
}

func TestRedisPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = StartRedis(t.Context(), RedisConfig{Dir: t.TempDir(), Port: port})
	if err == nil {
		t.Fatal("StartRedis on a taken port succeeded")
	}
}

func TestRedisDetectsForeignServer(t *testing.T) {
	t.Parallel()
	other := startTestRedis(t, RedisConfig{})
	cfg, err := RedisConfig{Dir: t.TempDir()}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{cfg: cfg, bin: other.bin}
	if err := r.start(t.Context(), other.Port()); !errors.Is(err, errPortTaken) {
		t.Errorf("start on a port another server holds: err = %v, want errPortTaken", err)
	}
}

// startTestPostgres starts a server for one test and stops it at cleanup.
func startTestPostgres(t *testing.T, cfg PostgresConfig) *Postgres {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	p, err := StartPostgres(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func TestPostgresKeepsDataAcrossRestartAndKill(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := startTestPostgres(t, PostgresConfig{Fast: true})
	if !strings.HasPrefix(p.DSN("app"), "postgres://seckill@127.0.0.1:") {
		t.Errorf("DSN = %q", p.DSN("app"))
	}
	if err := p.CreateDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, p, "app", "CREATE TABLE t (v text)")
	mustExec(t, p, "app", "INSERT INTO t VALUES ('before restart')")

	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, p, "app", "INSERT INTO t VALUES ('before kill')")

	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("query answered after Kill")
	}
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, p, "app", "SELECT count(*) FROM t"); got != 2 {
		t.Errorf("rows after kill and restart = %d, want 2", got)
	}
}

func TestPostgresStalePidFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	p := startTestPostgres(t, PostgresConfig{Dir: dir, Fast: true})

	if _, err := StartPostgres(ctx, PostgresConfig{Dir: dir, Fast: true}); err == nil ||
		!strings.Contains(err.Error(), "already runs") {
		t.Errorf("second server on the same cluster: err = %v, want already runs", err)
	}

	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	// After a crash the pid in postmaster.pid may belong to a live, unrelated
	// process; Postgres alone would refuse to start then.
	pidFile := filepath.Join(p.DataDir(), "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n%s", os.Getpid(), rest)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, p, "postgres", "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d", got)
	}
}

func TestPostgresDatabases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := startTestPostgres(t, PostgresConfig{Fast: true, User: "owner"})
	errs := make(chan error, 8)
	for i := range cap(errs) {
		go func() { errs <- p.CreateDatabase(ctx, fmt.Sprintf("Db-%d", i)) }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := count(t, p, "Db-3", "SELECT count(*) FROM pg_database WHERE datname LIKE 'Db-%'"); got != 8 {
		t.Errorf("databases = %d, want 8", got)
	}
	if err := p.CreateDatabase(ctx, "Db-3"); err == nil {
		t.Error("creating an existing database succeeded")
	}
	for range 2 {
		if err := p.EnsureDatabase(ctx, "Db-9"); err != nil {
			t.Errorf("EnsureDatabase: %v", err)
		}
	}

	// DropDatabase ends the sessions that a test forgot to close.
	conn, err := pgx.Connect(ctx, p.DSN("Db-3"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := p.DropDatabase(ctx, "Db-3"); err != nil {
		t.Fatal(err)
	}
	if err := p.DropDatabase(ctx, "Db-3"); err != nil {
		t.Errorf("dropping a missing database: %v", err)
	}
}

// mustExec runs sql in database db.
func mustExec(t *testing.T, p *Postgres, db, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), p.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// count runs a query that returns one number in database db.
func count(t *testing.T, p *Postgres, db, sql string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), p.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestPostgresLongDirHasNoSocket(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	p := startTestPostgres(t, PostgresConfig{Dir: dir, Fast: true})
	if p.SocketDir() != "" {
		t.Errorf("SocketDir() = %q, want none: %d bytes do not fit a socket path", p.SocketDir(), len(dir))
	}
	if got := count(t, p, "postgres", "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d", got)
	}
}

// TestChildrenDieWithParent kills a process that started servers and checks
// that the servers die with it.
func TestChildrenDieWithParent(t *testing.T) {
	t.Parallel()
	cmd := osexec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "LOCALSVC_HELPER_DIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var redisPid, pgPid int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, _ := fmt.Sscanf(sc.Text(), "PIDS %d %d", &redisPid, &pgPid); n == 2 {
			break
		}
	}
	if redisPid == 0 || pgPid == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper did not report its servers: %v", sc.Err())
	}
	if !processAlive(redisPid) || !processAlive(pgPid) {
		t.Fatal("servers not running while the helper lives")
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(redisPid) || processAlive(pgPid) {
		if time.Now().After(deadline) {
			t.Fatalf("servers still alive after their parent died: redis %v, postgres %v",
				processAlive(redisPid), processAlive(pgPid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHelperProcess is the parent that TestChildrenDieWithParent kills.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("LOCALSVC_HELPER_DIR")
	if dir == "" {
		t.Skip("helper for TestChildrenDieWithParent")
	}
	ctx := context.Background()
	r, err := StartRedis(ctx, RedisConfig{Dir: filepath.Join(dir, "redis")})
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartPostgres(ctx, PostgresConfig{Dir: filepath.Join(dir, "pg"), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("PIDS %d %d\n", r.p.pid(), p.p.pid())
	time.Sleep(time.Minute)
}
