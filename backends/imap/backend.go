package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Security is how a connection to the IMAP or SMTP server is protected.
type Security uint8

// Security modes.
const (
	SecurityNone     Security = iota // plain TCP (loopback or trusted network only)
	SecurityStartTLS                 // STARTTLS upgrade, required
	SecurityTLS                      // implicit TLS (IMAPS 993, SMTPS 465)
)

// Config configures a Backend. Zero fields take the documented defaults; New validates the
// rest and reports every problem at once.
type Config struct {
	// IMAPAddr is host:port of the IMAP server. Required.
	IMAPAddr     string
	IMAPSecurity Security
	// SMTPAddr is host:port of the SMTP submission server. Required for SendMail,
	// SmartReply and SmartForward; empty makes them fail with MailSubmissionFailed.
	SMTPAddr     string
	SMTPSecurity Security
	// TLSConfig is used for IMAP and SMTP TLS; nil means the system roots and the host name of
	// the address.
	TLSConfig *tls.Config
	// OAuthMechanism is the SASL mechanism for bearer credentials: "XOAUTH2" (default) or
	// "OAUTHBEARER".
	OAuthMechanism string
	// Domain is appended ("@" + Domain) to a login name without '@' to form the sender's
	// address. Empty: the login name is used as is.
	Domain string

	// MaxConnsPerUser caps IMAP connections per credential (default 4), MaxConns in total
	// (default 512). A request waits for a slot until its context ends.
	MaxConnsPerUser int
	MaxConns        int
	// IdleTimeout closes pooled connections unused this long (default 5 min).
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to IMAP or SMTP (default 10 s).
	DialTimeout time.Duration

	// WindowSize is the Sync window when the device sends none (default 100); MaxWindowSize
	// caps what a device may ask (default 512, MS-ASCMD 2.2.3.199.2).
	WindowSize    int
	MaxWindowSize int
	// MinHeartbeat and MaxHeartbeat bound Ping's HeartbeatInterval (defaults 60 s and 3540 s,
	// MS-ASCMD 2.2.3.79.1); MaxPingFolders caps the folders of one Ping (default 100).
	MinHeartbeat   time.Duration
	MaxHeartbeat   time.Duration
	MaxPingFolders int
	// PollInterval is how often Ping checks folders other than the one it IDLEs on (default
	// 30 s).
	PollInterval time.Duration
	// MaxBodyFetch caps the bytes of one text body part fetched from IMAP (default 4 MiB);
	// longer bodies are reported as truncated.
	MaxBodyFetch int64
	// MaxRequestBody caps the request body Serve accepts (default 32 MiB).
	MaxRequestBody int
	// MaxSearchResults caps Search results (default 100).
	MaxSearchResults int

	// MaxAttachment caps the decoded attachment bytes of one response (default 150 MiB, at
	// most 4 GiB - 1): the attachment of a GetAttachment (beyond it: HTTP 500), or all
	// attachment parts of one multipart ItemOperations response (beyond it: that Fetch
	// answers Status 11). These are streamed or spooled, never held in memory.
	MaxAttachment int64
	// MaxInlineAttachment caps the decoded attachment bytes one ItemOperations response
	// carries inline as base64 Data, which must be held in memory (default 16 MiB); a Fetch
	// beyond it answers Status 11 ("requested data size is too large", MS-ASCMD 2.2.3.177.8).
	MaxInlineAttachment int64
	// SpoolDir holds the unlinked temporary files of multipart attachment parts (default
	// os.TempDir()). It needs room for MaxAttachment per concurrent ItemOperations.
	SpoolDir string
	// StreamIdleTimeout closes a streamed GetAttachment body nobody read for this long, giving
	// back its IMAP connection (default 2 min).
	StreamIdleTimeout time.Duration

	// Logger receives operational messages; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	d := *c
	def := func(v *int, x int) {
		if *v <= 0 {
			*v = x
		}
	}
	defd := func(v *time.Duration, x time.Duration) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&d.MaxConnsPerUser, 4)
	def(&d.MaxConns, 512)
	defd(&d.IdleTimeout, 5*time.Minute)
	defd(&d.DialTimeout, 10*time.Second)
	def(&d.WindowSize, 100)
	def(&d.MaxWindowSize, 512)
	defd(&d.MinHeartbeat, 60*time.Second)
	defd(&d.MaxHeartbeat, 3540*time.Second)
	def(&d.MaxPingFolders, 100)
	defd(&d.PollInterval, 30*time.Second)
	if d.MaxBodyFetch <= 0 {
		d.MaxBodyFetch = 4 << 20
	}
	def(&d.MaxRequestBody, 32<<20)
	def(&d.MaxSearchResults, 100)
	if d.MaxAttachment <= 0 {
		d.MaxAttachment = 150 << 20
	}
	if d.MaxInlineAttachment <= 0 {
		d.MaxInlineAttachment = 16 << 20
	}
	if d.SpoolDir == "" {
		d.SpoolDir = os.TempDir()
	}
	defd(&d.StreamIdleTimeout, 2*time.Minute)
	if d.OAuthMechanism == "" {
		d.OAuthMechanism = "XOAUTH2"
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return d
}

