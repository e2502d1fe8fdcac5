package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	shttp "github.com/seckill/seckill/http"
)

func (b *bench) build(ctx context.Context) error {
	b.bin = filepath.Join(b.dir, "seckill")
	b.logf("building seckill ...")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/seckill")
	cmd.Stdout, cmd.Stderr = b.w, os.Stderr
	return cmd.Run()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startDev runs `seckill dev` as its own process: the embedded broker,
// Redis, Postgres, and the relay, projector and sweeper roles. The API under
// test runs in a process of its own (startAPI), as API nodes do in a
// deployment, so that its RSS and profile are its own and not the broker's,
// which keeps the whole log in memory.
func (b *bench) startDev(ctx context.Context) (func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if b.devAdmin, err = freeAddr(); err != nil {
		return nil, err
	}
	b.data = filepath.Join(b.dir, "data")
	b.logf("starting seckill dev (broker, Redis, Postgres, relay, projector, sweeper) ...")
	cmd, stop, err := b.start("dev.log", nil, "dev", "--data", b.data, "--addr", addr,
		"--role", "relay,projector,sweeper", "--admin-addr", b.devAdmin)
	if err != nil {
		return nil, err
	}
	b.devPID = cmd.Process.Pid
	if err := b.waitReady(ctx, "http://"+b.devAdmin+"/readyz", "dev.log"); err != nil {
		stop()
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(b.data, "dev.json"))
	if err == nil {
		err = json.Unmarshal(raw, &b.dev)
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("read dev.json: %w", err)
	}
	secret, err := os.ReadFile(filepath.Join(b.data, "jwt.secret"))
	if err != nil {
		stop()
		return nil, err
	}
	b.secret = []byte(strings.TrimSpace(string(secret)))
	if b.admin, err = shttp.NewToken(b.secret, "bench-admin", true, 2*time.Hour); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// startAPI runs the API node under test: `seckill serve --role api` on the
// services of `seckill dev`.
func (b *bench) startAPI(ctx context.Context) (func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if b.apiAdmin, err = freeAddr(); err != nil {
		return nil, err
	}
	env := []string{"SECKILL_REDIS_URL=" + b.dev.RedisURL, "SECKILL_DATABASE_URL=" + b.dev.DatabaseURL,
		"SECKILL_KAFKA_BROKERS=" + b.dev.Brokers, "SECKILL_JWT_SECRET=" + string(b.secret)}
	if b.dev.Topic != "" {
		env = append(env, "SECKILL_TOPIC="+b.dev.Topic)
	}
	if b.cfg.memLim != "" {
		env = append(env, "GOMEMLIMIT="+b.cfg.memLim)
	}
	b.logf("starting seckill serve --role api on %s ...", addr)
	cmd, stop, err := b.start("api.log", env, "serve", "--role", "api", "--addr", addr, "--admin-addr", b.apiAdmin)
	if err != nil {
		return nil, err
	}
	b.apiPID, b.api = cmd.Process.Pid, "http://"+addr
	if err := b.waitReady(ctx, b.api+"/readyz", "api.log"); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// start runs the seckill binary with args, its output in logName under the
// bench's folder; stop ends it with SIGTERM (SIGKILL after 30 s).
func (b *bench) start(logName string, env []string, args ...string) (*exec.Cmd, func(), error) {
	log, err := os.Create(filepath.Join(b.dir, logName))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(b.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
		log.Close()
	}
	return cmd, stop, nil
}

// waitReady polls url until it answers 200, for at most 90 s.
func (b *bench) waitReady(ctx context.Context, url, logName string) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			out, _ := os.ReadFile(filepath.Join(b.dir, logName))
			return fmt.Errorf("%s not ready:\n%s", url, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settle waits until the relay has forwarded every outbox entry and every
// projection has applied the whole log, for at most 4 minutes, and then
// audits the system (issue 13: `seckill audit` clean after every phase).
func (b *bench) settle(ctx context.Context, after string) error {
	if err := b.waitSettled(ctx, after); err != nil {
		return err
	}
	_, _, err := b.audit(ctx, after)
	return err
}

// waitSettled is settle without the audit.
func (b *bench) waitSettled(ctx context.Context, after string) error {
	start := time.Now()
	opt, err := redis.ParseURL(b.dev.RedisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	gate, err := commands.NewGate(commands.GateConfig{}, rdb)
	if err != nil {
		return err
	}
	for {
		backlog, lag, err := b.backlog(ctx, gate)
		if err == nil && backlog == 0 && lag == 0 {
			break
		}
		if time.Since(start) > 4*time.Minute || ctx.Err() != nil {
			return fmt.Errorf("after the %s phase: the system did not settle in 4 minutes (outbox %d, projections %d events behind, %v)", after, backlog, lag, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.logf("settled after the %s phase in %.1fs (outboxes empty, projections caught up)", after, time.Since(start).Seconds())
	return nil
}

// backlog is what the relay and the projections still have to do: outbox
// entries, and events not yet applied summed over the projections.
func (b *bench) backlog(ctx context.Context, gate *commands.Gate) (outbox, lag int64, err error) {
	streams, err := gate.OutboxBacklog(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range streams {
		outbox += n
	}
	var status struct {
		Projections []struct {
			LagEvents int64 `json:"lag_events"`
		} `json:"projections"`
	}
	if err := b.call(ctx, "GET", "/v1/admin/projections", b.admin, "", http.StatusOK, &status); err != nil {
		return outbox, 0, err
	}
	for _, s := range status.Projections {
		lag += s.LagEvents
	}
	return outbox, lag, nil
}

// startCeiling runs `seckill ceiling`, the empty chi handler that is
// ceiling 1, and sets b.ceiling to its URL.
func (b *bench) startCeiling(ctx context.Context) (func(), error) {
	cmd := exec.Command(b.bin, "ceiling", "--addr", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return nil, fmt.Errorf("ceiling server: %w", err)
	}
	b.ceiling = "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	return stop, nil
}

// logRSS logs the API process's resident set after a phase.
func (b *bench) logRSS(after string) {
	if hwm, cur, err := rss(b.apiPID); err == nil {
		b.logf("API process RSS after %s: %d MB (peak so far %d MB)", after, cur>>20, hwm>>20)
	}
}

// rss returns the peak and current resident set of pid.
func rss(pid int) (peak, now int64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			peak = kb << 10
		case "VmRSS:":
			now = kb << 10
		}
	}
	if peak == 0 {
		return 0, 0, errors.New("no VmHWM")
	}
	return peak, now, nil
}
