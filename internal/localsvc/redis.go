package localsvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RedisConfig configures a local redis-server.
type RedisConfig struct {
	// Dir holds the server's data (the append-only files) and its log,
	// redis.log. It is created if missing. Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one. Restart keeps
	// the port chosen at start.
	Port int
	// AppendOnly turns on the append-only file, so the data survives a
	// restart and a kill. Without it the server keeps nothing on disk.
	AppendOnly bool
	// AppendFsync is when the append-only file is fsynced: "always",
	// "everysec" (the default) or "no".
	AppendFsync string
	// ReplicaOf, "host:port", makes the server a replica of that primary
	// (REPLICAOF) from its start.
	ReplicaOf string
	// ExtraArgs are passed to redis-server after ours, so they override them:
	// "--save", "60 1000" turns RDB snapshots back on.
	ExtraArgs []string
}

// withDefaults fills the defaults and makes Dir absolute.
func (c RedisConfig) withDefaults() (RedisConfig, error) {
	if c.AppendFsync == "" {
		c.AppendFsync = "everysec"
	}
	var err error
	if c.Dir, err = absDir(c.Dir); err != nil {
		return c, fmt.Errorf("redis dir: %w", err)
	}
	return c, c.Validate()
}

// absDir is dir made absolute; "" stays "" (Validate reports it).
func absDir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	return filepath.Abs(dir)
}

// Validate reports every problem with the configuration at once.
func (c RedisConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("redis: Dir is required"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("redis: Port %d out of range", c.Port))
	}
	switch c.AppendFsync {
	case "", "always", "everysec", "no":
	default:
		errs = append(errs, fmt.Errorf("redis: AppendFsync %q is not always, everysec or no", c.AppendFsync))
	}
	if c.ReplicaOf != "" {
		if _, _, err := net.SplitHostPort(c.ReplicaOf); err != nil {
			errs = append(errs, fmt.Errorf("redis: ReplicaOf %q: want host:port", c.ReplicaOf))
		}
	}
	return errors.Join(errs...)
}

// Redis is a redis-server child process. Its methods are safe for concurrent use.
type Redis struct {
	cfg      RedisConfig     // defaults filled, Port fixed once started
	sentinel *SentinelConfig // set for a Sentinel (sentinel.go)
	bin      string

	mu sync.Mutex // serializes Stop, Kill and Restart
	p  *proc      // the current process, guarded by mu; it may have exited
}

// redisReadyTimeout bounds the wait for a starting server when ctx has no
// deadline. Loading a big append-only file can take a while.
const redisReadyTimeout = 60 * time.Second

// StartRedis starts redis-server as configured and returns once it answers
// PING. ctx bounds the start only: the server runs until Stop or Kill, or
// until this process exits.
func StartRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return launchRedis(ctx, &Redis{cfg: cfg}, "redis")
}

// launchRedis starts r (a server or a Sentinel, cfg filled) on its port, or
// on a free one, picking again when another process takes the free port
// first. what names it in errors.
func launchRedis(ctx context.Context, r *Redis, what string) (*Redis, error) {
	bin, err := FindBinary("redis-server")
	if err != nil {
		return nil, err
	}
	r.bin = bin
	if err := os.MkdirAll(r.cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	for attempt := 1; ; attempt++ {
		port := r.cfg.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		}
		err = r.start(ctx, port)
		if err == nil {
			r.cfg.Port = port
			return r, nil
		}
		// Someone took the port between freePort and our bind: pick another.
		if !errors.Is(err, errPortTaken) || r.cfg.Port != 0 || attempt == maxStartAttempts {
			return nil, fmt.Errorf("%s on port %d: %w", what, port, err)
		}
	}
}

// start runs the server on port and waits until it is ready. On failure no
// process is left running. The caller holds mu or owns r exclusively.
func (r *Redis) start(ctx context.Context, port int) error {
	args, err := r.args(port)
	if err != nil {
		return err
	}
	p, err := startProc(r.bin, args, r.cfg.Dir, r.LogFile(), nil)
	if err != nil {
		return err
	}
	if err := waitRedis(ctx, p, port); err != nil {
		p.kill()
		return err
	}
	r.p = p
	return nil
}

