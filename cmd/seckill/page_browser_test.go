package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The sale page in a real browser: headless Chromium driven over the DevTools
// protocol against a whole seckill started in-process, once per language of
// the page (English and Simplified Chinese, chosen by the browser's
// Accept-Language). Screenshots of every step go to
// $SECKILL_ARTIFACTS/sale-page/LANG (default: artifacts/ at the root of the
// repository), for a human to look at when the page changes.

// findChromium returns the browser to drive. Without one the test is skipped
// on a developer's machine, but never in CI, which installs it (.ci/run).
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SECKILL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const hint = "install it with `apt-get install -y chromium` (make deps does), or point SECKILL_CHROMIUM at a Chrome binary"
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found, and CI must run the browser test: " + hint)
	}
	t.Skip("chromium not found, so the sale page is not tested in a browser: " + hint)
	return ""
}

// artifactsDir is where the screenshots go.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SECKILL_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs(filepath.Join("..", "..")) // tests run in cmd/seckill
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "artifacts")
	}
	dir = filepath.Join(dir, "sale-page")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium with a fresh profile.
type browser struct {
	t    *testing.T
	ctx  context.Context
	shot string // artifacts directory

	mu       sync.Mutex
	problems []string // uncaught exceptions and console errors of any tab
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI containers; the page under test is ours
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is tiny in containers
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 768),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc) // runs before the profile directory is removed, and waits for Chromium to exit
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	// The first Do starts the browser and binds it to ctx: no timeout here,
	// or the browser would die with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return &browser{t: t, ctx: ctx, shot: artifactsDir(t)}
}

// tab opens a new tab: a fresh sessionStorage, so a fresh shopper. phone
// emulates a phone's screen (360 CSS pixels wide, touch, the viewport meta
// tag honoured); with a clock skew, the page's Date is that far off; lang is
// the tab's Accept-Language.
func (b *browser) tab(name string, phone bool, skew time.Duration, lang string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	if phone {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 780, chromedp.EmulateMobile, chromedp.EmulateScale(2))); err != nil {
			b.t.Fatalf("emulate a phone in tab %s: %v", name, err)
		}
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}}); err != nil {
		b.t.Fatalf("set the language of tab %s: %v", name, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			// Failed requests (409 sold_out, 404 of a disabled sign-in) are
			// logged by the browser as network errors; they are expected.
			if m.IsException() || m.Type == chromedp.ConsoleError && m.Source != "network" {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s: %s (%s:%d)", name, m, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	if skew != 0 {
		src := fmt.Sprintf(`(() => {
			const skew = %d, Real = Date;
			class Skewed extends Real {
				constructor(...a) { if (a.length === 0) super(Real.now() + skew); else super(...a); }
				static now() { return Real.now() + skew; }
			}
			window.Date = Skewed;
		})();`, skew.Milliseconds())
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			b.t.Fatalf("skew the clock of tab %s: %v", name, err)
		}
	}
	return &tab{b: b, name: name, ctx: ctx, shot: b.shot}
}

func (b *browser) checkConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser console: %s", p)
	}
}

type tab struct {
	b    *browser
	name string
	ctx  context.Context
	shot string // where its screenshots go
}

// do runs actions with a timeout; the tab outlives it.
func (tb *tab) do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.screenshot("FAILED-" + tb.name)
		tb.b.t.Fatalf("%s: %s: %v\npage: %s", tb.name, what, err, tb.text("main"))
	}
}

func (tb *tab) text(sel string) string {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).innerText`, sel)))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strings.TrimSpace(s)
}

// waitFor evaluates a JavaScript condition until it holds, through page
// loads (an evaluation that meets a reload fails and is tried again).
func (tb *tab) waitFor(what string, timeout time.Duration, cond string) {
	tb.b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.screenshot("FAILED-" + tb.name)
			tb.b.t.Fatalf("%s: %s: not after %v (%v)\npage: %s", tb.name, what, timeout, err, tb.text("main"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (tb *tab) attr(sel, name string) string {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).getAttribute(%q) || ''`, sel, name)))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

