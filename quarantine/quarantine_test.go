package quarantine

import (
	"bytes"
	"fmt"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

var (
	t0         = time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	blocked    = decision.Decision{Action: decision.Block, Reason: decision.ReasonAdminBlock}
	wipe       = decision.Decision{Action: decision.Wipe, Reason: decision.ReasonWipePending}
	acctWipe   = decision.Decision{Action: decision.AccountOnlyWipe, Reason: decision.ReasonWipePending}
	maxDevices = decision.Decision{Action: decision.Block, Reason: decision.ReasonMaxDevices}
	disabled   = decision.Decision{Action: decision.Block, Reason: ReasonUserDisabled}
	storeDown  = decision.Decision{Action: decision.Block, Reason: decision.ReasonStoreUnavailable}
	notEnroled = decision.Decision{Action: decision.Quarantine, Reason: decision.ReasonUnknownDevice}
	failures   = []decision.Failure{
		{Rule: decision.FailMinPasscodeLength, Want: "6", Have: "4"},
		{Rule: decision.FailEncryptionRequired, Want: "true", Have: "false"},
	}
	notCompliant = decision.Decision{Action: decision.Quarantine, Reason: decision.ReasonNotCompliant, Failures: failures}
)

func newResponder(t testing.TB, mod ...func(*Config)) *Responder {
	t.Helper()
	cfg := Config{
		Organization: "Example IT",
		From:         "it@example.com",
		EnrollURL:    "https://mdm.example.com/enrol",
		Footer:       "Example Corp, Musterstraße 1",
		PortalLink: func(user, dev string, exp time.Time) string {
			return fmt.Sprintf("https://mail.example.com/portal/d/%s.%s.%d", user, dev, exp.Unix())
		},
	}
	for _, m := range mod {
		m(&cfg)
	}
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func request(cmd eas.Command, v eas.Version) *eas.Request {
	return &eas.Request{Cmd: cmd, User: "alice@example.com", DeviceID: "ABC123", DeviceType: "iPhone", Version: v}
}

func encode(t testing.TB, root *wbxml.Element) []byte {
	t.Helper()
	b, err := wbxml.NewDocument(root).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t testing.TB, a Answer) *wbxml.Element {
	t.Helper()
	if a.Status != 200 || a.ContentType != ContentTypeWBXML {
		t.Fatalf("answer: HTTP %d %q, want 200 WBXML", a.Status, a.ContentType)
	}
	doc, err := wbxml.Parse(a.Body, wbxml.Limits{})
	if err != nil {
		t.Fatalf("answer body does not decode: %v", err)
	}
	return doc.Root
}

// statusOf returns the Status where the command's schema puts it for a global failure.
func statusOf(root *wbxml.Element) string {
	if root.Tag == wbxml.MeetingResponseMeetingResponse {
		return root.Path(wbxml.MeetingResponseResult, wbxml.MeetingResponseStatus).Text()
	}
	for _, c := range root.Children {
		if c.Tag.Name() == "Status" {
			return c.Text()
		}
	}
	return ""
}

var allCommands = []eas.Command{
	eas.CmdSync, eas.CmdFolderSync, eas.CmdPing, eas.CmdItemOperations, eas.CmdSettings, eas.CmdSearch,
	eas.CmdSendMail, eas.CmdSmartReply, eas.CmdSmartForward, eas.CmdMoveItems, eas.CmdGetItemEstimate,
	eas.CmdMeetingResponse, eas.CmdFolderCreate, eas.CmdFolderUpdate, eas.CmdFolderDelete,
	eas.CmdResolveRecipients, eas.CmdValidateCert, eas.CmdFind, eas.CmdProvision,
}

// rootFor is the response root each command must answer with (MS-ASCMD 2.2.3, the
// top-level element of each command's response).
var rootFor = map[eas.Command]wbxml.Tag{
	eas.CmdSync: wbxml.AirSyncSync, eas.CmdFolderSync: wbxml.FolderHierarchyFolderSync,
	eas.CmdPing: wbxml.PingPing, eas.CmdItemOperations: wbxml.ItemOperationsItemOperations,
	eas.CmdSettings: wbxml.SettingsSettings, eas.CmdSearch: wbxml.SearchSearch,
	eas.CmdSendMail: wbxml.ComposeMailSendMail, eas.CmdSmartReply: wbxml.ComposeMailSmartReply,
	eas.CmdSmartForward: wbxml.ComposeMailSmartForward, eas.CmdMoveItems: wbxml.MoveMoveItems,
	eas.CmdGetItemEstimate: wbxml.GetItemEstimateGetItemEstimate, eas.CmdMeetingResponse: wbxml.MeetingResponseMeetingResponse,
	eas.CmdFolderCreate: wbxml.FolderHierarchyFolderCreate, eas.CmdFolderUpdate: wbxml.FolderHierarchyFolderUpdate,
	eas.CmdFolderDelete: wbxml.FolderHierarchyFolderDelete, eas.CmdResolveRecipients: wbxml.ResolveRecipientsResolveRecipients,
	eas.CmdValidateCert: wbxml.ValidateCertValidateCert, eas.CmdFind: wbxml.FindFind, eas.CmdProvision: wbxml.ProvisionProvision,
}

// TestMSASCMD_2_2_2_CommonStatusPerCommandAndVersion: a blocked, wipe-pending or over-limit
// device gets, for every command, the command's own response element with the common
// status in its top-level Status in EAS 14.0+, and the HTTP status of the condition
// before 14.0 (MS-ASHTTP 2.2.2.1.1.1: 403, 449, 503).
func TestMSASCMD_2_2_2_CommonStatusPerCommandAndVersion(t *testing.T) {
	q := newResponder(t)
	cases := []struct {
		name     string
		d        decision.Decision
		v        eas.Version
		status   string // EAS status, 14.0+
		httpCode int    // before 14.0
	}{
		{"blocked 14.0", blocked, eas.V140, "129", 0},
		{"blocked 14.1", blocked, eas.V141, "129", 0},
		{"blocked 16.1", blocked, eas.V161, "129", 0},
		{"blocked 12.1", blocked, eas.V121, "", 403},
		{"blocked 12.0", blocked, eas.V120, "", 403},
		{"blocked 2.5", blocked, eas.V25, "", 403},
		{"wipe 14.1", wipe, eas.V141, "140", 0},
		{"wipe 16.0", wipe, eas.V160, "140", 0},
		{"account wipe 16.1", acctWipe, eas.V161, "140", 0},
		{"wipe 12.1", wipe, eas.V121, "", 449},
		{"wipe 2.5", wipe, eas.V25, "", 449},
		{"max devices 14.1", maxDevices, eas.V141, "177", 0},
		{"max devices 14.0 (177 unknown before 14.1)", maxDevices, eas.V140, "129", 0},
		{"max devices 12.1", maxDevices, eas.V121, "", 403},
		{"user disabled 14.1", disabled, eas.V141, "126", 0},
		{"store down 16.1", storeDown, eas.V161, "111", 0},
		{"store down 12.1", storeDown, eas.V121, "", 503},
	}
	for _, tc := range cases {
		for _, cmd := range allCommands {
			if !cmd.SupportedIn(tc.v) {
				continue
			}
			if (tc.d.Action == decision.Wipe || tc.d.Action == decision.AccountOnlyWipe) && PassThrough(cmd, tc.d) {
				continue // Provision delivers the wipe; the provisioning code answers it
			}
			t.Run(tc.name+"/"+cmd.String(), func(t *testing.T) {
				a, err := q.Answer(request(cmd, tc.v), tc.d, nil, t0)
				if err != nil {
					t.Fatal(err)
				}
				if tc.httpCode != 0 {
					if a.Status != tc.httpCode || a.Body != nil {
						t.Fatalf("got HTTP %d body %d bytes, want HTTP %d without body", a.Status, len(a.Body), tc.httpCode)
					}
					return
				}
				root := decode(t, a)
				if root.Tag != rootFor[cmd] {
					t.Fatalf("root %v, want %v", root.Tag, rootFor[cmd])
				}
				if got := statusOf(root); got != tc.status {
					t.Fatalf("status %q, want %q", got, tc.status)
				}
			})
		}
	}
}

// TestMSASCMD_2_2_3_177_9_MeetingResponseStatusPerRequest: MeetingResponse has no
// top-level Status; each Request gets a Result with its RequestId and the status.
func TestMSASCMD_2_2_3_177_9_MeetingResponseStatusPerRequest(t *testing.T) {
	q := newResponder(t)
	body := encode(t, wbxml.NewElement(wbxml.MeetingResponseMeetingResponse,
		wbxml.NewElement(wbxml.MeetingResponseRequest,
			wbxml.NewText(wbxml.MeetingResponseUserResponse, "1"),
			wbxml.NewText(wbxml.MeetingResponseCollectionId, "5"),
			wbxml.NewText(wbxml.MeetingResponseRequestId, "5:1")),
		wbxml.NewElement(wbxml.MeetingResponseRequest,
			wbxml.NewText(wbxml.MeetingResponseUserResponse, "3"),
			wbxml.NewText(wbxml.MeetingResponseRequestId, "5:2"))))
	a, err := q.Answer(request(eas.CmdMeetingResponse, eas.V141), blocked, body, t0)
	if err != nil {
		t.Fatal(err)
	}
	res := decode(t, a).FindAll(wbxml.MeetingResponseResult)
	if len(res) != 2 {
		t.Fatalf("%d results, want 2", len(res))
	}
	for i, want := range []string{"5:1", "5:2"} {
		if id := res[i].Find(wbxml.MeetingResponseRequestId).Text(); id != want {
			t.Errorf("result %d RequestId %q, want %q", i, id, want)
		}
		if st := res[i].Find(wbxml.MeetingResponseStatus).Text(); st != "129" {
			t.Errorf("result %d Status %q, want 129", i, st)
		}
	}
}

func TestPassThrough(t *testing.T) {
	for _, tc := range []struct {
		cmd  eas.Command
		d    decision.Decision
		want bool
	}{
		{eas.CmdProvision, notCompliant, true},
		{eas.CmdSettings, notEnroled, true},
		{eas.CmdSync, notCompliant, false},
		{eas.CmdProvision, wipe, true},
		{eas.CmdProvision, acctWipe, true},
		{eas.CmdSettings, wipe, false},
		{eas.CmdProvision, blocked, false},
		{eas.CmdSettings, blocked, false},
		{eas.CmdSync, decision.Decision{Action: decision.Allow}, true},
	} {
		if got := PassThrough(tc.cmd, tc.d); got != tc.want {
			t.Errorf("PassThrough(%v, %v/%v) = %v, want %v", tc.cmd, tc.d.Action, tc.d.Reason, got, tc.want)
		}
	}
	if _, err := newResponder(t).Answer(request(eas.CmdSync, eas.V141), decision.Decision{Action: decision.Allow}, nil, t0); err != ErrAllowed {
		t.Fatalf("Answer(Allow) err = %v, want ErrAllowed", err)
	}
}

// Blocked and wipe-pending devices never see the remediation inbox: their FolderSync and
// Sync carry the blocking status, never a hierarchy or a message.
func TestBlockedAndWipeNeverSeeInbox(t *testing.T) {
	q := newResponder(t)
	for _, d := range []decision.Decision{blocked, wipe, acctWipe, maxDevices} {
		for _, v := range []eas.Version{eas.V25, eas.V121, eas.V141, eas.V161} {
			a, err := q.Answer(request(eas.CmdFolderSync, v), d, folderSyncBody(t, "0"), t0)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(a.Body, []byte(InboxID)) || bytes.Contains(a.Body, []byte("Inbox")) {
				t.Fatalf("%v/%v: FolderSync answer reveals the quarantine inbox", d.Action, v)
			}
			if _, ok, _ := q.Message(MessageRequest{User: "alice@example.com", DeviceID: "ABC123"}, d, t0); ok {
				t.Fatalf("%v: Message rendered for a non-quarantine decision", d.Action)
			}
		}
	}
}

// Quarantined devices get the blocking status for everything that is not the inbox.
func TestQuarantineOtherCommandsBlocked(t *testing.T) {
	q := newResponder(t)
	for _, cmd := range []eas.Command{eas.CmdSendMail, eas.CmdSmartReply, eas.CmdSmartForward, eas.CmdSearch,
		eas.CmdMoveItems, eas.CmdFolderCreate, eas.CmdMeetingResponse, eas.CmdResolveRecipients, eas.CmdFind} {
		a, err := q.Answer(request(cmd, eas.V161), notCompliant, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		if root := decode(t, a); root.Tag != rootFor[cmd] || statusOf(root) != "129" {
			t.Errorf("%v: root %v status %q, want %v 129", cmd, root.Tag, statusOf(root), rootFor[cmd])
		}
		a, _ = q.Answer(request(cmd, eas.V121), notCompliant, nil, t0)
		if cmd.SupportedIn(eas.V121) && a.Status != 403 {
			t.Errorf("%v 12.1: HTTP %d, want 403", cmd, a.Status)
		}
	}
}

func folderSyncBody(t testing.TB, key string) []byte {
	return encode(t, wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, key)))
}

func syncBody(t testing.TB, key string, opts ...*wbxml.Element) []byte {
	col := wbxml.NewElement(wbxml.AirSyncCollection,
		wbxml.NewText(wbxml.AirSyncSyncKey, key),
		wbxml.NewText(wbxml.AirSyncCollectionId, InboxID))
	if key != "0" {
		col.Append(wbxml.NewElement(wbxml.AirSyncGetChanges))
		col.Append(wbxml.NewText(wbxml.AirSyncWindowSize, "25"))
	}
	if len(opts) > 0 {
		col.Append(wbxml.NewElement(wbxml.AirSyncOptions, opts...))
	}
	return encode(t, wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections, col)))
}

