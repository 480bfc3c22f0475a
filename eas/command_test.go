package eas

import (
	"strings"
	"testing"
)

// MS-ASHTTP 2.2.1.1.1.1.2: the command codes of the base64 form.
func TestMSASHTTP_2_2_1_1_1_1_2_CommandCodes(t *testing.T) {
	want := map[string]uint8{
		"Sync": 0, "SendMail": 1, "SmartForward": 2, "SmartReply": 3, "GetAttachment": 4,
		"FolderSync": 9, "FolderCreate": 10, "FolderDelete": 11, "FolderUpdate": 12,
		"MoveItems": 13, "GetItemEstimate": 14, "MeetingResponse": 15, "Search": 16,
		"Settings": 17, "Ping": 18, "ItemOperations": 19, "Provision": 20,
		"ResolveRecipients": 21, "ValidateCert": 22, "Find": 23,
	}
	if got := len(Commands()); got != len(want) {
		t.Fatalf("%d commands, want %d", got, len(want))
	}
	for _, c := range Commands() {
		code, ok := c.Code()
		if !ok || code != want[c.String()] {
			t.Errorf("%s: code %d, want %d", c, code, want[c.String()])
		}
		back, ok := CommandFromCode(code)
		if !ok || back != c {
			t.Errorf("CommandFromCode(%d) = %v", code, back)
		}
		p, ok := ParseCommand(strings.ToUpper(c.String()))
		if !ok || p != c {
			t.Errorf("ParseCommand(%s) = %v", c, p)
		}
	}
	for _, code := range []uint8{5, 6, 7, 8, 24, 255} {
		if c, ok := CommandFromCode(code); ok {
			t.Errorf("code %d maps to %v", code, c)
		}
	}
	if _, ok := CmdNone.Code(); ok || CmdNone.Valid() || CmdNone.String() != "" || Command(200).String() != "" {
		t.Fatal("CmdNone and out-of-range values are not commands")
	}
	if _, ok := ParseCommand("GetHierarchy"); ok {
		t.Fatal("retired commands are unknown")
	}
}

func TestCommandProperties(t *testing.T) {
	for _, c := range Commands() {
		want := !(c == CmdSendMail || c == CmdSmartReply || c == CmdSmartForward || c == CmdMeetingResponse)
		if c.Idempotent() != want {
			t.Errorf("%s.Idempotent() = %v", c, !want)
		}
		if c.LongPoll() != (c == CmdPing) {
			t.Errorf("%s.LongPoll()", c)
		}
	}
	cases := []struct {
		c  Command
		v  Version
		ok bool
	}{
		{CmdSync, V25, true}, {CmdGetAttachment, V121, true}, {CmdGetAttachment, V140, false},
		{CmdSettings, V25, false}, {CmdSettings, V120, true}, {CmdItemOperations, V25, false},
		{CmdItemOperations, V120, true}, {CmdFind, V160, false}, {CmdFind, V161, true},
		{CmdPing, V161, true}, {CmdSync, Version(99), false}, {CmdNone, V141, false},
	}
	for _, tc := range cases {
		if got := tc.c.SupportedIn(tc.v); got != tc.ok {
			t.Errorf("%s.SupportedIn(%s) = %v", tc.c, tc.v, got)
		}
	}
	if !CmdSendMail.MIMEBody(V121) || CmdSendMail.MIMEBody(V140) || CmdSync.MIMEBody(V25) {
		t.Fatal("MIMEBody: 12.x SendMail carries raw MIME, 14.0+ WBXML")
	}
}

func TestVersions(t *testing.T) {
	want := []string{"2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1"}
	vs := SupportedVersions()
	for i, v := range vs {
		if v.String() != want[i] {
			t.Errorf("version %d = %s", i, v)
		}
		p, ok := ParseVersion(want[i])
		if !ok || p != v {
			t.Errorf("ParseVersion(%s) = %v", want[i], p)
		}
		if i > 0 && !(vs[i-1] < v) {
			t.Errorf("versions must compare in order")
		}
	}
	for _, s := range []string{"", "14", "14.2", "2.50", " 14.1", "v141"} {
		if _, ok := ParseVersion(s); ok {
			t.Errorf("ParseVersion(%q) accepted", s)
		}
	}
	if b, ok := V141.Byte(); !ok || b != 141 {
		t.Fatal("V141.Byte")
	}
	if _, ok := V120.Byte(); ok {
		t.Fatal("12.0 has no base64 form")
	}
	if v, ok := VersionFromByte(161); !ok || v != V161 {
		t.Fatal("VersionFromByte(161)")
	}
	if _, ok := VersionFromByte(25); ok {
		t.Fatal("2.5 has no base64 form")
	}
	if Version(999).String() != "v999" || Version(999).Valid() {
		t.Fatal("undefined version")
	}
}

// MS-ASHTTP 2.2.2.1.2.3 and 2.2.2.1.2.4: the OPTIONS response headers.
func TestMSASHTTP_2_2_2_1_2_OptionsHeaders(t *testing.T) {
	if got := ProtocolVersionsHeader(SupportedVersions()); got != "2.5,12.0,12.1,14.0,14.1,16.0,16.1" {
		t.Fatalf("MS-ASProtocolVersions: %s", got)
	}
	got := ProtocolCommandsHeader(nil, SupportedVersions())
	want := "Sync,SendMail,SmartForward,SmartReply,GetAttachment,FolderSync,FolderCreate,FolderDelete," +
		"FolderUpdate,MoveItems,GetItemEstimate,MeetingResponse,Search,Settings,Ping,ItemOperations," +
		"Provision,ResolveRecipients,ValidateCert,Find"
	if got != want {
		t.Fatalf("MS-ASProtocolCommands: %s", got)
	}
	got = ProtocolCommandsHeader(nil, []Version{V141})
	if strings.Contains(got, "GetAttachment") || strings.Contains(got, "Find") || !strings.Contains(got, "ItemOperations") {
		t.Fatalf("14.1 commands: %s", got)
	}
}
