package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/quarantine"
)

// Config is the whole gateway configuration: one YAML file. Secrets are never written in it:
// any scalar value of the exact form ${NAME} is replaced by the environment variable NAME at
// load time, and a missing variable is a configuration error.
//
// Every field documents its default; zero values mean "the default".
type Config struct {
	Listen  ListenConfig  `yaml:"listen"`
	Admin   AdminConfig   `yaml:"admin"`
	Users   UsersConfig   `yaml:"users"`
	Backend BackendConfig `yaml:"backend"`
	Store   StoreConfig   `yaml:"store"`
	Ping    PingConfig    `yaml:"ping"`
	Limits  LimitsConfig  `yaml:"limits"`
	Log     LogConfig     `yaml:"log"`
	OAuth   OAuthConfig   `yaml:"oauth"`
	// Policy is the device access policy (decision.Policy, keys as in its JSON form). It seeds
	// an empty registry; afterwards the policy persisted in the registry (changed through the
	// admin API) is authoritative. Default: decision.DefaultPolicy().
	Policy yaml.Node `yaml:"policy"`
	// Quarantine words and shapes what non-compliant devices see.
	Quarantine quarantine.Config `yaml:"quarantine"`
	// Portal is the remediation web page.
	Portal PortalConfig `yaml:"portal"`
	// Notify sends the remediation e-mail and the admin alerts.
	Notify NotifyConfig `yaml:"notify"`
	// Provisioning is the gateway's EAS policy (MS-ASPROV); see ProvisioningConfig
	// (gateway/provision.go). Default: none, provisioning is left to the upstream.
	Provisioning ProvisioningConfig `yaml:"provisioning"` // provisioning (see provision.go)

	policy *decision.Policy // Policy, decoded and validated
}

// PortalConfig configures the remediation page under /portal/.
type PortalConfig struct {
	// Key signs the links to the page (HMAC-SHA256). Required, at least 32 bytes; give it as
	// ${ENV_NAME}. Changing it invalidates every link already sent.
	Key string `yaml:"key"`
}

