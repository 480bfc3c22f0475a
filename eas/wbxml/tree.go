package wbxml

import "io"

// ValueKind says what an Element holds besides child elements.
type ValueKind uint8

// Value kinds.
const (
	NoValue     ValueKind = iota // no string or opaque content
	StringValue                  // Value is a string (possibly empty)
	OpaqueValue                  // Value is opaque data
)

// Element is one node of a Document. An element holds either child elements
// or one value (a string or opaque data), never both: ActiveSync has no mixed
// content, and Parse rejects it with ErrMixedContent so that every parsed
// document re-encodes byte for byte.
//
// Elements of a parsed Document share storage with it; they may be modified
// freely, and new elements (from NewElement, NewText, NewOpaque) may be
// attached anywhere. Elements are not safe for concurrent modification.
type Element struct {
	Tag      Tag
	Children []*Element
	// Value is the element's string or opaque data, as Kind says. For a
	// parsed document it points into the document's private copy of the
	// input.
	Value []byte
	// Ref is the string-table offset of a string that was a STR_T
	// reference (TableRef). Encode writes the reference again as long as
	// the table entry still equals Value, and an inline string otherwise.
	Ref  uint32
	Kind ValueKind
	// HasContent forces the content bit for an element without children or
	// value: <t></t> encoded as tag|0x40, END rather than <t/>. Elements with
	// children or a value always get the content bit.
	HasContent bool
	// TableRef records that the string came from the string table at Ref.
	TableRef bool
	// Switch records a SWITCH_PAGE before the tag in the input even where
	// the page did not change; Encode reproduces it. Encode always switches
	// where the page changes, whatever Switch says.
	Switch bool
}

// NewElement returns an element with the given children.
func NewElement(t Tag, children ...*Element) *Element {
	return &Element{Tag: t, Children: children}
}

// NewText returns an element holding the string s.
func NewText(t Tag, s string) *Element {
	return &Element{Tag: t, Kind: StringValue, Value: []byte(s)}
}

// NewOpaque returns an element holding opaque data b (not copied).
func NewOpaque(t Tag, b []byte) *Element {
	return &Element{Tag: t, Kind: OpaqueValue, Value: b}
}

// Append adds children to e and returns e.
func (e *Element) Append(children ...*Element) *Element {
	e.Children = append(e.Children, children...)
	return e
}

// Find returns the first child of e with tag t, or nil. It is nil-safe, so
// lookups chain: doc.Root.Find(a).Find(b).
func (e *Element) Find(t Tag) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Tag == t {
			return c
		}
	}
	return nil
}

// FindAll returns the children of e with tag t, in order, in a new slice.
func (e *Element) FindAll(t Tag) []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if c.Tag == t {
			out = append(out, c)
		}
	}
	return out
}

// Path follows a chain of first children with the given tags and returns
// the element reached, or nil.
func (e *Element) Path(tags ...Tag) *Element {
	for _, t := range tags {
		e = e.Find(t)
	}
	return e
}

// Text returns the string value of e ("" for no value, opaque data or a nil
// element). It copies; use Value to avoid the copy.
func (e *Element) Text() string {
	if e == nil || e.Kind != StringValue {
		return ""
	}
	return string(e.Value)
}

// SetText replaces e's value with the string s and drops its children.
func (e *Element) SetText(s string) {
	e.Children = nil
	e.Kind = StringValue
	e.Value = []byte(s)
	e.TableRef = false
}

// SetOpaque replaces e's value with opaque data b (not copied) and drops its
// children.
func (e *Element) SetOpaque(b []byte) {
	e.Children = nil
	e.Kind = OpaqueValue
	e.Value = b
	e.TableRef = false
}

// Walk calls fn for e and its descendants in document order; when fn
// returns false the descendants of that element are skipped.
func (e *Element) Walk(fn func(*Element) bool) {
	if e == nil || !fn(e) {
		return
	}
	for _, c := range e.Children {
		c.Walk(fn)
	}
}

// Document is a parsed or constructed WBXML document: a header and one root
// element.
type Document struct {
	Header Header
	Root   *Element
}

// NewDocument returns a document with DefaultHeader and root.
func NewDocument(root *Element) *Document {
	return &Document{Header: DefaultHeader, Root: root}
}

