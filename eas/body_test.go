package eas

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easgate/easgate/eas/wbxml"
)

func readDoc(t *testing.T, name string) ([]byte, *wbxml.Document) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc *wbxml.Document
	if strings.HasSuffix(name, ".xml") {
		doc, err = wbxml.FromXML(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err = doc.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		doc, err = ParseBody(b, wbxml.Limits{})
	} else {
		doc, err = ParseBody(b, wbxml.Limits{})
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b, doc
}

type builder interface{ AppendTo([]byte) ([]byte, error) }

// roundTrip checks that a typed body built back from what it parsed encodes to the input
// bytes.
func roundTrip(t *testing.T, name string, want []byte, b builder) {
	t.Helper()
	got, err := b.AppendTo(nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: parse→build changed the body\n got % x\nwant % x", name, got, want)
	}
}

// A real Provision response (Z-Push 2.7.1): MS-ASPROV 2.2.2 policy document.
func TestMSASPROV_ProvisionResponsePolicy(t *testing.T) {
	b, doc := readDoc(t, "provision-response-policy.wbxml")
	p, err := ParseProvision(doc)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != ProvisionSuccess || len(p.Policies) != 1 {
		t.Fatalf("%+v", p)
	}
	pol := p.Policies[0]
	if pol.PolicyType != PolicyTypeWBXML || pol.PolicyKey != "138729277" || pol.Status != PolicySuccess || pol.Data == nil {
		t.Fatalf("policy %+v", pol)
	}
	d := pol.Data
	if d.DevicePasswordEnabled == nil || *d.DevicePasswordEnabled || d.MaxInactivityTimeDeviceLock == nil ||
		*d.MaxInactivityTimeDeviceLock != 900 || d.MaxEmailBodyTruncationSize == nil || *d.MaxEmailBodyTruncationSize != -1 ||
		d.AllowBluetooth == nil || *d.AllowBluetooth != 2 || d.MaxAttachmentSize == nil || *d.MaxAttachmentSize != NoLimit ||
		d.UnapprovedInROMApplicationList == nil || len(d.UnapprovedInROMApplicationList) != 0 {
		t.Fatalf("document %+v", d)
	}
	roundTrip(t, "provision", b, p)

	// Changing one setting rewrites only that element.
	d.DevicePasswordEnabled = Ptr(true)
	d.MinDevicePasswordLength = Ptr(int64(6))
	pol.PolicyKey = "42"
	out, err := p.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc2, err := ParseBody(out, wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := ParseProvision(doc2)
	if err != nil {
		t.Fatal(err)
	}
	d2 := p2.Policies[0].Data
	if p2.Policies[0].PolicyKey != "42" || !*d2.DevicePasswordEnabled || *d2.MinDevicePasswordLength != 6 ||
		*d2.MaxInactivityTimeDeviceLock != 900 {
		t.Fatalf("modified %+v", d2)
	}
}

func TestFolderSyncResponsesZPush(t *testing.T) {
	for _, name := range []string{"foldersync-response-initial.wbxml", "foldersync-response-small.wbxml"} {
		b, doc := readDoc(t, name)
		f, err := ParseFolderSync(doc)
		if err != nil {
			t.Fatal(err)
		}
		if f.Status != FolderSyncSuccess || f.SyncKey == "" || f.Changes == nil || f.Changes.Count == nil ||
			int(*f.Changes.Count) != len(f.Changes.Entries) {
			t.Fatalf("%s: %+v", name, f)
		}
		for _, c := range f.Changes.Entries {
			if c.Op == wbxml.FolderHierarchyAdd && (c.ServerID == "" || c.DisplayName == "" || c.Type == 0) {
				t.Fatalf("%s: entry %+v", name, c)
			}
		}
		roundTrip(t, name, b, f)
	}
}

func TestSyncResponseZPush(t *testing.T) {
	b, doc := readDoc(t, "sync-response.wbxml")
	s, err := ParseSync(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Collections) == 0 || s.Collections[0].SyncKey == "" || s.Collections[0].Status != SyncSuccess {
		t.Fatalf("%+v", s)
	}
	roundTrip(t, "sync", b, s)
}

func TestWrongRootAndBadValues(t *testing.T) {
	_, doc := readDoc(t, "sync-response.wbxml")
	if _, err := ParseProvision(doc); !errors.Is(err, ErrInvalidBody) {
		t.Fatalf("wrong root: %v", err)
	}
	if _, err := ParseBody([]byte{3, 1, 106, 0, 0x45}, wbxml.Limits{}); !errors.Is(err, ErrInvalidWBXML) {
		t.Fatalf("truncated WBXML: %v", err)
	}
	bad := wbxml.NewDocument(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingHeartbeatInterval, "ten")))
	if _, err := ParsePing(bad); !errors.Is(err, ErrInvalidBody) {
		t.Fatalf("non-numeric heartbeat: %v", err)
	}
	var e *Error
	if _, err := ParsePing(wbxml.NewDocument(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingStatus, "x")))); !errors.As(err, &e) || e.Status != StatusInvalidXML {
		t.Fatalf("bad status: %v", err)
	}
}

