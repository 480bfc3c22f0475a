package imap

import (
	"strings"
	"testing"

	"github.com/easgate/easgate/backends/imap/demo"
	"github.com/easgate/easgate/eas/wbxml"
)

// TestMem_SyncBodies_SpeculativeFetch_MS_ASAIRS_2_2_2_9: the plain-text body a Sync sends is
// the same whether it came with the metadata FETCH (text in part 1, small enough) or needed the
// second FETCH: a single-part text larger than specBodyLimit (truncated to the device's 20,000
// bytes, EstimatedDataSize the whole text), text nested in multipart/mixed (part 1.1, so part 1
// fetched with the metadata is not used), a single-part HTML message rendered as text, and a
// multipart/alternative whose text is part 1.
func TestMem_SyncBodies_SpeculativeFetch_MS_ASAIRS_2_2_2_9(t *testing.T) {
	d, b, _ := startDemo(t)
	user := "demo@" + demo.Domain
	line := "0123456789 abcdefghijklmnopqrstuvwxyz\r\n"
	big := strings.Repeat(line, 2*specBodyLimit/len(line))
	head := "From: x@example.org\r\nTo: " + user + "\r\nMIME-Version: 1.0\r\nSubject: "
	msgs := map[string]string{
		"big": head + "big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + big,
		"nested": head + "nested\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n" +
			"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
			"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nnested plain text\r\n" +
			"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>nested html</p>\r\n--inner--\r\n" +
			"--outer\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\nxyz\r\n--outer--\r\n",
		"html": head + "html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>only <b>html</b></p></body></html>\r\n",
		"alt": head + "alt\r\nContent-Type: multipart/alternative; boundary=zz\r\n\r\n" +
			"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nalternative plain\r\n" +
			"--zz\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>alternative html</p>\r\n--zz--\r\n",
	}
	for _, subj := range []string{"big", "nested", "html", "alt"} {
		if err := d.Deliver(user, []byte(msgs[subj])); err != nil {
			t.Fatal(err)
		}
	}
	dev := newDevice(t, b, user, "demo", "specdev")
	dev.folderSync()
	inbox := dev.folder(typeInbox, "")
	dev.syncAll(inbox, 10) // BodyPreference Type 1, TruncationSize 20000
	body := func(subj string) *wbxml.Element {
		t.Helper()
		_, ad := dev.findSubject(inbox, subj)
		if ad == nil {
			t.Fatalf("device did not get %q", subj)
		}
		return ad.Find(wbxml.AirSyncBaseBody)
	}
	bb := body("big")
	data := bb.Find(wbxml.AirSyncBaseData).Text()
	if len(data) != 20000 || !strings.HasPrefix(big, data) || bb.Find(wbxml.AirSyncBaseTruncated).Text() != "1" ||
		bb.Find(wbxml.AirSyncBaseEstimatedDataSize).Text() != itoaT(len(big)) {
		t.Fatalf("big text: %d bytes, Truncated %q, EstimatedDataSize %q (want 20000, 1, %d)", len(data),
			bb.Find(wbxml.AirSyncBaseTruncated).Text(), bb.Find(wbxml.AirSyncBaseEstimatedDataSize).Text(), len(big))
	}
	for subj, want := range map[string]string{"nested": "nested plain text", "html": "only html", "alt": "alternative plain"} {
		got := body(subj).Find(wbxml.AirSyncBaseData).Text()
		if got != want {
			t.Fatalf("%s: body %q, want %q", subj, got, want)
		}
	}
}
