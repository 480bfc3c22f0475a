package wbxml

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func xmlRoundTrip(t *testing.T, in []byte) string {
	t.Helper()
	doc, err := Parse(in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ToXML(doc, &buf); err != nil {
		t.Fatal(err)
	}
	back, err := FromXML(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("FromXML: %v\n%s", err, buf.String())
	}
	out, err := back.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("XML round trip:\n got %X\nwant %X\n%s", out, in, buf.String())
	}
	return buf.String()
}

func TestXMLRoundTripForms(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain", "03 01 6A 00 00 07 56 52 03 '0' 00 01 01",
			"<FolderSync xmlns=\"FolderHierarchy:\">\n  <SyncKey>0</SyncKey>\n</FolderSync>\n"},
		{"other page child", "03 01 6A 00 45 5D 00 02 54 03 'a<&>b' 00 01 01 01",
			"<Sync xmlns=\"AirSync:\">\n  <ApplicationData>\n    <Subject xmlns=\"Email:\">a&lt;&amp;&gt;b</Subject>\n  </ApplicationData>\n</Sync>\n"},
		{"empty", "03 01 6A 00 45 0B 01", "<Sync xmlns=\"AirSync:\">\n  <SyncKey/>\n</Sync>\n"},
		{"content bit", "03 01 6A 00 45 4B 01 01", `<SyncKey wbxml:content="1"/>`},
		{"empty string", "03 01 6A 00 45 4B 03 00 01 01", `<SyncKey wbxml:empty="1"/>`},
		{"opaque", "03 01 6A 00 00 15 45 50 C3 03 01 02 00 01 01", `<Mime wbxml:opaque="1">AQIA</Mime>`},
		{"empty opaque", "03 01 6A 00 00 15 45 50 C3 00 01 01", `<Mime wbxml:opaque="1"/>`},
		{"control characters", "03 01 6A 00 45 4B 03 01 02 00 01 01", `<SyncKey wbxml:base64="1">AQI=</SyncKey>`},
		{"invalid utf-8", "03 01 6A 00 45 4B 03 FF FE 00 01 01", `wbxml:base64="1"`},
		{"whitespace kept", "03 01 6A 00 45 4B 03 20 0D 0A 09 'x' 20 00 01 01", "<SyncKey> &#xD;\n\tx </SyncKey>"},
		{"string table", "03 01 6A 07 'ab' 00 'cde' 00 45 4B 83 03 01 01", `wbxml:stringtable="YWIAY2RlAA=="`},
		{"redundant switch", "03 01 6A 00 00 00 45 00 00 4B 01 01", `<SyncKey wbxml:switch="1" wbxml:content="1"/>`},
		{"header", "01 00 02 6A 06 'ab' 00 'x' 00 00 45 01", `wbxml:version="1.1" wbxml:publicidindex="2"`},
		{"header 1.0", "00 81 20 00 45 01", `wbxml:version="1.0" wbxml:publicid="160"`},
		{"charset", "03 01 04 00 45 01", `wbxml:charset="4"`},
		{"unknown token", "03 01 6A 00 45 51 03 'v' 00 01 01", "<_0x11>v</_0x11>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := xmlRoundTrip(t, hx(t, c.in))
			if !strings.Contains(got, c.want) {
				t.Fatalf("XML lacks %q:\n%s", c.want, got)
			}
			if strings.Contains(got, "wbxml:") != strings.Contains(got, `xmlns:wbxml="`+XMLNamespace+`"`) {
				t.Fatalf("marker namespace declaration inconsistent:\n%s", got)
			}
		})
	}
}

func TestXMLZPushCaptures(t *testing.T) {
	files, _ := filepath.Glob("testdata/zpush/*.wbxml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		x := xmlRoundTrip(t, b)
		if strings.Contains(x, "wbxml:") {
			t.Errorf("%s: a plain capture needs no markers:\n%s", f, x)
		}
	}
}

