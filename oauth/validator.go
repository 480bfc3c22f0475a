package oauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Validator checks bearer access tokens against a set of trusted issuers. It is safe for
// concurrent use; create one per process and Close it on shutdown.
type Validator struct {
	realm  string
	limits Limits
	hooks  Hooks
	now    func() time.Time
	fetch  *fetcher

	issuers atomic.Pointer[map[string]*issuerKeys]
	addMu   sync.Mutex

	cache *ristretto.Cache[uint64, *cacheEntry]

	revokedFn  func(*Identity) bool
	revokedMu  sync.RWMutex
	revoked    map[string]struct{}
	revokedLen atomic.Int32
}

// cacheEntry is one verified token. The cache key is the first 8 bytes of the token's
// SHA-256; the full digest is kept and compared so a 64-bit collision cannot hand one
// token another token's identity. The token itself is never stored.
type cacheEntry struct {
	digest [sha256.Size]byte
	id     *Identity
}

// NewValidator validates cfg (all errors at once) and builds a Validator. It does not
// fetch keys; call Preload to fail fast on unreachable issuers.
func NewValidator(cfg ValidatorConfig) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f, err := newFetcher(cfg.Fetch)
	if err != nil {
		return nil, err
	}
	v := &Validator{
		realm:     cfg.Realm,
		limits:    cfg.Limits.withDefaults(),
		hooks:     cfg.Hooks,
		now:       cfg.Now,
		fetch:     f,
		revokedFn: cfg.Revoked,
		revoked:   map[string]struct{}{},
	}
	if v.realm == "" {
		v.realm = DefaultRealm
	}
	if v.now == nil {
		v.now = time.Now
	}
	m := map[string]*issuerKeys{}
	for _, ic := range cfg.Issuers {
		m[ic.Issuer] = v.newIssuerKeys(ic)
	}
	v.issuers.Store(&m)
	if n := cfg.TokenCacheEntries; n >= 0 {
		if n == 0 {
			n = DefaultTokenCacheEntries
		}
		c, err := ristretto.NewCache(&ristretto.Config[uint64, *cacheEntry]{
			NumCounters:        int64(n) * 10,
			MaxCost:            int64(n),
			BufferItems:        64,
			IgnoreInternalCost: true,
			KeyToHash:          func(k uint64) (uint64, uint64) { return k, 0 },
		})
		if err != nil {
			return nil, fmt.Errorf("oauth: token cache: %w", err)
		}
		v.cache = c
	}
	return v, nil
}

func (v *Validator) newIssuerKeys(ic IssuerConfig) *issuerKeys {
	return &issuerKeys{pol: newIssuerPolicy(ic), f: v.fetch, hooks: &v.hooks, now: v.now}
}

// AddIssuer trusts one more issuer at run time, typically the gateway's own TokenService
// (TokenService.IssuerConfig). The issuer must not be configured already.
func (v *Validator) AddIssuer(ic IssuerConfig) error {
	if errs := ic.validate(v.fetch.cfg); len(errs) > 0 {
		return errors.Join(errs...)
	}
	v.addMu.Lock()
	defer v.addMu.Unlock()
	old := *v.issuers.Load()
	if _, dup := old[ic.Issuer]; dup {
		return fmt.Errorf("oauth: issuer %q configured twice", ic.Issuer)
	}
	m := make(map[string]*issuerKeys, len(old)+1)
	for k, e := range old {
		m[k] = e
	}
	m[ic.Issuer] = v.newIssuerKeys(ic)
	v.issuers.Store(&m)
	return nil
}

