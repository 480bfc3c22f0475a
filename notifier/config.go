package notifier

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

// TLSMode selects how the SMTP connection is secured.
type TLSMode string

const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS (RFC 3207); a server that
	// does not offer STARTTLS is a (temporary) delivery failure. The default.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (RFC 8314, usually port 465).
	TLSImplicit TLSMode = "implicit"
	// TLSNone sends in plain text. Only for loopback relays.
	TLSNone TLSMode = "none"
)

// SMTPConfig says how to reach the mail relay.
type SMTPConfig struct {
	// Addr is the relay's "host:port". Required when any e-mail is configured.
	Addr string
	// TLS is the TLS mode. Default TLSStartTLS.
	TLS TLSMode
	// ServerName is the name verified in the server certificate. Default: the host of Addr.
	ServerName string
	// CAFile is a PEM bundle of CAs trusted for the relay's certificate. Default: the system
	// roots.
	CAFile string
	// InsecureSkipVerify disables certificate verification. Never for production.
	InsecureSkipVerify bool
	// Username and Password enable SMTP AUTH (RFC 4954) when Username is set.
	Username string
	Password string
	// AuthMechanism is "PLAIN" or "LOGIN". Default: PLAIN if the server offers it, else LOGIN.
	AuthMechanism string
	// HeloName is the name sent in EHLO. Default "localhost".
	HeloName string
	// DialTimeout bounds TCP connect plus TLS handshake. Default 10 s.
	DialTimeout time.Duration
	// CommandTimeout bounds each SMTP command's reply. Default 30 s.
	CommandTimeout time.Duration
	// DataTimeout bounds the reply after the final dot of DATA. Default 2 min.
	DataTimeout time.Duration
}

// WebhookConfig configures the admin webhook. Disabled when URL is empty.
type WebhookConfig struct {
	// URL receives a POST with the JSON event for each admin event.
	URL string
	// Secret keys the HMAC-SHA256 signature in the X-Easgate-Signature header. Required with URL.
	Secret string
	// Timeout bounds one POST. Default 10 s.
	Timeout time.Duration
	// CAFile is a PEM bundle of CAs trusted for an https URL. Default: the system roots.
	CAFile string
}

// RateLimit is a token bucket: Burst notifications at once, then one per Every.
type RateLimit struct {
	// Burst is the bucket size. Zero means the documented default of the field that holds it.
	Burst int
	// Every is the refill interval of one token. Zero means the documented default.
	Every time.Duration
	// Off disables the limit.
	Off bool
}

// RetryConfig configures the backoff between delivery attempts.
type RetryConfig struct {
	// MaxAttempts is how many attempts a row gets before it is dead-lettered. Default 8.
	MaxAttempts int
	// InitialBackoff is the delay after the first failure. Default 30 s.
	InitialBackoff time.Duration
	// MaxBackoff caps the exponential growth. Default 1 h.
	MaxBackoff time.Duration
	// Jitter is the random fraction added or removed from each delay (0..1). Default 0.2.
	// Negative disables jitter.
	Jitter float64
}

// Limits bound what a caller can put into one message (limits are API).
type Limits struct {
	// MaxSubjectBytes bounds the subject before encoding. Default 512.
	MaxSubjectBytes int
	// MaxBodyBytes bounds each of the text and HTML bodies. Default 1 MiB.
	MaxBodyBytes int
	// MaxRecipients bounds the recipient count of one message. Default 50.
	MaxRecipients int
}

