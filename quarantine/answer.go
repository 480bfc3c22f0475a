package quarantine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// ContentTypeWBXML is the Content-Type of every WBXML answer (MS-ASHTTP 2.2.2.1.2.1).
const ContentTypeWBXML = "application/vnd.ms-sync.wbxml"

// Answer is a complete, transport-neutral response to one EAS request: the gateway copies
// Status, ContentType, Headers and Body into its HTTP response. The Answer owns Body; it
// shares no memory with the request.
type Answer struct {
	// Status is the HTTP status code: 200 for every WBXML answer, 403 (blocked), 449
	// (provisioning required, for a pending wipe) or 503 (retry later) for protocol
	// versions before 14.0, which carry these conditions in the HTTP status.
	Status int
	// ContentType is ContentTypeWBXML when Body is set, else "".
	ContentType string
	// Headers are extra response headers (e.g. Retry-After).
	Headers []Header
	// Body is the WBXML response body; nil for HTTP-status-only answers.
	Body []byte
	// Hold asks the gateway to wait this long before writing the answer (or until the
	// client goes away): a quarantined device's Ping, or waiting Sync, with nothing new.
	// Zero: answer at once.
	Hold time.Duration
}

// Header is one HTTP response header.
type Header struct{ Name, Value string }

// ErrAllowed is returned by Answer for an Allow decision: allowed requests go to the
// backend, never to the responder. It is a programming error in the caller.
var ErrAllowed = errors.New("quarantine: decision allows the request; forward it instead")

// PassThrough reports whether a request with command cmd goes to the backend despite the
// non-Allow decision d, so that the device can become compliant:
//
//   - Quarantine: Provision (the device accepts the security policy, MS-ASPROV) and
//     Settings (it reports DeviceInformation, MS-ASCMD 2.2.1.18) pass.
//   - Wipe and AccountOnlyWipe: Provision passes; it is where the wipe directive is
//     delivered and acknowledged (MS-ASPROV 3.2.5.1.2).
//   - Block: nothing passes.
//
// Allow passes everything. The gateway calls PassThrough before Answer.
func PassThrough(cmd eas.Command, d decision.Decision) bool {
	switch d.Action {
	case decision.Allow:
		return true
	case decision.Quarantine:
		return cmd == eas.CmdProvision || cmd == eas.CmdSettings
	case decision.Wipe, decision.AccountOnlyWipe:
		return cmd == eas.CmdProvision
	}
	return false
}

// Responder answers devices that are not allowed, per command and protocol version, without
// contacting the mail server. It is safe for concurrent use.
type Responder struct {
	cfg      Config
	render   *Renderer
	tmplHash string // fingerprint of templates and message settings, part of the message version
	seen     seenVersions
	cache    messageCache
}

