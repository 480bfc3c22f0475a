package eas

import (
	"strconv"

	"github.com/easgate/easgate/eas/wbxml"
)

// Errors of typed bodies.
var (
	ErrInvalidWBXML = newErr(400, StatusInvalidWBXML, "request body is not valid WBXML")
	ErrInvalidBody  = newErr(400, StatusInvalidXML, "request body does not follow the command's schema")
)

// ParseBody decodes a WBXML command body under lim (zero fields: wbxml.DefaultLimits).
// Malformed input is ErrInvalidWBXML, with the codec's error in the message.
func ParseBody(b []byte, lim wbxml.Limits) (*wbxml.Document, error) {
	doc, err := wbxml.Parse(b, lim)
	if err != nil {
		return nil, ErrInvalidWBXML.detail(err.Error())
	}
	return doc, nil
}

// source remembers the document a typed body was parsed from.
type source struct {
	hdr    wbxml.Header
	hasHdr bool
}

func (s *source) set(doc *wbxml.Document) { s.hdr, s.hasHdr = doc.Header, true }

func (s *source) document(root *wbxml.Element) *wbxml.Document {
	if s.hasHdr {
		return &wbxml.Document{Header: s.hdr, Root: root}
	}
	return wbxml.NewDocument(root)
}

func rootOf(doc *wbxml.Document, t wbxml.Tag) (*wbxml.Element, error) {
	if doc == nil || doc.Root == nil {
		return nil, ErrInvalidBody.detail("no root element")
	}
	if doc.Root.Tag != t {
		return nil, ErrInvalidBody.detail("root is " + doc.Root.Tag.String() + ", want " + t.String())
	}
	return doc.Root, nil
}

func elemOr(e *wbxml.Element, t wbxml.Tag) *wbxml.Element {
	if e != nil {
		return e
	}
	return wbxml.NewElement(t)
}

// text returns the string value of e's first child with tag t.
func text(e *wbxml.Element, t wbxml.Tag) string { return e.Find(t).Text() }

func has(e *wbxml.Element, t wbxml.Tag) bool { return e.Find(t) != nil }

func index(e *wbxml.Element, c *wbxml.Element) int {
	for i, x := range e.Children {
		if x == c {
			return i
		}
	}
	return -1
}

func remove(e *wbxml.Element, t wbxml.Tag) {
	out := e.Children[:0]
	for _, c := range e.Children {
		if c.Tag != t {
			out = append(out, c)
		}
	}
	for i := len(out); i < len(e.Children); i++ {
		e.Children[i] = nil
	}
	e.Children = out
}

// setText makes e's child t hold s, creating it at the end if needed. "" removes it,
// unless it is present and already reads as "" (empty, opaque, or with children the typed
// view does not model): what reads unchanged is left as received.
func setText(e *wbxml.Element, t wbxml.Tag, s string) {
	if s == "" {
		if c := e.Find(t); c != nil && c.Text() == "" {
			return
		}
		remove(e, t)
		return
	}
	setTextPresent(e, t, s)
}

// setTextPresent makes e's child t exist and hold s (possibly empty).
func setTextPresent(e *wbxml.Element, t wbxml.Tag, s string) {
	c := e.Find(t)
	if c == nil && s == "" {
		e.Append(wbxml.NewElement(t))
		return
	}
	if c == nil {
		e.Append(wbxml.NewText(t, s))
		return
	}
	if c.Kind == wbxml.StringValue && string(c.Value) == s && len(c.Children) == 0 {
		return
	}
	if s == "" {
		if c.Kind == wbxml.NoValue && len(c.Children) == 0 {
			return
		}
		nc := wbxml.NewElement(t)
		nc.Switch = c.Switch
		e.Children[index(e, c)] = nc
		return
	}
	c.SetText(s)
}

// setFlag makes e's empty child t present or absent (e.g. GetChanges, DeletesAsMoves as
// flags, RemoteWipe).
func setFlag(e *wbxml.Element, t wbxml.Tag, on bool) {
	if !on {
		remove(e, t)
		return
	}
	if !has(e, t) {
		e.Append(wbxml.NewElement(t))
	}
}

// setChild replaces e's first child with tag t by c (appending if absent); nil removes.
func setChild(e *wbxml.Element, t wbxml.Tag, c *wbxml.Element) {
	if c == nil {
		remove(e, t)
		return
	}
	if old := e.Find(t); old != nil {
		if old != c {
			e.Children[index(e, old)] = c
		}
		return
	}
	e.Append(c)
}

