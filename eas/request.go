package eas

import (
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Request is one ActiveSync request's addressing and protocol state, whichever query form
// the client used: the query parameters (MS-ASHTTP 2.2.1.1.1) and the request headers that
// carry protocol state (MS-ASHTTP 2.2.1.1.2). A string field that is "" is absent.
//
// # Ownership and reuse
//
// A Request owns its strings: the parsers copy every value out of the caller's buffers
// (fasthttp's request buffers die when the handler returns) into an internal arena. The
// arena is reused: Reset, ParseQuery and Parse overwrite it, and every string obtained from
// the Request before that changes with it. So a Request is meant to be pooled per request
// (sync.Pool), parsed into once, and Reset when the request is done; a caller that keeps a
// value beyond that keeps Clone() (or strings.Clone of the field). Parsing into a warmed-up
// Request does not allocate. A Request is not safe for concurrent use while being parsed or
// reset; reading it concurrently is safe.
type Request struct {
	Cmd        Command
	User       string // EAS User parameter, optional in the base64 form
	DeviceID   string // 1–32 ASCII letters and digits; see ParseQuery for binary IDs
	DeviceType string

	// Version comes from the base64 query's version byte or the MS-ASProtocolVersion
	// header; when both are present they agree.
	Version Version
	// PolicyKey is the X-MS-PolicyKey header or the base64 query's policy key;
	// HasPolicyKey tells a key of 0 (sent by clients that have not provisioned yet)
	// from no key.
	PolicyKey    uint32
	HasPolicyKey bool
	// Locale is the base64 query's locale (an MS-LCID value, e.g. 0x0409); the plain form
	// carries no locale (see AcceptLanguage).
	Locale uint16

	CollectionID   string
	ItemID         string
	LongID         string
	AttachmentName string
	Occurrence     string
	// SaveInSent is the plain SaveInSent=T parameter or the base64 Options bit 0x01.
	SaveInSent bool
	// AcceptMultiPart is the MS-ASAcceptMultiPart: T header or the base64 Options bit 0x02.
	AcceptMultiPart bool

	UserAgent      string
	ContentType    string
	AcceptLanguage string

	// Base64 records that the query used the base64-encoded form.
	Base64 bool

	arena []byte
	// fromQuery records which protocol state the query itself carried, for conflict
	// checks against the headers.
	versionFromQuery, policyFromQuery bool
	seen                              uint16 // parameters already set, by paramBit
}

// Reset clears r for reuse, keeping its arena's capacity. Strings taken from r before
// Reset become invalid.
func (r *Request) Reset() {
	arena := r.arena[:0]
	*r = Request{arena: arena}
}

// Clone returns a copy of r whose strings are independent of r's arena, for keeping beyond
// r's next Reset.
func (r *Request) Clone() *Request {
	c := *r
	c.arena = nil
	c.User = cloneString(r.User)
	c.DeviceID = cloneString(r.DeviceID)
	c.DeviceType = cloneString(r.DeviceType)
	c.CollectionID = cloneString(r.CollectionID)
	c.ItemID = cloneString(r.ItemID)
	c.LongID = cloneString(r.LongID)
	c.AttachmentName = cloneString(r.AttachmentName)
	c.Occurrence = cloneString(r.Occurrence)
	c.UserAgent = cloneString(r.UserAgent)
	c.ContentType = cloneString(r.ContentType)
	c.AcceptLanguage = cloneString(r.AcceptLanguage)
	return &c
}

func cloneString(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
}

// Equal reports whether r and o carry the same request: every exported field is equal.
func (r *Request) Equal(o *Request) bool {
	return r.Cmd == o.Cmd && r.User == o.User && r.DeviceID == o.DeviceID &&
		r.DeviceType == o.DeviceType && r.Version == o.Version && r.PolicyKey == o.PolicyKey &&
		r.HasPolicyKey == o.HasPolicyKey && r.Locale == o.Locale &&
		r.CollectionID == o.CollectionID && r.ItemID == o.ItemID && r.LongID == o.LongID &&
		r.AttachmentName == o.AttachmentName && r.Occurrence == o.Occurrence &&
		r.SaveInSent == o.SaveInSent && r.AcceptMultiPart == o.AcceptMultiPart &&
		r.UserAgent == o.UserAgent && r.ContentType == o.ContentType &&
		r.AcceptLanguage == o.AcceptLanguage && r.Base64 == o.Base64
}

// own copies b into the arena and returns a string that aliases the arena copy.
func (r *Request) own(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := len(r.arena)
	r.arena = append(r.arena, b...)
	return r.arenaString(start)
}

// arenaString returns the arena bytes from start to the end as a string without copying.
// The bytes are never written again until Reset, which is the documented lifetime.
func (r *Request) arenaString(start int) string {
	n := len(r.arena) - start
	if n == 0 {
		return ""
	}
	return unsafe.String(&r.arena[start], n)
}

// Limits bounds what the parsers accept. The zero value of a field means its default.
type Limits struct {
	// MaxQueryBytes bounds the raw query (default 2048). Longer queries fail with
	// ErrQueryTooLong before any other work.
	MaxQueryBytes int
	// MaxValueBytes bounds one decoded plain-query value and one header value (default
	// 1024). The base64 form bounds values at 255 bytes by construction.
	MaxValueBytes int
}

// DefaultLimits are the limits ParseQuery, ParseHeaders and Parse apply.
var DefaultLimits = Limits{MaxQueryBytes: 2048, MaxValueBytes: 1024}

func (l Limits) withDefaults() Limits {
	if l.MaxQueryBytes <= 0 {
		l.MaxQueryBytes = DefaultLimits.MaxQueryBytes
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = DefaultLimits.MaxValueBytes
	}
	return l
}

// Header names read by ParseHeaders and written by VisitHeaders (MS-ASHTTP 2.2.1.1.2).
const (
	HeaderProtocolVersion = "MS-ASProtocolVersion"
	HeaderPolicyKey       = "X-MS-PolicyKey"
	HeaderAcceptMultiPart = "MS-ASAcceptMultiPart"
	HeaderUserAgent       = "User-Agent"
	HeaderContentType     = "Content-Type"
	HeaderAcceptLanguage  = "Accept-Language"
)

// ParseHeaders reads the request headers that carry protocol state into r, which
// ParseQuery has already filled: MS-ASProtocolVersion, X-MS-PolicyKey,
// MS-ASAcceptMultiPart, User-Agent, Content-Type and Accept-Language. get returns a
// header's value, or nil when it is absent (an empty value counts as absent, as fasthttp's
// Peek does not tell them apart); the returned bytes are only read during the call. A version or policy key that the base64 query also carries must agree with it.
func ParseHeaders(get func(name string) []byte, r *Request) error {
	return ParseHeadersLimits(get, r, DefaultLimits)
}

// ParseHeadersLimits is ParseHeaders with explicit limits.
func ParseHeadersLimits(get func(name string) []byte, r *Request, lim Limits) error {
	lim = lim.withDefaults()
	if v := get(HeaderProtocolVersion); len(v) > 0 {
		if err := checkHeader(v, lim, HeaderProtocolVersion); err != nil {
			return err
		}
		ver, ok := parseVersionBytes(v)
		if !ok {
			return ErrUnknownVersion
		}
		if r.versionFromQuery && ver != r.Version {
			return ErrVersionConflict
		}
		r.Version = ver
	}
	if v := get(HeaderPolicyKey); len(v) > 0 {
		if err := checkHeader(v, lim, HeaderPolicyKey); err != nil {
			return err
		}
		key, ok := parseUint32(v)
		if !ok {
			return ErrInvalidPolicyKey
		}
		if r.policyFromQuery && key != r.PolicyKey {
			return ErrPolicyKeyConflict
		}
		r.PolicyKey, r.HasPolicyKey = key, true
	}
	if v := get(HeaderAcceptMultiPart); len(v) > 0 {
		switch {
		case len(v) == 1 && (v[0] == 'T' || v[0] == 't'):
			r.AcceptMultiPart = true
		case len(v) == 1 && (v[0] == 'F' || v[0] == 'f'):
		default:
			return ErrInvalidHeader.detail(HeaderAcceptMultiPart)
		}
	}
	var err error
	if r.UserAgent, err = r.headerString(get, HeaderUserAgent, lim); err != nil {
		return err
	}
	if r.ContentType, err = r.headerString(get, HeaderContentType, lim); err != nil {
		return err
	}
	if r.AcceptLanguage, err = r.headerString(get, HeaderAcceptLanguage, lim); err != nil {
		return err
	}
	return nil
}

func (r *Request) headerString(get func(string) []byte, name string, lim Limits) (string, error) {
	v := get(name)
	if v == nil {
		return "", nil
	}
	if err := checkHeader(v, lim, name); err != nil {
		return "", err
	}
	return r.own(v), nil
}

func checkHeader(v []byte, lim Limits, name string) error {
	if len(v) > lim.MaxValueBytes {
		return ErrInvalidHeader.detail(name + " too long")
	}
	for _, c := range v {
		if isCTL(c) && c != '\t' {
			return ErrInvalidCharacter
		}
	}
	return nil
}

// Validate checks what a request must carry once query and headers are parsed: a command,
// DeviceId and DeviceType, a User in the plain form (the base64 form may leave it to the
// credentials), a protocol version, and a command that this version defines.
func (r *Request) Validate() error {
	switch {
	case r.Cmd == CmdNone:
		return ErrMissingCommand
	case !r.Cmd.Valid():
		return ErrUnknownCommand
	case r.DeviceID == "":
		return ErrMissingDeviceID
	case r.DeviceType == "":
		return ErrMissingDeviceType
	case r.User == "" && !r.Base64:
		return ErrMissingUser
	case r.Version == 0:
		return ErrMissingVersion
	case !r.Version.Valid():
		return ErrUnknownVersion
	case !r.Cmd.SupportedIn(r.Version):
		return ErrCommandNotInVersion
	}
	return nil
}

// Parse is the whole request-model step of the gateway: ParseQuery, ParseHeaders and
// Validate, with DefaultLimits.
func Parse(query []byte, get func(name string) []byte, r *Request) error {
	if err := ParseQuery(query, r); err != nil {
		return err
	}
	if err := ParseHeaders(get, r); err != nil {
		return err
	}
	return r.Validate()
}

// VisitHeaders calls set for every protocol header r implies: MS-ASProtocolVersion,
// X-MS-PolicyKey (when HasPolicyKey), MS-ASAcceptMultiPart: T, User-Agent, Content-Type and
// Accept-Language (when set). It is the inverse of ParseHeaders, for clients such as the
// bench harness; with the base64 form, version and policy key also travel in the query.
func (r *Request) VisitHeaders(set func(name, value string)) {
	if r.Version != 0 {
		set(HeaderProtocolVersion, r.Version.String())
	}
	if r.HasPolicyKey {
		set(HeaderPolicyKey, strconv.FormatUint(uint64(r.PolicyKey), 10))
	}
	if r.AcceptMultiPart {
		set(HeaderAcceptMultiPart, "T")
	}
	if r.UserAgent != "" {
		set(HeaderUserAgent, r.UserAgent)
	}
	if r.ContentType != "" {
		set(HeaderContentType, r.ContentType)
	}
	if r.AcceptLanguage != "" {
		set(HeaderAcceptLanguage, r.AcceptLanguage)
	}
}

func parseUint32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// isCTL reports ASCII control characters, CR, LF and NUL among them.
func isCTL(c byte) bool { return c < 0x20 || c == 0x7f }

func validUTF8(b []byte) bool { return utf8.Valid(b) }