func (tb *tab) disabled(sel string) bool {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	d, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).disabled`, sel)))
	if err != nil {
		tb.b.t.Fatalf("%s: read %s.disabled: %v", tb.name, sel, err)
	}
	return d
}

// screenshot saves the whole page as NAME.png in the artifacts directory.
func (tb *tab) screenshot(name string) {
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.b.t.Errorf("%s: screenshot %s: %v", tb.name, name, err)
		return
	}
	if err := os.MkdirAll(tb.shot, 0o755); err != nil {
		tb.b.t.Errorf("screenshot directory: %v", err)
		return
	}
	p := filepath.Join(tb.shot, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.b.t.Errorf("save screenshot: %v", err)
		return
	}
	tb.b.t.Logf("screenshot %s", p)
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// pageText is one language of the page's sentences (http/page/text.json),
// so the test expects what the page is meant to say in that language.
type pageText map[string]any

func loadPageText(t *testing.T, lang string) pageText {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "http", "page", "text.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]pageText
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	if all[lang] == nil {
		t.Fatalf("text.json has no %s", lang)
	}
	return all[lang]
}

// say is the sentence key with {name} placeholders filled from kv pairs.
func (p pageText) say(key string, kv ...string) string {
	s, _ := p[key].(string)
	for i := 0; i+1 < len(kv); i += 2 {
		s = strings.ReplaceAll(s, "{"+kv[i]+"}", kv[i+1])
	}
	return s
}

// prefix is the sentence up to its first placeholder.
func (p pageText) prefix(key string) string {
	s, _ := p[key].(string)
	before, _, _ := strings.Cut(s, "{")
	return before
}

func TestSalePageInBrowser(t *testing.T) {
	exe := findChromium(t)
	s := startSystem(t, "SECKILL_DEV_SIGN_IN", "true")
	// One shopper's browser per language, with the Accept-Language such a
	// browser sends; the page must follow it, and its switch must too.
	for _, lang := range []struct{ tag, accept, other string }{
		{"en", "en-US,en;q=0.9", "zh-CN"},
		{"zh-CN", "zh-CN,zh;q=0.9,en;q=0.8", "en"},
	} {
		begin := time.Now()
		b := newBrowser(t, exe)
		b.shot = filepath.Join(b.shot, lang.tag)
		salePageScenario(t, s, b, lang.tag, lang.accept, lang.other)
		b.checkConsole()
		t.Logf("browser test in %s took %v", lang.tag, time.Since(begin).Round(time.Millisecond))
	}
}

// salePageScenario walks two shoppers through a sale in one language.
func salePageScenario(t *testing.T, s *system, b *browser, lang, accept, other string) {
	text := loadPageText(t, lang)
	// Alice's device clock is an hour fast: a page that trusted it would
	// open the sale at once.
	alice := b.tab("alice-"+lang, true, time.Hour, accept)
	bob := b.tab("bob-"+lang, false, 0, accept)

	// A sale of one unit that opens a few seconds from now, behind a purchase
	// pass (require_token), which the page fetches once the sale is open.
	const lead = 6 * time.Second
	startsAt := time.Now().Add(lead).UTC()
	r := s.do("POST", "/v1/sales", s.admin, fmt.Sprintf(
		`{"name":"Vintage camera","stock":1,"price_cents":12900,"starts_at":%q,"ends_at":%q,"per_user_limit":1,"pay_within_s":600,"require_token":true}`,
		startsAt.Format(time.RFC3339Nano), startsAt.Add(time.Hour).Format(time.RFC3339Nano)))
	if r.status != http.StatusCreated {
		t.Fatalf("create sale: %d %s", r.status, r.raw)
	}
	sale := r.str("id")
	url := s.base + "/sale/" + sale

	// 1. Before the start: the countdown runs and the button is locked.
	alice.do("open the sale page", 20*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitVisible(css(`#sale[data-phase="upcoming"]`)),
	)
	if got := alice.text("#sale-name"); got != "Vintage camera" {
		t.Errorf("sale name = %q", got)
	}
	if !alice.disabled("#buy") {
		t.Error("buy button is enabled before the sale starts (the device clock is an hour fast)")
	}
	if got := alice.text("#countdown-label"); got != text.say("starts_in") {
		t.Errorf("%s: countdown label before the start = %q, want %q", lang, got, text.say("starts_in"))
	}
	if got, want := alice.text("#remaining"), text.say("remaining_of", "remaining", "1", "stock", "1"); got != want {
		t.Errorf("%s: remaining = %q, want %q", lang, got, want)
	}
	if got := alice.attr("html", "lang"); got != lang {
		t.Errorf("%s: <html lang> is %q", lang, got)
	}
	if got, want := alice.text("#buy"), text.say("buy_now"); got != want {
		t.Errorf("%s: buy button says %q, want %q", lang, got, want)
	}
	alice.screenshot("01-before-start")
	// The same check a moment before the start, after a few stock refreshes.
	if wait := time.Until(startsAt.Add(-time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	if !alice.disabled("#buy") {
		t.Error("buy button is enabled a second before the start")
	}
	if time.Now().After(startsAt) {
		t.Fatalf("the browser took longer than %v to show the page; the before-start checks proved nothing", lead)
	}

	// 2. The start: the button unlocks on the server's clock, not earlier.
	alice.do("wait for the start", lead+15*time.Second, chromedp.WaitEnabled(css("#buy")))
	if early := time.Until(startsAt); early > 500*time.Millisecond {
		t.Errorf("buy button unlocked %v before the start", early)
	}
	if got := alice.text("#countdown-label"); got != text.say("ends_in") {
		t.Errorf("%s: countdown label after the start = %q, want %q", lang, got, text.say("ends_in"))
	}

	// The sale does require a pass: the page below must fetch one to buy.
	if r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token("mallory-"+lang), `{"quantity":1}`); r.errCode() != "token_required" {
		t.Errorf("purchase without a pass: %d %s, want 403 token_required", r.status, r.raw)
	}

	// 3. Sign in as alice (dev sign-in) and buy.
	alice.do("sign in", 20*time.Second,
		chromedp.SendKeys(css("#user-id"), "alice-"+lang),
		chromedp.Click(css("#sign-in")),
		chromedp.WaitVisible(css("#who")),
	)
	if got := alice.text("#who-name"); got != "alice-"+lang {
		t.Errorf("signed in as %q, want alice-%s", got, lang)
	}
	alice.screenshot("02-open-signed-in")
	alice.do("buy", 20*time.Second,
		chromedp.Click(css("#buy")),
		chromedp.WaitVisible(css(`#order[data-status="reserved"]`)),
		chromedp.WaitVisible(css("#pay")),
	)
	order := alice.text("#order-id")
	if !strings.HasPrefix(order, sale+"-") {
		t.Errorf("order id %q is not an order of sale %s", order, sale)
	}
	if got := alice.text("#pay-by"); !strings.HasPrefix(got, "9:") && !strings.HasPrefix(got, "10:") {
		t.Errorf("pay-by countdown = %q, want about 10 minutes", got)
	}
	if !alice.disabled("#buy") {
		t.Error("buy button is enabled while the order waits for payment")
	}
	soldOut := text.say("remaining_of", "remaining", "0", "stock", "1")
	alice.do("see the stock go", 10*time.Second, chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('#remaining').innerText === %q`, soldOut)))
	alice.screenshot("03-reserved")

	// 4. Pay.
	alice.do("pay", 20*time.Second,
		chromedp.Click(css("#pay")),
		chromedp.WaitVisible(css(`#order[data-status="paid"]`)),
	)
	if got := alice.text("#order-status"); got != text.say("order_paid") {
		t.Errorf("%s: order status after paying = %q, want %q", lang, got, text.say("order_paid"))
	}
	alice.screenshot("04-paid")
	if r := s.do("GET", "/v1/orders/"+order, s.token("alice-"+lang), ""); r.status != http.StatusOK || r.str("status") != "paid" {
		t.Errorf("the API has order %s as %d %s, want paid", order, r.status, r.raw)
	}

	// 5. Bob comes after the sell-out: he is told, and cannot buy.
	bob.do("open the sale page", 20*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitVisible(css(`#sale[data-phase="sold_out"]`)),
	)
	bob.do("sign in with a bad user id", 20*time.Second,
		chromedp.SendKeys(css("#user-id"), "bob smith"),
		chromedp.Click(css("#sign-in")),
	)
	if got := bob.text("#sign-in-error"); got != text.say("bad_user_id") {
		t.Errorf("%s: sign-in error for a bad user id = %q, want %q", lang, got, text.say("bad_user_id"))
	}
	bob.do("sign in", 20*time.Second,
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#user-id').value = ''`),
		chromedp.SendKeys(css("#user-id"), "bob-"+lang),
		chromedp.Click(css("#sign-in")),
		chromedp.WaitVisible(css("#who")),
	)
	if !bob.disabled("#buy") || bob.text("#buy") != text.say("btn_sold_out") {
		t.Errorf("%s: bob's buy button: disabled %v, label %q; want disabled, %q", lang, bob.disabled("#buy"), bob.text("#buy"), text.say("btn_sold_out"))
	}
	if got := bob.text("#buy-help"); !strings.HasPrefix(got, text.prefix("help_sold_out")) {
		t.Errorf("%s: bob is told %q, want %q…", lang, got, text.prefix("help_sold_out"))
	}
	if got := bob.text("#remaining"); got != soldOut {
		t.Errorf("%s: bob sees remaining %q, want %q", lang, got, soldOut)
	}
	bob.screenshot("05-sold-out")

	// 6. The index lists the sale once the read model has it.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.do("GET", "/v1/sales", "", "").raw, `"id":"`+sale+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/sales does not list sale %s after 30s", sale)
		}
		time.Sleep(100 * time.Millisecond)
	}
	bob.do("open the index", 20*time.Second,
		chromedp.Navigate(s.base+"/"),
		chromedp.WaitVisible(css(fmt.Sprintf(`#sales a[href="/sale/%s"]`, sale))),
	)
	bob.screenshot("06-index")

	// 7. The switch: the other language, kept across pages by its cookie.
	bob.do("switch the language", 20*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitVisible(css(`#sale[data-phase="sold_out"]`)),
		chromedp.Click(css("#lang-switch")),
	)
	// The click reloads the page: poll across the reload.
	bob.waitFor("the page in "+other, 20*time.Second,
		fmt.Sprintf(`document.documentElement.lang === %q && document.querySelector('#sale').dataset.phase === 'sold_out'`, other))
	otherText := loadPageText(t, other)
	if got := bob.text("#buy"); got != otherText.say("btn_sold_out") {
		t.Errorf("%s → %s: buy button says %q, want %q", lang, other, got, otherText.say("btn_sold_out"))
	}
	if got := bob.text("#who-name"); got != "bob-"+lang {
		t.Errorf("%s → %s: the switch lost the sign-in (who = %q)", lang, other, got)
	}
	bob.screenshot("07-switched-to-" + other)
}

