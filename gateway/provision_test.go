package gateway

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// policyUpstream is a fake EAS server with provisioning: with a policy of its own it hands out
// a temporary key on the initial Provision, a final key on a correct acknowledgement, and
// refuses (HTTP 449) any later command that does not carry its final key; without a policy it
// answers Policy Status 2 and accepts every key. It records what reached it.
type policyUpstream struct {
	policy *eas.PolicyDocument // nil: no policy

	mu       sync.Mutex
	seen     []upstreamSeen
	tempKey  uint32
	finalKey uint32
}

type upstreamSeen struct {
	cmd       eas.Command
	policyKey string
	body      []byte
}

func startPolicyUpstream(t *testing.T, policy *eas.PolicyDocument) (*fakeEAS, *policyUpstream) {
	t.Helper()
	pu := &policyUpstream{policy: policy, tempKey: 1111111111, finalKey: 2222222222}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeEAS{t: t, ln: ln, release: make(chan struct{})}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		pu.handle(t, w, r)
	}), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go f.srv.Serve(ln)
	t.Cleanup(func() { close(f.release); f.srv.Close() })
	return f, pu
}

func (pu *policyUpstream) handle(t *testing.T, w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req eas.Request
	_ = eas.ParseQuery([]byte(r.URL.RawQuery), &req)
	key := r.Header.Get("X-MS-PolicyKey")
	if req.Base64 && req.HasPolicyKey {
		key = strconv.FormatUint(uint64(req.PolicyKey), 10)
	}
	pu.mu.Lock()
	pu.seen = append(pu.seen, upstreamSeen{cmd: req.Cmd, policyKey: key, body: body})
	pu.mu.Unlock()
	w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
	if req.Cmd != eas.CmdProvision {
		if pu.policy != nil && key != strconv.FormatUint(uint64(pu.finalKey), 10) {
			w.WriteHeader(449)
			return
		}
		switch req.Cmd {
		case eas.CmdSync:
			w.Write(syncResponse)
		case eas.CmdPing:
			w.Write(mustEncode(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingStatus, "1"))))
		}
		return
	}
	doc, err := wbxml.Parse(body, wbxml.DefaultLimits)
	if err != nil {
		w.WriteHeader(400)
		return
	}
	p, err := eas.ParseProvision(doc)
	if err != nil || len(p.Policies) == 0 {
		w.WriteHeader(400)
		return
	}
	pol := p.Policies[0]
	out := &eas.Provision{Status: eas.ProvisionSuccess}
	switch {
	case pu.policy == nil:
		out.Policies = []*eas.Policy{{PolicyType: pol.PolicyType, Status: eas.PolicyNoPolicy}}
	case pol.PolicyKey == "":
		out.Policies = []*eas.Policy{{PolicyType: pol.PolicyType, Status: eas.PolicySuccess,
			PolicyKey: strconv.FormatUint(uint64(pu.tempKey), 10), Data: pu.policy.Clone()}}
	case pol.PolicyKey == strconv.FormatUint(uint64(pu.tempKey), 10) && key == pol.PolicyKey:
		out.Policies = []*eas.Policy{{PolicyType: pol.PolicyType, Status: eas.PolicySuccess,
			PolicyKey: strconv.FormatUint(uint64(pu.finalKey), 10)}}
	default:
		out.Policies = []*eas.Policy{{PolicyType: pol.PolicyType, Status: eas.PolicyWrongPolicyKey}}
	}
	b, err := out.AppendTo(nil)
	if err != nil {
		t.Error(err)
	}
	w.Write(b)
}

func (pu *policyUpstream) recorded() []upstreamSeen {
	pu.mu.Lock()
	defer pu.mu.Unlock()
	return append([]upstreamSeen(nil), pu.seen...)
}

