package imap

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"
)

// Body types (MS-ASAIRS 2.2.2.22.1).
const (
	bodyPlain = 1
	bodyHTML  = 2
	bodyMIME  = 4
)

// bodyPref is one AirSyncBase:BodyPreference.
type bodyPref struct {
	Type      int
	Trunc     int64 // 0: no truncation
	AllOrNone bool
}

// itemOptions are the per-collection options that shape ApplicationData.
type itemOptions struct {
	prefs       []bodyPref
	mimeSupport int // AirSync:MIMESupport: 0 never, 1 S/MIME only, 2 always
}

func parseItemOptions(opt *wbxml.Element) itemOptions {
	var o itemOptions
	if opt == nil {
		return o
	}
	for _, bp := range opt.FindAll(wbxml.AirSyncBaseBodyPreference) {
		p := bodyPref{Type: atoi(bp.Find(wbxml.AirSyncBaseType).Text())}
		p.Trunc = int64(atoi(bp.Find(wbxml.AirSyncBaseTruncationSize).Text()))
		p.AllOrNone = bp.Find(wbxml.AirSyncBaseAllOrNone).Text() == "1"
		if p.Type == bodyPlain || p.Type == bodyHTML || p.Type == bodyMIME {
			o.prefs = append(o.prefs, p)
		}
	}
	if m := opt.Find(wbxml.AirSyncMIMESupport); m != nil {
		o.mimeSupport = atoi(m.Text())
	}
	return o
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

// choose picks the body the device gets: MIME when it asked for type 4 and either always wants
// MIME or asked for nothing else (or the message is S/MIME and it accepts that), else HTML when
// it asked for it, else plain text. No preference at all means plain text, not truncated.
func (o itemOptions) choose(isSMIME bool) bodyPref {
	var best *bodyPref
	for i := range o.prefs {
		p := &o.prefs[i]
		if p.Type == bodyMIME && (o.mimeSupport == 2 || len(o.prefs) == 1 || (o.mimeSupport == 1 && isSMIME)) {
			return *p
		}
	}
	for i := range o.prefs {
		p := &o.prefs[i]
		if p.Type == bodyHTML {
			return *p
		}
		if p.Type == bodyPlain && best == nil {
			best = p
		}
	}
	if best != nil {
		return *best
	}
	if len(o.prefs) > 0 {
		return bodyPref{Type: bodyPlain, Trunc: o.prefs[0].Trunc, AllOrNone: o.prefs[0].AllOrNone}
	}
	return bodyPref{Type: bodyPlain}
}

// message is what convert needs of one IMAP message.
type message struct {
	uid      imap.UID
	flags    []imap.Flag
	env      *imap.Envelope
	date     time.Time
	size     int64
	bs       imap.BodyStructure
	body     []byte // the chosen text part (raw, still transfer-encoded) or the MIME prefix
	bodyPart *imap.BodyStructureSinglePart
	pref     bodyPref
}

func flagsOf(fl []imap.Flag) ItemFlags {
	var f ItemFlags
	for _, x := range fl {
		switch x {
		case imap.FlagSeen:
			f |= FlagSeen
		case imap.FlagFlagged:
			f |= FlagFlagged
		}
	}
	return f
}

// textParts finds the first plain and the first HTML body part that are not attachments.
func textParts(bs imap.BodyStructure) (plain, htm []int, plainPart, htmlPart *imap.BodyStructureSinglePart) {
	if bs == nil {
		return
	}
	bs.Walk(func(path []int, part imap.BodyStructure) bool {
		sp, ok := part.(*imap.BodyStructureSinglePart)
		if !ok {
			return true
		}
		if d := sp.Disposition(); d != nil && strings.EqualFold(d.Value, "attachment") {
			return true
		}
		switch sp.MediaType() {
		case "text/plain":
			if plain == nil {
				plain, plainPart = slices.Clone(path), sp
			}
		case "text/html":
			if htm == nil {
				htm, htmlPart = slices.Clone(path), sp
			}
		}
		return true
	})
	return
}

// attachment is one attachment part of a message.
type attachment struct {
	path    []int
	part    *imap.BodyStructureSinglePart
	name    string
	inline  bool
	content string
}

func attachments(bs imap.BodyStructure) []attachment {
	var out []attachment
	if bs == nil {
		return nil
	}
	plain, htm, _, _ := textParts(bs)
	bs.Walk(func(path []int, part imap.BodyStructure) bool {
		sp, ok := part.(*imap.BodyStructureSinglePart)
		if !ok {
			return true
		}
		if slices.Equal(path, plain) || slices.Equal(path, htm) {
			return true
		}
		d := sp.Disposition()
		name := sp.Filename()
		isAtt := d != nil && strings.EqualFold(d.Value, "attachment")
		if !isAtt && !strings.EqualFold(sp.Type, "text") && !strings.EqualFold(sp.Type, "multipart") {
			isAtt = true // a non-text leaf that is not the body: an image, a PDF, a forwarded message
		}
		if !isAtt && name != "" {
			isAtt = true
		}
		if !isAtt {
			return true
		}
		if name == "" {
			name = "attachment-" + partString(path)
			if sp.MediaType() == "message/rfc822" {
				name += ".eml"
			}
		}
		out = append(out, attachment{
			path: slices.Clone(path), part: sp, name: name,
			inline:  d != nil && strings.EqualFold(d.Value, "inline") && sp.ID != "",
			content: strings.Trim(sp.ID, "<>"),
		})
		return true
	})
	return out
}

func partString(path []int) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

func parsePart(s string) ([]int, bool) {
	if s == "" {
		return nil, false
	}
	var out []int
	for _, f := range strings.Split(s, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || n > 10000 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, len(out) <= 32
}

func decodedSize(sp *imap.BodyStructureSinglePart) int64 {
	if strings.EqualFold(sp.Encoding, "base64") {
		return int64(sp.Size) * 3 / 4
	}
	return int64(sp.Size)
}

// decodePart undoes the transfer encoding and converts the charset to UTF-8.
func decodePart(raw []byte, sp *imap.BodyStructureSinglePart) []byte {
	var r io.Reader = bytes.NewReader(raw)
	switch strings.ToLower(sp.Encoding) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &newlineStripper{r: r})
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil && len(b) == 0 {
		b = raw
	}
	cs := strings.ToLower(sp.Params["charset"])
	if cs != "" && cs != "utf-8" && cs != "us-ascii" {
		if cr, err := charset.Reader(cs, bytes.NewReader(b)); err == nil {
			if u, err := io.ReadAll(cr); err == nil {
				b = u
			}
		}
	}
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	return b
}

type newlineStripper struct{ r io.Reader }

func (n *newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

var (
	reTags    = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)
	reBlank   = regexp.MustCompile(`\n{3,}`)
	reBreaks  = regexp.MustCompile(`(?i)<(br|/p|/div|/tr|/h[1-6]|/li)[^>]*>`)
	reSpaceNL = regexp.MustCompile(`[ \t]+\n`)
)

// htmlToText is a plain-text rendering of an HTML body for devices that only take text.
func htmlToText(h string) string {
	h = reBreaks.ReplaceAllString(h, "$0\n")
	t := html.UnescapeString(reTags.ReplaceAllString(h, ""))
	t = reSpaceNL.ReplaceAllString(t, "\n")
	return strings.TrimSpace(reBlank.ReplaceAllString(t, "\n\n"))
}

func textToHTML(t string) string {
	return "<html><body><pre style=\"white-space:pre-wrap\">" + html.EscapeString(t) + "</pre></body></html>"
}

// truncateUTF8 cuts b to at most n bytes without splitting a UTF-8 sequence.
func truncateUTF8(b []byte, n int64) []byte {
	if int64(len(b)) <= n {
		return b
	}
	i := int(n)
	for i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return b[:i]
}

var metaFetch = imap.FetchOptions{
	UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
	BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
}

// specBodyLimit bounds the first text part fetched together with the metadata, before the
// body structure is known (see fetchMessages): a part up to this size needs no second FETCH,
// and a guess that misses (the text is not part 1) costs at most this much per message.
const specBodyLimit = 16 << 10

// speculativeSection is the body section fetchMessages asks for in the metadata FETCH: the
// whole message (up to the limit its preference allows) when every message gets MIME, and the
// first part when every message gets plain text, since part 1 is the text of a single-part
// message and of the common multipart/alternative. Nil when the section depends on the body
// structure: HTML (part 2 of an alternative) or MIME only for S/MIME messages.
func speculativeSection(opts itemOptions, maxBodyFetch int64) *imap.FetchItemBodySection {
	p := opts.choose(false)
	if p != opts.choose(true) {
		return nil
	}
	switch p.Type {
	case bodyMIME:
		return &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Size: mimeLimit(p, maxBodyFetch)}}
	case bodyPlain:
		return &imap.FetchItemBodySection{Peek: true, Part: []int{1}, Partial: &imap.SectionPartial{Size: min(specBodyLimit, maxBodyFetch)}}
	}
	return nil
}

