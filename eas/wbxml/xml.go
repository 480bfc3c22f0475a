package wbxml

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// XMLNamespace is the namespace of the attributes with which the XML text
// form records what plain XML cannot say about the WBXML encoding. They
// appear only where needed, so common documents read like MS-ASCMD examples:
//
//	wbxml:opaque="1"   the element holds opaque data, written in base64
//	wbxml:base64="1"   the string is not valid XML text (invalid UTF-8 or
//	                   control characters) and is written in base64
//	wbxml:empty="1"    the element holds an empty string (03 00)
//	wbxml:content="1"  an element without value or children whose content
//	                   bit is set (tag|0x40 ... END instead of tag)
//	wbxml:ref="N"      the string is a reference to offset N of the string
//	                   table (the text shows the referenced string)
//	wbxml:switch="1"   a SWITCH_PAGE to the page already in force precedes
//	                   the tag
//
// and on the root element, when the header is not DefaultHeader:
// wbxml:version ("1.0".."1.3"), wbxml:publicid, wbxml:publicidindex,
// wbxml:charset and wbxml:stringtable (base64).
const XMLNamespace = "urn:easgate:wbxml"

// xmlDoctype lets libwbxml's xml2wbxml read the text form as ActiveSync.
const xmlDoctype = `<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">`

// ToXML writes doc in the XML text form: element names are MS-ASWBXML tag
// names, every element whose code page differs from its parent's declares
// that page's namespace as MS-ASCMD writes it (<FolderSync
// xmlns="FolderHierarchy:">), children are indented by two spaces, and the
// attributes described at XMLNamespace keep every detail of the encoding,
// so that FromXML gives back a document that encodes to the same bytes.
// Unassigned tokens are written as _0xNN.
func ToXML(doc *Document, w io.Writer) error {
	return writeXML(doc, w, nil)
}

// writeXML is ToXML with element names from nameOf when it is not nil
// (the libwbxml tests write libwbxml's spelling of some tags).
func writeXML(doc *Document, w io.Writer, nameOf func(Tag) string) error {
	if doc == nil || doc.Root == nil {
		return &SyntaxError{Kind: SyntaxNoRoot, Offset: -1}
	}
	bw := bufio.NewWriter(w)
	x := xmlWriter{w: bw, doc: doc, nameOf: nameOf}
	x.marks = needsMarkers(doc)
	bw.WriteString("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n")
	bw.WriteString(xmlDoctype)
	bw.WriteByte('\n')
	if err := x.element(doc.Root, 0, 0xFF); err != nil {
		return err
	}
	return bw.Flush()
}

type xmlWriter struct {
	w      *bufio.Writer
	doc    *Document
	nameOf func(Tag) string
	marks  bool
	b64    []byte // scratch for base64 output
	page   uint8  // page in force in the WBXML encoding, to spot redundant switches
}

func needsMarkers(doc *Document) bool {
	h := doc.Header
	if h.Version != DefaultHeader.Version || h.PublicIDInTable || h.PublicID != DefaultHeader.PublicID ||
		h.Charset != DefaultHeader.Charset || len(h.StringTable) != 0 {
		return true
	}
	found := false
	page := uint8(0)
	doc.Root.Walk(func(e *Element) bool {
		if e.Switch && e.Tag.Page() == page {
			found = true
		}
		page = e.Tag.Page()
		switch {
		case e.Kind == OpaqueValue, doc.refHolds(e),
			e.Kind == StringValue && (len(e.Value) == 0 || !xmlSafe(e.Value)),
			e.Kind == NoValue && len(e.Children) == 0 && e.HasContent:
			found = true
		}
		return !found
	})
	return found
}

// xmlSafe reports whether s can be written as XML character data and read
// back unchanged.
func xmlSafe(s []byte) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += n
	}
	return true
}

