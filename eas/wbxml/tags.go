package wbxml

//go:generate go run gen.go -input codepages.txt -output tables.go

import (
	"strconv"
	"strings"
)

// Tag identifies an element: its code page in the high byte and its token
// (0x05..0x3F, WBXML 1.3 section 5.8.2) in the low byte. The zero Tag is not
// a valid element.
//
// Tags are plain values, safe to copy and compare. A Tag whose token is not
// assigned on its page (for example a token added by a newer protocol version
// than the one codepages.txt describes) is still a valid, anonymous Tag: it
// decodes, encodes and round-trips, but Name returns "".
type Tag uint16

// MakeTag returns the tag for token on code page page. It does not check
// that the token is assigned; see Tag.Valid.
func MakeTag(page, token uint8) Tag { return Tag(page)<<8 | Tag(token) }

// Page returns the code page number.
func (t Tag) Page() uint8 { return uint8(t >> 8) }

// Token returns the tag token without the content and attribute bits.
func (t Tag) Token() uint8 { return uint8(t) }

// Valid reports whether t can be encoded: its page is one of the NumPages
// MS-ASWBXML code pages and its token is in 0x05..0x3F.
func (t Tag) Valid() bool {
	return t.Page() < NumPages && t.Token() >= 0x05 && t.Token() <= 0x3F
}

// Known reports whether t is assigned a name in MS-ASWBXML.
func (t Tag) Known() bool { return t.Valid() && pageTable[t.Page()].names[t.Token()] != "" }

// Name returns the MS-ASWBXML tag name, or "" for an unassigned token.
func (t Tag) Name() string {
	if !t.Valid() {
		return ""
	}
	return pageTable[t.Page()].names[t.Token()]
}

// PageName returns the MS-ASWBXML name of the tag's code page ("AirSync",
// "FolderHierarchy", ...), or "" for a page beyond NumPages.
func (t Tag) PageName() string { return PageName(t.Page()) }

// Namespace returns the XML namespace of the tag's code page as MS-ASCMD
// examples write it ("AirSync:", "FolderHierarchy:", ...).
func (t Tag) Namespace() string { return PageNamespace(t.Page()) }

// Since returns the first ActiveSync protocol version that defines the tag
// according to codepages.txt, or "" when the tag exists in every version
// (2.5 through 16.1) or is unknown.
func (t Tag) Since() string {
	if !t.Valid() {
		return ""
	}
	return pageTable[t.Page()].since[t.Token()]
}

// String returns "Page:Name" ("AirSync:Sync"), or "Page:0xNN" for an
// unassigned token, or "Tag(0xpptt)" for an invalid tag.
func (t Tag) String() string {
	if !t.Valid() {
		return "Tag(0x" + strconv.FormatUint(uint64(t)|0x10000, 16)[1:] + ")"
	}
	if n := t.Name(); n != "" {
		return PageName(t.Page()) + ":" + n
	}
	return PageName(t.Page()) + ":" + hexToken(t.Token())
}

func hexToken(tok uint8) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{'0', 'x', digits[tok>>4], digits[tok&0xF]})
}

// PageName returns the MS-ASWBXML name of code page p, or "" if p is not one
// of the NumPages pages.
func PageName(p uint8) string {
	if p >= NumPages {
		return ""
	}
	return pageTable[p].name
}

// PageNamespace returns the XML namespace of code page p as MS-ASCMD writes
// it, with its trailing colon ("AirSync:"), or "" for an unknown page.
func PageNamespace(p uint8) string {
	if p >= NumPages {
		return ""
	}
	return pageTable[p].namespace
}

// PageByNamespace returns the code page whose namespace is ns. It accepts the
// MS-ASCMD form with a trailing colon ("Email:"), the MS-ASWBXML form
// without it ("Email"), and is case-insensitive, as namespaces in captured
// traffic and in libwbxml's output vary in case ("POOMMAIL:" aside).
func PageByNamespace(ns string) (uint8, bool) {
	ns = strings.TrimSuffix(ns, ":")
	for i := range pageTable {
		if strings.EqualFold(pageTable[i].name, ns) {
			return uint8(i), true
		}
	}
	return 0, false
}

// Lookup returns the tag named name in the code page whose namespace is ns
// (see PageByNamespace for the accepted spellings). Names of unassigned
// tokens, as String and the XML form write them ("0x2B", "_0x2B"), are
// accepted too.
func Lookup(ns, name string) (Tag, bool) {
	p, ok := PageByNamespace(ns)
	if !ok {
		return 0, false
	}
	return LookupInPage(p, name)
}

// LookupInPage returns the tag named name on code page p.
func LookupInPage(p uint8, name string) (Tag, bool) {
	if p >= NumPages {
		return 0, false
	}
	if t, ok := tagByName[pageTable[p].name+":"+name]; ok {
		return t, true
	}
	if tok, ok := parseHexToken(name); ok {
		return MakeTag(p, tok), true
	}
	return 0, false
}

func parseHexToken(s string) (uint8, bool) {
	s = strings.TrimPrefix(s, "_")
	if len(s) != 4 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return 0, false
	}
	v, err := strconv.ParseUint(s[2:], 16, 8)
	if err != nil || v < 0x05 || v > 0x3F {
		return 0, false
	}
	return uint8(v), true
}

type pageInfo struct {
	name      string
	namespace string
	names     [64]string
	since     [64]string
}
