package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/quarantine"
)

// fakeRegistry is a Lookup whose answers the tests change while the page is open.
type fakeRegistry struct {
	mu      sync.Mutex
	devices map[string]decision.Device
	dec     map[string]decision.Decision
	fail    bool
	calls   []string
}

func newRegistry() *fakeRegistry {
	return &fakeRegistry{devices: map[string]decision.Device{}, dec: map[string]decision.Decision{}}
}

func (r *fakeRegistry) put(user, id string, dev decision.Device, d decision.Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dev.User, dev.DeviceID = user, id
	r.devices[user+"/"+id] = dev
	r.dec[user+"/"+id] = d
}

func (r *fakeRegistry) Lookup(_ context.Context, user, id string) (decision.Device, decision.Decision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, user+"/"+id)
	if r.fail {
		return decision.Device{}, decision.Decision{}, errors.New("registry down")
	}
	dev, ok := r.devices[user+"/"+id]
	if !ok {
		return decision.Device{}, decision.Decision{}, ErrUnknownDevice
	}
	return dev, r.dec[user+"/"+id], nil
}

var (
	iphone = decision.Device{DeviceType: "iPhone", Info: decision.DeviceInfo{
		FriendlyName: "Alice's iPhone", Model: "iPhone15,2", OS: "iOS 17.1 21B74"}}
	pixel = decision.Device{DeviceType: "Android", Info: decision.DeviceInfo{
		FriendlyName: "Bob's Pixel", Model: "Pixel 8", OS: "Android 14"}}
	notCompliant = decision.Decision{Action: decision.Quarantine, Reason: decision.ReasonNotCompliant,
		Failures: []decision.Failure{
			{Rule: decision.FailMinPasscodeLength, Want: "6", Have: "4"},
			{Rule: decision.FailEncryptionRequired, Want: "true", Have: "false"},
			{Rule: decision.FailMinOSVersion, Want: "17.4", Have: "17.1"},
		}}
	notEnrolled = decision.Decision{Action: decision.Quarantine, Reason: decision.ReasonUnknownDevice}
	blocked     = decision.Decision{Action: decision.Block, Reason: decision.ReasonAdminBlock}
	wipePending = decision.Decision{Action: decision.Wipe, Reason: decision.ReasonWipePending}
	allowed     = decision.Decision{Action: decision.Allow, Reason: decision.ReasonAllowed}
)

type testPortal struct {
	p    *Portal
	reg  *fakeRegistry
	sig  *Signer
	base string // http://127.0.0.1:port
	now  time.Time

	mu      sync.Mutex
	origins []string // the Origin header of every POST the server received
}

// postOrigins returns the Origin headers of the POSTs received so far.
func (tp *testPortal) postOrigins() []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]string(nil), tp.origins...)
}

