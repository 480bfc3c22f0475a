package eas

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults applied by New to zero fields of Config. Each is chosen for EAS traffic:
const (
	// DefaultMaxConns bounds the connections of held requests (Ping, Sync with Wait). Each
	// occupies one upstream connection for up to an hour, so this is sized for one connection
	// per online device of a mid-size fleet rather than for request rate.
	DefaultMaxConns = 10000
	// DefaultMaxRequestConns bounds the connections of everything else. A burst beyond it waits
	// up to MaxConnWait for a free connection instead of opening hundreds at once: each costs
	// both sides a handshake, and a proxy that dials its way through an overload makes it
	// worse for itself and for the upstream.
	DefaultMaxRequestConns = 512
	// DefaultMaxConnWait is how long Forward waits for a free connection when all MaxConns are
	// busy before failing with KindSaturated.
	DefaultMaxConnWait = 1 * time.Second
	// DefaultIdleConnTimeout closes pooled keep-alive connections idle this long. Below Apache's
	// default KeepAliveTimeout (5 s; Z-Push usually sits behind Apache) so the gateway, not the
	// upstream, closes idle connections, which keeps stale-connection resets rare.
	DefaultIdleConnTimeout = 4 * time.Second
	// DefaultDialTimeout bounds TCP connect plus TLS handshake. A context cancelled while dialing
	// is noticed no later than this.
	DefaultDialTimeout = 5 * time.Second
	// DefaultPingTimeout is the header deadline of ClassPing: the largest HeartbeatInterval
	// MS-ASCMD allows (3540 s) plus a 60 s margin for the upstream to answer. Callers that know
	// the request's heartbeat pass ForwardOptions.Timeout instead.
	DefaultPingTimeout = 3540*time.Second + 60*time.Second
	// DefaultNormalTimeout is the header deadline of ClassNormal (Sync without Wait,
	// FolderSync, ItemOperations, Provision, ...).
	DefaultNormalTimeout = 60 * time.Second
	// DefaultSendTimeout is the header deadline of ClassSend: SendMail, SmartReply and
	// SmartForward, which wait for the upstream's own SMTP submission.
	DefaultSendTimeout = 120 * time.Second
	// DefaultBodyIdleTimeout ends a response body whose upstream sends nothing for this long.
	// It restarts on every read, so a slow client (reads happen only after writes to it
	// finish) never trips it.
	DefaultBodyIdleTimeout = 60 * time.Second
	// DefaultBodyTimeout bounds the whole response body transfer: 100 MB at ~1 Mbit/s takes
	// ~15 min, so 30 min leaves room while still ending a slow drip.
	DefaultBodyTimeout = 30 * time.Minute
	// DefaultMaxResponseBodyBytes caps a response body. Bodies are streamed, so this is not a
	// memory bound but a stop for a runaway or hostile upstream: Exchange's largest attachment
	// setting (150 MB) base64-encoded in MIME is ~205 MB, so 256 MiB passes any real mailbox.
	DefaultMaxResponseBodyBytes = 256 << 20
	// DefaultMaxResponseHeaderBytes caps the response header block (it is the per-connection
	// read buffer, so memory per connection is this much). Exchange answers with < 2 KB.
	DefaultMaxResponseHeaderBytes = 16 << 10
	// DefaultSmallBodyBytes: bodies with a Content-Length up to this are read at once (the
	// connection returns to the pool before the client is written to); larger ones stream.
	DefaultSmallBodyBytes = 64 << 10
	// DefaultBreakerThreshold consecutive failures within DefaultBreakerWindow open the breaker.
	DefaultBreakerThreshold = 5
	DefaultBreakerWindow    = 30 * time.Second
	// DefaultBreakerCoolDown is how long the breaker stays open before admitting a probe.
	DefaultBreakerCoolDown = 10 * time.Second
)

