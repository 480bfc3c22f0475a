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
// # Wiring
//
// Portal.Handler is a fasthttp.RequestHandler; the gateway routes every path under
// PathPrefix ("/portal/") of the client listener to it. The Lookup is the gateway's: it
// reads the registry record and the decision in force (decision engine), returning
// ErrUnknownDevice for a device the registry does not have. The Signer's Link method is
// what quarantine.Config.PortalLink expects, so message and page agree.
package portal
