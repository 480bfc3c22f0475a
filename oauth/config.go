package oauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Algorithms the package can verify. HMAC (HS*) and "none" are deliberately absent: a
// resource server that accepts HMAC tokens can be fooled into using a public key as the
// HMAC secret (RFC 8725 §2.1, §3.1).
const (
	RS256 = "RS256"
	PS256 = "PS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// DefaultAlgorithms is the allowed list when IssuerConfig.Algorithms is empty.
var DefaultAlgorithms = []string{RS256, PS256, ES256, EdDSA}

// Defaults for IssuerConfig and ValidatorConfig fields left at zero.
const (
	DefaultRealm              = "easgate"
	DefaultTyp                = "at+jwt" // RFC 9068 §2.1
	DefaultClockSkew          = 60 * time.Second
	DefaultMinRefreshInterval = 5 * time.Minute
	DefaultRefreshInterval    = 1 * time.Hour
	DefaultMaxStaleness       = 24 * time.Hour
	DefaultFetchTimeout       = 5 * time.Second
	DefaultMaxJWKSBytes       = 512 << 10
	DefaultMaxKeys            = 64
	DefaultTokenCacheEntries  = 100_000
	DefaultGroupsClaim        = "groups"
	DefaultCapabilitiesClaim  = "xms_cc"
	MaxClockSkew              = 5 * time.Minute
)

// DefaultUserClaims is the order in which claims are tried for the user name when
// IssuerConfig.UserClaims is empty.
var DefaultUserClaims = []string{"upn", "preferred_username", "email", "sub"}

// KeySource supplies a JWKS document (RFC 7517 §5) without HTTP. The gateway's own
// TokenService implements it so its issuer is trusted like any other, with no network
// fetch. Implementations must be safe for concurrent use.
type KeySource interface {
	FetchJWKS(ctx context.Context) ([]byte, error)
}

// IssuerConfig describes one trusted token issuer. The zero value of each optional field
// means its documented default.
type IssuerConfig struct {
	// Issuer is the exact "iss" value (RFC 7519 §4.1.1), compared byte for byte.
	// Microsoft Entra uses two forms: v1 "https://sts.windows.net/{tid}/" and v2
	// "https://login.microsoftonline.com/{tid}/v2.0" (see EntraV1Issuer, EntraV2Issuer);
	// configure one IssuerConfig per form you accept. Required.
	Issuer string

	// Exactly one key origin: JWKSURL, DiscoveryURL (OIDC discovery / RFC 8414 metadata,
	// whose "issuer" must equal Issuer and whose "jwks_uri" is then used), or Keys.
	JWKSURL      string
	DiscoveryURL string
	Keys         KeySource

	// Audiences lists accepted "aud" values; a token must name at least one. Required.
	Audiences []string

	// Algorithms lists accepted JWS "alg" values among RS256, PS256, ES256, EdDSA.
	// Default DefaultAlgorithms.
	Algorithms []string

	// Types lists accepted "typ" header values, compared case-insensitively with an
	// optional "application/" prefix. Default ["at+jwt"] (RFC 9068). Entra v1/v2 access
	// tokens carry typ "JWT": list "JWT" for them. When "JWT" is accepted, tokens that look
	// like ID tokens (a "nonce" or "at_hash" claim) are still refused.
	Types []string

	// ClockSkew is the leeway applied to exp, nbf and iat. Default 60s, at most 5 min.
	ClockSkew time.Duration

	// RequiredScopes must all appear in "scp" (Entra) or "scope" (RFC 9068 §2.2.3).
	RequiredScopes []string
	// RequiredRoles must all appear in "roles" (RFC 9068 §2.2.3.1, Entra app roles).
	RequiredRoles []string

	// UserClaims are tried in order for Identity.User. Default DefaultUserClaims.
	UserClaims []string
	// DeviceIDClaim names the claim holding the EAS DeviceId bound to the token. Empty
	// means tokens of this issuer carry no device binding (the default: Entra's "deviceid"
	// is an Entra object id, not an EAS DeviceId). The gateway's own issuer uses "did".
	DeviceIDClaim string
	// GroupsClaim default "groups"; CapabilitiesClaim default "xms_cc".
	GroupsClaim       string
	CapabilitiesClaim string

	// MinRefreshInterval is the least time between two JWKS fetches triggered by unknown
	// kids. Default 5 min; for a Keys source 0 means no limit. Trade-off: tokens naming
	// garbage kids can spend the forced refresh, so a key that an issuer starts signing
	// with without publishing it first may be refused for up to this interval. Issuers
	// that pre-publish keys (Entra does, weeks ahead) are picked up by the routine refresh.
	MinRefreshInterval time.Duration
	// RefreshInterval is the age after which the key set is refreshed in the background.
	// Default 1 h.
	RefreshInterval time.Duration
	// MaxStaleness is the age of the last good key set past which failed refreshes raise
	// Hooks.OnStale. The stale set keeps serving. Default 24 h.
	MaxStaleness time.Duration
}

// EntraV1Issuer returns the Microsoft Entra v1.0 access-token issuer for a tenant.
func EntraV1Issuer(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// EntraV2Issuer returns the Microsoft Entra v2.0 access-token issuer for a tenant.
func EntraV2Issuer(tenantID string) string {
	return "https://login.microsoftonline.com/" + tenantID + "/v2.0"
}

// EntraJWKSURL returns the tenant's signing-key endpoint, shared by v1 and v2 tokens.
func EntraJWKSURL(tenantID string) string {
	return "https://login.microsoftonline.com/" + tenantID + "/discovery/v2.0/keys"
}

// FetchConfig controls HTTP retrieval of JWKS and discovery documents.
type FetchConfig struct {
	// Timeout bounds one fetch (connect to last byte). Default 5 s.
	Timeout time.Duration
	// MaxBytes caps a response body. Default 512 KiB.
	MaxBytes int64
	// MaxKeys caps the keys kept from one set. Default 64.
	MaxKeys int
	// CAFile is a PEM bundle trusted instead of the system roots. Empty: system roots.
	CAFile string
	// InsecureAllowLoopbackHTTP permits plain http:// URLs, and only when the host is a
	// loopback IP literal (127.0.0.0/8, ::1). It exists for tests and local issuers on the
	// same machine; every other URL must be https. Default false.
	InsecureAllowLoopbackHTTP bool
}

// Hooks are optional callbacks for metrics and alerts. They are called synchronously from
// the goroutine doing the work and must not block.
type Hooks struct {
	// OnFetch is called after every JWKS fetch attempt; err is nil on success.
	OnFetch func(issuer string, d time.Duration, err error)
	// OnStale is called when a refresh fails and the last good set is older than the
	// issuer's MaxStaleness (or no set was ever loaded: age is then 0).
	OnStale func(issuer string, age time.Duration, err error)
	// OnReject is called for every refused token, with the audit reason.
	OnReject func(issuer string, reason Reason)
}

// ValidatorConfig configures a Validator.
type ValidatorConfig struct {
	Issuers []IssuerConfig
	// Realm for WWW-Authenticate challenges. Default "easgate".
	Realm  string
	Limits Limits
	Fetch  FetchConfig
	Hooks  Hooks
	// TokenCacheEntries bounds the verified-token cache. Default 100,000; negative
	// disables the cache.
	TokenCacheEntries int
	// Revoked, when set, is asked on every request (cached or not); true refuses the
	// identity. Must be fast and safe for concurrent use. The Validator's own
	// RevokeUser list is checked as well.
	Revoked func(id *Identity) bool
	// Now replaces time.Now (tests). Default time.Now.
	Now func() time.Time
}

// Validate checks the configuration and returns every problem at once (errors.Join).
func (c *ValidatorConfig) Validate() error {
	var errs []error
	if len(c.Issuers) == 0 {
		errs = append(errs, errors.New("oauth: no trusted issuers"))
	}
	seen := map[string]bool{}
	for i := range c.Issuers {
		ic := &c.Issuers[i]
		if seen[ic.Issuer] {
			errs = append(errs, fmt.Errorf("oauth: issuer %q configured twice", ic.Issuer))
		}
		seen[ic.Issuer] = true
		errs = append(errs, ic.validate(c.Fetch)...)
	}
	if c.Limits.MaxAuthorizationBytes < 0 || c.Limits.MaxHeaderSegmentBytes < 0 || c.Limits.MaxKidBytes < 0 {
		errs = append(errs, errors.New("oauth: negative limit"))
	}
	if c.Fetch.Timeout < 0 || c.Fetch.MaxBytes < 0 || c.Fetch.MaxKeys < 0 {
		errs = append(errs, errors.New("oauth: negative fetch limit"))
	}
	return errors.Join(errs...)
}

func (ic *IssuerConfig) validate(fc FetchConfig) []error {
	var errs []error
	name := ic.Issuer
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("oauth: issuer %q: "+format, append([]any{name}, a...)...))
	}
	if ic.Issuer == "" {
		bad("issuer is empty")
	}
	n := 0
	if ic.JWKSURL != "" {
		n++
		if err := checkFetchURL(ic.JWKSURL, fc); err != nil {
			bad("jwks url: %v", err)
		}
	}
	if ic.DiscoveryURL != "" {
		n++
		if err := checkFetchURL(ic.DiscoveryURL, fc); err != nil {
			bad("discovery url: %v", err)
		}
	}
	if ic.Keys != nil {
		n++
	}
	if n != 1 {
		bad("exactly one of JWKSURL, DiscoveryURL, Keys is required (have %d)", n)
	}
	if len(ic.Audiences) == 0 {
		bad("no accepted audiences")
	}
	for _, a := range ic.Audiences {
		if a == "" {
			bad("empty audience")
		}
	}
	for _, alg := range ic.Algorithms {
		if _, ok := algKty[alg]; !ok {
			bad("algorithm %q not supported (allowed: RS256, PS256, ES256, EdDSA)", alg)
		}
	}
	for _, t := range ic.Types {
		if t == "" {
			bad("empty typ")
		}
	}
	if ic.ClockSkew < 0 || ic.ClockSkew > MaxClockSkew {
		bad("clock skew %v outside [0, %v]", ic.ClockSkew, MaxClockSkew)
	}
	for _, s := range ic.RequiredScopes {
		if s == "" || strings.ContainsAny(s, " \t") {
			bad("invalid required scope %q", s)
		}
	}
	for _, c := range ic.UserClaims {
		if c == "" {
			bad("empty user claim name")
		}
	}
	if ic.MinRefreshInterval < 0 || ic.RefreshInterval < 0 || ic.MaxStaleness < 0 {
		bad("negative interval")
	}
	return errs
}