// MS-ASPROV 4.1 / MS-ASCMD 4.6: the three phases of provisioning, and the wipe directives.
func TestMSASPROV_4_ProvisionRequests(t *testing.T) {
	b, doc := readDoc(t, "provision-request-initial.xml")
	p, err := ParseProvision(doc)
	if err != nil {
		t.Fatal(err)
	}
	di := p.DeviceInformation
	if di == nil || di.Model != "Nexus 5X" || di.IMEI != "353627075412345" || di.FriendlyName != "Work phone" ||
		di.OS != "Android 8.1.0" || di.OSLanguage != "English" || di.PhoneNumber != "+14255550100" ||
		di.UserAgent != "Android-Mail/2023" || di.EnableOutboundSMS == nil || *di.EnableOutboundSMS ||
		di.MobileOperator != "Contoso Mobile" {
		t.Fatalf("DeviceInformation %+v", di)
	}
	if len(p.Policies) != 1 || p.Policies[0].PolicyType != PolicyTypeWBXML || p.Policies[0].PolicyKey != "" {
		t.Fatalf("policies %+v", p.Policies)
	}
	roundTrip(t, "initial", b, p)

	b, doc = readDoc(t, "provision-request-ack.xml")
	p, err = ParseProvision(doc)
	if err != nil {
		t.Fatal(err)
	}
	if pol := p.Policies[0]; pol.PolicyKey != "1307199584" || pol.Status != PolicyAckSuccess {
		t.Fatalf("ack %+v", pol)
	}
	roundTrip(t, "ack", b, p)
	// Built from scratch, the acknowledgement has PolicyKey before Status (MS-ASPROV 2.2.2.41).
	fresh := &Provision{Policies: []*Policy{{PolicyType: PolicyTypeWBXML, PolicyKey: "1307199584", Status: PolicyAckSuccess}}}
	roundTrip(t, "ack from scratch", b, fresh)

	b, doc = readDoc(t, "provision-response-remotewipe.xml")
	p, err = ParseProvision(doc)
	if err != nil {
		t.Fatal(err)
	}
	if p.RemoteWipe == nil || p.RemoteWipe.Status != 0 || p.Status != ProvisionSuccess {
		t.Fatalf("wipe %+v", p)
	}
	roundTrip(t, "wipe", b, p)
	roundTrip(t, "wipe from scratch", b, &Provision{Status: ProvisionSuccess, RemoteWipe: &RemoteWipe{}})

	b, doc = readDoc(t, "provision-request-accountonlywipe-ack.xml")
	p, err = ParseProvision(doc)
	if err != nil {
		t.Fatal(err)
	}
	if p.AccountOnlyRemoteWipe == nil || p.AccountOnlyRemoteWipe.Status != RemoteWipeAckSuccess || p.RemoteWipe != nil {
		t.Fatalf("account-only wipe ack %+v", p)
	}
	roundTrip(t, "account-only wipe ack", b, p)
}

// A policy document built from scratch parses back to the same settings.
func TestPolicyDocumentBuild(t *testing.T) {
	d := &PolicyDocument{DevicePasswordEnabled: Ptr(true), MinDevicePasswordLength: Ptr(int64(6)),
		MaxInactivityTimeDeviceLock: Ptr(int64(300)), MaxAttachmentSize: Ptr(NoLimit), RequireDeviceEncryption: Ptr(true),
		AllowCamera: Ptr(false), AllowBluetooth: Ptr(int64(1)), MaxEmailBodyTruncationSize: Ptr(int64(-1)),
		UnapprovedInROMApplicationList: []string{"Solitaire.exe"}, ApprovedApplicationList: []string{}}
	p := &Provision{Status: ProvisionSuccess, Policies: []*Policy{{PolicyType: PolicyTypeWBXML, PolicyKey: "7", Status: PolicySuccess, Data: d}}}
	b, err := p.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ParseBody(b, wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseProvision(doc)
	if err != nil {
		t.Fatal(err)
	}
	g := back.Policies[0].Data
	if !*g.DevicePasswordEnabled || *g.MinDevicePasswordLength != 6 || *g.MaxAttachmentSize != NoLimit ||
		*g.AllowCamera || *g.AllowBluetooth != 1 || !equalStrings(g.UnapprovedInROMApplicationList, []string{"Solitaire.exe"}) ||
		g.ApprovedApplicationList == nil || len(g.ApprovedApplicationList) != 0 || g.AllowWiFi != nil {
		t.Fatalf("built document reads back as %+v", g)
	}
	if e := doc.Root.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy, wbxml.ProvisionData, wbxml.ProvisionEASProvisionDoc, wbxml.ProvisionMaxAttachmentSize); e == nil || e.Kind != wbxml.NoValue {
		t.Fatal("NoLimit must be written as an empty element")
	}
	roundTrip(t, "built", b, back)
}

