package imap

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// Credentials are what the device authenticated with, passed through to IMAP and SMTP.
// Exactly one of Password and Token is used: Token (an OAuth 2.0 bearer access token, sent
// with Config.OAuthMechanism) when it is not empty, else Password (IMAP LOGIN, SMTP AUTH PLAIN).
type Credentials struct {
	User     string
	Password string
	Token    string
}

func (c Credentials) poolKey() string {
	secret := c.Password
	kind := "p"
	if c.Token != "" {
		secret, kind = c.Token, "t"
	}
	h := sha256.Sum256([]byte(kind + "\x00" + secret))
	return c.User + "\x00" + string(h[:])
}

// saslClient returns a fresh client of the bearer mechanism mech ("OAUTHBEARER" or "XOAUTH2")
// for one exchange, on IMAP and SMTP alike.
//
// go-sasl's OAUTHBEARER client is not used: when the server refuses the token it returns the
// server's error challenge as an error, which abandons the exchange before the server's final
// answer, so a refused token looked like a broken server (ErrUnavailable, 503) instead of
// ErrAuthFailed (401). Both clients here complete the exchange (bearerErrorResponse).
func (c Credentials) saslClient(mech string) sasl.Client {
	if mech == "OAUTHBEARER" {
		return &oauthBearerClient{user: c.User, token: c.Token}
	}
	return &xoauth2Client{user: c.User, token: c.Token}
}

// xoauth2Client is the SASL XOAUTH2 client (Google's and Microsoft's pre-standard mechanism,
// https://developers.google.com/gmail/imap/xoauth2-protocol), which go-sasl does not provide.
type xoauth2Client struct {
	user, token string
	challenged  bool
}

func (x *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2Client) Next([]byte) ([]byte, error) {
	return bearerErrorResponse("XOAUTH2", &x.challenged)
}

// oauthBearerClient is the SASL OAUTHBEARER client (RFC 7628 §3.1): a GS2 header naming the
// user as authorization identity, then the "auth" key-value pair.
type oauthBearerClient struct {
	user, token string
	challenged  bool
}

func (o *oauthBearerClient) Start() (string, []byte, error) {
	return "OAUTHBEARER", []byte("n,a=" + gs2Escape(o.user) + ",\x01auth=Bearer " + o.token + "\x01\x01"), nil
}

func (o *oauthBearerClient) Next([]byte) ([]byte, error) {
	return bearerErrorResponse("OAUTHBEARER", &o.challenged)
}

// bearerErrorResponse answers the only challenge a bearer mechanism has: the JSON error status a
// server sends when it refuses the token (RFC 7628 §3.2.2; XOAUTH2 alike). The answer is the
// dummy response %x01 (RFC 7628 §3.2.3), after which the server fails the exchange with its
// final answer (IMAP tagged NO, SMTP 535), which the callers map to ErrAuthFailed. Google
// documents an empty response for XOAUTH2, but go-imap encodes an empty continuation response
// as "=", which Dovecot rejects as invalid base64 (tagged BAD); Dovecot takes %x01 for both
// mechanisms. A second challenge is a protocol violation and aborts the exchange.
func bearerErrorResponse(mech string, challenged *bool) ([]byte, error) {
	if *challenged {
		return nil, errors.New("imap: SASL " + mech + ": unexpected challenge after the error status")
	}
	*challenged = true
	return []byte{0x01}, nil
}

// gs2Escape encodes a GS2 authzid (RFC 5801 §4: ',' as "=2C", '=' as "=3D").
func gs2Escape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// conn is one authenticated IMAP connection owned by the pool while idle and by one request
// while in use.
type conn struct {
	c        *imapclient.Client
	key      string
	lastUsed time.Time
	// events receives a token for every unilateral response (EXISTS, EXPUNGE, FETCH) the
	// server sends; Ping's IDLE waits on it.
	events chan struct{}
	broken bool
}

func (c *conn) signal() {
	select {
	case c.events <- struct{}{}:
	default:
	}
}

func (c *conn) drain() {
	for {
		select {
		case <-c.events:
		default:
			return
		}
	}
}

func (c *conn) closed() bool {
	select {
	case <-c.c.Closed():
		return true
	default:
		return false
	}
}

// pool caps IMAP connections per credential and in total and reuses authenticated ones.
type pool struct {
	cfg *Config

	mu      sync.Mutex
	idle    map[string][]*conn
	perKey  map[string]int // open connections (idle and in use) per key
	total   int
	changed chan struct{} // closed and replaced whenever a slot may have become free
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newPool(cfg *Config) *pool {
	p := &pool{cfg: cfg, idle: map[string][]*conn{}, perKey: map[string]int{}, changed: make(chan struct{}), stop: make(chan struct{})}
	p.wg.Add(1)
	go p.janitor()
	return p
}

func (p *pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// janitor closes connections idle longer than Config.IdleTimeout.
func (p *pool) janitor() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.IdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		var old []*conn
		p.mu.Lock()
		now := time.Now()
		for k, list := range p.idle {
			keep := list[:0]
			for _, c := range list {
				if now.Sub(c.lastUsed) > p.cfg.IdleTimeout || c.closed() {
					old = append(old, c)
					p.perKey[k]--
					p.total--
				} else {
					keep = append(keep, c)
				}
			}
			p.idle[k] = keep
			if len(keep) == 0 {
				delete(p.idle, k)
			}
			if p.perKey[k] <= 0 {
				delete(p.perKey, k)
			}
		}
		if len(old) > 0 {
			p.notifyLocked()
		}
		p.mu.Unlock()
		for _, c := range old {
			c.c.Logout().Wait()
			c.c.Close()
		}
	}
}

