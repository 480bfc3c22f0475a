package wbxml

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hx turns "03 01 6A 00 'text'" into bytes: hex pairs, and quoted runs of
// literal characters.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \n\t")
		if s == "" {
			break
		}
		if s[0] == '\'' {
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated quote in %q", s)
			}
			out = append(out, s[1:1+end]...)
			s = s[end+2:]
			continue
		}
		b, err := hex.DecodeString(s[:2])
		if err != nil {
			t.Fatalf("bad hex %q: %v", s[:2], err)
		}
		out = append(out, b...)
		s = s[2:]
	}
	return out
}

// specSyncAddContact is the Sync response of the MS-ASWBXML WBXML example
// (section 4: a server response adding the contact "Funk, Don"), byte for
// byte as the specification lists it.
const specSyncAddContact = `03 01 6A 00
45 5C 4F 50 03 'Contacts' 00 01 4B 03 '2' 00 01 52 03 '2' 00 01 4E 03 '1' 00 01
56 47 4D 03 '2:1' 00 01 5D
00 11 4A 46 03 '1' 00 01 4C 03 '0' 00 01 4D 03 '1' 00 01 01
00 01 5E 03 'Funk, Don' 00 01 5F 03 'Don' 00 01 69 03 'Funk' 00 01
00 11 56 03 '1' 00 01
01 01 01 01 01 01`