// Preload fetches every issuer's keys once and returns the errors of those that failed
// (the Validator still works: failed issuers are retried on demand).
func (v *Validator) Preload(ctx context.Context) error {
	var errs []error
	for name, ik := range *v.issuers.Load() {
		fl := ik.refresh(v.now(), 0, true, false)
		if fl == nil {
			continue
		}
		select {
		case <-fl.done:
			if fl.err != nil {
				errs = append(errs, fmt.Errorf("oauth: issuer %q: %w", name, fl.err))
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// Close releases the verified-token cache.
func (v *Validator) Close() {
	if v.cache != nil {
		v.cache.Close()
	}
}

// RevokeUser refuses every token of user (compared case-insensitively) from now on,
// cached or not, until UnrevokeUser.
func (v *Validator) RevokeUser(user string) {
	v.revokedMu.Lock()
	v.revoked[strings.ToLower(user)] = struct{}{}
	v.revokedLen.Store(int32(len(v.revoked)))
	v.revokedMu.Unlock()
}

// UnrevokeUser lifts RevokeUser.
func (v *Validator) UnrevokeUser(user string) {
	v.revokedMu.Lock()
	delete(v.revoked, strings.ToLower(user))
	v.revokedLen.Store(int32(len(v.revoked)))
	v.revokedMu.Unlock()
}

func (v *Validator) isRevoked(id *Identity) bool {
	if v.revokedLen.Load() > 0 {
		v.revokedMu.RLock()
		_, r := v.revoked[strings.ToLower(id.User)]
		v.revokedMu.RUnlock()
		if r {
			return true
		}
	}
	return v.revokedFn != nil && v.revokedFn(id)
}

// Authenticate validates the bearer token in an Authorization header value. The header is
// only read during the call (it may be a fasthttp Peek result). On success the returned
// Identity may be shared with other requests: do not modify it. Every failure is an *Error.
func (v *Validator) Authenticate(ctx context.Context, authorization []byte) (*Identity, error) {
	tok, err := ParseAuthorization(authorization, v.limits)
	if err != nil {
		return nil, v.reject("", err.(*Error))
	}
	return v.ValidateToken(ctx, tok)
}

// AuthenticateString is Authenticate for a string header.
func (v *Validator) AuthenticateString(ctx context.Context, authorization string) (*Identity, error) {
	if len(authorization) > v.limits.MaxAuthorizationBytes {
		return nil, v.reject("", errHeaderTooLarge)
	}
	return v.Authenticate(ctx, []byte(authorization))
}

// ValidateToken validates a bare token (the b64token of RFC 6750 §2.1). token is only read
// during the call.
func (v *Validator) ValidateToken(ctx context.Context, token []byte) (*Identity, error) {
	if len(token) > v.limits.MaxAuthorizationBytes {
		return nil, v.reject("", errHeaderTooLarge)
	}
	var digest [sha256.Size]byte
	if v.cache != nil {
		digest = sha256.Sum256(token)
		if e, ok := v.cache.Get(binary.LittleEndian.Uint64(digest[:8])); ok && e.digest == digest {
			if v.now().Before(e.id.Expiry) {
				if v.isRevoked(e.id) {
					return nil, v.reject(e.id.Issuer, errRevoked)
				}
				return e.id, nil
			}
		}
	}
	id, iss, e := v.verify(ctx, token)
	if e != nil {
		return nil, v.reject(iss, e)
	}
	if v.isRevoked(id) {
		return nil, v.reject(iss, errRevoked)
	}
	if v.cache != nil {
		if ttl := id.Expiry.Sub(v.now()); ttl > 0 {
			v.cache.SetWithTTL(binary.LittleEndian.Uint64(digest[:8]), &cacheEntry{digest: digest, id: id}, 1, ttl)
		}
	}
	return id, nil
}

// waitCache blocks until pending cache writes are visible (tests and benchmarks).
func (v *Validator) waitCache() {
	if v.cache != nil {
		v.cache.Wait()
	}
}

func (v *Validator) reject(iss string, e *Error) *Error {
	if h := v.hooks.OnReject; h != nil {
		h(iss, e.Reason)
	}
	return e.with(v.realm)
}

// claimSet is the decoded payload of a token.
type claimSet map[string]json.RawMessage

func (c claimSet) str(name string) (string, bool, bool) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return "", false, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", true, false
	}
	return s, true, true
}

// strs reads a claim that is a string array or a single (space-separated if split) string.
func (c claimSet) strs(name string, split bool) ([]string, bool) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return nil, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if split {
			return strings.Fields(s), true
		}
		return []string{s}, true
	}
	var a []string
	if json.Unmarshal(raw, &a) != nil {
		return nil, false
	}
	return a, true
}