// startPortal serves a Portal from an in-process fasthttp server on 127.0.0.1; opts adjust
// its Config.
func startPortal(t testing.TB, opts ...func(*Config)) *testPortal {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	sig, err := NewSigner(key, base)
	if err != nil {
		t.Fatal(err)
	}
	r, err := quarantine.NewRenderer(quarantine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPortal{reg: newRegistry(), sig: sig, base: base, now: time.Now()}
	cfg := Config{Signer: sig, Lookup: tp.reg, Renderer: r, EnrollURL: "https://mdm.example.com/enrol",
		Organization: "Example IT", PollInterval: 150 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	tp.p, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			tp.mu.Lock()
			tp.origins = append(tp.origins, string(ctx.Request.Header.Peek("Origin")))
			tp.mu.Unlock()
		}
		tp.p.Handler(ctx)
	}
	srv := &fasthttp.Server{Handler: handler, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return tp
}

func (tp *testPortal) link(user, dev string) string {
	return tp.sig.Link(user, dev, time.Now().Add(time.Hour))
}

func get(t testing.TB, url, lang string) (int, *fasthttp.ResponseHeader, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	if lang != "" {
		req.Header.Set("Accept-Language", lang)
	}
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	h := &fasthttp.ResponseHeader{}
	resp.Header.CopyTo(h)
	return resp.StatusCode(), h, string(resp.Body())
}

// Every page is personal and locked down: no caching, no referrer, a CSP whose nonce is
// the one on the inline style and script, nothing from third parties.
func TestPortalHeadersAndCSP(t *testing.T) {
	tp := startPortal(t)
	tp.reg.put("alice@example.com", "ABC123", iphone, notCompliant)
	code, h, body := get(t, tp.link("alice@example.com", "ABC123"), "")
	if code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	if cc := string(h.Peek("Cache-Control")); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control %q", cc)
	}
	if string(h.Peek("Referrer-Policy")) != "no-referrer" || string(h.Peek("X-Content-Type-Options")) != "nosniff" {
		t.Error("missing Referrer-Policy or nosniff")
	}
	csp := string(h.Peek("Content-Security-Policy"))
	m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
	if m == nil || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	if !strings.Contains(body, `<script nonce="`+m[1]+`">`) || !strings.Contains(body, `<style nonce="`+m[1]+`">`) {
		t.Fatal("inline script/style do not carry the CSP nonce")
	}
	if strings.Contains(body, "https://") && !strings.Contains(body, "https://mdm.example.com") {
		t.Fatal("page references a third-party URL")
	}
	if !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, `http-equiv="refresh"`) {
		t.Fatal("page lacks lang or the no-script refresh")
	}
	_, h2, _ := get(t, tp.link("alice@example.com", "ABC123"), "")
	if string(h2.Peek("Content-Security-Policy")) == csp {
		t.Fatal("CSP nonce repeats across responses")
	}
}

func TestPortalStatusJSON(t *testing.T) {
	tp := startPortal(t)
	tp.reg.put("alice@example.com", "ABC123", iphone, notCompliant)
	link := tp.link("alice@example.com", "ABC123")
	var j map[string]string
	code, h, body := get(t, link+"/status", "")
	if err := json.Unmarshal([]byte(body), &j); err != nil || code != 200 || j["state"] != StateNotCompliant || j["v"] == "" {
		t.Fatalf("status %d %s", code, body)
	}
	if !strings.Contains(string(h.Peek("Cache-Control")), "no-store") {
		t.Fatal("status JSON cacheable")
	}
	v1 := j["v"]
	tp.reg.put("alice@example.com", "ABC123", iphone, decision.Decision{Action: decision.Quarantine,
		Reason: decision.ReasonNotCompliant, Failures: notCompliant.Failures[:1]})
	_, _, body = get(t, link+"/status", "")
	json.Unmarshal([]byte(body), &j)
	if j["v"] == v1 {
		t.Fatal("version did not change with the failure list")
	}
	code, _, body = get(t, tp.sig.Link("alice@example.com", "ABC123", time.Now().Add(-time.Minute))+"/status", "")
	if code != 410 || !strings.Contains(body, `"expired"`) {
		t.Fatalf("expired status: %d %s", code, body)
	}
}

// A tampered or expired token shows a clear page and never reaches the registry; a token
// for one user's device never shows another's.
func TestPortalTokenPagesNeverLookUpOthers(t *testing.T) {
	tp := startPortal(t)
	tp.reg.put("alice@example.com", "ABC123", iphone, notCompliant)
	tp.reg.put("bob@example.com", "ABC123", pixel, notCompliant)
	link := tp.link("alice@example.com", "ABC123")
	tampered := link[:len(link)-3] + "AAA"
	code, _, body := get(t, tampered, "")
	if code != 403 || !strings.Contains(body, "This link is not valid") || strings.Contains(body, "Pixel") || strings.Contains(body, "iPhone") {
		t.Fatalf("tampered: %d", code)
	}
	code, _, body = get(t, tp.sig.Link("alice@example.com", "ABC123", time.Now().Add(-time.Second)), "de")
	if code != 410 || !strings.Contains(body, "Dieser Link ist abgelaufen") {
		t.Fatalf("expired: %d", code)
	}
	if len(tp.reg.calls) != 0 {
		t.Fatalf("registry consulted for bad tokens: %v", tp.reg.calls)
	}
	_, _, body = get(t, link, "")
	if !strings.Contains(body, "Alice&#39;s iPhone") || strings.Contains(body, "Pixel") {
		t.Fatal("page does not show exactly the token's device")
	}
	if code, _, _ := get(t, tp.link("carol@example.com", "NOPE"), ""); code != 404 {
		t.Fatalf("unknown device: %d, want 404", code)
	}
	if code, _, _ := get(t, tp.base+"/portal/other", ""); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
	tp.reg.mu.Lock()
	tp.reg.fail = true
	tp.reg.mu.Unlock()
	if code, _, body := get(t, link, ""); code != 503 || !strings.Contains(body, "cannot be checked") {
		t.Fatalf("registry down: %d", code)
	}
}

