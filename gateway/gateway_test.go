package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

var syncRequest = mustEncode(wbxml.NewElement(wbxml.AirSyncSync,
	wbxml.NewElement(wbxml.AirSyncCollections, wbxml.NewElement(wbxml.AirSyncCollection,
		wbxml.NewText(wbxml.AirSyncSyncKey, "1"), wbxml.NewText(wbxml.AirSyncCollectionId, "1")))))

func pingRequest(heartbeat int) []byte {
	return mustEncode(wbxml.NewElement(wbxml.PingPing,
		wbxml.NewText(wbxml.PingHeartbeatInterval, fmt.Sprint(heartbeat)),
		wbxml.NewElement(wbxml.PingFolders, wbxml.NewElement(wbxml.PingFolder,
			wbxml.NewText(wbxml.PingId, "1"), wbxml.NewText(wbxml.PingClass, "Email")))))
}

func TestAllowedSyncIsProxiedUnchanged(t *testing.T) {
	g := startGateway(t)
	resp, body := g.do(easReq{cmd: "Sync", user: "jdoe", device: "DEV1", body: syncRequest})
	if resp.StatusCode != 200 || string(body) != string(syncResponse) {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	recs := g.up.recorded()
	if len(recs) != 1 {
		t.Fatalf("upstream saw %d requests", len(recs))
	}
	r := recs[0]
	if r.body != string(syncRequest) || r.auth != basic("jdoe", "secret-jdoe") || !strings.Contains(r.query, "DeviceId=DEV1") {
		t.Fatalf("upstream got %+v", r)
	}
	if r.xff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", r.xff)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no request id")
	}
}

func TestBlockedDeviceNeverReachesUpstream(t *testing.T) {
	g := startGateway(t)
	ctx := context.Background()
	g.do(easReq{cmd: "Sync", user: "jdoe", device: "LOST1", body: syncRequest})
	if _, err := g.engine.SetOverride(ctx, "jdoe@example.com", "LOST1", decision.OverrideBlock, "test"); err != nil {
		t.Fatal(err)
	}
	before := g.up.hits.Load()
	// EAS 14.x: HTTP 200 with Status 129 in the command's own body.
	resp, body := g.do(easReq{cmd: "Sync", user: "jdoe", device: "LOST1", body: syncRequest})
	if resp.StatusCode != 200 || statusOf(t, body) != "129" {
		t.Fatalf("14.1 blocked: %d %q", resp.StatusCode, body)
	}
	resp, body = g.do(easReq{cmd: "FolderSync", user: "jdoe", device: "LOST1", version: "16.1"})
	if resp.StatusCode != 200 || statusOf(t, body) != "129" {
		t.Fatalf("16.1 blocked FolderSync: %d %q", resp.StatusCode, body)
	}
	// EAS 12.1: HTTP 403.
	resp, _ = g.do(easReq{cmd: "Sync", user: "jdoe", device: "LOST1", version: "12.1", body: syncRequest})
	if resp.StatusCode != 403 {
		t.Fatalf("12.1 blocked: %d", resp.StatusCode)
	}
	if g.up.hits.Load() != before {
		t.Fatal("a blocked device's request reached the upstream")
	}
}

