package portal

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/quarantine"
)

// WipeFunc requests an account-only remote wipe (MS-ASPROV AccountOnlyRemoteWipe, EAS 16.1)
// of user's device deviceID because the user asked for it on the portal. It must record the
// request with the actor WipeActor(user). The portal has already verified the link token,
// the form token and the origin, and checked that the device is known and neither blocked
// nor already being wiped.
//
// The portal promises the user that only the company account leaves the device, so a
// WipeFunc must never fall back to a full wipe: when an account-only wipe is not possible
// for the device (it speaks EAS older than 16.1, say), it changes nothing and returns an
// error wrapping ErrWipeRefused, and the user is told to contact IT. Any other error is
// shown as "try again later". ctx is bounded by Config.LookupTimeout.
type WipeFunc func(ctx context.Context, user, deviceID string) error

// ErrWipeRefused is returned (wrapped) by a WipeFunc that will not wipe this device from the
// portal; the user is sent to IT and nothing changes.
var ErrWipeRefused = errors.New("portal: wipe refused for this device")

// WipeActor is the audit actor of a wipe the user requested on the portal: "portal:<user>".
func WipeActor(user string) string { return "portal:" + user }

// wipeAction is what the wipe form token (Signer.ActionMAC) is bound to, beside the link
// token.
const wipeAction = "wipe"

// MaxWipeFormBytes bounds the body of a wipe form post; a larger one is refused unread.
const MaxWipeFormBytes = 4 << 10

// wipeAllowed reports whether the device page may offer the wipe. A blocked device — which
// includes one whose wipe is pending or done — never offers it, so that the blocked page
// looks the same whether or not a wipe is under way (a page never reveals a wipe).
func wipeAllowed(state string, dev *decision.Device) bool {
	switch state {
	case StateNotCompliant, StateNotEnrolled, StatePendingApproval, StateReleased:
	default:
		return false
	}
	return dev.Wipe.Status != decision.WipePending && dev.Wipe.Status != decision.WipeDelivered
}

// wipe serves /portal/d/<token>/wipe for a verified token. GET and HEAD, and a POST without
// confirm=yes (the device page's button), show the confirmation page and change nothing.
// A POST must come from this origin and carry the form token before the registry is even
// asked; only a confirmed one calls Config.Wipe.
func (p *Portal) wipe(ctx *fasthttp.RequestCtx, data *pageData, tok, user, deviceID string) {
	post := ctx.IsPost()
	if post {
		if len(ctx.Request.Body()) > MaxWipeFormBytes || !p.sameOrigin(&ctx.Request.Header) ||
			!p.cfg.Signer.VerifyAction(tok, wipeAction, string(ctx.PostArgs().Peek("csrf"))) {
			p.cfg.Log.Warn("portal wipe post refused: foreign origin or bad form token",
				slog.String("user", user), slog.String("device", deviceID),
				slog.String("origin", string(ctx.Request.Header.Peek("Origin"))))
			data.Kind = "forbidden"
			p.write(ctx, fasthttp.StatusForbidden, data)
			return
		}
	}
	dev, d, err := p.lookup(user, deviceID)
	switch {
	case errors.Is(err, ErrUnknownDevice):
		data.Kind = "invalid"
		p.write(ctx, fasthttp.StatusNotFound, data)
		return
	case err != nil:
		p.cfg.Log.Warn("portal lookup failed", slog.String("err", err.Error()))
		data.Kind = "wipe-failed"
		p.write(ctx, fasthttp.StatusServiceUnavailable, data)
		return
	}
	if !wipeAllowed(State(d), &dev) {
		data.Kind = "wipe-refused"
		p.write(ctx, fasthttp.StatusConflict, data)
		return
	}
	data.DeviceName = quarantine.DeviceName(&dev, dev.DeviceType, deviceID)
	if !post || string(ctx.PostArgs().Peek("confirm")) != "yes" {
		data.Kind, data.Form = "wipe-confirm", true
		data.PageURL = PathPrefix + "d/" + tok
		data.WipeURL = data.PageURL + "/wipe"
		data.CSRF = p.cfg.Signer.ActionMAC(tok, wipeAction)
		p.write(ctx, fasthttp.StatusOK, data)
		return
	}
	wctx, cancel := context.WithTimeout(context.Background(), p.cfg.LookupTimeout)
	err = p.cfg.Wipe(wctx, user, deviceID)
	cancel()
	code := fasthttp.StatusOK
	switch {
	case err == nil:
		data.Kind = "wipe-done"
		p.cfg.Log.Info("portal: user requested an account-only wipe",
			slog.String("user", user), slog.String("device", deviceID))
	case errors.Is(err, ErrWipeRefused):
		data.Kind, code = "wipe-refused", fasthttp.StatusConflict
		p.cfg.Log.Info("portal wipe refused", slog.String("user", user),
			slog.String("device", deviceID), slog.String("err", err.Error()))
	default:
		data.Kind, code = "wipe-failed", fasthttp.StatusServiceUnavailable
		p.cfg.Log.Warn("portal wipe failed", slog.String("user", user),
			slog.String("device", deviceID), slog.String("err", err.Error()))
	}
	p.write(ctx, code, data)
}

// sameOrigin checks a form post's Origin header, or its Referer when there is no Origin,
// against the portal's origin. "Origin: null" (sandboxed or opaque origins) never matches.
// A request with neither header (a non-browser client) passes; the form token still holds.
func (p *Portal) sameOrigin(h *fasthttp.RequestHeader) bool {
	if o := h.Peek("Origin"); len(o) > 0 {
		got, ok := originOf(string(o))
		return ok && got == p.origin
	}
	if r := h.Referer(); len(r) > 0 {
		got, ok := originOf(string(r))
		return ok && got == p.origin
	}
	return true
}

// originOf returns the ASCII serialisation of raw's origin as a browser sends it:
// lower-case scheme and host, default port dropped.
func originOf(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}