func (x *xmlWriter) element(e *Element, depth int, parentPage uint8) error {
	if e == nil {
		return nil
	}
	if !e.Tag.Valid() {
		return &SyntaxError{Kind: SyntaxInvalidTag, Offset: -1, Detail: e.Tag.String()}
	}
	if len(e.Children) > 0 && e.Kind != NoValue {
		return &SyntaxError{Kind: SyntaxMixedContent, Offset: -1, Detail: e.Tag.String()}
	}
	name := x.open(e.Tag, depth, parentPage, e.Switch)
	if e.Kind == NoValue && len(e.Children) > 0 {
		x.w.WriteString(">\n")
		for _, c := range e.Children {
			if err := x.element(c, depth+1, e.Tag.Page()); err != nil {
				return err
			}
		}
		x.closeContainer(name, depth)
		return nil
	}
	x.value(name, e.Kind, e.Value, e.HasContent, x.doc.refHolds(e), e.Ref)
	return nil
}

// refHolds reports whether e is a string-table reference that Encode will
// write as such: the table entry at e.Ref still equals e.Value.
func (doc *Document) refHolds(e *Element) bool {
	if !e.TableRef || e.Kind != StringValue {
		return false
	}
	s, ok := doc.Header.tableString(e.Ref)
	return ok && bytes.Equal(s, e.Value)
}

// open writes the indentation and the start of the start tag of t, up to
// its attributes, and returns the element name.
func (x *xmlWriter) open(t Tag, depth int, parentPage uint8, switched bool) string {
	w := x.w
	for i := 0; i < depth; i++ {
		w.WriteString("  ")
	}
	name := t.Name()
	if x.nameOf != nil {
		name = x.nameOf(t)
	}
	if name == "" {
		name = "_" + hexToken(t.Token())
	}
	w.WriteByte('<')
	w.WriteString(name)
	page := t.Page()
	if page != parentPage {
		w.WriteString(` xmlns="`)
		w.WriteString(PageNamespace(page))
		w.WriteByte('"')
	}
	if depth == 0 {
		x.rootAttrs()
	}
	if switched && page == x.page {
		w.WriteString(` wbxml:switch="1"`)
	}
	x.page = page
	return name
}

func (x *xmlWriter) closeContainer(name string, depth int) {
	for i := 0; i < depth; i++ {
		x.w.WriteString("  ")
	}
	x.w.WriteString("</")
	x.w.WriteString(name)
	x.w.WriteString(">\n")
}

// value finishes an element without children: its value attributes, its
// text and its end tag.
func (x *xmlWriter) value(name string, kind ValueKind, v []byte, hasContent, tableRef bool, ref uint32) {
	w := x.w
	switch kind {
	case NoValue:
		if hasContent {
			w.WriteString(` wbxml:content="1"`)
		}
		w.WriteString("/>\n")
		return
	case StringValue:
		if tableRef {
			w.WriteString(` wbxml:ref="`)
			w.WriteString(strconv.FormatUint(uint64(ref), 10))
			w.WriteByte('"')
		}
		switch {
		case len(v) == 0:
			w.WriteString(` wbxml:empty="1"/>` + "\n")
			return
		case !xmlSafe(v):
			w.WriteString(` wbxml:base64="1">`)
			x.writeBase64(v)
		default:
			w.WriteByte('>')
			escapeText(w, v)
		}
	case OpaqueValue:
		w.WriteString(` wbxml:opaque="1"`)
		if len(v) == 0 {
			w.WriteString("/>\n")
			return
		}
		w.WriteByte('>')
		x.writeBase64(v)
	}
	w.WriteString("</")
	w.WriteString(name)
	w.WriteString(">\n")
}

func (x *xmlWriter) writeBase64(v []byte) {
	x.b64 = base64.StdEncoding.AppendEncode(x.b64[:0], v)
	x.w.Write(x.b64)
}

