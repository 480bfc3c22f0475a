package servers

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestGatewayProcessForwardsAllowedSync builds the gateway command, starts it as its own
// process in front of a loopback upstream, and checks that an allowed Sync with matching Basic
// credentials and EAS User reaches the upstream with the credentials, and that a mismatching
// EAS User is refused before the upstream hears of it.
func TestGatewayProcessForwardsAllowedSync(t *testing.T) {
	var hits atomic.Int64
	var auth atomic.Value
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		auth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
		_, _ = w.Write([]byte("upstream-sync-answer"))
	})}
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })

	g, err := NewGateway(GatewayOptions{Upstream: "http://" + ln.Addr().String() + "/Microsoft-Server-ActiveSync", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	if rss, err := g.RSS(); err != nil || rss <= 0 {
		t.Fatalf("RSS %d %v", rss, err)
	}

	cred := "Basic " + base64.StdEncoding.EncodeToString([]byte("user00001:pw"))
	send := func(easUser string) (int, string) {
		req, _ := http.NewRequest("POST", g.URL+"?Cmd=Sync&User="+easUser+"&DeviceId=BENCH1&DeviceType=iPhone", strings.NewReader("\x03\x01\x6a\x00"))
		req.Header.Set("Authorization", cred)
		req.Header.Set("MS-ASProtocolVersion", "14.1")
		req.Header.Set("Content-Type", "application/vnd.ms-sync.wbxml")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := send("user00001"); code != 200 || body != "upstream-sync-answer" {
		t.Fatalf("allowed Sync: %d %q\n%s", code, body, g.LogTail(20))
	}
	if hits.Load() != 1 || auth.Load() != cred {
		t.Fatalf("upstream hits %d, Authorization %q", hits.Load(), auth.Load())
	}
	if code, _ := send("someoneelse"); code == 200 {
		t.Fatalf("EAS User mismatch answered 200")
	}
	if hits.Load() != 1 {
		t.Fatalf("mismatching User reached the upstream")
	}
	g.Stop()
	if g.Running() == nil {
		t.Fatal("gateway still running after Stop")
	}
}