func checkFetchURL(raw string, fc FetchConfig) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if !fc.InsecureAllowLoopbackHTTP {
			return errors.New("http not allowed (set InsecureAllowLoopbackHTTP for loopback tests)")
		}
		ip := net.ParseIP(u.Hostname())
		if ip == nil || !ip.IsLoopback() {
			return errors.New("http allowed only for loopback IP literals")
		}
		return nil
	default:
		return fmt.Errorf("scheme %q not allowed", u.Scheme)
	}
}

// issuerPolicy is an IssuerConfig with defaults applied and lookups precomputed.
type issuerPolicy struct {
	cfg        IssuerConfig
	algs       map[string]bool
	types      map[string]bool
	acceptsJWT bool
	audiences  map[string]bool
	skew       time.Duration
	userClaims []string
	groups     string
	caps       string
	minRefresh time.Duration
	refresh    time.Duration
	stale      time.Duration
}

func newIssuerPolicy(ic IssuerConfig) *issuerPolicy {
	p := &issuerPolicy{cfg: ic, algs: map[string]bool{}, types: map[string]bool{}, audiences: map[string]bool{}}
	algs := ic.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	for _, a := range algs {
		p.algs[a] = true
	}
	types := ic.Types
	if len(types) == 0 {
		types = []string{DefaultTyp}
	}
	for _, t := range types {
		nt := normalTyp(t)
		p.types[nt] = true
		if nt == "jwt" {
			p.acceptsJWT = true
		}
	}
	for _, a := range ic.Audiences {
		p.audiences[a] = true
	}
	p.skew = ic.ClockSkew
	if p.skew == 0 {
		p.skew = DefaultClockSkew
	}
	p.userClaims = ic.UserClaims
	if len(p.userClaims) == 0 {
		p.userClaims = DefaultUserClaims
	}
	p.groups = ic.GroupsClaim
	if p.groups == "" {
		p.groups = DefaultGroupsClaim
	}
	p.caps = ic.CapabilitiesClaim
	if p.caps == "" {
		p.caps = DefaultCapabilitiesClaim
	}
	p.minRefresh = ic.MinRefreshInterval
	if p.minRefresh == 0 && ic.Keys == nil {
		p.minRefresh = DefaultMinRefreshInterval
	}
	p.refresh = ic.RefreshInterval
	if p.refresh == 0 {
		p.refresh = DefaultRefreshInterval
	}
	p.stale = ic.MaxStaleness
	if p.stale == 0 {
		p.stale = DefaultMaxStaleness
	}
	return p
}
