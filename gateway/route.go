package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// route is one of the client listener's endpoints. Anything else is routeNone and gets 404.
type route uint8

const (
	routeNone route = iota
	routeEAS
	routeAutodiscover
	routeOAuthToken
	routeOAuthJWKS
	routeOAuthMetadata
	routePortal
)

// Canonical paths. Matching is ASCII case-insensitive (clients differ in the case of
// "Autodiscover" and some proxies lower-case paths) and otherwise exact: the raw request target
// is matched before any decoding, so percent-encoding, "..", "//", backslashes, a fragment or a
// trailing slash never reach a route or the upstream by another spelling. The upstream path is
// never taken from the client: backends build it from their configuration.
var routes = []struct {
	path  string
	route route
}{
	{"/Microsoft-Server-ActiveSync", routeEAS},
	{"/autodiscover/autodiscover.xml", routeAutodiscover},
	{"/oauth/token", routeOAuthToken},
	{"/oauth/jwks", routeOAuthJWKS},
	{"/.well-known/oauth-authorization-server", routeOAuthMetadata},
}

const portalPrefix = "/portal/"

// matchRoute classifies the raw request target (path plus optional query, exactly as received).
// It returns the route and the raw query (aliasing target).
func matchRoute(target []byte) (route, []byte) {
	path, query := target, []byte(nil)
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i+1:]
	}
	if !cleanPath(path) {
		return routeNone, nil
	}
	for _, r := range routes {
		if len(path) == len(r.path) && asciiEqualFold(path, r.path) {
			return r.route, query
		}
	}
	if len(path) >= len(portalPrefix) && asciiEqualFold(path[:len(portalPrefix)], portalPrefix) {
		return routePortal, query
	}
	return routeNone, nil
}

// cleanPath reports whether p is an absolute path made only of unreserved characters and single
// slashes, with no dot segments. A request target in absolute-form ("http://host/...") is
// refused: the gateway is not a forward proxy.
func cleanPath(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '~':
		case c == '.':
			// A dot segment is "." or ".." between slashes (or at the end).
			if p[i-1] == '/' && (i+1 == len(p) || p[i+1] == '/' || (p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/'))) {
				return false
			}
		case c == '/':
			if i > 0 && p[i-1] == '/' {
				return false
			}
		default: // '%', '\\', ';', '#', control bytes, non-ASCII ...
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

var errAmbiguousFraming = &httpError{status: 400, text: "ambiguous message framing"}

// checkFraming refuses requests whose framing an upstream or a front proxy could read
// differently (RFC 9112 6.1, 5.2): Transfer-Encoding together with Content-Length, and
// obs-fold header continuation lines. fasthttp already refuses bad chunking, duplicate
// Content-Length and bare CR; these two it tolerates. The gateway re-frames everything it
// forwards, so this guards the devices' path through any proxy in front of it.
func checkFraming(h *fasthttp.RequestHeader) error {
	raw := h.RawHeaders()
	if containsFoldHeader(raw, "transfer-encoding:") && containsFoldHeader(raw, "content-length:") {
		return errAmbiguousFraming
	}
	if bytes.Contains(raw, []byte("\n ")) || bytes.Contains(raw, []byte("\n\t")) {
		return errAmbiguousFraming
	}
	return nil
}

// containsFoldHeader reports whether raw headers contain a line starting with name (ASCII
// case-insensitive).
func containsFoldHeader(raw []byte, name string) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) >= len(name) && asciiEqualFold(line[:len(name)], name) {
			return true
		}
	}
	return false
}