// TestDrawPageInBrowser: in a draw-mode sale the buy button enters the
// round's draw, says so, and the page shows the order once the shopper is
// drawn (the only entrant of a round of one unit always is).
func TestDrawPageInBrowser(t *testing.T) {
	exe := findChromium(t)
	s := startSystem(t, "SECKILL_DEV_SIGN_IN", "true")
	b := newBrowser(t, exe)
	b.shot = filepath.Join(b.shot, "draw")
	defer b.checkConsole()
	text := loadPageText(t, "en")
	startsAt := time.Now().Add(2 * time.Second).UTC()
	r := s.do("POST", "/v1/sales", s.admin, fmt.Sprintf(
		`{"name":"Lucky draw","stock":2,"price_cents":500,"starts_at":%q,"ends_at":%q,"per_user_limit":1,"pay_within_s":600,
		  "release_step":1,"release_interval_ms":3000,"release_mode":"draw"}`,
		startsAt.Format(time.RFC3339Nano), startsAt.Add(time.Hour).Format(time.RFC3339Nano)))
	if r.status != http.StatusCreated {
		t.Fatalf("create sale: %d %s", r.status, r.raw)
	}
	alice := b.tab("alice-draw", false, 0, "en-US")
	alice.do("open and sign in", 30*time.Second,
		chromedp.Navigate(s.base+"/sale/"+r.str("id")),
		chromedp.SendKeys(css("#user-id"), "alice"),
		chromedp.Click(css("#sign-in")),
		chromedp.WaitVisible(css("#who")),
		chromedp.WaitEnabled(css("#buy")),
	)
	if got := alice.text("#buy-help"); !strings.HasPrefix(got, text.prefix("help_draw")) {
		t.Errorf("help in a draw sale: %q", got)
	}
	alice.do("enter the draw", 10*time.Second, chromedp.Click(css("#buy")))
	alice.waitFor("the entry shown", 10*time.Second, fmt.Sprintf(`document.querySelector('#buy').innerText === %q`, text.say("btn_entered")))
	if !alice.disabled("#buy") {
		t.Error("the buy button is enabled while the entry waits for its draw")
	}
	alice.screenshot("01-entered")
	alice.waitFor("drawn: the order reserved", 20*time.Second, `document.querySelector('#order').dataset.status === 'reserved'`)
	if got := alice.text("#buy-error"); got != text.say("draw_won") {
		t.Errorf("after the draw the page says %q, want %q", got, text.say("draw_won"))
	}
	alice.screenshot("02-won")
}