// New validates cfg (reporting every problem at once), loads the templates and returns a
// Responder.
func New(cfg Config) (*Responder, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r, err := newRenderer(cfg)
	if err != nil {
		return nil, err
	}
	q := &Responder{cfg: cfg, render: r}
	q.seen.max = cfg.MaxDevices
	q.cache.max = 4096
	q.tmplHash, err = fingerprint(cfg)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// fingerprint hashes everything besides the decision that changes the message's content,
// so that a template or setting change reaches devices as an updated message.
func fingerprint(cfg Config) (string, error) {
	h := sha256.New()
	add := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	add(cfg.Organization)
	add(cfg.From)
	add(cfg.EnrollURL)
	add(cfg.Footer)
	add(cfg.DefaultLanguage)
	err := fs.WalkDir(embeddedTemplates, ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := embeddedTemplates.ReadFile(p)
		add(p)
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	langs := make([]string, 0, len(cfg.Templates))
	for l := range cfg.Templates {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, l := range langs {
		for _, p := range []string{cfg.Templates[l].Text, cfg.Templates[l].HTML} {
			b, err := os.ReadFile(p)
			if err != nil {
				return "", err
			}
			add(l)
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// Renderer returns the message renderer (for the portal's fix texts).
func (q *Responder) Renderer() *Renderer { return q.render }

// Language returns the language the responder speaks to req: its MS-LCID, else its
// Accept-Language, else the configured default.
func (q *Responder) Language(req *eas.Request) string {
	return NegotiateLanguage(req.Locale, req.AcceptLanguage, q.render.Languages(), q.cfg.DefaultLanguage)
}

// Answer returns the response to req for the non-Allow decision d. body is the request
// body; it is only read during the call. now is the request time. req.User must name the
// authenticated user (the gateway sets it from the identity when the base64 query left it
// out); it is used in decision.NormalizeUser form for the message and the portal link.
//
//   - Block: the blocking status of the version (see Config.StatusByReason).
//   - Wipe / AccountOnlyWipe: status 140 (RemoteWipeRequested) in EAS 14.0 and later,
//     HTTP 449 before, so that the device provisions and receives the wipe.
//   - Quarantine: the one-message inbox for FolderSync, Sync, GetItemEstimate,
//     ItemOperations Fetch and Ping; the blocking status for every other command.
//
// The error is non-nil only for an Allow decision (ErrAllowed) or a failure to render the
// message templates; protocol problems in body are answered with protocol statuses.
func (q *Responder) Answer(req *eas.Request, d decision.Decision, body []byte, now time.Time) (Answer, error) {
	switch d.Action {
	case decision.Allow:
		return Answer{}, ErrAllowed
	case decision.Wipe, decision.AccountOnlyWipe:
		return statusAnswer(req.Cmd, req.Version, eas.StatusRemoteWipeRequested, body), nil
	case decision.Quarantine:
		switch req.Cmd {
		case eas.CmdFolderSync, eas.CmdSync, eas.CmdGetItemEstimate, eas.CmdItemOperations, eas.CmdPing:
			return q.inbox(req, d, body, now)
		}
		return statusAnswer(req.Cmd, req.Version, eas.StatusDeviceIsBlockedForThisUser, body), nil
	}
	return statusAnswer(req.Cmd, req.Version, q.blockStatus(d.Reason), body), nil
}

// blockStatus is the common status a blocked device is answered with.
func (q *Responder) blockStatus(r decision.Reason) eas.Status {
	if s, ok := q.cfg.StatusByReason[r]; ok {
		return s
	}
	return eas.StatusDeviceIsBlockedForThisUser
}

// statusAnswer answers cmd with the common status st: in EAS 14.0 and later as HTTP 200
// with the command's response element carrying st in its top-level Status (MS-ASCMD 2.2.2);
// before 14.0 as the HTTP status of that condition (MS-ASHTTP 2.2.2.1.1.1).
func statusAnswer(cmd eas.Command, v eas.Version, st eas.Status, body []byte) Answer {
	if v < eas.V140 {
		return httpStatusAnswer(st)
	}
	if st > eas.StatusMoveCommandInvalidDestinationFolder && v < eas.V141 {
		// Codes above 156 arrived with 14.1; a 14.0 client would not know them.
		if st == eas.StatusMaximumDevicesReached {
			st = eas.StatusDeviceIsBlockedForThisUser
		} else {
			st = eas.StatusAccessDenied
		}
	}
	root := statusBody(cmd, st, body)
	if root == nil {
		return httpStatusAnswer(st)
	}
	return wbxmlAnswer(root)
}

func httpStatusAnswer(st eas.Status) Answer {
	switch st {
	case eas.StatusRemoteWipeRequested, eas.StatusDeviceNotProvisioned, eas.StatusPolicyRefresh, eas.StatusInvalidPolicyKey:
		return Answer{Status: 449}
	case eas.StatusServerErrorRetryLater, eas.StatusMailboxServerOffline:
		return Answer{Status: 503, Headers: []Header{{"Retry-After", "300"}}}
	}
	return Answer{Status: 403}
}

func wbxmlAnswer(root *wbxml.Element) Answer {
	b, err := wbxml.NewDocument(root).Encode(make([]byte, 0, 64))
	if err != nil {
		// The responder builds documents from valid tags only; an encoding failure is a
		// bug, answered as a server error rather than a malformed body.
		return Answer{Status: 500}
	}
	return Answer{Status: 200, ContentType: ContentTypeWBXML, Body: b}
}

// statusShapes maps each command to its response root and the Status element that is the
// root's direct child (MS-ASCMD 2.2.3.177.x). MeetingResponse has no top-level Status and
// is built by meetingResponseStatus.
var statusShapes = map[eas.Command][2]wbxml.Tag{
	eas.CmdSync:              {wbxml.AirSyncSync, wbxml.AirSyncStatus},                                  // 2.2.3.177.17
	eas.CmdFolderSync:        {wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus},            // 2.2.3.177.5
	eas.CmdFolderCreate:      {wbxml.FolderHierarchyFolderCreate, wbxml.FolderHierarchyStatus},          // 2.2.3.177.2
	eas.CmdFolderDelete:      {wbxml.FolderHierarchyFolderDelete, wbxml.FolderHierarchyStatus},          // 2.2.3.177.3
	eas.CmdFolderUpdate:      {wbxml.FolderHierarchyFolderUpdate, wbxml.FolderHierarchyStatus},          // 2.2.3.177.6
	eas.CmdGetItemEstimate:   {wbxml.GetItemEstimateGetItemEstimate, wbxml.GetItemEstimateStatus},       // 2.2.3.177.7
	eas.CmdItemOperations:    {wbxml.ItemOperationsItemOperations, wbxml.ItemOperationsStatus},          // 2.2.3.177.8
	eas.CmdMoveItems:         {wbxml.MoveMoveItems, wbxml.MoveStatus},                                   // 2.2.3.177.10
	eas.CmdPing:              {wbxml.PingPing, wbxml.PingStatus},                                        // 2.2.3.177.11
	eas.CmdProvision:         {wbxml.ProvisionProvision, wbxml.ProvisionStatus},                         // MS-ASPROV 2.2.2.54.2
	eas.CmdResolveRecipients: {wbxml.ResolveRecipientsResolveRecipients, wbxml.ResolveRecipientsStatus}, // 2.2.3.177.12
	eas.CmdSearch:            {wbxml.SearchSearch, wbxml.SearchStatus},                                  // 2.2.3.177.13
	eas.CmdSendMail:          {wbxml.ComposeMailSendMail, wbxml.ComposeMailStatus},                      // 2.2.3.177.14
	eas.CmdSettings:          {wbxml.SettingsSettings, wbxml.SettingsStatus},                            // 2.2.3.177.15
	eas.CmdSmartForward:      {wbxml.ComposeMailSmartForward, wbxml.ComposeMailStatus},                  // 2.2.3.177.16
	eas.CmdSmartReply:        {wbxml.ComposeMailSmartReply, wbxml.ComposeMailStatus},                    // 2.2.3.177.16
	eas.CmdValidateCert:      {wbxml.ValidateCertValidateCert, wbxml.ValidateCertStatus},                // 2.2.3.177.18
	eas.CmdFind:              {wbxml.FindFind, wbxml.FindStatus},                                        // 2.2.3.177.4
}

// statusBody returns the response root for cmd carrying st, or nil when cmd has no WBXML
// response (GetAttachment, which 14.0 removed).
func statusBody(cmd eas.Command, st eas.Status, body []byte) *wbxml.Element {
	if cmd == eas.CmdMeetingResponse {
		return meetingResponseStatus(st, body)
	}
	s, ok := statusShapes[cmd]
	if !ok {
		return nil
	}
	return wbxml.NewElement(s[0], wbxml.NewText(s[1], statusText(st)))
}

// meetingResponseStatus answers every Request of a MeetingResponse with its own Result
// carrying st: the command has no top-level Status (MS-ASCMD 2.2.3.177.9, 2.2.3.155.2).
// RequestIds are echoed so the client can match the results.
func meetingResponseStatus(st eas.Status, body []byte) *wbxml.Element {
	root := wbxml.NewElement(wbxml.MeetingResponseMeetingResponse)
	if doc, err := wbxml.Parse(body, wbxml.Limits{MaxDocumentSize: 1 << 20}); err == nil &&
		doc.Root.Tag == wbxml.MeetingResponseMeetingResponse {
		for _, r := range doc.Root.FindAll(wbxml.MeetingResponseRequest) {
			res := wbxml.NewElement(wbxml.MeetingResponseResult)
			if id := r.Find(wbxml.MeetingResponseRequestId); id != nil {
				res.Append(wbxml.NewText(wbxml.MeetingResponseRequestId, id.Text()))
			}
			res.Append(wbxml.NewText(wbxml.MeetingResponseStatus, statusText(st)))
			root.Append(res)
		}
	}
	if len(root.Children) == 0 {
		root.Append(wbxml.NewElement(wbxml.MeetingResponseResult, wbxml.NewText(wbxml.MeetingResponseStatus, statusText(st))))
	}
	return root
}

func statusText(st eas.Status) string { return strconv.Itoa(int(st)) }

// seenVersions remembers, per device, the message version it last synchronised, so that a
// Ping can say whether the Inbox has something new. It is bounded: when full, entries are
// dropped (a forgotten device just gets one extra "changes" Ping).
type seenVersions struct {
	mu  sync.Mutex
	m   map[string]string
	max int
}

func seenKey(user, deviceID string) string { return user + "\x00" + deviceID }

func (s *seenVersions) get(user, deviceID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[seenKey(user, deviceID)]
	return v, ok
}

func (s *seenVersions) set(user, deviceID, ver string) {
	k := seenKey(user, deviceID) // a new string: never aliases the request's arena
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]string)
	}
	if old, ok := s.m[k]; ok && old == ver {
		return
	}
	if len(s.m) >= s.max {
		n := 0
		for key := range s.m {
			delete(s.m, key)
			if n++; n >= s.max/2+1 {
				break
			}
		}
	}
	s.m[k] = strings.Clone(ver)
}
