package gateway

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// The few request bodies the core gateway reads on the allowed path. Each is read with the
// streaming decoder or, when it must be rewritten, the tree (which round-trips byte for byte).

var errBadBody = &httpError{status: 400, text: "malformed WBXML body"}

// bodyLimits bounds what the gateway parses of a client body. Pings and Sync requests are small;
// SendMail bodies are not parsed here.
var bodyLimits = wbxml.Limits{MaxDocumentSize: 1 << 20, MaxDepth: 64, MaxStringLen: 64 << 10, MaxOpaqueLen: 64 << 10, MaxStringTable: 4 << 10}

// syncWaits reports whether a Sync request asks the server to hold it (Wait or
// HeartbeatInterval, MS-ASCMD 2.2.3.190 and 2.2.3.83.2): such a Sync is a long poll like Ping.
// Both are children of the Sync root, so the collections are skipped, not inspected, and the
// decoder is pooled: this runs on every Sync. A body that does not decode is not a long poll;
// the upstream answers its syntax error.
func syncWaits(body []byte) bool {
	if len(body) == 0 {
		return false
	}
	d := decoderPool.Get().(*wbxml.Decoder)
	defer decoderPool.Put(d)
	d.Reset(body)
	if tok, err := d.Next(); err != nil || tok.Tag != wbxml.AirSyncSync || !tok.HasContent {
		return false
	}
	for {
		tok, err := d.Next()
		if err != nil || tok.Kind == wbxml.EndTag {
			return false
		}
		if tok.Kind != wbxml.StartTag {
			continue
		}
		if tok.Tag == wbxml.AirSyncWait || tok.Tag == wbxml.AirSyncHeartbeatInterval {
			return true
		}
		if tok.HasContent && d.Skip() != nil {
			return false
		}
	}
}

var decoderPool = sync.Pool{New: func() any { return wbxml.NewDecoder(nil, bodyLimits) }}

// clampHeartbeat rewrites a Ping request whose HeartbeatInterval exceeds max seconds
// (MS-ASCMD 2.2.3.83.1) so that no upstream holds a request past the load balancer's idle
// timeout. It returns nil when the body needs no change (an empty Ping reuses the interval the
// upstream already has from an earlier, clamped Ping).
func clampHeartbeat(body []byte, max int) ([]byte, error) {
	if len(body) == 0 {
		return nil, nil
	}
	doc, err := wbxml.Parse(body, bodyLimits)
	if err != nil {
		return nil, errBadBody
	}
	hb := doc.Root.Find(wbxml.PingHeartbeatInterval)
	if doc.Root.Tag != wbxml.PingPing || hb == nil {
		return nil, nil
	}
	v, err := strconv.Atoi(hb.Text())
	if err != nil || v <= max {
		return nil, nil // out-of-range and garbage values are the upstream's to refuse
	}
	hb.SetText(strconv.Itoa(max))
	out, err := doc.Encode(nil)
	if err != nil {
		return nil, errBadBody
	}
	return out, nil
}

// pingNoChanges is the Ping response "the heartbeat interval expired before any changes
// occurred" (Status 1), answered to a superseded or draining Ping.
var pingNoChanges = func() []byte {
	doc := wbxml.NewDocument(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingStatus, "1")))
	b, err := doc.Encode(nil)
	if err != nil {
		panic(err)
	}
	return b
}()

// learnDeviceInformation records what a Settings request says about the device (model, OS,
// friendly name, ...; MS-ASCMD 2.2.3.50) in the registry: compliance rules on OS versions and the
// remediation page use it. The request goes on unchanged whatever happens here.
func (s *Server) learnDeviceInformation(st *reqState, body []byte) {
	if s.admin == nil || len(body) == 0 {
		return
	}
	doc, err := wbxml.Parse(body, bodyLimits)
	if err != nil {
		return
	}
	set, err := eas.ParseSettings(doc)
	if err != nil || set.DeviceInformation == nil {
		return
	}
	di := set.DeviceInformation
	info := decision.DeviceInfo{Model: di.Model, IMEI: di.IMEI, FriendlyName: di.FriendlyName, OS: di.OS,
		OSLanguage: di.OSLanguage, PhoneNumber: di.PhoneNumber, MobileOperator: di.MobileOperator, UserAgent: di.UserAgent}
	if info == (decision.DeviceInfo{}) {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.admin.UpdateDeviceInfo(c, st.user, st.req.DeviceID, info); err != nil {
		s.log.Warn("recording device information failed", slog.String("rid", st.rid), slog.String("err", err.Error()))
	}
}