// Parse decodes a whole document into a tree under the limits lim.
//
// Parse copies b once, so the Document does not alias b and b may be reused
// as soon as Parse returns. It validates the whole input before building the
// tree and then allocates the elements in one slab: a fixed number of
// allocations per document, independent of the element count.
//
// For every input Parse accepts, Encode returns exactly the bytes of b.
// Besides the decoder's errors, Parse rejects elements that mix text or
// opaque data with child elements, or hold more than one value
// (ErrMixedContent).
func Parse(b []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	var d Decoder
	d.lim = lim
	d.Reset(b)
	d.stack = make([]Tag, 0, min(lim.MaxDepth, 64))
	n := 0
	for {
		tok, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if tok.Kind == StartTag {
			n++
		}
	}
	own := make([]byte, len(b))
	copy(own, b)
	d.Reset(own)
	doc := &Document{}
	hdr, _ := d.Header()
	doc.Header = hdr

	elems := make([]Element, n)
	// One pointer slab: the first n slots become the Children slices (each
	// element is the child of exactly one parent, so n-1 suffice); the rest
	// is the stack of children whose parent is still open.
	ptrs := make([]*Element, 2*n)
	scratch := ptrs[n:n:len(ptrs)]
	used, pos := 0, 0
	type frame struct {
		el   *Element
		mark int
	}
	frames := make([]frame, 0, min(lim.MaxDepth, 64))
	for {
		tok, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok.Kind {
		case StartTag:
			el := &elems[used]
			used++
			el.Tag = tok.Tag
			el.Switch = tok.Switched
			el.HasContent = tok.HasContent
			if len(frames) > 0 {
				parent := frames[len(frames)-1].el
				if parent.Kind != NoValue {
					return nil, &SyntaxError{Kind: SyntaxMixedContent, Offset: tok.Offset}
				}
				scratch = append(scratch, el)
			} else {
				doc.Root = el
			}
			if tok.HasContent {
				frames = append(frames, frame{el: el, mark: len(scratch)})
			}
		case EndTag:
			f := frames[len(frames)-1]
			frames = frames[:len(frames)-1]
			k := len(scratch) - f.mark
			if k > 0 {
				copy(ptrs[pos:], scratch[f.mark:])
				f.el.Children = ptrs[pos : pos+k : pos+k]
				pos += k
				scratch = scratch[:f.mark]
			}
		case String, Opaque:
			f := frames[len(frames)-1]
			if f.el.Kind != NoValue || len(scratch) > f.mark {
				return nil, &SyntaxError{Kind: SyntaxMixedContent, Offset: tok.Offset}
			}
			if tok.Kind == String {
				f.el.Kind = StringValue
				f.el.TableRef = tok.TableRef
				f.el.Ref = tok.Ref
			} else {
				f.el.Kind = OpaqueValue
			}
			f.el.Value = tok.Data
		}
	}
	return doc, nil
}

// Encode appends the encoded document to dst and returns the extended
// buffer. It fails on a nil root, an invalid tag, an inline string with NUL
// or an element with both children and a value; dst is then returned
// unchanged with the error.
func (doc *Document) Encode(dst []byte) ([]byte, error) {
	if doc.Root == nil {
		return dst, &SyntaxError{Kind: SyntaxNoRoot, Offset: -1}
	}
	start := len(dst)
	enc := Encoder{buf: dst}
	enc.Header(doc.Header)
	if err := doc.encodeElement(&enc, doc.Root); err != nil {
		return dst[:start], err
	}
	if enc.err != nil {
		return dst[:start], enc.err
	}
	return enc.buf, nil
}

// WriteTo encodes the document to w.
func (doc *Document) WriteTo(w io.Writer) (int64, error) {
	b, err := doc.Encode(nil)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (doc *Document) encodeElement(enc *Encoder, el *Element) error {
	if el.Switch && el.Tag.Page() == enc.page {
		enc.SwitchPage(el.Tag.Page())
	}
	if len(el.Children) > 0 && el.Kind != NoValue {
		return &SyntaxError{Kind: SyntaxMixedContent, Offset: len(enc.buf), Detail: el.Tag.String()}
	}
	content := el.HasContent || len(el.Children) > 0 || el.Kind != NoValue
	enc.StartTag(el.Tag, content)
	if !content {
		return enc.err
	}
	switch el.Kind {
	case StringValue:
		if doc.refHolds(el) {
			enc.StringRef(el.Ref)
			break
		}
		enc.String(el.Value)
	case OpaqueValue:
		enc.Opaque(el.Value)
	}
	for _, c := range el.Children {
		if c == nil {
			continue
		}
		if err := doc.encodeElement(enc, c); err != nil {
			return err
		}
	}
	enc.EndTag()
	return enc.err
}