func TestPortalWipeShownAsBlocked(t *testing.T) {
	tp := startPortal(t)
	tp.reg.put("alice@example.com", "ABC123", iphone, wipePending)
	_, _, body := get(t, tp.link("alice@example.com", "ABC123"), "")
	if !strings.Contains(body, "cannot receive company email") || strings.Contains(strings.ToLower(body), "wipe") {
		t.Fatal("wipe-pending device page is not the blocked page")
	}
}

// The link in the quarantine message (built by this package's Signer through
// quarantine.Config.PortalLink) opens this device's page, in HTML and text alike.
func TestMessageLinkOpensPortal(t *testing.T) {
	tp := startPortal(t)
	tp.reg.put("alice@example.com", "ABC123", iphone, notCompliant)
	q, err := quarantine.New(quarantine.Config{PortalLink: tp.sig.Link})
	if err != nil {
		t.Fatal(err)
	}
	c, ok, err := q.Message(quarantine.MessageRequest{User: "alice@example.com", DeviceID: "ABC123", Device: &iphone, Lang: "en"},
		notCompliant, time.Now())
	if err != nil || !ok {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`http://127\.0\.0\.1:\d+/portal/d/[A-Za-z0-9_.-]+`).FindString(c.Text)
	if link == "" || !strings.Contains(c.HTML, `href="`+link+`"`) {
		t.Fatalf("no portal link in the message:\n%s", c.Text)
	}
	code, _, body := get(t, link, "")
	if code != 200 || !strings.Contains(body, "at least 6 characters") {
		t.Fatalf("message link: HTTP %d", code)
	}
}

// fakeWiper is a Config.Wipe that records its calls and answers with err.
type fakeWiper struct {
	mu    sync.Mutex
	err   error
	calls []string
}

func (w *fakeWiper) wipe(_ context.Context, user, deviceID string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, user+"/"+deviceID)
	return w.err
}

func (w *fakeWiper) called() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

// startWipePortal is startPortal with the wipe feature on; alice's iPhone is registered and
// not compliant.
func startWipePortal(t *testing.T) (*testPortal, *fakeWiper) {
	t.Helper()
	w := &fakeWiper{}
	tp := startPortal(t, func(c *Config) { c.Wipe = w.wipe })
	tp.reg.put("alice@example.com", "ABC123", iphone, notCompliant)
	return tp, w
}

// post sends a form (already url-encoded) with the extra headers hdr.
func post(t testing.TB, url, form string, hdr map[string]string) (int, *fasthttp.ResponseHeader, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.SetBodyString(form)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	h := &fasthttp.ResponseHeader{}
	resp.Header.CopyTo(h)
	return resp.StatusCode(), h, string(resp.Body())
}

var csrfField = regexp.MustCompile(`name="csrf" value="([A-Za-z0-9_-]+)"`)

// csrfOf returns the form token on a page, failing the test when there is none.
func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("page has no csrf field")
	}
	return m[1]
}

const doneText = "removed from the device the next time it connects"

