package imap

import (
	"strings"
	"testing"

	"github.com/easgate/easgate/backends/imap/demo"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// TestMem_ComposeForms: the 12.1 raw-MIME SendMail, a 14.1 SmartReply with ReplaceMime (sent
// as the device wrote it, threaded to the original), an unknown source (Status 150), and a
// Sync Add of an email refused with Status 6.
func TestMem_ComposeForms(t *testing.T) {
	_, b, _ := startDemo(t)
	user := "demo@" + demo.Domain
	dev := newDevice(t, b, user, "demo", "composedev")
	dev.folderSync()
	inbox := dev.folder(typeInbox, "")
	dev.syncAll(inbox, 10)

	req := dev.request(eas.CmdSendMail)
	req.Version, req.ContentType = eas.V121, "message/rfc822"
	dev.doRaw(req, []byte("To: "+user+"\r\nSubject: twelve one\r\n\r\nraw form\r\n"))
	r := dev.sync(inbox, 10)
	if _, ad := dev.findSubject(inbox, "twelve one"); ad == nil || len(r.adds) != 1 {
		t.Fatalf("12.1 SendMail not delivered: %+v", r)
	}

	orig, _ := dev.findSubject(inbox, "Lunch on Friday?")
	if x := dev.do(eas.CmdSmartReply, wbxml.NewElement(wbxml.ComposeMailSmartReply, wbxml.NewText(wbxml.ComposeMailClientId, "r1"),
		wbxml.NewElement(wbxml.ComposeMailSource, wbxml.NewText(wbxml.ComposeMailFolderId, inbox), wbxml.NewText(wbxml.ComposeMailItemId, orig)),
		&wbxml.Element{Tag: wbxml.ComposeMailReplaceMime},
		wbxml.NewOpaque(wbxml.ComposeMailMime, []byte("To: "+user+"\r\nSubject: Re: Lunch\r\n\r\nyes, noon\r\n")))); x != nil {
		t.Fatalf("SmartReply: %v", x.Find(wbxml.ComposeMailStatus).Text())
	}
	dev.sync(inbox, 10)
	_, re := dev.findSubject(inbox, "Re: Lunch")
	if re == nil {
		t.Fatal("reply not delivered")
	}
	if body := re.Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Text(); strings.Contains(body, "new place") || !strings.Contains(body, "yes, noon") {
		t.Fatalf("ReplaceMime body: %q", body)
	}
	bad := dev.do(eas.CmdSmartForward, wbxml.NewElement(wbxml.ComposeMailSmartForward, wbxml.NewText(wbxml.ComposeMailClientId, "f9"),
		wbxml.NewElement(wbxml.ComposeMailSource, wbxml.NewText(wbxml.ComposeMailFolderId, inbox), wbxml.NewText(wbxml.ComposeMailItemId, inbox+":99999")),
		wbxml.NewOpaque(wbxml.ComposeMailMime, []byte("To: "+user+"\r\nSubject: Fwd\r\n\r\nx\r\n"))))
	if bad == nil || bad.Find(wbxml.ComposeMailStatus).Text() != "150" {
		t.Fatalf("forward of a missing item: %v", bad)
	}

	add := wbxml.NewElement(wbxml.AirSyncAdd, wbxml.NewText(wbxml.AirSyncClientId, "new1"),
		wbxml.NewElement(wbxml.AirSyncApplicationData, wbxml.NewText(wbxml.EmailSubject, "draft")))
	r = dev.sync(inbox, 10, add)
	if len(r.responses) != 1 || r.responses[0].Find(wbxml.AirSyncStatus).Text() != "6" || r.responses[0].Find(wbxml.AirSyncClientId).Text() != "new1" {
		t.Fatalf("email Add: %+v", r.responses)
	}
}
