package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/notifier"
)

const testMDMSecret = "mdm-webhook-secret-0123456789abcdefghij"

func (g *testGateway) mdm(body, sig string) (int, string) {
	g.t.Helper()
	req, _ := http.NewRequest("POST", "http://"+g.admin+mdmPath, strings.NewReader(body))
	if sig != "" {
		req.Header.Set("X-Easgate-Signature", sig)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// TestMDMWebhookReleasesCompliantDevice: an MDM pushes a signed compliance report and the
// quarantined device is allowed on its next request; unsigned, stale or tampered reports change
// nothing.
func TestMDMWebhookReleasesCompliantDevice(t *testing.T) {
	g := startGateway(t, func(c *Config, p *decision.Policy) {
		c.Admin.MDMWebhookSecret = testMDMSecret
		p.UnknownDevice = decision.Quarantine
		p.Compliance = []decision.ComplianceRule{{Platform: "*", PasscodeRequired: true, EncryptionRequired: true}}
	})
	ctx := context.Background()
	if _, err := g.engine.Register(ctx, decision.Registration{User: "jdoe@example.com", DeviceID: "MDM1"}, "test"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := g.do(easReq{cmd: "Sync", user: "jdoe", device: "MDM1", body: syncRequest}); resp.StatusCode != 200 || g.up.hits.Load() != 0 {
		t.Fatalf("not yet compliant device reached the upstream (%d)", resp.StatusCode)
	}
	body := `{"user":"jdoe@example.com","device_id":"MDM1","compliance":{"platform":"ios","passcode_set":true,"encrypted":true,"source":"testmdm"}}`
	now := time.Now()
	for _, c := range []struct{ name, sig, body string }{
		{"unsigned", "", body},
		{"wrong secret", notifier.SignWebhook([]byte("another-secret-0123456789abcdefghijk"), now, []byte(body)), body},
		{"stale", notifier.SignWebhook([]byte(testMDMSecret), now.Add(-time.Hour), []byte(body)), body},
		{"tampered", notifier.SignWebhook([]byte(testMDMSecret), now, []byte(body)), strings.Replace(body, "MDM1", "MDM2", 1)},
	} {
		if code, _ := g.mdm(c.body, c.sig); code != 401 {
			t.Errorf("%s report: %d", c.name, code)
		}
	}
	code, out := g.mdm(body, notifier.SignWebhook([]byte(testMDMSecret), now, []byte(body)))
	if code != 200 || !strings.Contains(out, `"recorded"`) {
		t.Fatalf("signed report: %d %s", code, out)
	}
	if resp, _ := g.do(easReq{cmd: "Sync", user: "jdoe", device: "MDM1", body: syncRequest}); resp.StatusCode != 200 || g.up.hits.Load() != 1 {
		t.Fatalf("compliant device not released: %d hits %d", resp.StatusCode, g.up.hits.Load())
	}
	entries, _ := g.engine.Audit(ctx, decision.AuditFilter{User: "jdoe@example.com", DeviceID: "MDM1"})
	found := false
	for _, e := range entries {
		found = found || e.Actor == "mdm:testmdm"
	}
	if !found {
		t.Fatal("the MDM report is not in the audit log")
	}
}
