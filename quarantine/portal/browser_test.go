package portal

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/easgate/easgate/decision"
)

const chromiumPath = "/usr/bin/chromium"

// browser starts a real headless Chromium (Debian's package) with a fresh profile and
// returns its first tab. The test fails when Chromium is missing: `apt-get install -y
// chromium`.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("chromium not installed at %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab opens a new tab in the browser of parent that emulates a phone (390×844 CSS pixels)
// and sends Accept-Language lang when lang is set.
func tab(t *testing.T, parent context.Context, lang string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if lang == "" {
				return nil
			}
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders,
				network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}})
			return err
		}),
	)
	if err != nil {
		t.Fatalf("open tab: %v", err)
	}
	return ctx
}

// artifacts returns the directory for screenshots: $EASGATE_ARTIFACTS, else a new
// temporary directory that outlives the test (so a person can look at the pictures).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("EASGATE_ARTIFACTS")
	if dir == "" {
		d, err := os.MkdirTemp("", "easgate-portal-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, "portal-"+name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

func eval(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

// TestPortalBrowser runs the portal in real headless Chromium on a phone-sized viewport.
func TestPortalBrowser(t *testing.T) {
	b := browser(t)
	t.Run("States", func(t *testing.T) { testBrowserStates(t, b) })
	t.Run("AutoUpdate", func(t *testing.T) { testBrowserAutoUpdate(t, b) })
	t.Run("Wipe", func(t *testing.T) { testBrowserWipe(t, b) })
}

// testBrowserWipe clicks through the lost-device wipe as a person would: the device page's
// button leads to "Are you sure?", only the confirm button there requests the wipe, and the
// result page says what happens next. The browser's own same-origin posts pass the
// CSP (form-action 'self') and the origin check.
func testBrowserWipe(t *testing.T, b context.Context) {
	w := &fakeWiper{}
	tp := startPortal(t, func(c *Config) { c.Wipe = w.wipe })
	dir := artifacts(t)
	ctx := tab(t, b, "")
	tp.reg.put("alice@example.com", "ABC123", iphone, allowed)
	open(t, ctx, tp.link("alice@example.com", "ABC123"))
	if h := eval(t, ctx, `document.querySelector("#lost h2").textContent`); h != "Lost this device?" {
		t.Fatalf("lost-device heading %q", h)
	}
	if w := eval(t, ctx, `String(document.documentElement.scrollWidth)`); w != "390" {
		t.Errorf("page is %spx wide on a 390px screen", w)
	}
	screenshot(t, ctx, dir, "wipe-offer")
	click(t, ctx, "#lost button")
	waitFor(t, ctx, `(document.querySelector("h1")||{}).textContent.includes("Are you sure")`)
	if got := w.called(); len(got) != 0 {
		t.Fatalf("the first button requested the wipe: %v", got)
	}
	screenshot(t, ctx, dir, "wipe-confirm")
	click(t, ctx, "#confirm button.confirm")
	waitFor(t, ctx, `(document.querySelector("h1")||{}).textContent.includes("Company email will be erased")`)
	if p := eval(t, ctx, `document.getElementById("wiped").textContent`); !strings.Contains(p, doneText) {
		t.Fatalf("result page %q", p)
	}
	if got := w.called(); len(got) != 1 || got[0] != "alice@example.com/ABC123" {
		t.Fatalf("hook calls %v", got)
	}
	// Both posts carried this origin (not "null"), so the origin check really ran.
	if o := tp.postOrigins(); len(o) != 2 || o[0] != tp.base || o[1] != tp.base {
		t.Fatalf("POST origins %q, want %q twice", o, tp.base)
	}
	screenshot(t, ctx, dir, "wipe-done")
}

// click clicks the element matching sel (a CSS selector), waiting up to 10 seconds for it.
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

// testBrowserStates renders every state, checks what a person sees, and saves a screenshot
// of each.
func testBrowserStates(t *testing.T, b context.Context) {
	tp := startPortal(t)
	dir := artifacts(t)
	ctx := tab(t, b, "")
	users := map[string]decision.Decision{
		"not-compliant": notCompliant, "not-enrolled": notEnrolled, "blocked": blocked, "released": allowed,
	}
	for u, d := range users {
		tp.reg.put(u+"@example.com", "DEV1", iphone, d)
	}
	good := tp.link("expired@example.com", "DEV1")
	cases := []struct {
		name, url, h1 string
		check         func(t *testing.T)
	}{
		{"not-compliant", tp.link("not-compliant@example.com", "DEV1"), "does not meet the security requirements", func(t *testing.T) {
			items := eval(t, ctx, `Array.from(document.querySelectorAll("#fixes li")).map(e => e.textContent).join("|")`)
			for _, want := range []string{"at least 6 characters (yours has 4)", "Turn on device encryption", "version 17.4 or later (installed: 17.1)"} {
				if !strings.Contains(items, want) {
					t.Errorf("rules %q lack %q", items, want)
				}
			}
			if dev := eval(t, ctx, `document.querySelector("dl").textContent`); !strings.Contains(dev, "Alice's iPhone") ||
				!strings.Contains(dev, "iPhone15,2") || !strings.Contains(dev, "iOS 17.1") {
				t.Errorf("device details %q", dev)
			}
		}},
		{"not-enrolled", tp.link("not-enrolled@example.com", "DEV1"), "not enrolled", func(t *testing.T) {
			if href := eval(t, ctx, `document.querySelector("a.button").href`); href != "https://mdm.example.com/enrol" {
				t.Errorf("enrol link %q", href)
			}
		}},
		{"blocked", tp.link("blocked@example.com", "DEV1"), "cannot receive company email", nil},
		{"released", tp.link("released@example.com", "DEV1"), "mail will arrive in a moment", nil},
		{"expired", tp.sig.Link("expired@example.com", "DEV1", time.Now().Add(-time.Minute)), "This link has expired", nil},
		{"tampered", good[:len(good)-4] + "AAAA", "This link is not valid", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			open(t, ctx, tc.url)
			if h1 := eval(t, ctx, `document.querySelector("h1").textContent`); !strings.Contains(h1, tc.h1) {
				t.Fatalf("h1 %q, want %q", h1, tc.h1)
			}
			if lang := eval(t, ctx, `document.documentElement.lang`); lang != "en" {
				t.Errorf("lang %q", lang)
			}
			// The nonce'd stylesheet applied (CSP allowed it): the header is dark blue.
			if bg := eval(t, ctx, `getComputedStyle(document.querySelector("header")).backgroundColor`); bg != "rgb(18, 58, 107)" {
				t.Errorf("header background %q: page style blocked?", bg)
			}
			// Fits a phone: nothing wider than the viewport.
			if w := eval(t, ctx, `String(document.documentElement.scrollWidth)`); w != "390" {
				t.Errorf("page is %spx wide on a 390px screen", w)
			}
			if tc.check != nil {
				tc.check(t)
			}
			screenshot(t, ctx, dir, tc.name)
		})
	}
}

// testBrowserAutoUpdate: the page updates by itself once the device is released — the
// inline script (allowed by the CSP nonce) polls the status endpoint and reloads. German
// is chosen by Accept-Language.
func testBrowserAutoUpdate(t *testing.T, b context.Context) {
	tp := startPortal(t)
	dir := artifacts(t)
	ctx := tab(t, b, "de-DE,de;q=0.9")
	tp.reg.put("alice@example.com", "ABC123", iphone, notCompliant)
	open(t, ctx, tp.link("alice@example.com", "ABC123"))
	if h1 := eval(t, ctx, `document.querySelector("h1").textContent`); !strings.Contains(h1, "erfüllt die Sicherheitsanforderungen nicht") {
		t.Fatalf("German page h1 %q", h1)
	}
	if lang := eval(t, ctx, `document.documentElement.lang`); lang != "de" {
		t.Fatalf("lang %q", lang)
	}
	screenshot(t, ctx, dir, "de-not-compliant")

	// One rule fixed: the list shrinks without a manual reload.
	tp.reg.put("alice@example.com", "ABC123", iphone, decision.Decision{Action: decision.Quarantine,
		Reason: decision.ReasonNotCompliant, Failures: notCompliant.Failures[:1]})
	waitFor(t, ctx, `document.querySelectorAll("#fixes li").length === 1`)

	// Released: the page says so by itself.
	tp.reg.put("alice@example.com", "ABC123", iphone, allowed)
	waitFor(t, ctx, `(document.querySelector("h1")||{}).textContent.includes("Ihre E-Mail kommt gleich")`)
	if st := eval(t, ctx, `document.getElementById("status").dataset.state`); st != StateReleased {
		t.Fatalf("state %q", st)
	}
	screenshot(t, ctx, dir, "de-released")
}

// waitFor evaluates cond until it is true, for at most 15 seconds. Evaluation errors while
// the page reloads itself are expected and retried.
func waitFor(t *testing.T, ctx context.Context, cond string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: timed out (last error: %v)", cond, lastErr)
}
