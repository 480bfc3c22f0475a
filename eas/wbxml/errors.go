package wbxml

import (
	"errors"
	"strconv"
)

// Limits bound what a Decoder, Parse and FromXML accept, so that a hostile
// peer cannot make the gateway spend unbounded memory or time. A zero field
// means "use the DefaultLimits value"; there is no "unlimited".
//
// Each limit has its own error: a *LimitError that errors.Is matches against
// ErrDocumentSize, ErrDepth, ErrStringLength, ErrOpaqueLength or
// ErrStringTable.
type Limits struct {
	// MaxDocumentSize is the largest accepted encoded document, in bytes.
	// Default 32 MiB, above the largest SendMail/ItemOperations bodies
	// Exchange accepts by default (maxRequestLength 10-35 MB).
	MaxDocumentSize int
	// MaxDepth is the deepest accepted element nesting. Default 64; the
	// deepest MS-ASCMD structure (a Sync with calendar exceptions and
	// attendees) is about 12 levels.
	MaxDepth int
	// MaxStringLen is the longest accepted string, inline or from the string
	// table, in bytes. Default 32 MiB (a SendMail Mime sent as a string).
	MaxStringLen int
	// MaxOpaqueLen is the longest accepted opaque datum, in bytes.
	// Default 32 MiB.
	MaxOpaqueLen int
	// MaxStringTable is the largest accepted string table, in bytes.
	// Default 64 KiB; EAS peers send an empty table.
	MaxStringTable int
}

// DefaultLimits are the limits used for zero fields of a Limits value.
var DefaultLimits = Limits{
	MaxDocumentSize: 32 << 20,
	MaxDepth:        64,
	MaxStringLen:    32 << 20,
	MaxOpaqueLen:    32 << 20,
	MaxStringTable:  64 << 10,
}

