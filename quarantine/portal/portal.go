package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/quarantine"
)

// PathPrefix is where the portal is mounted on the client listener.
const PathPrefix = "/portal/"

// Lookup reads a device and the decision currently in force for it. The gateway implements
// it over the decision engine (the registry record and a fresh Decide). It must return
// ErrUnknownDevice when the registry has no such device.
type Lookup interface {
	Lookup(ctx context.Context, user, deviceID string) (decision.Device, decision.Decision, error)
}

// LookupFunc adapts a function to Lookup.
type LookupFunc func(ctx context.Context, user, deviceID string) (decision.Device, decision.Decision, error)

// Lookup calls f.
func (f LookupFunc) Lookup(ctx context.Context, user, deviceID string) (decision.Device, decision.Decision, error) {
	return f(ctx, user, deviceID)
}

// ErrUnknownDevice is what a Lookup returns for a device the registry does not have.
var ErrUnknownDevice = errors.New("portal: unknown device")

// Config configures a Portal. Zero values take the documented defaults.
type Config struct {
	Signer *Signer // required
	Lookup Lookup  // required
	// Renderer words the failing rules exactly as the quarantine message does; required.
	Renderer *quarantine.Renderer
	// EnrollURL is the enrolment page shown to a device that is not enrolled.
	EnrollURL string
	// Organization is shown in the page header. Default "IT".
	Organization string
	// PollInterval is how often the page asks for the device's state. Default 5s.
	PollInterval time.Duration
	// LookupTimeout bounds one Lookup. Default 3s.
	LookupTimeout time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
	// Log receives lookup failures and wipe requests. Default slog.Default().
	Log *slog.Logger
	// Wipe, when set, lets the user erase company email from their own lost device: the
	// device page gets a "Lost this device?" section and /portal/d/<token>/wipe is served
	// (see WipeFunc). Nil hides the feature and the path answers 404. Owned by the caller.
	Wipe WipeFunc
}

// Portal serves the remediation pages under PathPrefix:
//
//	GET /portal/d/<token>         the device page (HTML)
//	GET /portal/d/<token>/status  its state as JSON: {"state": "...", "v": "..."}
//	GET, POST /portal/d/<token>/wipe  the user's own account-only wipe (only with Config.Wipe)
//
// The page polls the status endpoint with a few lines of inline script (allowed by a
// per-response CSP nonce) and reloads itself when the state changes; without script a
// meta refresh does the same. Responses are never cached. Every page answers from the
// token's user and device only. It is safe for concurrent use.
type Portal struct {
	cfg    Config
	page   *template.Template
	origin string // the Signer's base origin, what a same-origin form post's Origin says
}