func policyDoc(t *testing.T, kv ...string) *eas.PolicyDocument {
	t.Helper()
	d := &eas.PolicyDocument{}
	for i := 0; i < len(kv); i += 2 {
		if err := d.Set(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// gatewayPolicy is the EAS policy most tests configure.
var gatewayPolicy = map[string]any{
	"DevicePasswordEnabled":       true,
	"MinDevicePasswordLength":     8,
	"MaxInactivityTimeDeviceLock": 300,
	"AllowCamera":                 false,
	"RequireDeviceEncryption":     true,
}

func withEASPolicy(settings map[string]any) gwOption {
	return func(c *Config, _ *decision.Policy) {
		c.Provisioning = ProvisioningConfig{Policies: []EASPolicyConfig{{Name: "corp", Settings: settings}}, Default: "corp"}
		c.Provisioning.applyDefaults()
	}
}

// device is a simulated EAS client that provisions like MS-ASPROV 3.1.5.1 says.
type device struct {
	t       *testing.T
	g       *testGateway
	id      string
	version string
	key     string // current policy key ("" before provisioning)
	base64  bool   // MS-ASHTTP base64-encoded query: the key travels in the query
	// user, login and password override the harness's jdoe credentials (the demo mailbox).
	user, login, password string
}

func (d *device) req(cmd string, body []byte) easReq {
	r := easReq{cmd: cmd, user: "jdoe", device: d.id, version: d.version, body: body}
	if d.user != "" {
		r.user, r.authUser, r.password = d.user, d.login, d.password
	}
	if d.base64 {
		c, _ := eas.ParseCommand(cmd)
		v, _ := eas.ParseVersion(d.version)
		q := &eas.Request{Cmd: c, User: "jdoe", DeviceID: d.id, DeviceType: "iPhone", Version: v}
		if d.key != "" {
			k, _ := strconv.ParseUint(d.key, 10, 32)
			q.PolicyKey, q.HasPolicyKey = uint32(k), true
		}
		b, err := q.AppendBase64Query(nil)
		if err != nil {
			d.t.Fatal(err)
		}
		r.rawQuery = string(b)
		return r
	}
	if d.key != "" {
		r.header = map[string]string{"X-MS-PolicyKey": d.key}
	}
	return r
}

func (d *device) do(cmd string, body []byte) (*http.Response, []byte) {
	d.t.Helper()
	return d.g.do(d.req(cmd, body))
}

func provisionResponse(t *testing.T, body []byte) *eas.Provision {
	t.Helper()
	doc, err := wbxml.Parse(body, wbxml.DefaultLimits)
	if err != nil {
		t.Fatalf("Provision answer is not WBXML: %v (%q)", err, body)
	}
	p, err := eas.ParseProvision(doc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func encodeProvision(t *testing.T, p *eas.Provision) []byte {
	t.Helper()
	b, err := p.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// initial sends the initial Provision request and returns the policy and temporary key.
func (d *device) initial() (*eas.PolicyDocument, string) {
	d.t.Helper()
	req := &eas.Provision{Policies: []*eas.Policy{{PolicyType: eas.PolicyTypeWBXML}}}
	if v, _ := eas.ParseVersion(d.version); v >= eas.V141 {
		req.DeviceInformation = &eas.DeviceInformation{Model: "iPhone15,2", OS: "iOS 17.4.1", UserAgent: "Apple-iPhone/1"}
	}
	d.key = "0"
	resp, body := d.do("Provision", encodeProvision(d.t, req))
	if resp.StatusCode != 200 {
		d.t.Fatalf("initial Provision: HTTP %d", resp.StatusCode)
	}
	p := provisionResponse(d.t, body)
	if p.Status != eas.ProvisionSuccess || len(p.Policies) != 1 || p.Policies[0].Status != eas.PolicySuccess || p.Policies[0].Data == nil {
		d.t.Fatalf("initial Provision answer: %+v", p)
	}
	return p.Policies[0].Data, p.Policies[0].PolicyKey
}

// ack acknowledges temp with status and returns the answer.
func (d *device) ack(temp string, status eas.Status) (*http.Response, []byte) {
	d.t.Helper()
	d.key = temp
	return d.do("Provision", encodeProvision(d.t, &eas.Provision{Policies: []*eas.Policy{{PolicyType: eas.PolicyTypeWBXML, PolicyKey: temp, Status: status}}}))
}

// provision runs both phases and keeps the final key.
func (d *device) provision() *eas.PolicyDocument {
	d.t.Helper()
	doc, temp := d.initial()
	resp, body := d.ack(temp, eas.PolicyAckSuccess)
	if resp.StatusCode != 200 {
		d.t.Fatalf("acknowledgement: HTTP %d", resp.StatusCode)
	}
	p := provisionResponse(d.t, body)
	if p.Status != eas.ProvisionSuccess || len(p.Policies) != 1 || p.Policies[0].Status != eas.PolicySuccess || p.Policies[0].PolicyKey == "" || p.Policies[0].PolicyKey == temp {
		d.t.Fatalf("acknowledgement answer: %+v", p.Policies[0])
	}
	d.key = p.Policies[0].PolicyKey
	return doc
}

// expectProvisionStatus checks a command answer: HTTP 449 before 14.0, else status st in the
// command's body.
func (d *device) expectProvisionStatus(resp *http.Response, body []byte, st eas.Status) {
	d.t.Helper()
	if v, _ := eas.ParseVersion(d.version); v < eas.V140 {
		if resp.StatusCode != 449 {
			d.t.Fatalf("%s: HTTP %d, want 449", d.version, resp.StatusCode)
		}
		return
	}
	if resp.StatusCode != 200 || statusOf(d.t, body) != strconv.Itoa(int(st)) {
		d.t.Fatalf("%s: HTTP %d status %q, want %d", d.version, resp.StatusCode, statusOf(d.t, body), st)
	}
}

func boolOf(p *bool) string {
	if p == nil {
		return "absent"
	}
	return strconv.FormatBool(*p)
}

func intOf(p *int64) string {
	if p == nil {
		return "absent"
	}
	return strconv.FormatInt(*p, 10)
}

// TestProvisioning_GatewayIsAuthority_MS_ASPROV_4_1: an upstream without a policy; the
// gateway's policy and keys, for EAS 12.1, 14.1 and 16.1: enforcement (142/449), download
// with a temporary key, acknowledgement and final key, a command with the key, a stale key
// (144/449), a policy change (143/449) and re-provisioning.
func TestProvisioning_GatewayIsAuthority_MS_ASPROV_4_1(t *testing.T) {
	up, pu := startPolicyUpstream(t, nil)
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	for i, ver := range []string{"12.1", "14.1", "16.1"} {
		t.Run(ver, func(t *testing.T) {
			d := &device{t: t, g: g, id: "AUTH" + strconv.Itoa(i), version: ver}
			// Phase 1: enforcement.
			resp, body := d.do("FolderSync", mustEncode(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))))
			d.expectProvisionStatus(resp, body, eas.StatusDeviceNotProvisioned)
			// Phase 2 and 3.
			before := len(pu.recorded())
			doc, temp := d.initial()
			if doc.MinDevicePasswordLength == nil || *doc.MinDevicePasswordLength != 8 || boolOf(doc.AllowCamera) != "false" ||
				boolOf(doc.RequireDeviceEncryption) != "true" || intOf(doc.MaxInactivityTimeDeviceLock) != "300" {
				t.Fatalf("policy sent: %+v", doc)
			}
			// A command with the temporary key is refused.
			d.key = temp
			resp, body = d.do("Sync", syncRequest)
			d.expectProvisionStatus(resp, body, eas.StatusDeviceNotProvisioned)
			resp, body = d.ack(temp, eas.PolicyAckSuccess)
			p := provisionResponse(t, body)
			if resp.StatusCode != 200 || p.Policies[0].Status != eas.PolicySuccess {
				t.Fatalf("ack: %d %+v", resp.StatusCode, p)
			}
			final := p.Policies[0].PolicyKey
			d.key = final
			// Phase 4: a command with the final key reaches the upstream.
			resp, body = d.do("Sync", syncRequest)
			if resp.StatusCode != 200 || string(body) != string(syncResponse) {
				t.Fatalf("Sync with the final key: %d %q", resp.StatusCode, body)
			}
			// The upstream was asked for its policy (it has none), so the acknowledgement is the
			// gateway's alone; the Sync went through.
			if n := len(pu.recorded()) - before; n != 2 {
				t.Fatalf("upstream saw %d requests, want 2 (initial, Sync)", n)
			}
			dev, err := g.engine.Device(context.Background(), "jdoe@example.com", d.id)
			if err != nil {
				t.Fatal(err)
			}
			if !dev.Provisioning.Acknowledged() || strconv.FormatUint(uint64(dev.Provisioning.PolicyKeyAcked), 10) != final ||
				!strings.HasPrefix(dev.Provisioning.PolicyVersionAcked, "1+") {
				t.Fatalf("registry: %+v", dev.Provisioning)
			}
			// A stale key: 144 InvalidPolicyKey.
			d.key = temp
			resp, body = d.do("Sync", syncRequest)
			d.expectProvisionStatus(resp, body, eas.StatusInvalidPolicyKey)
			d.key = final
			resp, _ = d.do("Sync", syncRequest)
			if resp.StatusCode != 200 {
				t.Fatalf("final key after a stale one: %d", resp.StatusCode)
			}
		})
	}
	// A policy change (configuration reload): every device is told to re-provision, then
	// works with its new key.
	if err := g.srv.SetProvisioning(ProvisioningConfig{Default: "corp", Policies: []EASPolicyConfig{{Name: "corp",
		Settings: map[string]any{"DevicePasswordEnabled": true, "MinDevicePasswordLength": 10}}}}); err != nil {
		t.Fatal(err)
	}
	for i, ver := range []string{"12.1", "14.1", "16.1"} {
		d := &device{t: t, g: g, id: "AUTH" + strconv.Itoa(i), version: ver}
		dev, _ := g.engine.Device(context.Background(), "jdoe@example.com", d.id)
		d.key = strconv.FormatUint(uint64(dev.Provisioning.PolicyKeyAcked), 10)
		resp, body := d.do("Sync", syncRequest)
		d.expectProvisionStatus(resp, body, eas.StatusPolicyRefresh)
		doc := d.provision()
		if intOf(doc.MinDevicePasswordLength) != "10" || doc.AllowCamera != nil {
			t.Fatalf("%s: new policy: %+v", ver, doc)
		}
		resp, _ = d.do("Sync", syncRequest)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: after re-provisioning: %d", ver, resp.StatusCode)
		}
	}
	if err := g.srv.SetProvisioning(ProvisioningConfig{Policies: []EASPolicyConfig{{Name: "x", Settings: map[string]any{"MinDevicePasswordLength": 99}}}}); err == nil {
		t.Fatal("an invalid policy was put in force")
	}
}

// TestProvisioning_StricterOfUpstream: the upstream has its own policy and keys. The device
// receives the stricter of both policies with the gateway's keys; the upstream receives its
// own keys (acknowledgement body and header, and every later command).
func TestProvisioning_StricterOfUpstream(t *testing.T) {
	upPolicy := policyDoc(t, "DevicePasswordEnabled", "true", "MinDevicePasswordLength", "4",
		"MaxInactivityTimeDeviceLock", "900", "AllowCamera", "true", "AllowBluetooth", "2", "MaxAttachmentSize", "unlimited")
	up, pu := startPolicyUpstream(t, upPolicy)
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	upFinal := strconv.FormatUint(uint64(pu.finalKey), 10)
	upTemp := strconv.FormatUint(uint64(pu.tempKey), 10)
	for i, ver := range []string{"12.1", "14.1", "16.1"} {
		t.Run(ver, func(t *testing.T) {
			d := &device{t: t, g: g, id: "MERGE" + strconv.Itoa(i), version: ver}
			before := len(pu.recorded())
			doc, temp := d.initial()
			if temp == upTemp {
				t.Fatal("the device was given the upstream's key")
			}
			want := map[string]string{"MinDevicePasswordLength": "8", "MaxInactivityTimeDeviceLock": "300",
				"AllowBluetooth": "2", "MaxAttachmentSize": "-1"}
			got := map[string]string{"MinDevicePasswordLength": intOf(doc.MinDevicePasswordLength),
				"MaxInactivityTimeDeviceLock": intOf(doc.MaxInactivityTimeDeviceLock),
				"AllowBluetooth":              intOf(doc.AllowBluetooth), "MaxAttachmentSize": intOf(doc.MaxAttachmentSize)}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
			if boolOf(doc.AllowCamera) != "false" || boolOf(doc.RequireDeviceEncryption) != "true" || boolOf(doc.DevicePasswordEnabled) != "true" {
				t.Errorf("booleans: camera %s encryption %s password %s", boolOf(doc.AllowCamera),
					boolOf(doc.RequireDeviceEncryption), boolOf(doc.DevicePasswordEnabled))
			}
			resp, body := d.ack(temp, eas.PolicyAckSuccess)
			p := provisionResponse(t, body)
			if resp.StatusCode != 200 || p.Policies[0].Status != eas.PolicySuccess || p.Policies[0].PolicyKey == upFinal {
				t.Fatalf("ack answer: %d %+v", resp.StatusCode, p.Policies[0])
			}
			d.key = p.Policies[0].PolicyKey
			resp, body = d.do("Sync", syncRequest)
			if resp.StatusCode != 200 || string(body) != string(syncResponse) {
				t.Fatalf("Sync: %d %q", resp.StatusCode, body)
			}
			seen := pu.recorded()[before:]
			if len(seen) != 3 {
				t.Fatalf("upstream saw %d requests", len(seen))
			}
			ack := provisionResponse(t, seen[1].body)
			if seen[1].policyKey != upTemp || ack.Policies[0].PolicyKey != upTemp || ack.Policies[0].Status != eas.PolicyAckSuccess {
				t.Fatalf("upstream acknowledgement: header %q body %+v", seen[1].policyKey, ack.Policies[0])
			}
			if seen[2].policyKey != upFinal {
				t.Fatalf("upstream got key %q on Sync, want its own %s", seen[2].policyKey, upFinal)
			}
		})
	}
}

// TestProvisioning_Base64QueryCarriesUpstreamKey: a device using the base64-encoded query
// (MS-ASHTTP 2.2.1.1.1.1) carries its policy key in the query; the upstream gets its own key
// there, in the acknowledgement and on later commands.
func TestProvisioning_Base64QueryCarriesUpstreamKey(t *testing.T) {
	up, pu := startPolicyUpstream(t, policyDoc(t, "DevicePasswordEnabled", "true"))
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	d := &device{t: t, g: g, id: "B64DEV", version: "14.1", base64: true}
	d.provision()
	resp, body := d.do("Sync", syncRequest)
	if resp.StatusCode != 200 || string(body) != string(syncResponse) {
		t.Fatalf("base64 Sync: %d %q", resp.StatusCode, body)
	}
	seen := pu.recorded()
	if len(seen) != 3 || seen[1].policyKey != strconv.FormatUint(uint64(pu.tempKey), 10) ||
		seen[2].policyKey != strconv.FormatUint(uint64(pu.finalKey), 10) {
		t.Fatalf("upstream saw keys %+v", seen)
	}
	// A gateway policy change: 143, re-provisioning through the upstream, and on.
	if err := g.srv.SetProvisioning(ProvisioningConfig{Default: "corp", Policies: []EASPolicyConfig{{Name: "corp",
		Settings: map[string]any{"AllowBrowser": false}}}}); err != nil {
		t.Fatal(err)
	}
	resp, body = d.do("Sync", syncRequest)
	d.expectProvisionStatus(resp, body, eas.StatusPolicyRefresh)
	if doc := d.provision(); boolOf(doc.AllowBrowser) != "false" || boolOf(doc.DevicePasswordEnabled) != "true" {
		t.Fatalf("re-provisioned policy: %+v", doc)
	}
	if resp, _ := d.do("Sync", syncRequest); resp.StatusCode != 200 {
		t.Fatalf("after re-provisioning: %d", resp.StatusCode)
	}
}

// TestProvisioning_LegacyDevices: EAS 2.5 cannot receive a WBXML policy; under a policy it
// is refused (legacy_devices: block, the default).
func TestProvisioning_LegacyDevices(t *testing.T) {
	up, pu := startPolicyUpstream(t, nil)
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	resp, _ := g.do(easReq{cmd: "Sync", user: "jdoe", device: "WM2003", version: "2.5", body: syncRequest})
	if resp.StatusCode != 403 || len(pu.recorded()) != 0 {
		t.Fatalf("2.5 device: %d, upstream saw %d", resp.StatusCode, len(pu.recorded()))
	}
}

// TestProvisioning_NoLoopForVersionSpecificElements: a policy with 12.1 elements never makes
// a 12.0 client provision in a loop: it is sent only what 12.0 defines, and what it
// acknowledged stays current on every later command. A 14.1 client gets the full document.
func TestProvisioning_NoLoopForVersionSpecificElements(t *testing.T) {
	up, _ := startPolicyUpstream(t, nil)
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	old := &device{t: t, g: g, id: "LEGACY120", version: "12.0"}
	doc := old.provision()
	if doc.AllowCamera != nil || doc.RequireDeviceEncryption != nil || intOf(doc.MinDevicePasswordLength) != "8" {
		t.Fatalf("12.0 client was sent: %+v", doc)
	}
	for i := 0; i < 5; i++ {
		resp, body := old.do("Sync", syncRequest)
		if resp.StatusCode != 200 || string(body) != string(syncResponse) {
			t.Fatalf("12.0 Sync %d after provisioning: %d", i, resp.StatusCode)
		}
	}
	modern := &device{t: t, g: g, id: "MODERN141", version: "14.1"}
	doc = modern.provision()
	if boolOf(doc.AllowCamera) != "false" || boolOf(doc.RequireDeviceEncryption) != "true" {
		t.Fatalf("14.1 client was sent: %+v", doc)
	}
	resp, _ := modern.do("Sync", syncRequest)
	if resp.StatusCode != 200 {
		t.Fatalf("14.1 Sync: %d", resp.StatusCode)
	}
}

// TestProvisioning_AckCountsAsCompliance: a quarantined (unknown) device may provision; its
// acknowledgement enrols it under a compliance rule with eas_policy_counts, and its next
// command is allowed.
func TestProvisioning_AckCountsAsCompliance(t *testing.T) {
	up, pu := startPolicyUpstream(t, nil)
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy), func(_ *Config, p *decision.Policy) {
		p.UnknownDevice = decision.Quarantine
		p.Compliance = []decision.ComplianceRule{{Platform: "*", PasscodeRequired: true, EncryptionRequired: true, EASPolicyCounts: true}}
	})
	d := &device{t: t, g: g, id: "NEWPHONE", version: "14.1"}
	resp, body := d.do("FolderSync", mustEncode(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))))
	if resp.StatusCode != 200 || statusOf(t, body) != "1" || len(pu.recorded()) != 0 {
		t.Fatalf("quarantined FolderSync: %d %q", resp.StatusCode, body)
	}
	d.provision()
	resp, body = d.do("Sync", syncRequest)
	if resp.StatusCode != 200 || string(body) != string(syncResponse) {
		t.Fatalf("Sync after acknowledging the policy: %d %q", resp.StatusCode, body)
	}
}

