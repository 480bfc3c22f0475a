package imap

import (
	"bufio"
	"bytes"
	"errors"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// composeReq is SendMail, SmartReply or SmartForward in either form.
type composeReq struct {
	clientID    string
	mime        []byte
	saveInSent  bool
	replaceMime bool
	source      string // ServerId or LongId of the original, "" for SendMail
	sourceColl  string
}

// compose implements SendMail, SmartReply and SmartForward (MS-ASCMD 2.2.1.17, 2.2.1.18,
// 2.2.1.19): the 14.0+ WBXML form (ComposeMail code page, MS-ASCMD 2.2.3.102 Mime) and the 12.x
// form whose body is the raw MIME message with SaveInSent, CollectionId and ItemId in the
// query. SmartReply and SmartForward fetch the original over IMAP and add its quoted text (and,
// for a forward, its attachments) unless ReplaceMime is set.
func (s *session) compose(body []byte) (Response, error) {
	var r composeReq
	wbxmlForm := s.req.Version >= eas.V140 && !strings.HasPrefix(strings.ToLower(s.req.ContentType), "message/rfc822")
	if wbxmlForm {
		var root wbxml.Tag
		switch s.req.Cmd {
		case eas.CmdSendMail:
			root = wbxml.ComposeMailSendMail
		case eas.CmdSmartReply:
			root = wbxml.ComposeMailSmartReply
		default:
			root = wbxml.ComposeMailSmartForward
		}
		el, err := parseBody(body, root)
		if err != nil {
			return Response{}, err
		}
		m := el.Find(wbxml.ComposeMailMime)
		if m == nil || len(m.Value) == 0 {
			return s.composeFail(eas.StatusInvalidMIME)
		}
		r.mime = bytes.Clone(m.Value)
		r.clientID = el.Find(wbxml.ComposeMailClientId).Text()
		r.saveInSent = el.Find(wbxml.ComposeMailSaveInSentItems) != nil
		r.replaceMime = el.Find(wbxml.ComposeMailReplaceMime) != nil
		if src := el.Find(wbxml.ComposeMailSource); src != nil {
			r.source = src.Find(wbxml.ComposeMailItemId).Text()
			r.sourceColl = src.Find(wbxml.ComposeMailFolderId).Text()
			if l := src.Find(wbxml.ComposeMailLongId).Text(); l != "" {
				r.source = l
			}
		}
	} else {
		r.mime = bytes.Clone(body)
		r.saveInSent = s.req.SaveInSent
		r.source = s.req.ItemID
		r.sourceColl = s.req.CollectionID
		if s.req.LongID != "" {
			r.source = s.req.LongID
		}
	}
	if len(r.mime) == 0 {
		return s.composeFail(eas.StatusInvalidMIME)
	}
	if r.clientID != "" {
		// A device that lost our answer sends the same ClientId again: do not send twice
		// (MS-ASCMD 2.2.3.28.1, status 118).
		last, err := s.b.store.LastRequest(s.ctx, s.user, s.device, "ClientId")
		if err != nil {
			return Response{}, internal(err, "last ClientId")
		}
		if string(last) == r.clientID {
			return s.composeFail(eas.StatusMessagePreviouslySent)
		}
	}
	if s.req.Cmd != eas.CmdSendMail && r.source == "" {
		return s.composeFail(eas.StatusItemNotFound)
	}
	out := r.mime
	if s.req.Cmd != eas.CmdSendMail {
		orig, st, err := s.original(r.source, r.sourceColl)
		if err != nil {
			return Response{}, err
		}
		if st != 0 {
			return s.composeFail(st)
		}
		if !r.replaceMime {
			if out, err = buildSmart(r.mime, orig, s.req.Cmd == eas.CmdSmartForward); err != nil {
				return s.composeFail(eas.StatusInvalidMIME)
			}
		}
		out = addThreading(out, orig, s.req.Cmd == eas.CmdSmartReply)
	}
	hdr, bodyOff, err := readHeader(out)
	if err != nil {
		return s.composeFail(eas.StatusInvalidMIME)
	}
	mh := mail.Header{Header: gomessage.Header{Header: hdr}}
	var rcpts []string
	for _, k := range []string{"To", "Cc", "Bcc"} {
		list, err := mh.AddressList(k)
		if err != nil {
			return s.composeFail(eas.StatusMessageRecipientUnresolved)
		}
		for _, a := range list {
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(rcpts) == 0 {
		return s.composeFail(eas.StatusMessageHasNoRecipient)
	}
	from := s.userAddress()
	if !mh.Has("From") {
		mh.SetAddressList("From", []*mail.Address{{Address: from}})
	}
	if !mh.Has("Date") {
		mh.SetDate(time.Now())
	}
	if !mh.Has("Message-Id") {
		if err := mh.GenerateMessageID(); err != nil {
			return Response{}, internal(err, "message id")
		}
	}
	saved := joinHeader(mh.Header.Header, out[bodyOff:])
	mh.Del("Bcc")
	sent := joinHeader(mh.Header.Header, out[bodyOff:])
	if st, err := s.submit(from, rcpts, sent); err != nil || st != 0 {
		if err != nil {
			return Response{}, err
		}
		return s.composeFail(st)
	}
	if r.clientID != "" {
		if err := s.b.store.SaveRequest(s.ctx, s.user, s.device, "ClientId", []byte(r.clientID)); err != nil {
			s.b.log.Warn("imap: remembering ClientId failed", "user", s.user, "err", err)
		}
	}
	if r.saveInSent {
		if err := s.saveSent(saved); err != nil {
			// The mail went out; failing now would make the device send it again.
			s.b.log.Warn("imap: saving to Sent failed", "user", s.user, "err", err)
		}
	}
	if s.req.Cmd != eas.CmdSendMail {
		s.markOriginal(r.source, r.sourceColl, s.req.Cmd == eas.CmdSmartReply)
	}
	return Response{Status: http.StatusOK}, nil
}

// composeFail answers a failed send: ComposeMail:Status in 14.0+, the typed error in 12.x.
func (s *session) composeFail(st eas.Status) (Response, error) {
	if s.req.Version >= eas.V140 {
		var root wbxml.Tag
		switch s.req.Cmd {
		case eas.CmdSendMail:
			root = wbxml.ComposeMailSendMail
		case eas.CmdSmartReply:
			root = wbxml.ComposeMailSmartReply
		default:
			root = wbxml.ComposeMailSmartForward
		}
		return wbxmlResponse(wbxml.NewElement(root, text(wbxml.ComposeMailStatus, st)))
	}
	e := newErr(ErrBadRequest, nil, "%s failed with status %d", s.req.Cmd, st)
	e.Status = st
	if st == eas.StatusMailSubmissionFailed {
		e.Kind, e.HTTPStatus = KindInternal, http.StatusInternalServerError
	}
	return Response{}, e
}

func readHeader(b []byte) (textproto.Header, int, error) {
	rd := bytes.NewReader(b)
	br := bufio.NewReader(rd)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return h, 0, err
	}
	return h, len(b) - rd.Len() - br.Buffered(), nil
}

func joinHeader(h textproto.Header, body []byte) []byte {
	var buf bytes.Buffer
	textproto.WriteHeader(&buf, h)
	buf.Write(body)
	return buf.Bytes()
}

// original fetches the message a SmartReply or SmartForward refers to.
func (s *session) original(id, coll string) ([]byte, eas.Status, error) {
	c, uid, ok := parseServerID(id)
	if !ok || (coll != "" && coll != c) {
		return nil, eas.StatusItemNotFound, nil
	}
	f, found, err := s.folderByID(c)
	if err != nil {
		return nil, 0, err
	}
	if !found {
		return nil, eas.StatusItemNotFound, nil
	}
	cl, err := s.client()
	if err != nil {
		return nil, 0, err
	}
	if _, err := s.selectMailbox(f.Mailbox); err != nil {
		if isNo(err) {
			return nil, eas.StatusItemNotFound, nil
		}
		return nil, 0, s.imapErr(err, "SELECT")
	}
	sec := &imap.FetchItemBodySection{Peek: true}
	bufs, err := cl.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return nil, 0, s.imapErr(err, "FETCH original")
	}
	if len(bufs) == 0 {
		return nil, eas.StatusItemNotFound, nil
	}
	return bufs[0].FindBodySection(sec), 0, nil
}

// markOriginal sets \Answered (reply) or $Forwarded (forward) on the original; best effort.
func (s *session) markOriginal(id, coll string, reply bool) {
	c, uid, ok := parseServerID(id)
	if !ok {
		return
	}
	f, found, err := s.folderByID(c)
	if err != nil || !found {
		return
	}
	cl, err := s.selectedClient(f.Mailbox)
	if err != nil {
		return
	}
	flag := imap.Flag("$Forwarded")
	if reply {
		flag = imap.FlagAnswered
	}
	cl.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}, nil).Close()
}