func TestMSASCMD_FolderSyncRequest(t *testing.T) {
	b, doc := readDoc(t, "foldersync-request.xml")
	f, err := ParseFolderSync(doc)
	if err != nil || f.SyncKey != "0" || f.Changes != nil {
		t.Fatalf("%+v %v", f, err)
	}
	roundTrip(t, "foldersync request", b, f)
	roundTrip(t, "from scratch", b, &FolderSync{SyncKey: "0"})
}

func TestMSASCMD_SyncRequest(t *testing.T) {
	b, doc := readDoc(t, "sync-request.xml")
	s, err := ParseSync(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Collections) != 1 || *s.WindowSize != 100 {
		t.Fatalf("%+v", s)
	}
	c := s.Collections[0]
	if c.SyncKey != "1174397382" || c.CollectionID != "5" || !*c.DeletesAsMoves || !*c.GetChanges || *c.WindowSize != 25 ||
		len(c.Options) != 1 || len(c.Commands) != 3 {
		t.Fatalf("collection %+v", c)
	}
	o := c.Options[0]
	if *o.FilterType != 3 || *o.MIMESupport != 2 || !*o.RightsManagementSupport || len(o.BodyPreferences) != 1 {
		t.Fatalf("options %+v", o)
	}
	bp := o.BodyPreferences[0]
	if bp.Type != 2 || *bp.TruncationSize != 51200 || *bp.AllOrNone || *bp.Preview != 255 {
		t.Fatalf("body preference %+v", bp)
	}
	if c.Commands[0].Op != wbxml.AirSyncChange || c.Commands[0].ServerID != "5:10" || c.Commands[0].ApplicationData == nil ||
		c.Commands[1].Op != wbxml.AirSyncDelete || c.Commands[2].Op != wbxml.AirSyncFetch {
		t.Fatalf("commands %+v", c.Commands)
	}
	roundTrip(t, "sync request", b, s)

	// Rewriting: drop the Delete, cap the window; the unknown child stays.
	c.Commands = append(c.Commands[:1], c.Commands[2])
	c.WindowSize = Ptr(int64(10))
	out, err := s.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc2, _ := ParseBody(out, wbxml.Limits{})
	s2, err := ParseSync(doc2)
	if err != nil {
		t.Fatal(err)
	}
	c2 := s2.Collections[0]
	if len(c2.Commands) != 2 || c2.Commands[1].Op != wbxml.AirSyncFetch || *c2.WindowSize != 10 ||
		c2.elem.Find(wbxml.MakeTag(wbxml.PageAirSync, 0x3F)).Text() != "unknown to the gateway" {
		t.Fatalf("rewritten %+v", c2)
	}
}

func TestMSASCMD_Ping(t *testing.T) {
	b, doc := readDoc(t, "ping-request.xml")
	p, err := ParsePing(doc)
	if err != nil || *p.HeartbeatInterval != 470 || len(p.Folders) != 2 || p.Folders[1] != (PingFolder{ID: "1", Class: "Calendar"}) {
		t.Fatalf("%+v %v", p, err)
	}
	roundTrip(t, "ping request", b, p)
	roundTrip(t, "from scratch", b, &Ping{HeartbeatInterval: Ptr(int64(470)), Folders: p.Folders})

	b, doc = readDoc(t, "ping-response.xml")
	p, err = ParsePing(doc)
	if err != nil || p.Status != PingChanges || len(p.Folders) != 1 || p.Folders[0].ID != "5" {
		t.Fatalf("%+v %v", p, err)
	}
	roundTrip(t, "ping response", b, p)
	roundTrip(t, "from scratch", b, &Ping{Status: PingChanges, Folders: []PingFolder{{ID: "5"}}})
}

func TestMSASCMD_SettingsRequest(t *testing.T) {
	b, doc := readDoc(t, "settings-request.xml")
	s, err := ParseSettings(doc)
	if err != nil {
		t.Fatal(err)
	}
	di := s.DeviceInformation
	if di == nil || di.Model != "iPhone9C1" || di.FriendlyName != "Jane's iPhone" || di.UserAgent != "Apple-iPhone9C1/2003.65" ||
		di.EnableOutboundSMS != nil || di.MobileOperator != "Contoso" {
		t.Fatalf("device information %+v", di)
	}
	if s.Oof == nil || s.Oof.Get == nil || s.Oof.Get.BodyType != "Text" || s.UserInformation == nil || !s.UserInformation.Get ||
		s.RightsManagementInformation == nil || !s.RightsManagementInformation.Get {
		t.Fatalf("sections %+v", s)
	}
	roundTrip(t, "settings request", b, s)
	// The gateway answers DeviceInformation itself: build a response.
	resp := &Settings{Status: SettingsSuccess, DeviceInformation: &DeviceInformation{Status: SettingsSuccess}}
	out, err := resp.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc2, _ := ParseBody(out, wbxml.Limits{})
	r2, err := ParseSettings(doc2)
	if err != nil || r2.Status != 1 || r2.DeviceInformation.Status != 1 || r2.DeviceInformation.hasSet() {
		t.Fatalf("%+v %v", r2, err)
	}
}