// date reads a NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional.
func (c claimSet) date(name string) (time.Time, bool, bool) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return time.Time{}, false, true
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, true, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, true
}

// Bounds on claim values copied into an Identity.
const (
	maxClaimString = 512
	maxClaimList   = 2048
)

func (v *Validator) verify(ctx context.Context, token []byte) (*Identity, string, *Error) {
	hdr, e := peekHeader(token, v.limits)
	if e != nil {
		return nil, "", e
	}
	switch {
	case strings.EqualFold(hdr.Alg, "none"):
		return nil, "", errAlgNone
	case hdr.Unsafe != "":
		return nil, "", errUnsafeHeader
	case len(hdr.Crit) > 0 || hdr.B64False:
		return nil, "", errCritUnknown
	case strings.EqualFold(hdr.Cty, "JWT"):
		return nil, "", errMalformedToken // nested JWTs are not accepted (RFC 8725 §2.8)
	}
	if _, ok := algKty[hdr.Alg]; !ok {
		return nil, "", errAlgNotAllowed
	}
	_, payloadSeg, sigSeg, _ := splitCompact(token)
	if len(sigSeg) == 0 {
		return nil, "", errMalformedToken
	}
	payload := make([]byte, base64.RawURLEncoding.DecodedLen(len(payloadSeg)))
	n, err := base64.RawURLEncoding.Strict().Decode(payload, payloadSeg)
	if err != nil {
		return nil, "", errMalformedToken
	}
	payload = payload[:n]
	var claims claimSet
	if json.Unmarshal(payload, &claims) != nil {
		return nil, "", errMalformedToken
	}
	iss, _, ok := claims.str("iss")
	if !ok {
		return nil, "", errMalformedToken
	}
	ik := (*v.issuers.Load())[iss]
	if ik == nil {
		return nil, "", errUnknownIssuer
	}
	pol := ik.pol
	if !pol.algs[hdr.Alg] {
		return nil, iss, errAlgNotAllowed
	}
	typ := normalTyp(hdr.Typ)
	if !pol.types[typ] {
		return nil, iss, errWrongType
	}
	key, e := ik.key(ctx, hdr.Kid, hdr.Alg)
	if e != nil {
		return nil, iss, e
	}
	verified, err := jws.Verify(token, jws.WithKey(jwa.SignatureAlgorithm(hdr.Alg), key.raw))
	if err != nil || !bytes.Equal(verified, payload) {
		return nil, iss, errBadSignature
	}
	return v.identity(pol, claims, typ)
}