// parsed is the content of a MIME message: its text bodies and its attachments.
type parsed struct {
	header mail.Header
	plain  string
	html   string
	atts   []parsedAtt
}

type parsedAtt struct {
	header mail.AttachmentHeader
	data   []byte
}

func parseMessage(b []byte) (*parsed, error) {
	mr, err := mail.CreateReader(bytes.NewReader(b))
	if err != nil && !gomessage.IsUnknownCharset(err) {
		return nil, err
	}
	p := &parsed{header: mr.Header}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !gomessage.IsUnknownCharset(err) {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(part.Body, 64<<20))
		if err != nil {
			return nil, err
		}
		switch h := part.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := h.ContentType()
			switch {
			case ct == "text/plain" && p.plain == "":
				p.plain = string(data)
			case ct == "text/html" && p.html == "":
				p.html = string(data)
			case ct != "text/plain" && ct != "text/html":
				var ah mail.AttachmentHeader
				ah.Header = h.Header.Copy()
				p.atts = append(p.atts, parsedAtt{header: ah, data: data})
			}
		case *mail.AttachmentHeader:
			p.atts = append(p.atts, parsedAtt{header: mail.AttachmentHeader{Header: h.Header.Copy()}, data: data})
		}
	}
	return p, nil
}

// buildSmart composes the message a SmartReply or SmartForward sends: the device's new text
// with the original quoted below it, the device's attachments and, for a forward, the
// original's attachments.
func buildSmart(devMIME, origMIME []byte, forward bool) ([]byte, error) {
	dev, err := parseMessage(devMIME)
	if err != nil {
		return nil, err
	}
	orig, err := parseMessage(origMIME)
	if err != nil {
		return nil, err
	}
	origText := orig.plain
	if origText == "" && orig.html != "" {
		origText = htmlToText(orig.html)
	}
	from := orig.header.Get("From")
	date := orig.header.Get("Date")
	subj, _ := orig.header.Subject()
	var plain, htm string
	if forward {
		intro := "---------- Forwarded message ----------\r\nFrom: " + from + "\r\nDate: " + date +
			"\r\nSubject: " + subj + "\r\nTo: " + orig.header.Get("To") + "\r\n\r\n"
		plain = dev.plain + "\r\n\r\n" + intro + origText
	} else {
		var q strings.Builder
		for _, l := range strings.Split(strings.ReplaceAll(origText, "\r\n", "\n"), "\n") {
			q.WriteString("> " + l + "\r\n")
		}
		plain = dev.plain + "\r\n\r\nOn " + date + ", " + from + " wrote:\r\n" + q.String()
	}
	if dev.html != "" {
		origHTML := orig.html
		if origHTML == "" {
			origHTML = "<pre>" + html.EscapeString(origText) + "</pre>"
		}
		htm = dev.html + "<br><blockquote style=\"border-left:1px solid #ccc;padding-left:1ex\">" +
			html.EscapeString("From: "+from+", "+date) + "<br>" + origHTML + "</blockquote>"
	}
	h := dev.header.Copy()
	for _, k := range []string{"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version"} {
		h.Del(k)
	}
	var buf bytes.Buffer
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	iw, err := mw.CreateInline()
	if err != nil {
		return nil, err
	}
	writeInline := func(ct, body string) error {
		var ih mail.InlineHeader
		ih.SetContentType(ct, map[string]string{"charset": "utf-8"})
		w, err := iw.CreatePart(ih)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, body); err != nil {
			return err
		}
		return w.Close()
	}
	if err := writeInline("text/plain", plain); err != nil {
		return nil, err
	}
	if htm != "" {
		if err := writeInline("text/html", htm); err != nil {
			return nil, err
		}
	}
	if err := iw.Close(); err != nil {
		return nil, err
	}
	atts := dev.atts
	if forward {
		atts = append(atts, orig.atts...)
	}
	for _, a := range atts {
		ah := a.header
		ah.Del("Content-Transfer-Encoding")
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(a.data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// addThreading sets In-Reply-To and References of a reply from the original's Message-ID
// when the device did not.
func addThreading(msg, orig []byte, reply bool) []byte {
	if !reply {
		return msg
	}
	oh, _, err := readHeader(orig)
	if err != nil {
		return msg
	}
	omh := mail.Header{Header: gomessage.Header{Header: oh}}
	id, err := omh.MessageID()
	if err != nil || id == "" {
		return msg
	}
	h, off, err := readHeader(msg)
	if err != nil {
		return msg
	}
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	if mh.Has("In-Reply-To") {
		return msg
	}
	refs, _ := omh.MsgIDList("References")
	mh.SetMsgIDList("In-Reply-To", []string{id})
	mh.SetMsgIDList("References", append(refs, id))
	return joinHeader(mh.Header.Header, msg[off:])
}

// submit sends msg over SMTP authenticated with the device's credentials. A non-zero status
// is the EAS status to answer with.
func (s *session) submit(from string, rcpts []string, msg []byte) (eas.Status, error) {
	cfg := &s.b.cfg
	if cfg.SMTPAddr == "" {
		return eas.StatusMailSubmissionFailed, nil
	}
	d := net.Dialer{Timeout: cfg.DialTimeout}
	nc, err := d.DialContext(s.ctx, "tcp", cfg.SMTPAddr)
	if err != nil {
		return 0, newErr(ErrUnavailable, err, "connect to SMTP server %s", cfg.SMTPAddr)
	}
	stop := contextCloser(s.ctx, nc)
	defer stop()
	var c *smtp.Client
	switch cfg.SMTPSecurity {
	case SecurityTLS:
		c = smtp.NewClient(tlsClient(nc, cfg))
	case SecurityStartTLS:
		c, err = smtp.NewClientStartTLS(nc, tlsConfigFor(cfg))
		if err != nil {
			nc.Close()
			return 0, newErr(ErrUnavailable, err, "SMTP STARTTLS")
		}
	default:
		c = smtp.NewClient(nc)
	}
	defer c.Close()
	var auth sasl.Client
	if s.cred.Token != "" {
		auth = s.cred.saslClient(cfg.OAuthMechanism)
	} else if s.cred.Password != "" {
		auth = sasl.NewPlainClient("", s.cred.User, s.cred.Password)
	}
	if auth != nil {
		if ok, _ := c.Extension("AUTH"); ok {
			if err := c.Auth(auth); err != nil {
				var se *smtp.SMTPError
				if errors.As(err, &se) && (se.Code == 535 || se.Code == 534) {
					return 0, newErr(ErrAuthFailed, err, "SMTP AUTH of %q", s.cred.User)
				}
				return 0, newErr(ErrUnavailable, err, "SMTP AUTH")
			}
		}
	}
	if err := c.SendMail(from, rcpts, bytes.NewReader(msg)); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			s.b.log.Info("imap: SMTP refused message", "user", s.user, "code", se.Code, "msg", se.Message)
			if se.Code >= 500 {
				return eas.StatusMailSubmissionFailed, nil
			}
			return eas.StatusServerErrorRetryLater, nil
		}
		return 0, newErr(ErrUnavailable, err, "SMTP send")
	}
	c.Quit()
	return 0, nil
}

