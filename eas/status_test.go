package eas

import "testing"

// MS-ASCMD 2.2.2: common status codes 101–156 and 160–177.
func TestMSASCMD_2_2_2_CommonStatusCodes(t *testing.T) {
	n := 0
	for s := Status(0); s < 300; s++ {
		si, ok := s.Common()
		if ok != ((s >= 101 && s <= 156) || (s >= 160 && s <= 177)) {
			t.Errorf("%d: common = %v", s, ok)
		}
		if ok {
			n++
			if si.Code != s || si.Name == "" || si.Meaning == "" || s.String() != si.Name {
				t.Errorf("%d: %+v", s, si)
			}
		}
	}
	if n != 74 {
		t.Fatalf("%d common codes, want 74", n)
	}
	for s, name := range map[Status]string{
		126: "UserDisabledForSync", 129: "DeviceIsBlockedForThisUser", 140: "RemoteWipeRequested",
		142: "DeviceNotProvisioned", 143: "PolicyRefresh", 144: "InvalidPolicyKey",
		177: "MaximumDevicesReached", 108: "DeviceIdMissingOrInvalid", 171: "IRM_InvalidTemplateID",
	} {
		if s.String() != name {
			t.Errorf("%d = %s, want %s", s, s, name)
		}
	}
	if Status(3).String() != "3" {
		t.Fatal("command statuses print as numbers")
	}
}

// MS-ASCMD 2.2.3.177.x: per-command status tables.
func TestMSASCMD_2_2_3_177_CommandStatusCodes(t *testing.T) {
	want := map[Command][]Status{
		CmdSync:              {1, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16},
		CmdFolderSync:        {1, 6, 9, 10, 11, 12},
		CmdFolderCreate:      {1, 2, 3, 5, 6, 8, 9, 10, 11, 12},
		CmdFolderDelete:      {1, 3, 4, 6, 8, 9, 10, 11},
		CmdFolderUpdate:      {1, 2, 3, 4, 5, 6, 8, 9, 10, 11},
		CmdGetItemEstimate:   {1, 2, 3, 4},
		CmdItemOperations:    {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18},
		CmdMeetingResponse:   {1, 2, 3, 4},
		CmdMoveItems:         {1, 2, 3, 4, 5, 7},
		CmdPing:              {1, 2, 3, 4, 5, 6, 7, 8},
		CmdProvision:         {1, 2, 3},
		CmdResolveRecipients: {1, 2, 3, 4, 5, 6, 7, 8},
		CmdSearch:            {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14},
		CmdSettings:          {1, 2, 3, 4, 5, 6, 7},
		CmdValidateCert:      {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
		CmdFind:              {1, 2, 3, 4},
	}
	for cmd, codes := range want {
		got := CommandStatuses(cmd)
		if len(got) != len(codes) {
			t.Errorf("%s: %d statuses, want %d", cmd, len(got), len(codes))
			continue
		}
		for i, si := range got {
			if si.Code != codes[i] || si.Name == "" || si.Meaning == "" {
				t.Errorf("%s[%d] = %+v, want code %d", cmd, i, si, codes[i])
			}
			if l, ok := LookupStatus(cmd, si.Code); !ok || l != si {
				t.Errorf("LookupStatus(%s, %d)", cmd, si.Code)
			}
		}
	}
	if si, ok := LookupStatus(CmdMoveItems, MoveItemsSuccess); !ok || si.Name != "Success" {
		t.Fatal("MoveItems success is 3")
	}
	if si, ok := LookupStatus(CmdSendMail, StatusMessagePreviouslySent); !ok || si.Name != "MessagePreviouslySent" {
		t.Fatal("common codes resolve for every command")
	}
	if _, ok := LookupStatus(CmdSync, 2); ok {
		t.Fatal("Sync defines no status 2")
	}
	if len(PolicyStatuses) != 5 || len(PolicyAckStatuses) != 4 || len(RemoteWipeStatuses) != 2 {
		t.Fatal("MS-ASPROV 2.2.2.54 tables")
	}
}
