package quarantine

import (
	"bytes"
	"strings"
	"sync"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// Identifiers of the quarantine inbox. Every synchronization key, collection id and item id
// the responder hands out starts with Prefix, which no EAS server's identifiers start with
// (Exchange uses digits and {GUID}n keys, Z-Push and grommunio {UUID}n), so that Stale can
// recognise them with a byte scan.
const (
	// Prefix starts every quarantine identifier.
	Prefix = "EGQ-"
	// InboxID is the ServerId of the quarantine Inbox folder (FolderHierarchy Type 2).
	InboxID = Prefix + "inbox"
	// FolderSyncKey is the hierarchy key after the initial FolderSync. The hierarchy never
	// changes, so the key is a constant; the digit is its revision.
	FolderSyncKey = Prefix + "F1"
)

// Collection synchronization keys are Prefix + version + "-" + step, where version
// identifies the message content (messageVersion) and step is 1 after the initial Sync
// (no items yet, MS-ASCMD 3.1.5.3) and 2 once the message has been sent. Keys are therefore
// stateless: the key alone says what the device holds.
const (
	stepPrimed    = '1'
	stepDelivered = '2'
)

func collectionKey(ver string, step byte) string { return Prefix + ver + "-" + string(step) }

// parseCollectionKey splits a quarantine collection key; ok is false for anything else.
func parseCollectionKey(k string) (ver string, step byte, ok bool) {
	if !strings.HasPrefix(k, Prefix) || len(k) < len(Prefix)+3 {
		return "", 0, false
	}
	rest := k[len(Prefix):]
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 || i != len(rest)-2 {
		return "", 0, false
	}
	step = rest[len(rest)-1]
	if step != stepPrimed && step != stepDelivered {
		return "", 0, false
	}
	ver = rest[:i]
	for j := 0; j < len(ver); j++ {
		c := ver[j]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", 0, false
		}
	}
	return ver, step, true
}

func messageServerID(ver string) string { return Prefix + "m-" + ver }

var prefixBytes = []byte(Prefix)

var decoderPool = sync.Pool{New: func() any { return wbxml.NewDecoder(nil, wbxml.Limits{}) }}

// Stale checks the body of an ALLOWED request for identifiers the quarantine inbox handed
// out, and returns the local answer that makes the device drop them and resynchronise the
// real mailbox; ok is false when the request carries none and should be forwarded.
//
// A device released from quarantine still holds the quarantine hierarchy and Inbox keys;
// forwarded upstream they would confuse the mail server. The gateway calls Stale on every
// allowed FolderSync, Sync, GetItemEstimate and Ping before forwarding it:
//
//   - FolderSync with the quarantine SyncKey: Status 9 (invalid key, MS-ASCMD
//     2.2.3.177.5); the device restarts with SyncKey 0 against the real hierarchy.
//   - Sync naming the quarantine Inbox or a quarantine key: top-level Status 12 (hierarchy
//     changed, 2.2.3.177.17), which sends the device to FolderSync. (EAS 2.5 and 12.0
//     clients, whose Sync responses carry status per collection, may instead retry; the
//     next FolderSync or Ping still resets them.)
//   - GetItemEstimate naming them: Response Status 2 (invalid collection, 2.2.3.177.7).
//   - Ping naming the quarantine Inbox: Status 7 (folder hierarchy sync required,
//     2.2.3.177.11).
//
// Stale is cheap: bodies without the Prefix bytes are rejected by one bytes.Index, and
// others by a token scan that builds no tree and does not allocate. Other commands
// always return ok false. It is safe for concurrent use; body is only read during the call.
func Stale(cmd eas.Command, body []byte) (Answer, bool) {
	switch cmd {
	case eas.CmdFolderSync, eas.CmdSync, eas.CmdGetItemEstimate, eas.CmdPing:
	default:
		return Answer{}, false
	}
	if !bytes.Contains(body, prefixBytes) {
		return Answer{}, false
	}
	d := decoderPool.Get().(*wbxml.Decoder)
	d.Reset(body)
	found := false
	var last wbxml.Tag
	for {
		tok, err := d.Next()
		if err != nil {
			break // io.EOF or malformed: a malformed body is the upstream's to reject
		}
		switch tok.Kind {
		case wbxml.StartTag:
			last = tok.Tag
		case wbxml.String:
			switch last {
			case wbxml.FolderHierarchySyncKey, wbxml.AirSyncSyncKey, wbxml.AirSyncCollectionId,
				wbxml.GetItemEstimateCollectionId, wbxml.PingId:
				if bytes.HasPrefix(tok.Data, prefixBytes) {
					found = true
				}
			}
		}
		if found {
			break
		}
	}
	d.Reset(nil)
	decoderPool.Put(d)
	if !found {
		return Answer{}, false
	}
	switch cmd {
	case eas.CmdFolderSync:
		return wbxmlAnswer(wbxml.NewElement(wbxml.FolderHierarchyFolderSync,
			wbxml.NewText(wbxml.FolderHierarchyStatus, "9"))), true
	case eas.CmdSync:
		return wbxmlAnswer(wbxml.NewElement(wbxml.AirSyncSync,
			wbxml.NewText(wbxml.AirSyncStatus, "12"))), true
	case eas.CmdGetItemEstimate:
		return wbxmlAnswer(wbxml.NewElement(wbxml.GetItemEstimateGetItemEstimate,
			wbxml.NewElement(wbxml.GetItemEstimateResponse,
				wbxml.NewText(wbxml.GetItemEstimateStatus, "2")))), true
	default:
		return wbxmlAnswer(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingStatus, "7"))), true
	}
}