func gieBody(t testing.TB, key string) []byte {
	return encode(t, wbxml.NewElement(wbxml.GetItemEstimateGetItemEstimate,
		wbxml.NewElement(wbxml.GetItemEstimateCollections,
			wbxml.NewElement(wbxml.GetItemEstimateCollection,
				wbxml.NewText(wbxml.AirSyncSyncKey, key),
				wbxml.NewText(wbxml.GetItemEstimateCollectionId, InboxID)))))
}

func pingBody(t testing.TB, ids ...string) []byte {
	f := wbxml.NewElement(wbxml.PingFolders)
	for _, id := range ids {
		f.Append(wbxml.NewElement(wbxml.PingFolder, wbxml.NewText(wbxml.PingId, id), wbxml.NewText(wbxml.PingClass, "Email")))
	}
	return encode(t, wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingHeartbeatInterval, "900"), f))
}

func prefElem(typ, trunc string) *wbxml.Element {
	e := wbxml.NewElement(wbxml.AirSyncBaseBodyPreference, wbxml.NewText(wbxml.AirSyncBaseType, typ))
	if trunc != "" {
		e.Append(wbxml.NewText(wbxml.AirSyncBaseTruncationSize, trunc))
	}
	return e
}

func syncCollection(t testing.TB, a Answer) *wbxml.Element {
	t.Helper()
	root := decode(t, a)
	c := root.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection)
	if c == nil {
		t.Fatalf("Sync answer has no Collection (top-level status %q)", root.Find(wbxml.AirSyncStatus).Text())
	}
	return c
}