// The device page offers the wipe in its own section, as a POST form to /wipe carrying the
// form token; a page with a form may post to 'self' and sends its origin on same-origin
// posts.
func TestWipeSectionOnDevicePage(t *testing.T) {
	tp, w := startWipePortal(t)
	link := tp.link("alice@example.com", "ABC123")
	code, h, body := get(t, link, "")
	if code != 200 || !strings.Contains(body, "Lost this device?") || !strings.Contains(body, "Erase company email from this device") {
		t.Fatalf("HTTP %d, no lost-device section", code)
	}
	tok := strings.TrimPrefix(link, tp.base+PathPrefix+"d/")
	if !strings.Contains(body, `<form method="post" action="/portal/d/`+tok+`/wipe">`) {
		t.Fatal("no POST form to the wipe URL")
	}
	if got := csrfOf(t, body); got != tp.sig.ActionMAC(tok, "wipe") {
		t.Fatalf("csrf %q is not the token's wipe MAC", got)
	}
	csp := string(h.Peek("Content-Security-Policy"))
	if !strings.Contains(csp, "form-action 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	if rp := string(h.Peek("Referrer-Policy")); rp != "same-origin" || !strings.Contains(body, `<meta name="referrer" content="same-origin">`) {
		t.Fatalf("Referrer-Policy %q on a form page", rp)
	}
	if len(w.called()) != 0 {
		t.Fatal("showing the page called the wipe hook")
	}
}

// Without a hook the feature does not exist: no section, the wipe URL is not found, and a
// form post is not allowed.
func TestWipeHiddenWithoutHook(t *testing.T) {
	tp := startPortal(t)
	tp.reg.put("alice@example.com", "ABC123", iphone, allowed)
	link := tp.link("alice@example.com", "ABC123")
	_, h, body := get(t, link, "")
	if strings.Contains(body, "Lost this device") || strings.Contains(body, "<form") ||
		!strings.Contains(string(h.Peek("Content-Security-Policy")), "form-action 'none'") {
		t.Fatal("wipe section shown without a hook")
	}
	if code, _, _ := get(t, link+"/wipe", ""); code != 404 {
		t.Fatalf("GET wipe without hook: %d, want 404", code)
	}
	csrf := tp.sig.ActionMAC(strings.TrimPrefix(link, tp.base+PathPrefix+"d/"), "wipe")
	if code, _, _ := post(t, link+"/wipe", "csrf="+csrf+"&confirm=yes", nil); code != 405 {
		t.Fatalf("POST wipe without hook: %d, want 405", code)
	}
}

// GET of the wipe URL, and the device page's button (a POST without confirm), only show
// "Are you sure?"; neither changes anything.
func TestWipeConfirmationChangesNothing(t *testing.T) {
	tp, w := startWipePortal(t)
	link := tp.link("alice@example.com", "ABC123")
	code, h, body := get(t, link+"/wipe", "")
	if code != 200 || !strings.Contains(body, "Are you sure") || !strings.Contains(body, "Alice&#39;s iPhone") ||
		!strings.Contains(body, `name="confirm" value="yes"`) || !strings.Contains(body, "Yes, erase company email") {
		t.Fatalf("GET wipe: %d\n%s", code, body)
	}
	if !strings.Contains(string(h.Peek("Content-Security-Policy")), "form-action 'self'") {
		t.Fatal("confirmation page CSP forbids its form")
	}
	csrf := csrfOf(t, body)
	code, _, body = post(t, link+"/wipe", "csrf="+csrf, map[string]string{"Origin": tp.base})
	if code != 200 || !strings.Contains(body, "Are you sure") {
		t.Fatalf("POST without confirm: %d", code)
	}
	code, _, body = post(t, link+"/wipe", "csrf="+csrf+"&confirm=no", map[string]string{"Origin": tp.base})
	if code != 200 || !strings.Contains(body, "Are you sure") {
		t.Fatalf("POST confirm=no: %d", code)
	}
	if len(w.called()) != 0 {
		t.Fatalf("wipe requested without confirmation: %v", w.called())
	}
}

