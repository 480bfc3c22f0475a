package oauth

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easgate/easgate/oauth/oauthtest"
)

// runConcurrent authenticates each token from n goroutines at once and returns how many
// failed.
func runConcurrent(t *testing.T, v *Validator, n int, tok func(i int) string) int64 {
	t.Helper()
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := v.Authenticate(ctx, bearer(tok(i))); err != nil {
				failed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	return failed.Load()
}

func TestJWKSUnknownKidSingleFlight1000(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) { c.TokenCacheEntries = -1 })
	claims := is.Claims("a@x", testAud, time.Hour)
	mustAuth(t, v, is.Mint(claims))
	stranger, _ := oauthtest.GenerateKey(ES256)
	bogus := oauthtest.MintWith(&oauthtest.Key{Kid: "unknown", Alg: ES256, Priv: stranger}, map[string]any{"typ": "at+jwt"}, claims)
	failed := runConcurrent(t, v, 1000, func(int) string { return bogus })
	if failed != 1000 {
		t.Fatalf("%d of 1000 unknown-kid tokens refused", failed)
	}
	if f := is.Fetches(); f != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (initial + one forced refresh)", f)
	}
}

// Key rotation: the issuer publishes a new key and signs with it; the first request with
// the new kid refreshes once and 200 concurrent requests (old and new kids) all succeed.
// Then the old key is unpublished and the new one keeps working.
func TestJWKSRotationNoBurstOf401(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) { c.TokenCacheEntries = -1 })
	old := is.SigningKey()
	mustAuth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	if _, err := is.Rotate(ES256); err != nil {
		t.Fatal(err)
	}
	toks := make([]string, 40) // cycled over 200 concurrent requests
	for i := range toks {
		if i%2 == 0 {
			toks[i] = is.Mint(is.Claims("new@x", testAud, time.Hour))
		} else {
			toks[i] = oauthtest.MintWith(old, map[string]any{"typ": "at+jwt"}, is.Claims("old@x", testAud, time.Hour))
		}
	}
	if failed := runConcurrent(t, v, 200, func(i int) string { return toks[i%len(toks)] }); failed != 0 {
		t.Fatalf("%d requests failed during rotation", failed)
	}
	if f := is.Fetches(); f != 2 {
		t.Fatalf("fetches %d, want 2", f)
	}
	is.RemoveKey(old.Kid)
	ik := (*v.issuers.Load())[is.Issuer]
	if fl := ik.refresh(time.Now(), 0, true, false); fl != nil {
		<-fl.done
	}
	mustAuth(t, v, is.Mint(is.Claims("new@x", testAud, time.Hour)))
	_, err := auth(t, v, oauthtest.MintWith(old, map[string]any{"typ": "at+jwt"}, is.Claims("old@x", testAud, time.Hour)))
	wantReason(t, err, CodeInvalidToken, ReasonUnknownKey)
}

func TestJWKSDownLastGoodSetServesAndAlerts(t *testing.T) {
	is := newIssuer(t, RS256)
	clk := &fixedClock{t: time.Now()}
	var stale atomic.Int64
	var staleAge atomic.Int64
	ic := issuerConfig(is)
	ic.MaxStaleness = 2 * time.Hour
	v := newValidator(t, []IssuerConfig{ic}, func(c *ValidatorConfig) {
		c.Now = clk.Now
		c.TokenCacheEntries = -1
		c.Hooks.OnStale = func(_ string, age time.Duration, _ error) { stale.Add(1); staleAge.Store(int64(age)) }
	})
	claims := func() map[string]any {
		c := is.Claims("a@x", testAud, time.Hour)
		c["iat"], c["nbf"], c["exp"] = clk.Now().Unix(), clk.Now().Unix(), clk.Now().Add(time.Hour).Unix()
		return c
	}
	mustAuth(t, v, is.Mint(claims()))
	is.SetMode(oauthtest.ModeDown)
	// Past RefreshInterval: background refresh fails, the last good set still serves.
	clk.Set(clk.Now().Add(DefaultRefreshInterval + time.Minute))
	for range 3 {
		mustAuth(t, v, is.Mint(claims()))
	}
	waitFor(t, func() bool { return is.Fetches() >= 2 })
	if stale.Load() != 0 {
		t.Fatalf("stale alert before MaxStaleness")
	}
	// Past MaxStaleness: still served, and the alert fires.
	clk.Set(clk.Now().Add(3 * time.Hour))
	mustAuth(t, v, is.Mint(claims()))
	waitFor(t, func() bool { return stale.Load() >= 1 })
	if time.Duration(staleAge.Load()) < 3*time.Hour {
		t.Fatalf("stale age %v", time.Duration(staleAge.Load()))
	}
	// Recovery.
	is.SetMode(oauthtest.ModeNormal)
	clk.Set(clk.Now().Add(DefaultMinRefreshInterval + time.Second))
	mustAuth(t, v, is.Mint(claims()))
	ik := (*v.issuers.Load())[is.Issuer]
	waitFor(t, func() bool { s := ik.set.Load(); return s.fetched.Equal(clk.Now()) })
}

