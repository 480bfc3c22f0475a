package wbxml

import "bytes"

// AppendMbUint32 appends v as a WBXML mb_u_int32 (WBXML 1.3 section 5.1) in
// its minimal form, one to five bytes.
func AppendMbUint32(dst []byte, v uint32) []byte {
	switch {
	case v < 1<<7:
		return append(dst, byte(v))
	case v < 1<<14:
		return append(dst, byte(v>>7)|0x80, byte(v)&0x7F)
	case v < 1<<21:
		return append(dst, byte(v>>14)|0x80, byte(v>>7)|0x80, byte(v)&0x7F)
	case v < 1<<28:
		return append(dst, byte(v>>21)|0x80, byte(v>>14)|0x80, byte(v>>7)|0x80, byte(v)&0x7F)
	}
	return append(dst, byte(v>>28)|0x80, byte(v>>21)|0x80, byte(v>>14)|0x80, byte(v>>7)|0x80, byte(v)&0x7F)
}

// AppendHeader appends the encoded document header h to dst.
func AppendHeader(dst []byte, h *Header) []byte {
	dst = append(dst, h.Version)
	if h.PublicIDInTable {
		dst = append(dst, 0)
		dst = AppendMbUint32(dst, h.PublicIDIndex)
	} else {
		dst = AppendMbUint32(dst, h.PublicID)
	}
	if h.Version >= 0x01 {
		dst = AppendMbUint32(dst, h.Charset)
	}
	dst = AppendMbUint32(dst, uint32(len(h.StringTable)))
	return append(dst, h.StringTable...)
}

// Encoder appends a WBXML document to a caller-supplied buffer, switching
// code pages as tags require. Write the header first (Header), then exactly
// one root element.
//
// Misuse (an invalid tag, an inline string containing NUL, EndTag without an
// open element) records a sticky error returned by Err; the methods are then
// no-ops. The zero Encoder is ready to use with a nil buffer. An Encoder is
// not safe for concurrent use.
type Encoder struct {
	buf   []byte
	page  uint8
	depth int
	err   error
}

// NewEncoder returns an encoder appending to dst[:0]. The encoder owns dst
// until the caller takes the result with Bytes.
func NewEncoder(dst []byte) *Encoder {
	return &Encoder{buf: dst[:0]}
}

// Reset makes e append a new document to dst[:0], reusing its storage.
func (e *Encoder) Reset(dst []byte) {
	*e = Encoder{buf: dst[:0]}
}

// Header appends the document header and resets the code page to 0, as
// every WBXML body starts on page 0.
func (e *Encoder) Header(h Header) {
	if e.err != nil {
		return
	}
	e.buf = AppendHeader(e.buf, &h)
	e.page = 0
}

// SwitchPage appends a SWITCH_PAGE token even if p is the current page.
// StartTag switches pages by itself; SwitchPage exists to reproduce inputs
// that carry a redundant switch.
func (e *Encoder) SwitchPage(p uint8) {
	if e.err != nil {
		return
	}
	if p >= NumPages {
		e.err = &SyntaxError{Kind: SyntaxUnknownPage, Offset: len(e.buf)}
		return
	}
	e.buf = append(e.buf, 0x00, p)
	e.page = p
}

// StartTag appends tag t, preceded by a SWITCH_PAGE if t is on another page
// than the current one. With hasContent the element stays open until
// EndTag; without it the element is empty (<t/>) and must not be ended.
func (e *Encoder) StartTag(t Tag, hasContent bool) {
	if e.err != nil {
		return
	}
	if !t.Valid() {
		e.err = &SyntaxError{Kind: SyntaxInvalidTag, Offset: len(e.buf), Detail: t.String()}
		return
	}
	if t.Page() != e.page {
		e.buf = append(e.buf, 0x00, t.Page())
		e.page = t.Page()
	}
	b := t.Token()
	if hasContent {
		b |= 0x40
		e.depth++
	}
	e.buf = append(e.buf, b)
}

// EndTag closes the innermost element opened with content.
func (e *Encoder) EndTag() {
	if e.err != nil {
		return
	}
	if e.depth == 0 {
		e.err = &SyntaxError{Kind: SyntaxUnbalanced, Offset: len(e.buf)}
		return
	}
	e.depth--
	e.buf = append(e.buf, 0x01)
}

// String appends s as an inline string (STR_I). s must not contain NUL.
func (e *Encoder) String(s []byte) {
	if e.err != nil {
		return
	}
	if bytes.IndexByte(s, 0) >= 0 {
		e.err = &SyntaxError{Kind: SyntaxNUL, Offset: len(e.buf)}
		return
	}
	e.buf = append(e.buf, 0x03)
	e.buf = append(e.buf, s...)
	e.buf = append(e.buf, 0x00)
}

// StringRef appends a reference (STR_T) to the string-table entry at
// offset off. The encoder does not know the table; Document.Encode checks
// references before writing them.
func (e *Encoder) StringRef(off uint32) {
	if e.err != nil {
		return
	}
	e.buf = append(e.buf, 0x83)
	e.buf = AppendMbUint32(e.buf, off)
}

// Opaque appends b as opaque data (OPAQUE).
func (e *Encoder) Opaque(b []byte) {
	if e.err != nil {
		return
	}
	e.buf = append(e.buf, 0xC3)
	e.buf = AppendMbUint32(e.buf, uint32(len(b)))
	e.buf = append(e.buf, b...)
}

// TextElement appends <t>s</t>: a tag with content, an inline string, END.
func (e *Encoder) TextElement(t Tag, s []byte) {
	e.StartTag(t, true)
	e.String(s)
	e.EndTag()
}

// OpaqueElement appends a tag with content, opaque data b, END.
func (e *Encoder) OpaqueElement(t Tag, b []byte) {
	e.StartTag(t, true)
	e.Opaque(b)
	e.EndTag()
}

// Depth returns the number of elements opened and not yet ended.
func (e *Encoder) Depth() int { return e.depth }

// Bytes returns the encoded document. It aliases the encoder's buffer: it
// stays valid until the next method call on e.
func (e *Encoder) Bytes() []byte { return e.buf }

// Err returns the first misuse error, or nil.
func (e *Encoder) Err() error { return e.err }
