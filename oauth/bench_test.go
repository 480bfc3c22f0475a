package oauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/easgate/easgate/oauth/oauthtest"
)

// benchClaims is a realistic Entra-sized claim set (about 1.3 KB once signed with RS256).
func benchClaims(is *oauthtest.Issuer) map[string]any {
	c := is.Claims("alice.example@contoso.onmicrosoft.com", testAud, 24*time.Hour)
	groups := make([]string, 12)
	for i := range groups {
		groups[i] = fmt.Sprintf("6f1c2d3e-4a5b-4c6d-8e9f-%012d", i)
	}
	c["groups"] = groups
	c["xms_cc"] = []string{"cp1"}
	c["name"] = "Alice Example"
	c["tid"] = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	return c
}

var (
	benchSink   *Identity
	benchDigest [32]byte
)

// noAuth is the baseline: what a handler does with the Authorization header when no
// authentication is configured (look at it, hand out a fixed identity).
//
//go:noinline
func noAuth(header []byte, fixed *Identity) (*Identity, error) {
	if len(header) == 0 {
		return nil, ErrNoToken
	}
	return fixed, nil
}

func BenchmarkAuthenticate(b *testing.B) {
	is := oauthtest.New(b, RS256)
	v := newValidator(b, []IssuerConfig{issuerConfig(is)}, nil)
	hdr := bearer(is.Mint(benchClaims(is)))
	ctx := context.Background()
	if _, err := v.Authenticate(ctx, hdr); err != nil {
		b.Fatal(err)
	}
	v.waitCache()
	fixed := &Identity{User: "alice"}
	b.Run("baseline-noauth", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchSink, _ = noAuth(hdr, fixed)
		}
	})
	// The floor of the cached path: hashing the token is its largest cost.
	b.Run("sha256-of-token", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(hdr)))
		for b.Loop() {
			benchDigest = sha256.Sum256(hdr[7:])
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(hdr)))
		for b.Loop() {
			id, err := v.Authenticate(ctx, hdr)
			if err != nil {
				b.Fatal(err)
			}
			benchSink = id
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Authenticate(ctx, hdr); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkFirstVerification measures a cache miss: header checks, key lookup, signature
// verification and claim mapping, per algorithm.
func BenchmarkFirstVerification(b *testing.B) {
	for _, alg := range []string{RS256, PS256, ES256, EdDSA} {
		b.Run(alg, func(b *testing.B) {
			is := oauthtest.New(b, alg)
			v := newValidator(b, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) { c.TokenCacheEntries = -1 })
			hdr := bearer(is.Mint(benchClaims(is)))
			ctx := context.Background()
			if _, err := v.Authenticate(ctx, hdr); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				id, err := v.Authenticate(ctx, hdr)
				if err != nil {
					b.Fatal(err)
				}
				benchSink = id
			}
		})
	}
}

// The cached path performs no allocation (asserted, not only benchmarked).
func TestCachedPathZeroAlloc(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	hdr := bearer(is.Mint(is.Claims("a@x", testAud, time.Hour)))
	mustAuth(t, v, string(hdr[7:]))
	v.waitCache()
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := v.Authenticate(ctx, hdr); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("cached Authenticate allocates %v times", allocs)
	}
}