// Config configures one upstream. The zero value of every field except URL means "default"
// (documented on the Default* constants); negative values are invalid.
type Config struct {
	// URL of the upstream EAS endpoint, http or https, with its base path, e.g.
	// https://mail.example.com/Microsoft-Server-ActiveSync. Required. The request's query
	// string is appended to this path; a query in URL is not allowed.
	URL string

	TLS TLSConfig

	MaxConns        int           // held requests (ClassPing); default DefaultMaxConns
	MaxRequestConns int           // every other class; default DefaultMaxRequestConns
	MaxConnWait     time.Duration // default DefaultMaxConnWait
	IdleConnTimeout time.Duration // default DefaultIdleConnTimeout
	DialTimeout     time.Duration // default DefaultDialTimeout

	PingTimeout   time.Duration // default DefaultPingTimeout
	NormalTimeout time.Duration // default DefaultNormalTimeout
	SendTimeout   time.Duration // default DefaultSendTimeout

	BodyIdleTimeout time.Duration // default DefaultBodyIdleTimeout
	BodyTimeout     time.Duration // default DefaultBodyTimeout

	MaxResponseBodyBytes   int64 // default DefaultMaxResponseBodyBytes
	MaxResponseHeaderBytes int   // default DefaultMaxResponseHeaderBytes; at least 4096
	SmallBodyBytes         int   // default DefaultSmallBodyBytes; at most MaxResponseBodyBytes

	// PreserveHost sends the client's Host header upstream instead of the URL's host.
	PreserveHost bool
	// TrustForwardedFor appends the client address to an X-Forwarded-For header the request
	// already carries. Leave false unless a trusted load balancer sits in front of the gateway:
	// a device can put anything in that header. When false, X-Forwarded-For is replaced.
	TrustForwardedFor bool

	Breaker BreakerConfig
}

// TLSConfig configures TLS to an https upstream. All fields are optional.
type TLSConfig struct {
	// CAFile is a PEM bundle of roots to verify the upstream with; empty means the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key (mutual TLS); both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name verified in the upstream certificate (and sent as SNI);
	// default the URL's host.
	ServerName string
}

// BreakerConfig configures the per-upstream circuit breaker.
//
// Failures are connection failures (refused, reset, TLS) and timeouts waiting for the response
// header. A 5xx answer is an answer: it does not count unless CountServerErrors is set, because
// Exchange answers 503 to one throttled user and that must not take every device offline.
// A cancelled context (the device left) never counts.
type BreakerConfig struct {
	Disabled bool
	// Threshold consecutive failures, each within Window of the previous one, open the breaker.
	Threshold int           // default DefaultBreakerThreshold
	Window    time.Duration // default DefaultBreakerWindow
	// CoolDown is how long the breaker stays open; then one probe request is let through
	// (half-open). Its success closes the breaker, its failure opens it for another CoolDown.
	CoolDown          time.Duration // default DefaultBreakerCoolDown
	CountServerErrors bool
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxRequestConns == 0 {
		c.MaxRequestConns = DefaultMaxRequestConns
	}
	def(&c.MaxConnWait, DefaultMaxConnWait)
	def(&c.IdleConnTimeout, DefaultIdleConnTimeout)
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.PingTimeout, DefaultPingTimeout)
	def(&c.NormalTimeout, DefaultNormalTimeout)
	def(&c.SendTimeout, DefaultSendTimeout)
	def(&c.BodyIdleTimeout, DefaultBodyIdleTimeout)
	def(&c.BodyTimeout, DefaultBodyTimeout)
	if c.MaxResponseBodyBytes == 0 {
		c.MaxResponseBodyBytes = DefaultMaxResponseBodyBytes
	}
	if c.MaxResponseHeaderBytes == 0 {
		c.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	if c.SmallBodyBytes == 0 {
		c.SmallBodyBytes = DefaultSmallBodyBytes
		if int64(c.SmallBodyBytes) > c.MaxResponseBodyBytes {
			c.SmallBodyBytes = int(c.MaxResponseBodyBytes)
		}
	}
	if c.Breaker.Threshold == 0 {
		c.Breaker.Threshold = DefaultBreakerThreshold
	}
	def(&c.Breaker.Window, DefaultBreakerWindow)
	def(&c.Breaker.CoolDown, DefaultBreakerCoolDown)
	return c
}

// Validate checks c after applying defaults and returns every problem at once (errors.Join),
// or nil. It reads the TLS files, so a missing CA bundle is reported here, not on first use.
func (c Config) Validate() error {
	_, err := c.build()
	return err
}