// ListenConfig is the client listener (the address phones use).
type ListenConfig struct {
	// Addr is host:port. Default ":8443" with TLS, ":8080" without.
	Addr string `yaml:"addr"`
	// ExternalURL is how devices reach the gateway, e.g. "https://mail.example.com". Autodiscover
	// answers with it and remediation links are built on it. Required.
	ExternalURL string `yaml:"external_url"`
	// TLSCert and TLSKey are PEM files. Both empty: plain HTTP, for tests and for running behind
	// a TLS-terminating load balancer.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TrustedProxies are the addresses (CIDR) whose X-Forwarded-For is believed. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ReadTimeout bounds slow headers and bodies (slowloris). Default 20s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one response, body included: large enough for the biggest
	// attachment over a slow phone link (150 MiB at 0.5 MB/s is 5 minutes). Default 5m, and
	// never less than backend.eas.timeout + 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// AdminConfig is the separate, authenticated admin listener.
type AdminConfig struct {
	// Addr is host:port. Default "127.0.0.1:9090".
	Addr string `yaml:"addr"`
	// Token is the bearer token admin clients present. Required; give it as ${ENV_NAME}.
	// At least 32 characters.
	Token string `yaml:"token"`
	// MDMWebhookSecret enables POST /mdm/v1/compliance, where management systems push signed
	// compliance reports (see mdm.go). At least 32 characters; give it as ${ENV_NAME}.
	// Empty: disabled (reports go through the admin API with the admin token).
	MDMWebhookSecret string `yaml:"mdm_webhook_secret"`
}

// UsersConfig says how user names fold together and what the gateway knows of users.
type UsersConfig struct {
	UserNames `yaml:",inline"`
	// Email maps a canonical user to the address remediation mail goes to. Default: the
	// canonical user name when it has a domain.
	Email map[string]string `yaml:"email"`
}

// BackendConfig selects what allowed traffic reaches.
type BackendConfig struct {
	// Mode is "eas" (reverse proxy in front of an EAS server) or "imap" (the gateway is the EAS
	// server for an IMAP + SMTP mail server). Default "eas".
	Mode string      `yaml:"mode"`
	EAS  EASBackend  `yaml:"eas"`
	IMAP IMAPBackend `yaml:"imap"`
}

// EASBackend is the upstream EAS server.
type EASBackend struct {
	// URL of the upstream's ActiveSync endpoint, e.g.
	// "https://exchange.example.com/Microsoft-Server-ActiveSync". Required in eas mode.
	URL string `yaml:"url"`
	// CAFile verifies the upstream's certificate (PEM). Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// ClientCert and ClientKey authenticate the gateway to the upstream (PEM). Optional.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// Timeout for every command except long polls. Default 60s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxResponseBody caps one upstream response (attachments are large). Default 512 MiB.
	MaxResponseBody int64 `yaml:"max_response_body"`
	// MaxConns bounds the upstream connections of everything but long polls (which hold one
	// each, up to ping.total, in a pool of their own). A burst beyond it waits up to a second
	// for a free connection, then gets 503 with Retry-After. Default 512.
	MaxConns int `yaml:"max_conns"`
	// ServiceAuthorization, when set, replaces the device's Authorization header on the way to
	// the upstream with this value (e.g. "Bearer <token of a service principal>" for an
	// upstream that trusts the gateway rather than the devices' tokens). Give it as
	// ${ENV_NAME}. Default: the device's own credentials pass through (Basic, or the bearer
	// token for Exchange Online and hybrid modern authentication).
	ServiceAuthorization string `yaml:"service_authorization"`
}

// StoreConfig is the device registry.
type StoreConfig struct {
	// Driver is "sqlite" (embedded, the default) or "postgres".
	Driver string `yaml:"driver"`
	// Path of the SQLite file. Default "easgate.db".
	Path string `yaml:"path"`
	// DSN of the PostgreSQL database (give it as ${ENV_NAME}). Required for postgres.
	DSN string `yaml:"dsn"`
	// Timeout bounds each registry call made while deciding a request; past it the configured
	// fail mode applies (unknown devices are refused with "retry later"). Default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// CacheTTL is how long a device's cached record is trusted before it is read again. Writes
	// made through this node (admin API, CLI, MDM webhook, the gateway itself) invalidate the
	// cache at once, so the TTL only bounds how long another node's writes take to show.
	// Default 10m with sqlite (one node owns the file), 30s with postgres (a shared fleet).
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// PingConfig governs held long polls.
type PingConfig struct {
	// MaxHeartbeat is the longest HeartbeatInterval a device may ask for; longer requests are
	// rewritten to it. Keep it below the load balancer's idle timeout. Default 15m.
	MaxHeartbeat time.Duration `yaml:"max_heartbeat"`
	PingLimits   `yaml:",inline"`
}

// LimitsConfig bounds what clients send.
type LimitsConfig struct {
	// MaxRequestBody caps one request body (SendMail with attachments). Default 64 MiB.
	MaxRequestBody int `yaml:"max_request_body"`
}

// LogConfig selects logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
}

// LoadConfig reads, expands and validates a configuration file. Every problem is reported at
// once, joined in the returned error.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: config: %w", err)
	}
	return ParseConfig(b, os.LookupEnv)
}

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// ParseConfig parses YAML, substituting ${NAME} values through lookup, applies defaults and
// validates. Unknown keys are errors (a misspelt key must not silently mean "default").
func ParseConfig(b []byte, lookup func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("gateway: config: %w", err)
	}
	var errs []error
	expandEnv(&root, lookup, &errs)
	var c Config
	if root.Kind != 0 {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(&root); err != nil {
			return nil, fmt.Errorf("gateway: config: %w", err)
		}
		dec := yaml.NewDecoder(&buf)
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			errs = append(errs, fmt.Errorf("gateway: config: %w", err))
		}
	}
	c.applyDefaults()
	errs = append(errs, c.validate()...)
	if p, err := decodePolicy(&c.Policy); err != nil {
		errs = append(errs, err)
	} else {
		c.policy = p
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

func expandEnv(n *yaml.Node, lookup func(string) (string, bool), errs *[]error) {
	if n.Kind == yaml.ScalarNode {
		if m := envRef.FindStringSubmatch(n.Value); m != nil {
			v, ok := lookup(m[1])
			if !ok || v == "" {
				*errs = append(*errs, fmt.Errorf("gateway: config line %d: environment variable %s is not set", n.Line, m[1]))
			}
			n.Value, n.Tag, n.Style = v, "!!str", yaml.DoubleQuotedStyle
		}
		return
	}
	for _, c := range n.Content {
		expandEnv(c, lookup, errs)
	}
}

// decodePolicy reads the policy section through its JSON form, so that the YAML keys are the
// same as the admin API's. An absent section is the default policy.
func decodePolicy(n *yaml.Node) (*decision.Policy, error) {
	p := decision.DefaultPolicy()
	if n.Kind == 0 {
		return &p, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("gateway: config policy: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("gateway: config policy: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("gateway: config policy (line %d): %w", n.Line, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: config policy: %w", err)
	}
	return &p, nil
}

func (c *Config) applyDefaults() {
	if c.Listen.Addr == "" {
		c.Listen.Addr = ":8080"
		if c.Listen.TLSCert != "" {
			c.Listen.Addr = ":8443"
		}
	}
	if c.Listen.ReadTimeout == 0 {
		c.Listen.ReadTimeout = 20 * time.Second
	}
	if c.Listen.WriteTimeout == 0 {
		c.Listen.WriteTimeout = 5 * time.Minute
	}
	if c.Listen.IdleTimeout == 0 {
		c.Listen.IdleTimeout = 120 * time.Second
	}
	if c.Admin.Addr == "" {
		c.Admin.Addr = "127.0.0.1:9090"
	}
	if c.Backend.Mode == "" {
		c.Backend.Mode = "eas"
	}
	if c.Backend.EAS.Timeout == 0 {
		c.Backend.EAS.Timeout = 60 * time.Second
	}
	if c.Backend.EAS.MaxResponseBody == 0 {
		c.Backend.EAS.MaxResponseBody = 512 << 20
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.Store.Driver == "sqlite" && c.Store.Path == "" {
		c.Store.Path = "easgate.db"
	}
	if c.Store.CacheTTL == 0 {
		c.Store.CacheTTL = 30 * time.Second
		if c.Store.Driver == "sqlite" {
			c.Store.CacheTTL = 10 * time.Minute
		}
	}
	if c.Ping.MaxHeartbeat == 0 {
		c.Ping.MaxHeartbeat = 15 * time.Minute
	}
	c.Ping.PingLimits = c.Ping.PingLimits.withDefaults()
	if c.Limits.MaxRequestBody == 0 {
		c.Limits.MaxRequestBody = 64 << 20
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	c.Provisioning.applyDefaults() // provisioning (see provision.go)
}

func (c *Config) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("gateway: config %s: "+format, append([]any{field}, args...)...))
	}
	checkAddr := func(field, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(field, "%q is not host:port", addr)
		}
	}
	checkAddr("listen.addr", c.Listen.Addr)
	checkAddr("admin.addr", c.Admin.Addr)
	if u, err := url.Parse(c.Listen.ExternalURL); c.Listen.ExternalURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("listen.external_url", "must be an absolute http(s) URL, got %q", c.Listen.ExternalURL)
	}
	if (c.Listen.TLSCert == "") != (c.Listen.TLSKey == "") {
		bad("listen.tls_cert", "tls_cert and tls_key go together")
	}
	for _, f := range []struct{ field, path string }{{"listen.tls_cert", c.Listen.TLSCert}, {"listen.tls_key", c.Listen.TLSKey}, {"backend.eas.ca_file", c.Backend.EAS.CAFile}, {"backend.eas.client_cert", c.Backend.EAS.ClientCert}, {"backend.eas.client_key", c.Backend.EAS.ClientKey}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad(f.field, "%v", err)
			}
		}
	}
	for _, p := range c.Listen.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad("listen.trusted_proxies", "%q is not a CIDR prefix", p)
		}
	}
	if len(c.Portal.Key) < 32 {
		bad("portal.key", "must be at least 32 bytes (give it as ${ENV_NAME})")
	}
	if c.Admin.MDMWebhookSecret != "" && len(c.Admin.MDMWebhookSecret) < 32 {
		bad("admin.mdm_webhook_secret", "must be at least 32 characters")
	}
	if len(c.Admin.Token) < 32 {
		bad("admin.token", "must be at least 32 characters (give it as ${ENV_NAME})")
	}
	switch c.Backend.Mode {
	case "eas":
		if u, err := url.Parse(c.Backend.EAS.URL); c.Backend.EAS.URL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("backend.eas.url", "must be an absolute http(s) URL, got %q", c.Backend.EAS.URL)
		}
	case "imap":
		c.Backend.IMAP.validate(bad)
	default:
		bad("backend.mode", "must be eas or imap, got %q", c.Backend.Mode)
	}
	if (c.Backend.EAS.ClientCert == "") != (c.Backend.EAS.ClientKey == "") {
		bad("backend.eas.client_cert", "client_cert and client_key go together")
	}
	if c.Backend.EAS.Timeout < 0 || c.Backend.EAS.MaxResponseBody < 0 {
		bad("backend.eas", "timeouts and sizes must not be negative")
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if c.Store.DSN == "" {
			bad("store.dsn", "required for the postgres driver")
		}
	default:
		bad("store.driver", "must be sqlite or postgres, got %q", c.Store.Driver)
	}
	if c.Backend.EAS.MaxConns < 0 {
		bad("backend.eas.max_conns", "must not be negative")
	}
	if c.Store.CacheTTL < 0 {
		bad("store.cache_ttl", "must not be negative")
	}
	if c.Ping.MaxHeartbeat < time.Minute || c.Ping.MaxHeartbeat > 59*time.Minute {
		bad("ping.max_heartbeat", "must be between 1m and 59m (MS-ASCMD Ping range), got %s", c.Ping.MaxHeartbeat)
	}
	if c.Ping.PerUser < 0 || c.Ping.PerClient < 0 || c.Ping.Total < 0 {
		bad("ping", "limits must not be negative")
	}
	if c.Limits.MaxRequestBody < 0 {
		bad("limits.max_request_body", "must not be negative")
	}
	if c.OAuth.TokenService.Enabled && len(c.OAuth.Issuers) == 0 {
		bad("oauth.token_service", "exchanges tokens of a trusted issuer: list at least one in oauth.issuers")
	}
	for i, is := range c.OAuth.Issuers {
		if is.Issuer == "" || (is.JWKSURL == "" && is.DiscoveryURL == "") {
			bad(fmt.Sprintf("oauth.issuers[%d]", i), "needs issuer and jwks_url or discovery_url")
		}
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	errs = append(errs, c.Provisioning.validate()...) // provisioning (see provision.go)
	return errs
}
