package servers

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Debian paths of the Dovecot binaries; the packages are dovecot-core (dovecot, doveadm),
// dovecot-imapd and dovecot-lmtpd.
const (
	dovecotBinary = "/usr/sbin/dovecot"
	dovecotIMAP   = "/usr/lib/dovecot/imap"
	dovecotLMTP   = "/usr/lib/dovecot/lmtp"
)

// DovecotOptions configures StartDovecot. The zero value is a plain-IMAP server for the domain
// "easgate.test" with LMTP on a loopback TCP port and no users.
type DovecotOptions struct {
	// Domain is the mail domain of the users added without a domain part.
	// Default "easgate.test".
	Domain string
	// STARTTLS enables TLS on the IMAP port (STARTTLS; plaintext login stays allowed) with a
	// self-signed certificate for 127.0.0.1 and localhost generated for this server; see
	// Dovecot.CACertPEM and Dovecot.TLSConfig.
	STARTTLS bool
	// LMTPSocket additionally opens LMTP on a unix socket (Dovecot.LMTPSocket). The TCP LMTP
	// listener (Dovecot.LMTPAddr) is always open.
	LMTPSocket bool
	// Users are created before the server starts. More can be added with AddUser at any time.
	Users []DovecotUser
	// Debug turns on auth_debug, mail_debug and verbose_ssl; the log is in Dovecot.LogPath.
	Debug bool
	// OAuth, when not nil, adds Dovecot's oauth2 passdb with local JWT validation, so bearer
	// tokens log in with AUTHENTICATE XOAUTH2 and OAUTHBEARER beside the password users. Nil
	// (the default) leaves the server password-only, with a configuration identical to earlier
	// versions of this package.
	OAuth *DovecotOAuth
}

// DovecotOAuth configures Dovecot's oauth2 passdb (Dovecot 2.3 `passdb { driver = oauth2 }`)
// with `introspection_mode = local`: Dovecot verifies a JWT access token's signature against the
// public keys given here, checks exp, nbf and iat (and iss when Issuers is set), and takes the
// login name from the UsernameAttribute claim, which must equal the SASL user name (after
// lower-casing). Nothing is fetched over the network, so no JWKS server is needed.
//
// A token's user still needs a userdb entry for its mailbox: add it as a DovecotUser (its
// password is unrelated to the token and keeps working for LOGIN).
//
// Dovecot 2.3.19 (Debian 12) requires the JWT header "typ" to be exactly "JWT", as in Microsoft
// Entra access tokens, and refuses RFC 9068's "at+jwt" ("Cannot find 'typ' field"); it also
// requires "sub" and "exp".
//
// With OAuth set, the server also logs each refusal's reason (auth_verbose, e.g. "oauth2 failed:
// Local validation failed: Token has expired") and has the auth failure penalty turned off
// (anvil would delay each attempt after a failure from the same IP by up to 15 s).
type DovecotOAuth struct {
	// Keys are the issuer's verification keys. At least one is required.
	Keys []DovecotOAuthKey
	// UsernameAttribute is the claim holding the login name. Default "upn" (Microsoft Entra
	// access tokens; oauthtest.Issuer.Claims sets it); "email" and "sub" are common elsewhere.
	UsernameAttribute string
	// Issuers, when not empty, are the only accepted "iss" values; a token without "iss" is
	// refused. Empty: any issuer whose key is in Keys.
	Issuers []string
	// ActiveAttribute and ActiveValue, when set, require that claim to be present with that
	// value (an empty ActiveValue requires presence only), as Dovecot's active_attribute.
	ActiveAttribute string
	ActiveValue     string
}

// DovecotOAuthKey is one public key Dovecot accepts JWT signatures from. Dovecot looks a key
// up by the token's "azp" claim, its header "alg" and "kid" (each "default" when absent), so
// all three must match the tokens it is meant to verify.
type DovecotOAuthKey struct {
	// Kid is the key ID in the token header; "" matches tokens without "kid".
	Kid string
	// Alg is the JWS algorithm the key verifies: "RS256", "RS384", "RS512", "PS256", "PS384",
	// "PS512", "ES256", "ES384" or "ES512". Required.
	Alg string
	// Azp is the token's "azp" (authorized party) claim the key is for; "" matches tokens
	// without "azp".
	Azp string
	// Exactly one of PublicKey (*rsa.PublicKey or *ecdsa.PublicKey) and PEM (a PKIX
	// "PUBLIC KEY" block) is set.
	PublicKey crypto.PublicKey
	PEM       []byte
}

