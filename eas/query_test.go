package eas

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func mustParse(t *testing.T, q string) *Request {
	t.Helper()
	var r Request
	if err := ParseQuery([]byte(q), &r); err != nil {
		t.Fatalf("ParseQuery(%q): %v", q, err)
	}
	return &r
}

// The example of MS-ASHTTP 2.2.1.1.1.1, decoded field by field:
// 8C         protocol version 140
// 00         command code 0 (Sync)
// 09 04      locale 0x0409 (en-US), little-endian
// 0A "v140Device"  device ID
// 00         policy key length 0
// 0A "SmartPhone"  device type
func TestMSASHTTP_2_2_1_1_1_1_Base64Example(t *testing.T) {
	const q = "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l"
	bin, err := base64.StdEncoding.DecodeString(q)
	if err != nil {
		t.Fatal(err)
	}
	wantBin := []byte{0x8c, 0x00, 0x09, 0x04, 0x0a, 'v', '1', '4', '0', 'D', 'e', 'v', 'i', 'c', 'e',
		0x00, 0x0a, 'S', 'm', 'a', 'r', 't', 'P', 'h', 'o', 'n', 'e'}
	if string(bin) != string(wantBin) {
		t.Fatalf("example bytes % x", bin)
	}
	r := mustParse(t, q)
	want := Request{Cmd: CmdSync, Version: V140, Locale: 0x0409, DeviceID: "v140Device",
		DeviceType: "SmartPhone", Base64: true}
	if !r.Equal(&want) {
		t.Fatalf("got %+v", *r)
	}
	if r.HasPolicyKey {
		t.Fatal("policy key length 0 must mean no policy key")
	}
	// The example carries no User: the base64 form lets the credentials name the user.
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Captures of a Windows Mobile 12.1 client (published in Horde's ActiveSync test suite):
// a 16-byte binary device ID, a 4-byte little-endian policy key, and the command
// parameters of MS-ASHTTP 2.2.1.1.1.1.3 (ItemId, CollectionId, Options=SaveInSent).
func TestMSASHTTP_2_2_1_1_1_1_3_CommandParameters(t *testing.T) {
	r := mustParse(t, "eRQJBBCuTs0Z9ZK6Vldwb/dM8JusBHx8TOgDUFBD")
	want := Request{Cmd: CmdProvision, Version: V121, Locale: 1033,
		DeviceID: "ae4ecd19f592ba5657706ff74cf09bac", PolicyKey: 3897326716, HasPolicyKey: true,
		DeviceType: "PPC", Base64: true}
	if !r.Equal(&want) {
		t.Fatalf("Provision: got %+v", *r)
	}
	r = mustParse(t, "eQIJBBCuTs0Z9ZK6Vldwb/dM8JusBHVeHIQDUFBDBwEBAwYxMTkyODEBBUlOQk9Y")
	want = Request{Cmd: CmdSmartForward, Version: V121, Locale: 1033,
		DeviceID: "ae4ecd19f592ba5657706ff74cf09bac", PolicyKey: 2216451701, HasPolicyKey: true,
		DeviceType: "PPC", ItemID: "119281", CollectionID: "INBOX", SaveInSent: true, Base64: true}
	if !r.Equal(&want) {
		t.Fatalf("SmartForward: got %+v", *r)
	}
}

func TestMSASHTTP_2_2_1_1_1_1_Base64Variants(t *testing.T) {
	const q = "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l"
	base := mustParse(t, q)
	// Percent-encoded, and padded/unpadded forms of the same bytes.
	bin := []byte{141, 17, 0x0c, 0x04, 3, 'a', 'b', 'c', 4, 1, 0, 0, 0, 2, 'X', 'Y', 7, 1, 3}
	padded := base64.StdEncoding.EncodeToString(bin)
	if !strings.HasSuffix(padded, "=") {
		t.Fatalf("test vector should need padding: %s", padded)
	}
	a := mustParse(t, padded)
	b := mustParse(t, strings.TrimRight(padded, "="))
	c := mustParse(t, strings.ReplaceAll(padded, "=", "%3D"))
	for _, r := range []*Request{b, c} {
		if !r.Equal(a) {
			t.Fatalf("variant differs: %+v vs %+v", *r, *a)
		}
	}
	if a.Cmd != CmdSettings || a.Version != V141 || a.Locale != 0x040c || a.PolicyKey != 1 ||
		!a.SaveInSent || !a.AcceptMultiPart || a.DeviceType != "XY" {
		t.Fatalf("decoded %+v", *a)
	}
	if base.Cmd != CmdSync {
		t.Fatal("base")
	}
}

func TestMSASHTTP_2_2_1_1_1_2_PlainText(t *testing.T) {
	tests := []struct {
		q    string
		want Request
	}{
		{"Cmd=Sync&User=jdoe&DeviceId=ABC123&DeviceType=iPhone",
			Request{Cmd: CmdSync, User: "jdoe", DeviceID: "ABC123", DeviceType: "iPhone"}},
		// ABNF literals are case-insensitive; command names are matched the same way.
		{"cmd=foldersync&USER=jdoe&deviceid=ABC&devicetype=Android",
			Request{Cmd: CmdFolderSync, User: "jdoe", DeviceID: "ABC", DeviceType: "Android"}},
		// Percent-decoding of values; '+' stays a plus.
		{"Cmd=Ping&User=CONTOSO%5Cj+doe%40contoso.com&DeviceId=Appl9C808MH40&DeviceType=iPad",
			Request{Cmd: CmdPing, User: `CONTOSO\j+doe@contoso.com`, DeviceID: "Appl9C808MH40", DeviceType: "iPad"}},
		// MS-ASHTTP 2.2.1.1.1.2.5 command-specific parameters.
		{"Cmd=SmartReply&User=jdoe&DeviceId=ABC&DeviceType=WP&ItemId=5%3A12&CollectionId=5&SaveInSent=T&LongId=RgAAAA&Occurrence=2024-01-01",
			Request{Cmd: CmdSmartReply, User: "jdoe", DeviceID: "ABC", DeviceType: "WP", ItemID: "5:12",
				CollectionID: "5", SaveInSent: true, LongID: "RgAAAA", Occurrence: "2024-01-01"}},
		{"Cmd=GetAttachment&User=jdoe&DeviceId=ABC&DeviceType=WM&AttachmentName=5%3A3%3A0&SaveInSent=F",
			Request{Cmd: CmdGetAttachment, User: "jdoe", DeviceID: "ABC", DeviceType: "WM", AttachmentName: "5:3:0"}},
		// Unknown parameters are ignored.
		{"Cmd=Sync&User=u&DeviceId=D&DeviceType=T&Foo=bar",
			Request{Cmd: CmdSync, User: "u", DeviceID: "D", DeviceType: "T"}},
		// A 32-character device ID is the longest allowed.
		{"Cmd=Sync&User=u&DeviceId=" + strings.Repeat("A", 32) + "&DeviceType=T",
			Request{Cmd: CmdSync, User: "u", DeviceID: strings.Repeat("A", 32), DeviceType: "T"}},
	}
	for _, tt := range tests {
		r := mustParse(t, tt.q)
		if !r.Equal(&tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.q, *r, tt.want)
		}
	}
}

func TestValidationErrors(t *testing.T) {
	ok := "Cmd=Sync&User=u&DeviceId=D&DeviceType=T"
	b64 := func(b ...byte) string { return base64.StdEncoding.EncodeToString(b) }
	head := []byte{141, 0, 9, 4, 1, 'D', 0, 1, 'T'}
	withParams := func(p ...byte) string { return b64(append(append([]byte{}, head...), p...)...) }
	tests := []struct {
		name string
		q    string
		want *Error
	}{
		{"empty", "", ErrMissingCommand},
		{"missing Cmd", "User=u&DeviceId=D&DeviceType=T", ErrMissingCommand},
		{"empty Cmd", "Cmd=&User=u&DeviceId=D&DeviceType=T", ErrMissingCommand},
		{"missing User", "Cmd=Sync&DeviceId=D&DeviceType=T", ErrMissingUser},
		{"missing DeviceId", "Cmd=Sync&User=u&DeviceType=T", ErrMissingDeviceID},
		{"empty DeviceId", "Cmd=Sync&User=u&DeviceId=&DeviceType=T", ErrMissingDeviceID},
		{"missing DeviceType", "Cmd=Sync&User=u&DeviceId=D", ErrMissingDeviceType},
		{"duplicate Cmd", ok + "&Cmd=Ping", ErrDuplicateParameter},
		{"duplicate DeviceId case-folded", ok + "&deviceid=E", ErrDuplicateParameter},
		{"duplicate ItemId", ok + "&ItemId=1&ItemId=2", ErrDuplicateParameter},
		{"DeviceId 33 chars", "Cmd=Sync&User=u&DeviceId=" + strings.Repeat("A", 33) + "&DeviceType=T", ErrInvalidDeviceID},
		{"DeviceId dash", "Cmd=Sync&User=u&DeviceId=AB-CD&DeviceType=T", ErrInvalidDeviceID},
		{"DeviceId encoded space", "Cmd=Sync&User=u&DeviceId=AB%20CD&DeviceType=T", ErrInvalidDeviceID},
		{"DeviceType space", "Cmd=Sync&User=u&DeviceId=D&DeviceType=a%20b", ErrInvalidDeviceType},
		{"User space", "Cmd=Sync&User=a%20b&DeviceId=D&DeviceType=T", ErrInvalidUser},
		{"User bad UTF-8", "Cmd=Sync&User=%FF&DeviceId=D&DeviceType=T", ErrInvalidUser},
		{"raw CR", ok + "&ItemId=a\rb", ErrInvalidCharacter},
		{"raw LF", ok + "\n", ErrInvalidCharacter},
		{"raw NUL", ok + "\x00", ErrInvalidCharacter},
		{"encoded CRLF", ok + "&ItemId=a%0D%0AX-Injected:%201", ErrInvalidCharacter},
		{"encoded NUL in unknown parameter", ok + "&Foo=%00", ErrInvalidCharacter},
		{"bad escape", ok + "&ItemId=%G1", ErrMalformedQuery},
		{"truncated escape", ok + "&ItemId=%4", ErrMalformedQuery},
		{"trailing ampersand", ok + "&", ErrMalformedQuery},
		{"empty segment", "Cmd=Sync&&User=u&DeviceId=D&DeviceType=T", ErrMalformedQuery},
		{"parameter without =", ok + "&x", ErrMalformedQuery},
		{"bad parameter name", ok + "&It3m=1", ErrMalformedQuery},
		{"empty optional value", ok + "&ItemId=", ErrInvalidParameter},
		{"bad SaveInSent", ok + "&SaveInSent=yes", ErrInvalidParameter},
		{"unknown command", "Cmd=GetHierarchy&User=u&DeviceId=D&DeviceType=T", ErrUnknownCommand},
		{"both forms in one URL", "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l&Cmd=Sync&User=u&DeviceId=D&DeviceType=T", ErrMixedQueryForms},
		{"both forms, base64 last", ok + "&jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l", ErrMixedQueryForms},
		{"both forms, padded base64 last", ok + "&" + b64(head...), ErrMixedQueryForms},
		{"oversized", ok + "&ItemId=" + strings.Repeat("x", 3000), ErrQueryTooLong},
		{"value too long", ok + "&ItemId=" + strings.Repeat("x", 1100), ErrInvalidParameter},
		// Base64 form.
		{"b64 not base64", "jAAJBA!p2", ErrMalformedQuery},
		{"b64 data after padding", b64(141, 0, 9, 4, 1, 'D', 0, 2, 'T', 'U') + "QQ", ErrTrailingData},
		{"b64 bad padding", strings.TrimRight(b64(head...), "=") + "===", ErrMalformedQuery},
		{"b64 too short", b64(141, 0, 9, 4), ErrTruncated},
		{"b64 unknown version", b64(99, 0, 9, 4, 1, 'D', 0, 1, 'T'), ErrUnknownVersion},
		{"b64 version 12.0 not allowed", b64(120, 0, 9, 4, 1, 'D', 0, 1, 'T'), ErrUnknownVersion},
		{"b64 unknown command code", b64(141, 5, 9, 4, 1, 'D', 0, 1, 'T'), ErrUnknownCommand},
		{"b64 command code 24", b64(141, 24, 9, 4, 1, 'D', 0, 1, 'T'), ErrUnknownCommand},
		{"b64 zero device ID", b64(141, 0, 9, 4, 0, 0, 1, 'T'), ErrMissingDeviceID},
		{"b64 device ID past end", b64(141, 0, 9, 4, 200, 'D'), ErrTruncated},
		{"b64 long binary device ID", b64(append(append([]byte{141, 0, 9, 4, 17}, make([]byte, 17)...), 0, 1, 'T')...), ErrInvalidDeviceID},
		{"b64 no policy key length", b64(141, 0, 9, 4, 1, 'D'), ErrTruncated},
		{"b64 policy key length 3", b64(141, 0, 9, 4, 1, 'D', 3, 1, 2, 3, 1, 'T'), ErrInvalidPolicyKey},
		{"b64 policy key past end", b64(141, 0, 9, 4, 1, 'D', 4, 1, 2), ErrTruncated},
		{"b64 no device type length", b64(141, 0, 9, 4, 1, 'D', 0), ErrTruncated},
		{"b64 zero device type", b64(141, 0, 9, 4, 1, 'D', 0, 0), ErrMissingDeviceType},
		{"b64 device type past end", b64(141, 0, 9, 4, 1, 'D', 0, 9, 'T'), ErrTruncated},
		{"b64 device type with NUL", b64(141, 0, 9, 4, 1, 'D', 0, 2, 'T', 0), ErrInvalidDeviceType},
		{"b64 lone trailing byte", withParams(1), ErrTruncated},
		{"b64 parameter past end", withParams(3, 10, 'a'), ErrTruncated},
		{"b64 unknown tag", withParams(9, 1, 'a'), ErrUnknownParameter},
		{"b64 legacy tag 2", withParams(2, 1, 'a'), ErrUnknownParameter},
		{"b64 duplicate ItemId", withParams(3, 1, 'a', 3, 1, 'b'), ErrDuplicateParameter},
		{"b64 duplicate Options", withParams(7, 1, 1, 7, 1, 2), ErrDuplicateParameter},
		{"b64 Options two bytes", withParams(7, 2, 1, 1), ErrInvalidParameter},
		{"b64 CR in ItemId", withParams(3, 2, 'a', '\r'), ErrInvalidCharacter},
		{"b64 LF in User", withParams(8, 2, 'a', '\n'), ErrInvalidCharacter},
		{"b64 space in User", withParams(8, 3, 'a', ' ', 'b'), ErrInvalidUser},
	}
	for _, tt := range tests {
		var r Request
		err := ParseQuery([]byte(tt.q), &r)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: ParseQuery(%q) = %v, want %v", tt.name, tt.q, err, tt.want)
			continue
		}
		var e *Error
		if !errors.As(err, &e) || !strings.HasPrefix(e.Error(), "eas: ") || e.HTTPStatus != tt.want.HTTPStatus {
			t.Errorf("%s: error %v is not a well-formed *Error", tt.name, err)
		}
	}
}

