package portal

import (
	"context"
	"encoding/json"
	"errors"
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
}

// startPortal serves a Portal from an in-process fasthttp server on 127.0.0.1.
func startPortal(t testing.TB) *testPortal {
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
	tp.p, err = New(Config{Signer: sig, Lookup: tp.reg, Renderer: r, EnrollURL: "https://mdm.example.com/enrol",
		Organization: "Example IT", PollInterval: 150 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: tp.p.Handler, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
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