// saveSent APPENDs msg to the Sent folder, marked \Seen.
func (s *session) saveSent(msg []byte) error {
	sent, ok, err := s.folderOfType(typeSent)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("imap: no Sent folder")
	}
	c, err := s.client()
	if err != nil {
		return err
	}
	cmd := c.Append(sent.Mailbox, int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: time.Now()})
	if _, err := cmd.Write(msg); err != nil {
		return s.imapErr(err, "APPEND")
	}
	if err := cmd.Close(); err != nil {
		return s.imapErr(err, "APPEND")
	}
	if _, err := cmd.Wait(); err != nil {
		return s.imapErr(err, "APPEND")
	}
	return nil
}

// meetingResponse refuses MeetingResponse: this backend serves mail only, so no item is a
// meeting request (MS-ASCMD 2.2.3.177.11 Status 2, "Invalid meeting request").
func (s *session) meetingResponse(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.MeetingResponseMeetingResponse)
	if err != nil {
		return Response{}, err
	}
	out := wbxml.NewElement(wbxml.MeetingResponseMeetingResponse)
	for _, r := range root.FindAll(wbxml.MeetingResponseRequest) {
		res := wbxml.NewElement(wbxml.MeetingResponseResult)
		if id := r.Find(wbxml.MeetingResponseRequestId); id != nil {
			res.Append(text(wbxml.MeetingResponseRequestId, id.Text()))
		}
		if long := r.Find(wbxml.SearchLongId); long != nil {
			res.Append(text(wbxml.SearchLongId, long.Text()))
		}
		res.Append(text(wbxml.MeetingResponseStatus, 2))
		out.Append(res)
	}
	return wbxmlResponse(out)
}

