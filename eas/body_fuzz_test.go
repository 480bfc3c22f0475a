package eas

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easgate/easgate/eas/wbxml"
)

// typedParse parses doc with the typed parser its root selects; nil when none applies.
func typedParse(doc *wbxml.Document) (builder, error) {
	switch doc.Root.Tag {
	case wbxml.ProvisionProvision:
		return ParseProvision(doc)
	case wbxml.FolderHierarchyFolderSync:
		return ParseFolderSync(doc)
	case wbxml.AirSyncSync:
		return ParseSync(doc)
	case wbxml.PingPing:
		return ParsePing(doc)
	case wbxml.SettingsSettings:
		return ParseSettings(doc)
	case wbxml.ComposeMailSendMail, wbxml.ComposeMailSmartReply, wbxml.ComposeMailSmartForward:
		return ParseComposeMail(doc)
	case wbxml.ItemOperationsItemOperations:
		return ParseItemOperations(doc)
	}
	return nil, nil
}

// FuzzBodyRoundTrip checks the fidelity contract of typed bodies: for any WBXML body that a
// typed parser accepts, building it back without changes gives the input bytes.
func FuzzBodyRoundTrip(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, name := range files {
		if !strings.HasSuffix(name, ".xml") && !strings.HasSuffix(name, ".wbxml") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if strings.HasSuffix(name, ".xml") {
			doc, err := wbxml.FromXML(bytes.NewReader(b))
			if err != nil {
				f.Fatal(err)
			}
			if b, err = doc.Encode(nil); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		doc, err := ParseBody(in, wbxml.Limits{MaxDocumentSize: 1 << 16})
		if err != nil {
			return
		}
		typed, err := typedParse(doc)
		if err != nil || typed == nil {
			return
		}
		out, err := typed.AppendTo(nil)
		if err != nil {
			t.Fatalf("accepted body does not re-encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("parse→build changed the body\n in % x\nout % x", in, out)
		}
	})
}
