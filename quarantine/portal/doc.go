// Package portal serves the remediation page a quarantined user opens from the link in the
// quarantine message: /portal/d/<token>.
//
// The token is HMAC-SHA256 over the user, the device id and an expiry, keyed by a secret
// from the configuration (Signer), verified in constant time before anything it says is
// believed. A tampered token gets a "not valid" page (HTTP 403) and an expired one an
// "expired" page (410); neither reaches the registry, and a valid token only ever shows
// the device it was issued for.
//
// The page shows the device (friendly name, model, OS), its state — not compliant (each
// failing rule with how to fix it, worded by the quarantine templates), not enrolled (the
// enrolment link), waiting for approval, blocked (also shown for a pending wipe, which the
// page never reveals), or compliant ("mail will arrive in a moment") — and updates by
// itself: a few lines of inline script poll /portal/d/<token>/status, a same-origin JSON
// endpoint, and reload the page when the state changes; without script, a meta refresh
// inside <noscript> does the same.
//
// Pages are plain semantic HTML with a lang attribute, one column that fits a phone, system
// fonts and AA-contrast colours, and no third-party assets. Every response carries
// Cache-Control: no-store, Referrer-Policy: no-referrer (the URL holds the token),
// X-Frame-Options: DENY and a Content-Security-Policy of default-src 'none' that admits
// the page's inline style and script by a per-response nonce and fetches to 'self' only.
//
// # Lost device (MS-ASPROV AccountOnlyRemoteWipe)
//
// With Config.Wipe set, the device page of a device that is not blocked (blocked includes
// wipe-pending and wiped, so the blocked page stays identical and never reveals a wipe)
// has a separate "Lost this device?" section: a script-free POST form to
// /portal/d/<token>/wipe. That post, or a GET of the URL, only shows "Are you sure?"; the
// confirmation page's own POST (confirm=yes) calls the WipeFunc, which requests an
// account-only wipe or refuses with ErrWipeRefused ("contact IT", nothing changed). A post
// must carry the form token Signer.ActionMAC(token, "wipe"), checked in constant time, and
// its Origin (else Referer), when present, must be the Signer's origin; both are checked
// before the registry is asked. Form pages get CSP form-action 'self' and
// Referrer-Policy same-origin — under no-referrer a browser posts "Origin: null".
//
// # Wiring
//
// Portal.Handler is a fasthttp.RequestHandler; the gateway routes every path under
// PathPrefix ("/portal/") of the client listener to it. The Lookup is the gateway's: it
// reads the registry record and the decision in force (decision engine), returning
// ErrUnknownDevice for a device the registry does not have. The Signer's Link method is
// what quarantine.Config.PortalLink expects, so message and page agree.
package portal
