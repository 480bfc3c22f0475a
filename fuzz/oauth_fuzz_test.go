package fuzz

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/oauth"
	"github.com/easgate/easgate/oauth/oauthtest"
)

// oauthStaticKeys is an in-process key source: the fuzz target never touches the network.
type oauthStaticKeys []byte

func (s oauthStaticKeys) FetchJWKS(context.Context) ([]byte, error) { return s, nil }

var (
	oauthFuzzOnce      sync.Once
	oauthFuzzValidator *oauth.Validator
	oauthFuzzToken     string
)

const oauthFuzzIssuer = "https://issuer.fuzz.example"

// oauthFuzzSetup builds a Validator trusting one ES256 key (served from memory) and one valid
// token for it, at a fixed clock so seeds never expire.
func oauthFuzzSetup(tb testing.TB) {
	oauthFuzzOnce.Do(func() {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		k := &oauthtest.Key{Kid: "fuzz-key", Alg: "ES256", Priv: priv}
		jwks, _ := json.Marshal(map[string]any{"keys": []any{oauthtest.PublicJWK(k)}})
		now := time.Unix(1_800_000_000, 0)
		v, err := oauth.NewValidator(oauth.ValidatorConfig{
			Issuers: []oauth.IssuerConfig{{
				Issuer: oauthFuzzIssuer, Keys: oauthStaticKeys(jwks), Audiences: []string{"api://fuzz"},
				MinRefreshInterval: time.Hour,
			}},
			TokenCacheEntries: -1,
			Now:               func() time.Time { return now },
		})
		if err != nil {
			tb.Fatal(err)
		}
		oauthFuzzValidator = v
		oauthFuzzToken = oauthtest.MintWith(k, map[string]any{"typ": "at+jwt"}, map[string]any{
			"iss": oauthFuzzIssuer, "aud": "api://fuzz", "sub": "s", "upn": "u@fuzz.example",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		})
	})
}

func oauthB64JSON(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// FuzzBearerHeader feeds arbitrary Authorization header values through the RFC 6750
// header parser, the JOSE pre-parse and the full Validator (with an in-memory key set).
// Invariants: no panic; the token returned aliases the header and is within the size
// limit; every failure is an *oauth.Error with a 400/401/403 status and a challenge free
// of CR/LF; success is only possible for a correctly signed token and yields a user.
func FuzzBearerHeader(f *testing.F) {
	oauthFuzzSetup(f)
	seeds := []string{
		"Bearer " + oauthFuzzToken,
		"bearer  " + oauthFuzzToken + "  ",
		"Bearer " + oauthB64JSON(map[string]string{"alg": "none"}) + "." + oauthB64JSON(map[string]any{"iss": oauthFuzzIssuer}) + ".",
		"Bearer " + oauthB64JSON(map[string]any{"alg": "ES256", "kid": "fuzz-key", "jku": "https://evil/jwks"}) + ".e30.AAAA",
		"Bearer " + oauthB64JSON(map[string]any{"alg": "ES256", "kid": "../../etc/passwd"}) + ".e30.AAAA",
		"Bearer " + oauthB64JSON(map[string]any{"alg": "ES256", "crit": []string{"x"}, "x": 1}) + ".e30.AAAA",
		"Bearer " + oauthB64JSON(map[string]any{"alg": "HS256", "typ": "at+jwt"}) + ".e30.AAAA",
		"Bearer a.b.c.d.e",
		"Basic dXNlcjpwYXNz",
		"Bearer",
		"",
		"Bearer a+b/c==",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		limits := oauth.Limits{MaxAuthorizationBytes: 4096}
		tok, err := oauth.ParseAuthorization(header, limits)
		if err == nil {
			if len(tok) == 0 || len(tok) > len(header) || len(header) > 4096 {
				t.Fatalf("token %d bytes from header %d bytes", len(tok), len(header))
			}
			if !bytes.Contains(header, tok) {
				t.Fatal("token is not part of the header")
			}
			_, _ = oauth.PeekHeader(tok, limits)
		} else {
			oauthCheckErr(t, err)
		}
		_ = oauth.QueryHasAccessToken(string(header))

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		id, err := oauthFuzzValidator.Authenticate(ctx, header)
		if err != nil {
			oauthCheckErr(t, err)
			return
		}
		if id == nil || id.User == "" || id.Issuer != oauthFuzzIssuer {
			t.Fatalf("accepted with identity %+v", id)
		}
	})
}

func oauthCheckErr(t *testing.T, err error) {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error %T %v is not *oauth.Error", err, err)
	}
	switch oe.Status {
	case 400, 401, 403:
	default:
		t.Fatalf("status %d", oe.Status)
	}
	if c := oe.Challenge(); bytes.ContainsAny([]byte(c), "\r\n") {
		t.Fatalf("challenge %q", c)
	}
}