// TestQuarantineInboxConversation walks a device through the one-message inbox: FolderSync
// 0 → Sync 0 → Sync with the primed key (the message) → Sync with the delivered key (no
// changes), with GetItemEstimate and ItemOperations agreeing, and Ping going from "changes"
// to "no changes after a hold".
func TestQuarantineInboxConversation(t *testing.T) {
	for _, v := range []eas.Version{eas.V25, eas.V120, eas.V121, eas.V140, eas.V141, eas.V160, eas.V161} {
		t.Run(v.String(), func(t *testing.T) {
			q := newResponder(t, func(c *Config) { c.PingHold = 90 * time.Second })
			ask := func(cmd eas.Command, body []byte) Answer {
				t.Helper()
				a, err := q.Answer(request(cmd, v), notCompliant, body, t0)
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			// FolderSync 0 → one Inbox of type 2.
			fs := decode(t, ask(eas.CmdFolderSync, folderSyncBody(t, "0")))
			if fs.Find(wbxml.FolderHierarchyStatus).Text() != "1" {
				t.Fatalf("FolderSync status %q", fs.Find(wbxml.FolderHierarchyStatus).Text())
			}
			fkey := fs.Find(wbxml.FolderHierarchySyncKey).Text()
			add := fs.Path(wbxml.FolderHierarchyChanges, wbxml.FolderHierarchyAdd)
			if add.Find(wbxml.FolderHierarchyType).Text() != "2" || add.Find(wbxml.FolderHierarchyServerId).Text() != InboxID {
				t.Fatalf("FolderSync Add = type %q id %q", add.Find(wbxml.FolderHierarchyType).Text(), add.Find(wbxml.FolderHierarchyServerId).Text())
			}
			// Same key → no changes; unknown key → 9.
			fs = decode(t, ask(eas.CmdFolderSync, folderSyncBody(t, fkey)))
			if fs.Path(wbxml.FolderHierarchyChanges, wbxml.FolderHierarchyCount).Text() != "0" || fs.Find(wbxml.FolderHierarchySyncKey).Text() != fkey {
				t.Fatal("FolderSync with the current key is not 'no changes'")
			}
			if st := decode(t, ask(eas.CmdFolderSync, folderSyncBody(t, "123"))).Find(wbxml.FolderHierarchyStatus).Text(); st != "9" {
				t.Fatalf("FolderSync with a foreign key: status %q, want 9", st)
			}

			// Ping before the device synchronised: changes in the Inbox, at once.
			p := ask(eas.CmdPing, pingBody(t, InboxID))
			if root := decode(t, p); root.Find(wbxml.PingStatus).Text() != "2" || root.Path(wbxml.PingFolders, wbxml.PingFolder).Text() != InboxID || p.Hold != 0 {
				t.Fatalf("first Ping: status %q hold %v", root.Find(wbxml.PingStatus).Text(), p.Hold)
			}

			// GetItemEstimate before priming: status 3.
			if v >= eas.V120 {
				if st := decode(t, ask(eas.CmdGetItemEstimate, gieBody(t, "0"))).Path(wbxml.GetItemEstimateResponse, wbxml.GetItemEstimateStatus).Text(); st != "3" {
					t.Fatalf("GetItemEstimate key 0: status %q, want 3", st)
				}
			}

			// Sync 0 → primed key, no items.
			c := syncCollection(t, ask(eas.CmdSync, syncBody(t, "0")))
			key1 := c.Find(wbxml.AirSyncSyncKey).Text()
			if c.Find(wbxml.AirSyncStatus).Text() != "1" || c.Find(wbxml.AirSyncCommands) != nil || !strings.HasPrefix(key1, Prefix) {
				t.Fatalf("initial Sync: status %q key %q commands %v", c.Find(wbxml.AirSyncStatus).Text(), key1, c.Find(wbxml.AirSyncCommands) != nil)
			}
			if v < eas.V120 && c.Find(wbxml.AirSyncClass).Text() != "Email" {
				t.Fatal("2.5 Sync collection without Class")
			}
			gie := func(key string) string {
				r := decode(t, ask(eas.CmdGetItemEstimate, gieBody(t, key))).Find(wbxml.GetItemEstimateResponse)
				if r.Find(wbxml.GetItemEstimateStatus).Text() != "1" {
					t.Fatalf("GetItemEstimate status %q", r.Find(wbxml.GetItemEstimateStatus).Text())
				}
				return r.Path(wbxml.GetItemEstimateCollection, wbxml.GetItemEstimateEstimate).Text()
			}
			if est := gie(key1); est != "1" {
				t.Fatalf("estimate after priming %q, want 1", est)
			}

			// Sync with the primed key → exactly one message.
			var opts []*wbxml.Element
			if v >= eas.V120 {
				opts = append(opts, prefElem("1", ""))
			}
			c = syncCollection(t, ask(eas.CmdSync, syncBody(t, key1, opts...)))
			key2 := c.Find(wbxml.AirSyncSyncKey).Text()
			adds := c.Path(wbxml.AirSyncCommands).FindAll(wbxml.AirSyncAdd)
			if len(adds) != 1 || len(c.Path(wbxml.AirSyncCommands).Children) != 1 {
				t.Fatalf("Sync delivered %d commands, want one Add", len(c.Path(wbxml.AirSyncCommands).Children))
			}
			sid := adds[0].Find(wbxml.AirSyncServerId).Text()
			app := adds[0].Find(wbxml.AirSyncApplicationData)
			subject := app.Find(wbxml.EmailSubject).Text()
			if !strings.Contains(subject, "security requirements") {
				t.Fatalf("subject %q", subject)
			}
			for _, tag := range []wbxml.Tag{wbxml.EmailFrom, wbxml.EmailTo, wbxml.EmailDateReceived, wbxml.EmailImportance, wbxml.EmailRead} {
				if app.Find(tag) == nil {
					t.Errorf("message lacks %v", tag)
				}
			}
			var text string
			if v < eas.V120 {
				text = app.Find(wbxml.EmailBody).Text()
			} else {
				text = app.Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Text()
			}
			if !strings.Contains(text, "at least 6 characters") || !strings.Contains(text, "https://mail.example.com/portal/d/") {
				t.Fatalf("body does not list the fix and the portal link:\n%s", text)
			}

			// Delivered key → no changes, same key; estimate 0.
			c = syncCollection(t, ask(eas.CmdSync, syncBody(t, key2)))
			if c.Find(wbxml.AirSyncCommands) != nil || c.Find(wbxml.AirSyncSyncKey).Text() != key2 {
				t.Fatal("Sync with the delivered key is not 'no changes'")
			}
			if est := gie(key2); est != "0" {
				t.Fatalf("estimate after delivery %q, want 0", est)
			}
			// Unknown key → 3.
			if st := syncCollection(t, ask(eas.CmdSync, syncBody(t, Prefix+"zz-9"))).Find(wbxml.AirSyncStatus).Text(); st != "3" {
				t.Fatalf("Sync with an unknown key: status %q, want 3", st)
			}

			// ItemOperations Fetch agrees with Sync (12.0+).
			if v >= eas.V120 {
				fetch := encode(t, wbxml.NewElement(wbxml.ItemOperationsItemOperations,
					wbxml.NewElement(wbxml.ItemOperationsFetch,
						wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"),
						wbxml.NewText(wbxml.AirSyncCollectionId, InboxID),
						wbxml.NewText(wbxml.AirSyncServerId, sid),
						wbxml.NewElement(wbxml.ItemOperationsOptions, prefElem("1", "")))))
				f := decode(t, ask(eas.CmdItemOperations, fetch)).Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch)
				if f.Find(wbxml.ItemOperationsStatus).Text() != "1" {
					t.Fatalf("Fetch status %q", f.Find(wbxml.ItemOperationsStatus).Text())
				}
				props := f.Find(wbxml.ItemOperationsProperties)
				if props.Find(wbxml.EmailSubject).Text() != subject || props.Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Text() != text {
					t.Fatal("ItemOperations Fetch disagrees with Sync")
				}
			}

			// Ping after delivery: no changes, after the configured hold (capped by heartbeat).
			p = ask(eas.CmdPing, pingBody(t, InboxID))
			if st := decode(t, p).Find(wbxml.PingStatus).Text(); st != "1" || p.Hold != 90*time.Second {
				t.Fatalf("second Ping: status %q hold %v, want 1 after 90s", st, p.Hold)
			}
			// Ping naming a real-mailbox folder: FolderSync required.
			if st := decode(t, ask(eas.CmdPing, pingBody(t, "5"))).Find(wbxml.PingStatus).Text(); st != "7" {
				t.Fatalf("Ping with a foreign folder: status %q, want 7", st)
			}
		})
	}
}