// DovecotUser is a passwd-file user. Password is stored in plain text ({PLAIN} scheme): these are
// throwaway test credentials.
type DovecotUser struct {
	// Name is the login name. A name without '@' gets "@" + Domain appended, so the login name is
	// always the full mail address, which is also the LMTP recipient.
	Name     string
	Password string
}

// Dovecot is a running Dovecot started by StartDovecot. Its fields are fixed for its lifetime:
// Restart keeps the same ports, paths and data.
type Dovecot struct {
	// Dir holds the configuration, the passwd-file and the mail storage (a t.TempDir()).
	Dir string
	// ConfigPath is the dovecot.conf in use (`doveadm -c ConfigPath ...` works against it).
	ConfigPath string
	// LogPath is Dovecot's log file; its tail is printed when the test fails.
	LogPath string
	// Domain is the default mail domain (DovecotOptions.Domain).
	Domain string
	// IMAPAddr is "127.0.0.1:port" of the IMAP listener (STARTTLS when DovecotOptions.STARTTLS).
	IMAPAddr string
	// LMTPAddr is "127.0.0.1:port" of the LMTP listener used for delivery.
	LMTPAddr string
	// LMTPSocket is the path of the LMTP unix socket, "" unless DovecotOptions.LMTPSocket.
	LMTPSocket string
	// AuthAddr is "127.0.0.1:port" of Dovecot's auth service in the protocol Postfix calls
	// `smtpd_sasl_type = dovecot` (an MTA authenticates SMTP submission through it).
	AuthAddr string
	// CACertPEM is the PEM self-signed certificate served on IMAP STARTTLS (nil without STARTTLS).
	CACertPEM []byte
	// OAuthConfigPath is the oauth2 passdb's configuration file and OAuthKeyDir the root of
	// its validation key dictionary (keys at <azp>/<alg>/<kid>); both "" without
	// DovecotOptions.OAuth.
	OAuthConfigPath string
	OAuthKeyDir     string

	t        testing.TB
	opts     DovecotOptions
	passwd   string
	runDir   string
	mailUID  int
	mailGID  int
	mu       sync.Mutex
	users    map[string]string
	proc     *exec.Cmd
	procDone chan struct{}
}

