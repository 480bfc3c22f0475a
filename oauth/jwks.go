package oauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// fetcher retrieves JWKS and discovery documents over HTTP(S).
type fetcher struct {
	cfg    FetchConfig
	client *http.Client
}

func newFetcher(cfg FetchConfig) (*fetcher, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultFetchTimeout
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxJWKSBytes
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("oauth: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("oauth: CA file holds no PEM certificates")
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &fetcher{cfg: cfg, client: &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// Redirects are not followed: a redirect could lead from https to http or to a
		// host the operator never configured.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

var errFetchTooLarge = errors.New("oauth: fetched document exceeds size limit")

func (f *fetcher) get(ctx context.Context, url string) ([]byte, error) {
	if err := checkFetchURL(url, f.cfg); err != nil {
		return nil, fmt.Errorf("oauth: fetch %s: %w", url, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("oauth: fetch: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oauth: fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("oauth: fetch %s: status %d", url, resp.StatusCode)
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return nil, errFetchTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("oauth: fetch %s: %w", url, err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return nil, errFetchTooLarge
	}
	return body, nil
}

// discover reads OIDC discovery / RFC 8414 metadata and returns jwks_uri after checking
// that the document speaks for the configured issuer (OIDC Discovery §4.3).
func (f *fetcher) discover(ctx context.Context, url, issuer string) (string, error) {
	body, err := f.get(ctx, url)
	if err != nil {
		return "", err
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return "", errors.New("oauth: discovery document is not JSON")
	}
	if md.Issuer != issuer {
		return "", fmt.Errorf("oauth: discovery issuer %q does not match configured issuer", md.Issuer)
	}
	if md.JWKSURI == "" {
		return "", errors.New("oauth: discovery document has no jwks_uri")
	}
	if err := checkFetchURL(md.JWKSURI, f.cfg); err != nil {
		return "", fmt.Errorf("oauth: discovery jwks_uri: %w", err)
	}
	return md.JWKSURI, nil
}

// flight is one JWKS refresh in progress; waiters block on done.
type flight struct {
	done chan struct{}
	err  error
}

// issuerKeys is the JWKS cache of one issuer. Reads are lock-free (atomic pointer to an
// immutable set); refreshes are single-flight and rate-limited.
type issuerKeys struct {
	pol   *issuerPolicy
	f     *fetcher
	hooks *Hooks
	now   func() time.Time

	set atomic.Pointer[keySet]

	mu          sync.Mutex
	inflight    *flight
	lastAttempt time.Time // any fetch
	lastForced  time.Time // fetch caused by an unknown kid
	jwksURL     string    // resolved from discovery
	fetches     atomic.Int64
}

// key returns the verification key for (kid, alg), refreshing the set when the kid is
// unknown and the issuer's MinRefreshInterval allows it.
func (ik *issuerKeys) key(ctx context.Context, kid, alg string) (*verKey, *Error) {
	s := ik.set.Load()
	now := ik.now()
	if s != nil {
		if k := s.lookup(kid, alg); k != nil {
			if now.Sub(s.fetched) > ik.pol.refresh {
				ik.refresh(now, ik.pol.minRefresh, false, false)
			}
			return k, nil
		}
	}
	// Unknown kid, or nothing loaded yet. With nothing loaded, retry faster (but still
	// rate-limited, so a dead endpoint is not hammered by every request).
	interval := ik.pol.minRefresh
	if s == nil && interval > 10*time.Second {
		interval = 10 * time.Second
	}
	fl := ik.refresh(now, interval, true, s != nil)
	if fl == nil {
		if s == nil {
			return nil, errKeysUnavailable
		}
		return nil, errUnknownKey
	}
	select {
	case <-fl.done:
	case <-ctx.Done():
		return nil, errCancelled
	}
	s = ik.set.Load()
	if s == nil {
		return nil, errKeysUnavailable
	}
	if k := s.lookup(kid, alg); k != nil {
		return k, nil
	}
	return nil, errUnknownKey
}

// refresh joins the refresh in flight, or starts one if the last attempt of its kind is
// older than interval. Forced refreshes (an unknown kid while a set is loaded) are limited
// by the last forced one only, so a routine refresh just before a key rotation does not
// delay picking up the new key; all other refreshes by the last attempt of any kind. It
// returns nil when neither happened. The fetch runs on its own goroutine with its own
// timeout, so a waiter giving up never cancels it for the others.
func (ik *issuerKeys) refresh(now time.Time, interval time.Duration, join, forced bool) *flight {
	ik.mu.Lock()
	defer ik.mu.Unlock()
	if ik.inflight != nil {
		if join {
			return ik.inflight
		}
		return nil
	}
	last := ik.lastAttempt
	if forced {
		last = ik.lastForced
	}
	if !last.IsZero() && now.Sub(last) < interval {
		return nil
	}
	ik.lastAttempt = now
	if forced {
		ik.lastForced = now
	}
	fl := &flight{done: make(chan struct{})}
	ik.inflight = fl
	go ik.run(fl)
	return fl
}

func (ik *issuerKeys) run(fl *flight) {
	ctx, cancel := context.WithTimeout(context.Background(), ik.f.cfg.Timeout)
	start := time.Now()
	set, err := ik.load(ctx)
	cancel()
	ik.fetches.Add(1)
	now := ik.now()
	if err == nil {
		set.fetched = now
		ik.set.Store(set)
	}
	if h := ik.hooks.OnFetch; h != nil {
		h(ik.pol.cfg.Issuer, time.Since(start), err)
	}
	if err != nil {
		if h := ik.hooks.OnStale; h != nil {
			old := ik.set.Load()
			switch {
			case old == nil:
				h(ik.pol.cfg.Issuer, 0, err)
			case now.Sub(old.fetched) > ik.pol.stale:
				h(ik.pol.cfg.Issuer, now.Sub(old.fetched), err)
			}
		}
	}
	ik.mu.Lock()
	fl.err = err
	ik.inflight = nil
	ik.mu.Unlock()
	close(fl.done)
}

func (ik *issuerKeys) load(ctx context.Context) (*keySet, error) {
	var body []byte
	var err error
	cfg := &ik.pol.cfg
	switch {
	case cfg.Keys != nil:
		body, err = cfg.Keys.FetchJWKS(ctx)
	case cfg.JWKSURL != "":
		body, err = ik.f.get(ctx, cfg.JWKSURL)
	default:
		ik.mu.Lock()
		u := ik.jwksURL
		ik.mu.Unlock()
		if u == "" {
			u, err = ik.f.discover(ctx, cfg.DiscoveryURL, cfg.Issuer)
			if err != nil {
				return nil, err
			}
		}
		body, err = ik.f.get(ctx, u)
		ik.mu.Lock()
		if err != nil {
			ik.jwksURL = "" // rediscover next time: the metadata may have moved the keys
		} else {
			ik.jwksURL = u
		}
		ik.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return parseKeySet(body, ik.f.cfg.MaxKeys, ik.now())
}