// settings answers Settings (MS-ASCMD 2.2.1.18): DeviceInformation is acknowledged,
// UserInformation gives the user's address, Oof is reported off and cannot be set (IMAP has
// no standard vacation interface).
func (s *session) settings(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.SettingsSettings)
	if err != nil {
		return Response{}, err
	}
	out := wbxml.NewElement(wbxml.SettingsSettings, text(wbxml.SettingsStatus, 1))
	for _, c := range root.Children {
		switch c.Tag {
		case wbxml.SettingsDeviceInformation:
			out.Append(wbxml.NewElement(wbxml.SettingsDeviceInformation, text(wbxml.SettingsStatus, 1)))
		case wbxml.SettingsUserInformation:
			addr := s.userAddress()
			get := wbxml.NewElement(wbxml.SettingsGet)
			if s.req.Version >= eas.V141 {
				get.Append(wbxml.NewElement(wbxml.SettingsAccounts, wbxml.NewElement(wbxml.SettingsAccount,
					text(wbxml.SettingsUserDisplayName, addr),
					wbxml.NewElement(wbxml.SettingsEmailAddresses, text(wbxml.SettingsPrimarySmtpAddress, addr)))))
			} else {
				get.Append(wbxml.NewElement(wbxml.SettingsEmailAddresses, text(wbxml.SettingsSmtpAddress, addr)))
			}
			out.Append(wbxml.NewElement(wbxml.SettingsUserInformation, text(wbxml.SettingsStatus, 1), get))
		case wbxml.SettingsOof:
			if c.Find(wbxml.SettingsGet) != nil {
				out.Append(wbxml.NewElement(wbxml.SettingsOof, text(wbxml.SettingsStatus, 1),
					wbxml.NewElement(wbxml.SettingsGet, text(wbxml.SettingsOofState, 0))))
			} else {
				out.Append(wbxml.NewElement(wbxml.SettingsOof, text(wbxml.SettingsStatus, 2)))
			}
		default:
			out.Append(wbxml.NewElement(c.Tag, text(wbxml.SettingsStatus, 2)))
		}
	}
	return wbxmlResponse(out)
}