// TestProvisioning_AckFailureIsNotAKey: a device that reports it did not apply the policy
// gets 139 DeviceNotFullyProvisionable (403 before 14.0), not a key; acknowledging a key it
// was never issued gets Policy Status 5.
func TestProvisioning_AckFailureIsNotAKey(t *testing.T) {
	up, _ := startPolicyUpstream(t, nil)
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	d := &device{t: t, g: g, id: "PARTIAL", version: "14.1"}
	_, temp := d.initial()
	resp, body := d.ack(temp, eas.PolicyAckNotApplied)
	if resp.StatusCode != 200 || statusOf(t, body) != "139" {
		t.Fatalf("not applied: %d %q", resp.StatusCode, body)
	}
	resp, body = d.ack("123", eas.PolicyAckSuccess)
	if p := provisionResponse(t, body); resp.StatusCode != 200 || p.Policies[0].Status != eas.PolicyWrongPolicyKey {
		t.Fatalf("wrong key: %d %+v", resp.StatusCode, p)
	}
	old := &device{t: t, g: g, id: "PARTIAL12", version: "12.1"}
	_, temp = old.initial()
	if resp, _ := old.ack(temp, eas.PolicyAckPartial); resp.StatusCode != 403 {
		t.Fatalf("12.1 partial: %d", resp.StatusCode)
	}
}