func TestMSASWBXML_Example_SyncAddContact_Tokens(t *testing.T) {
	b := hx(t, specSyncAddContact)
	d := NewDecoder(b, Limits{})
	type tk struct {
		kind Kind
		tag  Tag
		data string
	}
	want := []tk{
		{StartTag, AirSyncSync, ""}, {StartTag, AirSyncCollections, ""}, {StartTag, AirSyncCollection, ""},
		{StartTag, AirSyncClass, ""}, {String, 0, "Contacts"}, {EndTag, AirSyncClass, ""},
		{StartTag, AirSyncSyncKey, ""}, {String, 0, "2"}, {EndTag, AirSyncSyncKey, ""},
		{StartTag, AirSyncCollectionId, ""}, {String, 0, "2"}, {EndTag, AirSyncCollectionId, ""},
		{StartTag, AirSyncStatus, ""}, {String, 0, "1"}, {EndTag, AirSyncStatus, ""},
		{StartTag, AirSyncCommands, ""}, {StartTag, AirSyncAdd, ""},
		{StartTag, AirSyncServerId, ""}, {String, 0, "2:1"}, {EndTag, AirSyncServerId, ""},
		{StartTag, AirSyncApplicationData, ""},
		{StartTag, AirSyncBaseBody, ""},
		{StartTag, AirSyncBaseType, ""}, {String, 0, "1"}, {EndTag, AirSyncBaseType, ""},
		{StartTag, AirSyncBaseEstimatedDataSize, ""}, {String, 0, "0"}, {EndTag, AirSyncBaseEstimatedDataSize, ""},
		{StartTag, AirSyncBaseTruncated, ""}, {String, 0, "1"}, {EndTag, AirSyncBaseTruncated, ""},
		{EndTag, AirSyncBaseBody, ""},
		{StartTag, ContactsFileAs, ""}, {String, 0, "Funk, Don"}, {EndTag, ContactsFileAs, ""},
		{StartTag, ContactsFirstName, ""}, {String, 0, "Don"}, {EndTag, ContactsFirstName, ""},
		{StartTag, ContactsLastName, ""}, {String, 0, "Funk"}, {EndTag, ContactsLastName, ""},
		{StartTag, AirSyncBaseNativeBodyType, ""}, {String, 0, "1"}, {EndTag, AirSyncBaseNativeBodyType, ""},
		{EndTag, AirSyncApplicationData, ""}, {EndTag, AirSyncAdd, ""}, {EndTag, AirSyncCommands, ""},
		{EndTag, AirSyncCollection, ""}, {EndTag, AirSyncCollections, ""}, {EndTag, AirSyncSync, ""},
	}
	for i, w := range want {
		tok, err := d.Next()
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		if tok.Kind != w.kind || tok.Tag != w.tag || string(tok.Data) != w.data {
			t.Fatalf("token %d = %v %v %q, want %v %v %q", i, tok.Kind, tok.Tag, tok.Data, w.kind, w.tag, w.data)
		}
		if tok.Kind == StartTag && !tok.HasContent {
			t.Fatalf("token %d: content bit lost", i)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("after root: %v, want io.EOF", err)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("EOF must be sticky, got %v", err)
	}
	h, err := d.Header()
	if err != nil || h.Version != 3 || h.PublicID != 1 || h.Charset != 106 || len(h.StringTable) != 0 {
		t.Fatalf("header %+v %v", h, err)
	}
}

// TestMSASWBXML_Example_SyncAddContact_Encode builds the example with the
// tree constructors and must produce the specification's bytes.
func TestMSASWBXML_Example_SyncAddContact_Encode(t *testing.T) {
	doc := NewDocument(NewElement(AirSyncSync,
		NewElement(AirSyncCollections, NewElement(AirSyncCollection,
			NewText(AirSyncClass, "Contacts"),
			NewText(AirSyncSyncKey, "2"),
			NewText(AirSyncCollectionId, "2"),
			NewText(AirSyncStatus, "1"),
			NewElement(AirSyncCommands, NewElement(AirSyncAdd,
				NewText(AirSyncServerId, "2:1"),
				NewElement(AirSyncApplicationData,
					NewElement(AirSyncBaseBody,
						NewText(AirSyncBaseType, "1"),
						NewText(AirSyncBaseEstimatedDataSize, "0"),
						NewText(AirSyncBaseTruncated, "1")),
					NewText(ContactsFileAs, "Funk, Don"),
					NewText(ContactsFirstName, "Don"),
					NewText(ContactsLastName, "Funk"),
					NewText(AirSyncBaseNativeBodyType, "1"),
				)))))))
	got, err := doc.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := hx(t, specSyncAddContact); !bytes.Equal(got, want) {
		t.Fatalf("encode:\n got %X\nwant %X", got, want)
	}
	parsed, err := Parse(got, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v := parsed.Root.Path(AirSyncCollections, AirSyncCollection, AirSyncCommands, AirSyncAdd, AirSyncApplicationData, ContactsFileAs).Text(); v != "Funk, Don" {
		t.Fatalf("FileAs = %q", v)
	}
}

// TestWBXML13_5_1_MbUint32 checks multi-byte integers: the WBXML example
// (0xA0 is 81 20), boundaries, and the forms the decoder refuses.
func TestWBXML13_5_1_MbUint32(t *testing.T) {
	good := []struct {
		v   uint32
		enc string
	}{
		{0, "00"}, {0x7F, "7F"}, {0x80, "81 00"}, {0xA0, "81 20"}, {0x3FFF, "FF 7F"},
		{0x4000, "81 80 00"}, {0x1FFFFF, "FF FF 7F"}, {0x200000, "81 80 80 00"},
		{0xFFFFFFF, "FF FF FF 7F"}, {0x10000000, "81 80 80 80 00"}, {0xFFFFFFFF, "8F FF FF FF 7F"},
	}
	for _, c := range good {
		enc := hx(t, c.enc)
		if got := AppendMbUint32(nil, c.v); !bytes.Equal(got, enc) {
			t.Errorf("AppendMbUint32(%#x) = %X, want %X", c.v, got, enc)
		}
		// As an opaque length the value must be read back exactly.
		d := Decoder{buf: append([]byte{0xC3}, enc...)}
		d.lim = DefaultLimits
		d.pos = 1
		if v, ok := d.readMb(); !ok || v != c.v || d.pos != len(d.buf) {
			t.Errorf("readMb(%X) = %#x %v, err %v", enc, v, ok, d.err)
		}
	}
	bad := []string{"80 00", "80 80 01", "90 80 80 80 00", "FF FF FF FF 7F", "FF FF FF FF FF 7F", "81", "81 80 80 80 80 00"}
	for _, s := range bad {
		d := Decoder{buf: hx(t, s)}
		d.lim = DefaultLimits
		if _, ok := d.readMb(); ok {
			t.Errorf("readMb(%s) accepted", s)
			continue
		}
		var se *SyntaxError
		if !errors.As(d.err, &se) || (se.Kind != SyntaxMbUint32 && se.Kind != SyntaxTruncated) {
			t.Errorf("readMb(%s): %v", s, d.err)
		}
	}
}

// TestRoundTripForms checks that every form the decoder accepts comes back
// byte for byte from Parse+Encode, and that the tree records it.
func TestRoundTripForms(t *testing.T) {
	cases := []struct{ name, in string }{
		{"empty root", "03 01 6A 00 05"},
		{"empty root with content bit", "03 01 6A 00 45 01"},
		{"empty inline string", "03 01 6A 00 45 4B 03 00 01 01"},
		{"empty child with and without content bit", "03 01 6A 00 45 4B 01 0B 01"},
		{"redundant switch at start", "03 01 6A 00 00 00 45 01"},
		{"redundant switch inside", "03 01 6A 00 00 07 56 00 07 4C 03 '1' 00 01 01"},
		{"switch back and forth", "03 01 6A 00 45 00 11 4A 01 00 00 4B 01 01"},
		{"opaque", "03 01 6A 00 00 15 45 50 C3 03 01 02 00 01 01"},
		{"empty opaque", "03 01 6A 00 00 15 45 50 C3 00 01 01"},
		{"string table reference", "03 01 6A 07 'ab' 00 'cde' 00 45 4B 83 03 01 4B 83 00 01 01"},
		{"public id in string table", "03 00 02 6A 06 'ab' 00 'x' 00 00 45 01"},
		{"other public id and charset", "03 81 20 04 00 45 01"},
		{"WBXML 1.0 header without charset", "00 01 00 45 01"},
		{"unknown token on known page", "03 01 6A 00 45 51 03 'v2' 00 01 3F 01"},
		{"utf-8 and binary-ish text", "03 01 6A 00 45 4B 03 C3 A9 0A 0D 09 7F 01 02 00 01 01"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := hx(t, c.in)
			doc, err := Parse(in, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			out, err := doc.Encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("round trip:\n got %X\nwant %X", out, in)
			}
		})
	}
}

// TestEncodeTableRefEdited checks that an edited string that was a string
// table reference is written inline rather than as a stale reference.
func TestEncodeTableRefEdited(t *testing.T) {
	doc, err := Parse(hx(t, "03 01 6A 03 'ab' 00 45 4B 83 00 01 01"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	k := doc.Root.Find(AirSyncSyncKey)
	if !k.TableRef || k.Text() != "ab" {
		t.Fatalf("SyncKey %+v", k)
	}
	k.SetText("zz")
	out, err := doc.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := hx(t, "03 01 6A 03 'ab' 00 45 4B 03 'zz' 00 01 01"); !bytes.Equal(out, want) {
		t.Fatalf("got %X want %X", out, want)
	}
}

func TestEncoderMisuse(t *testing.T) {
	var e Encoder
	e.Header(DefaultHeader)
	e.StartTag(MakeTag(30, 5), true)
	if !errors.Is(e.Err(), ErrInvalidTag) {
		t.Errorf("invalid page: %v", e.Err())
	}
	e.Reset(nil)
	e.Header(DefaultHeader)
	e.StartTag(AirSyncSync, true)
	e.String([]byte("a\x00b"))
	if !errors.Is(e.Err(), ErrNUL) {
		t.Errorf("NUL: %v", e.Err())
	}
	e.Reset(nil)
	e.EndTag()
	if !errors.Is(e.Err(), ErrUnbalanced) {
		t.Errorf("EndTag: %v", e.Err())
	}
	mixed := NewDocument(NewElement(AirSyncSync, NewText(AirSyncStatus, "1")))
	mixed.Root.Kind, mixed.Root.Value = StringValue, []byte("x")
	if _, err := mixed.Encode(nil); !errors.Is(err, ErrMixedContent) {
		t.Errorf("mixed: %v", err)
	}
	if _, err := (&Document{}).Encode(nil); !errors.Is(err, ErrNoRoot) {
		t.Errorf("no root: %v", err)
	}
}

// TestEncoderFolderSync encodes the MS-ASCMD FolderSync request by hand and
// checks page switching and the reuse of the caller's buffer.
func TestEncoderFolderSync(t *testing.T) {
	buf := make([]byte, 0, 64)
	e := NewEncoder(buf)
	e.Header(DefaultHeader)
	e.StartTag(FolderHierarchyFolderSync, true)
	e.TextElement(FolderHierarchySyncKey, []byte("0"))
	e.EndTag()
	if e.Err() != nil || e.Depth() != 0 {
		t.Fatal(e.Err(), e.Depth())
	}
	want := hx(t, "03 01 6A 00 00 07 56 52 03 '0' 00 01 01")
	if !bytes.Equal(e.Bytes(), want) {
		t.Fatalf("got %X want %X", e.Bytes(), want)
	}
	if &e.Bytes()[0] != &buf[:1][0] {
		t.Error("encoder did not reuse the caller's buffer")
	}
}

func TestDecoderSkipAndReset(t *testing.T) {
	b := hx(t, specSyncAddContact)
	d := NewDecoder(b, Limits{})
	for {
		tok, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		if tok.Tag == AirSyncCommands {
			if err := d.Skip(); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	tok, err := d.Next()
	if err != nil || tok.Kind != EndTag || tok.Tag != AirSyncCollection {
		t.Fatalf("after Skip: %+v %v", tok, err)
	}
	d.Reset(b)
	n := 0
	for {
		if _, err := d.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 50 {
		t.Fatalf("tokens after Reset = %d, want 50", n)
	}
}

// TestZPushCaptures decodes the real Z-Push 2.7.1 responses and re-encodes
// them to the same bytes.
func TestZPushCaptures(t *testing.T) {
	files, err := filepath.Glob("testdata/zpush/*.wbxml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := Parse(b, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out, err := doc.Encode(nil)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("%s: round trip differs (%v)", f, err)
		}
	}
}