// StartDovecot starts a real Dovecot on 127.0.0.1 and stops it when the test ends. It fails the
// test if Dovecot is not installed (after trying `apt-get install -y dovecot-imapd
// dovecot-lmtpd`) or does not come up.
//
// As root, Dovecot's internal processes run as the Debian users "dovecot" and "dovenull" and mail
// is stored as the system user "mail"; as another user, everything runs as that user.
func StartDovecot(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	mailEnsureBinaries(t, map[string]string{
		dovecotBinary: "dovecot-core",
		dovecotIMAP:   "dovecot-imapd",
		dovecotLMTP:   "dovecot-lmtpd",
	})
	if opts.Domain == "" {
		opts.Domain = "easgate.test"
	}
	dir := t.TempDir()
	mailOpenPath(t, dir)
	// Unix socket paths are limited to 107 bytes and test names make t.TempDir() long, so the
	// sockets live in a short directory of their own.
	runDir, err := os.MkdirTemp("", "dovecot")
	if err != nil {
		t.Fatalf("servers: dovecot run dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	if err := os.Chmod(runDir, 0o755); err != nil {
		t.Fatalf("servers: %v", err)
	}

	addrs := mailFreeAddrs(t, 3)
	d := &Dovecot{
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "dovecot.conf"),
		LogPath:    filepath.Join(dir, "dovecot.log"),
		Domain:     opts.Domain,
		IMAPAddr:   addrs[0],
		LMTPAddr:   addrs[1],
		AuthAddr:   addrs[2],
		t:          t,
		opts:       opts,
		passwd:     filepath.Join(dir, "users"),
		runDir:     runDir,
		users:      make(map[string]string),
	}
	if opts.LMTPSocket {
		d.LMTPSocket = filepath.Join(runDir, "lmtp-deliver")
	}
	internalUser, loginUser := d.processUsers(t)

	mailRoot := filepath.Join(dir, "mail")
	if err := os.MkdirAll(mailRoot, 0o755); err != nil {
		t.Fatalf("servers: %v", err)
	}
	if err := os.Chown(mailRoot, d.mailUID, d.mailGID); err != nil {
		t.Fatalf("servers: chown mail root: %v", err)
	}
	if err := os.WriteFile(d.passwd, nil, 0o644); err != nil {
		t.Fatalf("servers: %v", err)
	}
	for _, u := range opts.Users {
		d.AddUser(u.Name, u.Password)
	}

	var tlsConf string
	if opts.STARTTLS {
		certPEM, keyPEM := mailSelfSigned(t, "dovecot.easgate.test")
		d.CACertPEM = certPEM
		certPath := filepath.Join(dir, "cert.pem")
		keyPath := filepath.Join(dir, "key.pem")
		mailWriteFile(t, certPath, certPEM, 0o644)
		mailWriteFile(t, keyPath, keyPEM, 0o600)
		tlsConf = fmt.Sprintf("ssl = yes\nssl_cert = <%s\nssl_key = <%s\nssl_min_protocol = TLSv1.2\n", certPath, keyPath)
		if _, err := os.Stat("/usr/share/dovecot/dh.pem"); err == nil {
			tlsConf += "ssl_dh = </usr/share/dovecot/dh.pem\n"
		}
	} else {
		tlsConf = "ssl = no\n"
	}
	debug := "no"
	if opts.Debug {
		debug = "yes"
	}
	mechanisms, oauthExtra := "plain login", ""
	passdbs := fmt.Sprintf("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%Lu %s\n}\n", d.passwd)
	if opts.OAuth != nil {
		oauthPassdb, err := d.writeOAuth(opts.OAuth, debug)
		if err != nil {
			t.Fatalf("%v", err)
		}
		mechanisms += " xoauth2 oauthbearer"
		// The oauth2 passdb answers only the bearer mechanisms and the passwd-file only the
		// password ones: a refused token is never retried as a password.
		// Refused tokens are what OAuth tests are about; the auth process's penalty (anvil
		// counts failures per client IP and delays the next attempt up to 15 s) would make each
		// one slow. An unreachable anvil-auth-penalty socket disables it.
		// auth_verbose logs why each token was refused ("oauth2 failed: Local validation
		// failed: Token has expired"), which tests check.
		oauthExtra = "auth_verbose = yes\nservice anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
		passdbs = oauthPassdb + fmt.Sprintf("passdb {\n  driver = passwd-file\n  mechanisms = plain login\n  args = scheme=PLAIN username_format=%%Lu %s\n}\n", d.passwd)
	}
	lmtpUnix := ""
	if d.LMTPSocket != "" {
		lmtpUnix = fmt.Sprintf("  unix_listener %s {\n    mode = 0666\n  }\n", d.LMTPSocket)
	}
	imapHost, imapPort := mailSplit(t, d.IMAPAddr)
	lmtpHost, lmtpPort := mailSplit(t, d.LMTPAddr)
	authHost, authPort := mailSplit(t, d.AuthAddr)
	conf := fmt.Sprintf(`# generated by bench/servers.StartDovecot
instance_name = %[1]s
base_dir = %[2]s
state_dir = %[3]s/state
log_path = %[4]s
info_log_path = %[4]s
debug_log_path = %[4]s
auth_debug = %[5]s
auth_debug_passwords = %[5]s
mail_debug = %[5]s
verbose_ssl = %[5]s
protocols = imap lmtp
listen = 127.0.0.1
default_internal_user = %[6]s
default_internal_group = %[6]s
default_login_user = %[7]s
first_valid_uid = %[8]d
last_valid_uid = %[8]d
first_valid_gid = %[9]d
last_valid_gid = %[9]d
mail_uid = %[8]d
mail_gid = %[9]d
mail_location = maildir:%[10]s/%%d/%%n/Maildir
mail_home = %[10]s/%%d/%%n
disable_plaintext_auth = no
auth_mechanisms = %[21]s
auth_username_format = %%Lu
auth_cache_size = 0
# Tests provoke failed logins on purpose; no 2 s penalty each.
auth_failure_delay = 0
lmtp_save_to_detail_mailbox = no
recipient_delimiter = +
postmaster_address = postmaster@%[11]s
hostname = dovecot.%[11]s
%[12]s
%[22]suserdb {
  driver = passwd-file
  args = username_format=%%Lu %[13]s
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
    auto = create
  }
  mailbox Trash {
    special_use = \Trash
    auto = create
  }
  mailbox Drafts {
    special_use = \Drafts
    auto = create
  }
}
service imap-login {
  inet_listener imap {
    address = %[14]s
    port = %[15]s
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0600
  }
%[16]s  inet_listener lmtp {
    address = %[17]s
    port = %[18]s
  }
}
service auth {
  inet_listener sasl {
    address = %[19]s
    port = %[20]s
  }
}
%[23]s`, "easgate-"+filepath.Base(runDir), runDir, dir, d.LogPath, debug, internalUser, loginUser,
		d.mailUID, d.mailGID, mailRoot, opts.Domain, tlsConf, d.passwd,
		imapHost, imapPort, lmtpUnix, lmtpHost, lmtpPort, authHost, authPort, mechanisms, passdbs, oauthExtra)
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatalf("servers: %v", err)
	}
	mailWriteFile(t, d.ConfigPath, []byte(conf), 0o644)

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("servers: dovecot log tail:\n%s", mailTail(d.LogPath, 40))
		}
		d.stop()
	})
	if err := d.start(); err != nil {
		t.Fatalf("servers: %v\n%s", err, mailTail(d.LogPath, 40))
	}
	return d
}