// setList replaces all children with tag t by list (see replaceMatching).
func setList(e *wbxml.Element, t wbxml.Tag, list []*wbxml.Element) {
	replaceMatching(e, func(x wbxml.Tag) bool { return x == t }, list)
}

func parseStatus(e *wbxml.Element, t wbxml.Tag) (Status, error) {
	c := e.Find(t)
	if c == nil {
		return 0, nil
	}
	n, err := strconv.ParseUint(c.Text(), 10, 16)
	if err != nil {
		return 0, ErrInvalidBody.detail("status " + strconv.Quote(c.Text()))
	}
	return Status(n), nil
}

func setStatus(e *wbxml.Element, t wbxml.Tag, s Status) {
	if c := e.Find(t); c != nil {
		if cur, err := parseStatus(e, t); err == nil && cur == s {
			return
		}
	}
	if s == 0 {
		remove(e, t)
		return
	}
	setText(e, t, strconv.Itoa(int(s)))
}

// optInt reads an optional integer child: nil when absent; an empty element is NoLimit.
func optInt(e *wbxml.Element, t wbxml.Tag) (*int64, error) {
	c := e.Find(t)
	if c == nil {
		return nil, nil
	}
	s := c.Text()
	if s == "" {
		v := NoLimit
		return &v, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, ErrInvalidBody.detail(t.String() + " " + strconv.Quote(s))
	}
	return &n, nil
}

// NoLimit is the value of an integer element sent empty, which MS-ASPROV uses for "no
// limit" (e.g. an empty MaxAttachmentSize). Written back, NoLimit is an empty element
// unless the source element already said -1.
const NoLimit int64 = -1

func setOptInt(e *wbxml.Element, t wbxml.Tag, v *int64) {
	if v == nil {
		remove(e, t)
		return
	}
	if cur, err := optInt(e, t); err == nil && cur != nil && *cur == *v {
		return
	}
	if *v == NoLimit {
		setTextPresent(e, t, "")
		return
	}
	setTextPresent(e, t, strconv.FormatInt(*v, 10))
}

// optBool reads an optional 0/1 child.
func optBool(e *wbxml.Element, t wbxml.Tag) (*bool, error) {
	c := e.Find(t)
	if c == nil {
		return nil, nil
	}
	switch c.Text() {
	case "1", "true":
		v := true
		return &v, nil
	case "0", "false", "":
		v := false
		return &v, nil
	}
	return nil, ErrInvalidBody.detail(t.String() + " " + strconv.Quote(c.Text()))
}

func setOptBool(e *wbxml.Element, t wbxml.Tag, v *bool) {
	if v == nil {
		remove(e, t)
		return
	}
	if cur, err := optBool(e, t); err == nil && cur != nil && *cur == *v {
		return
	}
	if *v {
		setTextPresent(e, t, "1")
	} else {
		setTextPresent(e, t, "0")
	}
}

// Ptr returns a pointer to v, for the optional fields of typed bodies.
func Ptr[T any](v T) *T { return &v }

// firstErr keeps the first error of a sequence of reads.
type firstErr struct{ err error }

func (f *firstErr) int(e *wbxml.Element, t wbxml.Tag) *int64 {
	v, err := optInt(e, t)
	f.keep(err)
	return v
}

func (f *firstErr) bool(e *wbxml.Element, t wbxml.Tag) *bool {
	v, err := optBool(e, t)
	f.keep(err)
	return v
}

func (f *firstErr) status(e *wbxml.Element, t wbxml.Tag) Status {
	v, err := parseStatus(e, t)
	f.keep(err)
	return v
}

func (f *firstErr) keep(err error) {
	if f.err == nil && err != nil {
		f.err = err
	}
}

// replaceMatching replaces the children of e for which match is true by items. When the
// number is unchanged each item takes the place of the old one, so unrelated children keep
// their positions; otherwise the items go where the first old one was (or at the end).
func replaceMatching(e *wbxml.Element, match func(wbxml.Tag) bool, items []*wbxml.Element) {
	var pos []int
	for i, c := range e.Children {
		if match(c.Tag) {
			pos = append(pos, i)
		}
	}
	if len(pos) == len(items) {
		for i, p := range pos {
			e.Children[p] = items[i]
		}
		return
	}
	at := len(e.Children)
	if len(pos) > 0 {
		at = pos[0]
	}
	out := make([]*wbxml.Element, 0, len(e.Children)-len(pos)+len(items))
	for i, c := range e.Children {
		if i == at {
			out = append(out, items...)
		}
		if !match(c.Tag) {
			out = append(out, c)
		}
	}
	if at == len(e.Children) {
		out = append(out, items...)
	}
	e.Children = out
}
