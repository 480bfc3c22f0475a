package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/eas"
)

// requestHeaders are the request headers the EAS path reads, found in one pass over the
// header: fasthttp's Peek normalises its key and scans every header on each call, eight
// times a request. Each value is the first occurrence, as Peek's is, and aliases the request:
// valid while the handler runs.
type requestHeaders struct {
	protocolVersion, policyKey, acceptMultiPart, userAgent, contentType, acceptLanguage,
	authorization, forwardedFor []byte
}

// read fills h from rh.
func (h *requestHeaders) read(rh *fasthttp.RequestHeader) {
	*h = requestHeaders{}
	var seen uint8
	for k, v := range rh.All() {
		dst, bit := h.slot(k)
		if dst != nil && seen&bit == 0 {
			seen |= bit
			*dst = v
		}
	}
}

// slot is where header k is kept, and its bit, or nil. The length picks the candidates.
func (h *requestHeaders) slot(k []byte) (*[]byte, uint8) {
	switch len(k) {
	case len(eas.HeaderUserAgent):
		if bytes.EqualFold(k, []byte(eas.HeaderUserAgent)) {
			return &h.userAgent, 1 << 0
		}
	case len(eas.HeaderContentType):
		if bytes.EqualFold(k, []byte(eas.HeaderContentType)) {
			return &h.contentType, 1 << 1
		}
	case len(fasthttp.HeaderAuthorization):
		if bytes.EqualFold(k, []byte(fasthttp.HeaderAuthorization)) {
			return &h.authorization, 1 << 2
		}
	case len(eas.HeaderPolicyKey):
		if bytes.EqualFold(k, []byte(eas.HeaderPolicyKey)) {
			return &h.policyKey, 1 << 3
		}
	case len(fasthttp.HeaderXForwardedFor): // = len(Accept-Language)
		if bytes.EqualFold(k, []byte(fasthttp.HeaderXForwardedFor)) {
			return &h.forwardedFor, 1 << 4
		}
		if bytes.EqualFold(k, []byte(eas.HeaderAcceptLanguage)) {
			return &h.acceptLanguage, 1 << 5
		}
	case len(eas.HeaderProtocolVersion): // = len(MS-ASAcceptMultiPart)
		if bytes.EqualFold(k, []byte(eas.HeaderProtocolVersion)) {
			return &h.protocolVersion, 1 << 6
		}
		if bytes.EqualFold(k, []byte(eas.HeaderAcceptMultiPart)) {
			return &h.acceptMultiPart, 1 << 7
		}
	}
	return nil, 0
}

// get is eas.ParseHeaders' header lookup.
func (h *requestHeaders) get(name string) []byte {
	switch name {
	case eas.HeaderProtocolVersion:
		return h.protocolVersion
	case eas.HeaderPolicyKey:
		return h.policyKey
	case eas.HeaderAcceptMultiPart:
		return h.acceptMultiPart
	case eas.HeaderUserAgent:
		return h.userAgent
	case eas.HeaderContentType:
		return h.contentType
	case eas.HeaderAcceptLanguage:
		return h.acceptLanguage
	case fasthttp.HeaderAuthorization:
		return h.authorization
	case fasthttp.HeaderXForwardedFor:
		return h.forwardedFor
	}
	panic("gateway: requestHeaders does not keep " + name)
}
