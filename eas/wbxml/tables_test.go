package wbxml

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestTablesUpToDate regenerates tables.go from codepages.txt with gen.go
// and fails if the committed file differs.
func TestTablesUpToDate(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	out := filepath.Join(t.TempDir(), "tables.go")
	cmd := exec.Command(goBin, "run", "gen.go", "-input", "codepages.txt", "-output", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen.go: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("tables.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("tables.go is stale: run go generate ./eas/wbxml")
	}
}

// TestMSASWBXML_2_1_2_1_PageNames checks every page number, name and
// namespace against MS-ASWBXML section 2.1.2.1 and MS-ASCMD's namespaces.
func TestMSASWBXML_2_1_2_1_PageNames(t *testing.T) {
	want := []string{
		"AirSync", "Contacts", "Email", "AirNotify", "Calendar", "Move",
		"GetItemEstimate", "FolderHierarchy", "MeetingResponse", "Tasks",
		"ResolveRecipients", "ValidateCert", "Contacts2", "Ping", "Provision",
		"Search", "GAL", "AirSyncBase", "Settings", "DocumentLibrary",
		"ItemOperations", "ComposeMail", "Email2", "Notes", "RightsManagement",
		"Find",
	}
	if NumPages != len(want) {
		t.Fatalf("NumPages = %d, want %d", NumPages, len(want))
	}
	for i, name := range want {
		p := uint8(i)
		if got := PageName(p); got != name {
			t.Errorf("page %d name = %q, want %q", i, got, name)
		}
		ns := name + ":"
		if name == "GAL" {
			ns = "Gal:" // as MS-ASCMD's examples (and libwbxml) write it
		}
		if got := PageNamespace(p); got != ns {
			t.Errorf("page %d namespace = %q, want %q", i, got, ns)
		}
		for _, ns := range []string{name, name + ":"} {
			if got, ok := PageByNamespace(ns); !ok || got != p {
				t.Errorf("PageByNamespace(%q) = %d, %v", ns, got, ok)
			}
		}
	}
	if PageName(NumPages) != "" || PageNamespace(200) != "" {
		t.Error("pages beyond 25 must have no name")
	}
}

// TestMSASWBXML_2_1_2_1_KnownTokens spot-checks tokens of every page against
// the MS-ASWBXML tables, including the 16.0 and 16.1 additions.
func TestMSASWBXML_2_1_2_1_KnownTokens(t *testing.T) {
	cases := []struct {
		tag       Tag
		page, tok uint8
		name, ns  string
	}{
		{AirSyncSync, 0, 0x05, "Sync", "AirSync:"},
		{AirSyncResponses, 0, 0x06, "Responses", "AirSync:"},
		{AirSyncAdd, 0, 0x07, "Add", "AirSync:"},
		{AirSyncChange, 0, 0x08, "Change", "AirSync:"},
		{AirSyncSyncKey, 0, 0x0B, "SyncKey", "AirSync:"},
		{AirSyncCollectionId, 0, 0x12, "CollectionId", "AirSync:"},
		{AirSyncApplicationData, 0, 0x1D, "ApplicationData", "AirSync:"},
		{AirSyncHeartbeatInterval, 0, 0x29, "HeartbeatInterval", "AirSync:"},
		{ContactsFileAs, 1, 0x1E, "FileAs", "Contacts:"},
		{ContactsWeightedRank, 1, 0x3E, "WeightedRank", "Contacts:"},
		{EmailSubject, 2, 0x14, "Subject", "Email:"},
		{EmailDisallowNewTimeProposal, 2, 0x3F, "DisallowNewTimeProposal", "Email:"},
		{AirNotifyDeviceFriendlyName, 3, 0x17, "DeviceFriendlyName", "AirNotify:"},
		{CalendarTimezone, 4, 0x05, "Timezone", "Calendar:"},
		{CalendarUID, 4, 0x28, "UID", "Calendar:"},
		{CalendarClientUid, 4, 0x3C, "ClientUid", "Calendar:"},
		{MoveMoveItems, 5, 0x05, "MoveItems", "Move:"},
		{MoveDstMsgId, 5, 0x0C, "DstMsgId", "Move:"},
		{GetItemEstimateEstimate, 6, 0x0C, "Estimate", "GetItemEstimate:"},
		{FolderHierarchyDisplayName, 7, 0x07, "DisplayName", "FolderHierarchy:"},
		{FolderHierarchyFolderSync, 7, 0x16, "FolderSync", "FolderHierarchy:"},
		{FolderHierarchyCount, 7, 0x17, "Count", "FolderHierarchy:"},
		{MeetingResponseInstanceId, 8, 0x0E, "InstanceId", "MeetingResponse:"},
		{MeetingResponseProposedStartTime, 8, 0x10, "ProposedStartTime", "MeetingResponse:"},
		{MeetingResponseSendResponse, 8, 0x12, "SendResponse", "MeetingResponse:"},
		{TasksFirstDayOfWeek, 9, 0x26, "FirstDayOfWeek", "Tasks:"},
		{ResolveRecipientsMaxPictures, 10, 0x1D, "MaxPictures", "ResolveRecipients:"},
		{ValidateCertCheckCRL, 11, 0x09, "CheckCRL", "ValidateCert:"},
		{Contacts2MMS, 12, 0x0E, "MMS", "Contacts2:"},
		{PingHeartbeatInterval, 13, 0x08, "HeartbeatInterval", "Ping:"},
		{PingMaxFolders, 13, 0x0D, "MaxFolders", "Ping:"},
		{ProvisionPolicyKey, 14, 0x09, "PolicyKey", "Provision:"},
		{ProvisionRemoteWipe, 14, 0x0C, "RemoteWipe", "Provision:"},
		{ProvisionRequireStorageCardEncryption, 14, 0x10, "RequireStorageCardEncryption", "Provision:"},
		{ProvisionHash, 14, 0x3A, "Hash", "Provision:"},
		{ProvisionAccountOnlyRemoteWipe, 14, 0x3B, "AccountOnlyRemoteWipe", "Provision:"},
		{SearchStore, 15, 0x07, "Store", "Search:"},
		{SearchMaxPictures, 15, 0x23, "MaxPictures", "Search:"},
		{GALEmailAddress, 16, 0x0F, "EmailAddress", "Gal:"},
		{AirSyncBaseBody, 17, 0x0A, "Body", "AirSyncBase:"},
		{AirSyncBaseLocation, 17, 0x20, "Location", "AirSyncBase:"},
		{AirSyncBaseInstanceId, 17, 0x2D, "InstanceId", "AirSyncBase:"},
		{SettingsDeviceInformation, 18, 0x16, "DeviceInformation", "Settings:"},
		{SettingsRightsManagementInformation, 18, 0x2B, "RightsManagementInformation", "Settings:"},
		{DocumentLibraryContentType, 19, 0x0C, "ContentType", "DocumentLibrary:"},
		{ItemOperationsFetch, 20, 0x06, "Fetch", "ItemOperations:"},
		{ItemOperationsMoveAlways, 20, 0x19, "MoveAlways", "ItemOperations:"},
		{ComposeMailSendMail, 21, 0x05, "SendMail", "ComposeMail:"},
		{ComposeMailMime, 21, 0x10, "Mime", "ComposeMail:"},
		{ComposeMailForwardees, 21, 0x15, "Forwardees", "ComposeMail:"},
		{ComposeMailEmail, 21, 0x18, "Email", "ComposeMail:"},
		{Email2ConversationId, 22, 0x09, "ConversationId", "Email2:"},
		{Email2IsDraft, 22, 0x15, "IsDraft", "Email2:"},
		{Email2Send, 22, 0x17, "Send", "Email2:"},
		{NotesCategory, 23, 0x09, "Category", "Notes:"},
		{RightsManagementRightsManagementLicense, 24, 0x08, "RightsManagementLicense", "RightsManagement:"},
		{RightsManagementTemplateID, 24, 0x14, "TemplateID", "RightsManagement:"},
		{RightsManagementRemoveRightsManagementProtection, 24, 0x18, "RemoveRightsManagementProtection", "RightsManagement:"},
		{FindFind, 25, 0x05, "Find", "Find:"},
		{FindResponse, 25, 0x11, "Response", "Find:"},
		{FindGalSearchCriterion, 25, 0x19, "GalSearchCriterion", "Find:"},
		{FindPicture, 25, 0x22, "Picture", "Find:"},
	}
	for _, c := range cases {
		if c.tag.Page() != c.page || c.tag.Token() != c.tok {
			t.Errorf("%s = page %d token 0x%02X, want page %d token 0x%02X", c.name, c.tag.Page(), c.tag.Token(), c.page, c.tok)
		}
		if c.tag.Name() != c.name || c.tag.Namespace() != c.ns {
			t.Errorf("tag %04X: %s %s, want %s %s", uint16(c.tag), c.tag.Namespace(), c.tag.Name(), c.ns, c.name)
		}
		if got, ok := Lookup(c.ns, c.name); !ok || got != c.tag {
			t.Errorf("Lookup(%q, %q) = %v, %v", c.ns, c.name, got, ok)
		}
		if !c.tag.Known() {
			t.Errorf("%v not Known", c.tag)
		}
	}
	if got := AirSyncSync.String(); got != "AirSync:Sync" {
		t.Errorf("String = %q", got)
	}
	if got := ProvisionAccountOnlyRemoteWipe.Since(); got != "16.1" {
		t.Errorf("AccountOnlyRemoteWipe since %q", got)
	}
}

// TestTablesNoDuplicates checks that within every page each token has one
// name and each name one token, and that the reverse map is complete.
func TestTablesNoDuplicates(t *testing.T) {
	total := 0
	for p := range pageTable {
		seen := map[string]uint8{}
		for tok, name := range pageTable[p].names {
			if name == "" {
				continue
			}
			if tok < 0x05 || tok > 0x3F {
				t.Errorf("page %d: token 0x%02X outside 0x05..0x3F", p, tok)
			}
			if prev, dup := seen[name]; dup {
				t.Errorf("page %d: %s at 0x%02X and 0x%02X", p, name, prev, tok)
			}
			seen[name] = uint8(tok)
			total++
			tag := MakeTag(uint8(p), uint8(tok))
			if got, ok := LookupInPage(uint8(p), name); !ok || got != tag {
				t.Errorf("LookupInPage(%d, %s) = %v", p, name, got)
			}
		}
		if len(seen) == 0 {
			t.Errorf("page %d has no tags", p)
		}
	}
	if total != len(tagByName) {
		t.Errorf("reverse map has %d entries, tables %d", len(tagByName), total)
	}
}

// TestUnknownTokenIsAnonymous documents the choice for unassigned tokens:
// valid, nameless, printable, and found again by their hex name.
func TestUnknownTokenIsAnonymous(t *testing.T) {
	tag := MakeTag(PageAirSync, 0x11) // Version in 2.0, unassigned since 2.5
	if !tag.Valid() || tag.Known() || tag.Name() != "" {
		t.Fatalf("tag %v: valid %v known %v name %q", tag, tag.Valid(), tag.Known(), tag.Name())
	}
	if got := tag.String(); got != "AirSync:0x11" {
		t.Errorf("String = %q", got)
	}
	for _, name := range []string{"0x11", "_0x11"} {
		if got, ok := Lookup("AirSync:", name); !ok || got != tag {
			t.Errorf("Lookup(%q) = %v %v", name, got, ok)
		}
	}
	if MakeTag(26, 0x05).Valid() || MakeTag(0, 0x04).Valid() || MakeTag(0, 0x40).Valid() {
		t.Error("tags outside pages 0..25 or tokens 0x05..0x3F must be invalid")
	}
}