// A confirmed POST with the form token from this origin requests the wipe for exactly the
// token's user and device, and says what happens next — in English and German.
func TestWipeConfirmedPost(t *testing.T) {
	tp, w := startWipePortal(t)
	link := tp.link("alice@example.com", "ABC123")
	csrf := tp.sig.ActionMAC(strings.TrimPrefix(link, tp.base+PathPrefix+"d/"), "wipe")
	code, _, body := post(t, link+"/wipe", "csrf="+csrf+"&confirm=yes", map[string]string{"Origin": tp.base})
	if code != 200 || !strings.Contains(body, "Company email will be erased from this device") || !strings.Contains(body, doneText) {
		t.Fatalf("confirmed POST: %d\n%s", code, body)
	}
	if got := w.called(); len(got) != 1 || got[0] != "alice@example.com/ABC123" {
		t.Fatalf("hook calls %v", got)
	}
	// German, Referer instead of Origin (older browsers), and the origin's spelling as a
	// browser normalises it.
	tp.reg.put("bob@example.com", "P8", pixel, allowed)
	link = tp.link("bob@example.com", "P8")
	csrf = tp.sig.ActionMAC(strings.TrimPrefix(link, tp.base+PathPrefix+"d/"), "wipe")
	code, _, body = post(t, link+"/wipe", "csrf="+csrf+"&confirm=yes",
		map[string]string{"Referer": strings.ToUpper(tp.base[:7]) + tp.base[7:] + "/portal/d/x/wipe", "Accept-Language": "de"})
	if code != 200 || !strings.Contains(body, "Das Firmenkonto wird vom Gerät entfernt, sobald es sich das nächste Mal verbindet") {
		t.Fatalf("German confirmed POST: %d\n%s", code, body)
	}
	if got := w.called(); len(got) != 2 || got[1] != "bob@example.com/P8" {
		t.Fatalf("hook calls %v", got)
	}
	if WipeActor("alice@example.com") != "portal:alice@example.com" {
		t.Fatal("WipeActor")
	}
}

// Regression: a cross-site form post (no or a wrong form token, a foreign or opaque
// Origin or Referer) is refused with 403 before the registry or the hook is reached.
func TestWipeCSRFRefused(t *testing.T) {
	tp, w := startWipePortal(t)
	link := tp.link("alice@example.com", "ABC123")
	tok := strings.TrimPrefix(link, tp.base+PathPrefix+"d/")
	good := tp.sig.ActionMAC(tok, "wipe")
	other := tp.sig.ActionMAC(strings.TrimPrefix(tp.link("bob@example.com", "P8"), tp.base+PathPrefix+"d/"), "wipe")
	flipped := []byte(good)
	flipped[0] ^= 1
	cases := []struct {
		name, form string
		hdr        map[string]string
	}{
		{"no csrf", "confirm=yes", map[string]string{"Origin": tp.base}},
		{"empty csrf", "csrf=&confirm=yes", map[string]string{"Origin": tp.base}},
		{"garbage csrf", "csrf=not-a-mac&confirm=yes", map[string]string{"Origin": tp.base}},
		{"flipped csrf", "csrf=" + string(flipped) + "&confirm=yes", map[string]string{"Origin": tp.base}},
		{"other token's csrf", "csrf=" + other + "&confirm=yes", map[string]string{"Origin": tp.base}},
		{"link token as csrf", "csrf=" + tok[strings.IndexByte(tok, '.')+1:] + "&confirm=yes", nil},
		{"other action's csrf", "csrf=" + tp.sig.ActionMAC(tok, "status") + "&confirm=yes", nil},
		{"foreign origin", "csrf=" + good + "&confirm=yes", map[string]string{"Origin": "https://evil.example"}},
		{"other port", "csrf=" + good + "&confirm=yes", map[string]string{"Origin": "http://127.0.0.1:1"}},
		{"null origin", "csrf=" + good + "&confirm=yes", map[string]string{"Origin": "null"}},
		{"foreign referer", "csrf=" + good + "&confirm=yes", map[string]string{"Referer": "https://evil.example/x"}},
		{"foreign origin, own referer", "csrf=" + good + "&confirm=yes",
			map[string]string{"Origin": "https://evil.example", "Referer": link}},
		{"oversized body", "csrf=" + good + "&confirm=yes&pad=" + strings.Repeat("a", MaxWipeFormBytes), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := post(t, link+"/wipe", tc.form, tc.hdr)
			if code != 403 || !strings.Contains(body, "could not be verified") || !strings.Contains(body, "Nothing was changed") {
				t.Fatalf("HTTP %d\n%s", code, body)
			}
		})
	}
	if len(w.called()) != 0 || len(tp.reg.calls) != 0 {
		t.Fatalf("forged posts reached the hook %v or the registry %v", w.called(), tp.reg.calls)
	}
	// The same post with the right token and origin goes through.
	if code, _, _ := post(t, link+"/wipe", "csrf="+good+"&confirm=yes", map[string]string{"Origin": tp.base}); code != 200 || len(w.called()) != 1 {
		t.Fatalf("genuine post after the forged ones: %d", code)
	}
}