// When the failure list changes, the device sees the old message deleted and the new one
// added, from its stateless key alone; the Ping signals the change.
func TestQuarantineMessageUpdatesWhenFailuresChange(t *testing.T) {
	q := newResponder(t)
	req := request(eas.CmdSync, eas.V161)
	a, _ := q.Answer(req, notCompliant, syncBody(t, "0"), t0)
	k1 := syncCollection(t, a).Find(wbxml.AirSyncSyncKey).Text()
	a, _ = q.Answer(req, notCompliant, syncBody(t, k1), t0)
	c := syncCollection(t, a)
	k2 := c.Find(wbxml.AirSyncSyncKey).Text()
	oldID := c.Path(wbxml.AirSyncCommands, wbxml.AirSyncAdd, wbxml.AirSyncServerId).Text()

	fewer := notCompliant
	fewer.Failures = failures[:1]
	p, _ := q.Answer(request(eas.CmdPing, eas.V161), fewer, pingBody(t, InboxID), t0)
	if st := decode(t, p).Find(wbxml.PingStatus).Text(); st != "2" {
		t.Fatalf("Ping after the failure list changed: status %q, want 2", st)
	}
	a, _ = q.Answer(req, fewer, syncBody(t, k2), t0)
	c = syncCollection(t, a)
	cmds := c.Find(wbxml.AirSyncCommands)
	if cmds == nil || len(cmds.Children) != 2 || cmds.Children[0].Tag != wbxml.AirSyncDelete || cmds.Children[1].Tag != wbxml.AirSyncAdd {
		t.Fatal("changed message is not Delete(old) + Add(new)")
	}
	if cmds.Children[0].Find(wbxml.AirSyncServerId).Text() != oldID {
		t.Fatal("Delete does not name the old message")
	}
	newID := cmds.Children[1].Find(wbxml.AirSyncServerId).Text()
	if newID == oldID {
		t.Fatal("new message has the old ServerId")
	}
	text := cmds.Children[1].Path(wbxml.AirSyncApplicationData, wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Text()
	if strings.Contains(text, "encryption") {
		t.Fatal("updated message still lists the fixed rule")
	}
	// The refresh period rolls over: a new item with a fresh date.
	k3 := c.Find(wbxml.AirSyncSyncKey).Text()
	a, _ = q.Answer(req, fewer, syncBody(t, k3), t0.Add(25*time.Hour))
	if c := syncCollection(t, a); len(c.Path(wbxml.AirSyncCommands).FindAll(wbxml.AirSyncAdd)) != 1 {
		t.Fatal("no refreshed message after RefreshEvery")
	}
}

// TestMSASAIRS_BodyPreference: plain (Type 1), HTML (Type 2), MIME (Type 4), truncation
// with Truncated and EstimatedDataSize, AllOrNone, Preview, and the 2.5 body.
func TestMSASAIRS_BodyPreference(t *testing.T) {
	q := newResponder(t)
	deliver := func(v eas.Version, opts ...*wbxml.Element) *wbxml.Element {
		t.Helper()
		req := request(eas.CmdSync, v)
		a, _ := q.Answer(req, notEnroled, syncBody(t, "0"), t0)
		k1 := syncCollection(t, a).Find(wbxml.AirSyncSyncKey).Text()
		a, _ = q.Answer(req, notEnroled, syncBody(t, k1, opts...), t0)
		return syncCollection(t, a).Path(wbxml.AirSyncCommands, wbxml.AirSyncAdd, wbxml.AirSyncApplicationData)
	}
	plain := deliver(eas.V141, prefElem("1", "")).Find(wbxml.AirSyncBaseBody)
	full := plain.Find(wbxml.AirSyncBaseData).Text()
	if plain.Find(wbxml.AirSyncBaseType).Text() != "1" || plain.Find(wbxml.AirSyncBaseTruncated) != nil ||
		plain.Find(wbxml.AirSyncBaseEstimatedDataSize).Text() != fmt.Sprint(len(full)) || strings.Contains(full, "<") {
		t.Fatalf("plain body wrong: %q", full)
	}
	if !strings.Contains(full, "https://mdm.example.com/enrol") {
		t.Fatal("not-enrolled message lacks the enrolment link")
	}
	html := deliver(eas.V141, prefElem("2", "")).Find(wbxml.AirSyncBaseBody)
	if html.Find(wbxml.AirSyncBaseType).Text() != "2" || !strings.Contains(html.Find(wbxml.AirSyncBaseData).Text(), "<html lang=\"en\">") {
		t.Fatal("HTML body wrong")
	}
	// The first listed type the server has wins (Type 3 RTF is skipped).
	tr := deliver(eas.V141, prefElem("3", ""), prefElem("1", "100")).Find(wbxml.AirSyncBaseBody)
	data := tr.Find(wbxml.AirSyncBaseData).Text()
	if tr.Find(wbxml.AirSyncBaseType).Text() != "1" || len(data) > 100 || tr.Find(wbxml.AirSyncBaseTruncated).Text() != "1" ||
		tr.Find(wbxml.AirSyncBaseEstimatedDataSize).Text() != fmt.Sprint(len(full)) || !strings.HasPrefix(full, data) {
		t.Fatalf("truncated body wrong: %d bytes, truncated %q", len(data), tr.Find(wbxml.AirSyncBaseTruncated).Text())
	}
	aon := prefElem("1", "100")
	aon.Append(wbxml.NewText(wbxml.AirSyncBaseAllOrNone, "1"))
	if b := deliver(eas.V141, aon).Find(wbxml.AirSyncBaseBody); b.Find(wbxml.AirSyncBaseData) != nil || b.Find(wbxml.AirSyncBaseTruncated).Text() != "1" {
		t.Fatal("AllOrNone body carries data")
	}
	pv := prefElem("2", "")
	pv.Append(wbxml.NewText(wbxml.AirSyncBasePreview, "40"))
	if p := deliver(eas.V141, pv).Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBasePreview).Text(); p == "" || len(p) > 40 || strings.Contains(p, "<") {
		t.Fatalf("preview %q", p)
	}
	// MIME: a multipart/alternative message with both forms.
	mb := deliver(eas.V141, prefElem("4", "")).Find(wbxml.AirSyncBaseBody)
	msg, err := mail.ReadMessage(strings.NewReader(mb.Find(wbxml.AirSyncBaseData).Text()))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if mt != "multipart/alternative" {
		t.Fatalf("MIME type %q", mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		types = append(types, p.Header.Get("Content-Type"))
	}
	if len(types) != 2 || !strings.HasPrefix(types[0], "text/plain") || !strings.HasPrefix(types[1], "text/html") {
		t.Fatalf("MIME parts %v", types)
	}
	if dec, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); !strings.Contains(dec, "enrol") {
		t.Fatalf("MIME subject %q", dec)
	}
	// EAS 2.5: Email:Body with AirSync:Truncation code 1 (4096) is whole; code 0 empties it.
	b25 := deliver(eas.V25, wbxml.NewText(tagTruncation25, "0"))
	if b25.Find(wbxml.EmailBody) != nil || b25.Find(wbxml.EmailBodyTruncated).Text() != "1" {
		t.Fatal("2.5 Truncation 0 did not truncate the body")
	}
	b25 = deliver(eas.V25, wbxml.NewText(tagTruncation25, "1"))
	if b25.Find(wbxml.EmailBody).Text() != full || b25.Find(wbxml.EmailBodyTruncated).Text() != "0" {
		t.Fatal("2.5 body wrong")
	}
	if b25.Find(wbxml.AirSyncBaseBody) != nil || b25.Find(wbxml.EmailContentClass) != nil {
		t.Fatal("2.5 message carries 12.0+ elements")
	}
}