func TestErrorStatuses(t *testing.T) {
	if ErrInvalidDeviceID.Status != StatusDeviceIDMissingOrInvalid || ErrMissingDeviceType.Status != StatusDeviceTypeMissingOrInvalid {
		t.Fatal("device errors must carry 108/109")
	}
	if ErrUnknownCommand.HTTPStatus != 501 || ErrUnknownCommand.Status != StatusCommandNotSupported {
		t.Fatal("unknown command must be 501 / 137")
	}
	if ErrQueryTooLong.HTTPStatus != 414 {
		t.Fatal("oversized query must be 414")
	}
	d := ErrDuplicateParameter.detail("ItemId")
	if !errors.Is(d, ErrDuplicateParameter) || errors.Is(d, ErrMalformedQuery) || d.Kind() != ErrDuplicateParameter {
		t.Fatal("detailed error identity")
	}
	if d.Error() != "eas: duplicated query parameter: ItemId" {
		t.Fatalf("message %q", d.Error())
	}
}

type headers map[string]string

func (h headers) get(name string) []byte {
	v, ok := h[name]
	if !ok {
		return nil
	}
	return []byte(v)
}

func TestMSASHTTP_2_2_1_1_2_Headers(t *testing.T) {
	r := mustParse(t, "Cmd=ItemOperations&User=u&DeviceId=D&DeviceType=T")
	h := headers{"MS-ASProtocolVersion": "14.1", "X-MS-PolicyKey": "3942919513",
		"MS-ASAcceptMultiPart": "T", "User-Agent": "Apple-iPhone9C1/1602.92",
		"Content-Type": "application/vnd.ms-sync.wbxml", "Accept-Language": "en-us"}
	if err := ParseHeaders(h.get, r); err != nil {
		t.Fatal(err)
	}
	if r.Version != V141 || r.PolicyKey != 3942919513 || !r.HasPolicyKey || !r.AcceptMultiPart ||
		r.UserAgent != "Apple-iPhone9C1/1602.92" || r.ContentType != "application/vnd.ms-sync.wbxml" ||
		r.AcceptLanguage != "en-us" {
		t.Fatalf("got %+v", *r)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	// Policy key 0 is a key, not an absent one.
	r = mustParse(t, "Cmd=Provision&User=u&DeviceId=D&DeviceType=T")
	if err := ParseHeaders(headers{"MS-ASProtocolVersion": "2.5", "X-MS-PolicyKey": "0"}.get, r); err != nil {
		t.Fatal(err)
	}
	if !r.HasPolicyKey || r.PolicyKey != 0 || r.Version != V25 {
		t.Fatalf("got %+v", *r)
	}

	errTests := []struct {
		name string
		q    string
		h    headers
		want *Error
	}{
		{"unknown version", "Cmd=Sync&User=u&DeviceId=D&DeviceType=T", headers{"MS-ASProtocolVersion": "15.0"}, ErrUnknownVersion},
		{"version conflict with base64", "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l", headers{"MS-ASProtocolVersion": "14.1"}, ErrVersionConflict},
		{"policy key conflict with base64", "eRQJBBCuTs0Z9ZK6Vldwb/dM8JusBHx8TOgDUFBD", headers{"X-MS-PolicyKey": "1"}, ErrPolicyKeyConflict},
		{"policy key not a number", "Cmd=Sync&User=u&DeviceId=D&DeviceType=T", headers{"X-MS-PolicyKey": "abc"}, ErrInvalidPolicyKey},
		{"policy key overflow", "Cmd=Sync&User=u&DeviceId=D&DeviceType=T", headers{"X-MS-PolicyKey": "4294967296"}, ErrInvalidPolicyKey},
		{"bad multipart", "Cmd=Sync&User=u&DeviceId=D&DeviceType=T", headers{"MS-ASAcceptMultiPart": "yes"}, ErrInvalidHeader},
		{"NUL in user agent", "Cmd=Sync&User=u&DeviceId=D&DeviceType=T", headers{"User-Agent": "a\x00b"}, ErrInvalidCharacter},
		{"CR in content type", "Cmd=Sync&User=u&DeviceId=D&DeviceType=T", headers{"Content-Type": "a\rb"}, ErrInvalidCharacter},
		{"oversized header", "Cmd=Sync&User=u&DeviceId=D&DeviceType=T", headers{"User-Agent": strings.Repeat("a", 2000)}, ErrInvalidHeader},
	}
	for _, tt := range errTests {
		r := mustParse(t, tt.q)
		if err := ParseHeaders(tt.h.get, r); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	// Matching header and query values are fine.
	r = mustParse(t, "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l")
	if err := ParseHeaders(headers{"MS-ASProtocolVersion": "14.0"}.get, r); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		q    string
		ver  string
		want *Error
	}{
		{"Cmd=Sync&User=u&DeviceId=D&DeviceType=T", "", ErrMissingVersion},
		{"Cmd=Find&User=u&DeviceId=D&DeviceType=T", "16.0", ErrCommandNotInVersion},
		{"Cmd=GetAttachment&User=u&DeviceId=D&DeviceType=T", "14.0", ErrCommandNotInVersion},
		{"Cmd=Settings&User=u&DeviceId=D&DeviceType=T", "2.5", ErrCommandNotInVersion},
		{"Cmd=Find&User=u&DeviceId=D&DeviceType=T", "16.1", nil},
		{"Cmd=GetAttachment&User=u&DeviceId=D&DeviceType=T", "12.1", nil},
	}
	for _, tt := range tests {
		h := headers{}
		if tt.ver != "" {
			h["MS-ASProtocolVersion"] = tt.ver
		}
		var r Request
		err := Parse([]byte(tt.q), h.get, &r)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s @%s: got %v, want %v", tt.q, tt.ver, err, tt.want)
		}
	}
	var zero Request
	if !errors.Is(zero.Validate(), ErrMissingCommand) {
		t.Fatal("zero request must not validate")
	}
}