// Regression: an expired or tampered link token is refused on the wipe URL exactly like on
// the page (410 / 403), even with a form token minted for it, and reaches nothing.
func TestWipeBadTokenRefused(t *testing.T) {
	tp, w := startWipePortal(t)
	expired := tp.sig.Link("alice@example.com", "ABC123", time.Now().Add(-time.Second))
	etok := strings.TrimPrefix(expired, tp.base+PathPrefix+"d/")
	good := tp.link("alice@example.com", "ABC123")
	tampered := good[:len(good)-3] + "AAA"
	ttok := strings.TrimPrefix(tampered, tp.base+PathPrefix+"d/")
	for _, tc := range []struct {
		name, url, tok, want string
		code                 int
	}{
		{"expired", expired, etok, "This link has expired", 410},
		{"tampered", tampered, ttok, "This link is not valid", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pageCode, _, pageBody := get(t, tc.url, "")
			code, _, body := get(t, tc.url+"/wipe", "")
			if code != tc.code || pageCode != tc.code || !strings.Contains(body, tc.want) || !strings.Contains(pageBody, tc.want) {
				t.Fatalf("GET wipe %d / page %d, want %d %q", code, pageCode, tc.code, tc.want)
			}
			code, _, body = post(t, tc.url+"/wipe", "csrf="+tp.sig.ActionMAC(tc.tok, "wipe")+"&confirm=yes",
				map[string]string{"Origin": tp.base})
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("POST wipe %d", code)
			}
		})
	}
	if len(w.called()) != 0 || len(tp.reg.calls) != 0 {
		t.Fatalf("bad tokens reached the hook %v or the registry %v", w.called(), tp.reg.calls)
	}
}

// When the hook's policy refuses an account-only wipe (the device speaks EAS < 16.1), the
// user is sent to IT; a failing hook asks to try again. Neither claims a wipe.
func TestWipeRefusedShowsContactIT(t *testing.T) {
	tp, w := startWipePortal(t)
	link := tp.link("alice@example.com", "ABC123")
	csrf := tp.sig.ActionMAC(strings.TrimPrefix(link, tp.base+PathPrefix+"d/"), "wipe")
	w.err = fmt.Errorf("gateway: %w: the device speaks EAS 14.1", ErrWipeRefused)
	code, _, body := post(t, link+"/wipe", "csrf="+csrf+"&confirm=yes", map[string]string{"Origin": tp.base})
	if code != 409 || !strings.Contains(body, "Please contact your IT department") || !strings.Contains(body, "nothing was changed") ||
		strings.Contains(body, doneText) || strings.Contains(body, "14.1") {
		t.Fatalf("refused: %d\n%s", code, body)
	}
	_, _, body = post(t, link+"/wipe", "csrf="+csrf+"&confirm=yes", map[string]string{"Origin": tp.base, "Accept-Language": "de"})
	if !strings.Contains(body, "Bitte wenden Sie sich an Ihre IT-Abteilung") {
		t.Fatal("German contact-IT page")
	}
	w.err = errors.New("decision: store timeout")
	code, _, body = post(t, link+"/wipe", "csrf="+csrf+"&confirm=yes", map[string]string{"Origin": tp.base})
	if code != 503 || !strings.Contains(body, "could not be completed") || strings.Contains(body, "store timeout") || strings.Contains(body, doneText) {
		t.Fatalf("hook failure: %d\n%s", code, body)
	}
	if len(w.called()) != 3 {
		t.Fatalf("hook calls %v", w.called())
	}
}