// Both causes render in both languages, chosen by MS-LCID then Accept-Language.
func TestMessagesByCauseAndLanguage(t *testing.T) {
	q := newResponder(t)
	for _, tc := range []struct {
		d        decision.Decision
		lcid     uint16
		al       string
		lang     string
		subject  string
		contains []string
	}{
		{notEnroled, 0x0409, "", "en", "enrol your device", []string{"https://mdm.example.com/enrol", "not enrolled", "Musterstraße"}},
		{notEnroled, 0x0407, "", "de", "Registrieren Sie Ihr Gerät", []string{"https://mdm.example.com/enrol", "nicht in der Geräteverwaltung"}},
		{notCompliant, 0, "de-CH, en;q=0.5", "de", "Sicherheitsanforderungen", []string{"mindestens 6 Zeichen", "(Ihrer hat 4)", "Geräteverschlüsselung"}},
		{notCompliant, 0, "fr-FR, en-GB;q=0.8, de;q=0.7", "en", "security requirements", []string{"at least 6 characters (yours has 4)", "Turn on device encryption"}},
		{notCompliant, 0x040c, "", "en", "security requirements", nil}, // French: default language
	} {
		req := request(eas.CmdSync, eas.V161)
		req.Locale, req.AcceptLanguage = tc.lcid, tc.al
		lang := q.Language(req)
		if lang != tc.lang {
			t.Errorf("Language(lcid %#x, %q) = %q, want %q", tc.lcid, tc.al, lang, tc.lang)
		}
		c, ok, err := q.Message(MessageRequest{User: req.User, DeviceID: req.DeviceID, DeviceType: req.DeviceType, Lang: lang}, tc.d, t0)
		if err != nil || !ok {
			t.Fatal(err, ok)
		}
		if !strings.Contains(c.Subject, tc.subject) || strings.ContainsAny(c.Subject, "\r\n") {
			t.Errorf("%s subject %q, want it to contain %q", tc.lang, c.Subject, tc.subject)
		}
		for _, s := range append(tc.contains, "https://mail.example.com/portal/d/alice@example.com.ABC123.") {
			if !strings.Contains(c.Text, s) || !strings.Contains(c.HTML, htmlEscape(s)) {
				t.Errorf("%s/%s message lacks %q\n%s", tc.lang, tc.d.Reason, s, c.Text)
			}
		}
		if !strings.Contains(c.HTML, `lang="`+tc.lang+`"`) {
			t.Errorf("HTML lang is not %s", tc.lang)
		}
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// A hostile device name or user cannot inject markup into the HTML message or a header
// line into the subject.
func TestMessageEscaping(t *testing.T) {
	q := newResponder(t)
	dev := &decision.Device{Info: decision.DeviceInfo{FriendlyName: `<script>alert(1)</script>`}}
	c, _, err := q.Message(MessageRequest{User: "eve\r\nBcc: x@evil", DeviceID: "D", Device: dev, Lang: "en"}, notEnroled, t0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.HTML, "<script>") || !strings.Contains(c.HTML, "&lt;script&gt;") {
		t.Fatal("friendly name is not escaped in HTML")
	}
	if strings.ContainsAny(c.Subject, "\r\n") {
		t.Fatal("subject spans lines")
	}
}

// Templates from files override the embedded ones, and a broken one fails at New.
func TestTemplateOverride(t *testing.T) {
	dir := t.TempDir()
	txt := filepath.Join(dir, "en.txt")
	html := filepath.Join(dir, "en.html")
	os.WriteFile(txt, []byte(`{{define "subject"}}Custom {{.Cause}}{{end}}{{define "fix"}}FIX {{.Rule}}{{end}}{{define "text"}}{{range .Failures}}{{.Fix}};{{end}}{{end}}`), 0o600)
	os.WriteFile(html, []byte(`{{define "html"}}<p>{{.Subject}}</p>{{end}}`), 0o600)
	q := newResponder(t, func(c *Config) { c.Templates = map[string]TemplateFiles{"en": {Text: txt, HTML: html}} })
	c, _, err := q.Message(MessageRequest{User: "u", DeviceID: "d", Lang: "en"}, notCompliant, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "Custom not_compliant" || c.Text != "FIX min_passcode_length;FIX encryption_required;\n" || c.HTML != "<p>Custom not_compliant</p>" {
		t.Fatalf("override not used: %+v", c)
	}
	os.WriteFile(html, []byte(`{{define "other"}}x{{end}}`), 0o600)
	if _, err := New(Config{Templates: map[string]TemplateFiles{"en": {Text: txt, HTML: html}}}); err == nil || !strings.HasPrefix(err.Error(), "quarantine: ") {
		t.Fatalf("template without \"html\" accepted: %v", err)
	}
	if _, err := New(Config{RefreshEvery: time.Second, From: "bad", StatusByReason: map[decision.Reason]eas.Status{"x": 5}}); err == nil ||
		!strings.Contains(err.Error(), "refresh_every") || !strings.Contains(err.Error(), "from") || !strings.Contains(err.Error(), "status_by_reason") {
		t.Fatalf("config errors not all reported: %v", err)
	}
}

// TestStale: the detector finds quarantine identifiers in allowed requests and answers
// with the status that makes the device resynchronise; real keys pass.
func TestStale(t *testing.T) {
	q := newResponder(t)
	a, _ := q.Answer(request(eas.CmdSync, eas.V161), notCompliant, syncBody(t, "0"), t0)
	qkey := syncCollection(t, a).Find(wbxml.AirSyncSyncKey).Text()
	cases := []struct {
		cmd    eas.Command
		body   []byte
		stale  bool
		status string
	}{
		{eas.CmdFolderSync, folderSyncBody(t, FolderSyncKey), true, "9"},
		{eas.CmdFolderSync, folderSyncBody(t, "0"), false, ""},
		{eas.CmdFolderSync, folderSyncBody(t, "{b7b6b6d8-5ef4-4bb8-a7b3-3b0c1e2b9c5e}12"), false, ""},
		{eas.CmdSync, syncBody(t, qkey), true, "12"},
		{eas.CmdSync, encode(t, wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections,
			wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, "42"), wbxml.NewText(wbxml.AirSyncCollectionId, "5"))))), false, ""},
		{eas.CmdGetItemEstimate, gieBody(t, qkey), true, "2"},
		{eas.CmdPing, pingBody(t, "5", InboxID), true, "7"},
		{eas.CmdPing, pingBody(t, "5", "6"), false, ""},
		{eas.CmdItemOperations, syncBody(t, qkey), false, ""}, // not a command Stale looks at
		{eas.CmdSync, nil, false, ""},
	}
	for i, tc := range cases {
		a, ok := Stale(tc.cmd, tc.body)
		if ok != tc.stale {
			t.Errorf("case %d (%v): stale = %v, want %v", i, tc.cmd, ok, tc.stale)
			continue
		}
		if ok {
			root := decode(t, a)
			st := statusOf(root)
			if tc.cmd == eas.CmdGetItemEstimate {
				st = root.Path(wbxml.GetItemEstimateResponse, wbxml.GetItemEstimateStatus).Text()
			}
			if root.Tag != rootFor[tc.cmd] || st != tc.status {
				t.Errorf("case %d: %v status %q, want %v %q", i, root.Tag, st, rootFor[tc.cmd], tc.status)
			}
		}
	}
	// A string merely containing the prefix elsewhere (a subject, say) is not a key.
	body := encode(t, wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections,
		wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, "42"), wbxml.NewText(wbxml.AirSyncCollectionId, "5"),
			wbxml.NewElement(wbxml.AirSyncCommands, wbxml.NewElement(wbxml.AirSyncChange, wbxml.NewText(wbxml.AirSyncServerId, "5:1"),
				wbxml.NewElement(wbxml.AirSyncApplicationData, wbxml.NewText(wbxml.EmailSubject, Prefix+"x"))))))))
	if _, ok := Stale(eas.CmdSync, body); ok {
		t.Fatal("prefix in a non-key string reported stale")
	}
}