func TestRoundTripPlain(t *testing.T) {
	in := Request{Cmd: CmdSmartForward, User: `CONTOSO\jdoe@contoso.com`, DeviceID: "Appl123",
		DeviceType: "iPhone", CollectionID: "5", ItemID: "5:12", LongID: "RgAA/+AA==",
		Occurrence: "2026-01-02T03:04:05.000Z", AttachmentName: "a b&c=d%e.pdf", SaveInSent: true,
		Version: V141, PolicyKey: 77, HasPolicyKey: true, AcceptMultiPart: true, UserAgent: "ua/1",
		ContentType: "message/rfc822", AcceptLanguage: "de-DE"}
	q, err := in.AppendPlainQuery(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := headers{}
	in.VisitHeaders(func(k, v string) { h[k] = v })
	var out Request
	if err := Parse(q, h.get, &out); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if !out.Equal(&in) {
		t.Fatalf("round trip of %s:\n got %+v\nwant %+v", q, out, in)
	}
}

func TestRoundTripBase64(t *testing.T) {
	in := Request{Cmd: CmdSmartReply, User: "jdoe@contoso.com", DeviceID: "ae4ecd19f592ba5657706ff74cf09bac",
		DeviceType: "PPC", CollectionID: "INBOX", ItemID: "119281", LongID: "L", Occurrence: "O",
		AttachmentName: "A", SaveInSent: true, AcceptMultiPart: true, Version: V161,
		PolicyKey: 3897326716, HasPolicyKey: true, Locale: 1033, Base64: true}
	q, err := in.AppendQuery(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out Request
	if err := Parse(q, headers{}.get, &out); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if !out.Equal(&in) {
		t.Fatalf("round trip of %s:\n got %+v\nwant %+v", q, out, in)
	}
	// The spec example re-encodes to itself.
	r := mustParse(t, "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l")
	b, err := r.AppendBase64Query(nil)
	if err != nil || string(b) != "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l" {
		t.Fatalf("re-encoded %s, %v", b, err)
	}
}

func TestAppendQueryErrors(t *testing.T) {
	r := Request{Cmd: CmdSync, DeviceID: "D", DeviceType: "T", Version: V120}
	if _, err := r.AppendBase64Query(nil); !errors.Is(err, ErrCannotEncode) {
		t.Fatal("12.0 cannot use the base64 form")
	}
	if _, err := r.AppendPlainQuery(nil); !errors.Is(err, ErrCannotEncode) {
		t.Fatal("plain form needs a User")
	}
	r = Request{Cmd: CmdSync, DeviceID: "D", DeviceType: "T", Version: V141, ItemID: strings.Repeat("x", 256)}
	if _, err := r.AppendBase64Query(nil); !errors.Is(err, ErrCannotEncode) {
		t.Fatal("values over 255 bytes cannot use the base64 form")
	}
}

// The Request's strings are copies: overwriting the caller's buffer after parsing does not
// change them (fasthttp reuses its buffers once the handler returns).
func TestRequestOwnsStrings(t *testing.T) {
	buf := []byte("Cmd=Sync&User=jdoe&DeviceId=ABC&DeviceType=iPhone&ItemId=x")
	var r Request
	if err := ParseQuery(buf, &r); err != nil {
		t.Fatal(err)
	}
	hbuf := []byte("ua/1")
	if err := ParseHeaders(func(n string) []byte {
		if n == HeaderUserAgent {
			return hbuf
		}
		return nil
	}, &r); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'Z'
	}
	copy(hbuf, "ZZZZ")
	if r.User != "jdoe" || r.DeviceID != "ABC" || r.DeviceType != "iPhone" || r.ItemID != "x" || r.UserAgent != "ua/1" {
		t.Fatalf("strings alias the input: %+v", r)
	}
	c := r.Clone()
	r.Reset()
	if err := ParseQuery([]byte("Cmd=Ping&User=other&DeviceId=XYZ&DeviceType=Android"), &r); err != nil {
		t.Fatal(err)
	}
	if c.User != "jdoe" || c.DeviceID != "ABC" || c.UserAgent != "ua/1" {
		t.Fatalf("Clone shares the arena: %+v", *c)
	}
}

func TestParseReusedRequestAllocs(t *testing.T) {
	plain := []byte("Cmd=SmartReply&User=CONTOSO%5Cjdoe&DeviceId=Appl9C808MH40&DeviceType=iPhone&ItemId=5%3A12&CollectionId=5&SaveInSent=T")
	b64 := []byte("eQIJBBCuTs0Z9ZK6Vldwb/dM8JusBHVeHIQDUFBDBwEBAwYxMTkyODEBBUlOQk9Y")
	h := headers{"MS-ASProtocolVersion": "12.1", "User-Agent": "Apple-iPhone9C1/1602.92",
		"Content-Type": "application/vnd.ms-sync.wbxml"}
	hb := map[string][]byte{}
	for k, v := range h {
		hb[k] = []byte(v)
	}
	get := func(n string) []byte { return hb[n] }
	var r Request
	for _, q := range [][]byte{plain, b64} {
		if err := Parse(q, get, &r); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			if err := Parse(q, get, &r); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Parse(%s) into a reused Request: %v allocations, want 0", q, allocs)
		}
	}
}

