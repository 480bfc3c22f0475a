package eas

import "github.com/easgate/easgate/eas/wbxml"

// ComposeMail is the body of a SendMail, SmartReply or SmartForward request (14.0 and
// later, MS-ASCMD 2.2.1.17, 2.2.1.19, 2.2.1.20) or of their response (Status). In 12.x
// and 2.5 these commands carry the raw MIME message instead (Content-Type message/rfc822,
// Command.MIMEBody); MIMEComposeMail builds the same view of such a request from the query.
type ComposeMail struct {
	Cmd             Command // CmdSendMail, CmdSmartReply or CmdSmartForward
	ClientID        string
	AccountID       string
	SaveInSentItems bool
	ReplaceMime     bool
	// Source identifies the original message of SmartReply and SmartForward.
	Source *ComposeSource
	// Mime is the RFC 5322 message; nil when there is no Mime element. For a parsed
	// body it aliases the Document.
	Mime []byte
	// TemplateID asks the server to protect the message with a rights-management
	// template (MS-ASRM, rm:TemplateID, 14.1 and later).
	TemplateID string
	Status     Status // response

	// RawMIME records that the request came as a raw MIME body (12.x form).
	RawMIME bool

	src  source
	elem *wbxml.Element
}

// ComposeSource is ComposeMail's Source element.
type ComposeSource struct {
	FolderID   string
	ItemID     string
	LongID     string
	InstanceID string
	elem       *wbxml.Element
}

var composeRoots = map[wbxml.Tag]Command{
	wbxml.ComposeMailSendMail:     CmdSendMail,
	wbxml.ComposeMailSmartReply:   CmdSmartReply,
	wbxml.ComposeMailSmartForward: CmdSmartForward,
}

func composeRoot(c Command) wbxml.Tag {
	for t, cc := range composeRoots {
		if cc == c {
			return t
		}
	}
	return 0
}

// ParseComposeMail reads a SendMail, SmartReply or SmartForward WBXML body.
func ParseComposeMail(doc *wbxml.Document) (*ComposeMail, error) {
	if doc == nil || doc.Root == nil {
		return nil, ErrInvalidBody.detail("no root element")
	}
	cmd, ok := composeRoots[doc.Root.Tag]
	if !ok {
		return nil, ErrInvalidBody.detail("root is " + doc.Root.Tag.String() + ", want SendMail, SmartReply or SmartForward")
	}
	root := doc.Root
	m := &ComposeMail{elem: root, Cmd: cmd, ClientID: text(root, wbxml.ComposeMailClientId),
		AccountID: text(root, wbxml.ComposeMailAccountId), TemplateID: text(root, wbxml.RightsManagementTemplateID),
		SaveInSentItems: has(root, wbxml.ComposeMailSaveInSentItems), ReplaceMime: has(root, wbxml.ComposeMailReplaceMime)}
	m.src.set(doc)
	if mime := root.Find(wbxml.ComposeMailMime); mime != nil {
		m.Mime = mime.Value
		if m.Mime == nil {
			m.Mime = []byte{}
		}
	}
	if s := root.Find(wbxml.ComposeMailSource); s != nil {
		m.Source = &ComposeSource{elem: s, FolderID: text(s, wbxml.ComposeMailFolderId), ItemID: text(s, wbxml.ComposeMailItemId),
			LongID: text(s, wbxml.ComposeMailLongId), InstanceID: text(s, wbxml.ComposeMailInstanceId)}
	}
	var fe firstErr
	m.Status = fe.status(root, wbxml.ComposeMailStatus)
	if fe.err != nil {
		return nil, fe.err
	}
	return m, nil
}

// MIMEComposeMail is the view of a 12.x-form SendMail, SmartReply or SmartForward request:
// the MIME message is the whole body, and the query carries SaveInSent, ItemId,
// CollectionId, LongId and Occurrence (MS-ASHTTP 2.2.1.1.1.2.5). mime is not copied.
func MIMEComposeMail(r *Request, mime []byte) *ComposeMail {
	m := &ComposeMail{Cmd: r.Cmd, SaveInSentItems: r.SaveInSent, Mime: mime, RawMIME: true}
	if r.ItemID != "" || r.CollectionID != "" || r.LongID != "" || r.Occurrence != "" {
		m.Source = &ComposeSource{FolderID: r.CollectionID, ItemID: r.ItemID, LongID: r.LongID, InstanceID: r.Occurrence}
	}
	return m
}

// Document builds the WBXML body (the 14.0+ form), reusing the parsed tree when there is
// one. Mime is written as opaque data unless the source element held it as a string.
func (m *ComposeMail) Document() *wbxml.Document {
	t := composeRoot(m.Cmd)
	if t == 0 {
		t = wbxml.ComposeMailSendMail
	}
	e := m.elem
	if e == nil || e.Tag != t {
		e = wbxml.NewElement(t)
	}
	m.elem = e
	setText(e, wbxml.ComposeMailClientId, m.ClientID)
	setText(e, wbxml.ComposeMailAccountId, m.AccountID)
	setFlag(e, wbxml.ComposeMailSaveInSentItems, m.SaveInSentItems)
	setFlag(e, wbxml.ComposeMailReplaceMime, m.ReplaceMime)
	if m.Source == nil {
		remove(e, wbxml.ComposeMailSource)
	} else {
		s := elemOr(m.Source.elem, wbxml.ComposeMailSource)
		m.Source.elem = s
		setText(s, wbxml.ComposeMailFolderId, m.Source.FolderID)
		setText(s, wbxml.ComposeMailItemId, m.Source.ItemID)
		setText(s, wbxml.ComposeMailLongId, m.Source.LongID)
		setText(s, wbxml.ComposeMailInstanceId, m.Source.InstanceID)
		setChild(e, wbxml.ComposeMailSource, s)
	}
	if m.Mime == nil {
		remove(e, wbxml.ComposeMailMime)
	} else if c := e.Find(wbxml.ComposeMailMime); c == nil {
		e.Append(wbxml.NewOpaque(wbxml.ComposeMailMime, m.Mime))
	} else if string(c.Value) != string(m.Mime) {
		if c.Kind == wbxml.StringValue {
			c.SetText(string(m.Mime))
		} else {
			c.SetOpaque(m.Mime)
		}
	}
	setText(e, wbxml.RightsManagementTemplateID, m.TemplateID)
	setStatus(e, wbxml.ComposeMailStatus, m.Status)
	return m.src.document(e)
}

// AppendTo encodes the WBXML body (see Document) and appends it to dst.
func (m *ComposeMail) AppendTo(dst []byte) ([]byte, error) { return m.Document().Encode(dst) }
