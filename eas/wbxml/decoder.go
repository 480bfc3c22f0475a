package wbxml

import (
	"bytes"
	"io"
	"strconv"
)

// Kind is the kind of a Token.
type Kind uint8

// Token kinds.
const (
	StartTag Kind = iota + 1 // an element starts; Tag, HasContent and Switched are set
	EndTag                   // the innermost open element ends; Tag is set
	String                   // a string (STR_I or STR_T); Data, TableRef and Ref are set
	Opaque                   // opaque data; Data is set
)

func (k Kind) String() string {
	switch k {
	case StartTag:
		return "StartTag"
	case EndTag:
		return "EndTag"
	case String:
		return "String"
	case Opaque:
		return "Opaque"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Token is one WBXML body token (WBXML 1.3 section 5.8).
//
// Data aliases the buffer given to NewDecoder or Reset: it is valid only as
// long as that buffer is neither modified nor reused. Copy it to keep it.
type Token struct {
	Kind Kind
	// Tag is the element of a StartTag or EndTag token.
	Tag Tag
	// HasContent is the content bit of a StartTag: the element has content
	// and is closed by an END token (an EndTag token), possibly with no
	// content in between. Without it the element is empty and no EndTag
	// token follows.
	HasContent bool
	// Switched reports that a SWITCH_PAGE token preceded the StartTag, even
	// if it switched to the page already in force.
	Switched bool
	// TableRef reports that a String token was a STR_T reference to the
	// string table at offset Ref, rather than an inline STR_I string.
	TableRef bool
	Ref      uint32
	// Data is the string (without its NUL terminator) or the opaque data.
	Data []byte
	// Offset is the byte offset of the token (of its SWITCH_PAGE, if any)
	// in the input.
	Offset int
}

// Header is the WBXML document header (WBXML 1.3 section 5.4).
type Header struct {
	// Version is the WBXML version byte: 0x03 for WBXML 1.3, which every
	// ActiveSync peer sends. Versions 0x00 through 0x03 are accepted; 1.0
	// (0x00) has no charset field.
	Version uint8
	// PublicID is the document type public identifier; ActiveSync sends 1
	// ("unknown"). When PublicIDInTable is set, the identifier is instead the
	// string at offset PublicIDIndex of StringTable.
	PublicID        uint32
	PublicIDInTable bool
	PublicIDIndex   uint32
	// Charset is the IANA MIBenum of the string encoding; 106 is UTF-8.
	// The codec passes bytes through unchanged whatever the charset.
	Charset uint32
	// StringTable is the raw string table. In a Decoder's Header it aliases
	// the input buffer.
	StringTable []byte
}

// DefaultHeader is the header every ActiveSync peer sends: WBXML 1.3,
// unknown public identifier, UTF-8, empty string table (03 01 6A 00).
var DefaultHeader = Header{Version: 0x03, PublicID: 1, Charset: 106}

// tableString returns the string-table entry at offset off, without its
// NUL; false if off is outside the table or the entry has no NUL.
func (h *Header) tableString(off uint32) ([]byte, bool) {
	if uint64(off) >= uint64(len(h.StringTable)) {
		return nil, false
	}
	s := h.StringTable[off:]
	i := bytes.IndexByte(s, 0)
	if i < 0 {
		return nil, false
	}
	return s[:i], true
}

// Decoder reads WBXML tokens from a complete document held in memory, as EAS
// request and response bodies arrive whole. It does not allocate per token:
// Token.Data aliases the input.
//
// Errors are sticky: once Next returns an error other than io.EOF, every
// later call returns the same error. A Decoder is not safe for concurrent
// use; reuse one with Reset.
type Decoder struct {
	buf      []byte
	pos      int
	lim      Limits
	hdr      Header
	hdrDone  bool
	hdrOK    bool
	page     uint8
	stack    []Tag
	sawRoot  bool
	rootDone bool
	err      error
}

// NewDecoder returns a decoder reading the document b under the limits lim
// (zero fields take DefaultLimits values). The decoder aliases b; the caller
// must not modify b while using the decoder or the tokens it returned.
func NewDecoder(b []byte, lim Limits) *Decoder {
	d := &Decoder{}
	d.lim = lim.withDefaults()
	d.Reset(b)
	return d
}

// Reset makes d read the document b, keeping its limits and reusing its
// internal buffers.
func (d *Decoder) Reset(b []byte) {
	*d = Decoder{buf: b, lim: d.lim, stack: d.stack[:0]}
	if d.lim.MaxDepth == 0 {
		d.lim = DefaultLimits
	}
}

// SetLimits replaces the decoder's limits; call it before the first Next.
func (d *Decoder) SetLimits(lim Limits) { d.lim = lim.withDefaults() }

// Header parses (if Next has not yet done so) and returns the document
// header. Its StringTable aliases the input.
func (d *Decoder) Header() (Header, error) {
	if !d.hdrDone && d.err == nil {
		d.readHeader()
	}
	if !d.hdrOK {
		return Header{}, d.err
	}
	return d.hdr, nil
}

// Depth returns the number of open elements.
func (d *Decoder) Depth() int { return len(d.stack) }

// Offset returns the offset of the next unread byte.
func (d *Decoder) Offset() int { return d.pos }

// Err returns the sticky error, or nil.
func (d *Decoder) Err() error { return d.err }

func (d *Decoder) fail(kind SyntaxKind, off int, detail string) {
	if d.err == nil {
		d.err = &SyntaxError{Kind: kind, Offset: off, Detail: detail}
	}
}

func (d *Decoder) failLimit(kind LimitKind, max int, size int64, off int) {
	if d.err == nil {
		d.err = &LimitError{Kind: kind, Max: max, Size: size, Offset: off}
	}
}

// readMb reads a WBXML mb_u_int32 (WBXML 1.3 section 5.1): at most five
// bytes, value at most 2^32-1, and no leading 0x80 (a non-minimal encoding
// would break byte-exact round trips).
func (d *Decoder) readMb() (uint32, bool) {
	start := d.pos
	var v uint64
	for i := 0; i < 5; i++ {
		if d.pos >= len(d.buf) {
			d.fail(SyntaxTruncated, start, "inside multi-byte integer")
			return 0, false
		}
		c := d.buf[d.pos]
		d.pos++
		if i == 0 && c == 0x80 {
			d.fail(SyntaxMbUint32, start, "non-minimal encoding")
			return 0, false
		}
		v = v<<7 | uint64(c&0x7F)
		if c&0x80 == 0 {
			if v > 0xFFFFFFFF {
				d.fail(SyntaxMbUint32, start, "overflows 32 bits")
				return 0, false
			}
			return uint32(v), true
		}
	}
	d.fail(SyntaxMbUint32, start, "longer than 5 bytes")
	return 0, false
}

func (d *Decoder) readHeader() bool {
	d.hdrDone = true
	if len(d.buf) > d.lim.MaxDocumentSize {
		d.failLimit(LimitDocumentSize, d.lim.MaxDocumentSize, int64(len(d.buf)), 0)
		return false
	}
	if len(d.buf) == 0 {
		d.fail(SyntaxTruncated, 0, "empty document")
		return false
	}
	h := &d.hdr
	h.Version = d.buf[0]
	d.pos = 1
	if h.Version > 0x03 {
		d.fail(SyntaxVersion, 0, "0x"+strconv.FormatUint(uint64(h.Version), 16))
		return false
	}
	pid, ok := d.readMb()
	if !ok {
		return false
	}
	if pid == 0 {
		h.PublicIDInTable = true
		if h.PublicIDIndex, ok = d.readMb(); !ok {
			return false
		}
	} else {
		h.PublicID = pid
	}
	if h.Version >= 0x01 {
		if h.Charset, ok = d.readMb(); !ok {
			return false
		}
	}
	off := d.pos
	n, ok := d.readMb()
	if !ok {
		return false
	}
	if uint64(n) > uint64(d.lim.MaxStringTable) {
		d.failLimit(LimitStringTable, d.lim.MaxStringTable, int64(n), off)
		return false
	}
	if uint64(n) > uint64(len(d.buf)-d.pos) {
		d.fail(SyntaxTruncated, off, "string table longer than document")
		return false
	}
	h.StringTable = d.buf[d.pos : d.pos+int(n) : d.pos+int(n)]
	d.pos += int(n)
	if h.PublicIDInTable {
		if _, ok := h.tableString(h.PublicIDIndex); !ok {
			d.fail(SyntaxStringRef, off, "public identifier index")
			return false
		}
	}
	d.hdrOK = true
	return true
}

// Next returns the next token. At the end of a well-formed document it
// returns io.EOF. Any other error is a *SyntaxError or *LimitError and is
// returned again by every later call.
func (d *Decoder) Next() (Token, error) {
	if d.err != nil {
		return Token{}, d.err
	}
	if !d.hdrDone && !d.readHeader() {
		return Token{}, d.err
	}
	if d.pos >= len(d.buf) {
		switch {
		case d.rootDone:
			d.err = io.EOF
		case !d.sawRoot:
			d.fail(SyntaxNoRoot, d.pos, "")
		default:
			d.fail(SyntaxTruncated, d.pos, strconv.Itoa(len(d.stack))+" open elements")
		}
		return Token{}, d.err
	}
	if d.rootDone {
		d.fail(SyntaxTrailing, d.pos, "")
		return Token{}, d.err
	}
	off := d.pos
	b := d.buf[d.pos]
	switched := false
	if b == 0x00 { // SWITCH_PAGE
		if d.pos+1 >= len(d.buf) {
			d.fail(SyntaxTruncated, off, "inside SWITCH_PAGE")
			return Token{}, d.err
		}
		p := d.buf[d.pos+1]
		if p >= NumPages {
			d.fail(SyntaxUnknownPage, off, strconv.Itoa(int(p)))
			return Token{}, d.err
		}
		d.page = p
		d.pos += 2
		switched = true
		if d.pos >= len(d.buf) {
			d.fail(SyntaxTruncated, off, "after SWITCH_PAGE")
			return Token{}, d.err
		}
		b = d.buf[d.pos]
		if b&0x3F < 0x05 && !isRejectedGlobal(b) {
			d.fail(SyntaxSwitchPage, d.pos, "")
			return Token{}, d.err
		}
	}
	if b&0x3F >= 0x05 { // a tag
		if b&0x80 != 0 {
			d.fail(SyntaxAttribute, d.pos, "tag 0x"+strconv.FormatUint(uint64(b), 16))
			return Token{}, d.err
		}
		d.sawRoot = true
		d.pos++
		t := Tag(d.page)<<8 | Tag(b&0x3F)
		content := b&0x40 != 0
		if content {
			if len(d.stack) >= d.lim.MaxDepth {
				d.failLimit(LimitDepth, d.lim.MaxDepth, int64(len(d.stack)+1), off)
				return Token{}, d.err
			}
			d.stack = append(d.stack, t)
		} else if len(d.stack) == 0 {
			d.rootDone = true
		}
		return Token{Kind: StartTag, Tag: t, HasContent: content, Switched: switched, Offset: off}, nil
	}
	switch b {
	case 0x01: // END
		if len(d.stack) == 0 {
			d.fail(SyntaxUnbalanced, off, "")
			return Token{}, d.err
		}
		d.pos++
		t := d.stack[len(d.stack)-1]
		d.stack = d.stack[:len(d.stack)-1]
		if len(d.stack) == 0 {
			d.rootDone = true
		}
		return Token{Kind: EndTag, Tag: t, Offset: off}, nil
	case 0x03: // STR_I
		if len(d.stack) == 0 {
			d.fail(SyntaxMisplaced, off, "string")
			return Token{}, d.err
		}
		rest := d.buf[d.pos+1:]
		window := rest
		if len(window) > d.lim.MaxStringLen+1 {
			window = window[:d.lim.MaxStringLen+1]
		}
		i := bytes.IndexByte(window, 0)
		if i < 0 {
			if len(window) > d.lim.MaxStringLen {
				d.failLimit(LimitStringLen, d.lim.MaxStringLen, int64(len(window)), off)
			} else {
				d.fail(SyntaxUnterminated, off, "")
			}
			return Token{}, d.err
		}
		d.pos += 1 + i + 1
		return Token{Kind: String, Data: rest[:i:i], Offset: off}, nil
	case 0x83: // STR_T
		if len(d.stack) == 0 {
			d.fail(SyntaxMisplaced, off, "string reference")
			return Token{}, d.err
		}
		d.pos++
		ref, ok := d.readMb()
		if !ok {
			return Token{}, d.err
		}
		s, ok := d.hdr.tableString(ref)
		if !ok {
			d.fail(SyntaxStringRef, off, "offset "+strconv.FormatUint(uint64(ref), 10))
			return Token{}, d.err
		}
		if len(s) > d.lim.MaxStringLen {
			d.failLimit(LimitStringLen, d.lim.MaxStringLen, int64(len(s)), off)
			return Token{}, d.err
		}
		return Token{Kind: String, Data: s[:len(s):len(s)], TableRef: true, Ref: ref, Offset: off}, nil
	case 0xC3: // OPAQUE
		if len(d.stack) == 0 {
			d.fail(SyntaxMisplaced, off, "opaque")
			return Token{}, d.err
		}
		d.pos++
		n, ok := d.readMb()
		if !ok {
			return Token{}, d.err
		}
		if uint64(n) > uint64(d.lim.MaxOpaqueLen) {
			d.failLimit(LimitOpaqueLen, d.lim.MaxOpaqueLen, int64(n), off)
			return Token{}, d.err
		}
		if uint64(n) > uint64(len(d.buf)-d.pos) {
			d.fail(SyntaxTruncated, off, "opaque longer than document")
			return Token{}, d.err
		}
		data := d.buf[d.pos : d.pos+int(n) : d.pos+int(n)]
		d.pos += int(n)
		return Token{Kind: Opaque, Data: data, Offset: off}, nil
	case 0x02:
		d.fail(SyntaxEntity, off, "")
	case 0x43:
		d.fail(SyntaxPI, off, "")
	case 0x04, 0x44, 0x84, 0xC4:
		d.fail(SyntaxLiteral, off, "")
	case 0x40, 0x41, 0x42, 0x80, 0x81, 0x82, 0xC0, 0xC1, 0xC2:
		d.fail(SyntaxExtension, off, "")
	default: // 0x00 after SWITCH_PAGE
		d.fail(SyntaxSwitchPage, off, "")
	}
	return Token{}, d.err
}

// isRejectedGlobal reports global tokens that get their own, more specific
// error even right after a SWITCH_PAGE (attribute-space tokens are rejected
// as such wherever they appear).
func isRejectedGlobal(b byte) bool {
	switch b {
	case 0x02, 0x04, 0x40, 0x41, 0x42, 0x43, 0x44, 0x80, 0x81, 0x82, 0x84, 0xC0, 0xC1, 0xC2, 0xC4:
		return true
	}
	return false
}

// Skip consumes tokens up to and including the EndTag of the element whose
// StartTag (with HasContent) was the last token returned. Well-formed content is
// walked without building tokens (see skipFast); the result, the position and
// any error are exactly those of calling Next until that EndTag.
func (d *Decoder) Skip() error {
	depth := len(d.stack)
	if d.err == nil && d.hdrDone && depth > 0 {
		d.skipFast(depth)
		if len(d.stack) < depth {
			return nil
		}
	}
	for {
		tok, err := d.Next()
		if err != nil {
			return err // io.EOF cannot occur while an element is open
		}
		if tok.Kind == EndTag && len(d.stack) < depth {
			return nil
		}
	}
}

// skipFast is Skip's fast path. It walks the tokens that make up well-formed EAS
// content — tags without attributes (after an optional SWITCH_PAGE), END and
// inline strings — updating position, code page and element stack as Next
// would, and stops at the end of the element open at depth, or at the first
// token it does not handle (string references, opaque data, anything Next
// refuses, a limit about to be exceeded), leaving the decoder exactly where
// Next resumes and reports it.
func (d *Decoder) skipFast(depth int) {
	buf, pos, page, stack := d.buf, d.pos, d.page, d.stack
loop:
	for pos < len(buf) {
		b, p, n := buf[pos], page, pos
		if b == 0x00 { // SWITCH_PAGE: only before a plain tag
			if pos+2 >= len(buf) || buf[pos+1] >= NumPages {
				break
			}
			p, n = buf[pos+1], pos+2
			b = buf[n]
			if b&0x3F < 0x05 || b&0x80 != 0 {
				break
			}
		}
		switch {
		case b&0x3F >= 0x05 && b&0x80 == 0: // a tag without attributes
			if b&0x40 != 0 {
				if len(stack) >= d.lim.MaxDepth {
					break loop
				}
				stack = append(stack, Tag(p)<<8|Tag(b&0x3F))
			}
			page, pos = p, n+1
		case b == 0x01: // END
			if len(stack) == 0 {
				break loop
			}
			stack = stack[:len(stack)-1]
			pos++
			if len(stack) == 0 {
				d.rootDone = true
			}
			if len(stack) < depth {
				break loop
			}
		case b == 0x03: // STR_I
			window := buf[pos+1:]
			if len(window) > d.lim.MaxStringLen+1 {
				window = window[:d.lim.MaxStringLen+1]
			}
			i := bytes.IndexByte(window, 0)
			if i < 0 {
				break loop
			}
			pos += 1 + i + 1
		default:
			break loop
		}
	}
	d.pos, d.page, d.stack = pos, page, stack
}