// args are redis-server's arguments for a server on port.
func (r *Redis) args(port int) ([]string, error) {
	if r.sentinel != nil {
		return r.sentinelArgs(port)
	}
	appendOnly := "no"
	if r.cfg.AppendOnly {
		appendOnly = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--protected-mode", "yes",
		"--dir", r.cfg.Dir,
		"--daemonize", "no",
		"--logfile", "", // stdout, which goes to redis.log
		"--save", "", // no RDB snapshots: the outbox relies on the AOF, tests on nothing
		"--appendonly", appendOnly,
		"--appendfsync", r.cfg.AppendFsync,
		// A replica's full sync starts at once: Redis otherwise waits 5 s
		// for more replicas to share the transfer with.
		"--repl-diskless-sync-delay", "0",
	}
	if r.cfg.ReplicaOf != "" {
		host, rport, _ := net.SplitHostPort(r.cfg.ReplicaOf) // Validate checked it
		args = append(args, "--replicaof", host, rport)
	}
	return append(args, r.cfg.ExtraArgs...), nil
}

// waitRedis polls until the server on port answers PING and is our child p.
func waitRedis(ctx context.Context, p *proc, port int) error {
	ctx, cancel := context.WithTimeout(ctx, redisReadyTimeout)
	defer cancel()
	probeCtx, stop := p.untilExit(ctx)
	defer stop()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		if p.exited() {
			return p.exitError("redis-server")
		}
		pid, err := probeRedis(probeCtx, addr)
		switch {
		case err == nil && pid == p.pid():
			return nil
		case err == nil:
			// Another server answers on the port: ours failed to bind it.
			return errPortTaken
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis-server not ready: %w (last error: %v); log %s:\n%s", ctx.Err(), err, p.logPath, p.logTail())
		case <-p.done:
		case <-time.After(waitStep):
		}
	}
}

// probeRedis sends PING and INFO server in plain RESP and returns the server's
// process id once PING answers PONG (not LOADING). It speaks the protocol
// itself rather than through a client library: two commands do not need one.
func probeRedis(ctx context.Context, addr string) (int, error) {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return 0, err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return 0, fmt.Errorf("PING: %s", line)
	}
	head, err := br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(head), "$"))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("INFO: unexpected reply %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO: no process_id")
}

// Addr is the server's address, "127.0.0.1:port".
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.cfg.Port)) }

// URL is the server's database 0 as a redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Port is the server's TCP port.
func (r *Redis) Port() int { return r.cfg.Port }

// Dir is the server's data directory.
func (r *Redis) Dir() string { return r.cfg.Dir }

// LogFile is the server's log.
func (r *Redis) LogFile() string { return filepath.Join(r.cfg.Dir, "redis.log") }

// redisStopTimeout is how long Stop waits for a graceful shutdown, which
// fsyncs the append-only file, before it kills the server.
const redisStopTimeout = 30 * time.Second

// Stop shuts the server down gracefully (SIGTERM), killing it if it does not
// exit in time. Stopping a stopped or killed server does nothing.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop()
}

func (r *Redis) stop() error {
	if r.p == nil {
		return nil
	}
	if err := r.p.stop(syscall.SIGTERM, redisStopTimeout); err != nil {
		return fmt.Errorf("stop redis: %w", err)
	}
	return nil
}

// Kill ends the server with SIGKILL, as a crash would: it flushes nothing.
// Fault tests use it; with AppendOnly the data written so far survives, as
// the kernel still holds what the server wrote.
func (r *Redis) Kill() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p != nil {
		r.p.kill()
	}
	return nil
}

// Restart stops the server if it runs (gracefully) and starts it again on the
// same port with the same data directory.
func (r *Redis) Restart(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.stop(); err != nil {
		return err
	}
	if err := r.start(ctx, r.cfg.Port); err != nil {
		return fmt.Errorf("restart redis on port %d: %w", r.cfg.Port, err)
	}
	return nil
}

// Freeze stops the server's process (SIGSTOP) without killing it: its
// sockets stay open, the kernel accepts what others send, nothing answers.
// A frozen replica is one that lags without end; Thaw resumes it.
func (r *Redis) Freeze() error { return r.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (r *Redis) Thaw() error { return r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil || r.p.exited() {
		return errors.New("redis: not running")
	}
	return r.p.cmd.Process.Signal(sig)
}
