package oauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
)

// Limits bound what the package reads from the network before any cryptography runs.
// The zero value of each field means its default.
type Limits struct {
	// MaxAuthorizationBytes caps the whole Authorization header value; larger headers are
	// refused with invalid_request before anything is decoded. Default 16 KiB, which fits
	// Entra tokens carrying group claims (Entra switches to group overage past 200 groups).
	MaxAuthorizationBytes int
	// MaxHeaderSegmentBytes caps the base64url JOSE header segment. Default 2 KiB.
	MaxHeaderSegmentBytes int
	// MaxKidBytes caps the kid header. Default 256.
	MaxKidBytes int
}

// Default limits.
const (
	DefaultMaxAuthorizationBytes = 16 << 10
	DefaultMaxHeaderSegmentBytes = 2 << 10
	DefaultMaxKidBytes           = 256
)

func (l Limits) withDefaults() Limits {
	if l.MaxAuthorizationBytes <= 0 {
		l.MaxAuthorizationBytes = DefaultMaxAuthorizationBytes
	}
	if l.MaxHeaderSegmentBytes <= 0 {
		l.MaxHeaderSegmentBytes = DefaultMaxHeaderSegmentBytes
	}
	if l.MaxKidBytes <= 0 {
		l.MaxKidBytes = DefaultMaxKidBytes
	}
	return l
}

// ParseAuthorization extracts the bearer token from an Authorization header value
// (RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token). The scheme is matched
// case-insensitively (RFC 9110 §11.1); surrounding whitespace is ignored. The size cap is
// checked first, before any byte is inspected.
//
// The returned slice aliases header; it is valid as long as header is (for fasthttp, until
// the handler returns). An empty header yields ErrNoToken; another scheme (Basic, ...) yields
// an *Error with Reason ReasonWrongScheme so the caller can try its other authenticators.
func ParseAuthorization(header []byte, limits Limits) ([]byte, error) {
	limits = limits.withDefaults()
	if len(header) > limits.MaxAuthorizationBytes {
		return nil, errHeaderTooLarge
	}
	h := bytes.TrimSpace(header)
	if len(h) == 0 {
		return nil, ErrNoToken
	}
	sp := bytes.IndexByte(h, ' ')
	if sp < 0 {
		if asciiEqualFold(h, "bearer") {
			return nil, errMalformedHeader
		}
		return nil, errWrongScheme
	}
	if !asciiEqualFold(h[:sp], "bearer") {
		return nil, errWrongScheme
	}
	tok := bytes.TrimLeft(h[sp+1:], " ")
	if len(tok) == 0 {
		return nil, errMalformedHeader
	}
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	i := 0
	for i < len(tok) && b64tokenChar[tok[i]] {
		i++
	}
	if i == 0 {
		return nil, errMalformedHeader
	}
	for ; i < len(tok); i++ {
		if tok[i] != '=' {
			return nil, errMalformedHeader
		}
	}
	return tok, nil
}

// b64tokenChar marks the b64token characters of RFC 6750 §2.1 (without the trailing "=").
var b64tokenChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// base64urlChar marks the base64url alphabet (RFC 4648 §5), unpadded.
var base64urlChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	return t
}()

var errWrongScheme = &Error{Status: 401, Reason: ReasonWrongScheme}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// QueryHasAccessToken reports whether a raw URI query carries an access_token parameter
// (RFC 6750 §2.3). The gateway refuses such requests with ErrQueryToken: tokens in URLs
// leak into logs, proxies and Referer headers, and RFC 6750 §2.3 / RFC 9700 §4.3.2 advise
// against them. It also matches the parameter when percent-encoded. rawQuery is the part
// after '?', not decoded.
func QueryHasAccessToken(rawQuery string) bool {
	for rawQuery != "" {
		var part string
		part, rawQuery, _ = strings.Cut(rawQuery, "&")
		name, _, _ := strings.Cut(part, "=")
		if strings.IndexByte(name, '%') >= 0 || strings.IndexByte(name, '+') >= 0 {
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
		}
		if strings.EqualFold(name, "access_token") {
			return true
		}
	}
	return false
}

// TokenHeader is the JOSE header of a compact JWS as read before any verification. Its
// contents are untrusted.
type TokenHeader struct {
	Alg  string
	Kid  string
	Typ  string
	Cty  string
	Crit []string
	// Unsafe names the first header parameter that would make a naive verifier fetch or
	// trust key material chosen by the token (jku, x5u, jwk, x5c), or "" if none.
	Unsafe string
	// B64False is set when the RFC 7797 "b64": false parameter is present.
	B64False bool
}

