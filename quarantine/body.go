package quarantine

import (
	"bytes"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// Body types of AirSyncBase:Type (MS-ASAIRS 2.2.2.22.1).
const (
	bodyPlain = 1
	bodyHTML  = 2
	bodyMIME  = 4
)

// bodyPref is one AirSyncBase:BodyPreference (MS-ASAIRS 2.2.2.7).
type bodyPref struct {
	typ       int
	trunc     int // TruncationSize in bytes; 0: no truncation
	allOrNone bool
	preview   int // Preview characters (14.0+); 0: none
}

// fetchOptions are the body-related options of a Sync collection or an ItemOperations
// Fetch.
type fetchOptions struct {
	prefs []bodyPref
	// trunc25 is the EAS 2.5 AirSync:Truncation code (0–8); -1 when absent.
	trunc25 int
}

// tagTruncation25 is AirSync:Truncation (token 0x19), defined only by EAS 2.5 and
// therefore absent from the MS-ASWBXML tables of later versions.
var tagTruncation25 = wbxml.MakeTag(wbxml.PageAirSync, 0x19)

// parseOptions reads the options below opts (an AirSync:Options or ItemOperations:Options
// element); a nil opts gives the defaults.
func parseOptions(opts ...*wbxml.Element) fetchOptions {
	o := fetchOptions{trunc25: -1}
	for _, op := range opts {
		if op == nil {
			continue
		}
		for _, c := range op.Children {
			switch c.Tag {
			case wbxml.AirSyncBaseBodyPreference:
				p := bodyPref{typ: atoi(c.Find(wbxml.AirSyncBaseType).Text())}
				p.trunc = atoi(c.Find(wbxml.AirSyncBaseTruncationSize).Text())
				p.allOrNone = c.Find(wbxml.AirSyncBaseAllOrNone).Text() == "1"
				p.preview = atoi(c.Find(wbxml.AirSyncBasePreview).Text())
				o.prefs = append(o.prefs, p)
			case tagTruncation25:
				if n, err := strconv.Atoi(c.Text()); err == nil {
					o.trunc25 = n
				}
			}
		}
	}
	return o
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// choose picks the body preference to honour: the first the client listed whose type the
// message has (plain, HTML, MIME); without one, the whole plain-text body.
func (o fetchOptions) choose() bodyPref {
	for _, p := range o.prefs {
		switch p.typ {
		case bodyPlain, bodyHTML, bodyMIME:
			return p
		}
	}
	return bodyPref{typ: bodyPlain}
}

// truncation25 maps the EAS 2.5 Truncation code to a character limit; -1 means no limit.
func truncation25(code int) int {
	switch code {
	case 0:
		return 0
	case 1:
		return 4096
	case 2:
		return 5120
	case 3:
		return 7168
	case 4:
		return 10240
	case 5:
		return 20480
	case 6:
		return 51200
	case 7:
		return 102400
	}
	return -1
}

// inboxMessage is the rendered quarantine message as the inbox serves it.
type inboxMessage struct {
	ver      string
	serverID string
	content  Content
	fromName string
	fromAddr string
	to       string
	date     time.Time
	mimeOnce sync.Once // a cached message is shared by concurrent requests
	mime     []byte    // built on first use
}

// inVersion reports whether protocol version v defines tag t (MS-ASWBXML "since" column).
func inVersion(t wbxml.Tag, v eas.Version) bool {
	s := t.Since()
	if s == "" {
		return true
	}
	since, ok := eas.ParseVersion(s)
	return !ok || v >= since
}

// properties returns the Email class elements of the message (MS-ASEMAIL 2.2.2) for
// protocol version v and the client's body options: the children of a Sync
// ApplicationData or an ItemOperations Properties element.
func (m *inboxMessage) properties(v eas.Version, o fetchOptions) []*wbxml.Element {
	var out []*wbxml.Element
	add := func(e *wbxml.Element) {
		if inVersion(e.Tag, v) {
			out = append(out, e)
		}
	}
	add(wbxml.NewText(wbxml.EmailTo, m.to))
	add(wbxml.NewText(wbxml.EmailFrom, easAddress(m.fromName, m.fromAddr)))
	add(wbxml.NewText(wbxml.EmailSubject, m.content.Subject))
	add(wbxml.NewText(wbxml.EmailDateReceived, m.date.UTC().Format("2006-01-02T15:04:05.000Z")))
	add(wbxml.NewText(wbxml.EmailDisplayTo, m.to))
	add(wbxml.NewText(wbxml.EmailThreadTopic, m.content.Subject))
	add(wbxml.NewText(wbxml.EmailImportance, "2"))
	add(wbxml.NewText(wbxml.EmailRead, "0"))
	if v < eas.V120 {
		// EAS 2.5: Email:Body is plain text, limited by AirSync:Truncation
		// (MS-ASEMAIL 2.2.2.8.2, 2.2.2.11).
		text := m.content.Text
		limit := truncation25(o.trunc25)
		truncated := false
		if limit >= 0 && len(text) > limit {
			text, truncated = cutUTF8(text, limit), true
		}
		if text != "" {
			add(wbxml.NewText(wbxml.EmailBody, text))
		}
		add(wbxml.NewText(wbxml.EmailBodyTruncated, boolText(truncated)))
		if truncated {
			add(wbxml.NewText(wbxml.EmailBodySize, strconv.Itoa(len(m.content.Text))))
		}
	} else {
		add(m.body(v, o.choose()))
	}
	add(wbxml.NewText(wbxml.EmailMessageClass, "IPM.Note"))
	add(wbxml.NewText(wbxml.EmailInternetCPID, "65001"))
	add(wbxml.NewText(wbxml.EmailContentClass, "urn:content-classes:message"))
	if v >= eas.V120 {
		add(wbxml.NewText(wbxml.AirSyncBaseNativeBodyType, strconv.Itoa(bodyHTML)))
	}
	return out
}

// body builds the AirSyncBase:Body element (MS-ASAIRS 2.2.2.9) honouring one body
// preference: the type, TruncationSize with Truncated and EstimatedDataSize, AllOrNone,
// and Preview (14.0+).
func (m *inboxMessage) body(v eas.Version, p bodyPref) *wbxml.Element {
	var data string
	switch p.typ {
	case bodyHTML:
		data = m.content.HTML
	case bodyMIME:
		data = string(m.mimeMessage())
	default:
		data = m.content.Text
	}
	full := len(data)
	truncated := false
	if p.trunc > 0 && full > p.trunc {
		truncated = true
		if p.allOrNone {
			data = ""
		} else {
			data = cutUTF8(data, p.trunc)
		}
	}
	b := wbxml.NewElement(wbxml.AirSyncBaseBody,
		wbxml.NewText(wbxml.AirSyncBaseType, strconv.Itoa(p.typ)),
		wbxml.NewText(wbxml.AirSyncBaseEstimatedDataSize, strconv.Itoa(full)))
	if truncated {
		b.Append(wbxml.NewText(wbxml.AirSyncBaseTruncated, "1"))
	}
	if data != "" {
		b.Append(wbxml.NewText(wbxml.AirSyncBaseData, data))
	}
	if p.preview > 0 && v >= eas.V140 {
		n := min(p.preview, 255)
		b.Append(wbxml.NewText(wbxml.AirSyncBasePreview, cutUTF8(oneLine(m.content.Text), n)))
	}
	return b
}

// cutUTF8 returns the longest prefix of s of at most n bytes that ends on a character
// boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// mimeMessage returns the message as RFC 5322 / MIME (multipart/alternative of the text
// and HTML forms, quoted-printable), for BodyPreference Type 4. It is deterministic for a
// message version.
func (m *inboxMessage) mimeMessage() []byte {
	m.mimeOnce.Do(m.buildMIME)
	return m.mime
}

func (m *inboxMessage) buildMIME() {
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", (&mail.Address{Name: m.fromName, Address: m.fromAddr}).String())
	hdr("To", m.to)
	hdr("Subject", mime.QEncoding.Encode("utf-8", m.content.Subject))
	hdr("Date", m.date.UTC().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+m.ver+"@quarantine.easgate.invalid>")
	hdr("Importance", "high")
	hdr("MIME-Version", "1.0")
	mw := multipart.NewWriter(&b)
	_ = mw.SetBoundary("easgate-quarantine-" + m.ver)
	hdr("Content-Type", "multipart/alternative; boundary=\""+mw.Boundary()+"\"")
	b.WriteString("\r\n")
	for _, part := range []struct{ ct, s string }{
		{"text/plain; charset=utf-8", m.content.Text},
		{"text/html; charset=utf-8", m.content.HTML},
	} {
		w, _ := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ct},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		qp := quotedprintable.NewWriter(w)
		_, _ = qp.Write([]byte(part.s))
		_ = qp.Close()
	}
	_ = mw.Close()
	m.mime = b.Bytes()
}