func (l Limits) withDefaults() Limits {
	if l.MaxDocumentSize <= 0 {
		l.MaxDocumentSize = DefaultLimits.MaxDocumentSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxStringLen <= 0 {
		l.MaxStringLen = DefaultLimits.MaxStringLen
	}
	if l.MaxOpaqueLen <= 0 {
		l.MaxOpaqueLen = DefaultLimits.MaxOpaqueLen
	}
	if l.MaxStringTable <= 0 {
		l.MaxStringTable = DefaultLimits.MaxStringTable
	}
	return l
}

// LimitKind names one field of Limits.
type LimitKind uint8

// The limits a LimitError can report.
const (
	LimitDocumentSize LimitKind = iota + 1
	LimitDepth
	LimitStringLen
	LimitOpaqueLen
	LimitStringTable
)

func (k LimitKind) String() string {
	switch k {
	case LimitDocumentSize:
		return "document size"
	case LimitDepth:
		return "nesting depth"
	case LimitStringLen:
		return "string length"
	case LimitOpaqueLen:
		return "opaque length"
	case LimitStringTable:
		return "string table size"
	}
	return "limit " + strconv.Itoa(int(k))
}

// LimitError reports input that exceeds one of the Limits. Sentinels such as
// ErrDepth are LimitErrors with Offset -1; errors.Is matches any LimitError
// of the same Kind.
type LimitError struct {
	Kind   LimitKind
	Max    int   // the limit in force
	Size   int64 // the size the input declared or reached
	Offset int   // byte offset in the input, -1 for sentinels
}

func (e *LimitError) Error() string {
	if e.Offset < 0 {
		return "wbxml: " + e.Kind.String() + " limit exceeded"
	}
	return "wbxml: " + e.Kind.String() + " " + strconv.FormatInt(e.Size, 10) +
		" exceeds limit " + strconv.Itoa(e.Max) + " at offset " + strconv.Itoa(e.Offset)
}

// Is reports whether target is a LimitError of the same kind.
func (e *LimitError) Is(target error) bool {
	t, ok := target.(*LimitError)
	return ok && t.Kind == e.Kind
}

// Sentinels for errors.Is, one per limit.
var (
	ErrDocumentSize = &LimitError{Kind: LimitDocumentSize, Offset: -1}
	ErrDepth        = &LimitError{Kind: LimitDepth, Offset: -1}
	ErrStringLength = &LimitError{Kind: LimitStringLen, Offset: -1}
	ErrOpaqueLength = &LimitError{Kind: LimitOpaqueLen, Offset: -1}
	ErrStringTable  = &LimitError{Kind: LimitStringTable, Offset: -1}
)

// SyntaxKind classifies malformed or unsupported input.
type SyntaxKind uint8

// The kinds of SyntaxError.
const (
	SyntaxTruncated    SyntaxKind = iota + 1 // input ends inside a token or element
	SyntaxVersion                            // unsupported WBXML version byte
	SyntaxMbUint32                           // multi-byte integer too long, overflowing or not minimal
	SyntaxUnknownPage                        // SWITCH_PAGE to a page MS-ASWBXML does not define
	SyntaxSwitchPage                         // SWITCH_PAGE not followed by a tag
	SyntaxAttribute                          // attribute bit set, or attribute-space token
	SyntaxPI                                 // processing instruction
	SyntaxEntity                             // ENTITY token
	SyntaxLiteral                            // LITERAL tag tokens
	SyntaxExtension                          // EXT_I_*, EXT_T_*, EXT_* tokens
	SyntaxStringRef                          // STR_T offset or public id index outside the string table
	SyntaxUnterminated                       // string without its terminating NUL
	SyntaxUnbalanced                         // END without an open element
	SyntaxMisplaced                          // content outside the root element, or a second root
	SyntaxTrailing                           // bytes after the root element
	SyntaxNoRoot                             // body without a root element
	SyntaxMixedContent                       // element tree: text or opaque beside child elements
	SyntaxInvalidTag                         // encoder: tag outside the code pages or token range
	SyntaxNUL                                // encoder: inline string containing NUL
	SyntaxXML                                // XML text form not understood
)

var syntaxText = [...]string{
	SyntaxTruncated:    "truncated document",
	SyntaxVersion:      "unsupported WBXML version",
	SyntaxMbUint32:     "malformed multi-byte integer",
	SyntaxUnknownPage:  "unknown code page",
	SyntaxSwitchPage:   "SWITCH_PAGE not followed by a tag",
	SyntaxAttribute:    "attributes are not used by ActiveSync",
	SyntaxPI:           "processing instructions are not used by ActiveSync",
	SyntaxEntity:       "ENTITY is not used by ActiveSync",
	SyntaxLiteral:      "LITERAL tags are not used by ActiveSync",
	SyntaxExtension:    "extension tokens are not used by ActiveSync",
	SyntaxStringRef:    "string table reference out of range",
	SyntaxUnterminated: "unterminated string",
	SyntaxUnbalanced:   "END without open element",
	SyntaxMisplaced:    "content outside the root element",
	SyntaxTrailing:     "data after the root element",
	SyntaxNoRoot:       "no root element",
	SyntaxMixedContent: "element mixes text or opaque data with child elements",
	SyntaxInvalidTag:   "invalid tag",
	SyntaxNUL:          "inline string contains NUL",
	SyntaxXML:          "malformed XML form",
}

func (k SyntaxKind) String() string {
	if int(k) < len(syntaxText) && syntaxText[k] != "" {
		return syntaxText[k]
	}
	return "syntax error " + strconv.Itoa(int(k))
}

// SyntaxError reports malformed WBXML, or a WBXML feature ActiveSync does not
// use, at a byte offset of the input. Sentinels such as ErrTruncated are
// SyntaxErrors with Offset -1; errors.Is matches any SyntaxError of the same
// Kind.
type SyntaxError struct {
	Kind   SyntaxKind
	Offset int    // byte offset in the input, -1 for sentinels
	Detail string // optional detail, e.g. the offending byte
}

func (e *SyntaxError) Error() string {
	s := "wbxml: " + e.Kind.String()
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Offset >= 0 {
		s += " at offset " + strconv.Itoa(e.Offset)
	}
	return s
}

// Is reports whether target is a SyntaxError of the same kind.
func (e *SyntaxError) Is(target error) bool {
	t, ok := target.(*SyntaxError)
	return ok && t.Kind == e.Kind
}

// Sentinels for errors.Is, one per SyntaxKind.
var (
	ErrTruncated    = &SyntaxError{Kind: SyntaxTruncated, Offset: -1}
	ErrVersion      = &SyntaxError{Kind: SyntaxVersion, Offset: -1}
	ErrMbUint32     = &SyntaxError{Kind: SyntaxMbUint32, Offset: -1}
	ErrUnknownPage  = &SyntaxError{Kind: SyntaxUnknownPage, Offset: -1}
	ErrSwitchPage   = &SyntaxError{Kind: SyntaxSwitchPage, Offset: -1}
	ErrAttribute    = &SyntaxError{Kind: SyntaxAttribute, Offset: -1}
	ErrPI           = &SyntaxError{Kind: SyntaxPI, Offset: -1}
	ErrEntity       = &SyntaxError{Kind: SyntaxEntity, Offset: -1}
	ErrLiteral      = &SyntaxError{Kind: SyntaxLiteral, Offset: -1}
	ErrExtension    = &SyntaxError{Kind: SyntaxExtension, Offset: -1}
	ErrStringRef    = &SyntaxError{Kind: SyntaxStringRef, Offset: -1}
	ErrUnterminated = &SyntaxError{Kind: SyntaxUnterminated, Offset: -1}
	ErrUnbalanced   = &SyntaxError{Kind: SyntaxUnbalanced, Offset: -1}
	ErrMisplaced    = &SyntaxError{Kind: SyntaxMisplaced, Offset: -1}
	ErrTrailing     = &SyntaxError{Kind: SyntaxTrailing, Offset: -1}
	ErrNoRoot       = &SyntaxError{Kind: SyntaxNoRoot, Offset: -1}
	ErrMixedContent = &SyntaxError{Kind: SyntaxMixedContent, Offset: -1}
	ErrInvalidTag   = &SyntaxError{Kind: SyntaxInvalidTag, Offset: -1}
	ErrNUL          = &SyntaxError{Kind: SyntaxNUL, Offset: -1}
	ErrXML          = &SyntaxError{Kind: SyntaxXML, Offset: -1}
)

// IsMalformed reports whether err says the input was bad (a *SyntaxError or a
// *LimitError), as opposed to an I/O error of a reader or writer.
func IsMalformed(err error) bool {
	var se *SyntaxError
	var le *LimitError
	return errors.As(err, &se) || errors.As(err, &le)
}