// acquire returns an authenticated connection for cred, reusing an idle one when possible and
// waiting (until ctx ends) while the caps are reached.
func (p *pool) acquire(ctx context.Context, cred Credentials) (*conn, error) {
	key := cred.poolKey()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, newErr(ErrUnavailable, nil, "backend closed")
		}
		for list := p.idle[key]; len(list) > 0; list = p.idle[key] {
			c := list[len(list)-1]
			p.idle[key] = list[:len(list)-1]
			if !c.closed() {
				p.mu.Unlock()
				c.drain()
				return c, nil
			}
			p.perKey[key]--
			p.total--
		}
		var evict *conn
		if p.perKey[key] < p.cfg.MaxConnsPerUser {
			if p.total >= p.cfg.MaxConns {
				evict = p.evictLocked()
			}
			if p.total < p.cfg.MaxConns {
				p.perKey[key]++
				p.total++
				p.mu.Unlock()
				if evict != nil {
					evict.c.Close()
				}
				c, err := p.dial(ctx, cred, key)
				if err != nil {
					p.mu.Lock()
					p.perKey[key]--
					p.total--
					if p.perKey[key] <= 0 {
						delete(p.perKey, key)
					}
					p.notifyLocked()
					p.mu.Unlock()
					return nil, err
				}
				return c, nil
			}
		}
		wait := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, newErr(ErrUnavailable, ctx.Err(), "waiting for an IMAP connection (limit reached)")
		case <-wait:
		}
	}
}

// evictLocked closes the least recently used idle connection of any key to make room.
func (p *pool) evictLocked() *conn {
	var bestKey string
	var best *conn
	bestIdx := -1
	for k, list := range p.idle {
		for i, c := range list {
			if best == nil || c.lastUsed.Before(best.lastUsed) {
				best, bestKey, bestIdx = c, k, i
			}
		}
	}
	if best == nil {
		return nil
	}
	list := p.idle[bestKey]
	p.idle[bestKey] = append(list[:bestIdx], list[bestIdx+1:]...)
	p.perKey[bestKey]--
	p.total--
	return best
}

// release gives a connection back; a broken one is closed and its slot freed.
func (p *pool) release(c *conn) {
	if c == nil {
		return
	}
	bad := c.broken || c.closed() || c.c.Mailbox() != nil
	p.mu.Lock()
	defer p.mu.Unlock()
	if bad || p.closed {
		p.perKey[c.key]--
		p.total--
		if p.perKey[c.key] <= 0 {
			delete(p.perKey, c.key)
		}
		p.notifyLocked()
		go c.c.Close()
		return
	}
	c.lastUsed = time.Now()
	p.idle[c.key] = append(p.idle[c.key], c)
	p.notifyLocked()
}

func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	var all []*conn
	for _, list := range p.idle {
		all = append(all, list...)
	}
	p.idle = map[string][]*conn{}
	p.notifyLocked()
	p.mu.Unlock()
	p.wg.Wait()
	for _, c := range all {
		c.c.Close()
	}
}

func (p *pool) dial(ctx context.Context, cred Credentials, key string) (*conn, error) {
	cn := &conn{key: key, events: make(chan struct{}, 1)}
	opts := &imapclient.Options{
		TLSConfig: p.cfg.TLSConfig,
		Dialer:    &net.Dialer{Timeout: p.cfg.DialTimeout},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Expunge: func(uint32) { cn.signal() },
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					cn.signal()
				}
			},
			Fetch: func(*imapclient.FetchMessageData) { cn.signal() },
		},
	}
	var c *imapclient.Client
	var err error
	switch p.cfg.IMAPSecurity {
	case SecurityTLS:
		c, err = imapclient.DialTLS(p.cfg.IMAPAddr, opts)
	case SecurityStartTLS:
		c, err = imapclient.DialStartTLS(p.cfg.IMAPAddr, opts)
	default:
		c, err = imapclient.DialInsecure(p.cfg.IMAPAddr, opts)
	}
	if err != nil {
		return nil, newErr(ErrUnavailable, err, "connect to IMAP server %s", p.cfg.IMAPAddr)
	}
	cn.c = c
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if cred.Token != "" {
		err = c.Authenticate(cred.saslClient(p.cfg.OAuthMechanism))
	} else {
		err = c.Login(cred.User, cred.Password).Wait()
	}
	if err != nil {
		c.Close()
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			return nil, newErr(ErrAuthFailed, err, "IMAP login of %q", cred.User)
		}
		return nil, newErr(ErrUnavailable, err, "IMAP login")
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, newErr(ErrUnavailable, ctx.Err(), "IMAP login")
	}
	if _, err := c.Capability().Wait(); err != nil {
		c.Close()
		return nil, newErr(ErrUnavailable, err, "IMAP CAPABILITY")
	}
	return cn, nil
}

// open returns the number of open connections (idle and in use).
func (p *pool) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}
