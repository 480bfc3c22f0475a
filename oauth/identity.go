package oauth

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Identity is who a validated bearer token speaks for: the vocabulary the gateway, the
// decision layer and audit records share. Identities returned by the Validator may be
// shared between requests through the verified-token cache: treat them as read-only.
type Identity struct {
	// User is the mapped user name (first present of the issuer's UserClaims).
	User string
	// Subject is "sub"; Issuer is "iss".
	Subject string
	Issuer  string
	// DeviceID is the EAS DeviceId the token is bound to, from the issuer's DeviceIDClaim;
	// empty when the token carries none.
	DeviceID string
	// Groups from the issuer's GroupsClaim.
	Groups []string
	// Capabilities from the issuer's CapabilitiesClaim (e.g. "cp1": the client can handle
	// claims challenges).
	Capabilities []string
	// Scopes from "scp" or "scope"; Roles from "roles".
	Scopes []string
	Roles  []string
	// Audience is the accepted audience the token named.
	Audience string
	// TokenID is "jti", when present.
	TokenID string
	// IssuedAt and Expiry are "iat" (zero when absent) and "exp".
	IssuedAt time.Time
	Expiry   time.Time
}

// HasScope reports whether s is among the token's scopes.
func (id *Identity) HasScope(s string) bool { return slices.Contains(id.Scopes, s) }

// InGroup reports whether g is among the token's groups.
func (id *Identity) InGroup(g string) bool { return slices.Contains(id.Groups, g) }

// CapabilityClaimsChallenge is the client capability announcing that a client handles
// claims challenges (Microsoft "cp1").
const CapabilityClaimsChallenge = "cp1"

// SupportsClaimsChallenge reports whether the client declared the "cp1" capability, i.e.
// it will act on a 401 insufficient_claims challenge by getting a new token instead of
// failing.
func SupportsClaimsChallenge(id *Identity) bool {
	return id != nil && slices.Contains(id.Capabilities, CapabilityClaimsChallenge)
}

// BindError reports that a token was presented for another user or another device than
// the EAS request names: a spoofing attempt the gateway audits. Its text names the field,
// not the values; TokenValue and RequestValue are for the audit record only.
type BindError struct {
	Field        string // "user" or "device"
	TokenValue   string
	RequestValue string
}

func (e *BindError) Error() string {
	return "oauth: token " + e.Field + " does not match the EAS request"
}

// OAuthError is the client-facing answer to a binding failure: 403 insufficient_scope
// would be wrong (no scope helps), so it is invalid_token with a fixed description.
func (e *BindError) OAuthError(realm string) *Error {
	return &Error{Code: CodeInvalidToken, Status: http.StatusUnauthorized, Reason: "bind_" + Reason(e.Field),
		Description: "token not valid for this account or device", Realm: realm}
}

// Bind checks that a validated identity may act as the EAS User easUser on device
// easDeviceID. Users are compared as UPNs, case-insensitively (ASCII and Unicode simple
// folding); a down-level "DOMAIN\user" EAS User never matches, because a NetBIOS domain
// cannot be mapped to a UPN suffix without a directory. When the token names a device,
// it must equal easDeviceID (case-insensitive: EAS DeviceIds are treated so by Exchange).
// Any mismatch is a *BindError.
func Bind(id *Identity, easUser, easDeviceID string) error {
	if id == nil {
		return &BindError{Field: "user", RequestValue: easUser}
	}
	u := strings.TrimSpace(easUser)
	if u == "" || id.User == "" || strings.ContainsRune(u, '\\') || !strings.EqualFold(u, id.User) {
		return &BindError{Field: "user", TokenValue: id.User, RequestValue: easUser}
	}
	if id.DeviceID != "" && !strings.EqualFold(id.DeviceID, easDeviceID) {
		return &BindError{Field: "device", TokenValue: id.DeviceID, RequestValue: easDeviceID}
	}
	return nil
}

// ClaimsChallenge builds the 401 answer asking a capable client ("cp1") to come back with
// a token satisfying claimsJSON — a JSON claims request (OpenID Connect Core §5.5), e.g.
//
//	{"access_token":{"acrs":{"essential":true,"value":"c1"}}}
//
// The header sent is
//
//	Bearer realm="easgate", error="insufficient_claims",
//	  error_description="...", error_uri="<remediationURL>", claims="<base64(claimsJSON)>"
//
// claims is standard base64 of the JSON (the form Microsoft clients decode). error_uri
// (RFC 6750 §3) carries the remediation page a user must visit when a new token alone
// cannot fix things (e.g. the device must be enrolled); it is omitted when empty and
// dropped when it is not an absolute https (or loopback http) URL. claimsJSON must be a
// JSON object; otherwise the result falls back to a plain invalid_token challenge.
func ClaimsChallenge(realm string, claimsJSON []byte, remediationURL string) *Error {
	e := &Error{Code: CodeInsufficientClaims, Status: http.StatusUnauthorized, Reason: ReasonClaimsChallenge,
		Description: "additional claims required", Realm: realm}
	var obj map[string]json.RawMessage
	if json.Unmarshal(claimsJSON, &obj) != nil {
		e.Code = CodeInvalidToken
		e.Description = "token does not satisfy policy"
	} else {
		e.Claims = base64.StdEncoding.EncodeToString(claimsJSON)
	}
	if remediationURL != "" {
		if u, err := url.Parse(remediationURL); err == nil && u.IsAbs() && u.Host != "" &&
			(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			e.URI = u.String()
		}
	}
	return e
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