func (c *Config) validate() error {
	var errs []error
	if c.IMAPAddr == "" {
		errs = append(errs, errors.New("imap: Config.IMAPAddr is required"))
	}
	if c.OAuthMechanism != "XOAUTH2" && c.OAuthMechanism != "OAUTHBEARER" {
		errs = append(errs, fmt.Errorf("imap: Config.OAuthMechanism %q: want XOAUTH2 or OAUTHBEARER", c.OAuthMechanism))
	}
	if c.MaxConnsPerUser > c.MaxConns {
		errs = append(errs, fmt.Errorf("imap: Config.MaxConnsPerUser %d exceeds MaxConns %d", c.MaxConnsPerUser, c.MaxConns))
	}
	if c.MinHeartbeat > c.MaxHeartbeat {
		errs = append(errs, errors.New("imap: Config.MinHeartbeat exceeds MaxHeartbeat"))
	}
	if c.MaxAttachment > math.MaxUint32 {
		// Multipart offsets and lengths are 32-bit (MS-ASCMD 2.2.1.10.1).
		errs = append(errs, fmt.Errorf("imap: Config.MaxAttachment %d exceeds 4 GiB - 1", c.MaxAttachment))
	}
	if c.IMAPSecurity > SecurityTLS || c.SMTPSecurity > SecurityTLS {
		errs = append(errs, errors.New("imap: unknown Security value"))
	}
	return errors.Join(errs...)
}

// Backend is the EAS server on top of one IMAP + SMTP mail system. It is safe for concurrent
// use; requests of the same device are serialised per command family by the state store's
// transactions, as EAS devices send them one at a time.
type Backend struct {
	cfg   Config
	store StateStore
	pool  *pool
	log   *slog.Logger

	lockMu sync.Mutex
	locks  map[string]*deviceLock
}

type deviceLock struct {
	mu   sync.Mutex
	refs int
}

// lockDevice serialises the state changes of one (user, device): a device retrying a request
// whose first attempt is still running must not commit the same SyncKey twice.
func (b *Backend) lockDevice(user, device string) func() {
	k := user + "\x00" + device
	b.lockMu.Lock()
	l := b.locks[k]
	if l == nil {
		l = &deviceLock{}
		b.locks[k] = l
	}
	l.refs++
	b.lockMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		b.lockMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(b.locks, k)
		}
		b.lockMu.Unlock()
	}
}

// New returns a Backend. store is owned by the caller and must outlive the Backend.
func New(cfg Config, store StateStore) (*Backend, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("imap: New needs a StateStore")
	}
	b := &Backend{cfg: c, store: store, log: c.Logger, locks: map[string]*deviceLock{}}
	b.pool = newPool(&b.cfg)
	return b, nil
}

// Close closes the pooled IMAP connections. Requests still running fail.
func (b *Backend) Close() error {
	b.pool.close()
	return nil
}

// Response is the answer to one EAS request. Exactly one of Body and Reader is set when the
// response has a body; the gateway writes Header, Status, ContentType and the body. A Reader
// (large attachments: GetAttachment, multipart ItemOperations) outlives Serve and its context:
// it may hold an IMAP connection or temporary files, and it always implements io.Closer, which
// the caller must call once done with it, whether it read it all or not (fasthttp's
// SetBodyStream does). It is read by one goroutine at a time.
type Response struct {
	Status      int
	ContentType string
	Header      map[string]string
	Body        []byte
	Reader      io.Reader
	// Length is the Reader's exact length, -1 when unknown (the body is then chunked).
	Length int64
}

// Content types of EAS responses (MS-ASHTTP 2.2.2.1.1).
const (
	ContentTypeWBXML     = "application/vnd.ms-sync.wbxml"
	ContentTypeMultipart = "application/vnd.ms-sync.multipart"
)

// supportedCommands are the commands this backend answers (OPTIONS, MS-ASHTTP 2.2.4).
// Provision is answered by the gateway, not here; it is listed so devices provision.
var supportedCommands = []eas.Command{
	eas.CmdSync, eas.CmdSendMail, eas.CmdSmartForward, eas.CmdSmartReply, eas.CmdGetAttachment,
	eas.CmdFolderSync, eas.CmdFolderCreate, eas.CmdFolderDelete, eas.CmdFolderUpdate,
	eas.CmdMoveItems, eas.CmdGetItemEstimate, eas.CmdMeetingResponse, eas.CmdSearch,
	eas.CmdSettings, eas.CmdPing, eas.CmdItemOperations, eas.CmdProvision,
}

