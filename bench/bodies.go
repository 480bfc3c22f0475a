package bench

import (
	"fmt"
	"strings"
)

// The EAS bodies the simulated devices send and the simulated upstream answers, built once as
// constant byte slices. They are written token by token here (MS-ASWBXML 2.1.2.1 code pages and
// WBXML 1.3 global tokens) rather than with the eas/wbxml encoder, so the load harness does not
// move when the codec's API does; bodies_test.go decodes every one of them with eas/wbxml to
// prove they are well formed.

// WBXML global tokens (WBXML 1.3 section 7.1).
const (
	wbSwitchPage = 0x00
	wbEnd        = 0x01
	wbStrI       = 0x03
	wbOpaque     = 0xC3
	wbContent    = 0x40 // tag has content
)

// MS-ASWBXML code pages and the tokens used here.
const (
	pgAirSync         = 0
	pgEmail           = 2
	pgFolderHierarchy = 7
	pgPing            = 13
	pgAirSyncBase     = 17
	pgItemOperations  = 20
	pgComposeMail     = 21

	// AirSync
	asSync            = 0x05
	asAdd             = 0x07
	asChange          = 0x08
	asSyncKey         = 0x0B
	asServerID        = 0x0D
	asStatus          = 0x0E
	asCollection      = 0x0F
	asCollectionID    = 0x12
	asGetChanges      = 0x13
	asWindowSize      = 0x15
	asCommands        = 0x16
	asOptions         = 0x17
	asFilterType      = 0x18
	asCollections     = 0x1C
	asApplicationData = 0x1D
	// Email
	emDateReceived = 0x0F
	emDisplayTo    = 0x11
	emImportance   = 0x12
	emMessageClass = 0x13
	emSubject      = 0x14
	emRead         = 0x15
	emTo           = 0x16
	emFrom         = 0x18
	emThreadTopic  = 0x35
	emInternetCPID = 0x39
	// FolderHierarchy
	fhDisplayName = 0x07
	fhServerID    = 0x08
	fhParentID    = 0x09
	fhType        = 0x0A
	fhStatus      = 0x0C
	fhChanges     = 0x0E
	fhAdd         = 0x0F
	fhSyncKey     = 0x12
	fhFolderSync  = 0x16
	fhCount       = 0x17
	// Ping
	pgPingTag   = 0x05
	piStatus    = 0x07
	piHeartbeat = 0x08
	piFolders   = 0x09
	piFolder    = 0x0A
	piID        = 0x0B
	piClass     = 0x0C
	// AirSyncBase
	abBodyPreference    = 0x05
	abType              = 0x06
	abTruncationSize    = 0x07
	abBody              = 0x0A
	abData              = 0x0B
	abEstimatedDataSize = 0x0C
	abTruncated         = 0x0D
	abFileReference     = 0x11
	// ItemOperations
	ioItemOperations = 0x05
	ioFetch          = 0x06
	ioStore          = 0x07
	ioProperties     = 0x0B
	ioData           = 0x0C
	ioStatus         = 0x0D
	ioResponse       = 0x0E
	// ComposeMail
	cmSendMail        = 0x05
	cmSaveInSentItems = 0x08
	cmMime            = 0x10
	cmClientID        = 0x11
)

// wbWriter appends WBXML tokens.
type wbWriter struct {
	b    []byte
	page byte
}

func newWB() *wbWriter {
	// version 1.3, public id 1 (unknown), charset 106 (UTF-8), empty string table
	return &wbWriter{b: []byte{0x03, 0x01, 0x6A, 0x00}}
}

func (w *wbWriter) setPage(p byte) {
	if w.page != p {
		w.b = append(w.b, wbSwitchPage, p)
		w.page = p
	}
}
func (w *wbWriter) open(p, tag byte)  { w.setPage(p); w.b = append(w.b, tag|wbContent) }
func (w *wbWriter) empty(p, tag byte) { w.setPage(p); w.b = append(w.b, tag) }
func (w *wbWriter) end()              { w.b = append(w.b, wbEnd) }
func (w *wbWriter) str(p, tag byte, s string) {
	w.open(p, tag)
	w.b = append(w.b, wbStrI)
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	w.end()
}
func (w *wbWriter) opaque(p, tag byte, data []byte) {
	w.open(p, tag)
	w.b = append(w.b, wbOpaque)
	w.b = appendMbUint32(w.b, uint32(len(data)))
	w.b = append(w.b, data...)
	w.end()
}