// writeOAuth writes the oauth2 passdb configuration and the validation key dictionary and
// returns the passdb block for dovecot.conf.
func (d *Dovecot) writeOAuth(o *DovecotOAuth, debug string) (string, error) {
	if len(o.Keys) == 0 {
		return "", errors.New("servers: DovecotOAuth needs at least one key")
	}
	d.OAuthConfigPath = filepath.Join(d.Dir, "dovecot-oauth2.conf.ext")
	d.OAuthKeyDir = filepath.Join(d.Dir, "oauth2-keys")
	for i, k := range o.Keys {
		if err := writeOAuthKey(d.OAuthKeyDir, k); err != nil {
			return "", fmt.Errorf("servers: DovecotOAuth.Keys[%d]: %w", i, err)
		}
	}
	attr := o.UsernameAttribute
	if attr == "" {
		attr = "upn"
	}
	var b strings.Builder
	b.WriteString("# generated by bench/servers.StartDovecot\n")
	b.WriteString("introspection_mode = local\n")
	// fs:posix looks the key "shared/<azp>/<alg>/<kid>" up as the file <prefix><azp>/<alg>/<kid>.
	fmt.Fprintf(&b, "local_validation_key_dict = fs:posix:prefix=%s/\n", d.OAuthKeyDir)
	fmt.Fprintf(&b, "username_attribute = %s\n", attr)
	b.WriteString("username_format = %Lu\n")
	if len(o.Issuers) > 0 {
		for _, is := range o.Issuers {
			if is == "" || strings.ContainsAny(is, " \t\r\n") {
				return "", fmt.Errorf("servers: DovecotOAuth.Issuers: %q is empty or contains white space", is)
			}
		}
		fmt.Fprintf(&b, "issuers = %s\n", strings.Join(o.Issuers, " "))
	}
	if o.ActiveAttribute != "" {
		fmt.Fprintf(&b, "active_attribute = %s\n", o.ActiveAttribute)
		if o.ActiveValue != "" {
			fmt.Fprintf(&b, "active_value = %s\n", o.ActiveValue)
		}
	} else if o.ActiveValue != "" {
		return "", errors.New("servers: DovecotOAuth.ActiveValue needs ActiveAttribute")
	}
	fmt.Fprintf(&b, "debug = %s\n", debug)
	if err := os.WriteFile(d.OAuthConfigPath, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("servers: %w", err)
	}
	return fmt.Sprintf("passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = %s\n}\n", d.OAuthConfigPath), nil
}

// oauthAlgs are the public-key JWS algorithms Dovecot 2.3's oauth2 local validation verifies.
var oauthAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
}

// writeOAuthKey stores k as the PEM file <dir>/<azp>/<alg>/<kid>, readable by Dovecot's auth
// process (an unprivileged user).
func writeOAuthKey(dir string, k DovecotOAuthKey) error {
	if !oauthAlgs[k.Alg] {
		return fmt.Errorf("alg %q is not one of RS256/384/512, PS256/384/512, ES256/384/512", k.Alg)
	}
	azp, kid := k.Azp, k.Kid
	if azp == "" {
		azp = "default"
	}
	if kid == "" {
		kid = "default"
	}
	// Dovecot 2.3.19 puts azp and kid into the path unescaped, later versions escape '.', '/'
	// and '%': identifiers with those characters would resolve differently (or escape the
	// directory), so they are refused.
	for _, id := range []string{azp, kid} {
		if strings.ContainsAny(id, "./%\x00") {
			return fmt.Errorf("azp/kid %q contains '.', '/' or '%%'", id)
		}
	}
	var pemBytes []byte
	switch {
	case k.PEM != nil && k.PublicKey != nil:
		return errors.New("set PublicKey or PEM, not both")
	case k.PEM != nil:
		blk, _ := pem.Decode(k.PEM)
		if blk == nil || blk.Type != "PUBLIC KEY" {
			return errors.New("PEM holds no \"PUBLIC KEY\" block")
		}
		if _, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
			return fmt.Errorf("PEM: %w", err)
		}
		pemBytes = pem.EncodeToMemory(blk)
	case k.PublicKey != nil:
		der, err := x509.MarshalPKIXPublicKey(k.PublicKey)
		if err != nil {
			return err
		}
		pemBytes = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	default:
		return errors.New("PublicKey or PEM is required")
	}
	sub := filepath.Join(dir, azp, k.Alg)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return err
	}
	for p := sub; p != filepath.Dir(dir); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
	}
	path := filepath.Join(sub, kid)
	if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
		return err
	}
	return os.Chmod(path, 0o644)
}