// New validates cfg and returns a Portal.
func New(cfg Config) (*Portal, error) {
	var errs []error
	if cfg.Signer == nil {
		errs = append(errs, errors.New("portal: Signer is required"))
	}
	if cfg.Lookup == nil {
		errs = append(errs, errors.New("portal: Lookup is required"))
	}
	if cfg.Renderer == nil {
		errs = append(errs, errors.New("portal: Renderer is required"))
	}
	if cfg.PollInterval < 0 || cfg.LookupTimeout < 0 {
		errs = append(errs, errors.New("portal: intervals must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Organization == "" {
		cfg.Organization = "IT"
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = 3 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	t, err := template.New("page").Parse(pageTemplate)
	if err != nil {
		return nil, err
	}
	origin, ok := originOf(cfg.Signer.base)
	if !ok {
		return nil, errors.New("portal: the Signer's base URL has no usable origin")
	}
	return &Portal{cfg: cfg, page: t, origin: origin}, nil
}

// States a page can show.
const (
	StateNotCompliant    = "not_compliant"
	StateNotEnrolled     = "not_enrolled"
	StatePendingApproval = "pending_approval"
	StateBlocked         = "blocked" // also wipe-pending: a page never reveals a wipe
	StateReleased        = "released"
	StateUnavailable     = "unavailable"
)

// State maps a decision to the state the page shows.
func State(d decision.Decision) string {
	switch d.Action {
	case decision.Allow:
		return StateReleased
	case decision.Quarantine:
		c, _ := quarantine.CauseOf(d)
		switch c {
		case quarantine.CauseNotCompliant:
			return StateNotCompliant
		case quarantine.CauseNotEnrolled:
			return StateNotEnrolled
		}
		return StatePendingApproval
	}
	return StateBlocked
}

type pageData struct {
	Lang, Nonce  string
	T            *text
	Organization string
	Kind         string // "device", "invalid", "expired", "notfound"
	State        string
	StateName    string
	Version      string
	Poll         bool
	PollURL      string
	PollMillis   int64
	RefreshSecs  int64
	DeviceName   string
	Model, OS    string
	DeviceType   string
	Fixes        []string
	EnrollURL    string
	// Form pages (the wipe section and its confirmation) need CSP form-action 'self' and a
	// same-origin referrer policy, so that the browser's POST carries the real Origin.
	Form     bool
	Referrer string
	ShowWipe bool   // the device page's "Lost this device?" section
	PageURL  string // the device page (the confirmation's cancel link)
	WipeURL  string
	CSRF     string // Signer.ActionMAC(token, "wipe")
}

// Handler serves one request; it is a fasthttp.RequestHandler. Paths outside PathPrefix get
// the not-found page.
func (p *Portal) Handler(ctx *fasthttp.RequestCtx) {
	lang := quarantine.NegotiateLanguage(0, string(ctx.Request.Header.Peek("Accept-Language")),
		[]string{"de", "en"}, "en")
	data := pageData{Lang: lang, T: texts[lang], Organization: p.cfg.Organization}
	rest, ok := strings.CutPrefix(string(ctx.Path()), PathPrefix+"d/")
	tok, status := strings.CutSuffix(rest, "/status")
	wipe := false
	if !status && p.cfg.Wipe != nil {
		tok, wipe = strings.CutSuffix(rest, "/wipe")
	}
	allow := "GET, HEAD"
	if wipe {
		allow = "GET, HEAD, POST"
	}
	if !ctx.IsGet() && !ctx.IsHead() && !(wipe && ctx.IsPost()) {
		ctx.Response.Header.Set("Allow", allow)
		data.Kind = "notfound"
		p.write(ctx, fasthttp.StatusMethodNotAllowed, &data)
		return
	}
	if !ok || strings.Contains(tok, "/") {
		data.Kind = "notfound"
		p.write(ctx, fasthttp.StatusNotFound, &data)
		return
	}
	user, deviceID, _, err := p.cfg.Signer.Verify(tok, p.cfg.Now())
	if err != nil {
		code := fasthttp.StatusForbidden
		data.Kind = "invalid"
		if errors.Is(err, ErrTokenExpired) {
			code, data.Kind = fasthttp.StatusGone, "expired"
		}
		if status {
			p.writeJSON(ctx, code, map[string]string{"state": data.Kind})
			return
		}
		p.write(ctx, code, &data)
		return
	}
	if wipe {
		p.wipe(ctx, &data, tok, user, deviceID)
		return
	}
	dev, d, err := p.lookup(user, deviceID)
	data.Kind = "device"
	code := fasthttp.StatusOK
	switch {
	case errors.Is(err, ErrUnknownDevice):
		data.Kind = "invalid"
		code = fasthttp.StatusNotFound
	case err != nil:
		p.cfg.Log.Warn("portal lookup failed", slog.String("err", err.Error()))
		data.State = StateUnavailable
		code = fasthttp.StatusServiceUnavailable
	default:
		data.State = State(d)
		if data.State == StateNotCompliant {
			for _, f := range d.Failures {
				fix, ferr := p.cfg.Renderer.Fix(lang, f)
				if ferr != nil {
					fix = string(f.Rule)
				}
				data.Fixes = append(data.Fixes, fix)
			}
		}
	}
	data.Version = stateVersion(data.State, d.Failures)
	if status {
		if data.Kind != "device" {
			p.writeJSON(ctx, code, map[string]string{"state": data.Kind})
			return
		}
		p.writeJSON(ctx, code, map[string]string{"state": data.State, "v": data.Version})
		return
	}
	if data.Kind == "device" {
		data.StateName = data.T.StateNames[data.State]
		data.DeviceName = quarantine.DeviceName(&dev, dev.DeviceType, deviceID)
		data.Model, data.OS, data.DeviceType = dev.Info.Model, dev.Info.OS, dev.DeviceType
		data.EnrollURL = p.cfg.EnrollURL
		if data.State != StateReleased {
			data.Poll = true
			data.PollURL = PathPrefix + "d/" + tok + "/status"
			data.PollMillis = p.cfg.PollInterval.Milliseconds()
			data.RefreshSecs = max(int64(p.cfg.PollInterval/time.Second)*6, 30)
		}
		if p.cfg.Wipe != nil && wipeAllowed(data.State, &dev) {
			data.ShowWipe, data.Form = true, true
			data.WipeURL = PathPrefix + "d/" + tok + "/wipe"
			data.CSRF = p.cfg.Signer.ActionMAC(tok, wipeAction)
		}
	}
	p.write(ctx, code, &data)
}

// lookup asks the registry, bounded by LookupTimeout.
func (p *Portal) lookup(user, deviceID string) (decision.Device, decision.Decision, error) {
	lctx, cancel := context.WithTimeout(context.Background(), p.cfg.LookupTimeout)
	defer cancel()
	return p.cfg.Lookup.Lookup(lctx, user, deviceID)
}

// stateVersion identifies what the page shows, so the script can tell a change.
func stateVersion(state string, failures []decision.Failure) string {
	h := sha256.New()
	h.Write([]byte(state))
	if state == StateNotCompliant {
		for _, f := range failures {
			h.Write([]byte{0})
			h.Write([]byte(string(f.Rule) + "\x00" + f.Want + "\x00" + f.Have))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// securityHeaders marks every response personal and locks the page down: nothing cached,
// no framing, no referrer (the URL holds the token), and a CSP that allows only the
// page's own inline style and script by nonce and same-origin fetches. A page with a form
// (form) may post to its own origin, and sends its referrer to its own origin only: with
// "no-referrer" a browser posts "Origin: null", which the wipe's origin check refuses.
func securityHeaders(h *fasthttp.ResponseHeader, nonce string, form bool) {
	h.Set("Cache-Control", "no-store, private")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", referrerPolicy(form))
	h.Set("X-Frame-Options", "DENY")
	formAction := "'none'"
	if form {
		formAction = "'self'"
	}
	csp := "default-src 'none'; connect-src 'self'; base-uri 'none'; form-action " + formAction + "; frame-ancestors 'none'"
	if nonce != "" {
		csp += "; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce + "'"
	}
	h.Set("Content-Security-Policy", csp)
}

func (p *Portal) write(ctx *fasthttp.RequestCtx, code int, data *pageData) {
	var nb [18]byte
	_, _ = rand.Read(nb[:])
	data.Nonce = base64.RawURLEncoding.EncodeToString(nb[:]) // CSP base64-value; no "+" for html/template to escape
	data.Referrer = referrerPolicy(data.Form)
	var b strings.Builder
	if err := p.page.Execute(&b, data); err != nil {
		p.cfg.Log.Error("portal page", slog.String("err", err.Error()))
		ctx.Response.Reset()
		securityHeaders(&ctx.Response.Header, "", false)
		ctx.Error("internal error", fasthttp.StatusInternalServerError)
		return
	}
	securityHeaders(&ctx.Response.Header, data.Nonce, data.Form)
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Content-Language", data.Lang)
	ctx.SetBodyString(b.String())
}

func referrerPolicy(form bool) string {
	if form {
		return "same-origin"
	}
	return "no-referrer"
}

func (p *Portal) writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	b, _ := json.Marshal(v)
	securityHeaders(&ctx.Response.Header, "", false)
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

var _ fasthttp.RequestHandler = (*Portal)(nil).Handler
