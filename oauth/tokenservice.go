package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// RFC 8693 identifiers.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
)

// ParamDeviceID is the token-request parameter carrying the EAS DeviceId (the DeviceId
// query value of MS-ASHTTP §2.2.1.1.1.1.3) the issued token is bound to.
const ParamDeviceID = "device_id"

// ClaimDeviceID is the claim of issued tokens holding the bound EAS DeviceId.
const ClaimDeviceID = "did"

// MaxDeviceIDBytes bounds the device_id parameter. MS-ASHTTP allows 32 characters;
// some clients send longer ids, so 64 are accepted.
const MaxDeviceIDBytes = 64

// DeviceChecker is owned by the caller (the decision layer): is deviceID registered to
// user and compliant right now? When ok is false, remediationURL names the page that tells
// the user what to fix (enrol, passcode, ...); err means the check could not be made.
type DeviceChecker interface {
	CheckDevice(ctx context.Context, user, deviceID string) (ok bool, remediationURL string, err error)
}

// Defaults for TokenServiceConfig.
const (
	DefaultTokenLifetime  = 10 * time.Minute
	MaxTokenLifetime      = time.Hour
	DefaultRotationPeriod = 24 * time.Hour
	DefaultClientID       = "easgate"
)

// TokenServiceConfig configures the gateway's own token service.
type TokenServiceConfig struct {
	// Issuer is the gateway's issuer identifier (RFC 8414 §2), an https URL without query
	// or fragment (http only on loopback). Required.
	Issuer string
	// TokenEndpoint and JWKSURI default to Issuer + "/oauth/token" and "/oauth/jwks".
	TokenEndpoint string
	JWKSURI       string
	// Validator checks subject tokens. Required.
	Validator *Validator
	// Devices answers whether a device is registered and compliant. Required.
	Devices DeviceChecker
	// Audiences a client may request; the first is used when none is requested. Required.
	Audiences []string
	// Scopes a client may request. Empty: requests naming any scope are refused.
	Scopes []string
	// Algorithm signs issued tokens: ES256 (default) or EdDSA.
	Algorithm string
	// TokenLifetime of issued tokens: default 10 min, at most 1 h; never past the subject
	// token's own expiry.
	TokenLifetime time.Duration
	// RotationPeriod after which the signing key is replaced by the pre-published next key.
	// Default 24 h. Retired keys stay published for TokenLifetime + clock skew.
	RotationPeriod time.Duration
	// SigningKeys, when set, are used instead of generated keys (*ecdsa.PrivateKey on
	// P-256 for ES256, ed25519.PrivateKey for EdDSA; the last one signs). Automatic
	// rotation is then off: call AddSigningKey to rotate (e.g. keys shared by replicas).
	SigningKeys []crypto.Signer
	// ClientID is the client_id claim (RFC 9068 §2.2) of issued tokens when the request
	// names none. Default "easgate".
	ClientID string
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Validate checks the configuration, returning every problem at once.
func (c *TokenServiceConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Issuer); err != nil || c.Issuer == "" || u.RawQuery != "" || u.Fragment != "" ||
		!(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		errs = append(errs, errors.New("oauth: token service: issuer must be an https URL without query or fragment"))
	}
	if c.Validator == nil {
		errs = append(errs, errors.New("oauth: token service: no validator"))
	}
	if c.Devices == nil {
		errs = append(errs, errors.New("oauth: token service: no device checker"))
	}
	if len(c.Audiences) == 0 {
		errs = append(errs, errors.New("oauth: token service: no audiences"))
	}
	switch c.Algorithm {
	case "", ES256, EdDSA:
	default:
		errs = append(errs, fmt.Errorf("oauth: token service: algorithm %q not supported (ES256, EdDSA)", c.Algorithm))
	}
	if c.TokenLifetime < 0 || c.TokenLifetime > MaxTokenLifetime {
		errs = append(errs, fmt.Errorf("oauth: token service: token lifetime outside [0, %v]", MaxTokenLifetime))
	}
	if c.RotationPeriod < 0 {
		errs = append(errs, errors.New("oauth: token service: negative rotation period"))
	}
	for i, k := range c.SigningKeys {
		if _, err := signingAlg(k); err != nil {
			errs = append(errs, fmt.Errorf("oauth: token service: signing key %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func signingAlg(k crypto.Signer) (string, error) {
	switch p := k.(type) {
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return "", errors.New("ECDSA key must be on P-256")
		}
		return ES256, nil
	case ed25519.PrivateKey:
		return EdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T", k)
}

type signingKey struct {
	kid     string
	alg     string
	priv    crypto.Signer
	created time.Time
	retire  time.Time // zero while current or next
}

// TokenService issues device-bound access tokens by RFC 8693 token exchange. It is safe
// for concurrent use. It implements KeySource, so its issuer can be trusted by a Validator
// without HTTP (see IssuerConfig).
type TokenService struct {
	cfg      TokenServiceConfig
	now      func() time.Time
	auto     bool
	audience map[string]bool
	scopes   map[string]bool

	mu      sync.Mutex
	keys    []*signingKey // retired..., current, next (next only when auto)
	current *signingKey
	jwks    []byte
}

// NewTokenService validates cfg and builds the service.
func NewTokenService(cfg TokenServiceConfig) (*TokenService, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = ES256
	}
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if cfg.RotationPeriod == 0 {
		cfg.RotationPeriod = DefaultRotationPeriod
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.TokenEndpoint == "" {
		cfg.TokenEndpoint = cfg.Issuer + "/oauth/token"
	}
	if cfg.JWKSURI == "" {
		cfg.JWKSURI = cfg.Issuer + "/oauth/jwks"
	}
	ts := &TokenService{cfg: cfg, now: cfg.Now, audience: map[string]bool{}, scopes: map[string]bool{}}
	if ts.now == nil {
		ts.now = time.Now
	}
	for _, a := range cfg.Audiences {
		ts.audience[a] = true
	}
	for _, s := range cfg.Scopes {
		ts.scopes[s] = true
	}
	now := ts.now()
	if len(cfg.SigningKeys) > 0 {
		for _, k := range cfg.SigningKeys {
			if err := ts.addKeyLocked(k, now); err != nil {
				return nil, err
			}
		}
	} else {
		ts.auto = true
		for range 2 { // current and pre-published next
			k, err := generateKey(cfg.Algorithm)
			if err != nil {
				return nil, err
			}
			if err := ts.addKeyLocked(k, now); err != nil {
				return nil, err
			}
		}
		ts.current = ts.keys[0]
	}
	if err := ts.rebuildJWKSLocked(); err != nil {
		return nil, err
	}
	return ts, nil
}

func generateKey(alg string) (crypto.Signer, error) {
	if alg == EdDSA {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// addKeyLocked appends k; with manual keys it becomes current and the previous current
// starts its retirement countdown.
func (ts *TokenService) addKeyLocked(k crypto.Signer, now time.Time) error {
	alg, err := signingAlg(k)
	if err != nil {
		return fmt.Errorf("oauth: token service: %w", err)
	}
	kid, err := thumbprintKid(k.Public())
	if err != nil {
		return err
	}
	for _, old := range ts.keys {
		if old.kid == kid {
			return errors.New("oauth: token service: signing key already present")
		}
	}
	sk := &signingKey{kid: kid, alg: alg, priv: k, created: now}
	ts.keys = append(ts.keys, sk)
	if !ts.auto {
		if ts.current != nil {
			ts.current.retire = now.Add(ts.cfg.TokenLifetime + DefaultClockSkew)
		}
		ts.current = sk
	}
	return nil
}

// AddSigningKey makes k the signing key; the previous one stays published until every
// token it signed has expired. For use with TokenServiceConfig.SigningKeys.
func (ts *TokenService) AddSigningKey(k crypto.Signer) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.auto {
		return errors.New("oauth: token service: keys rotate automatically; AddSigningKey needs SigningKeys")
	}
	if err := ts.addKeyLocked(k, ts.now()); err != nil {
		return err
	}
	return ts.rebuildJWKSLocked()
}

// Rotate forces an automatic rotation now: the pre-published next key starts signing, a
// new next key is published, the old key retires after TokenLifetime + skew.
func (ts *TokenService) Rotate() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !ts.auto {
		return errors.New("oauth: token service: manual keys: use AddSigningKey")
	}
	return ts.rotateLocked(ts.now())
}

func (ts *TokenService) rotateLocked(now time.Time) error {
	next, err := generateKey(ts.cfg.Algorithm)
	if err != nil {
		return fmt.Errorf("oauth: token service: generating key: %w", err)
	}
	old := ts.current
	old.retire = now.Add(ts.cfg.TokenLifetime + DefaultClockSkew)
	for i, k := range ts.keys {
		if k == old && i+1 < len(ts.keys) {
			ts.current = ts.keys[i+1]
			ts.current.created = now
		}
	}
	if err := ts.addKeyLocked(next, now); err != nil {
		return err
	}
	return ts.rebuildJWKSLocked()
}

// maintainLocked rotates when due and drops keys past their retirement.
func (ts *TokenService) maintainLocked(now time.Time) error {
	changed := false
	if ts.auto && now.Sub(ts.current.created) >= ts.cfg.RotationPeriod {
		if err := ts.rotateLocked(now); err != nil {
			return err
		}
	}
	kept := ts.keys[:0]
	for _, k := range ts.keys {
		if !k.retire.IsZero() && now.After(k.retire) {
			changed = true
			continue
		}
		kept = append(kept, k)
	}
	ts.keys = kept
	if changed {
		return ts.rebuildJWKSLocked()
	}
	return nil
}

func thumbprintKid(pub crypto.PublicKey) (string, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return "", fmt.Errorf("oauth: token service: %w", err)
	}
	tp, err := k.Thumbprint(crypto.SHA256) // RFC 7638
	if err != nil {
		return "", fmt.Errorf("oauth: token service: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func (ts *TokenService) rebuildJWKSLocked() error {
	set := jwk.NewSet()
	for _, sk := range ts.keys {
		k, err := jwk.FromRaw(sk.priv.Public())
		if err != nil {
			return fmt.Errorf("oauth: token service: %w", err)
		}
		_ = k.Set(jwk.KeyIDKey, sk.kid)
		_ = k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(sk.alg))
		_ = k.Set(jwk.KeyUsageKey, jwk.ForSignature)
		if err := set.AddKey(k); err != nil {
			return fmt.Errorf("oauth: token service: %w", err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("oauth: token service: %w", err)
	}
	ts.jwks = b
	return nil
}

// JWKS returns the public signing keys (RFC 7517 §5) to serve at /oauth/jwks: the current
// key, the pre-published next key and retired keys still covering live tokens. The slice
// is shared: do not modify it.
func (ts *TokenService) JWKS() []byte {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	_ = ts.maintainLocked(ts.now())
	return ts.jwks
}

// FetchJWKS implements KeySource.
func (ts *TokenService) FetchJWKS(context.Context) ([]byte, error) { return ts.JWKS(), nil }

// IssuerConfig returns the IssuerConfig under which a Validator trusts this service's
// tokens, with no HTTP fetch (Keys is the service itself).
func (ts *TokenService) IssuerConfig() IssuerConfig {
	return IssuerConfig{
		Issuer:        ts.cfg.Issuer,
		Keys:          ts,
		Audiences:     append([]string(nil), ts.cfg.Audiences...),
		Algorithms:    []string{ts.cfg.Algorithm},
		Types:         []string{DefaultTyp},
		UserClaims:    []string{"sub"},
		DeviceIDClaim: ClaimDeviceID,
	}
}

// Issuer returns the service's issuer identifier.
func (ts *TokenService) Issuer() string { return ts.cfg.Issuer }

// Metadata returns the RFC 8414 authorization server metadata document for
// /.well-known/oauth-authorization-server. The service has no authorization endpoint; its
// only grant is token exchange and its clients are public (auth method "none").
func (ts *TokenService) Metadata() []byte {
	md := map[string]any{
		"issuer":                                ts.cfg.Issuer,
		"token_endpoint":                        ts.cfg.TokenEndpoint,
		"jwks_uri":                              ts.cfg.JWKSURI,
		"grant_types_supported":                 []string{GrantTypeTokenExchange},
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": []string{"none"},
	}
	if len(ts.cfg.Scopes) > 0 {
		md["scopes_supported"] = ts.cfg.Scopes
	}
	b, _ := json.Marshal(md)
	return b
}

// tokenError is an RFC 6749 §5.2 error response.
type tokenError struct {
	status int
	code   string
	desc   string
	uri    string
}

func (ts *TokenService) fail(e tokenError) (int, []byte, map[string]string) {
	m := map[string]string{"error": e.code}
	if e.desc != "" {
		m["error_description"] = e.desc
	}
	if e.uri != "" {
		m["error_uri"] = e.uri
	}
	b, _ := json.Marshal(m)
	return e.status, b, tokenHeaders()
}

func tokenHeaders() map[string]string {
	return map[string]string{
		"Content-Type":  "application/json;charset=UTF-8",
		"Cache-Control": "no-store",
		"Pragma":        "no-cache",
	}
}

func badRequest(code, desc string) tokenError {
	return tokenError{status: http.StatusBadRequest, code: code, desc: desc}
}

// Exchange answers one token request (RFC 8693 §2.1) from its parsed form parameters; the
// caller checked the method (POST) and content type (application/x-www-form-urlencoded).
// Parameters:
//
//	grant_type           urn:ietf:params:oauth:grant-type:token-exchange (required)
//	subject_token        an access token from a trusted issuer (required)
//	subject_token_type   urn:ietf:params:oauth:token-type:access_token or ...:jwt (required)
//	device_id            the EAS DeviceId to bind the token to (required)
//	audience / resource  one requested audience (optional; first configured by default)
//	scope                requested scopes (optional; must be configured)
//	requested_token_type access_token if present
//	client_id            optional public client identifier, copied to client_id
//
// It returns the HTTP status, the JSON body and the headers to send (no-store). A device
// that is not registered or not compliant gets 400 invalid_grant with the remediation
// page as error_uri. Tokens from this service cannot be exchanged again (no chaining).
func (ts *TokenService) Exchange(ctx context.Context, form url.Values) (status int, body []byte, headers map[string]string) {
	for name, vals := range form {
		if len(vals) > 1 {
			// RFC 6749 §3.2: request parameters must not be included more than once.
			return ts.fail(badRequest("invalid_request", "parameter "+safeParam(name)+" repeated"))
		}
	}
	if form.Get("grant_type") != GrantTypeTokenExchange {
		if form.Get("grant_type") == "" {
			return ts.fail(badRequest("invalid_request", "grant_type missing"))
		}
		return ts.fail(badRequest("unsupported_grant_type", ""))
	}
	subject := form.Get("subject_token")
	if subject == "" {
		return ts.fail(badRequest("invalid_request", "subject_token missing"))
	}
	switch form.Get("subject_token_type") {
	case TokenTypeAccessToken, TokenTypeJWT:
	case "":
		return ts.fail(badRequest("invalid_request", "subject_token_type missing"))
	default:
		return ts.fail(badRequest("invalid_request", "subject_token_type not supported"))
	}
	if form.Has("actor_token") || form.Has("actor_token_type") {
		return ts.fail(badRequest("invalid_request", "delegation (actor_token) not supported"))
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken {
		return ts.fail(badRequest("invalid_request", "requested_token_type not supported"))
	}
	deviceID := form.Get(ParamDeviceID)
	if !validDeviceID(deviceID) {
		return ts.fail(badRequest("invalid_request", "device_id missing or malformed"))
	}
	aud := form.Get("audience")
	if res := form.Get("resource"); res != "" {
		if aud != "" && aud != res {
			return ts.fail(badRequest("invalid_target", "audience and resource differ"))
		}
		aud = res
	}
	if aud == "" {
		aud = ts.cfg.Audiences[0]
	} else if !ts.audience[aud] {
		return ts.fail(badRequest("invalid_target", "audience not served"))
	}
	var scopes []string
	if sc := form.Get("scope"); sc != "" {
		scopes = strings.Fields(sc)
		for _, s := range scopes {
			if !ts.scopes[s] {
				return ts.fail(badRequest("invalid_scope", "scope not available"))
			}
		}
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		clientID = ts.cfg.ClientID
	} else if len(clientID) > 128 || !printableASCII(clientID) {
		return ts.fail(badRequest("invalid_request", "client_id malformed"))
	}

	id, err := ts.cfg.Validator.ValidateToken(ctx, []byte(subject))
	if err != nil {
		var oe *Error
		if errors.As(err, &oe) {
			switch oe.Reason {
			case ReasonKeysUnavailable, ReasonInternal, ReasonContextCancelled:
				return ts.fail(tokenError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable"})
			}
		}
		// RFC 8693 §2.2.2: an invalid subject_token is invalid_request.
		return ts.fail(badRequest("invalid_request", "subject_token invalid"))
	}
	if id.Issuer == ts.cfg.Issuer {
		return ts.fail(badRequest("invalid_request", "subject_token from this issuer cannot be exchanged"))
	}
	if id.DeviceID != "" && !strings.EqualFold(id.DeviceID, deviceID) {
		return ts.fail(badRequest("invalid_grant", "subject_token is bound to another device"))
	}
	ok, remediation, cerr := ts.cfg.Devices.CheckDevice(ctx, id.User, deviceID)
	if cerr != nil {
		return ts.fail(tokenError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable"})
	}
	if !ok {
		e := badRequest("invalid_grant", "device not registered or not compliant")
		if u, perr := url.Parse(remediation); perr == nil && u.IsAbs() &&
			(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			e.uri = u.String()
		}
		return ts.fail(e)
	}

	tok, exp, err := ts.issue(id, deviceID, aud, scopes, clientID)
	if err != nil {
		return ts.fail(tokenError{status: http.StatusInternalServerError, code: "server_error"})
	}
	resp := map[string]any{
		"access_token":      tok,
		"issued_token_type": TokenTypeAccessToken,
		"token_type":        "Bearer",
		"expires_in":        int64(exp.Sub(ts.now()).Seconds()),
	}
	if len(scopes) > 0 {
		resp["scope"] = strings.Join(scopes, " ")
	}
	b, _ := json.Marshal(resp)
	return http.StatusOK, b, tokenHeaders()
}

func safeParam(s string) string {
	if len(s) > 32 || !printableASCII(s) {
		return "(name)"
	}
	return s
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return true
}

func validDeviceID(s string) bool {
	if s == "" || len(s) > MaxDeviceIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// issue signs a token for id bound to deviceID.
func (ts *TokenService) issue(id *Identity, deviceID, aud string, scopes []string, clientID string) (string, time.Time, error) {
	ts.mu.Lock()
	now := ts.now()
	if err := ts.maintainLocked(now); err != nil {
		ts.mu.Unlock()
		return "", time.Time{}, err
	}
	sk := ts.current
	ts.mu.Unlock()

	exp := now.Add(ts.cfg.TokenLifetime)
	if id.Expiry.Before(exp) {
		exp = id.Expiry
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", time.Time{}, err
	}
	claims := map[string]any{
		"iss":       ts.cfg.Issuer,
		"sub":       id.User,
		"aud":       aud,
		"iat":       now.Unix(),
		"exp":       exp.Unix(),
		"jti":       base64.RawURLEncoding.EncodeToString(jti[:]),
		"client_id": clientID,
		"did":       deviceID,
		"src_iss":   id.Issuer,
		"src_sub":   id.Subject,
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	if len(id.Groups) > 0 {
		claims["groups"] = id.Groups
	}
	if len(id.Capabilities) > 0 {
		claims["xms_cc"] = id.Capabilities
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", time.Time{}, err
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, sk.kid)
	_ = hdr.Set(jws.TypeKey, DefaultTyp)
	signed, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(sk.alg), sk.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", time.Time{}, err
	}
	return string(signed), exp, nil
}