// Config configures a Notifier. Zero fields take the documented defaults (see Defaults).
type Config struct {
	// From is the sender of every e-mail, e.g. "Mail Access <noreply@example.com>". Its address
	// is also the SMTP envelope sender. Required when any e-mail is configured.
	From string
	// MessageIDDomain is the right-hand side of generated Message-IDs. Default: the domain of
	// From.
	MessageIDDomain string
	// AdminRecipients get an e-mail for every admin event. Empty: no admin e-mail.
	AdminRecipients []string
	// SMTP is the relay. Required when From is set.
	SMTP SMTPConfig
	// Webhook is the admin webhook. Empty URL: no webhook.
	Webhook WebhookConfig

	// Workers is the number of concurrent deliveries. Default 4.
	Workers int
	// Lease is how long a claimed row stays with its worker; a row leased by a worker that died
	// is delivered again after it. Must exceed the worst delivery time. Default 5 min.
	Lease time.Duration
	// PollInterval is how often idle workers look for due rows written by other processes.
	// Default 1 s.
	PollInterval time.Duration
	// Retry configures backoff and dead-lettering.
	Retry RetryConfig
	// DedupWindow: a notification with the same (user, device, cause) is suppressed within it.
	// Default 24 h. Negative disables deduplication.
	DedupWindow time.Duration
	// PerUser limits notifications per user and channel (remediation e-mail, admin e-mail,
	// webhook), whatever the device. Default Burst 5, Every 1 h: a user whose 10,000 devices
	// all get quarantined at once receives 5 e-mails, then one an hour.
	PerUser RateLimit
	// Global paces all deliveries of this process. Default Burst 100, Every 50 ms (20/s).
	// Deliveries wait for a token; nothing is dropped.
	Global RateLimit
	// MaxTrackedUsers is where the per-user limiter starts forgetting buckets that have refilled
	// completely (a full bucket is the same as none). It is a soft bound: users with tokens in
	// flight are never forgotten, so a limit cannot be escaped by flooding with user names.
	// Default 100,000.
	MaxTrackedUsers int
	// Retention: sent rows older than this are purged. Default 7 days. Dead rows are kept until
	// re-queued or purged by an admin.
	Retention time.Duration
	// Limits bound message content.
	Limits Limits
}