// appendMbUint32 appends v as a WBXML mb_u_int32 (7 bits per byte, high bit = more).
func appendMbUint32(dst []byte, v uint32) []byte {
	var tmp [5]byte
	i := len(tmp) - 1
	tmp[i] = byte(v & 0x7F)
	for v >>= 7; v > 0; v >>= 7 {
		i--
		tmp[i] = byte(v&0x7F) | 0x80
	}
	return append(dst, tmp[i:]...)
}

// SyncRequest is a Sync of two email folders that also uploads read-flag changes for 84
// messages: ~2 KB, the size of a busy phone's Sync.
var SyncRequest = func() []byte {
	w := newWB()
	w.open(pgAirSync, asSync)
	w.open(pgAirSync, asCollections)
	change := 0
	for _, coll := range []string{"5", "7"} {
		w.open(pgAirSync, asCollection)
		w.str(pgAirSync, asSyncKey, "{9bd4cd5a-1c6e-4b3f-8a3e-2f8b8f2b6a11}12")
		w.str(pgAirSync, asCollectionID, coll)
		w.empty(pgAirSync, asGetChanges)
		w.str(pgAirSync, asWindowSize, "25")
		w.open(pgAirSync, asOptions)
		w.str(pgAirSync, asFilterType, "3")
		w.open(pgAirSyncBase, abBodyPreference)
		w.str(pgAirSyncBase, abType, "2")
		w.str(pgAirSyncBase, abTruncationSize, "5120")
		w.end()
		w.end() // Options
		w.open(pgAirSync, asCommands)
		for i := 0; i < 42; i++ {
			change++
			w.open(pgAirSync, asChange)
			w.str(pgAirSync, asServerID, fmt.Sprintf("%s:%d", coll, 1000+change*37))
			w.open(pgAirSync, asApplicationData)
			w.str(pgEmail, emRead, "1")
			w.end()
			w.end()
		}
		w.end() // Commands
		w.end() // Collection
	}
	w.end()
	w.end()
	return w.b
}()

// SyncResponse answers a Sync with three new messages and their HTML previews: ~2 KB.
var SyncResponse = func() []byte {
	w := newWB()
	w.open(pgAirSync, asSync)
	w.open(pgAirSync, asCollections)
	w.open(pgAirSync, asCollection)
	w.str(pgAirSync, asSyncKey, "{9bd4cd5a-1c6e-4b3f-8a3e-2f8b8f2b6a11}13")
	w.str(pgAirSync, asCollectionID, "5")
	w.str(pgAirSync, asStatus, "1")
	w.open(pgAirSync, asCommands)
	subjects := []string{"Quarterly numbers, draft 3", "Lunch on Thursday?", "Build 4521 failed on main"}
	for i, subj := range subjects {
		w.open(pgAirSync, asAdd)
		w.str(pgAirSync, asServerID, fmt.Sprintf("5:%d", 4200+i))
		w.open(pgAirSync, asApplicationData)
		w.str(pgEmail, emTo, "\"Alice Example\" <alice@example.com>")
		w.str(pgEmail, emFrom, "\"Bob Sender\" <bob@example.org>")
		w.str(pgEmail, emSubject, subj)
		w.str(pgEmail, emDateReceived, fmt.Sprintf("2026-11-25T09:%02d:17.000Z", 10+i))
		w.str(pgEmail, emDisplayTo, "Alice Example")
		w.str(pgEmail, emThreadTopic, subj)
		w.str(pgEmail, emImportance, "1")
		w.str(pgEmail, emRead, "0")
		w.open(pgAirSyncBase, abBody)
		w.str(pgAirSyncBase, abType, "2")
		w.str(pgAirSyncBase, abEstimatedDataSize, "18432")
		w.str(pgAirSyncBase, abTruncated, "1")
		w.str(pgAirSyncBase, abData, "<html><body><p>Hi Alice,</p><p>"+
			strings.Repeat("Please find the latest figures below and tell me what you think. ", 4)+
			"</p></body></html>")
		w.end()
		w.str(pgEmail, emMessageClass, "IPM.Note")
		w.str(pgEmail, emInternetCPID, "65001")
		w.end() // ApplicationData
		w.end() // Add
	}
	w.end()
	w.end()
	w.end()
	w.end()
	return w.b
}()

