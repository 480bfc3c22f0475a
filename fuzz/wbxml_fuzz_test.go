package fuzz

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/easgate/easgate/eas/wbxml"
)

// fuzzLimits keep single iterations cheap while still exercising every limit.
var fuzzLimits = wbxml.Limits{MaxDocumentSize: 1 << 20, MaxDepth: 32, MaxStringLen: 1 << 16, MaxOpaqueLen: 1 << 16, MaxStringTable: 1 << 12}

// wbxmlSeeds are small hand-made documents covering each token kind; the
// committed corpus in testdata/fuzz adds the golden files and the Z-Push
// captures.
var wbxmlSeeds = [][]byte{
	{0x03, 0x01, 0x6A, 0x00, 0x45, 0x01},
	{0x03, 0x01, 0x6A, 0x00, 0x00, 0x07, 0x56, 0x52, 0x03, '0', 0x00, 0x01, 0x01},
	{0x03, 0x01, 0x6A, 0x03, 'a', 'b', 0x00, 0x45, 0x4B, 0x83, 0x00, 0x01, 0x01},
	{0x03, 0x01, 0x6A, 0x00, 0x00, 0x15, 0x45, 0x50, 0xC3, 0x02, 0xFF, 0x00, 0x01, 0x01},
	{0x03, 0x00, 0x02, 0x6A, 0x02, 'x', 0x00, 0x00, 0x00, 0x45, 0x0B, 0x01},
}

// FuzzWBXMLDecode feeds arbitrary bytes to the token decoder. It must not
// panic; it must end in io.EOF or a typed error that stays sticky; tokens
// must alias the input; start and end tags must balance.
func FuzzWBXMLDecode(f *testing.F) {
	for _, s := range wbxmlSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := wbxml.NewDecoder(b, fuzzLimits)
		depth := 0
		var err error
		for i := 0; ; i++ {
			var tok wbxml.Token
			tok, err = d.Next()
			if err != nil {
				break
			}
			if i > len(b) {
				t.Fatalf("more tokens than input bytes")
			}
			switch tok.Kind {
			case wbxml.StartTag:
				if !tok.Tag.Valid() {
					t.Fatalf("invalid tag %v", tok.Tag)
				}
				if tok.HasContent {
					depth++
				}
			case wbxml.EndTag:
				depth--
			case wbxml.String, wbxml.Opaque:
				if len(tok.Data) > len(b) {
					t.Fatalf("data longer than input")
				}
			}
			if depth != d.Depth() || depth < 0 {
				t.Fatalf("depth %d, decoder says %d", depth, d.Depth())
			}
		}
		if err == io.EOF {
			if depth != 0 {
				t.Fatalf("EOF with %d open elements", depth)
			}
			return
		}
		if !wbxml.IsMalformed(err) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		if _, again := d.Next(); again != err {
			t.Fatalf("error not sticky: %v then %v", err, again)
		}
	})
}

// FuzzWBXMLTree checks the round-trip contract: whatever Parse accepts,
// Encode gives back byte for byte; and Parse accepts exactly what the token
// decoder accepts, except mixed content.
func FuzzWBXMLTree(f *testing.F) {
	for _, s := range wbxmlSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := wbxml.Parse(b, fuzzLimits)
		d := wbxml.NewDecoder(b, fuzzLimits)
		var tokErr error
		for tokErr == nil {
			_, tokErr = d.Next()
		}
		if err != nil {
			if !wbxml.IsMalformed(err) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if tokErr == io.EOF && !errors.Is(err, wbxml.ErrMixedContent) {
				t.Fatalf("token decoder accepts what Parse rejects with %v", err)
			}
			return
		}
		if tokErr != io.EOF {
			t.Fatalf("Parse accepts what the token decoder rejects with %v", tokErr)
		}
		out, err := doc.Encode(nil)
		if err != nil {
			t.Fatalf("parsed document does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip:\n  in %X\n out %X", b, out)
		}
	})
}