func TestQuarantinedDeviceGetsLocalInbox(t *testing.T) {
	g := startGateway(t, func(_ *Config, p *decision.Policy) { p.UnknownDevice = decision.Quarantine })
	resp, body := g.do(easReq{cmd: "FolderSync", user: "jdoe", device: "NEW1", body: mustEncode(
		wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0")))})
	if resp.StatusCode != 200 || statusOf(t, body) != "1" {
		t.Fatalf("quarantine FolderSync: %d %q", resp.StatusCode, body)
	}
	if g.up.hits.Load() != 0 {
		t.Fatal("a quarantined device's FolderSync reached the upstream")
	}
}

func TestDeviceIdSpoofingAcrossUsers(t *testing.T) {
	g := startGateway(t, func(_ *Config, p *decision.Policy) { p.UnknownDevice = decision.Block })
	ctx := context.Background()
	if _, err := g.engine.Register(ctx, decision.Registration{User: "alice@example.com", DeviceID: "SHARED1"}, "test"); err != nil {
		t.Fatal(err)
	}
	resp, _ := g.do(easReq{cmd: "Sync", user: "alice", device: "SHARED1", body: syncRequest})
	if resp.StatusCode != 200 || g.up.hits.Load() != 1 {
		t.Fatalf("alice's enrolled device: %d", resp.StatusCode)
	}
	// Bob presents alice's DeviceId with his own credentials: the registry is keyed by the
	// identity, so it is bob's unknown device, blocked by policy.
	resp, body := g.do(easReq{cmd: "Sync", user: "bob", device: "SHARED1", body: syncRequest})
	if resp.StatusCode != 200 || statusOf(t, body) != "129" {
		t.Fatalf("bob on alice's DeviceId: %d %q", resp.StatusCode, body)
	}
	// Bob names alice as the EAS User: refused before any decision.
	resp, _ = g.do(easReq{cmd: "Sync", user: "alice", authUser: "bob", device: "SHARED1", body: syncRequest})
	if resp.StatusCode != 403 {
		t.Fatalf("EAS User alice with bob's credentials: %d", resp.StatusCode)
	}
	if g.up.hits.Load() != 1 {
		t.Fatalf("upstream hits = %d, want 1", g.up.hits.Load())
	}
}

func TestMalformedRequestsAreRefused(t *testing.T) {
	g := startGateway(t)
	b64 := func(r *eas.Request) string {
		q, err := r.AppendBase64Query(nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(q)
	}
	good := &eas.Request{Cmd: eas.CmdSync, User: "jdoe", DeviceID: "DEV1", DeviceType: "iPhone", Version: eas.V141}
	cases := []struct {
		name  string
		query string
	}{
		{"duplicated DeviceId", "Cmd=Sync&User=jdoe&DeviceId=A&DeviceId=B&DeviceType=iPhone"},
		{"duplicated Cmd", "Cmd=Sync&Cmd=SendMail&User=jdoe&DeviceId=A&DeviceType=iPhone"},
		{"missing DeviceId", "Cmd=Sync&User=jdoe&DeviceType=iPhone"},
		{"bad DeviceId characters", "Cmd=Sync&User=jdoe&DeviceId=../../x&DeviceType=iPhone"},
		{"CRLF in a parameter", "Cmd=Sync&User=jdoe%0D%0AX-Injected:1&DeviceId=A&DeviceType=iPhone"},
		{"NUL in a parameter", "Cmd=Sync&User=jdoe&DeviceId=A%00B&DeviceType=iPhone"},
		{"unknown command", "Cmd=Frobnicate&User=jdoe&DeviceId=A&DeviceType=iPhone"},
		{"plain and base64 together", "Cmd=Sync&User=jdoe&DeviceId=A&DeviceType=iPhone&" + b64(good)},
		{"base64 truncated", b64(good)[:10]},
	}
	for _, c := range cases {
		resp, _ := g.do(easReq{rawQuery: c.query, user: "jdoe", body: syncRequest})
		if (resp.StatusCode < 400 || resp.StatusCode >= 500) && !(c.name == "unknown command" && resp.StatusCode == 501) {
			t.Errorf("%s: status %d, want 4xx (501 for an unknown command, as Exchange)", c.name, resp.StatusCode)
		}
	}
	// The base64 form's version disagrees with the header.
	resp, _ := g.do(easReq{rawQuery: b64(good), user: "jdoe", version: "12.1", body: syncRequest})
	if resp.StatusCode != 400 {
		t.Errorf("base64 version 14.1 vs header 12.1: %d", resp.StatusCode)
	}
	// The base64 form alone works.
	resp, _ = g.do(easReq{rawQuery: b64(good), user: "jdoe", body: syncRequest})
	if resp.StatusCode != 200 {
		t.Errorf("base64 query: %d", resp.StatusCode)
	}
	if n := g.up.hits.Load(); n != 1 {
		t.Errorf("upstream saw %d requests, want only the valid one", n)
	}
}

func TestAuthentication(t *testing.T) {
	g := startGateway(t)
	q := "/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=D1&DeviceType=iPhone"
	for _, auth := range []string{"", "Negotiate abc", "Basic !!!", basic("", "x"), basic("a\nb", "x")} {
		req, _ := http.NewRequest("POST", "http://"+g.addr+q, strings.NewReader(string(syncRequest)))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("MS-ASProtocolVersion", "14.1")
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("auth %q: %d %q", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// DOMAIN\user and UPN spellings of one identity bind to the bare EAS User.
	resp, _ := g.do(easReq{cmd: "Sync", user: "jdoe", authUser: "jdoe@EXAMPLE.com", device: "D1", body: syncRequest})
	if resp.StatusCode != 200 {
		t.Errorf("UPN credentials: %d", resp.StatusCode)
	}
	if g.up.hits.Load() != 1 {
		t.Errorf("upstream hits %d", g.up.hits.Load())
	}
}

func TestRequestSmugglingAndFraming(t *testing.T) {
	g := startGateway(t)
	auth := basic("jdoe", "pw")
	head := "POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=D1&DeviceType=iPhone HTTP/1.1\r\nHost: gw\r\nAuthorization: " + auth + "\r\nMS-ASProtocolVersion: 14.1\r\n"
	cases := []struct{ name, req string }{
		{"CL and TE together", head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /admin HTTP/1.1\r\n\r\n"},
		{"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
		{"two Content-Lengths", head + "Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc"},
		{"bare CR in a header", head + "X-Evil: a\rb\r\nContent-Length: 0\r\n\r\n"},
		{"obs-fold header", head + "X-Evil: a\r\n b\r\nContent-Length: 0\r\n\r\n"},
	}
	for _, c := range cases {
		got := g.raw(c.req, 3*time.Second)
		// Either a 400 or a closed connection; never two responses, never a forwarded request.
		if strings.Count(got, "HTTP/1.1 ") > 1 || (got != "" && !strings.HasPrefix(got, "HTTP/1.1 400")) {
			t.Errorf("%s: answered %.80q", c.name, got)
		}
	}
	if g.up.hits.Load() != 0 {
		t.Errorf("a malformed request reached the upstream (%d)", g.up.hits.Load())
	}
}

func TestSlowAndOversizedRequests(t *testing.T) {
	g := startGateway(t)
	// Slow headers: the read timeout (2s here) closes the connection.
	start := time.Now()
	got := g.raw("POST /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: x\r\n", 10*time.Second)
	if time.Since(start) > 8*time.Second {
		t.Errorf("slow headers held %s (%q)", time.Since(start), got)
	}
	// A body that never arrives completely.
	start = time.Now()
	g.raw("POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=D1&DeviceType=iPhone HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc", 10*time.Second)
	if time.Since(start) > 8*time.Second {
		t.Errorf("slow body held %s", time.Since(start))
	}
	// Oversized body: refused without reading it all.
	got = g.raw(fmt.Sprintf("POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=D1&DeviceType=iPhone HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n", basic("jdoe", "pw"), 1<<40), 5*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 413") && got != "" {
		t.Errorf("oversized: %.60q", got)
	}
	if g.up.hits.Load() != 0 {
		t.Error("reached upstream")
	}
}

func TestPathAndMethodConfusion(t *testing.T) {
	g := startGateway(t)
	for _, path := range []string{"/Microsoft-Server-ActiveSync/..%2Fadmin", "//Microsoft-Server-ActiveSync", "/%4Dicrosoft-Server-ActiveSync", "/admin/v1/devices", "/metrics"} {
		got := g.raw("POST "+path+"?Cmd=Sync&User=jdoe&DeviceId=D1&DeviceType=iPhone HTTP/1.1\r\nHost: x\r\nAuthorization: "+basic("jdoe", "pw")+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 3*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 404") {
			t.Errorf("%s: %.40q", path, got)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+g.addr+"/Microsoft-Server-ActiveSync", nil)
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "OPTIONS, POST" {
		t.Errorf("GET: %d %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if g.up.hits.Load() != 0 {
		t.Error("reached upstream")
	}
}

func TestUpstreamFailuresMapToGatewayStatuses(t *testing.T) {
	up := startFakeEAS(t)
	g := startGatewayWith(t, up)
	up.srv.Close()
	codes := map[int]int{}
	for i := 0; i < 12; i++ {
		resp, body := g.do(easReq{cmd: "Sync", user: "jdoe", device: "D1", body: syncRequest})
		codes[resp.StatusCode]++
		if strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), "refused") {
			t.Fatalf("internal error text reached the client: %q", body)
		}
	}
	if codes[502] == 0 || codes[503] == 0 {
		t.Fatalf("upstream down: statuses %v, want 502 then 503 once the breaker opens", codes)
	}
}

func TestStoreDownFailsClosedForUnknownDevices(t *testing.T) {
	g := startGateway(t)
	g.do(easReq{cmd: "Sync", user: "jdoe", device: "KNOWN1", body: syncRequest})
	g.engine.Flush()
	g.engine.WaitCache()
	// Take the registry away under the running gateway.
	g.engine.Close()
	resp, body := g.do(easReq{cmd: "Sync", user: "jdoe", device: "NEVERSEEN", body: syncRequest})
	if resp.StatusCode == 200 && statusOf(t, body) == "1" {
		t.Fatal("an unknown device was allowed while the store was down")
	}
	if g.up.hits.Load() != 1 {
		t.Fatalf("upstream hits = %d", g.up.hits.Load())
	}
}

func TestPingHeartbeatClampedAndSuperseded(t *testing.T) {
	g := startGateway(t)
	type result struct {
		code int
		body []byte
	}
	first := make(chan result, 1)
	go func() {
		resp, body := g.do(easReq{cmd: "Ping", user: "jdoe", device: "P1", body: pingRequest(3540)})
		first <- result{resp.StatusCode, body}
	}()
	waitFor(t, func() bool { return g.up.activePings.Load() == 1 })
	if hb := g.up.recorded()[0].heartbeat; hb != "600" {
		t.Fatalf("upstream saw HeartbeatInterval %q, want the 600s maximum", hb)
	}
	// A new Ping from the same device answers the older one with "no changes".
	second := make(chan result, 1)
	go func() {
		resp, body := g.do(easReq{cmd: "Ping", user: "jdoe", device: "P1", body: pingRequest(300)})
		second <- result{resp.StatusCode, body}
	}()
	select {
	case r := <-first:
		if r.code != 200 || statusOf(t, r.body) != "1" {
			t.Fatalf("superseded ping: %d %q", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the older ping was not answered")
	}
	waitFor(t, func() bool { return len(g.up.recorded()) == 2 && g.up.activePings.Load() == 1 })
	// Draining answers the held ping so the device re-pings another node.
	go g.stop()
	select {
	case r := <-second:
		if r.code != 200 || statusOf(t, r.body) != "1" {
			t.Fatalf("ping at shutdown: %d %q", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not answer the held ping")
	}
}

func TestAbandonedPingsAreReleased(t *testing.T) {
	const waves, perWave = 5, 1000 // 10,000 abandoned pings, at most ~4 fds each at once
	// The first wave's 1,000 cache misses queue on the registry; under -race (a pure-Go SQLite,
	// ten times slower) they need more than the 2s production default to drain.
	g := startGateway(t, func(c *Config, _ *decision.Policy) { c.Store.Timeout = 2 * time.Minute })
	// Enrol the devices first, one at a time: this test is about held connections, not about a
	// burst of first sightings (which, under -race with a pure-Go SQLite, outlasts the store
	// timeout and is answered "retry later", as it should be).
	for i := 0; i < perWave; i++ {
		if _, err := g.engine.Register(context.Background(), decision.Registration{User: fmt.Sprintf("u%d@example.com", i), DeviceID: fmt.Sprintf("D%d", i)}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	baseGoroutines := runtime.NumGoroutine()
	for w := 0; w < waves; w++ {
		var wg sync.WaitGroup
		conns := make(chan func(), perWave)
		for i := 0; i < perWave; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				// The same 1,000 devices every wave: the first wave registers them (slow under
				// -race: a pure-Go SQLite), the later ones are decided from the cache.
				dev := fmt.Sprintf("D%d", i)
				body := pingRequest(600)
				c, err := dialRaw(g.addr)
				if err != nil {
					t.Error(err)
					return
				}
				fmt.Fprintf(c, "POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=u%d&DeviceId=%s&DeviceType=iPhone HTTP/1.1\r\nHost: gw\r\nAuthorization: %s\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: %d\r\n\r\n%s",
					i, dev, basic(fmt.Sprintf("u%d", i), "pw"), len(body), body)
				conns <- func() { c.Close() }
			}(i)
		}
		wg.Wait()
		close(conns)
		waitForLong(t, 3*time.Minute, func() bool {
			if testing.Verbose() {
				t.Logf("wave %d: upstream %d held %d goroutines %d", w, g.up.activePings.Load(), g.srv.pings.held(), runtime.NumGoroutine())
			}
			return g.up.activePings.Load() == perWave
		})
		for closeConn := range conns {
			closeConn()
		}
		// Every abandoned ping is noticed and its upstream request cancelled.
		waitFor(t, func() bool {
			return g.up.activePings.Load() == 0 && g.srv.pings.held() == 0
		})
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() < baseGoroutines+50 })
}

func TestAdminAPI(t *testing.T) {
	g := startGateway(t)
	g.do(easReq{cmd: "Sync", user: "jdoe", device: "ADM1", body: syncRequest})
	g.engine.Flush()
	// Unauthenticated and wrongly authenticated requests are refused.
	for _, tok := range []string{"", "wrong"} {
		req, _ := http.NewRequest("GET", "http://"+g.admin+"/admin/v1/devices", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("token %q: %d", tok, resp.StatusCode)
		}
	}
	code, body := g.adminDo("GET", "/admin/v1/devices?user=jdoe@example.com", "")
	if code != 200 || !strings.Contains(body, `"ADM1"`) {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body = g.adminDo("POST", "/admin/v1/devices/jdoe@example.com/ADM1/block", ""); code != 200 {
		t.Fatalf("block: %d %s", code, body)
	}
	resp, rb := g.do(easReq{cmd: "Sync", user: "jdoe", device: "ADM1", body: syncRequest})
	if resp.StatusCode != 200 || statusOf(t, rb) != "129" {
		t.Fatalf("after admin block: %d %q", resp.StatusCode, rb)
	}
	if code, _ = g.adminDo("POST", "/admin/v1/devices/jdoe@example.com/ADM1/clear", ""); code != 200 {
		t.Fatalf("clear: %d", code)
	}
	if resp, _ = g.do(easReq{cmd: "Sync", user: "jdoe", device: "ADM1", body: syncRequest}); resp.StatusCode != 200 || g.up.hits.Load() != 2 {
		t.Fatalf("after clear: %d hits %d", resp.StatusCode, g.up.hits.Load())
	}
	code, body = g.adminDo("GET", "/admin/v1/audit?user=jdoe@example.com", "")
	var audit struct {
		Entries []decision.AuditEntry `json:"entries"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &audit) != nil || len(audit.Entries) < 2 {
		t.Fatalf("audit: %d %s", code, body)
	}
	if code, _ = g.adminDo("GET", "/admin/v1/devices/nobody/NONE", ""); code != 404 {
		t.Fatalf("unknown device: %d", code)
	}
	if code, body = g.adminDo("GET", "/metrics", ""); code != 200 || !strings.Contains(body, "easgate_decisions_total") {
		t.Fatalf("metrics: %d", code)
	}
	if strings.Contains(body, "secret-") || strings.Contains(body, "Basic ") {
		t.Fatal("credentials in metrics")
	}
}

func TestReleasedDeviceResynchronisesRealMailbox(t *testing.T) {
	g := startGateway(t, func(_ *Config, p *decision.Policy) { p.UnknownDevice = decision.Quarantine })
	folderSync := func(key string) []byte {
		return mustEncode(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, key)))
	}
	// In quarantine: the local one-folder hierarchy, with the gateway's own SyncKey.
	_, body := g.do(easReq{cmd: "FolderSync", user: "jdoe", device: "REL1", body: folderSync("0")})
	doc, err := wbxml.Parse(body, wbxml.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	qkey := doc.Root.Find(wbxml.FolderHierarchySyncKey).Text()
	if qkey == "" || g.up.hits.Load() != 0 {
		t.Fatalf("quarantine FolderSync: key %q, upstream hits %d", qkey, g.up.hits.Load())
	}
	// Released by an admin: the next request passes, no admin step on the device.
	if code, body := g.adminDo("POST", "/admin/v1/devices/jdoe@example.com/REL1/release", ""); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	// The device still holds the quarantine key: the gateway answers "invalid sync key" itself,
	// so the upstream never sees a key it did not issue...
	resp, body := g.do(easReq{cmd: "FolderSync", user: "jdoe", device: "REL1", body: folderSync(qkey)})
	if resp.StatusCode != 200 || statusOf(t, body) != "9" || g.up.hits.Load() != 0 {
		t.Fatalf("stale quarantine key after release: %d status %q hits %d", resp.StatusCode, statusOf(t, body), g.up.hits.Load())
	}
	// ...and the device starts over against the real mailbox.
	if resp, _ = g.do(easReq{cmd: "FolderSync", user: "jdoe", device: "REL1", body: folderSync("0")}); resp.StatusCode != 200 || g.up.hits.Load() != 1 {
		t.Fatalf("resync: %d hits %d", resp.StatusCode, g.up.hits.Load())
	}
	if got := g.up.recorded()[0].body; got != string(folderSync("0")) {
		t.Fatal("upstream did not get the device's FolderSync unchanged")
	}
}

func TestSettingsDeviceInformationIsRecorded(t *testing.T) {
	g := startGateway(t)
	body := mustEncode(wbxml.NewElement(wbxml.SettingsSettings, wbxml.NewElement(wbxml.SettingsDeviceInformation,
		wbxml.NewElement(wbxml.SettingsSet, wbxml.NewText(wbxml.SettingsModel, "iPhone15,2"),
			wbxml.NewText(wbxml.SettingsFriendlyName, "Jane's iPhone"), wbxml.NewText(wbxml.SettingsOS, "iOS 17.1 21B74")))))
	if resp, _ := g.do(easReq{cmd: "Settings", user: "jdoe", device: "SET1", body: body}); resp.StatusCode != 200 {
		t.Fatalf("Settings: %d", resp.StatusCode)
	}
	d, err := g.engine.Device(context.Background(), "jdoe@example.com", "SET1")
	if err != nil || d.Info.Model != "iPhone15,2" || d.Info.FriendlyName != "Jane's iPhone" || d.Info.OS != "iOS 17.1 21B74" {
		t.Fatalf("recorded %+v, %v", d.Info, err)
	}
}

func TestSyncWithWaitIsHeldAndReleasedWhenDeviceLeaves(t *testing.T) {
	g := startGateway(t)
	body := mustEncode(wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewText(wbxml.AirSyncWait, "10"),
		wbxml.NewElement(wbxml.AirSyncCollections, wbxml.NewElement(wbxml.AirSyncCollection,
			wbxml.NewText(wbxml.AirSyncSyncKey, "5"), wbxml.NewText(wbxml.AirSyncCollectionId, "1")))))
	c, err := dialRaw(g.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=WAIT1&DeviceType=iPhone HTTP/1.1\r\nHost: gw\r\nAuthorization: %s\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: %d\r\n\r\n%s",
		basic("jdoe", "pw"), len(body), body)
	waitFor(t, func() bool { return g.up.activePings.Load() == 1 && g.srv.pings.held() == 1 })
	c.Close()
	waitFor(t, func() bool { return g.up.activePings.Load() == 0 && g.srv.pings.held() == 0 })
}

func TestSecretsNeverLogged(t *testing.T) {
	g := startGateway(t, func(_ *Config, p *decision.Policy) { p.UnknownDevice = decision.Quarantine })
	const pw = "Hunter2-very-secret"
	g.do(easReq{cmd: "Sync", user: "jdoe", password: pw, device: "LOG1", body: syncRequest})
	g.do(easReq{cmd: "Sync", user: "alice", authUser: "jdoe", password: pw, device: "LOG1", body: syncRequest}) // mismatch path
	g.do(easReq{rawQuery: "Cmd=Sync&User=jdoe&DeviceId=LOG1&DeviceId=X&DeviceType=iPhone", user: "jdoe", password: pw})
	g.adminDo("GET", "/admin/v1/devices", "")
	logs := g.logs.String()
	if !strings.Contains(logs, `"rid"`) {
		t.Fatalf("no request logs captured:\n%s", logs)
	}
	for _, secret := range []string{pw, basic("jdoe", pw)[6:], testAdminToken, "Authorization"} {
		if strings.Contains(logs, secret) {
			t.Errorf("%q appears in the logs", secret)
		}
	}
}

func TestAdminPolicyReadAndChange(t *testing.T) {
	g := startGateway(t)
	code, body := g.adminDo("GET", "/admin/v1/policy", "")
	if code != 200 || !strings.Contains(body, `"unknown_device": "allow"`) {
		t.Fatalf("get policy: %d %s", code, body)
	}
	if code, body = g.adminDo("PUT", "/admin/v1/policy", `{"unknown_device":"block","rules":[{"id":"x","match":{"device_type":"*"},"action":"sometimes"}]}`); code != 400 {
		t.Fatalf("invalid policy accepted: %d %s", code, body)
	}
	dup := `{"rules":[{"id":"a","match":{"device_type":"x"},"action":"block"},{"id":"a","match":{"device_type":"y"},"action":"block"}]}`
	if code, body = g.adminDo("PUT", "/admin/v1/policy", dup); code != 400 {
		t.Fatalf("duplicate rule ids accepted: %d %s", code, body)
	}
	if code, body = g.adminDo("PUT", "/admin/v1/policy", `{"unknown_device":"block"}`); code != 200 {
		t.Fatalf("put policy: %d %s", code, body)
	}
	resp, b := g.do(easReq{cmd: "Sync", user: "jdoe", device: "POL1", body: syncRequest})
	if resp.StatusCode != 200 || statusOf(t, b) != "129" || g.up.hits.Load() != 0 {
		t.Fatalf("new policy not applied: %d %q", resp.StatusCode, b)
	}
}

// TestPingAnsweredAtOnceIsDelivered: an upstream that answers a Ping immediately (a change was
// already pending) must get its answer to the device every time, over many rounds. Regression:
// the upstream client waited for a held answer through the poller after RawConn.Read had reset
// its readiness, so an answer that was already there was seen only at the Ping deadline.
func TestPingAnsweredAtOnceIsDelivered(t *testing.T) {
	g := startGateway(t)
	g.up.mu.Lock()
	g.up.pingHold = time.Millisecond
	g.up.mu.Unlock()
	for i := 0; i < 200; i++ {
		c, err := dialRaw(g.addr)
		if err != nil {
			t.Fatal(err)
		}
		body := pingRequest(300)
		fmt.Fprintf(c, "POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=jdoe&DeviceId=FAST1&DeviceType=iPhone HTTP/1.1\r\nHost: gw\r\nAuthorization: %s\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: %d\r\n\r\n%s",
			basic("jdoe", "pw"), len(body), body)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(got), "HTTP/1.1 200") {
			t.Fatalf("round %d: %q %v", i, got, err)
		}
	}
}

// TestAdminProfiles: Go's profiles are served on the admin listener behind the admin token,
// never to an anonymous caller.
func TestAdminProfiles(t *testing.T) {
	g := startGateway(t)
	resp, err := g.client.Get("http://" + g.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("anonymous profile request: %d", resp.StatusCode)
	}
	code, body := g.adminDo("GET", "/debug/pprof/goroutine?debug=1", "")
	if code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("goroutine profile: %d %.80q", code, body)
	}
	if code, body = g.adminDo("GET", "/debug/pprof/profile?seconds=1", ""); code != 200 || len(body) == 0 {
		t.Fatalf("CPU profile: %d, %d bytes", code, len(body))
	}
}