// Nothing loaded and the endpoint down: refused (fail closed), alert, no fetch storm.
func TestJWKSDownAtStartFailsClosed(t *testing.T) {
	is := newIssuer(t, ES256)
	is.SetMode(oauthtest.ModeDown)
	var alerts atomic.Int64
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) {
		c.Hooks.OnStale = func(string, time.Duration, error) { alerts.Add(1) }
	})
	tok := is.Mint(is.Claims("a@x", testAud, time.Hour))
	if failed := runConcurrent(t, v, 200, func(int) string { return tok }); failed != 200 {
		t.Fatalf("%d of 200 refused", failed)
	}
	if f := is.Fetches(); f != 1 || alerts.Load() != 1 {
		t.Fatalf("fetches %d alerts %d, want 1 and 1", f, alerts.Load())
	}
	_, err := auth(t, v, tok)
	wantReason(t, err, CodeInvalidToken, ReasonKeysUnavailable)
	if err := v.Preload(context.Background()); err == nil {
		t.Fatal("Preload succeeded against a down issuer")
	}
	if st := v.Status(); len(st) != 1 || st[0].Keys != 0 || !st[0].LoadedAt.IsZero() || st[0].Fetches != 2 {
		t.Fatalf("status %+v", st)
	}
	is.SetMode(oauthtest.ModeNormal)
	if err := v.Preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := v.Status(); st[0].Keys != 1 || st[0].LoadedAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	mustAuth(t, v, tok)
}

// A slow endpoint: one fetch in flight, bounded by the fetch timeout; waiting requests
// give up on their own deadline; no pile-up of connections.
func TestJWKSSlowTimeoutNoPileUp(t *testing.T) {
	is := newIssuer(t, ES256)
	is.SetSlow(5 * time.Second)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) {
		c.Fetch.Timeout = 300 * time.Millisecond
	})
	tok := is.Mint(is.Claims("a@x", testAud, time.Hour))
	goroutines := runtime.NumGoroutine()
	start := time.Now()
	if failed := runConcurrent(t, v, 300, func(int) string { return tok }); failed != 300 {
		t.Fatalf("%d of 300 refused", failed)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("requests waited %v: the fetch timeout did not bound them", d)
	}
	if f := is.Fetches(); f != 1 {
		t.Fatalf("slow endpoint received %d fetches, want 1", f)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= goroutines+10 })
	// Once it answers promptly again, validation recovers (after the retry interval).
	is.SetMode(oauthtest.ModeNormal)
	ik := (*v.issuers.Load())[is.Issuer]
	ik.mu.Lock()
	ik.lastAttempt = time.Time{}
	ik.mu.Unlock()
	mustAuth(t, v, tok)
}

// A caller whose own deadline is shorter than the fetch gives up without cancelling the
// fetch for others.
func TestJWKSWaiterDeadline(t *testing.T) {
	is := newIssuer(t, ES256)
	is.SetSlow(300 * time.Millisecond)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	tok := is.Mint(is.Claims("a@x", testAud, time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := v.Authenticate(ctx, bearer(tok))
	cancel()
	wantReason(t, err, CodeInvalidToken, ReasonContextCancelled)
	ik := (*v.issuers.Load())[is.Issuer]
	waitFor(t, func() bool { return ik.set.Load() != nil })
	mustAuth(t, v, tok)
}

// Poisoned key set (a MITM serving other material under the genuine kid): genuine tokens
// fail closed with bad_signature — no fallback to other keys, no retry storm.
func TestJWKSPoisonedSetFailsClosed(t *testing.T) {
	is := newIssuer(t, ES256)
	is.SetMode(oauthtest.ModePoisoned)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	tok := is.Mint(is.Claims("a@x", testAud, time.Hour))
	for range 3 {
		_, err := auth(t, v, tok)
		wantReason(t, err, CodeInvalidToken, ReasonBadSignature)
	}
	if f := is.Fetches(); f != 1 {
		t.Fatalf("fetches %d: a bad signature must not trigger refreshes", f)
	}
}

// A set carrying two keys under one kid is ambiguous: refused as a whole, the last good set
// keeps serving, and the attacker's key is never used.
func TestJWKSDuplicateKidSetRefused(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) { c.TokenCacheEntries = -1 })
	genuine := is.SigningKey()
	mustAuth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	is.SetMode(oauthtest.ModeDuplicateKid)
	forceRefresh(t, v, is)
	mustAuth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	evil := oauthtest.MintWith(is.PoisonKey(genuine), map[string]any{"typ": "at+jwt"}, is.Claims("admin@x", testAud, time.Hour))
	_, err := auth(t, v, evil)
	wantReason(t, err, CodeInvalidToken, ReasonBadSignature)
}

