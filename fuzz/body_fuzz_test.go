package fuzz

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

type appender interface {
	AppendTo(dst []byte) ([]byte, error)
}

// typedParse parses doc with the typed parser its root selects; nil when none applies.
func typedParse(doc *wbxml.Document) (appender, error) {
	switch doc.Root.Tag {
	case wbxml.ProvisionProvision:
		return eas.ParseProvision(doc)
	case wbxml.FolderHierarchyFolderSync:
		return eas.ParseFolderSync(doc)
	case wbxml.AirSyncSync:
		return eas.ParseSync(doc)
	case wbxml.PingPing:
		return eas.ParsePing(doc)
	case wbxml.SettingsSettings:
		return eas.ParseSettings(doc)
	case wbxml.ComposeMailSendMail, wbxml.ComposeMailSmartReply, wbxml.ComposeMailSmartForward:
		return eas.ParseComposeMail(doc)
	case wbxml.ItemOperationsItemOperations:
		return eas.ParseItemOperations(doc)
	}
	return nil, nil
}

// FuzzBodyRoundTrip checks the fidelity contract of the typed command bodies (package eas): for
// any WBXML body a typed parser accepts, building it back without changes gives the input bytes,
// so the gateway never alters what it does not mean to change.
func FuzzBodyRoundTrip(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "eas", "testdata", "*"))
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
		doc, err := eas.ParseBody(in, wbxml.Limits{MaxDocumentSize: 1 << 16})
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