// built is a validated Config turned into what the client needs.
type built struct {
	cfg      Config
	scheme   string // "http" or "https"
	addr     string // host:port to dial
	host     string // Host header value
	basePath []byte
	tls      *tls.Config
}

func (c Config) build() (*built, error) {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("eas backend: config: "+format, a...)) }

	b := &built{cfg: c}
	if c.URL == "" {
		bad("URL is required")
	} else if u, err := url.Parse(c.URL); err != nil {
		bad("URL %q does not parse", c.URL)
	} else {
		switch u.Scheme {
		case "http", "https":
			b.scheme = u.Scheme
		default:
			bad("URL scheme must be http or https, not %q", u.Scheme)
		}
		if u.Host == "" || u.Hostname() == "" {
			bad("URL %q has no host", c.URL)
		}
		if u.User != nil {
			bad("URL must not carry credentials (devices send their own)")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			bad("URL must not have a query or fragment (the request's query is appended)")
		}
		b.host = u.Host
		port := u.Port()
		if port == "" {
			port = "80"
			if u.Scheme == "https" {
				port = "443"
			}
		}
		b.addr = net.JoinHostPort(u.Hostname(), port)
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		b.basePath = []byte(p)
	}

	pos := func(name string, d time.Duration) {
		if d < 0 {
			bad("%s must not be negative (got %s)", name, d)
		}
	}
	if c.MaxConns < 0 || c.MaxRequestConns < 0 {
		bad("MaxConns and MaxRequestConns must not be negative (got %d, %d)", c.MaxConns, c.MaxRequestConns)
	}
	pos("MaxConnWait", c.MaxConnWait)
	pos("IdleConnTimeout", c.IdleConnTimeout)
	pos("DialTimeout", c.DialTimeout)
	pos("PingTimeout", c.PingTimeout)
	pos("NormalTimeout", c.NormalTimeout)
	pos("SendTimeout", c.SendTimeout)
	pos("BodyIdleTimeout", c.BodyIdleTimeout)
	pos("BodyTimeout", c.BodyTimeout)
	pos("Breaker.Window", c.Breaker.Window)
	pos("Breaker.CoolDown", c.Breaker.CoolDown)
	if c.PingTimeout > 0 && c.NormalTimeout > 0 && c.PingTimeout < c.NormalTimeout {
		bad("PingTimeout (%s) must not be shorter than NormalTimeout (%s)", c.PingTimeout, c.NormalTimeout)
	}
	if c.MaxResponseBodyBytes < 0 {
		bad("MaxResponseBodyBytes must not be negative (got %d)", c.MaxResponseBodyBytes)
	}
	if c.MaxResponseHeaderBytes < 4096 || c.MaxResponseHeaderBytes > 1<<20 {
		bad("MaxResponseHeaderBytes must be between 4096 and 1 MiB (got %d)", c.MaxResponseHeaderBytes)
	}
	if c.SmallBodyBytes < 0 || int64(c.SmallBodyBytes) > c.MaxResponseBodyBytes {
		bad("SmallBodyBytes must be between 0 and MaxResponseBodyBytes (got %d)", c.SmallBodyBytes)
	}
	if c.Breaker.Threshold < 0 {
		bad("Breaker.Threshold must not be negative (got %d)", c.Breaker.Threshold)
	}

	if tc, err := c.tlsConfig(b); err != nil {
		errs = append(errs, err...)
	} else {
		b.tls = tc
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

func (c Config) tlsConfig(b *built) (*tls.Config, []error) {
	t := c.TLS
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("eas backend: config: TLS."+format, a...))
	}
	if b.scheme != "https" {
		if t != (TLSConfig{}) {
			bad("* is set but URL is not https")
		}
		return nil, errs
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if tc.ServerName == "" {
		h := b.host
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		tc.ServerName = strings.Trim(h, "[]")
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			bad("CAFile: %v", err)
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				bad("CAFile %s holds no PEM certificate", t.CAFile)
			}
			tc.RootCAs = pool
		}
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		bad("CertFile and KeyFile must be set together")
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			bad("CertFile/KeyFile: %v", err)
		} else {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	return tc, errs
}