func wipeAck(t *testing.T, accountOnly bool, st eas.Status) []byte {
	p := &eas.Provision{}
	if accountOnly {
		p.AccountOnlyRemoteWipe = &eas.RemoteWipe{Status: st}
	} else {
		p.RemoteWipe = &eas.RemoteWipe{Status: st}
	}
	return encodeProvision(t, p)
}

// TestRemoteWipe_MS_ASPROV_3_2_5_1_2_2: full and account-only wipes, acknowledged with
// success and failure, for 12.1, 14.1 and 16.1, against an upstream with a policy and one
// without; the upstream never hears the wipe's Provision, and the device stays blocked.
func TestRemoteWipe_MS_ASPROV_3_2_5_1_2_2(t *testing.T) {
	cases := []struct {
		ver         string
		accountOnly bool
		ackStatus   eas.Status
	}{
		{"12.1", false, eas.RemoteWipeAckSuccess},
		{"14.1", false, eas.RemoteWipeAckSuccess},
		{"14.1", false, eas.RemoteWipeAckFailure},
		{"16.1", false, eas.RemoteWipeAckSuccess},
		{"16.1", true, eas.RemoteWipeAckSuccess},
		{"16.1", true, eas.RemoteWipeAckFailure},
	}
	for _, withPolicy := range []bool{false, true} {
		var upPolicy *eas.PolicyDocument
		if withPolicy {
			upPolicy = policyDoc(t, "DevicePasswordEnabled", "true")
		}
		up, pu := startPolicyUpstream(t, upPolicy)
		g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
		ctx := context.Background()
		for i, c := range cases {
			name := c.ver + map[bool]string{false: "/full", true: "/account-only"}[c.accountOnly] + "/ack" + strconv.Itoa(int(c.ackStatus))
			t.Run(map[bool]string{false: "upstream-without-policy/", true: "upstream-with-policy/"}[withPolicy]+name, func(t *testing.T) {
				d := &device{t: t, g: g, id: "WIPE" + strconv.Itoa(i), version: c.ver}
				d.provision()
				kind := decision.WipeFull
				if c.accountOnly {
					kind = decision.WipeAccountOnly
					if err := g.srv.AccountOnlyWipeCheck(ctx, "jdoe@example.com", d.id); err != nil {
						t.Fatalf("16.1 device refused an account-only wipe: %v", err)
					}
				}
				if _, err := g.engine.RequestWipe(ctx, "jdoe@example.com", d.id, kind, "test"); err != nil {
					t.Fatal(err)
				}
				before := len(pu.recorded())
				resp, body := d.do("Sync", syncRequest)
				d.expectProvisionStatus(resp, body, eas.StatusRemoteWipeRequested)
				// The initial request after a wipe status is an empty Provision (3.1.5.1.1).
				d.key = "0"
				resp, body = d.do("Provision", encodeProvision(t, &eas.Provision{}))
				p := provisionResponse(t, body)
				if resp.StatusCode != 200 || p.Status != eas.ProvisionSuccess || (p.RemoteWipe != nil) == c.accountOnly || (p.AccountOnlyRemoteWipe != nil) != c.accountOnly {
					t.Fatalf("wipe directive: %d %+v", resp.StatusCode, p)
				}
				dev, _ := g.engine.Device(ctx, "jdoe@example.com", d.id)
				if dev.Wipe.Status != decision.WipeDelivered || dev.Wipe.DeliveredAt.IsZero() {
					t.Fatalf("after delivery: %+v", dev.Wipe)
				}
				resp, body = d.do("Provision", wipeAck(t, c.accountOnly, c.ackStatus))
				p = provisionResponse(t, body)
				if c.ackStatus == eas.RemoteWipeAckSuccess {
					if resp.StatusCode != 200 || p.Status != eas.ProvisionSuccess || p.RemoteWipe != nil || p.AccountOnlyRemoteWipe != nil {
						t.Fatalf("success ack answer: %+v", p)
					}
				} else if p.Status != eas.ProvisionProtocolError || (p.RemoteWipe == nil && p.AccountOnlyRemoteWipe == nil) {
					t.Fatalf("failure ack answer: %+v", p)
				}
				dev, _ = g.engine.Device(ctx, "jdoe@example.com", d.id)
				want := decision.WipeSucceeded
				if c.ackStatus != eas.RemoteWipeAckSuccess {
					want = decision.WipeFailed
				}
				if dev.Wipe.Status != want || dev.Wipe.AckedAt.IsZero() {
					t.Fatalf("after ack: %+v", dev.Wipe)
				}
				if len(pu.recorded()) != before {
					t.Fatal("the upstream heard of the wipe")
				}
				// Blocked afterwards, whatever it sends (even a fresh provisioning).
				resp, body = d.do("Sync", syncRequest)
				if v, _ := eas.ParseVersion(c.ver); v < eas.V140 {
					if resp.StatusCode != 403 {
						t.Fatalf("after the wipe: %d", resp.StatusCode)
					}
				} else if statusOf(t, body) != "129" {
					t.Fatalf("after the wipe: %q", body)
				}
				resp, _ = d.do("Provision", encodeProvision(t, &eas.Provision{Policies: []*eas.Policy{{PolicyType: eas.PolicyTypeWBXML}}}))
				if b := resp.StatusCode; b == 200 && len(pu.recorded()) != before {
					t.Fatal("a wiped device's Provision reached the upstream")
				}
				audit, err := g.engine.Audit(ctx, decision.AuditFilter{User: "jdoe@example.com", DeviceID: d.id})
				if err != nil {
					t.Fatal(err)
				}
				events := map[decision.Event]bool{}
				for _, e := range audit {
					events[e.Event] = true
				}
				for _, ev := range []decision.Event{decision.EventWipeRequested, decision.EventWipeDelivered, decision.EventWipeAcked} {
					if !events[ev] {
						t.Errorf("no %s audit entry", ev)
					}
				}
			})
		}
	}
}