// A blocked device — which includes one whose wipe is pending — is never offered the wipe,
// and its page is byte for byte the admin-blocked page, so the page still never reveals a
// wipe. Its wipe URL sends the user to IT without calling the hook.
func TestWipeNotOfferedForBlockedOrPending(t *testing.T) {
	tp, w := startWipePortal(t)
	tp.reg.put("alice@example.com", "BLK", iphone, blocked)
	pending := iphone
	pending.Wipe = decision.WipeState{Kind: decision.WipeAccountOnly, Status: decision.WipePending}
	tp.reg.put("alice@example.com", "PEND", pending, wipePending)
	nonce := regexp.MustCompile(`nonce="[^"]+"`)
	var pages []string
	for _, dev := range []string{"BLK", "PEND"} {
		link := tp.link("alice@example.com", dev)
		code, h, body := get(t, link, "")
		if code != 200 || strings.Contains(body, "Lost this device") || strings.Contains(strings.ToLower(body), "wipe") ||
			!strings.Contains(string(h.Peek("Content-Security-Policy")), "form-action 'none'") {
			t.Fatalf("%s: wipe offered on a blocked page", dev)
		}
		tok := strings.TrimPrefix(link, tp.base+PathPrefix+"d/")
		pages = append(pages, strings.ReplaceAll(nonce.ReplaceAllString(body, ""), tok, "TOKEN"))
		if code, _, body := get(t, link+"/wipe", ""); code != 409 || !strings.Contains(body, "contact your IT department") {
			t.Fatalf("%s: GET wipe %d", dev, code)
		}
		csrf := tp.sig.ActionMAC(strings.TrimPrefix(link, tp.base+PathPrefix+"d/"), "wipe")
		if code, _, body := post(t, link+"/wipe", "csrf="+csrf+"&confirm=yes", map[string]string{"Origin": tp.base}); code != 409 ||
			!strings.Contains(body, "contact your IT department") || strings.Contains(body, doneText) {
			t.Fatalf("%s: POST wipe %d", dev, code)
		}
	}
	if pages[0] != pages[1] {
		t.Fatalf("a wipe-pending device's page differs from an admin-blocked one:\n%s\n---\n%s", pages[0], pages[1])
	}
	// Unknown device and registry failure.
	if code, _, _ := get(t, tp.link("carol@example.com", "NOPE")+"/wipe", ""); code != 404 {
		t.Fatalf("unknown device: %d", code)
	}
	tp.reg.mu.Lock()
	tp.reg.fail = true
	tp.reg.mu.Unlock()
	if code, _, _ := get(t, tp.link("alice@example.com", "ABC123")+"/wipe", ""); code != 503 {
		t.Fatalf("registry down: %d", code)
	}
	if len(w.called()) != 0 {
		t.Fatalf("hook called for devices not offered the wipe: %v", w.called())
	}
}

func TestOriginOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://Mail.Example.com":         "https://mail.example.com",
		"https://mail.example.com:443/x?y": "https://mail.example.com",
		"http://127.0.0.1:8080/portal/d/t": "http://127.0.0.1:8080",
		"HTTP://host:80":                   "http://host",
		"http://[::1]:9000/":               "http://[::1]:9000",
		"null":                             "",
		"ftp://host":                       "",
		"https://user@host":                "",
	} {
		got, ok := originOf(in)
		if got != want || ok != (want != "") {
			t.Errorf("originOf(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
