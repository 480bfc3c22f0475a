package gateway

import (
	"bytes"
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

// syncWaits reports whether a Sync request asks the server to hold it: a Wait or a
// HeartbeatInterval (MS-ASCMD 2.2.3.190, 2.2.3.83.2) among the Sync root's children, with a
// value. Such a Sync is a long poll like Ping. An empty element, or one whose content does not
// start with a string or opaque value, asks for nothing an upstream could hold on. A body that
// does not decode is not a long poll; the upstream answers its syntax error.
//
// This runs on every Sync, so it first looks for the only byte pairs such an element can be
// encoded as: the tag with its content bit (0x64 Wait, 0x69 HeartbeatInterval; the decoder
// refuses attributes and literal tags) followed by the token that starts a value (STR_I,
// STR_T, OPAQUE). A body without one is answered without decoding; with one, the decoder
// walks the root's children (the collections are skipped, not inspected) to tell a real
// element from a byte of another code page or of a string.
func syncWaits(body []byte) bool {
	return len(body) > 0 && mayHoldValue(body) && walkSyncWaits(body)
}

// walkSyncWaits is syncWaits' decoder walk over the Sync root's children.
func walkSyncWaits(body []byte) bool {
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
		if tok.Kind != wbxml.StartTag || !tok.HasContent {
			continue
		}
		if tok.Tag == wbxml.AirSyncWait || tok.Tag == wbxml.AirSyncHeartbeatInterval {
			v, err := d.Next()
			if err != nil {
				return false
			}
			switch v.Kind {
			case wbxml.String, wbxml.Opaque:
				return true
			case wbxml.EndTag:
				continue // empty: back among the root's children
			}
			// an element inside: not a value; skip it (if it has content), then the rest
			if v.HasContent && d.Skip() != nil {
				return false
			}
		}
		if d.Skip() != nil {
			return false
		}
	}
}

// waitTagByte and heartbeatTagByte are the tag bytes, with the content bit, of AirSync Wait
// and HeartbeatInterval.
const (
	waitTagByte      = 0x40 | byte(wbxml.AirSyncWait&0x3F)
	heartbeatTagByte = 0x40 | byte(wbxml.AirSyncHeartbeatInterval&0x3F)
)

// mayHoldValue reports whether body contains a Wait or HeartbeatInterval tag byte followed by a
// value token: a necessary condition for syncWaits (a superset: the byte may belong to another
// code page or a string). Text full of the two letters gives up early and lets the decoder
// decide, which is then the cheaper way.
func mayHoldValue(body []byte) bool {
	budget := 64
	for _, tag := range [2]byte{waitTagByte, heartbeatTagByte} {
		for i := 0; ; {
			j := bytes.IndexByte(body[i:], tag)
			if j < 0 {
				break
			}
			i += j + 1
			if i >= len(body) {
				break
			}
			switch body[i] {
			case 0x03, 0x83, 0xC3: // STR_I, STR_T, OPAQUE
				return true
			}
			if budget--; budget == 0 {
				return true
			}
		}
	}
	return false
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
		s.log.Warn("recording device information failed", slog.String("rid", st.rid()), slog.String("err", err.Error()))
	}
}