// TestRemoteWipe_CancelBeforeDelivery: a cancelled wipe is never sent.
func TestRemoteWipe_CancelBeforeDelivery(t *testing.T) {
	up, _ := startPolicyUpstream(t, nil)
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	ctx := context.Background()
	d := &device{t: t, g: g, id: "CANCEL", version: "14.1"}
	d.provision()
	if _, err := g.engine.RequestWipe(ctx, "jdoe@example.com", d.id, decision.WipeFull, "test"); err != nil {
		t.Fatal(err)
	}
	if code, body := g.adminDo("POST", "/admin/v1/devices/jdoe@example.com/CANCEL/cancel-wipe", ""); code != 200 {
		t.Fatalf("cancel-wipe: %d %s", code, body)
	}
	resp, body := d.do("Sync", syncRequest)
	if resp.StatusCode != 200 || string(body) != string(syncResponse) {
		t.Fatalf("after cancel: %d %q", resp.StatusCode, body)
	}
	dev, _ := g.engine.Device(ctx, "jdoe@example.com", d.id)
	if dev.Wipe.Status != decision.WipeNone {
		t.Fatalf("wipe state: %+v", dev.Wipe)
	}
	// Once delivered, it can no longer be cancelled.
	if _, err := g.engine.RequestWipe(ctx, "jdoe@example.com", d.id, decision.WipeFull, "test"); err != nil {
		t.Fatal(err)
	}
	d.key = "0"
	d.do("Provision", encodeProvision(t, &eas.Provision{}))
	if code, _ := g.adminDo("POST", "/admin/v1/devices/jdoe@example.com/CANCEL/cancel-wipe", ""); code != 409 {
		t.Fatalf("cancel after delivery: %d", code)
	}
}