func realSyncBody(t testing.TB, key string) []byte {
	return encode(t, wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections,
		wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, key),
			wbxml.NewText(wbxml.AirSyncCollectionId, "5"), wbxml.NewElement(wbxml.AirSyncGetChanges)))))
}

// Stale costs nothing on the allowed hot path: no allocation without the prefix, and none
// for the token scan of a body that has the prefix bytes outside key elements.
func TestStaleNoAllocs(t *testing.T) {
	clean := realSyncBody(t, "42")
	if n := testing.AllocsPerRun(100, func() { Stale(eas.CmdSync, clean) }); n != 0 {
		t.Fatalf("Stale allocates %v times on a clean body", n)
	}
	decoy := encode(t, wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections,
		wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, "42"),
			wbxml.NewText(wbxml.AirSyncCollectionId, "5"), wbxml.NewText(wbxml.AirSyncClass, Prefix)))))
	Stale(eas.CmdSync, decoy) // warm the decoder pool
	if n := testing.AllocsPerRun(100, func() { Stale(eas.CmdSync, decoy) }); n != 0 {
		t.Fatalf("Stale allocates %v times scanning a body", n)
	}
}

func BenchmarkStale(b *testing.B) {
	clean := realSyncBody(b, "{b7b6b6d8-5ef4-4bb8-a7b3-3b0c1e2b9c5e}12")
	stale := syncBody(b, Prefix+"0123456789ab-2")
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Stale(eas.CmdSync, clean)
		}
	})
	b.Run("stale", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Stale(eas.CmdSync, stale)
		}
	})
	b.Run("baseline-parse-tree", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			wbxml.Parse(clean, wbxml.Limits{})
		}
	})
}

