package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/eas"
)

// keptHeaders are the request headers the EAS path reads; the hdr* constants index them.
var keptHeaders = [...]string{
	eas.HeaderProtocolVersion, eas.HeaderPolicyKey, eas.HeaderAcceptMultiPart, eas.HeaderUserAgent,
	eas.HeaderContentType, eas.HeaderAcceptLanguage, fasthttp.HeaderAuthorization, fasthttp.HeaderXForwardedFor,
}

const (
	hdrAuthorization = 6
	hdrForwardedFor  = 7
)

// requestHeaders holds keptHeaders' values, found in one pass over the header: fasthttp's
// Peek normalises its key and scans every header on each call, eight times a request. Each
// value is the first occurrence, as Peek's is, and aliases the request: valid while the
// handler runs.
type requestHeaders struct {
	v  [len(keptHeaders)][]byte
	rh *fasthttp.RequestHeader // for a header not kept
}

// read fills h from rh.
func (h *requestHeaders) read(rh *fasthttp.RequestHeader) {
	*h = requestHeaders{rh: rh}
	var seen uint
	for k, v := range rh.All() {
		for i, n := range keptHeaders {
			if len(k) == len(n) && bytes.EqualFold(k, []byte(n)) {
				if seen&(1<<i) == 0 {
					seen |= 1 << i
					h.v[i] = v
				}
				break
			}
		}
	}
}

// get is eas.ParseHeaders' header lookup: a kept header from the snapshot, any other from
// the request itself.
func (h *requestHeaders) get(name string) []byte {
	for i, n := range keptHeaders {
		if n == name {
			return h.v[i]
		}
	}
	return h.rh.Peek(name)
}