// Defaults returns c with every zero field set to its documented default. Validate calls it.
func (c Config) Defaults() Config {
	if c.SMTP.TLS == "" {
		c.SMTP.TLS = TLSStartTLS
	}
	if c.SMTP.HeloName == "" {
		c.SMTP.HeloName = "localhost"
	}
	if c.SMTP.DialTimeout == 0 {
		c.SMTP.DialTimeout = 10 * time.Second
	}
	if c.SMTP.CommandTimeout == 0 {
		c.SMTP.CommandTimeout = 30 * time.Second
	}
	if c.SMTP.DataTimeout == 0 {
		c.SMTP.DataTimeout = 2 * time.Minute
	}
	if c.Webhook.Timeout == 0 {
		c.Webhook.Timeout = 10 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.Lease == 0 {
		c.Lease = 5 * time.Minute
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.Retry.MaxAttempts == 0 {
		c.Retry.MaxAttempts = 8
	}
	if c.Retry.InitialBackoff == 0 {
		c.Retry.InitialBackoff = 30 * time.Second
	}
	if c.Retry.MaxBackoff == 0 {
		c.Retry.MaxBackoff = time.Hour
	}
	if c.Retry.Jitter == 0 {
		c.Retry.Jitter = 0.2
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 24 * time.Hour
	}
	if c.PerUser.Burst == 0 {
		c.PerUser.Burst = 5
	}
	if c.PerUser.Every == 0 {
		c.PerUser.Every = time.Hour
	}
	if c.Global.Burst == 0 {
		c.Global.Burst = 100
	}
	if c.Global.Every == 0 {
		c.Global.Every = 50 * time.Millisecond
	}
	if c.MaxTrackedUsers == 0 {
		c.MaxTrackedUsers = 100_000
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.Limits.MaxSubjectBytes == 0 {
		c.Limits.MaxSubjectBytes = 512
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = 1 << 20
	}
	if c.Limits.MaxRecipients == 0 {
		c.Limits.MaxRecipients = 50
	}
	if c.MessageIDDomain == "" && c.From != "" {
		if a, err := parseAddress(c.From); err == nil {
			c.MessageIDDomain = a.Address[strings.LastIndexByte(a.Address, '@')+1:]
		}
	}
	return c
}

// Validate applies Defaults and checks the whole configuration, returning every problem at once
// (errors.Join), or nil.
func (c Config) Validate() error {
	c = c.Defaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("notifier: config: "+format, args...))
	}
	emailOn := c.From != "" || len(c.AdminRecipients) > 0
	if emailOn {
		if c.From == "" {
			bad("From is required when AdminRecipients are set")
		} else if _, err := parseAddress(c.From); err != nil {
			bad("From: %v", err)
		}
		if c.SMTP.Addr == "" {
			bad("SMTP.Addr is required when e-mail is configured")
		} else if _, port, err := net.SplitHostPort(c.SMTP.Addr); err != nil || port == "" {
			bad("SMTP.Addr %q is not host:port", c.SMTP.Addr)
		}
		if err := checkHeaderValue("MessageIDDomain", c.MessageIDDomain, 253); err != nil || c.MessageIDDomain == "" ||
			strings.ContainsAny(c.MessageIDDomain, "<>@ \t\"") {
			bad("MessageIDDomain %q is not a domain", c.MessageIDDomain)
		}
	}
	for i, r := range c.AdminRecipients {
		if _, err := parseAddress(r); err != nil {
			bad("AdminRecipients[%d]: %v", i, err)
		}
	}
	if len(c.AdminRecipients) > c.Limits.MaxRecipients {
		bad("AdminRecipients: %d recipients, more than Limits.MaxRecipients %d", len(c.AdminRecipients), c.Limits.MaxRecipients)
	}
	switch c.SMTP.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		bad("SMTP.TLS %q is not one of starttls, implicit, none", c.SMTP.TLS)
	}
	switch strings.ToUpper(c.SMTP.AuthMechanism) {
	case "", "PLAIN", "LOGIN":
	default:
		bad("SMTP.AuthMechanism %q is not PLAIN or LOGIN", c.SMTP.AuthMechanism)
	}
	if c.SMTP.Username == "" && c.SMTP.Password != "" {
		bad("SMTP.Password is set without SMTP.Username")
	}
	if c.SMTP.CAFile != "" {
		if _, err := loadCAFile(c.SMTP.CAFile); err != nil {
			bad("SMTP.CAFile: %v", err)
		}
	}
	if c.Webhook.URL != "" {
		u, err := url.Parse(c.Webhook.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("Webhook.URL %q is not an http(s) URL", c.Webhook.URL)
		}
		if c.Webhook.Secret == "" {
			bad("Webhook.Secret is required with Webhook.URL")
		}
		if c.Webhook.CAFile != "" {
			if _, err := loadCAFile(c.Webhook.CAFile); err != nil {
				bad("Webhook.CAFile: %v", err)
			}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"SMTP.DialTimeout", c.SMTP.DialTimeout}, {"SMTP.CommandTimeout", c.SMTP.CommandTimeout},
		{"SMTP.DataTimeout", c.SMTP.DataTimeout}, {"Webhook.Timeout", c.Webhook.Timeout},
		{"Lease", c.Lease}, {"PollInterval", c.PollInterval}, {"Retry.InitialBackoff", c.Retry.InitialBackoff},
		{"Retry.MaxBackoff", c.Retry.MaxBackoff}, {"Retention", c.Retention},
	} {
		if d.v < 0 {
			bad("%s must not be negative", d.name)
		}
	}
	if c.Retry.MaxBackoff < c.Retry.InitialBackoff {
		bad("Retry.MaxBackoff %v is below Retry.InitialBackoff %v", c.Retry.MaxBackoff, c.Retry.InitialBackoff)
	}
	if c.Retry.Jitter > 1 {
		bad("Retry.Jitter %v is above 1", c.Retry.Jitter)
	}
	if c.Workers < 0 || c.Workers > 256 {
		bad("Workers %d is not in 1..256", c.Workers)
	}
	if c.Retry.MaxAttempts < 0 {
		bad("Retry.MaxAttempts must not be negative")
	}
	if lease := c.SMTP.DialTimeout + 3*c.SMTP.CommandTimeout + c.SMTP.DataTimeout; c.Lease <= lease {
		bad("Lease %v must exceed the worst SMTP delivery time %v (dial + commands + data timeouts)", c.Lease, lease)
	}
	for name, rl := range map[string]RateLimit{"PerUser": c.PerUser, "Global": c.Global} {
		if !rl.Off && (rl.Burst < 0 || rl.Every < 0) {
			bad("%s: Burst and Every must not be negative", name)
		}
	}
	if c.MaxTrackedUsers < 0 {
		bad("MaxTrackedUsers must not be negative")
	}
	if c.Limits.MaxSubjectBytes < 0 || c.Limits.MaxBodyBytes < 0 || c.Limits.MaxRecipients < 0 {
		bad("Limits must not be negative")
	}
	return errors.Join(errs...)
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// tlsConfig builds the client TLS configuration for the relay.
func (c *SMTPConfig) tlsConfig() (*tls.Config, error) {
	name := c.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return nil, err
		}
		name = host
	}
	tc := &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pool, err := loadCAFile(c.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
