package oauth

import (
	"net/http"
	"strings"
)

// RFC 6750 §3.1 error codes, plus the insufficient_claims code of the claims-challenge
// convention (Continuous Access Evaluation, OpenID Connect claims request parameter).
const (
	CodeInvalidRequest     = "invalid_request"
	CodeInvalidToken       = "invalid_token"
	CodeInsufficientScope  = "insufficient_scope"
	CodeInsufficientClaims = "insufficient_claims"
)

// Reason is a stable, machine-readable cause for a refused token, meant for audit records
// and metric labels. It never reaches a client; the client sees only Error.Code and the
// fixed Error.Description.
type Reason string

// Reasons reported by the Validator.
const (
	ReasonNoToken           Reason = "no_token"
	ReasonHeaderTooLarge    Reason = "header_too_large"
	ReasonMalformedHeader   Reason = "malformed_authorization"
	ReasonWrongScheme       Reason = "wrong_scheme"
	ReasonQueryToken        Reason = "token_in_query"
	ReasonMalformedToken    Reason = "malformed_token"
	ReasonEncryptedToken    Reason = "encrypted_token"
	ReasonAlgNone           Reason = "alg_none"
	ReasonAlgNotAllowed     Reason = "alg_not_allowed"
	ReasonUnsafeHeader      Reason = "unsafe_header" // jku, x5u, jwk, x5c
	ReasonCritUnknown       Reason = "crit_unknown"
	ReasonWrongType         Reason = "wrong_typ"
	ReasonIDToken           Reason = "id_token"
	ReasonUnknownIssuer     Reason = "unknown_issuer"
	ReasonUnknownKey        Reason = "unknown_kid"
	ReasonKeysUnavailable   Reason = "keys_unavailable"
	ReasonBadSignature      Reason = "bad_signature"
	ReasonMissingExp        Reason = "missing_exp"
	ReasonExpired           Reason = "expired"
	ReasonNotYetValid       Reason = "not_yet_valid"
	ReasonIssuedInFuture    Reason = "iat_in_future"
	ReasonWrongAudience     Reason = "wrong_audience"
	ReasonMissingScope      Reason = "missing_scope"
	ReasonMissingRole       Reason = "missing_role"
	ReasonNoUser            Reason = "no_user_claim"
	ReasonBadClaim          Reason = "bad_claim"
	ReasonRevoked           Reason = "revoked"
	ReasonClaimsChallenge   Reason = "claims_challenge"
	ReasonInternal          Reason = "internal"
	ReasonContextCancelled  Reason = "cancelled"
	ReasonTokenTooManyParts Reason = "too_many_parts"
)

// Error is the only error type the Validator returns for a refused request. Code is an
// RFC 6750 error code (empty when the request carried no credentials at all, RFC 6750 §3.1),
// Status the HTTP status to answer with, Description a fixed, safe text (never token content
// or library error text). Reason is for audit only.
//
// Error values are immutable once returned and may be shared; do not modify them.
type Error struct {
	Code        string
	Status      int
	Description string
	Reason      Reason

	// Realm is the protection-space name put in the challenge; the Validator fills it from
	// ValidatorConfig.Realm.
	Realm string
	// Scope lists the scopes needed, for insufficient_scope (RFC 6750 §3).
	Scope string
	// Claims is the base64 (std encoding) claims request, for insufficient_claims.
	Claims string
	// URI is the error_uri attribute (RFC 6750 §3): a human-readable page, e.g. the
	// remediation page of a claims challenge.
	URI string
}

// Error implements error. The text starts with the package name and carries the code and
// reason; it is meant for logs, not for clients.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("oauth: ")
	if e.Code == "" {
		b.WriteString("unauthenticated")
	} else {
		b.WriteString(e.Code)
	}
	if e.Reason != "" {
		b.WriteString(" (")
		b.WriteString(string(e.Reason))
		b.WriteString(")")
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	return b.String()
}

