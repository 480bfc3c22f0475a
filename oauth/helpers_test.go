package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/oauth/oauthtest"
)

const testAud = "api://easgate"

func newIssuer(t testing.TB, alg string) *oauthtest.Issuer {
	t.Helper()
	return oauthtest.New(t, alg)
}

func issuerConfig(is *oauthtest.Issuer) IssuerConfig {
	return IssuerConfig{
		Issuer:             is.Issuer,
		JWKSURL:            is.JWKSURL,
		Audiences:          []string{testAud},
		MinRefreshInterval: time.Minute,
	}
}

func testFetch() FetchConfig {
	return FetchConfig{InsecureAllowLoopbackHTTP: true, Timeout: 2 * time.Second}
}

func newValidator(t testing.TB, ics []IssuerConfig, mut func(*ValidatorConfig)) *Validator {
	t.Helper()
	cfg := ValidatorConfig{Issuers: ics, Fetch: testFetch()}
	if mut != nil {
		mut(&cfg)
	}
	v, err := NewValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func bearer(tok string) []byte { return []byte("Bearer " + tok) }

// wantReason asserts err is an *Error with the given reason and code.
func wantReason(t *testing.T, err error, code string, reason Reason) *Error {
	t.Helper()
	var oe *Error
	if !errors.As(err, &oe) {
		t.Fatalf("error %v (%T), want *Error %s/%s", err, err, code, reason)
	}
	if oe.Code != code || oe.Reason != reason {
		t.Fatalf("got %s/%s (%v), want %s/%s", oe.Code, oe.Reason, err, code, reason)
	}
	return oe
}

func auth(t *testing.T, v *Validator, tok string) (*Identity, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return v.Authenticate(ctx, bearer(tok))
}

func mustAuth(t *testing.T, v *Validator, tok string) *Identity {
	t.Helper()
	id, err := auth(t, v, tok)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return id
}

// fixedClock is a settable clock for boundary tests.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
