// Package nginx runs the deployment's nginx (deploy/nginx.conf) on loopback in
// front of API nodes that a test or the benchmark started: the real proxy,
// cache and X-Forwarded-For handling, not a stand-in.
package nginx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/seckill/seckill/deploy"
)

// Config says where the proxy runs and what it forwards to.
type Config struct {
	// Upstreams are the API nodes' host:port addresses (loopback).
	Upstreams []string
	// Dir is a fresh working directory: configuration, cache, logs.
	Dir string
	// AccessLog, when true, writes DIR/access.log, one line per request:
	// the cache status ($upstream_cache_status, "-" when the location has no
	// cache), the status code and the URI.
	AccessLog bool
	// Exe is the nginx binary; default: Find().
	Exe string
}

// Proxy is a running nginx.
type Proxy struct {
	// URL is the proxy's base URL, e.g. http://127.0.0.1:41234.
	URL  string
	dir  string
	cmd  *exec.Cmd
	out  *os.File
	done chan struct{} // closed when nginx has exited
	err  error         // its exit, once done is closed
}

// Find returns the nginx binary: on PATH, or Debian's /usr/sbin/nginx, which
// is not on a non-root PATH.
func Find() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx not found: install it with `apt-get install -y nginx` (make deps does)")
}

// Render returns deploy/nginx.conf with the upstream servers, the listen
// address and the cache directory replaced, and an error if the file no
// longer has the shape these replacements expect.
func Render(conf string, upstreams []string, listen, cacheDir string) (string, error) {
	servers := regexp.MustCompile(`(?m)^(\s*)server api\d:8080 ([^;]*);\n`)
	ms := servers.FindAllStringSubmatch(conf, -1)
	if len(ms) == 0 {
		return "", errors.New("nginx.conf: no `server apiN:8080 ...;` lines in the upstream block")
	}
	var b strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&b, "%sserver %s %s;\n", ms[0][1], u, ms[0][2])
	}
	first := true
	conf = servers.ReplaceAllStringFunc(conf, func(string) string {
		if first {
			first = false
			return b.String()
		}
		return ""
	})
	for old, repl := range map[string]string{
		"listen 8080;":             "listen " + listen + ";",
		"/var/cache/nginx/seckill": filepath.Join(cacheDir, "seckill"),
	} {
		if n := strings.Count(conf, old); n != 1 {
			return "", fmt.Errorf("nginx.conf: %q appears %d times, want once", old, n)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	return conf, nil
}

// Start renders the configuration, starts nginx in the foreground on a free
// loopback port, and waits until it answers. Stop ends it.
func Start(ctx context.Context, cfg Config) (*Proxy, error) {
	if len(cfg.Upstreams) == 0 || cfg.Dir == "" {
		return nil, errors.New("nginx: Upstreams and Dir are required")
	}
	exe := cfg.Exe
	if exe == "" {
		var err error
		if exe, err = Find(); err != nil {
			return nil, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	site, err := Render(deploy.NginxConf, cfg.Upstreams, addr, filepath.Join(cfg.Dir, "cache"))
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"cache", "tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "seckill.conf"), []byte(site), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "nginx.conf"), []byte(mainConf(cfg)), 0o644); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(cfg.Dir, "logs", "stderr.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-p", cfg.Dir, "-c", filepath.Join(cfg.Dir, "nginx.conf"))
	cmd.Stdout, cmd.Stderr = out, out
	// Should this process die without Stop, nginx goes with it (and takes
	// its worker along: SIGTERM, not SIGKILL).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	p := &Proxy{URL: "http://" + addr, dir: cfg.Dir, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// mainConf is the top of the configuration that the nginx image provides in
// a deployment: everything lives under Dir, in the foreground.
func mainConf(cfg Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "daemon off;\nworker_processes 1;\npid %s;\nerror_log %s warn;\n",
		filepath.Join(cfg.Dir, "nginx.pid"), filepath.Join(cfg.Dir, "logs", "error.log"))
	if os.Geteuid() == 0 {
		// Workers would run as nobody, who cannot enter the test's
		// temporary directories.
		b.WriteString("user root;\n")
	}
	b.WriteString("events { worker_connections 4096; }\nhttp {\n")
	tmp := filepath.Join(cfg.Dir, "tmp")
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "  %s_temp_path %s;\n", d, filepath.Join(tmp, d))
	}
	if cfg.AccessLog {
		fmt.Fprintf(&b, "  log_format edge '$upstream_cache_status $status $request_uri';\n  access_log %s edge;\n",
			filepath.Join(cfg.Dir, "logs", "access.log"))
	} else {
		b.WriteString("  access_log off;\n")
	}
	fmt.Fprintf(&b, "  include %s;\n}\n", filepath.Join(cfg.Dir, "seckill.conf"))
	return b.String()
}

func (p *Proxy) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Any answer will do: nginx listens and reaches an upstream.
		if resp, err := http.Get(p.URL + "/healthz"); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(filepath.Join(p.dir, "logs", "stderr.log"))
			e, _ := os.ReadFile(filepath.Join(p.dir, "logs", "error.log"))
			return fmt.Errorf("nginx exited at start (%v): %s%s", p.err, b, e)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("nginx did not answer within 10s")
		}
	}
}

// Stop ends nginx (SIGTERM: its fast shutdown) and waits for it and its
// worker to exit.
func (p *Proxy) Stop() {
	defer p.out.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// AccessLog returns the lines of DIR/logs/access.log (Config.AccessLog).
func (p *Proxy) AccessLog() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(p.dir, "logs", "access.log"))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n"), nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