// processUsers picks the system users Dovecot's processes run as and sets the mail uid/gid.
func (d *Dovecot) processUsers(t testing.TB) (internal, login string) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("servers: current user: %v", err)
		}
		d.mailUID, _ = strconv.Atoi(u.Uid)
		d.mailGID, _ = strconv.Atoi(u.Gid)
		return u.Username, u.Username
	}
	internal = mailSystemUser(t, "dovecot")
	login = mailSystemUser(t, "dovenull")
	mu, err := user.Lookup("mail")
	if err != nil {
		t.Fatalf("servers: dovecot needs the system user \"mail\" to own mail storage: %v", err)
	}
	d.mailUID, _ = strconv.Atoi(mu.Uid)
	d.mailGID, _ = strconv.Atoi(mu.Gid)
	return internal, login
}

// AddUser adds (or replaces) a passwd-file user and returns its login name, which is also its
// mail address. Dovecot rereads the passwd-file on change, so this works while it runs.
func (d *Dovecot) AddUser(name, password string) string {
	d.t.Helper()
	if !strings.Contains(name, "@") {
		name += "@" + d.Domain
	}
	name = strings.ToLower(name)
	if strings.ContainsAny(name, ":\r\n") || strings.ContainsAny(password, ":\r\n") {
		d.t.Fatalf("servers: dovecot user %q: name and password must not contain ':' or line breaks", name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[name] = password
	var b strings.Builder
	for n, p := range d.users {
		fmt.Fprintf(&b, "%s:{PLAIN}%s::::::\n", n, p)
	}
	// Write then rename so Dovecot never reads a half-written file.
	tmp := d.passwd + ".tmp"
	mailWriteFile(d.t, tmp, []byte(b.String()), 0o644)
	if err := os.Rename(tmp, d.passwd); err != nil {
		d.t.Fatalf("servers: %v", err)
	}
	// Dovecot notices a change by mtime with one-second resolution on some filesystems; make the
	// new file's mtime distinct from a write in the same second.
	now := time.Now()
	_ = os.Chtimes(d.passwd, now, now.Add(time.Duration(len(d.users))*time.Millisecond))
	return name
}

// Users returns a copy of the login name → password map.
func (d *Dovecot) Users() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]string, len(d.users))
	for k, v := range d.users {
		m[k] = v
	}
	return m
}

// TLSConfig returns a client TLS configuration that trusts this server's certificate
// (nil without STARTTLS).
func (d *Dovecot) TLSConfig() *tls.Config {
	if d.CACertPEM == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(d.CACertPEM)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Stop stops Dovecot (SIGTERM, then SIGKILL of its process group after one second). Data and ports are kept for Start.
// Stopping a stopped server does nothing.
func (d *Dovecot) Stop() {
	d.t.Helper()
	d.stop()
}

// Start starts a stopped Dovecot again on the same ports with the same data.
func (d *Dovecot) Start() {
	d.t.Helper()
	if err := d.start(); err != nil {
		d.t.Fatalf("servers: %v\n%s", err, mailTail(d.LogPath, 40))
	}
}

// Restart is Stop followed by Start.
func (d *Dovecot) Restart() {
	d.t.Helper()
	d.Stop()
	d.Start()
}

func (d *Dovecot) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		return nil
	}
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("servers: dovecot log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(dovecotBinary, "-F", "-c", d.ConfigPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group so Stop can end every child; Pdeathsig so a test binary that dies
	// (timeout, SIGKILL) does not leave the server running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("servers: start dovecot: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	d.proc, d.procDone = cmd, done
	addrs := []string{d.IMAPAddr, d.LMTPAddr, d.AuthAddr}
	if err := mailWaitListening(addrs, done, 20*time.Second); err != nil {
		d.kill()
		return fmt.Errorf("servers: dovecot did not come up: %w", err)
	}
	if d.LMTPSocket != "" {
		if err := mailWaitUnix(d.LMTPSocket, done, 10*time.Second); err != nil {
			d.kill()
			return fmt.Errorf("servers: dovecot LMTP socket: %w", err)
		}
	}
	return nil
}