func BenchmarkParsePlain(b *testing.B) {
	q := []byte("Cmd=Sync&User=CONTOSO%5Cjdoe&DeviceId=Appl9C808MH40&DeviceType=iPhone")
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseQuery(q, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseBase64(b *testing.B) {
	q := []byte("eQIJBBCuTs0Z9ZK6Vldwb/dM8JusBHVeHIQDUFBDBwEBAwYxMTkyODEBBUlOQk9Y")
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseQuery(q, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFormDetection(t *testing.T) {
	r := mustParse(t, "Foo=bar&Cmd=Sync&User=u&DeviceId=D&DeviceType=T")
	if r.Base64 || r.Cmd != CmdSync {
		t.Fatalf("plain query starting with an unknown parameter: %+v", *r)
	}
	var x Request
	if err := ParseQuery([]byte("Cmd=Sync"), &x); !errors.Is(err, ErrMissingUser) {
		t.Fatalf("single plain parameter: %v", err)
	}
}

// Baselines measured in the same run: the standard library's query parser on the same
// plain query (it neither validates nor copies into a reusable arena), and a bare base64
// decode of the same base64 query.
func BenchmarkBaselineURLParseQuery(b *testing.B) {
	q := "Cmd=Sync&User=CONTOSO%5Cjdoe&DeviceId=Appl9C808MH40&DeviceType=iPhone"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := url.ParseQuery(q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineBase64Decode(b *testing.B) {
	q := []byte("eQIJBBCuTs0Z9ZK6Vldwb/dM8JusBHVeHIQDUFBDBwEBAwYxMTkyODEBBUlOQk9Y")
	dst := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := base64.StdEncoding.Decode(dst, q); err != nil {
			b.Fatal(err)
		}
	}
}

// Parameter pollution: if the gateway read the first DeviceId and the upstream the last
// (or a case variant), a blocked device could pass as an allowed one. Every repeat of a
// known parameter, in any letter case, is rejected.
func TestSecurity_DuplicateParameterSmuggling(t *testing.T) {
	for _, q := range []string{
		"Cmd=Sync&User=u&DeviceId=ALLOWED&DeviceType=T&DeviceId=BLOCKED",
		"Cmd=Sync&User=u&DeviceId=ALLOWED&DeviceType=T&DEVICEID=BLOCKED",
		"Cmd=Sync&User=victim&DeviceId=D&DeviceType=T&user=attacker",
		"Cmd=Sync&User=u&DeviceId=D&DeviceType=T&cmd=SendMail",
	} {
		var r Request
		if err := ParseQuery([]byte(q), &r); !errors.Is(err, ErrDuplicateParameter) {
			t.Errorf("%s: %v", q, err)
		}
	}
	// An encoded parameter name could be decoded by the upstream only: names must be
	// plain letters.
	var r Request
	if err := ParseQuery([]byte("Cmd=Sync&User=u&DeviceId=A&DeviceType=T&Device%49d=B"), &r); !errors.Is(err, ErrMalformedQuery) {
		t.Errorf("encoded parameter name: %v", err)
	}
}

// Form smuggling: a URL carrying both forms could be read as plain by the gateway and as
// base64 by the upstream (or the other way round).
func TestSecurity_MixedFormSmuggling(t *testing.T) {
	for _, q := range []string{
		"Cmd=Sync&User=u&DeviceId=ALLOWED&DeviceType=T&jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l",
		"jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l&Cmd=Sync&User=u&DeviceId=ALLOWED&DeviceType=T",
	} {
		var r Request
		if err := ParseQuery([]byte(q), &r); !errors.Is(err, ErrMixedQueryForms) {
			t.Errorf("%s: %v", q, err)
		}
	}
	// Version and policy key from the base64 query cannot be overridden by headers.
	var r Request
	if err := Parse([]byte("eRQJBBCuTs0Z9ZK6Vldwb/dM8JusBHx8TOgDUFBD"),
		headers{"MS-ASProtocolVersion": "16.1", "X-MS-PolicyKey": "3897326716"}.get, &r); !errors.Is(err, ErrVersionConflict) {
		t.Errorf("version override: %v", err)
	}
}

// Header injection: a decoded CR or LF in any value could split a header line when the
// gateway or a log writer copies the value; NUL could truncate it in C-based upstreams.
func TestSecurity_ControlCharacterInjection(t *testing.T) {
	for _, q := range []string{
		"Cmd=Sync&User=u%0D%0ASet-Cookie:x&DeviceId=D&DeviceType=T",
		"Cmd=Sync&User=u&DeviceId=D&DeviceType=T%00",
		"Cmd=Sync&User=u&DeviceId=D&DeviceType=T&AttachmentName=a%0Ab",
		"Cmd=Sync&User=u&DeviceId=D&DeviceType=T&Occurrence=%7F",
	} {
		var r Request
		err := ParseQuery([]byte(q), &r)
		if !errors.Is(err, ErrInvalidCharacter) && !errors.Is(err, ErrInvalidUser) && !errors.Is(err, ErrInvalidDeviceType) {
			t.Errorf("%s: %v", q, err)
		}
	}
	// The same through the base64 form, percent-encoded padding and all.
	bin := []byte{141, 0, 9, 4, 1, 'D', 0, 1, 'T', 8, 3, 'a', '\r', 'b'}
	var r Request
	if err := ParseQuery([]byte(base64.StdEncoding.EncodeToString(bin)), &r); !errors.Is(err, ErrInvalidCharacter) {
		t.Errorf("base64 CR: %v", err)
	}
	if err := ParseQuery([]byte("jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l%0A"), &r); !errors.Is(err, ErrInvalidCharacter) {
		t.Errorf("percent-encoded LF in base64 form: %v", err)
	}
}