// TestAccountOnlyWipe_12_1_FallsBackToBlock is the security regression test for an
// account-only wipe of a device that cannot receive one (before EAS 16.1): it is never sent a
// full RemoteWipe; it is blocked for every command and recorded as blocked.
func TestAccountOnlyWipe_12_1_FallsBackToBlock(t *testing.T) {
	for _, ver := range []string{"12.1", "14.1"} {
		t.Run(ver, func(t *testing.T) {
			up, pu := startPolicyUpstream(t, nil)
			g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
			ctx := context.Background()
			d := &device{t: t, g: g, id: "OLDACCT", version: ver}
			d.provision()
			if _, err := g.engine.RequestWipe(ctx, "jdoe@example.com", d.id, decision.WipeAccountOnly, "test"); err != nil {
				t.Fatal(err)
			}
			before := len(pu.recorded())
			for _, r := range []struct {
				cmd  string
				body []byte
			}{{"Sync", syncRequest}, {"Provision", encodeProvision(t, &eas.Provision{})},
				{"Provision", encodeProvision(t, &eas.Provision{Policies: []*eas.Policy{{PolicyType: eas.PolicyTypeWBXML}}})}} {
				resp, body := d.do(r.cmd, r.body)
				if doc, err := wbxml.Parse(body, wbxml.DefaultLimits); err == nil && len(body) > 0 &&
					(doc.Root.Find(wbxml.ProvisionRemoteWipe) != nil || doc.Root.Find(wbxml.ProvisionAccountOnlyRemoteWipe) != nil) {
					t.Fatalf("%s: a wipe directive was sent to a device that cannot do an account-only wipe", r.cmd)
				}
				if ver == "12.1" && resp.StatusCode != 403 {
					t.Fatalf("%s: HTTP %d, want 403", r.cmd, resp.StatusCode)
				}
				if ver == "14.1" && (resp.StatusCode != 200 || statusOf(t, body) != "129") {
					t.Fatalf("%s: %d %q, want status 129", r.cmd, resp.StatusCode, body)
				}
			}
			if len(pu.recorded()) != before {
				t.Fatal("the upstream was reached")
			}
			dev, _ := g.engine.Device(ctx, "jdoe@example.com", d.id)
			if dev.Override != decision.OverrideBlock || dev.Wipe.Status != decision.WipePending {
				t.Fatalf("registry: override %v wipe %+v", dev.Override, dev.Wipe)
			}
			// Asked beforehand, the gateway tells the admin the device cannot do it.
			if err := g.srv.AccountOnlyWipeCheck(ctx, "jdoe@example.com", d.id); !errors.Is(err, decision.ErrInvalidState) {
				t.Fatalf("admin-time check: %v", err)
			}
		})
	}
}