func (v *Validator) identity(pol *issuerPolicy, claims claimSet, typ string) (*Identity, string, *Error) {
	iss := pol.cfg.Issuer
	now := v.now()
	exp, present, ok := claims.date("exp")
	if !ok {
		return nil, iss, errBadClaim
	}
	if !present {
		return nil, iss, errMissingExp
	}
	if !now.Before(exp.Add(pol.skew)) {
		return nil, iss, errExpired
	}
	if nbf, present, ok := claims.date("nbf"); !ok {
		return nil, iss, errBadClaim
	} else if present && now.Add(pol.skew).Before(nbf) {
		return nil, iss, errNotYetValid
	}
	iat, present, ok := claims.date("iat")
	if !ok {
		return nil, iss, errBadClaim
	}
	if present && now.Add(pol.skew).Before(iat) {
		return nil, iss, errIatFuture
	}
	if typ == "jwt" {
		// A token typed only "JWT" may be an OpenID Connect ID token, which proves a login
		// to a client and must never be accepted as an access token (RFC 9068 §1).
		if _, has := claims["nonce"]; has {
			return nil, iss, errIDToken
		}
		if _, has := claims["at_hash"]; has {
			return nil, iss, errIDToken
		}
	}
	auds, ok := claims.strs("aud", false)
	if !ok {
		return nil, iss, errBadClaim
	}
	aud := ""
	for _, a := range auds {
		if pol.audiences[a] {
			aud = a
			break
		}
	}
	if aud == "" {
		return nil, iss, errWrongAudience
	}
	id := &Identity{Issuer: iss, Audience: aud, Expiry: exp, IssuedAt: iat}
	var s string
	if s, _, ok = claims.str("sub"); !ok || len(s) > maxClaimString {
		return nil, iss, errBadClaim
	}
	id.Subject = s
	if s, _, ok = claims.str("jti"); !ok || len(s) > maxClaimString {
		return nil, iss, errBadClaim
	}
	id.TokenID = s
	scopeClaim := "scope"
	if _, has := claims["scp"]; has {
		scopeClaim = "scp"
	}
	if id.Scopes, ok = claims.strs(scopeClaim, true); !ok || len(id.Scopes) > maxClaimList {
		return nil, iss, errBadClaim
	}
	if id.Roles, ok = claims.strs("roles", false); !ok || len(id.Roles) > maxClaimList {
		return nil, iss, errBadClaim
	}
	if id.Groups, ok = claims.strs(pol.groups, false); !ok || len(id.Groups) > maxClaimList {
		return nil, iss, errBadClaim
	}
	if id.Capabilities, ok = claims.strs(pol.caps, false); !ok || len(id.Capabilities) > maxClaimList {
		return nil, iss, errBadClaim
	}
	for _, name := range pol.userClaims {
		u, present, ok := claims.str(name)
		if !ok {
			return nil, iss, errBadClaim
		}
		if present && u != "" {
			if len(u) > maxClaimString {
				return nil, iss, errBadClaim
			}
			id.User = u
			break
		}
	}
	if id.User == "" {
		return nil, iss, errNoUser
	}
	if pol.cfg.DeviceIDClaim != "" {
		d, _, ok := claims.str(pol.cfg.DeviceIDClaim)
		if !ok || len(d) > maxClaimString {
			return nil, iss, errBadClaim
		}
		id.DeviceID = d
	}
	for _, want := range pol.cfg.RequiredScopes {
		if !id.HasScope(want) {
			return nil, iss, &Error{Code: CodeInsufficientScope, Status: http.StatusForbidden,
				Reason: ReasonMissingScope, Description: "insufficient scope",
				Scope: strings.Join(pol.cfg.RequiredScopes, " ")}
		}
	}
	for _, want := range pol.cfg.RequiredRoles {
		found := false
		for _, r := range id.Roles {
			if r == want {
				found = true
				break
			}
		}
		if !found {
			return nil, iss, &Error{Code: CodeInsufficientScope, Status: http.StatusForbidden,
				Reason: ReasonMissingRole, Description: "insufficient role"}
		}
	}
	return id, iss, nil
}

// IssuerStatus is a snapshot of one issuer's key cache, for readiness checks and metrics.
type IssuerStatus struct {
	Issuer string
	// Keys is the number of usable keys in the current set; 0 when none was ever loaded.
	Keys int
	// LoadedAt is when the current set was fetched (zero when none was).
	LoadedAt time.Time
	// Fetches counts fetch attempts, successful or not.
	Fetches int64
}

// Status reports every trusted issuer's key cache, in no particular order.
func (v *Validator) Status() []IssuerStatus {
	m := *v.issuers.Load()
	out := make([]IssuerStatus, 0, len(m))
	for name, ik := range m {
		st := IssuerStatus{Issuer: name, Fetches: ik.fetches.Load()}
		if s := ik.set.Load(); s != nil {
			st.Keys, st.LoadedAt = len(s.all), s.fetched
		}
		out = append(out, st)
	}
	return out
}
