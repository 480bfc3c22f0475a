package wbxml_test

import (
	"fmt"
	"io"
	"os"

	"github.com/easgate/easgate/eas/wbxml"
)

// Build a FolderSync request, encode it, and read it back with the token
// decoder.
func Example() {
	doc := wbxml.NewDocument(wbxml.NewElement(wbxml.FolderHierarchyFolderSync,
		wbxml.NewText(wbxml.FolderHierarchySyncKey, "0")))
	b, err := doc.Encode(nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("% X\n", b)

	d := wbxml.NewDecoder(b, wbxml.Limits{})
	for {
		tok, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		switch tok.Kind {
		case wbxml.StartTag, wbxml.EndTag:
			fmt.Println(tok.Kind, tok.Tag)
		case wbxml.String:
			fmt.Printf("String %q\n", tok.Data)
		}
	}
	// Output:
	// 03 01 6A 00 00 07 56 52 03 30 00 01 01
	// StartTag FolderHierarchy:FolderSync
	// StartTag FolderHierarchy:SyncKey
	// String "0"
	// EndTag FolderHierarchy:SyncKey
	// EndTag FolderHierarchy:FolderSync
}

// Parse a body, look a value up, change it and re-encode.
func ExampleParse() {
	body := []byte{0x03, 0x01, 0x6A, 0x00, 0x00, 0x0D, 0x45, 0x48, 0x03, '4', '8', '0', 0x00, 0x01, 0x01}
	doc, err := wbxml.Parse(body, wbxml.Limits{})
	if err != nil {
		panic(err)
	}
	hb := doc.Root.Find(wbxml.PingHeartbeatInterval)
	fmt.Println(hb.Text())
	hb.SetText("900")
	out, _ := doc.Encode(nil)
	fmt.Printf("% X\n", out)
	// Output:
	// 480
	// 03 01 6A 00 00 0D 45 48 03 39 30 30 00 01 01
}

func ExampleToXML() {
	doc := wbxml.NewDocument(wbxml.NewElement(wbxml.PingPing,
		wbxml.NewText(wbxml.PingStatus, "1")))
	if err := wbxml.ToXML(doc, os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// <?xml version="1.0" encoding="utf-8"?>
	// <!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">
	// <Ping xmlns="Ping:">
	//   <Status>1</Status>
	// </Ping>
}