// mimeLimit is how much of a message the MIME body fetch reads: never more than
// MaxBodyFetch, nor more than the device's truncation size.
func mimeLimit(p bodyPref, maxBodyFetch int64) int64 {
	if p.Trunc > 0 && p.Trunc < maxBodyFetch {
		return p.Trunc
	}
	return maxBodyFetch
}

// fetchMessages fetches the messages with uids in the selected mailbox, with the body each
// needs under opts. Messages that vanished meanwhile are absent from the result.
//
// The metadata FETCH also asks for the body section most messages need (speculativeSection),
// so that a window of ordinary messages costs the IMAP server one pass over its message files
// instead of two; the messages whose text is elsewhere, or larger than what came, get their
// section in a second FETCH grouped by section.
func (s *session) fetchMessages(c *imapclient.Client, uids []imap.UID, opts itemOptions) (map[imap.UID]*message, error) {
	out := make(map[imap.UID]*message, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	fopts := &metaFetch
	spec := speculativeSection(opts, s.b.cfg.MaxBodyFetch)
	if spec != nil {
		f := metaFetch
		f.BodySection = []*imap.FetchItemBodySection{spec}
		fopts = &f
	}
	bufs, err := c.Fetch(imap.UIDSetNum(uids...), fopts).Collect()
	if err != nil {
		return nil, s.imapErr(err, "FETCH")
	}
	// Group the body fetches by section so that every FETCH names one section for a disjoint
	// UID set.
	type group struct {
		sec  *imap.FetchItemBodySection
		uids []imap.UID
	}
	groups := map[string]*group{}
	for _, b := range bufs {
		if b.UID == 0 {
			continue
		}
		m := &message{uid: b.UID, flags: b.Flags, env: b.Envelope, date: b.InternalDate, size: b.RFC822Size, bs: b.BodyStructure}
		if m.env == nil {
			m.env = &imap.Envelope{}
		}
		isSMIME := b.BodyStructure != nil && strings.Contains(strings.ToLower(b.BodyStructure.MediaType()), "pkcs7")
		m.pref = opts.choose(isSMIME)
		out[b.UID] = m
		// The speculative section, when asked for and answered (the server may leave out a
		// section it cannot give).
		var specData []byte
		haveSpec := false
		if spec != nil {
			for _, bsec := range b.BodySection {
				specData, haveSpec = bsec.Bytes, true
			}
		}
		var sec *imap.FetchItemBodySection
		if m.pref.Type == bodyMIME {
			sec = &imap.FetchItemBodySection{Peek: true}
			if m.pref.Trunc > 0 && m.pref.AllOrNone && m.size > m.pref.Trunc {
				continue
			}
			// Never more than MaxBodyFetch of one message in memory; beyond it the device gets
			// a truncated MIME body and can fetch the rest by attachment.
			limit := mimeLimit(m.pref, s.b.cfg.MaxBodyFetch)
			if haveSpec && spec.Part == nil {
				m.body = specData // the first limit bytes, as the FETCH below would read
				continue
			}
			if m.size > limit {
				sec.Partial = &imap.SectionPartial{Offset: 0, Size: limit}
			}
		} else {
			plain, htm, pp, hp := textParts(m.bs)
			path, part := plain, pp
			if m.pref.Type == bodyHTML && htm != nil || plain == nil {
				path, part = htm, hp
			}
			if path == nil {
				continue
			}
			m.bodyPart = part
			if haveSpec && slices.Equal(spec.Part, path) && int64(part.Size) <= spec.Partial.Size {
				m.body = specData // the whole part came with the metadata
				continue
			}
			sec = &imap.FetchItemBodySection{Peek: true, Part: path}
			if int64(part.Size) > s.b.cfg.MaxBodyFetch {
				sec.Partial = &imap.SectionPartial{Offset: 0, Size: s.b.cfg.MaxBodyFetch}
			}
		}
		k := fmt.Sprintf("%v|%v", sec.Part, sec.Partial)
		g := groups[k]
		if g == nil {
			g = &group{sec: sec}
			groups[k] = g
		}
		g.uids = append(g.uids, b.UID)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g := groups[k]
		res, err := c.Fetch(imap.UIDSetNum(g.uids...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{g.sec}}).Collect()
		if err != nil {
			return nil, s.imapErr(err, "FETCH body")
		}
		for _, r := range res {
			if m := out[r.UID]; m != nil {
				for _, bsec := range r.BodySection {
					m.body = bsec.Bytes
				}
			}
		}
	}
	return out, nil
}

func addrList(as []imap.Address) string {
	var parts []string
	for _, a := range as {
		addr := a.Addr()
		if addr == "" {
			continue
		}
		if a.Name != "" {
			parts = append(parts, mime.QEncoding.Encode("utf-8", quoteName(a.Name))+" <"+addr+">")
		} else {
			parts = append(parts, addr)
		}
	}
	return strings.Join(parts, ", ")
}

func quoteName(n string) string {
	if strings.ContainsAny(n, `,;<>@"()[]:\`) {
		return `"` + strings.ReplaceAll(strings.ReplaceAll(n, `\`, `\\`), `"`, `\"`) + `"`
	}
	return n
}

func displayList(as []imap.Address) string {
	var parts []string
	for _, a := range as {
		if a.Name != "" {
			parts = append(parts, a.Name)
		} else if x := a.Addr(); x != "" {
			parts = append(parts, x)
		}
	}
	return strings.Join(parts, "; ")
}

// easDate formats a time as MS-ASDTYPE 2.3 dateTime (UTC with milliseconds).
func easDate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// appData renders the Email class properties of m (MS-ASEMAIL 2.2.2) under tag t, with
// FileReferences "collection:uid:part".
func (m *message) appData(t wbxml.Tag, coll string) *wbxml.Element {
	e := wbxml.NewElement(t)
	env := m.env
	if len(env.To) > 0 {
		e.Append(text(wbxml.EmailTo, addrList(env.To)))
	}
	if len(env.Cc) > 0 {
		e.Append(text(wbxml.EmailCc, addrList(env.Cc)))
	}
	if len(env.From) > 0 {
		e.Append(text(wbxml.EmailFrom, addrList(env.From)))
	}
	e.Append(text(wbxml.EmailSubject, env.Subject))
	if len(env.ReplyTo) > 0 {
		e.Append(text(wbxml.EmailReplyTo, addrList(env.ReplyTo)))
	}
	d := m.date
	if d.IsZero() {
		d = env.Date
	}
	e.Append(text(wbxml.EmailDateReceived, easDate(d)))
	e.Append(text(wbxml.EmailDisplayTo, displayList(env.To)))
	e.Append(text(wbxml.EmailThreadTopic, env.Subject))
	e.Append(text(wbxml.EmailImportance, 1))
	read := 0
	if slices.Contains(m.flags, imap.FlagSeen) {
		read = 1
	}
	e.Append(text(wbxml.EmailRead, read))
	e.Append(m.bodyElem())
	if atts := attachments(m.bs); len(atts) > 0 {
		ae := wbxml.NewElement(wbxml.AirSyncBaseAttachments)
		for _, a := range atts {
			x := wbxml.NewElement(wbxml.AirSyncBaseAttachment,
				text(wbxml.AirSyncBaseDisplayName, a.name),
				text(wbxml.AirSyncBaseFileReference, coll+":"+strconv.FormatUint(uint64(m.uid), 10)+":"+partString(a.path)),
				text(wbxml.AirSyncBaseMethod, 1),
				text(wbxml.AirSyncBaseEstimatedDataSize, decodedSize(a.part)))
			if a.content != "" {
				x.Append(text(wbxml.AirSyncBaseContentId, a.content))
			}
			if a.inline {
				x.Append(text(wbxml.AirSyncBaseIsInline, 1))
			}
			ae.Append(x)
		}
		e.Append(ae)
	}
	e.Append(text(wbxml.EmailMessageClass, "IPM.Note"))
	e.Append(text(wbxml.EmailInternetCPID, "65001"))
	e.Append(flagElem(flagsOf(m.flags)))
	e.Append(text(wbxml.EmailContentClass, "urn:content-classes:message"))
	native := bodyPlain
	if _, htm, _, _ := textParts(m.bs); htm != nil {
		native = bodyHTML
	}
	e.Append(text(wbxml.AirSyncBaseNativeBodyType, native))
	return e
}

// flagElem is Email:Flag: empty when not flagged, Status 2 (active) when flagged.
func flagElem(f ItemFlags) *wbxml.Element {
	if f&FlagFlagged == 0 {
		return &wbxml.Element{Tag: wbxml.EmailFlag}
	}
	return wbxml.NewElement(wbxml.EmailFlag,
		text(wbxml.EmailFlagStatus, 2),
		text(wbxml.EmailFlagType, "Flag for follow up"))
}

// bodyElem renders AirSyncBase:Body for the chosen preference (MS-ASAIRS 2.2.2.9).
func (m *message) bodyElem() *wbxml.Element {
	p := m.pref
	b := wbxml.NewElement(wbxml.AirSyncBaseBody, text(wbxml.AirSyncBaseType, p.Type))
	var data []byte
	var full int64
	truncated := false
	switch p.Type {
	case bodyMIME:
		full = m.size
		data = m.body
		if p.Trunc > 0 && full > p.Trunc || int64(len(data)) < full {
			truncated = true
			if p.AllOrNone {
				data = nil
			}
		}
	default:
		var raw []byte
		if m.bodyPart != nil {
			raw = decodePart(m.body, m.bodyPart)
			if int64(m.bodyPart.Size) > int64(len(m.body)) {
				truncated = true // the part exceeded MaxBodyFetch
			}
		}
		isHTML := m.bodyPart != nil && strings.EqualFold(m.bodyPart.Subtype, "html")
		switch {
		case p.Type == bodyPlain && isHTML:
			raw = []byte(htmlToText(string(raw)))
		case p.Type == bodyHTML && !isHTML:
			raw = []byte(textToHTML(string(raw)))
		}
		full = int64(len(raw))
		data = raw
		if p.Trunc > 0 && full > p.Trunc {
			truncated = true
			if p.AllOrNone {
				data = nil
			} else {
				data = truncateUTF8(raw, p.Trunc)
			}
		}
	}
	b.Append(text(wbxml.AirSyncBaseEstimatedDataSize, full))
	if truncated {
		b.Append(text(wbxml.AirSyncBaseTruncated, 1))
	}
	if data != nil {
		if bytes.IndexByte(data, 0) >= 0 {
			// WBXML inline strings cannot hold NUL: MIME goes as opaque data, text loses it.
			if p.Type == bodyMIME {
				b.Append(wbxml.NewOpaque(wbxml.AirSyncBaseData, data))
				return b
			}
			data = bytes.ReplaceAll(data, []byte{0}, nil)
		}
		b.Append(wbxml.NewText(wbxml.AirSyncBaseData, string(data)))
	}
	return b
}