type rawHeader struct {
	Alg  *string         `json:"alg"`
	Kid  *string         `json:"kid"`
	Typ  *string         `json:"typ"`
	Cty  *string         `json:"cty"`
	Crit json.RawMessage `json:"crit"`
	Jku  json.RawMessage `json:"jku"`
	X5u  json.RawMessage `json:"x5u"`
	Jwk  json.RawMessage `json:"jwk"`
	X5c  json.RawMessage `json:"x5c"`
	B64  json.RawMessage `json:"b64"`
	Enc  json.RawMessage `json:"enc"`
	Zip  json.RawMessage `json:"zip"`
}

// splitCompact checks the compact JWS shape: exactly three base64url segments, the
// signature non-empty. Five segments is a JWE.
func splitCompact(tok []byte) (hdr, payload, sig []byte, err *Error) {
	d1 := bytes.IndexByte(tok, '.')
	if d1 < 0 {
		return nil, nil, nil, errMalformedToken
	}
	rest := tok[d1+1:]
	d2 := bytes.IndexByte(rest, '.')
	if d2 < 0 {
		return nil, nil, nil, errMalformedToken
	}
	sig = rest[d2+1:]
	if n := bytes.Count(sig, dot); n > 0 {
		if n == 2 {
			return nil, nil, nil, errEncrypted
		}
		return nil, nil, nil, errTooManyParts
	}
	hdr, payload = tok[:d1], rest[:d2]
	if len(hdr) == 0 || len(payload) == 0 {
		return nil, nil, nil, errMalformedToken
	}
	if len(sig) == 0 {
		// An empty signature is what alg "none" produces; report it as such only if
		// the header says so, otherwise as malformed.
		return hdr, payload, sig, nil
	}
	for _, seg := range [][]byte{hdr, payload, sig} {
		for _, c := range seg {
			if !base64urlChar[c] {
				return nil, nil, nil, errMalformedToken
			}
		}
	}
	return hdr, payload, sig, nil
}

var dot = []byte{'.'}

// PeekHeader decodes the JOSE header of a compact JWS without verifying anything. It
// enforces the structural limits (three segments, base64url alphabet, header size, kid
// size) and returns *Error values only. It is exported for diagnostics and fuzzing; the
// Validator calls it before any key lookup.
func PeekHeader(token []byte, limits Limits) (TokenHeader, error) {
	h, err := peekHeader(token, limits.withDefaults())
	if err != nil {
		return TokenHeader{}, err
	}
	return h, nil
}

func peekHeader(token []byte, limits Limits) (TokenHeader, *Error) {
	var th TokenHeader
	if len(token) > limits.MaxAuthorizationBytes {
		return th, errHeaderTooLarge
	}
	hdr, _, _, e := splitCompact(token)
	if e != nil {
		return th, e
	}
	if len(hdr) > limits.MaxHeaderSegmentBytes {
		return th, errMalformedToken
	}
	var buf [DefaultMaxHeaderSegmentBytes]byte
	var dst []byte
	if n := base64.RawURLEncoding.DecodedLen(len(hdr)); n <= len(buf) {
		dst = buf[:n]
	} else {
		dst = make([]byte, n)
	}
	n, derr := base64.RawURLEncoding.Strict().Decode(dst, hdr)
	if derr != nil {
		return th, errMalformedToken
	}
	var rh rawHeader
	if json.Unmarshal(dst[:n], &rh) != nil {
		return th, errMalformedToken
	}
	if rh.Enc != nil || rh.Zip != nil {
		return th, errEncrypted
	}
	if rh.Alg == nil {
		return th, errMalformedToken
	}
	th.Alg = *rh.Alg
	if rh.Kid != nil {
		if len(*rh.Kid) > limits.MaxKidBytes || *rh.Kid == "" {
			return th, errMalformedToken
		}
		th.Kid = *rh.Kid
	}
	if rh.Typ != nil {
		th.Typ = *rh.Typ
	}
	if rh.Cty != nil {
		th.Cty = *rh.Cty
	}
	if rh.Crit != nil {
		// RFC 7515 §4.1.11: crit is a non-empty array of names. Anything else is malformed;
		// a well-formed list is rejected later because this package understands no
		// extension.
		if json.Unmarshal(rh.Crit, &th.Crit) != nil || len(th.Crit) == 0 {
			return th, errCritUnknown
		}
	}
	switch {
	case rh.Jku != nil:
		th.Unsafe = "jku"
	case rh.X5u != nil:
		th.Unsafe = "x5u"
	case rh.Jwk != nil:
		th.Unsafe = "jwk"
	case rh.X5c != nil:
		th.Unsafe = "x5c"
	}
	if rh.B64 != nil {
		th.B64False = string(bytes.TrimSpace(rh.B64)) != "true"
	}
	return th, nil
}

// normalTyp lowers typ and strips an "application/" prefix (RFC 7515 §4.1.9).
func normalTyp(s string) string {
	s = strings.ToLower(s)
	return strings.TrimPrefix(s, "application/")
}
