package eas

import (
	"encoding/base64"
	"unsafe"
)

// Parameter bits for duplicate detection, shared by both query forms.
const (
	pCmd uint16 = 1 << iota
	pUser
	pDeviceID
	pDeviceType
	pCollectionID
	pItemID
	pLongID
	pAttachmentName
	pOccurrence
	pSaveInSent
	pOptions
)

// maxDeviceIDLen is the device-id rule of MS-ASHTTP 2.2.1.1.1.2: 1*32(ALPHA / DIGIT).
const maxDeviceIDLen = 32

// ParseQuery parses the query of an ActiveSync request URI (the bytes after '?', still
// percent-encoded) into r, with DefaultLimits. It first resets r (see Request for the
// ownership rules) and accepts either form:
//
//   - plain text (MS-ASHTTP 2.2.1.1.1.2): Cmd=Sync&User=jdoe&DeviceId=ABC&DeviceType=iPhone
//     followed by command parameters. Parameter names match ignoring ASCII case (ABNF
//     literals are case-insensitive); command names too. Values are percent-decoded; '+'
//     is a literal plus, not a space. Cmd, User, DeviceId and DeviceType are required and
//     no parameter may repeat; unknown parameter names are ignored.
//   - base64-encoded (MS-ASHTTP 2.2.1.1.1.1): the version, command code, locale, device ID,
//     policy key and device type fields followed by tag/length/value command parameters.
//     Padding is optional and the encoded text may itself be percent-encoded. User is
//     optional here. A device ID of ASCII letters and digits (at most 32) is taken as is;
//     any other device ID of at most 16 bytes (a binary GUID) is represented by its
//     lower-case hexadecimal form (32 characters, so it passes the plain-form rule);
//     anything else is rejected. (Z-Push and Horde hex-encode every base64 device ID,
//     ASCII ones too; an upstream of that kind knows such a device under the hex form.)
//
// The form is told by shape: a query with '&', or a single known parameter followed by
// '=' and a value, is plain; anything else is base64. A base64 blob among plain
// parameters is ErrMixedQueryForms.
// Whether the protocol version is present, and whether the command exists in it, is
// checked by Validate once the headers are parsed.
func ParseQuery(raw []byte, r *Request) error {
	return ParseQueryLimits(raw, r, DefaultLimits)
}

// ParseQueryLimits is ParseQuery with explicit limits.
func ParseQueryLimits(raw []byte, r *Request, lim Limits) error {
	r.Reset()
	lim = lim.withDefaults()
	if len(raw) > lim.MaxQueryBytes {
		return ErrQueryTooLong
	}
	if len(raw) == 0 {
		return ErrMissingCommand
	}
	// Every decoded value fits in len(raw) bytes, and the headers ParseHeaders copies
	// afterwards usually in a few hundred more: size the arena once rather than growing it
	// value by value (a fresh Request would otherwise allocate three or four times).
	if need := len(raw) + arenaHeadroom; cap(r.arena) < need {
		r.arena = make([]byte, 0, need)
	}
	// One pass classifies the query: control characters and spaces are rejected here,
	// and the positions the form detection needs are noted.
	amp, pct, eq := false, false, -1
	for i, c := range raw {
		switch queryClass[c] {
		case qcBad:
			return ErrInvalidCharacter
		case qcAmp:
			amp = true
		case qcPct:
			pct = true
		case qcEq:
			if eq < 0 {
				eq = i
			}
		}
	}
	// A query with '&', or a single known parameter followed by '=' and a value, is plain;
	// anything else is base64 ('=' only as trailing padding).
	if !amp && (eq < 0 || allPadding(raw[eq:]) || !knownPlainParam(raw[:eq])) {
		r.Base64 = true
		return r.parseBase64(raw, eq, pct)
	}
	return r.parsePlain(raw, lim)
}

const (
	qcOther = iota
	qcBad
	qcAmp
	qcPct
	qcEq
)

var queryClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = qcBad
	}
	t[' '], t[0x7f] = qcBad, qcBad
	t['&'], t['%'], t['='] = qcAmp, qcPct, qcEq
	return t
}()

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// looksBase64 reports whether a plain-query segment without a name=value shape is a base64
// query value (at least the 8 characters of the shortest one, base64 alphabet, percent
// escapes, padding only at the end).
func looksBase64(seg []byte) bool {
	if len(seg) < 8 {
		return false
	}
	pad := false
	for _, c := range seg {
		switch {
		case c == '=':
			pad = true
		case pad:
			return false
		case !isBase64Char(c) && c != '%':
			return false
		}
	}
	return true
}