// Is reports whether target is an *Error with the same Code and Reason, so the sentinels
// below work with errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// Challenge returns the WWW-Authenticate header value for this error (RFC 6750 §3):
//
//	Bearer realm="easgate", error="invalid_token", error_description="token expired"
//
// Attribute values are restricted to the safe characters of RFC 6750 §3 (%x20-21 / %x23-5B
// / %x5D-7E); anything else is dropped, so the header can never be split or smuggled.
func (e *Error) Challenge() string {
	var b strings.Builder
	b.Grow(96 + len(e.Claims) + len(e.URI))
	b.WriteString("Bearer")
	sep := " "
	attr := func(name, value string) {
		b.WriteString(sep)
		sep = ", "
		b.WriteString(name)
		b.WriteString(`="`)
		writeSafe(&b, value)
		b.WriteByte('"')
	}
	realm := e.Realm
	if realm == "" {
		realm = DefaultRealm
	}
	attr("realm", realm)
	if e.Code != "" {
		attr("error", e.Code)
	}
	if e.Description != "" {
		attr("error_description", e.Description)
	}
	if e.URI != "" {
		attr("error_uri", e.URI)
	}
	if e.Scope != "" {
		attr("scope", e.Scope)
	}
	if e.Claims != "" {
		attr("claims", e.Claims)
	}
	return b.String()
}

func writeSafe(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0x20 || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E) {
			b.WriteByte(c)
		}
	}
}

// with returns a copy of e for the given realm; sentinels are never mutated.
func (e *Error) with(realm string) *Error {
	if e.Realm == realm {
		return e
	}
	c := *e
	c.Realm = realm
	return &c
}

func newErr(code string, reason Reason, desc string) *Error {
	status := http.StatusUnauthorized
	switch code {
	case CodeInvalidRequest:
		status = http.StatusBadRequest
	case CodeInsufficientScope:
		status = http.StatusForbidden
	}
	return &Error{Code: code, Status: status, Reason: reason, Description: desc}
}

// Sentinel errors, usable with errors.Is. The Validator returns copies carrying the realm.
var (
	// ErrNoToken: no credentials in the request. RFC 6750 §3.1: no error code in the challenge.
	ErrNoToken = &Error{Status: http.StatusUnauthorized, Reason: ReasonNoToken}
	// ErrQueryToken: access_token in the URI query (RFC 6750 §2.3 is not supported).
	ErrQueryToken = newErr(CodeInvalidRequest, ReasonQueryToken, "access_token in URI query is not accepted")

	errHeaderTooLarge  = newErr(CodeInvalidRequest, ReasonHeaderTooLarge, "authorization header too large")
	errMalformedHeader = newErr(CodeInvalidRequest, ReasonMalformedHeader, "malformed authorization header")
	errMalformedToken  = newErr(CodeInvalidToken, ReasonMalformedToken, "malformed token")
	errTooManyParts    = newErr(CodeInvalidToken, ReasonTokenTooManyParts, "malformed token")
	errEncrypted       = newErr(CodeInvalidToken, ReasonEncryptedToken, "encrypted tokens are not accepted")
	errAlgNone         = newErr(CodeInvalidToken, ReasonAlgNone, "unsigned token")
	errAlgNotAllowed   = newErr(CodeInvalidToken, ReasonAlgNotAllowed, "signature algorithm not allowed")
	errUnsafeHeader    = newErr(CodeInvalidToken, ReasonUnsafeHeader, "token header not accepted")
	errCritUnknown     = newErr(CodeInvalidToken, ReasonCritUnknown, "critical header not understood")
	errWrongType       = newErr(CodeInvalidToken, ReasonWrongType, "wrong token type")
	errIDToken         = newErr(CodeInvalidToken, ReasonIDToken, "ID tokens are not access tokens")
	errUnknownIssuer   = newErr(CodeInvalidToken, ReasonUnknownIssuer, "untrusted issuer")
	errUnknownKey      = newErr(CodeInvalidToken, ReasonUnknownKey, "unknown signing key")
	errKeysUnavailable = newErr(CodeInvalidToken, ReasonKeysUnavailable, "signing keys unavailable")
	errBadSignature    = newErr(CodeInvalidToken, ReasonBadSignature, "invalid signature")
	errMissingExp      = newErr(CodeInvalidToken, ReasonMissingExp, "token has no expiry")
	errExpired         = newErr(CodeInvalidToken, ReasonExpired, "token expired")
	errNotYetValid     = newErr(CodeInvalidToken, ReasonNotYetValid, "token not yet valid")
	errIatFuture       = newErr(CodeInvalidToken, ReasonIssuedInFuture, "token issued in the future")
	errWrongAudience   = newErr(CodeInvalidToken, ReasonWrongAudience, "token not for this audience")
	errNoUser          = newErr(CodeInvalidToken, ReasonNoUser, "token names no user")
	errBadClaim        = newErr(CodeInvalidToken, ReasonBadClaim, "malformed claim")
	errRevoked         = newErr(CodeInvalidToken, ReasonRevoked, "access revoked")
	errCancelled       = newErr(CodeInvalidToken, ReasonContextCancelled, "token could not be validated")
)
