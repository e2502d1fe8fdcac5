//go:build linux

package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

// TestFaultSIGTERM sends SIGTERM to a `seckill serve` node (every role:
// API, relay, projector, sweeper) in the middle of a purchase burst. It must
// stop accepting connections at once, finish the requests in flight (one of
// them deliberately slow: half its body arrives after the signal), forward
// every accepted order to the log before it exits (the relay's final flush:
// the outbox is empty right after the exit), and exit 0 within
// --shutdown-timeout (15 s, the default). The time it took is logged
// (README, "Stopping"). Then a new node starts and the usual judge runs.
func TestFaultSIGTERM(t *testing.T) {
	conc := pick(32, 64)
	d := newDeployment(t, testenv.RedisServer(t).URL())
	node := d.serveArgs("node", "api,relay,projector,sweeper", "--shutdown-timeout", "15s")
	d.sys.base = node.base
	sale := d.sys.createSale(1_000_000, `,"per_user_limit":1`)
	g := d.gate()
	addr := strings.TrimPrefix(node.base, "http://")

	// The slow request: headers and half the body before the signal.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	body := `{"quantity":1}`
	if _, err := io.WriteString(slow, "POST /v1/sales/"+sale+"/purchase HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+
		d.sys.token("slowpoke")+"\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n"+body[:7]); err != nil {
		t.Fatal(err)
	}

	// The burst: one attempt per shopper. After the signal a shopper may
	// find the port closed; that is an answer too (nothing was accepted).
	b := newShoppers(d, sale, []string{node.base}, "t", conc)
	b.retryFor = 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); b.buy(stop, 0, 1_000_000) }()
	b.waitAccepted(int64(pick(1000, 5000)), time.Minute)

	if err := node.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	atSignal := b.accepted.Load()
	time.Sleep(200 * time.Millisecond)
	close(stop) // shoppers in flight finish; no new ones
	// No longer accepting.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the node still accepts connections 200 ms after SIGTERM")
	}
	// The request in flight is finished.
	if _, err := io.WriteString(slow, body[7:]); err != nil {
		t.Fatalf("finish the slow request: %v", err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	slowOrder := ""
	if err != nil {
		t.Errorf("the request in flight at SIGTERM got no answer: %v", err)
	} else {
		a := answer{status: resp.StatusCode}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if a.status != http.StatusAccepted {
			t.Errorf("the request in flight at SIGTERM: %d %s, want 202", a.status, raw)
		}
		if i := strings.Index(string(raw), `"order_id":"`); i >= 0 {
			slowOrder = strings.SplitN(string(raw[i+len(`"order_id":"`):]), `"`, 2)[0]
		}
	}
	select {
	case <-node.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the node did not exit within 30 s of SIGTERM\n%s", tail(node.log, 20))
	}
	took := time.Since(signalled)
	<-done
	if node.err != nil {
		t.Errorf("the node exited with %v\n%s", node.err, tail(node.log, 20))
	}
	if took > 15*time.Second {
		t.Errorf("the node took %v to stop, over --shutdown-timeout 15s", took)
	}

	// Right after the exit, before anything else runs: the relay flushed.
	if n := outboxBacklog(t, g); n != 0 {
		t.Errorf("the outboxes hold %d entries after the node stopped: the relay did not flush", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fold, _, err := eventstore.FoldLog(ctx, d.brokers(), eventstore.DefaultTopic)
	if err != nil {
		t.Fatal(err)
	}
	if slowOrder != "" {
		b.told(slowOrder, "slowpoke")
	}
	ledger := b.ledger()
	missing := 0
	for o := range ledger {
		if st, ok := fold.Orders[o]; !ok || st.Status == "" {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d accepted orders are not in the log right after the node stopped", missing)
	}
	flushed := strings.Count(tail(node.log, 200), "relay flushed at shutdown")
	t.Logf("faults: SIGTERM during a burst: %d orders before the signal, %d in all; the node exited 0 after %v; %d accepted orders missing from the log at exit (relay flush logged: %v); %s",
		atSignal, len(ledger), took.Round(10*time.Millisecond), missing, flushed > 0, b.summary())

	// A new node, and the judge (the read models catch up from their
	// committed positions).
	d.restart(node)
	fold, _ = d.judge("SIGTERM mid-burst", ledger)
	b.matchLog(fold)
}