func (r *Request) parsePlain(raw []byte, lim Limits) error {
	for len(raw) > 0 {
		seg := raw
		for i, c := range raw {
			if c == '&' {
				seg = raw[:i]
				break
			}
		}
		raw = raw[len(seg):]
		if len(raw) > 0 {
			raw = raw[1:] // '&'
			if len(raw) == 0 {
				return ErrMalformedQuery.detail("empty parameter")
			}
		}
		eq := -1
		for i, c := range seg {
			if c == '=' {
				eq = i
				break
			}
		}
		if eq < 0 || (allPadding(seg[eq:]) && !knownPlainParam(seg[:eq]) && looksBase64(seg)) {
			if looksBase64(seg) {
				return ErrMixedQueryForms
			}
			return ErrMalformedQuery.detail("parameter without '='")
		}
		name, val := seg[:eq], seg[eq+1:]
		if len(name) == 0 {
			return ErrMalformedQuery.detail("empty parameter name")
		}
		for _, c := range name {
			if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
				return ErrMalformedQuery.detail("parameter name is not letters")
			}
		}
		if err := r.plainParam(name, val, lim); err != nil {
			return err
		}
	}
	switch {
	case r.seen&pCmd == 0:
		return ErrMissingCommand
	case r.seen&pUser == 0:
		return ErrMissingUser
	case r.seen&pDeviceID == 0:
		return ErrMissingDeviceID
	case r.seen&pDeviceType == 0:
		return ErrMissingDeviceType
	}
	return nil
}

func knownPlainParam(name []byte) bool {
	for _, p := range plainParams {
		if equalFoldBytes(name, p.name) {
			return true
		}
	}
	return false
}

func allPadding(b []byte) bool {
	for _, c := range b {
		if c != '=' {
			return false
		}
	}
	return true
}

var plainParams = [...]struct {
	name string
	bit  uint16
}{
	{"Cmd", pCmd}, {"User", pUser}, {"DeviceId", pDeviceID}, {"DeviceType", pDeviceType},
	{"CollectionId", pCollectionID}, {"ItemId", pItemID}, {"LongId", pLongID},
	{"AttachmentName", pAttachmentName}, {"Occurrence", pOccurrence},
	{"SaveInSent", pSaveInSent},
}

func (r *Request) plainParam(name, val []byte, lim Limits) error {
	var bit uint16
	var pname string
	for _, p := range plainParams {
		if equalFoldBytes(name, p.name) {
			bit, pname = p.bit, p.name
			break
		}
	}
	// Decode every value, known or not, so malformed escapes and encoded control
	// characters are rejected wherever they are.
	start := len(r.arena)
	var ok bool
	r.arena, ok = appendUnescape(r.arena, val)
	if !ok {
		r.arena = r.arena[:start]
		return ErrMalformedQuery.detail("bad percent-encoding")
	}
	dec := r.arena[start:]
	if len(dec) > lim.MaxValueBytes {
		return ErrInvalidParameter.detail(pname + " too long")
	}
	for _, c := range dec {
		if isCTL(c) {
			return ErrInvalidCharacter
		}
	}
	if bit == 0 {
		r.arena = r.arena[:start]
		return nil
	}
	if r.seen&bit != 0 {
		return ErrDuplicateParameter.detail(pname)
	}
	r.seen |= bit
	return r.setParam(bit, dec, pname)
}

