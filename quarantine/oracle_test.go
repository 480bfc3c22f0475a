package quarantine

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// xmlNode is a generic XML element for reading libwbxml's output.
type xmlNode struct {
	XMLName  xml.Name
	Children []xmlNode `xml:",any"`
	Text     string    `xml:",chardata"`
}

func (n *xmlNode) child(local string) *xmlNode {
	for i := range n.Children {
		if n.Children[i].XMLName.Local == local {
			return &n.Children[i]
		}
	}
	return nil
}

// oracleDecode decodes WBXML with libwbxml's wbxml2xml (Debian libwbxml2-utils), an
// implementation independent of eas/wbxml, so the answers are checked by a second codec.
func oracleDecode(t *testing.T, b []byte) *xmlNode {
	t.Helper()
	bin, err := exec.LookPath("wbxml2xml")
	if err != nil {
		t.Fatalf("wbxml2xml not installed (apt-get install -y libwbxml2-utils): %v", err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wbxml"), filepath.Join(dir, "out.xml")
	if err := os.WriteFile(in, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(bin, "-l", "ACTIVESYNC", "-m", "0", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("wbxml2xml: %v: %s", err, msg)
	}
	x, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var n xmlNode
	d := xml.NewDecoder(strings.NewReader(string(x)))
	d.Strict = false
	if err := d.Decode(&n); err != nil {
		t.Fatalf("oracle XML: %v\n%s", err, x)
	}
	return &n
}

// TestOracle_CommonStatusAnswers decodes the blocking answer of every command that
// libwbxml 0.11.8 knows with libwbxml and checks root element, namespace and Status.
func TestOracle_CommonStatusAnswers(t *testing.T) {
	q := newResponder(t)
	for _, cmd := range allCommands {
		if cmd == eas.CmdFind {
			continue // libwbxml 0.11.8 has no code page 25 (Find, EAS 16.1): it decodes it as FolderHierarchy:unknown; the own-codec table test covers Find
		}
		a, err := q.Answer(request(cmd, eas.V141), blocked, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		n := oracleDecode(t, a.Body)
		want := rootFor[cmd]
		if n.XMLName.Local != want.Name() || strings.TrimSuffix(n.XMLName.Space, ":") != strings.TrimSuffix(want.Namespace(), ":") {
			t.Errorf("%v: oracle root %s %s, want %s %s", cmd, n.XMLName.Space, n.XMLName.Local, want.Namespace(), want.Name())
			continue
		}
		st := n.child("Status")
		if cmd == eas.CmdMeetingResponse {
			st = n.child("Result").child("Status")
		}
		if st == nil || strings.TrimSpace(st.Text) != "129" {
			t.Errorf("%v: oracle sees no Status 129", cmd)
		}
	}
}

// TestOracle_InboxMessage decodes the Sync that delivers the message with libwbxml.
func TestOracle_InboxMessage(t *testing.T) {
	q := newResponder(t)
	req := request(eas.CmdSync, eas.V161)
	a, _ := q.Answer(req, notCompliant, syncBody(t, "0"), t0)
	k := syncCollection(t, a).Find(wbxml.AirSyncSyncKey).Text()
	a, _ = q.Answer(req, notCompliant, syncBody(t, k, prefElem("2", "")), t0)
	n := oracleDecode(t, a.Body)
	add := n.child("Collections").child("Collection").child("Commands").child("Add")
	if add == nil {
		t.Fatal("oracle sees no Add")
	}
	app := add.child("ApplicationData")
	if s := app.child("Subject"); s == nil || !strings.Contains(s.Text, "security requirements") {
		t.Fatal("oracle sees no Subject")
	}
	body := app.child("Body")
	if body == nil || strings.TrimSpace(body.child("Type").Text) != "2" || !strings.Contains(body.child("Data").Text, "<html") {
		t.Fatal("oracle sees no HTML body")
	}
}