var supportedVersions = []eas.Version{eas.V121, eas.V140, eas.V141, eas.V160, eas.V161}

// Options answers the HTTP OPTIONS request (MS-ASHTTP 2.2.4): MS-ASProtocolVersions
// "12.1,14.0,14.1,16.0,16.1" and the commands this backend serves.
func (b *Backend) Options() Response {
	return Response{Status: http.StatusOK, Header: map[string]string{
		"MS-Server-ActiveSync":  "14.3",
		"MS-ASProtocolVersions": eas.ProtocolVersionsHeader(supportedVersions),
		"MS-ASProtocolCommands": eas.ProtocolCommandsHeader(supportedCommands, supportedVersions),
		"Allow":                 "OPTIONS,POST",
	}}
}

// Serve answers one EAS request. req must be valid (eas.Request.Validate); body is the raw
// request body (WBXML, or MIME for the 12.x SendMail forms), not retained after Serve returns.
// ctx bounds all IMAP and SMTP work: Ping returns as soon as it ends. Errors are *Error.
func (b *Backend) Serve(ctx context.Context, req *eas.Request, cred Credentials, body []byte) (Response, error) {
	if len(body) > b.cfg.MaxRequestBody {
		return Response{}, badRequest("request body of %d bytes exceeds %d", len(body), b.cfg.MaxRequestBody)
	}
	if req.Version != 0 && req.Version < eas.V121 {
		e := badRequest("protocol version %s not supported", req.Version)
		e.Status = eas.StatusVersionNotSupported
		return Response{}, e
	}
	s := &session{b: b, ctx: ctx, req: req, cred: cred, user: strings.ToLower(req.User), device: req.DeviceID}
	if s.user == "" {
		s.user = strings.ToLower(cred.User)
	}
	defer s.close()
	// Authenticate before anything else. Some answers come from the sync state alone (a retried
	// Sync is answered again from its saved form); without this login a wrong password with a
	// known DeviceId and SyncKey would read the mailbox. The pool keeps authenticated
	// connections per credential, so this costs no round trip in the common case.
	if _, err := s.client(); err != nil {
		return Response{}, err
	}
	if req.Cmd != eas.CmdPing && req.Cmd != eas.CmdSync && req.Cmd != eas.CmdSearch && req.Cmd != eas.CmdItemOperations {
		// Sync takes the lock itself, outside its long-poll wait; Ping, Search and
		// ItemOperations fetches change no state (EmptyFolderContents only changes IMAP).
		defer b.lockDevice(s.user, s.device)()
	}
	switch req.Cmd {
	case eas.CmdFolderSync:
		return s.folderSync(body)
	case eas.CmdFolderCreate:
		return s.folderCreate(body)
	case eas.CmdFolderUpdate:
		return s.folderUpdate(body)
	case eas.CmdFolderDelete:
		return s.folderDelete(body)
	case eas.CmdSync:
		return s.sync(body)
	case eas.CmdGetItemEstimate:
		return s.getItemEstimate(body)
	case eas.CmdItemOperations:
		return s.itemOperations(body)
	case eas.CmdMoveItems:
		return s.moveItems(body)
	case eas.CmdSendMail, eas.CmdSmartReply, eas.CmdSmartForward:
		return s.compose(body)
	case eas.CmdGetAttachment:
		return s.getAttachment()
	case eas.CmdPing:
		return s.ping(body)
	case eas.CmdSearch:
		return s.search(body)
	case eas.CmdMeetingResponse:
		return s.meetingResponse(body)
	case eas.CmdSettings:
		return s.settings(body)
	}
	e := badRequest("command %s not served by the IMAP backend", req.Cmd)
	e.Status = eas.StatusCommandNotSupported
	e.HTTPStatus = http.StatusNotImplemented
	return Response{}, e
}

// session is the per-request context: the request, its credentials and, once needed, one
// pooled IMAP connection.
type session struct {
	b      *Backend
	ctx    context.Context
	req    *eas.Request
	cred   Credentials
	user   string // state key: the EAS User, lower-cased
	device string

	cn       *conn
	stopCtx  func() bool
	folders  []Folder // LIST result, cached for the request
	hier     *HierarchyState
	selected *imap.SelectData
	selName  string
}

func (s *session) close() {
	if s.cn == nil {
		return
	}
	// Leave nothing selected while ctx still guards the connection: the next user starts
	// from the authenticated state, and no one is notified about a mailbox nobody watches.
	if !s.cn.broken && s.cn.c.Mailbox() != nil {
		if err := unselect(s.cn.c); err != nil {
			s.cn.broken = true
		}
	}
	if s.stopCtx != nil && !s.stopCtx() {
		s.cn.broken = true
	}
	s.b.pool.release(s.cn)
	s.cn = nil
}