func BenchmarkAnswerQuarantineSync(b *testing.B) {
	q := newResponder(b)
	req := request(eas.CmdSync, eas.V161)
	body := syncBody(b, "0")
	b.ReportAllocs()
	for b.Loop() {
		q.Answer(req, notCompliant, body, t0)
	}
}

// TestMSASCMD_2_2_1_21_SyncEdgeCases: the requests a real client sends besides the happy
// path.
func TestMSASCMD_2_2_1_21_SyncEdgeCases(t *testing.T) {
	q := newResponder(t, func(c *Config) { c.PingHold = 2 * time.Minute })
	req := request(eas.CmdSync, eas.V161)
	ask := func(body []byte) Answer {
		t.Helper()
		a, err := q.Answer(req, notCompliant, body, t0)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	top := func(a Answer) string { return decode(t, a).Find(wbxml.AirSyncStatus).Text() }

	if st := top(ask(nil)); st != "13" {
		t.Errorf("empty Sync: status %q, want 13 (send the full request)", st)
	}
	if st := top(ask([]byte{0x03, 0x01, 0x6a, 0x00, 0x45})); st != "4" {
		t.Errorf("malformed Sync: status %q, want 4", st)
	}
	if st := top(ask(realSyncBody(t, "42"))); st != "12" {
		t.Errorf("Sync of a real-mailbox folder: status %q, want 12 (FolderSync)", st)
	}
	// 2.5 and 12.0 carry the status per collection.
	for _, v := range []eas.Version{eas.V25, eas.V120} {
		a, _ := q.Answer(request(eas.CmdSync, v), notCompliant, realSyncBody(t, "42"), t0)
		if c := syncCollection(t, a); c.Find(wbxml.AirSyncStatus).Text() != "12" || c.Find(wbxml.AirSyncCollectionId).Text() != "5" {
			t.Errorf("%v: Sync of a real-mailbox folder not answered per collection with 12", v)
		}
	}
	k1 := syncCollection(t, ask(syncBody(t, "0"))).Find(wbxml.AirSyncSyncKey).Text()

	// GetChanges 0: nothing delivered, key unchanged.
	noChanges := encode(t, wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections,
		wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, k1),
			wbxml.NewText(wbxml.AirSyncCollectionId, InboxID), wbxml.NewText(wbxml.AirSyncGetChanges, "0")))))
	if c := syncCollection(t, ask(noChanges)); c.Find(wbxml.AirSyncCommands) != nil || c.Find(wbxml.AirSyncSyncKey).Text() != k1 {
		t.Error("GetChanges 0 delivered the message")
	}
	c := syncCollection(t, ask(syncBody(t, k1)))
	k2 := c.Find(wbxml.AirSyncSyncKey).Text()
	sid := c.Path(wbxml.AirSyncCommands, wbxml.AirSyncAdd, wbxml.AirSyncServerId).Text()

	// Client changes: read flag (no response needed), a draft Add (refused per item), a
	// Fetch of the message and of something else.
	clientCmds := encode(t, wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections,
		wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, k2),
			wbxml.NewText(wbxml.AirSyncCollectionId, InboxID),
			wbxml.NewElement(wbxml.AirSyncCommands,
				wbxml.NewElement(wbxml.AirSyncChange, wbxml.NewText(wbxml.AirSyncServerId, sid),
					wbxml.NewElement(wbxml.AirSyncApplicationData, wbxml.NewText(wbxml.EmailRead, "1"))),
				wbxml.NewElement(wbxml.AirSyncAdd, wbxml.NewText(wbxml.AirSyncClientId, "c1"),
					wbxml.NewElement(wbxml.AirSyncApplicationData, wbxml.NewText(wbxml.EmailSubject, "draft"))),
				wbxml.NewElement(wbxml.AirSyncFetch, wbxml.NewText(wbxml.AirSyncServerId, sid)),
				wbxml.NewElement(wbxml.AirSyncFetch, wbxml.NewText(wbxml.AirSyncServerId, "5:7")))))))
	a := ask(clientCmds)
	if a.Hold != 0 {
		t.Error("Sync with client commands was held")
	}
	r := syncCollection(t, a).Find(wbxml.AirSyncResponses)
	if r == nil || len(r.Children) != 3 {
		t.Fatalf("Responses = %v", r)
	}
	if add := r.Children[0]; add.Tag != wbxml.AirSyncAdd || add.Find(wbxml.AirSyncClientId).Text() != "c1" || add.Find(wbxml.AirSyncStatus).Text() != "6" {
		t.Error("client Add not refused with its ClientId")
	}
	if f := r.Children[1]; f.Find(wbxml.AirSyncStatus).Text() != "1" || f.Path(wbxml.AirSyncApplicationData, wbxml.EmailSubject) == nil {
		t.Error("Fetch of the message did not return it")
	}
	if f := r.Children[2]; f.Find(wbxml.AirSyncStatus).Text() != "8" {
		t.Error("Fetch of an unknown item did not return status 8")
	}

	// A waiting Sync with nothing new is held like a Ping (capped by its own wait).
	wait := func(tag wbxml.Tag, v string) []byte {
		return encode(t, wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections,
			wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, k2),
				wbxml.NewText(wbxml.AirSyncCollectionId, InboxID))), wbxml.NewText(tag, v)))
	}
	if h := ask(wait(wbxml.AirSyncWait, "10")).Hold; h != 2*time.Minute {
		t.Errorf("Sync Wait 10 min held %v, want the 2m PingHold", h)
	}
	if h := ask(wait(wbxml.AirSyncHeartbeatInterval, "60")).Hold; h != time.Minute {
		t.Errorf("Sync HeartbeatInterval 60 held %v, want 1m", h)
	}
	if h := ask(syncBody(t, k2)).Hold; h != 0 {
		t.Errorf("non-waiting Sync held %v", h)
	}
}

