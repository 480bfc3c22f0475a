package quarantine_test

import (
	"fmt"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/easgate/easgate/quarantine"
)

// The gateway's local-answer step for a request that is not allowed.
func ExampleResponder_Answer() {
	q, err := quarantine.New(quarantine.Config{Organization: "Example IT", From: "it@example.com"})
	if err != nil {
		panic(err)
	}
	req := &eas.Request{Cmd: eas.CmdFolderSync, User: "alice@example.com", DeviceID: "ABC123",
		DeviceType: "iPhone", Version: eas.V161}
	d := decision.Decision{Action: decision.Quarantine, Reason: decision.ReasonUnknownDevice}
	body, _ := wbxml.NewDocument(wbxml.NewElement(wbxml.FolderHierarchyFolderSync,
		wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))).Encode(nil)

	if quarantine.PassThrough(req.Cmd, d) {
		return // forward as if allowed (Provision, Settings)
	}
	a, err := q.Answer(req, d, body, time.Now())
	if err != nil {
		panic(err)
	}
	doc, _ := wbxml.Parse(a.Body, wbxml.Limits{})
	add := doc.Root.Path(wbxml.FolderHierarchyChanges, wbxml.FolderHierarchyAdd)
	fmt.Println(a.Status, a.ContentType, add.Find(wbxml.FolderHierarchyDisplayName).Text(), a.Hold)
	// Output: 200 application/vnd.ms-sync.wbxml Inbox 0s
}

// The gateway's check of an allowed request from a device that was just released.
func ExampleStale() {
	body, _ := wbxml.NewDocument(wbxml.NewElement(wbxml.FolderHierarchyFolderSync,
		wbxml.NewText(wbxml.FolderHierarchySyncKey, quarantine.FolderSyncKey))).Encode(nil)
	if a, ok := quarantine.Stale(eas.CmdFolderSync, body); ok {
		doc, _ := wbxml.Parse(a.Body, wbxml.Limits{})
		fmt.Println("answer locally: FolderSync Status", doc.Root.Find(wbxml.FolderHierarchyStatus).Text())
	}
	// Output: answer locally: FolderSync Status 9
}