// client returns the session's IMAP connection, acquiring it on first use. The connection is
// closed when ctx ends, which makes any pending command fail at once.
func (s *session) client() (*imapclient.Client, error) {
	if s.cn != nil {
		return s.cn.c, nil
	}
	cn, err := s.b.pool.acquire(s.ctx, s.cred)
	if err != nil {
		return nil, err
	}
	s.cn = cn
	s.stopCtx = context.AfterFunc(s.ctx, func() { cn.c.Close() })
	return cn.c, nil
}

// imapErr converts a failed IMAP command into the backend's error: a closed or broken
// connection means the server is unavailable (or the request was cancelled).
func (s *session) imapErr(err error, what string) error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return newErr(ErrInternal, err, "IMAP %s", what)
	}
	if s.cn != nil {
		s.cn.broken = true
	}
	if s.ctx.Err() != nil {
		return newErr(ErrUnavailable, s.ctx.Err(), "IMAP %s cancelled", what)
	}
	return newErr(ErrUnavailable, err, "IMAP %s", what)
}

// isNo reports whether err is a tagged NO from the server (as opposed to a transport error).
func isNo(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo
}

func (s *session) caps() imap.CapSet {
	if s.cn == nil {
		return nil
	}
	return s.cn.c.Caps()
}

func (s *session) condstore() bool {
	c := s.caps()
	return c.Has(imap.CapCondStore) || c.Has(imap.CapQResync)
}

// selectMailbox selects name (read-write, CONDSTORE when available), reusing the selection
// made earlier in the same request.
func (s *session) selectMailbox(name string) (*imap.SelectData, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	if s.selected != nil && s.selName == name {
		return s.selected, nil
	}
	sel, err := c.Select(name, &imap.SelectOptions{CondStore: s.condstore()}).Wait()
	if err != nil {
		s.selected, s.selName = nil, ""
		return nil, err
	}
	s.selected, s.selName = sel, name
	return sel, nil
}

// reselect forgets the cached selection so the next selectMailbox reads fresh counters.
func (s *session) reselect() { s.selected, s.selName = nil, "" }

// parse decodes a WBXML request body and checks its root element.
func parseBody(body []byte, root wbxml.Tag) (*wbxml.Element, error) {
	if len(body) == 0 {
		return nil, badRequest("empty %s request", root.Name())
	}
	doc, err := wbxml.Parse(body, wbxml.Limits{})
	if err != nil {
		return nil, badWBXML(err)
	}
	if doc.Root.Tag != root {
		return nil, badRequest("root element %s, want %s", doc.Root.Tag, root)
	}
	return doc.Root, nil
}

func wbxmlResponse(root *wbxml.Element) (Response, error) {
	b, err := wbxml.NewDocument(root).Encode(nil)
	if err != nil {
		return Response{}, internal(err, "encode response")
	}
	return Response{Status: http.StatusOK, ContentType: ContentTypeWBXML, Body: b}, nil
}

func text(t wbxml.Tag, v any) *wbxml.Element {
	switch x := v.(type) {
	case string:
		return wbxml.NewText(t, x)
	case int:
		return wbxml.NewText(t, fmt.Sprint(x))
	case uint32:
		return wbxml.NewText(t, fmt.Sprint(x))
	case uint64:
		return wbxml.NewText(t, fmt.Sprint(x))
	case int64:
		return wbxml.NewText(t, fmt.Sprint(x))
	case eas.Status:
		return wbxml.NewText(t, fmt.Sprint(int(x)))
	}
	panic(fmt.Sprintf("imap: text of %T", v))
}

// userAddress is the mail address of the authenticated user.
func (s *session) userAddress() string {
	u := s.cred.User
	if u == "" {
		u = s.req.User
	}
	if !strings.Contains(u, "@") && s.b.cfg.Domain != "" {
		u += "@" + s.b.cfg.Domain
	}
	return u
}

// contextCloser closes c when ctx ends; the returned func stops that.
func contextCloser(ctx context.Context, c io.Closer) func() bool {
	return context.AfterFunc(ctx, func() { c.Close() })
}

func tlsConfigFor(cfg *Config) *tls.Config {
	if cfg.TLSConfig != nil {
		return cfg.TLSConfig.Clone()
	}
	host, _, _ := strings.Cut(cfg.SMTPAddr, ":")
	return &tls.Config{ServerName: host}
}

func tlsClient(nc net.Conn, cfg *Config) net.Conn {
	tc := tlsConfigFor(cfg)
	if tc.ServerName == "" {
		host, _, _ := strings.Cut(cfg.SMTPAddr, ":")
		tc.ServerName = host
	}
	return tls.Client(nc, tc)
}