// setParam validates and stores one decoded value that already lives in the arena.
func (r *Request) setParam(bit uint16, dec []byte, pname string) error {
	switch bit {
	case pCmd:
		if len(dec) == 0 {
			return ErrMissingCommand
		}
		c, ok := parseCommandBytes(dec)
		if !ok {
			return ErrUnknownCommand
		}
		r.Cmd = c
		return nil
	case pUser:
		if len(dec) == 0 {
			return ErrMissingUser
		}
		if !validUser(dec) {
			return ErrInvalidUser
		}
		r.User = bytesString(dec)
	case pDeviceID:
		if len(dec) == 0 {
			return ErrMissingDeviceID
		}
		if !validDeviceID(dec) {
			return ErrInvalidDeviceID
		}
		r.DeviceID = bytesString(dec)
	case pDeviceType:
		if len(dec) == 0 {
			return ErrMissingDeviceType
		}
		if !validVCHAR(dec) {
			return ErrInvalidDeviceType
		}
		r.DeviceType = bytesString(dec)
	case pSaveInSent:
		switch {
		case len(dec) == 1 && (dec[0] == 'T' || dec[0] == 't'):
			r.SaveInSent = true
		case len(dec) == 1 && (dec[0] == 'F' || dec[0] == 'f'):
		default:
			return ErrInvalidParameter.detail("SaveInSent must be T or F")
		}
	default:
		if len(dec) == 0 {
			return ErrInvalidParameter.detail("empty " + pname)
		}
		s := bytesString(dec)
		switch bit {
		case pCollectionID:
			r.CollectionID = s
		case pItemID:
			r.ItemID = s
		case pLongID:
			r.LongID = s
		case pAttachmentName:
			r.AttachmentName = s
		case pOccurrence:
			r.Occurrence = s
		}
	}
	return nil
}

