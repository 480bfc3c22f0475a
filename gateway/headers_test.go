package gateway

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The one-pass header snapshot answers what Peek answers: the first occurrence, whatever the
// spelling, and nothing for an absent header.
func TestRequestHeadersMatchPeek(t *testing.T) {
	if keptHeaders[hdrAuthorization] != fasthttp.HeaderAuthorization || keptHeaders[hdrForwardedFor] != fasthttp.HeaderXForwardedFor {
		t.Fatal("the hdr* indexes do not name their headers")
	}
	for i, head := range []string{
		"",
		"MS-ASProtocolVersion: 14.1\r\nX-MS-PolicyKey: 123\r\nUser-Agent: Apple-iPhone/1\r\nContent-Type: application/vnd.ms-sync.wbxml\r\nAuthorization: Basic dTpw\r\n",
		"ms-asprotocolversion: 16.1\r\nMS-ASPROTOCOLVERSION: 2.5\r\nx-ms-policykey: 1\r\nX-MS-PolicyKey: 2\r\n",
		"Authorization: Bearer a\r\nauthorization: Basic b\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n",
		"Accept-Language: de\r\nMS-ASAcceptMultiPart: T\r\nAccept-Languages: x\r\nMS-ASAcceptMultiParts: F\r\nX-Forwarded-Fox: y\r\n",
		"X-MS-PolicyKey:\r\nX-MS-PolicyKey: 7\r\nUser-Agent:\r\nCookie: a=b\r\n",
	} {
		var req fasthttp.Request
		raw := "POST /Microsoft-Server-ActiveSync?Cmd=Sync HTTP/1.1\r\nHost: gw.example.com\r\n" + head + "Content-Length: 0\r\n\r\n"
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var h requestHeaders
		h.read(&req.Header)
		for _, n := range append(keptHeaders[:], "Cookie", "Host", "X-Not-Kept") {
			if got, want := h.get(n), req.Header.Peek(n); !bytes.Equal(got, want) {
				t.Errorf("case %d, %s: snapshot %q, Peek %q", i, n, got, want)
			}
		}
	}
}