func (x *xmlWriter) rootAttrs() {
	if !x.marks {
		return
	}
	w := x.w
	w.WriteString(` xmlns:wbxml="` + XMLNamespace + `"`)
	h := x.doc.Header
	attr := func(name, val string) {
		w.WriteString(" wbxml:" + name + `="` + val + `"`)
	}
	if h.Version != DefaultHeader.Version {
		attr("version", "1."+strconv.Itoa(int(h.Version)))
	}
	if h.PublicIDInTable {
		attr("publicidindex", strconv.FormatUint(uint64(h.PublicIDIndex), 10))
	} else if h.PublicID != DefaultHeader.PublicID {
		attr("publicid", strconv.FormatUint(uint64(h.PublicID), 10))
	}
	if h.Charset != DefaultHeader.Charset && h.Version > 0 {
		attr("charset", strconv.FormatUint(uint64(h.Charset), 10))
	}
	if len(h.StringTable) > 0 {
		attr("stringtable", base64.StdEncoding.EncodeToString(h.StringTable))
	}
}

// escapeText escapes what XML character data cannot hold literally. \r is
// escaped because XML parsers turn a literal CR into LF; \n and \t stay
// literal so that multi-line strings stay readable.
func escapeText(w *bufio.Writer, s []byte) {
	last := 0
	for i, c := range s {
		var esc string
		switch c {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		w.Write(s[last:i])
		w.WriteString(esc)
		last = i + 1
	}
	w.Write(s[last:])
}

// WriteXML writes the XML text form of the WBXML document b to w: the same
// bytes as ToXML of Parse(b, lim), and the same errors, but straight from the
// token stream without building a tree, so it allocates next to nothing
// whatever the document size. It is what `gateway wbxml decode` runs.
func WriteXML(w io.Writer, b []byte, lim Limits) error {
	lim = lim.withDefaults()
	// First pass: validate, and find whether any wbxml:* marker is needed
	// (the root declares the marker namespace only then).
	dec := NewDecoder(b, lim)
	hdr, err := dec.Header()
	if err != nil {
		return err
	}
	marks := hdr.Version != DefaultHeader.Version || hdr.PublicIDInTable || hdr.PublicID != DefaultHeader.PublicID ||
		hdr.Charset != DefaultHeader.Charset || len(hdr.StringTable) != 0
	page := uint8(0)
	emptyOpen := false // the previous token opened an element with content
	// What each open element holds so far, to reject mixed content before
	// writing anything: 0 nothing, 1 children, 2 a value.
	var holdsBuf [16]uint8
	holds := holdsBuf[:0]
	for {
		tok, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch tok.Kind {
		case StartTag:
			if tok.Switched && tok.Tag.Page() == page {
				marks = true
			}
			page = tok.Tag.Page()
			if n := len(holds); n > 0 {
				if holds[n-1] == 2 {
					return &SyntaxError{Kind: SyntaxMixedContent, Offset: tok.Offset}
				}
				holds[n-1] = 1
			}
			if tok.HasContent {
				holds = append(holds, 0)
			}
		case EndTag:
			if emptyOpen {
				marks = true
			}
			holds = holds[:len(holds)-1]
		case String, Opaque:
			if tok.Kind == Opaque || tok.TableRef || len(tok.Data) == 0 || !xmlSafe(tok.Data) {
				marks = true
			}
			if holds[len(holds)-1] != 0 {
				return &SyntaxError{Kind: SyntaxMixedContent, Offset: tok.Offset}
			}
			holds[len(holds)-1] = 2
		}
		emptyOpen = tok.Kind == StartTag && tok.HasContent
	}

	bw := bufio.NewWriter(w)
	doc := Document{Header: hdr}
	x := xmlWriter{w: bw, doc: &doc, marks: marks}
	bw.WriteString("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n")
	bw.WriteString(xmlDoctype)
	bw.WriteByte('\n')
	// Second pass: write. An element with content is written once the
	// token after its start tag tells whether it holds a value, children
	// or nothing.
	type open struct {
		name  string
		page  uint8
		state uint8 // 0 nothing seen yet (start tag pending), 1 children, 2 value
	}
	var stackBuf [16]open
	stack := stackBuf[:0]
	parentPage := func() uint8 {
		if len(stack) == 0 {
			return 0xFF
		}
		return stack[len(stack)-1].page
	}
	dec.Reset(b)
	for {
		tok, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		var top *open
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		switch tok.Kind {
		case StartTag:
			if top != nil {
				switch top.state {
				case 0:
					bw.WriteString(">\n")
					top.state = 1
				case 2:
					return &SyntaxError{Kind: SyntaxMixedContent, Offset: tok.Offset}
				}
			}
			name := x.open(tok.Tag, len(stack), parentPage(), tok.Switched)
			if !tok.HasContent {
				x.value(name, NoValue, nil, false, false, 0)
				continue
			}
			stack = append(stack, open{name: name, page: tok.Tag.Page()})
		case String, Opaque:
			if top.state != 0 {
				return &SyntaxError{Kind: SyntaxMixedContent, Offset: tok.Offset}
			}
			top.state = 2
			kind := StringValue
			if tok.Kind == Opaque {
				kind = OpaqueValue
			}
			x.value(top.name, kind, tok.Data, true, tok.TableRef, tok.Ref)
		case EndTag:
			switch top.state {
			case 0:
				x.value(top.name, NoValue, nil, true, false, 0)
			case 1:
				x.closeContainer(top.name, len(stack)-1)
			}
			stack = stack[:len(stack)-1]
		}
	}
	return bw.Flush()
}

// FromXML reads the XML text form written by ToXML (or written by hand in
// the same style, or by libwbxml's wbxml2xml where its tag names agree with
// MS-ASWBXML) under DefaultLimits. Every element must be in a code-page
// namespace; prefixes (<email:Subject>) and default namespaces are both
// accepted, as are the "Page" and "Page:" spellings. Whitespace between
// elements is ignored; the text of an element without children is taken
// verbatim.
func FromXML(r io.Reader) (*Document, error) {
	return FromXMLLimits(r, Limits{})
}

// FromXMLLimits is FromXML under the limits lim: MaxDepth, MaxStringLen,
// MaxOpaqueLen and MaxStringTable apply to the document being built, and
// MaxDocumentSize to its WBXML encoding, checked at the end.
func FromXMLLimits(r io.Reader, lim Limits) (*Document, error) {
	return readXML(r, lim, LookupInPage)
}

// readXML is FromXMLLimits with tag names resolved by lookup (the libwbxml
// tests read libwbxml's spelling of some tags).
func readXML(r io.Reader, lim Limits, lookup func(uint8, string) (Tag, bool)) (*Document, error) {
	lim = lim.withDefaults()
	dec := xml.NewDecoder(r)
	dec.Strict = true
	doc := &Document{Header: DefaultHeader}
	type frame struct {
		el   *Element
		text []byte
		mark xmlMarks
	}
	var stack []frame
	done := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, xmlErr(dec, err.Error())
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if done {
				return nil, xmlErr(dec, "second root element <"+t.Name.Local+">")
			}
			if len(stack) >= lim.MaxDepth {
				return nil, &LimitError{Kind: LimitDepth, Max: lim.MaxDepth, Size: int64(len(stack) + 1), Offset: int(dec.InputOffset())}
			}
			if t.Name.Space == "" {
				return nil, xmlErr(dec, "element <"+t.Name.Local+"> has no code page namespace")
			}
			page, ok := PageByNamespace(t.Name.Space)
			if !ok {
				return nil, xmlErr(dec, "unknown code page namespace "+strconv.Quote(t.Name.Space))
			}
			tag, ok := lookup(page, t.Name.Local)
			if !ok {
				return nil, xmlErr(dec, "no tag "+t.Name.Local+" in code page "+PageName(page))
			}
			el := &Element{Tag: tag}
			var m xmlMarks
			if err := m.parse(t.Attr, len(stack) == 0, doc, lim); err != nil {
				if IsMalformed(err) {
					return nil, err
				}
				return nil, xmlErr(dec, err.Error())
			}
			if h := &doc.Header; len(stack) == 0 && h.PublicIDInTable {
				if _, ok := h.tableString(h.PublicIDIndex); !ok {
					return nil, xmlErr(dec, "wbxml:publicidindex outside the string table")
				}
			}
			el.Switch = m.switchPage
			el.HasContent = m.content
			if len(stack) == 0 {
				doc.Root = el
			} else {
				p := stack[len(stack)-1].el
				p.Children = append(p.Children, el)
			}
			stack = append(stack, frame{el: el, mark: m})
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, xmlErr(dec, "text outside the root element")
				}
				continue
			}
			f := &stack[len(stack)-1]
			f.text = append(f.text, t...)
			if len(f.text) > 2*lim.MaxStringLen+4 {
				return nil, &LimitError{Kind: LimitStringLen, Max: lim.MaxStringLen, Size: int64(len(f.text)), Offset: int(dec.InputOffset())}
			}
		case xml.EndElement:
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if err := f.mark.finishValue(f.el, f.text, lim); err != nil {
				if IsMalformed(err) {
					return nil, err
				}
				return nil, xmlErr(dec, err.Error())
			}
			if f.el.TableRef {
				if s, ok := doc.Header.tableString(f.el.Ref); !ok || !bytes.Equal(s, f.el.Value) {
					return nil, xmlErr(dec, "wbxml:ref of <"+f.el.Tag.Name()+"> does not match the string table")
				}
			}
			if len(stack) == 0 {
				done = true
			}
		}
	}
	if doc.Root == nil {
		return nil, &SyntaxError{Kind: SyntaxNoRoot, Offset: -1}
	}
	if len(stack) != 0 {
		return nil, &SyntaxError{Kind: SyntaxTruncated, Offset: int(dec.InputOffset())}
	}
	// Validate references and sizes by encoding once, as a later Encode
	// would.
	b, err := doc.Encode(nil)
	if err != nil {
		return nil, err
	}
	if len(b) > lim.MaxDocumentSize {
		return nil, &LimitError{Kind: LimitDocumentSize, Max: lim.MaxDocumentSize, Size: int64(len(b)), Offset: 0}
	}
	return doc, nil
}