func TestFromXMLPrefixesAndErrors(t *testing.T) {
	src := `<?xml version="1.0"?>
<Sync xmlns="AirSync:" xmlns:email="Email" xmlns:A="AirSyncBase:">
  <Collections><Collection>
    <email:Subject>hi</email:Subject>
    <A:Body><A:Type>1</A:Type></A:Body>
  </Collection></Collections>
</Sync>`
	doc, err := FromXML(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	c := doc.Root.Path(AirSyncCollections, AirSyncCollection)
	if c.Find(EmailSubject).Text() != "hi" || c.Path(AirSyncBaseBody, AirSyncBaseType).Text() != "1" {
		t.Fatalf("prefixes not resolved")
	}
	bad := []string{
		`<Sync/>`,
		`<Sync xmlns="Nope:"/>`,
		`<Sync xmlns="AirSync:"><Bogus/></Sync>`,
		`<Sync xmlns="AirSync:">text<SyncKey/></Sync>`,
		`<Sync xmlns="AirSync:" foo="1"/>`,
		`<Sync xmlns="AirSync:" xmlns:wbxml="urn:easgate:wbxml"><SyncKey wbxml:opaque="1">!!</SyncKey></Sync>`,
		`<Sync xmlns="AirSync:" xmlns:wbxml="urn:easgate:wbxml"><SyncKey wbxml:ref="0">a</SyncKey></Sync>`,
		`<Sync xmlns="AirSync:"></Sync><Sync xmlns="AirSync:"/>`,
		`<Sync xmlns="AirSync:">`,
		`<Sync xmlns="AirSync:" xmlns:wbxml="urn:easgate:wbxml" wbxml:publicidindex="5"/>`,
		`<Sync xmlns="AirSync:" xmlns:wbxml="urn:easgate:wbxml" wbxml:version="2.0"/>`,
		`<Sync xmlns="AirSync:" xmlns:wbxml="urn:easgate:wbxml"><SyncKey wbxml:empty="1">x</SyncKey></Sync>`,
		`<Sync xmlns="AirSync:" xmlns:wbxml="urn:easgate:wbxml"><SyncKey wbxml:version="1.3"/></Sync>`,
		``,
	}
	for _, s := range bad {
		_, err := FromXML(strings.NewReader(s))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("FromXML(%q) = %v, want *SyntaxError", s, err)
		}
	}
	deep := strings.Repeat(`<Sync xmlns="AirSync:">`, 100) + strings.Repeat(`</Sync>`, 100)
	if _, err := FromXML(strings.NewReader(deep)); !errors.Is(err, ErrDepth) {
		t.Errorf("deep XML: %v", err)
	}
}

// TestWriteXMLMatchesToXML checks that the streaming WriteXML writes
// exactly what ToXML writes for the parsed tree, and fails where Parse
// fails.
func TestWriteXMLMatchesToXML(t *testing.T) {
	var inputs [][]byte
	files, _ := filepath.Glob("testdata/*.wbxml")
	zp, _ := filepath.Glob("testdata/zpush/*.wbxml")
	for _, f := range append(files, zp...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
	}
	for _, d := range benchDocs(t) {
		inputs = append(inputs, d.b)
	}
	for _, s := range []string{
		"03 01 6A 00 00 00 45 00 00 4B 01 01", "03 01 6A 00 45 4B 03 00 01 01", "03 01 6A 00 45 4B 01 01",
		"01 00 02 6A 06 'ab' 00 'x' 00 00 45 01", "03 01 6A 07 'ab' 00 'cde' 00 45 4B 83 03 01 01",
		"03 01 6A 00 45 03 'a' 00 4B 01 01", "03 01 6A 00 45 0B 03 'a' 00 01", "03 01 6A 00 45 03 'a' 00 03 'b' 00 01",
		"03 01 6A 00 45 C5 01", "03 01 6A 00 05", "03 01 6A 00 45 4B 03 FF 00 01 01",
	} {
		inputs = append(inputs, hx(t, s))
	}
	if len(inputs) < 50 {
		t.Fatalf("only %d inputs", len(inputs))
	}
	for i, b := range inputs {
		var streamed, tree bytes.Buffer
		errS := WriteXML(&streamed, b, Limits{})
		doc, errP := Parse(b, Limits{})
		if errP != nil {
			if errS == nil || errS.Error() != errP.Error() {
				t.Fatalf("input %d: WriteXML error %v, Parse error %v", i, errS, errP)
			}
			if streamed.Len() != 0 {
				t.Fatalf("input %d: WriteXML wrote output before failing", i)
			}
			continue
		}
		if errS != nil {
			t.Fatalf("input %d: WriteXML: %v", i, errS)
		}
		if err := ToXML(doc, &tree); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(streamed.Bytes(), tree.Bytes()) {
			t.Fatalf("input %d: WriteXML differs from ToXML:\n%s\n---\n%s", i, streamed.Bytes(), tree.Bytes())
		}
	}
}

// TestToXMLEditedTableRef: a string that was a table reference and was then
// edited is written as plain text, as Encode writes it inline.
func TestToXMLEditedTableRef(t *testing.T) {
	doc, err := Parse(hx(t, "03 01 6A 03 'ab' 00 45 4B 83 00 01 01"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	doc.Root.Find(AirSyncSyncKey).Value = []byte("zz")
	var buf bytes.Buffer
	if err := ToXML(doc, &buf); err != nil {
		t.Fatal(err)
	}
	back, err := FromXML(&buf)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	a, _ := doc.Encode(nil)
	b, _ := back.Encode(nil)
	if !bytes.Equal(a, b) {
		t.Fatalf("%X != %X", a, b)
	}
}