// TestProvisioning_KeyMappingIsStateless: two gateway nodes sharing key_secret map a device's
// keys identically, so a device moving between nodes is never sent to provision again.
func TestProvisioning_KeyMappingIsStateless(t *testing.T) {
	cfg := &Config{Admin: AdminConfig{Token: testAdminToken}, Provisioning: ProvisioningConfig{KeySecret: strings.Repeat("k", 32)}}
	a, err := newProvisioner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newProvisioner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.pad("jdoe@example.com", "D1") != b.pad("jdoe@example.com", "D1") {
		t.Fatal("two nodes disagree")
	}
	if a.pad("jdoe@example.com", "D1") == a.pad("jdoe@example.com", "D2") || a.pad("jdoe@example.com", "D1") == a.pad("bob@example.com", "D1") {
		t.Fatal("pads do not depend on the device")
	}
	cfg.Provisioning.KeySecret = strings.Repeat("x", 32)
	c, _ := newProvisioner(cfg)
	if c.pad("jdoe@example.com", "D1") == a.pad("jdoe@example.com", "D1") {
		t.Fatal("pad does not depend on the secret")
	}
}

func TestProvisioningConfigValidation(t *testing.T) {
	base := "listen:\n  external_url: https://gw.example.com\nadmin:\n  token: " + testAdminToken + "\nportal:\n  key: test-portal-key-0123456789abcdefghijklmnop\nbackend:\n  eas:\n    url: https://up.example.com/Microsoft-Server-ActiveSync\n"
	good := base + `provisioning:
  default: corp
  policies:
    - name: execs
      version: "2.1"
      groups: [executives]
      settings:
        DevicePasswordEnabled: true
        MinDevicePasswordLength: 12
        MaxInactivityTimeDeviceLock: unlimited
        ApprovedApplicationList: [abc, def]
    - name: corp
      settings:
        AllowCamera: false
`
	cfg, err := ParseConfig([]byte(good), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	set, err := compileEASPolicies(&cfg.Provisioning)
	if err != nil {
		t.Fatal(err)
	}
	if p := set.selectFor([]string{"Executives"}); p == nil || p.name != "execs" || !strings.HasPrefix(p.variant[eas.V141].tag, "2.1+") {
		t.Fatalf("group selector: %+v", p)
	}
	if p := set.selectFor(nil); p == nil || p.name != "corp" {
		t.Fatalf("default: %+v", p)
	}
	bad := base + `provisioning:
  default: nobody
  legacy_devices: maybe
  policies:
    - name: a
      version: v2
      settings:
        MinDevicePasswordLength: 40
        AllowTeleport: true
        AllowCamera: "perhaps"
    - name: a
`
	_, err = ParseConfig([]byte(bad), func(string) (string, bool) { return "", false })
	if err == nil {
		t.Fatal("invalid provisioning config accepted")
	}
	for _, want := range []string{"nobody", "legacy_devices", "v2", "MinDevicePasswordLength", "AllowTeleport", "AllowCamera", "twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

// TestExamplePolicyFileIsValid keeps examples/policy.yaml loadable.
func TestExamplePolicyFileIsValid(t *testing.T) {
	b, err := os.ReadFile("../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := "listen:\n  external_url: https://gw.example.com\nadmin:\n  token: " + testAdminToken +
		"\nportal:\n  key: test-portal-key-0123456789abcdefghijklmnop\nbackend:\n  eas:\n    url: https://up.example.com/Microsoft-Server-ActiveSync\n"
	cfg, err := ParseConfig(append([]byte(base), b...), func(name string) (string, bool) {
		return strings.Repeat("s", 40), name == "EASGATE_POLICY_KEY_SECRET"
	})
	if err != nil {
		t.Fatal(err)
	}
	set, err := compileEASPolicies(&cfg.Provisioning)
	if err != nil {
		t.Fatal(err)
	}
	if p := set.selectFor([]string{"board"}); p == nil || p.name != "executives" {
		t.Fatalf("board member: %+v", p)
	}
	if d := set.selectFor(nil).variant[eas.V161].doc; intOf(d.MinDevicePasswordLength) != "6" {
		t.Fatalf("standard policy: %+v", d)
	}
}

// TestPolicyKeyCheckDoesNotAllocate: the per-request check of an acknowledged key (cache hit)
// and its rewrite to the upstream's key allocate nothing.
func TestPolicyKeyCheckDoesNotAllocate(t *testing.T) {
	up, _ := startPolicyUpstream(t, policyDoc(t, "DevicePasswordEnabled", "true"))
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	d := &device{t: t, g: g, id: "ALLOC1", version: "14.1"}
	d.provision()
	key, _ := strconv.ParseUint(d.key, 10, 32)

	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetRequestURI("/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=ALLOC1&DeviceType=iPhone")
	ctx.Request.Header.Set("MS-ASProtocolVersion", "14.1")
	ctx.Request.Header.Set("X-MS-PolicyKey", d.key)
	st := &reqState{user: "jdoe@example.com", dec: decision.Decision{Action: decision.Allow}}
	if err := eas.ParseQuery([]byte("Cmd=Sync&User=jdoe&DeviceId=ALLOC1&DeviceType=iPhone"), &st.req); err != nil {
		t.Fatal(err)
	}
	if err := eas.ParseHeaders(ctx.Request.Header.Peek, &st.req); err != nil {
		t.Fatal(err)
	}
	if st.req.PolicyKey != uint32(key) {
		t.Fatal("key not parsed")
	}
	check := func() {
		done, err := g.srv.provisioning(&ctx, st)
		if done || err != nil {
			t.Fatalf("provisioning step answered: %v %v", done, err)
		}
	}
	check()
	want := strconv.FormatUint(uint64(uint32(key)^g.srv.prov.pad("jdoe@example.com", "ALLOC1")), 10)
	if got := string(ctx.Request.Header.Peek("X-MS-PolicyKey")); got != want {
		t.Fatalf("upstream key %s, want %s", got, want)
	}
	if n := testing.AllocsPerRun(200, check); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// TestProvisioning_PingNeedsNoKey: Ping carries no policy key (MS-ASPROV 3.1.5.1: the key is
// sent with every command but Autodiscover, Ping and OPTIONS), so a device's Ping is never
// refused for want of one, not even before it provisioned.
func TestProvisioning_PingNeedsNoKey(t *testing.T) {
	up, _ := startPolicyUpstream(t, nil)
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy))
	// Through the listener first (the harness must be serving before it is stopped).
	d := &device{t: t, g: g, id: "NEVERPROV", version: "14.1"}
	resp, body := d.do("FolderSync", mustEncode(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))))
	d.expectProvisionStatus(resp, body, eas.StatusDeviceNotProvisioned)
	for _, ver := range []string{"12.1", "14.1", "16.1"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.Set("MS-ASProtocolVersion", ver)
		st := &reqState{user: "jdoe@example.com", dec: decision.Decision{Action: decision.Allow}}
		if err := eas.ParseQuery([]byte("Cmd=Ping&User=jdoe&DeviceId=NEVERPROV&DeviceType=iPhone"), &st.req); err != nil {
			t.Fatal(err)
		}
		if err := eas.ParseHeaders(ctx.Request.Header.Peek, &st.req); err != nil {
			t.Fatal(err)
		}
		if done, err := g.srv.provisioning(&ctx, st); done || err != nil {
			t.Fatalf("%s: Ping was answered by the provisioning step (%d)", ver, ctx.Response.StatusCode())
		}
		st.req.Cmd = eas.CmdFolderSync
		if done, _ := g.srv.provisioning(&ctx, st); !done {
			t.Fatalf("%s: FolderSync without a key was let through", ver)
		}
	}
}

// TestProvisioning_QuarantinedSettingsCarryUpstreamKey: a quarantined device's Settings
// passes through to the upstream (to report DeviceInformation); it carries the upstream's key,
// so the upstream does not send the device to provision again and again.
func TestProvisioning_QuarantinedSettingsCarryUpstreamKey(t *testing.T) {
	up, pu := startPolicyUpstream(t, policyDoc(t, "DevicePasswordEnabled", "true"))
	g := startGatewayWith(t, up, withEASPolicy(gatewayPolicy), func(_ *Config, p *decision.Policy) {
		p.UnknownDevice = decision.Quarantine
	})
	d := &device{t: t, g: g, id: "QSET", version: "14.1"}
	d.provision()
	settings := mustEncode(wbxml.NewElement(wbxml.SettingsSettings, wbxml.NewElement(wbxml.SettingsDeviceInformation,
		wbxml.NewElement(wbxml.SettingsSet, wbxml.NewText(wbxml.SettingsModel, "iPhone15,2")))))
	resp, _ := d.do("Settings", settings)
	if resp.StatusCode != 200 {
		t.Fatalf("quarantined Settings: %d", resp.StatusCode)
	}
	seen := pu.recorded()
	if last := seen[len(seen)-1]; last.cmd != eas.CmdSettings || last.policyKey != strconv.FormatUint(uint64(pu.finalKey), 10) {
		t.Fatalf("upstream got %v with key %q", last.cmd, last.policyKey)
	}
}

// TestProvisioning_IMAPModeGatewayIsAuthority: in imap mode there is no upstream policy; the
// gateway provisions the device itself and the IMAP bridge serves it once it holds the key.
func TestProvisioning_IMAPModeGatewayIsAuthority(t *testing.T) {
	g := startDemoGateway(t, func(c *Config) {
		withEASPolicy(gatewayPolicy)(c, nil)
	})
	d := &device{t: t, g: g, id: "IMAPPROV1", version: "14.1", user: "demo", login: "demo@demo.easgate.test", password: "demo"}
	fs := mustEncode(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0")))
	resp, body := d.do("FolderSync", fs)
	d.expectProvisionStatus(resp, body, eas.StatusDeviceNotProvisioned)
	doc := d.provision()
	if v := intOf(doc.MinDevicePasswordLength); v != "8" {
		t.Fatalf("policy from the gateway: MinDevicePasswordLength %q", v)
	}
	resp, body = d.do("FolderSync", fs)
	if resp.StatusCode != 200 || statusOf(t, body) != "1" {
		t.Fatalf("FolderSync with the final key: %d %q", resp.StatusCode, body)
	}
}