// xmlMarks are the wbxml:* attributes of one element.
type xmlMarks struct {
	opaque, b64, empty, content, switchPage, ref bool
	refOff                                       uint32
}

func (m *xmlMarks) parse(attrs []xml.Attr, root bool, doc *Document, lim Limits) error {
	for _, a := range attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		if a.Name.Space != XMLNamespace {
			return errors.New("unexpected attribute " + a.Name.Local)
		}
		flag := func() (bool, error) {
			switch a.Value {
			case "1", "true":
				return true, nil
			case "0", "false":
				return false, nil
			}
			return false, errors.New("wbxml:" + a.Name.Local + " must be 1 or 0")
		}
		num := func() (uint32, error) {
			v, err := strconv.ParseUint(a.Value, 10, 32)
			if err != nil {
				return 0, errors.New("wbxml:" + a.Name.Local + ": " + strconv.Quote(a.Value) + " is not a 32-bit number")
			}
			return uint32(v), nil
		}
		var err error
		switch a.Name.Local {
		case "opaque":
			m.opaque, err = flag()
		case "base64":
			m.b64, err = flag()
		case "empty":
			m.empty, err = flag()
		case "content":
			m.content, err = flag()
		case "switch":
			m.switchPage, err = flag()
		case "ref":
			m.ref = true
			m.refOff, err = num()
		default:
			if !root {
				return errors.New("unknown attribute wbxml:" + a.Name.Local)
			}
			err = parseHeaderAttr(&doc.Header, a, num, lim)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseHeaderAttr(h *Header, a xml.Attr, num func() (uint32, error), lim Limits) error {
	var err error
	switch a.Name.Local {
	case "version":
		v, ok := map[string]uint8{"1.0": 0, "1.1": 1, "1.2": 2, "1.3": 3}[a.Value]
		if !ok {
			return errors.New("wbxml:version must be 1.0, 1.1, 1.2 or 1.3")
		}
		h.Version = v
	case "publicid":
		h.PublicID, err = num()
		if err == nil && h.PublicID == 0 {
			err = errors.New("wbxml:publicid 0 is written as wbxml:publicidindex")
		}
	case "publicidindex":
		h.PublicIDInTable = true
		h.PublicIDIndex, err = num()
	case "charset":
		h.Charset, err = num()
	case "stringtable":
		h.StringTable, err = base64.StdEncoding.DecodeString(a.Value)
		if err == nil && len(h.StringTable) > lim.MaxStringTable {
			return &LimitError{Kind: LimitStringTable, Max: lim.MaxStringTable, Size: int64(len(h.StringTable)), Offset: -1}
		}
	default:
		return errors.New("unknown attribute wbxml:" + a.Name.Local)
	}
	return err
}

// finishValue turns the collected text and markers of a closed element into its
// value.
func (m xmlMarks) finishValue(el *Element, text []byte, lim Limits) error {
	hasChildren := len(el.Children) > 0
	if hasChildren {
		if len(bytes.TrimSpace(text)) != 0 {
			return errors.New("element <" + el.Tag.Name() + "> mixes text and child elements")
		}
		if m.opaque || m.b64 || m.empty || m.ref || m.content {
			return errors.New("value attributes on <" + el.Tag.Name() + "> which has child elements")
		}
		return nil
	}
	switch {
	case m.opaque:
		v, err := decodeB64(text)
		if err != nil {
			return errors.New("opaque data of <" + el.Tag.Name() + ">: " + err.Error())
		}
		if len(v) > lim.MaxOpaqueLen {
			return &LimitError{Kind: LimitOpaqueLen, Max: lim.MaxOpaqueLen, Size: int64(len(v)), Offset: -1}
		}
		el.Kind, el.Value = OpaqueValue, v
	case m.empty:
		if len(text) != 0 {
			return errors.New("wbxml:empty on <" + el.Tag.Name() + "> which has text")
		}
		el.Kind, el.Value = StringValue, []byte{}
	case m.b64:
		v, err := decodeB64(text)
		if err != nil {
			return errors.New("base64 string of <" + el.Tag.Name() + ">: " + err.Error())
		}
		el.Kind, el.Value = StringValue, v
	case len(text) > 0:
		el.Kind, el.Value = StringValue, text
	case m.ref:
		return errors.New("wbxml:ref on <" + el.Tag.Name() + "> without text")
	}
	if el.Kind == StringValue && len(el.Value) > lim.MaxStringLen {
		return &LimitError{Kind: LimitStringLen, Max: lim.MaxStringLen, Size: int64(len(el.Value)), Offset: -1}
	}
	if m.ref {
		el.TableRef, el.Ref = true, m.refOff
	}
	if el.Kind != NoValue && m.content {
		return errors.New("wbxml:content on <" + el.Tag.Name() + "> which has a value")
	}
	return nil
}

func decodeB64(text []byte) ([]byte, error) {
	s := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\t' || r == '\r' {
			return -1
		}
		return r
	}, string(text))
	return base64.StdEncoding.DecodeString(s)
}

func xmlErr(dec *xml.Decoder, msg string) error {
	return &SyntaxError{Kind: SyntaxXML, Offset: int(dec.InputOffset()), Detail: msg}
}