func TestJWKSMalformedKeepsLastGoodSet(t *testing.T) {
	is := newIssuer(t, EdDSA)
	var fetchErrs atomic.Int64
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) {
		c.TokenCacheEntries = -1
		c.Hooks.OnFetch = func(_ string, _ time.Duration, err error) {
			if err != nil {
				fetchErrs.Add(1)
			}
		}
	})
	mustAuth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	is.SetMode(oauthtest.ModeMalformed)
	forceRefresh(t, v, is)
	mustAuth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	if fetchErrs.Load() != 1 {
		t.Fatalf("fetch errors %d", fetchErrs.Load())
	}
}

// Sets with private keys, symmetric keys only, or oversized bodies are refused.
func TestJWKSRefusedSets(t *testing.T) {
	priv, _ := oauthtest.GenerateKey(ES256)
	k := &oauthtest.Key{Kid: "k", Alg: ES256, Priv: priv}
	pub := oauthtest.PublicJWK(k)
	if _, err := parseKeySet([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`), 64, time.Now()); err == nil {
		t.Error("symmetric-only set accepted")
	}
	withD := map[string]any{}
	for n, v := range pub {
		withD[n] = v
	}
	withD["d"] = "AAAA"
	body := mustJSON(map[string]any{"keys": []any{withD}})
	if _, err := parseKeySet(body, 64, time.Now()); err == nil {
		t.Error("private key accepted")
	}
	many := make([]any, 65)
	for i := range many {
		many[i] = pub
	}
	if _, err := parseKeySet(mustJSON(map[string]any{"keys": many}), 64, time.Now()); err == nil {
		t.Error("oversized set accepted")
	}
	// Keys with alg set are honoured: an RS256-only key is not used for PS256.
	withAlg := map[string]any{}
	for n, v := range pub {
		withAlg[n] = v
	}
	withAlg["alg"] = "ES256"
	ks, err := parseKeySet(mustJSON(map[string]any{"keys": []any{withAlg}}), 64, time.Now())
	if err != nil || ks.lookup("k", ES256) == nil || ks.lookup("k", EdDSA) != nil {
		t.Fatalf("alg-tagged key: %v", err)
	}
	// No kid in the token: accepted only when exactly one compatible key exists.
	if ks.lookup("", ES256) == nil {
		t.Fatal("single key not found without kid")
	}
}

func TestJWKSFetchBodyCap(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) { c.Fetch.MaxBytes = 64 })
	_, err := auth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	wantReason(t, err, CodeInvalidToken, ReasonKeysUnavailable)
}

func TestJWKSNoRedirects(t *testing.T) {
	is := newIssuer(t, ES256)
	redir := httptest.NewServer(http.RedirectHandler(is.JWKSURL, http.StatusFound))
	t.Cleanup(redir.Close)
	ic := issuerConfig(is)
	ic.JWKSURL = redir.URL
	v := newValidator(t, []IssuerConfig{ic}, nil)
	_, err := auth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	wantReason(t, err, CodeInvalidToken, ReasonKeysUnavailable)
	if is.Fetches() != 0 {
		t.Fatal("redirect followed")
	}
}

func TestOIDCDiscovery(t *testing.T) {
	is := newIssuer(t, PS256)
	ic := issuerConfig(is)
	ic.JWKSURL, ic.DiscoveryURL = "", is.DiscoveryURL
	v := newValidator(t, []IssuerConfig{ic}, nil)
	mustAuth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	// Discovery document speaking for another issuer is refused.
	other := newIssuer(t, ES256)
	ic2 := issuerConfig(other)
	ic2.JWKSURL, ic2.DiscoveryURL = "", is.DiscoveryURL
	v2 := newValidator(t, []IssuerConfig{ic2}, nil)
	err := v2.Preload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Preload: %v", err)
	}
}

func forceRefresh(t *testing.T, v *Validator, is *oauthtest.Issuer) {
	t.Helper()
	ik := (*v.issuers.Load())[is.Issuer]
	fl := ik.refresh(time.Now(), 0, true, false)
	if fl == nil {
		t.Fatal("no refresh started")
	}
	<-fl.done
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// HTTPS with a private CA given as a CA file; without it the system roots refuse the
// test certificate.
func TestJWKSHTTPSWithCAFile(t *testing.T) {
	is := newIssuer(t, ES256)
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(is.JWKS())
	}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	ic := issuerConfig(is)
	ic.JWKSURL = tlsSrv.URL + "/keys"
	tok := is.Mint(is.Claims("a@x", testAud, time.Hour))

	v := newValidator(t, []IssuerConfig{ic}, func(c *ValidatorConfig) {
		c.Fetch = FetchConfig{CAFile: caFile, Timeout: 2 * time.Second}
	})
	mustAuth(t, v, tok)

	sys := newValidator(t, []IssuerConfig{ic}, func(c *ValidatorConfig) { c.Fetch = FetchConfig{Timeout: 2 * time.Second} })
	_, err := auth(t, sys, tok)
	wantReason(t, err, CodeInvalidToken, ReasonKeysUnavailable)

	if _, err := NewValidator(ValidatorConfig{Issuers: []IssuerConfig{ic}, Fetch: FetchConfig{CAFile: filepath.Join(t.TempDir(), "missing.pem")}}); err == nil {
		t.Fatal("missing CA file accepted")
	}
}