func (d *Dovecot) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return
	}
	_ = d.proc.Process.Signal(syscall.SIGTERM)
	// Dovecot 2.3's master often lingers for seconds after SIGTERM while idle children sit in
	// blocking reads. The grace period is short because Maildir delivery is crash-safe (LMTP
	// answers 250 only after the message is on disk): ending the process group loses nothing a
	// client was promised.
	select {
	case <-d.procDone:
	case <-time.After(time.Second):
	}
	d.kill()
	// Wait for the listeners to close so a Start right after finds the ports free.
	for _, a := range []string{d.IMAPAddr, d.LMTPAddr, d.AuthAddr} {
		mailWaitClosed(a, 5*time.Second)
	}
}

// kill ends the whole process group (master and any children left). Caller holds d.mu.
func (d *Dovecot) kill() {
	if d.proc == nil {
		return
	}
	_ = syscall.Kill(-d.proc.Process.Pid, syscall.SIGKILL)
	<-d.procDone
	d.proc, d.procDone = nil, nil
}

// ---- helpers shared by dovecot.go and postfix.go (prefixed "mail" to stay out of the way of the
// other servers in this package) ----

// mailEnsureBinaries installs missing Debian packages and fails the test if a binary is still
// missing. The map is binary path → package.
func mailEnsureBinaries(t testing.TB, bins map[string]string) {
	t.Helper()
	var pkgs []string
	seen := map[string]bool{}
	for bin, pkg := range bins {
		if _, err := os.Stat(bin); err != nil && !seen[pkg] {
			seen[pkg] = true
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return
	}
	mailInstallMu.Lock()
	defer mailInstallMu.Unlock()
	args := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	for bin, pkg := range bins {
		if _, serr := os.Stat(bin); serr != nil {
			t.Fatalf("servers: %s is missing and `apt-get install -y %s` did not provide it (%v):\n%s",
				bin, pkg, err, mailLastLines(string(out), 20))
		}
	}
}

var mailInstallMu sync.Mutex

// mailSystemUser returns name if that system user exists, else creates it as a system user
// without login.
func mailSystemUser(t testing.TB, name string) string {
	t.Helper()
	if _, err := user.Lookup(name); err == nil {
		return name
	}
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		if _, lerr := user.Lookup(name); lerr == nil {
			return name
		}
		t.Fatalf("servers: create system user %s: %v\n%s", name, err, out)
	}
	return name
}

// mailOpenPath makes dir and each of its parents traversable by the unprivileged users the
// servers' child processes run as: t.TempDir() is created 0700 and owned by root.
func mailOpenPath(t testing.TB, dir string) {
	t.Helper()
	stop := filepath.Clean(os.TempDir())
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("servers: %v", err)
		}
		want := fi.Mode().Perm() | 0o011
		if p == filepath.Clean(dir) {
			want |= 0o055
		}
		if want != fi.Mode().Perm() {
			if err := os.Chmod(p, want); err != nil {
				t.Fatalf("servers: make %s traversable: %v", p, err)
			}
		}
		if p == stop || p == "/" || !strings.HasPrefix(p, stop) {
			return
		}
	}
}

// mailFreeAddrs is freeAddrs for a test: a failure ends it.
func mailFreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs, err := freeAddrs(n)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return addrs
}

func mailSplit(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	return h, p
}

func mailWriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatalf("servers: %v", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatalf("servers: %v", err)
	}
}

// mailWaitListening polls until every address accepts a TCP connection, the process exits, or
// the timeout passes.
func mailWaitListening(addrs []string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return errors.New("process exited during startup")
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not listening after %v: %w", a, timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func mailWaitUnix(path string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited during startup")
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mailWaitClosed(addr string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

// mailSelfSigned makes a self-signed ECDSA P-256 certificate for 127.0.0.1, ::1 and localhost.
func mailSelfSigned(t testing.TB, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"easgate tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", cn},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// mailTail returns the last n lines of a file, for failure messages.
func mailTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return mailLastLines(string(b), n)
}

func mailLastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