// bytesString returns b as a string without copying; b must live in the arena.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func validDeviceID(b []byte) bool {
	if len(b) == 0 || len(b) > maxDeviceIDLen {
		return false
	}
	for _, c := range b {
		if !isAlnum(c) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

// validVCHAR: 1*VCHAR (RFC 5234: %x21-7E).
func validVCHAR(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// validUser accepts the user-name rule (1*VCHAR) extended to UTF-8 for international
// account names: no spaces, no control characters, valid UTF-8.
func validUser(b []byte) bool {
	if len(b) == 0 || !validUTF8(b) {
		return false
	}
	for _, c := range b {
		if c <= 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func appendUnescape(dst, src []byte) ([]byte, bool) {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(src) {
			return dst, false
		}
		h, ok1 := unhex(src[i+1])
		l, ok2 := unhex(src[i+2])
		if !ok1 || !ok2 {
			return dst, false
		}
		dst = append(dst, h<<4|l)
		i += 2
	}
	return dst, true
}

// Base64 command parameter tags (MS-ASHTTP 2.2.1.1.1.1.3).
const (
	tagAttachmentName = 0
	tagCollectionID   = 1
	tagItemID         = 3
	tagLongID         = 4
	tagOccurrence     = 6
	tagOptions        = 7
	tagUser           = 8
)

// Options flags of the base64 form (MS-ASHTTP 2.2.1.1.1.1.3).
const (
	optSaveInSent      = 0x01
	optAcceptMultiPart = 0x02
)

func (r *Request) parseBase64(raw []byte, eq int, pct bool) error {
	text := raw
	if pct {
		start := len(r.arena)
		var ok bool
		r.arena, ok = appendUnescape(r.arena, raw)
		if !ok {
			return ErrMalformedQuery.detail("bad percent-encoding")
		}
		text = r.arena[start:]
		eq = -1
		for i, c := range text {
			if queryClass[c] == qcBad {
				return ErrInvalidCharacter
			}
			if c == '=' && eq < 0 {
				eq = i
			}
		}
	}
	// Padding: optional, at most two '=', only at the end, consistent with the length.
	// The base64 decoder rejects every other character outside the alphabet.
	body := text
	if eq >= 0 {
		if !allPadding(text[eq:]) {
			return ErrTrailingData
		}
		body = text[:eq]
		if pad := len(text) - eq; pad > 2 || len(text)%4 != 0 {
			return ErrMalformedQuery.detail("bad base64 padding")
		}
	}
	dlen := base64.RawStdEncoding.DecodedLen(len(body))
	start := len(r.arena)
	r.arena = growArena(r.arena, dlen)
	dst := r.arena[start : start+dlen]
	m, err := base64.RawStdEncoding.Decode(dst, body)
	if err != nil {
		r.arena = r.arena[:start]
		return ErrMalformedQuery.detail("not base64")
	}
	b := dst[:m]
	r.arena = r.arena[:start+m]
	return r.decodeBinary(b)
}

// arenaHeadroom is what ParseQuery reserves beyond the query for the header values.
const arenaHeadroom = 384

func growArena(a []byte, n int) []byte {
	if cap(a)-len(a) < n {
		na := make([]byte, len(a), 2*cap(a)+n)
		copy(na, a)
		a = na
	}
	return a[:len(a)+n]
}

// decodeBinary reads the byte sequence of MS-ASHTTP 2.2.1.1.1.1. b lives in the arena.
func (r *Request) decodeBinary(b []byte) error {
	if len(b) < 5 {
		return ErrTruncated.detail("fixed header")
	}
	v, ok := VersionFromByte(b[0])
	if !ok {
		return ErrUnknownVersion
	}
	r.Version, r.versionFromQuery = v, true
	c, ok := CommandFromCode(b[1])
	if !ok {
		return ErrUnknownCommand
	}
	r.Cmd = c
	r.Locale = uint16(b[2]) | uint16(b[3])<<8
	idLen := int(b[4])
	b = b[5:]
	if idLen == 0 {
		return ErrMissingDeviceID
	}
	if len(b) < idLen {
		return ErrTruncated.detail("device ID")
	}
	id := b[:idLen]
	b = b[idLen:]
	switch {
	case validDeviceID(id):
		r.DeviceID = bytesString(id)
	case idLen <= 16:
		start := len(r.arena)
		r.arena = appendHex(r.arena, id)
		r.DeviceID = r.arenaString(start)
	default:
		return ErrInvalidDeviceID
	}
	if len(b) < 1 {
		return ErrTruncated.detail("policy key length")
	}
	pkLen := int(b[0])
	b = b[1:]
	switch pkLen {
	case 0:
	case 4:
		if len(b) < 4 {
			return ErrTruncated.detail("policy key")
		}
		r.PolicyKey = uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		r.HasPolicyKey, r.policyFromQuery = true, true
		b = b[4:]
	default:
		return ErrInvalidPolicyKey.detail("policy key length must be 0 or 4")
	}
	if len(b) < 1 {
		return ErrTruncated.detail("device type length")
	}
	dtLen := int(b[0])
	b = b[1:]
	if dtLen == 0 {
		return ErrMissingDeviceType
	}
	if len(b) < dtLen {
		return ErrTruncated.detail("device type")
	}
	if !validVCHAR(b[:dtLen]) {
		return ErrInvalidDeviceType
	}
	r.DeviceType = bytesString(b[:dtLen])
	b = b[dtLen:]
	for len(b) > 0 {
		if len(b) < 2 {
			return ErrTruncated.detail("command parameter")
		}
		tag, vlen := b[0], int(b[1])
		b = b[2:]
		if len(b) < vlen {
			return ErrTruncated.detail("command parameter value")
		}
		val := b[:vlen]
		b = b[vlen:]
		if err := r.base64Param(tag, val); err != nil {
			return err
		}
	}
	return nil
}

func (r *Request) base64Param(tag byte, val []byte) error {
	var bit uint16
	var pname string
	switch tag {
	case tagAttachmentName:
		bit, pname = pAttachmentName, "AttachmentName"
	case tagCollectionID:
		bit, pname = pCollectionID, "CollectionId"
	case tagItemID:
		bit, pname = pItemID, "ItemId"
	case tagLongID:
		bit, pname = pLongID, "LongId"
	case tagOccurrence:
		bit, pname = pOccurrence, "Occurrence"
	case tagOptions:
		bit, pname = pOptions, "Options"
	case tagUser:
		bit, pname = pUser, "User"
	default:
		return ErrUnknownParameter
	}
	if r.seen&bit != 0 {
		return ErrDuplicateParameter.detail(pname)
	}
	r.seen |= bit
	if bit == pOptions {
		if len(val) != 1 {
			return ErrInvalidParameter.detail("Options must be one byte")
		}
		r.SaveInSent = val[0]&optSaveInSent != 0
		r.AcceptMultiPart = val[0]&optAcceptMultiPart != 0
		return nil
	}
	for _, c := range val {
		if isCTL(c) {
			return ErrInvalidCharacter
		}
	}
	if len(val) == 0 {
		// A zero-length value (allowed by MS-ASHTTP 2.2.1.1.1.1.1) means the parameter is
		// absent.
		return nil
	}
	if bit == pUser {
		if !validUser(val) {
			return ErrInvalidUser
		}
		r.User = bytesString(val)
		return nil
	}
	return r.setParam(bit, val, pname)
}

const hexDigits = "0123456789abcdef"

func appendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// AppendQuery appends r's query in the form r.Base64 selects. See AppendPlainQuery and
// AppendBase64Query.
func (r *Request) AppendQuery(dst []byte) ([]byte, error) {
	if r.Base64 {
		return r.AppendBase64Query(dst)
	}
	return r.AppendPlainQuery(dst)
}

// AppendPlainQuery appends r's plain text query (MS-ASHTTP 2.2.1.1.1.2): Cmd, User,
// DeviceId, DeviceType, then the command parameters that are set, values percent-encoded
// outside RFC 3986's unreserved characters. Version, policy key, AcceptMultiPart and the
// locale travel in headers with this form (VisitHeaders). It fails with ErrCannotEncode
// when a required field is missing.
func (r *Request) AppendPlainQuery(dst []byte) ([]byte, error) {
	if !r.Cmd.Valid() || r.User == "" || r.DeviceID == "" || r.DeviceType == "" {
		return dst, ErrCannotEncode.detail("plain query needs Cmd, User, DeviceId and DeviceType")
	}
	dst = append(dst, "Cmd="...)
	dst = append(dst, r.Cmd.String()...)
	dst = appendPlainParam(dst, "User", r.User)
	dst = appendPlainParam(dst, "DeviceId", r.DeviceID)
	dst = appendPlainParam(dst, "DeviceType", r.DeviceType)
	dst = appendPlainParam(dst, "CollectionId", r.CollectionID)
	dst = appendPlainParam(dst, "ItemId", r.ItemID)
	dst = appendPlainParam(dst, "LongId", r.LongID)
	dst = appendPlainParam(dst, "Occurrence", r.Occurrence)
	dst = appendPlainParam(dst, "AttachmentName", r.AttachmentName)
	if r.SaveInSent {
		dst = append(dst, "&SaveInSent=T"...)
	}
	return dst, nil
}

func appendPlainParam(dst []byte, name, val string) []byte {
	if val == "" {
		return dst
	}
	dst = append(dst, '&')
	dst = append(dst, name...)
	dst = append(dst, '=')
	for i := 0; i < len(val); i++ {
		c := val[i]
		if isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
	}
	return dst
}

// AppendBase64Query appends r's base64-encoded query (MS-ASHTTP 2.2.1.1.1.1), padded. The
// device ID is written as the bytes of r.DeviceID. It fails with ErrCannotEncode when the
// version cannot use this form (before 12.1), a required field is missing, or a value is
// longer than 255 bytes.
func (r *Request) AppendBase64Query(dst []byte) ([]byte, error) {
	vb, ok := r.Version.Byte()
	if !ok {
		return dst, ErrCannotEncode.detail("base64 query needs protocol version 12.1 or later")
	}
	code, ok := r.Cmd.Code()
	if !ok {
		return dst, ErrCannotEncode.detail("no command")
	}
	if r.DeviceID == "" || len(r.DeviceID) > 255 || r.DeviceType == "" || len(r.DeviceType) > 255 {
		return dst, ErrCannotEncode.detail("base64 query needs DeviceId and DeviceType of 1 to 255 bytes")
	}
	var stack [512]byte
	bin := append(stack[:0], vb, code, byte(r.Locale), byte(r.Locale>>8), byte(len(r.DeviceID)))
	bin = append(bin, r.DeviceID...)
	if r.HasPolicyKey {
		k := r.PolicyKey
		bin = append(bin, 4, byte(k), byte(k>>8), byte(k>>16), byte(k>>24))
	} else {
		bin = append(bin, 0)
	}
	bin = append(bin, byte(len(r.DeviceType)))
	bin = append(bin, r.DeviceType...)
	for _, p := range [...]struct {
		tag byte
		val string
	}{
		{tagAttachmentName, r.AttachmentName}, {tagCollectionID, r.CollectionID},
		{tagItemID, r.ItemID}, {tagLongID, r.LongID}, {tagOccurrence, r.Occurrence},
		{tagUser, r.User},
	} {
		if p.val == "" {
			continue
		}
		if len(p.val) > 255 {
			return dst, ErrCannotEncode.detail("value longer than 255 bytes")
		}
		bin = append(bin, p.tag, byte(len(p.val)))
		bin = append(bin, p.val...)
	}
	var opt byte
	if r.SaveInSent {
		opt |= optSaveInSent
	}
	if r.AcceptMultiPart {
		opt |= optAcceptMultiPart
	}
	if opt != 0 {
		bin = append(bin, tagOptions, 1, opt)
	}
	return base64.StdEncoding.AppendEncode(dst, bin), nil
}