func TestMSASCMD_SmartReply(t *testing.T) {
	b, doc := readDoc(t, "smartreply-request.xml")
	m, err := ParseComposeMail(doc)
	if err != nil {
		t.Fatal(err)
	}
	if m.Cmd != CmdSmartReply || m.ClientID != "SmartReply-7F3A" || !m.SaveInSentItems || m.ReplaceMime ||
		m.Source == nil || m.Source.FolderID != "5" || m.Source.ItemID != "5:12" ||
		!bytes.HasPrefix(m.Mime, []byte("From: jane@contoso.com")) || m.TemplateID != "cf5cf348-a8d7-40d5-91ef-a600b88a395d" {
		t.Fatalf("%+v", m)
	}
	roundTrip(t, "smartreply", b, m)
	// The gateway protects the message: new MIME, template consumed.
	m.Mime = []byte("Content-Type: application/pkcs7-mime\r\n\r\nx")
	m.TemplateID = ""
	out, _ := m.AppendTo(nil)
	doc2, _ := ParseBody(out, wbxml.Limits{})
	m2, err := ParseComposeMail(doc2)
	if err != nil || string(m2.Mime) != string(m.Mime) || m2.TemplateID != "" || m2.ClientID != "SmartReply-7F3A" {
		t.Fatalf("%+v %v", m2, err)
	}
}

// The 12.x form: SendMail's body is the MIME message, its parameters in the query.
func TestMSASCMD_SendMail12xForm(t *testing.T) {
	var r Request
	if err := ParseQuery([]byte("Cmd=SmartForward&User=u&DeviceId=D&DeviceType=T&ItemId=5%3A12&CollectionId=5&SaveInSent=T"), &r); err != nil {
		t.Fatal(err)
	}
	mime := []byte("Subject: fwd\r\n\r\nbody")
	m := MIMEComposeMail(&r, mime)
	if m.Cmd != CmdSmartForward || !m.RawMIME || !m.SaveInSentItems || m.Source.ItemID != "5:12" || m.Source.FolderID != "5" {
		t.Fatalf("%+v", m)
	}
	// Upgraded to the WBXML form, the same request reads back identically.
	out, err := m.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := ParseBody(out, wbxml.Limits{})
	m2, err := ParseComposeMail(doc)
	if err != nil || m2.Cmd != CmdSmartForward || string(m2.Mime) != string(mime) || m2.Source.ItemID != "5:12" {
		t.Fatalf("%+v %v", m2, err)
	}
}

func TestMSASCMD_ItemOperationsRequest(t *testing.T) {
	b, doc := readDoc(t, "itemoperations-request.xml")
	io, err := ParseItemOperations(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(io.Operations) != 3 || io.Response {
		t.Fatalf("%+v", io)
	}
	f := io.Operations[0]
	if f.Op != wbxml.ItemOperationsFetch || f.Store != "Mailbox" || f.CollectionID != "5" || f.ServerID != "5:12" || f.Options == nil {
		t.Fatalf("fetch %+v", f)
	}
	if io.Operations[1].FileReference != "5%3a12%3a0" || io.Operations[2].Op != wbxml.ItemOperationsEmptyFolderContents ||
		io.Operations[2].CollectionID != "4" {
		t.Fatalf("operations %+v %+v", io.Operations[1], io.Operations[2])
	}
	roundTrip(t, "itemoperations", b, io)
	// A response built by the gateway.
	resp := &ItemOperations{Status: 1, Response: true, Operations: []*ItemOperation{{Op: wbxml.ItemOperationsFetch, Status: 1, ServerID: "5:12",
		CollectionID: "5", Properties: wbxml.NewElement(wbxml.ItemOperationsProperties)}}}
	out, err := resp.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc2, _ := ParseBody(out, wbxml.Limits{})
	r2, err := ParseItemOperations(doc2)
	if err != nil || !r2.Response || r2.Status != 1 || len(r2.Operations) != 1 || r2.Operations[0].ServerID != "5:12" || r2.Operations[0].Properties == nil {
		t.Fatalf("%+v %v", r2, err)
	}
}