// FolderSyncRequest is an incremental FolderSync.
var FolderSyncRequest = func() []byte {
	w := newWB()
	w.open(pgFolderHierarchy, fhFolderSync)
	w.str(pgFolderHierarchy, fhSyncKey, "7")
	w.end()
	return w.b
}()

// FolderSyncResponse returns six folders (an initial sync's worth).
var FolderSyncResponse = func() []byte {
	w := newWB()
	w.open(pgFolderHierarchy, fhFolderSync)
	w.str(pgFolderHierarchy, fhStatus, "1")
	w.str(pgFolderHierarchy, fhSyncKey, "8")
	w.open(pgFolderHierarchy, fhChanges)
	folders := []struct{ id, name, typ string }{
		{"5", "Inbox", "2"}, {"6", "Drafts", "3"}, {"7", "Deleted Items", "4"},
		{"8", "Sent Items", "5"}, {"9", "Outbox", "6"}, {"10", "Projects", "12"},
	}
	w.str(pgFolderHierarchy, fhCount, fmt.Sprint(len(folders)))
	for _, f := range folders {
		w.open(pgFolderHierarchy, fhAdd)
		w.str(pgFolderHierarchy, fhServerID, f.id)
		w.str(pgFolderHierarchy, fhParentID, "0")
		w.str(pgFolderHierarchy, fhDisplayName, f.name)
		w.str(pgFolderHierarchy, fhType, f.typ)
		w.end()
	}
	w.end()
	w.end()
	return w.b
}()

// PingRequest builds a Ping watching Inbox and Sent Items with the given heartbeat (seconds,
// MS-ASCMD 2.2.3.79: 60..3540).
func PingRequest(heartbeat int) []byte {
	w := newWB()
	w.open(pgPing, pgPingTag)
	w.str(pgPing, piHeartbeat, fmt.Sprint(heartbeat))
	w.open(pgPing, piFolders)
	for _, id := range []string{"5", "8"} {
		w.open(pgPing, piFolder)
		w.str(pgPing, piID, id)
		w.str(pgPing, piClass, "Email")
		w.end()
	}
	w.end()
	w.end()
	return w.b
}

// PingResponseExpired is Ping Status 1: the heartbeat expired with no changes.
var PingResponseExpired = func() []byte {
	w := newWB()
	w.open(pgPing, pgPingTag)
	w.str(pgPing, piStatus, "1")
	w.end()
	return w.b
}()

// SendMailRequest is a SendMail (EAS 14) with a ~1.5 KB RFC 5322 message.
var SendMailRequest = func() []byte {
	mime := "From: alice@example.com\r\nTo: bob@example.org\r\nSubject: Re: Quarterly numbers\r\n" +
		"Date: Wed, 25 Nov 2026 10:12:00 +0000\r\nMessage-ID: <bench.1@example.com>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.Repeat("Thanks, the numbers look right to me. Let's go over them on Thursday.\r\n", 18)
	w := newWB()
	w.open(pgComposeMail, cmSendMail)
	w.str(pgComposeMail, cmClientID, "bench-3f2a9c")
	w.empty(pgComposeMail, cmSaveInSentItems)
	w.opaque(pgComposeMail, cmMime, []byte(mime))
	w.end()
	return w.b
}()

// ItemOperationsRequest fetches one attachment by file reference.
var ItemOperationsRequest = func() []byte {
	w := newWB()
	w.open(pgItemOperations, ioItemOperations)
	w.open(pgItemOperations, ioFetch)
	w.str(pgItemOperations, ioStore, "Mailbox")
	w.str(pgAirSyncBase, abFileReference, "5%3a4200%3a0")
	w.end()
	w.end()
	return w.b
}()

// ItemOperationsResponse builds a Fetch answer carrying size bytes of attachment data.
func ItemOperationsResponse(size int) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('A' + i%26)
	}
	w := newWB()
	w.open(pgItemOperations, ioItemOperations)
	w.str(pgItemOperations, ioStatus, "1")
	w.open(pgItemOperations, ioResponse)
	w.open(pgItemOperations, ioFetch)
	w.str(pgItemOperations, ioStatus, "1")
	w.str(pgAirSyncBase, abFileReference, "5%3a4200%3a0")
	w.open(pgItemOperations, ioProperties)
	w.opaque(pgItemOperations, ioData, data)
	w.end()
	w.end()
	w.end()
	w.end()
	return w.b
}