// ItemOperations refuses everything but fetching the message.
func TestMSASCMD_2_2_1_10_ItemOperationsOthers(t *testing.T) {
	q := newResponder(t)
	body := encode(t, wbxml.NewElement(wbxml.ItemOperationsItemOperations,
		wbxml.NewElement(wbxml.ItemOperationsFetch, wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"),
			wbxml.NewText(wbxml.AirSyncCollectionId, "5"), wbxml.NewText(wbxml.AirSyncServerId, "5:1")),
		wbxml.NewElement(wbxml.ItemOperationsEmptyFolderContents, wbxml.NewText(wbxml.AirSyncCollectionId, InboxID))))
	a, err := q.Answer(request(eas.CmdItemOperations, eas.V141), notCompliant, body, t0)
	if err != nil {
		t.Fatal(err)
	}
	resp := decode(t, a).Find(wbxml.ItemOperationsResponse)
	if st := resp.Find(wbxml.ItemOperationsFetch).Find(wbxml.ItemOperationsStatus).Text(); st != "6" {
		t.Errorf("Fetch of a real item: status %q, want 6", st)
	}
	if st := resp.Find(wbxml.ItemOperationsEmptyFolderContents).Find(wbxml.ItemOperationsStatus).Text(); st != "129" {
		t.Errorf("EmptyFolderContents: status %q, want 129", st)
	}
}

// The portal link in the message expires with the refresh period, so a message that is
// re-issued every RefreshEvery never carries an expired link.
func TestPortalLinkExpiryFollowsRefresh(t *testing.T) {
	q := newResponder(t, func(c *Config) {
		c.RefreshEvery, c.LinkTTL = 24*time.Hour, 72*time.Hour
		c.PortalLink = func(_, _ string, exp time.Time) string { return "https://x/portal/d/" + exp.UTC().Format(time.RFC3339) }
	})
	mr := MessageRequest{User: "u", DeviceID: "d", Lang: "en"}
	link := func(now time.Time) string {
		c, _, err := q.Message(mr, notEnroled, now)
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(c.Text, "https://x/portal/d/")
		return c.Text[i : i+len("https://x/portal/d/")+20]
	}
	l0, l1, l2 := link(t0), link(t0.Add(3*time.Hour)), link(t0.Add(24*time.Hour))
	if l0 != "https://x/portal/d/2026-11-28T00:00:00Z" || l1 != l0 || l2 != "https://x/portal/d/2026-11-29T00:00:00Z" {
		t.Fatalf("links %s %s %s", l0, l1, l2)
	}
}

func TestNegotiateLanguage(t *testing.T) {
	sup := []string{"de", "en"}
	for _, tc := range []struct {
		lcid uint16
		al   string
		want string
	}{
		{0x0407, "en", "de"},
		{0x0c07, "", "de"}, // de-AT
		{0x0809, "de", "en"},
		{0x0411, "de;q=0.1", "de"}, // Japanese unsupported: Accept-Language decides
		{0, "en;q=0.2, de;q=0.9", "de"},
		{0, "*", "en"},
		{0, "de;q=0", "en"},
		{0, "garbage;;;q=x,,", "en"},
	} {
		if got := NegotiateLanguage(tc.lcid, tc.al, sup, "en"); got != tc.want {
			t.Errorf("NegotiateLanguage(%#x, %q) = %q, want %q", tc.lcid, tc.al, got, tc.want)
		}
	}
}

func BenchmarkAnswerBlocked(b *testing.B) {
	q := newResponder(b)
	req := request(eas.CmdSync, eas.V161)
	b.ReportAllocs()
	for b.Loop() {
		q.Answer(req, blocked, nil, t0)
	}
}

// BenchmarkRenderMessage is the baseline of BenchmarkAnswerQuarantineSync: rendering the
// message from the templates, which the responder does once per message version.
func BenchmarkRenderMessage(b *testing.B) {
	q := newResponder(b)
	in := MessageInput{Cause: CauseNotCompliant, User: "alice@example.com", DeviceID: "ABC123", DeviceType: "iPhone",
		Failures: failures, Lang: "en", PortalURL: "https://mail.example.com/portal/d/x", Date: t0}
	b.ReportAllocs()
	for b.Loop() {
		q.Renderer().Render(in)
	}
}