// FuzzWBXMLXML checks the XML text form both ways: a WBXML document that
// parses goes through ToXML and FromXML back to the same bytes, and the
// streaming WriteXML writes what ToXML writes (and fails where Parse fails);
// bytes that FromXML accepts as XML reach a fixed point after one
// encode/decode.
func FuzzWBXMLXML(f *testing.F) {
	for _, s := range wbxmlSeeds {
		f.Add(s)
	}
	f.Add([]byte(`<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>0</SyncKey></Collection></Collections></Sync>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if doc, err := wbxml.Parse(b, fuzzLimits); err == nil {
			var x bytes.Buffer
			if err := wbxml.ToXML(doc, &x); err != nil {
				t.Fatalf("ToXML: %v", err)
			}
			back, err := wbxml.FromXMLLimits(&x, fuzzLimits)
			if err != nil {
				t.Fatalf("FromXML of ToXML output: %v\n%s", err, x.String())
			}
			out, err := back.Encode(nil)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("XML round trip (%v):\n  in %X\n out %X\n%s", err, b, out, x.String())
			}
		}
		var streamed, tree bytes.Buffer
		errS := wbxml.WriteXML(&streamed, b, fuzzLimits)
		if doc, err := wbxml.Parse(b, fuzzLimits); err == nil {
			if errS != nil {
				t.Fatalf("WriteXML fails where Parse succeeds: %v", errS)
			}
			if err := wbxml.ToXML(doc, &tree); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(streamed.Bytes(), tree.Bytes()) {
				t.Fatalf("WriteXML differs from ToXML")
			}
		} else if errS == nil || streamed.Len() != 0 {
			t.Fatalf("WriteXML accepts (or writes) what Parse rejects with %v", err)
		}
		doc, err := wbxml.FromXMLLimits(bytes.NewReader(b), fuzzLimits)
		if err != nil {
			if !wbxml.IsMalformed(err) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		enc, err := doc.Encode(nil)
		if err != nil {
			t.Fatalf("FromXML accepted a document that does not encode: %v", err)
		}
		again, err := wbxml.Parse(enc, wbxml.Limits{})
		if err != nil {
			t.Fatalf("encoding of accepted XML does not parse: %v", err)
		}
		var x bytes.Buffer
		if err := wbxml.ToXML(again, &x); err != nil {
			t.Fatal(err)
		}
		third, err := wbxml.FromXML(&x)
		if err != nil {
			t.Fatalf("canonical XML does not read back: %v\n%s", err, x.String())
		}
		enc2, err := third.Encode(nil)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("XML form not a fixed point (%v)", err)
		}
	})
}

// FuzzWBXMLSkip checks Decoder.Skip (which walks well-formed content without building tokens)
// against skipping with Next: the same error, the same position, the same tokens afterwards.
func FuzzWBXMLSkip(f *testing.F) {
	for _, s := range wbxmlSeeds {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, doc []byte, skipAt uint8) {
		walker, slow := wbxml.NewDecoder(doc, fuzzLimits), wbxml.NewDecoder(doc, fuzzLimits)
		for i := 0; i < 1<<16; i++ {
			ta, ea := walker.Next()
			tb, eb := slow.Next()
			if errString(ea) != errString(eb) || ta.Kind != tb.Kind || ta.Tag != tb.Tag || ta.Offset != tb.Offset || !bytes.Equal(ta.Data, tb.Data) {
				t.Fatalf("token %d differs: %+v %v / %+v %v", i, ta, ea, tb, eb)
			}
			if ea != nil {
				return
			}
			// Skip every element with content that opens at the chosen depth.
			if ta.Kind != wbxml.StartTag || !ta.HasContent || walker.Depth() != int(skipAt%4)+1 {
				continue
			}
			ea = walker.Skip()
			depth := slow.Depth()
			for {
				tok, err := slow.Next()
				if err != nil {
					eb = err
					break
				}
				if tok.Kind == wbxml.EndTag && slow.Depth() < depth {
					break
				}
			}
			if errString(ea) != errString(eb) || walker.Offset() != slow.Offset() || walker.Depth() != slow.Depth() {
				t.Fatalf("Skip: %v at %d depth %d; Next: %v at %d depth %d", ea, walker.Offset(), walker.Depth(), eb, slow.Offset(), slow.Depth())
			}
			if ea != nil {
				return
			}
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
