package decision_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/decision/sqlite"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source shared by the engine and the test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ns.Store(t0.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

type fixture struct {
	t     testing.TB
	e     *decision.Engine
	store *sqlite.Store
	clk   *clock
	path  string
}

func newFixture(t testing.TB, p decision.Policy, mod ...func(*decision.Options)) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	opts := decision.Options{Store: s, Policy: &p, Now: clk.Now, FlushInterval: time.Hour,
		TouchInterval: time.Hour, PolicyRefresh: -1, AuditRetention: -1}
	for _, m := range mod {
		m(&opts)
	}
	e, err := decision.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); s.Close() })
	return &fixture{t: t, e: e, store: s, clk: clk, path: path}
}

func (f *fixture) input(user, id string) *decision.Input {
	return &decision.Input{User: user, DeviceID: id, DeviceType: "iPhone", UserAgent: "Apple-iPhone15C2/2104.1",
		Command: "Sync", ClientAddr: "192.0.2.7", Now: f.clk.Now()}
}

func (f *fixture) decide(in *decision.Input) decision.Decision {
	f.t.Helper()
	in.Now = f.clk.Now()
	d, err := f.e.Decide(context.Background(), in)
	if err != nil {
		f.t.Fatalf("Decide: %v", err)
	}
	f.e.WaitCache()
	return d
}

func (f *fixture) expect(in *decision.Input, a decision.Action, r decision.Reason) decision.Decision {
	f.t.Helper()
	d := f.decide(in)
	if d.Action != a || d.Reason != r {
		f.t.Fatalf("got %v/%s (%s), want %v/%s", d.Action, d.Reason, d.Detail, a, r)
	}
	return d
}

func ok[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func yes() *bool { b := true; return &b }

var ctx = context.Background()

const ann = "ann@example.com"

// TestReasonCodes has one subtest per reason code, each producing it end to end.
func TestReasonCodes(t *testing.T) {
	dev := ok[decision.Device]
	compliance := decision.Compliance{Platform: "ios", OSVersion: "17.4", PasscodeSet: yes()}
	strict := decision.Policy{UnknownDevice: decision.Quarantine,
		Compliance: []decision.ComplianceRule{{Platform: "ios", MinOSVersion: "17.0", PasscodeRequired: true}}}
	cases := []struct {
		reason decision.Reason
		action decision.Action
		policy decision.Policy
		setup  func(f *fixture, in *decision.Input)
	}{
		{decision.ReasonAllowed, decision.Allow, strict, func(f *fixture, in *decision.Input) {
			dev(t)(f.e.ReportCompliance(ctx, ann, "D1", compliance, "mdm"))
		}},
		{decision.ReasonAdminAllow, decision.Allow, strict, func(f *fixture, in *decision.Input) {
			f.decide(in)
			dev(t)(f.e.SetOverride(ctx, ann, "D1", decision.OverrideAllow, "admin"))
		}},
		{decision.ReasonAdminBlock, decision.Block, strict, func(f *fixture, in *decision.Input) {
			dev(t)(f.e.ReportCompliance(ctx, ann, "D1", compliance, "mdm"))
			dev(t)(f.e.SetOverride(ctx, ann, "D1", decision.OverrideBlock, "admin"))
		}},
		{decision.ReasonExempt, decision.Allow, decision.Policy{UnknownDevice: decision.Block,
			Groups: decision.GroupPolicy{Exempt: []string{"vip"}}}, func(f *fixture, in *decision.Input) { in.Groups = []string{"VIP"} }},
		{decision.ReasonNotTargeted, decision.Allow, decision.Policy{UnknownDevice: decision.Block,
			Groups: decision.GroupPolicy{Target: []string{"mobile"}}}, func(f *fixture, in *decision.Input) {}},
		{decision.ReasonUnknownDevice, decision.Quarantine, strict, func(f *fixture, in *decision.Input) {}},
		{decision.ReasonUnmanageable, decision.Block, decision.Policy{UnknownDevice: decision.Allow,
			Unmanageable: decision.UnmanageablePolicy{Match: []decision.Match{{UserAgent: "WindowsMail*"}}, Action: decision.Block}},
			func(f *fixture, in *decision.Input) { in.UserAgent = "WindowsMail/16005" }},
		{decision.ReasonNotCompliant, decision.Quarantine, strict, func(f *fixture, in *decision.Input) {
			c := compliance
			c.OSVersion = "16.1"
			dev(t)(f.e.ReportCompliance(ctx, ann, "D1", c, "mdm"))
		}},
		{decision.ReasonMaxDevices, decision.Block, decision.Policy{UnknownDevice: decision.Allow, MaxDevicesPerUser: 1},
			func(f *fixture, in *decision.Input) { f.decide(f.input(ann, "OTHER")) }},
		{decision.ReasonSuspicious, decision.Quarantine, decision.Policy{UnknownDevice: decision.Allow,
			Signals: decision.SignalPolicy{DeviceTypeChange: decision.SignalQuarantine}}, func(f *fixture, in *decision.Input) {
			f.decide(in)
			in.DeviceType = "SAMSUNGSMG991B"
		}},
		{decision.ReasonWipePending, decision.Wipe, strict, func(f *fixture, in *decision.Input) {
			f.decide(in)
			dev(t)(f.e.RequestWipe(ctx, ann, "D1", decision.WipeFull, "admin"))
		}},
		{decision.ReasonWiped, decision.Block, strict, func(f *fixture, in *decision.Input) {
			f.decide(in)
			dev(t)(f.e.RequestWipe(ctx, ann, "D1", decision.WipeFull, "admin"))
			dev(t)(f.e.MarkWipeDelivered(ctx, ann, "D1"))
			dev(t)(f.e.AckWipe(ctx, ann, "D1", true))
		}},
		{decision.ReasonWipeFailed, decision.Block, strict, func(f *fixture, in *decision.Input) {
			f.decide(in)
			dev(t)(f.e.RequestWipe(ctx, ann, "D1", decision.WipeFull, "admin"))
			dev(t)(f.e.MarkWipeDelivered(ctx, ann, "D1"))
			dev(t)(f.e.AckWipe(ctx, ann, "D1", false))
		}},
		{decision.ReasonInvalidRequest, decision.Block, strict, func(f *fixture, in *decision.Input) { in.DeviceID = "" }},
		{"rule_allow:outlook", decision.Allow, decision.Policy{Rules: []decision.Rule{{ID: "outlook",
			Match: decision.Match{UserAgent: "Outlook-*"}, Action: decision.Allow}}}, func(f *fixture, in *decision.Input) { in.UserAgent = "Outlook-iOS/2.0" }},
		{"rule_block:iphone", decision.Block, decision.Policy{UnknownDevice: decision.Allow, Rules: []decision.Rule{{ID: "iphone",
			Match: decision.Match{DeviceType: "iPhone"}, Action: decision.Block}}}, func(f *fixture, in *decision.Input) {}},
		{"rule_quarantine:old-ios", decision.Quarantine, decision.Policy{UnknownDevice: decision.Allow, Rules: []decision.Rule{{ID: "old-ios",
			Match: decision.Match{OS: "iOS < 17"}, Action: decision.Quarantine}}}, func(f *fixture, in *decision.Input) {
			f.decide(in)
			dev(t)(f.e.UpdateDeviceInfo(ctx, ann, "D1", decision.DeviceInfo{Model: "iPhone12,1", OS: "iOS 16.7 20H19"}))
		}},
	}
	for _, tc := range cases {
		t.Run(string(tc.reason), func(t *testing.T) {
			f := newFixture(t, tc.policy)
			in := f.input(ann, "D1")
			tc.setup(f, in)
			f.expect(in, tc.action, tc.reason)
		})
	}
	t.Run("account_only wipe_pending", func(t *testing.T) {
		f := newFixture(t, strict)
		in := f.input(ann, "D1")
		f.decide(in)
		dev(t)(f.e.RequestWipe(ctx, ann, "D1", decision.WipeAccountOnly, "admin"))
		f.expect(in, decision.AccountOnlyWipe, decision.ReasonWipePending)
	})
	t.Run(string(decision.ReasonStoreUnavailable), func(t *testing.T) {
		f := newFixture(t, strict)
		f.store.Close()
		d, err := f.e.Decide(ctx, f.input(ann, "D1"))
		if !errors.Is(err, decision.ErrClosed) || d.Action != decision.Block || d.Reason != decision.ReasonStoreUnavailable {
			t.Fatalf("got %+v, %v", d, err)
		}
	})
}

// TestCacheHitZeroAlloc: a cache hit performs no allocation (and, by construction, no I/O).
func TestCacheHitZeroAlloc(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow,
		Groups: decision.GroupPolicy{Exempt: []string{"vip"}},
		Rules:  []decision.Rule{{ID: "r", Match: decision.Match{DeviceType: "Android*"}, Action: decision.Block}}})
	in := f.input(ann, "D1")
	in.Groups = []string{"staff", "mobile"}
	f.decide(in)
	if d := f.decide(in); !d.Cached {
		t.Fatalf("second decision not from cache: %+v", d)
	}
	misses := f.e.Stats().CacheMisses
	var d decision.Decision
	allocs := testing.AllocsPerRun(1000, func() {
		d, _ = f.e.Decide(ctx, in)
	})
	if allocs != 0 {
		t.Fatalf("cache hit allocates %v times per call", allocs)
	}
	if d.Action != decision.Allow || !d.Cached {
		t.Fatalf("decision %+v", d)
	}
	if got := f.e.Stats().CacheMisses; got != misses {
		t.Fatalf("cache misses grew from %d to %d during hits", misses, got)
	}
	// Mixed-case users normalise with one allocation at most; pass normalised names to avoid it.
	in.User = "Ann@Example.com"
	if d := f.decide(in); !d.Cached {
		t.Fatal("mixed-case user missed the cache")
	}
}

// TestInvalidationOnEveryWrite: every registry write drops the device's cache entry at once,
// so the next decision is read from the registry.
func TestInvalidationOnEveryWrite(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Quarantine})
	in := f.input(ann, "D1")
	dev := ok[decision.Device](t)
	writes := []struct {
		name string
		do   func()
	}{
		{"Register", func() { dev(f.e.Register(ctx, decision.Registration{User: ann, DeviceID: "D1"}, "admin")) }},
		{"ReportCompliance", func() { dev(f.e.ReportCompliance(ctx, ann, "D1", decision.Compliance{Platform: "ios"}, "mdm")) }},
		{"UpdateDeviceInfo", func() { dev(f.e.UpdateDeviceInfo(ctx, ann, "D1", decision.DeviceInfo{Model: "x"})) }},
		{"SetOverride", func() { dev(f.e.SetOverride(ctx, ann, "D1", decision.OverrideBlock, "admin")) }},
		{"ClearOverride", func() { dev(f.e.SetOverride(ctx, ann, "D1", decision.OverrideNone, "admin")) }},
		{"ClearSuspicion", func() { dev(f.e.ClearSuspicion(ctx, ann, "D1", "admin")) }},
		{"IssuePolicyKey", func() { dev(f.e.IssuePolicyKey(ctx, ann, "D1", 77)) }},
		{"AckPolicyKey", func() { dev(f.e.AckPolicyKey(ctx, ann, "D1", 77, "1.0")) }},
		{"RequestWipe", func() { dev(f.e.RequestWipe(ctx, ann, "D1", decision.WipeFull, "admin")) }},
		{"CancelWipe", func() { dev(f.e.CancelWipe(ctx, ann, "D1", "admin")) }},
		{"RequestWipeAgain", func() { dev(f.e.RequestWipe(ctx, ann, "D1", decision.WipeFull, "admin")) }},
		{"MarkWipeDelivered", func() { dev(f.e.MarkWipeDelivered(ctx, ann, "D1")) }},
		{"AckWipe", func() { dev(f.e.AckWipe(ctx, ann, "D1", true)) }},
		{"Unenroll", func() { dev(f.e.Unenroll(ctx, ann, "D1", "admin")) }},
		{"Forget", func() {
			if err := f.e.Forget(ctx, ann, "D1", "admin"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, w := range writes {
		f.decide(in)
		if !decision.Cached(f.e, ann, "D1") {
			t.Fatalf("before %s: device not cached", w.name)
		}
		w.do()
		if decision.Cached(f.e, ann, "D1") {
			t.Fatalf("%s did not invalidate the cache entry", w.name)
		}
		if d, _ := f.e.Decide(ctx, in); d.Cached {
			t.Fatalf("after %s: decision served from cache", w.name)
		}
	}
	// A policy change takes effect on the next request without any cache entry being deleted.
	f.decide(in)
	f.expect(in, decision.Quarantine, decision.ReasonUnknownDevice)
	if err := f.e.SetPolicy(ctx, decision.Policy{UnknownDevice: decision.Block}, "admin"); err != nil {
		t.Fatal(err)
	}
	f.expect(in, decision.Block, decision.ReasonUnknownDevice)
}

// TestDroppedSetGoesToRegistry: when ristretto drops a Set, the next request reads the registry
// again (it is never treated as "allow").
func TestDroppedSetGoesToRegistry(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow})
	decision.DropCacheSets(f.e)
	in := f.input(ann, "D1")
	f.expect(in, decision.Allow, decision.ReasonUnknownDevice)
	if decision.Cached(f.e, ann, "D1") {
		t.Fatal("dropped Set is cached")
	}
	// Change the registry behind the engine's back: only a registry read can see it.
	ok[decision.Device](t)(f.store.UpdateDevice(ctx, ann, "D1", false, func(d *decision.Device) error {
		d.Override = decision.OverrideBlock
		return nil
	}))
	d := f.expect(in, decision.Block, decision.ReasonAdminBlock)
	if d.Cached {
		t.Fatal("decision claims to be cached")
	}
	if s := f.e.Stats(); s.CacheMisses != 2 || s.CacheHits != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCacheMissReadsRegistry: an evicted device is read from the registry again.
func TestCacheMissReadsRegistry(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow})
	in := f.input(ann, "D1")
	f.expect(in, decision.Allow, decision.ReasonUnknownDevice)
	ok[decision.Device](t)(f.store.UpdateDevice(ctx, ann, "D1", false, func(d *decision.Device) error {
		d.Override = decision.OverrideBlock
		return nil
	}))
	if d := f.decide(in); d.Reason != decision.ReasonUnknownDevice || !d.Cached {
		t.Fatalf("expected the cached decision before eviction, got %+v", d)
	}
	decision.Evict(f.e, ann, "D1")
	f.expect(in, decision.Block, decision.ReasonAdminBlock)
	// Another node's write becomes visible after CacheTTL (30 s, up to 20 % jitter) without eviction.
	ok[decision.Device](t)(f.store.UpdateDevice(ctx, ann, "D1", false, func(d *decision.Device) error {
		d.Override = decision.OverrideAllow
		return nil
	}))
	f.clk.Add(37 * time.Second)
	f.expect(in, decision.Allow, decision.ReasonAdminAllow)
}

// TestFailMode: with the registry unreachable, unknown devices are denied; a known device keeps
// its last decision up to StaleMaxAge, then is denied.
func TestFailMode(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow}, func(o *decision.Options) {
		o.CacheTTL = 30 * time.Second
		o.StaleMaxAge = 10 * time.Minute
	})
	known := f.input(ann, "KNOWN")
	f.expect(known, decision.Allow, decision.ReasonUnknownDevice)
	f.store.Close()

	f.clk.Add(time.Minute) // past CacheTTL: the engine must go to the registry, which fails
	known.Now = f.clk.Now()
	d, err := f.e.Decide(ctx, known)
	if err == nil || d.Action != decision.Allow || !d.Stale {
		t.Fatalf("known device within StaleMaxAge: %+v, %v", d, err)
	}
	d, _ = f.e.Decide(ctx, known) // within the retry back-off: no registry call, still stale
	if d.Action != decision.Allow || !d.Stale {
		t.Fatalf("known device during back-off: %+v", d)
	}
	unknown := f.input(ann, "NEW")
	unknown.Now = f.clk.Now()
	d, err = f.e.Decide(ctx, unknown)
	if err == nil || d.Action != decision.Block || d.Reason != decision.ReasonStoreUnavailable {
		t.Fatalf("unknown device with registry down: %+v, %v", d, err)
	}
	f.clk.Add(10 * time.Minute) // now 11 minutes since the last registry read
	known.Now = f.clk.Now()
	d, err = f.e.Decide(ctx, known)
	if err == nil || d.Action != decision.Block || d.Reason != decision.ReasonStoreUnavailable || d.Stale {
		t.Fatalf("known device beyond StaleMaxAge: %+v, %v", d, err)
	}
	if s := f.e.Stats(); s.StoreErrors < 3 || s.StaleDecisions != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestMaxDevices: the N+1-th new device is refused with its own reason and not recorded; the
// admin can still register it.
func TestMaxDevices(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow, MaxDevicesPerUser: 2})
	f.expect(f.input(ann, "A"), decision.Allow, decision.ReasonUnknownDevice)
	f.expect(f.input(ann, "B"), decision.Allow, decision.ReasonUnknownDevice)
	d := f.expect(f.input(ann, "C"), decision.Block, decision.ReasonMaxDevices)
	if d.Detail == "" {
		t.Fatal("no detail")
	}
	if _, err := f.store.Device(ctx, ann, "C"); !errors.Is(err, decision.ErrNotFound) {
		t.Fatalf("refused device recorded: %v", err)
	}
	f.expect(f.input("bob@example.com", "C"), decision.Allow, decision.ReasonUnknownDevice) // per user
	f.expect(f.input(ann, "A"), decision.Allow, decision.ReasonUnknownDevice)               // existing ones unaffected
	log := ok[[]decision.AuditEntry](t)(f.e.Audit(ctx, decision.AuditFilter{User: ann, DeviceID: "C"}))
	if len(log) != 1 || log[0].Event != decision.EventMaxDevicesReached {
		t.Fatalf("audit %+v", log)
	}
	ok[decision.Device](t)(f.e.Register(ctx, decision.Registration{User: ann, DeviceID: "C"}, "admin"))
	f.expect(f.input(ann, "C"), decision.Allow, decision.ReasonAllowed)
	// Forgetting a device frees a slot once the refusal has expired from the cache.
	if err := f.e.Forget(ctx, ann, "C", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Forget(ctx, ann, "B", "admin"); err != nil {
		t.Fatal(err)
	}
	f.expect(f.input(ann, "C"), decision.Allow, decision.ReasonUnknownDevice)
}

// TestSignals: user-agent and device-type changes under one DeviceId and device churn.
func TestSignals(t *testing.T) {
	p := decision.Policy{UnknownDevice: decision.Allow, Signals: decision.SignalPolicy{
		UserAgentChange: decision.SignalAudit, DeviceTypeChange: decision.SignalQuarantine,
		ChurnMaxNewDevices: 2, ChurnWindow: decision.Duration(time.Hour), ChurnAction: decision.SignalQuarantine,
		QuarantineFor: decision.Duration(time.Hour)}}
	f := newFixture(t, p)
	in := f.input(ann, "D1")
	f.expect(in, decision.Allow, decision.ReasonUnknownDevice)

	in.UserAgent = "Apple-iPhone15C2/2105.2" // OS update: audited only
	f.expect(in, decision.Allow, decision.ReasonUnknownDevice)
	if d := ok[decision.Device](t)(f.e.Device(ctx, ann, "D1")); d.UserAgent != in.UserAgent {
		t.Fatalf("user agent not updated: %q", d.UserAgent)
	}
	in.DeviceType = "SAMSUNGSMG991B" // a different kind of device claims the DeviceId
	d := f.expect(in, decision.Quarantine, decision.ReasonSuspicious)
	if d.Detail != string(decision.SignalDeviceTypeChanged) {
		t.Fatalf("detail %q", d.Detail)
	}
	f.expect(in, decision.Quarantine, decision.ReasonSuspicious) // same type again: still suspicious, no new signal
	f.clk.Add(61 * time.Minute)                                  // the quarantine lapses without any write
	f.expect(in, decision.Allow, decision.ReasonUnknownDevice)

	log := ok[[]decision.AuditEntry](t)(f.e.Audit(ctx, decision.AuditFilter{User: ann, DeviceID: "D1"}))
	var signals []string
	for _, a := range log {
		if a.Event == decision.EventSignal {
			signals = append(signals, string(a.Reason))
		}
	}
	if fmt.Sprint(signals) != "[device_type_changed user_agent_changed]" {
		t.Fatalf("signals %v", signals)
	}
	if f.e.Stats().Signals != 2 {
		t.Fatalf("stats %+v", f.e.Stats())
	}

	// Churn: D1 is old by now; two more new devices within the hour trip the signal on the next.
	f.expect(f.input(ann, "N1"), decision.Allow, decision.ReasonUnknownDevice)
	f.expect(f.input(ann, "N2"), decision.Allow, decision.ReasonUnknownDevice)
	f.expect(f.input(ann, "N3"), decision.Quarantine, decision.ReasonSuspicious)
	ok[decision.Device](t)(f.e.ClearSuspicion(ctx, ann, "N3", "admin"))
	f.expect(f.input(ann, "N3"), decision.Allow, decision.ReasonUnknownDevice)
}

// TestComplianceNotSticky: quarantine is re-evaluated on every request: fixing the device
// releases it, and an MDM check-in growing old quarantines it again with no write at all.
func TestComplianceNotSticky(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Quarantine, Compliance: []decision.ComplianceRule{{
		Platform: "*", EncryptionRequired: true, MaxCheckInAge: decision.Duration(24 * time.Hour)}}},
		func(o *decision.Options) { o.CacheTTL = 48 * time.Hour })
	in := f.input(ann, "D1")
	no := false
	ok[decision.Device](t)(f.e.ReportCompliance(ctx, ann, "D1", decision.Compliance{Platform: "ios", Encrypted: &no}, "mdm"))
	d := f.expect(in, decision.Quarantine, decision.ReasonNotCompliant)
	if len(d.Failures) != 1 || d.Failures[0].Rule != decision.FailEncryptionRequired {
		t.Fatalf("failures %+v", d.Failures)
	}
	ok[decision.Device](t)(f.e.ReportCompliance(ctx, ann, "D1", decision.Compliance{Platform: "ios", Encrypted: yes()}, "mdm"))
	f.expect(in, decision.Allow, decision.ReasonAllowed)
	f.expect(in, decision.Allow, decision.ReasonAllowed)
	f.clk.Add(25 * time.Hour) // still within CacheTTL: the cached record is re-evaluated
	in.Now = f.clk.Now()
	d, err := f.e.Decide(ctx, in)
	if err != nil || !d.Cached || d.Action != decision.Quarantine || d.Failures[0].Rule != decision.FailCheckInTooOld {
		t.Fatalf("check-in 25h old: %+v, %v", d, err)
	}
}

// TestSightingsCoalesced: observations are kept in memory, written in one batch by Flush (or
// Close), and a decision change is audited once, not per request.
func TestSightingsCoalesced(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow})
	in := f.input(ann, "D1")
	f.decide(in)
	for i, cmd := range []string{"FolderSync", "Sync", "Ping", "Sync", "ItemOperations"} {
		f.clk.Add(time.Second)
		in.Command, in.ClientAddr = cmd, fmt.Sprintf("198.51.100.%d", i)
		f.decide(in)
	}
	rec := ok[decision.Device](t)(f.store.Device(ctx, ann, "D1"))
	if rec.LastCommand != "Sync" || !rec.LastSeen.Equal(t0) {
		t.Fatalf("record written on the hot path: %+v", rec)
	}
	f.e.Flush()
	rec = ok[decision.Device](t)(f.store.Device(ctx, ann, "D1"))
	if rec.LastCommand != "ItemOperations" || rec.ClientAddr != "198.51.100.4" || !rec.LastSeen.Equal(t0.Add(5*time.Second)) ||
		rec.LastAction != decision.Allow || rec.LastReason != decision.ReasonUnknownDevice {
		t.Fatalf("after flush: %+v", rec)
	}
	count := func() int {
		n := 0
		for _, a := range ok[[]decision.AuditEntry](t)(f.e.Audit(ctx, decision.AuditFilter{User: ann})) {
			if a.Event == decision.EventDecision {
				n++
			}
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d decision audit entries for one unchanged decision", n)
	}
	ok[decision.Device](t)(f.e.SetOverride(ctx, ann, "D1", decision.OverrideBlock, "admin"))
	f.decide(in)
	f.decide(in)
	// A re-read of the same decision after eviction is not a change either.
	decision.Evict(f.e, ann, "D1")
	f.e.Flush()
	f.decide(in)
	if err := f.e.Close(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d decision audit entries, want 2", n)
	}
}

// TestRestartKeepsState: the SQLite registry and the policy survive a restart.
func TestRestartKeepsState(t *testing.T) {
	p := decision.Policy{UnknownDevice: decision.Block, Rules: []decision.Rule{{ID: "pixel",
		Match: decision.Match{Model: "Pixel*"}, Action: decision.Allow}}}
	f := newFixture(t, p)
	ok[decision.Device](t)(f.e.Register(ctx, decision.Registration{User: ann, DeviceID: "D1"}, "admin"))
	f.expect(f.input(ann, "D1"), decision.Allow, decision.ReasonAllowed)
	f.e.Close()
	f.store.Close()

	s, err := sqlite.Open(ctx, f.path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := decision.New(ctx, decision.Options{Store: s, Now: f.clk.Now}) // no Policy: the persisted one wins
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Policy(); len(got.Rules) != 1 || got.Rules[0].ID != "pixel" || got.UnknownDevice != decision.Block {
		t.Fatalf("policy after restart: %+v", got)
	}
	d, err := e.Decide(ctx, f.input(ann, "D1"))
	if err != nil || d.Reason != decision.ReasonAllowed {
		t.Fatalf("device after restart: %+v, %v", d, err)
	}
}

// TestSetPolicyValidates: an invalid policy is refused whole and the old one stays in force.
func TestSetPolicyValidates(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Quarantine})
	err := f.e.SetPolicy(ctx, decision.Policy{UnknownDevice: decision.Wipe, MaxDevicesPerUser: -1}, "admin")
	if err == nil {
		t.Fatal("invalid policy accepted")
	}
	if f.e.Policy().UnknownDevice != decision.Quarantine {
		t.Fatal("invalid policy put in force")
	}
	f.expect(f.input(ann, "D1"), decision.Quarantine, decision.ReasonUnknownDevice)
}

// TestAdminStateErrors: operations that do not fit the device's state are refused.
func TestAdminStateErrors(t *testing.T) {
	f := newFixture(t, decision.Policy{})
	f.decide(f.input(ann, "D1"))
	for name, err := range map[string]error{
		"ack without wipe":     func() error { _, err := f.e.AckWipe(ctx, ann, "D1", true); return err }(),
		"deliver without wipe": func() error { _, err := f.e.MarkWipeDelivered(ctx, ann, "D1"); return err }(),
		"cancel without wipe":  func() error { _, err := f.e.CancelWipe(ctx, ann, "D1", "a"); return err }(),
		"ack unissued key":     func() error { _, err := f.e.AckPolicyKey(ctx, ann, "D1", 5, "1"); return err }(),
	} {
		if !errors.Is(err, decision.ErrInvalidState) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := f.e.SetOverride(ctx, ann, "NOPE", decision.OverrideAllow, "a"); !errors.Is(err, decision.ErrNotFound) {
		t.Errorf("override of unknown device: %v", err)
	}
	list := ok[[]decision.Device](t)(f.e.Devices(ctx, decision.DeviceFilter{User: "ANN@example.com"}))
	if len(list) != 1 || list[0].DeviceID != "D1" {
		t.Fatalf("list %+v", list)
	}
}

// TestConcurrentDecideAndWrites runs deciders against admin writers (run with -race).
func TestConcurrentDecideAndWrites(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow}, func(o *decision.Options) {
		o.FlushInterval = 5 * time.Millisecond
		o.TouchInterval = time.Millisecond
	})
	const devices, rounds = 8, 60
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				in := f.input(ann, fmt.Sprintf("D%d", (g+r)%devices))
				in.Command = []string{"Sync", "Ping", "FolderSync"}[r%3]
				if _, err := f.e.Decide(ctx, in); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := 0; r < rounds/2; r++ {
			id := fmt.Sprintf("D%d", r%devices)
			o := decision.OverrideBlock
			if r%2 == 1 {
				o = decision.OverrideNone
			}
			if _, err := f.e.SetOverride(ctx, ann, id, o, "admin"); err != nil && !errors.Is(err, decision.ErrNotFound) {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// After the writers are done, every device's decision matches its record.
	for i := 0; i < devices; i++ {
		id := fmt.Sprintf("D%d", i)
		rec := ok[decision.Device](t)(f.store.Device(ctx, ann, id))
		d := f.decide(f.input(ann, id))
		if (rec.Override == decision.OverrideBlock) != (d.Reason == decision.ReasonAdminBlock) {
			t.Fatalf("%s: record override %v, decision %s", id, rec.Override, d.Reason)
		}
	}
}

// TestPolicyRefreshAcrossNodes: a policy saved by one engine reaches another engine sharing the
// store within PolicyRefresh.
func TestPolicyRefreshAcrossNodes(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Quarantine})
	other, err := decision.New(ctx, decision.Options{Store: f.store, Now: f.clk.Now, PolicyRefresh: 5 * time.Millisecond,
		FlushInterval: time.Hour, AuditRetention: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.Policy().UnknownDevice != decision.Quarantine {
		t.Fatal("second node did not load the persisted policy")
	}
	if err := f.e.SetPolicy(ctx, decision.Policy{UnknownDevice: decision.Block}, "admin"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for other.Policy().UnknownDevice != decision.Block {
		if time.Now().After(deadline) {
			t.Fatal("policy change not picked up within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d, err := other.Decide(ctx, f.input(ann, "D1"))
	if err != nil || d.Action != decision.Block || d.Reason != decision.ReasonUnknownDevice {
		t.Fatalf("decision on second node: %+v, %v", d, err)
	}
}

// TestAuditRetention: entries older than AuditRetention are pruned (at start, then hourly).
func TestAuditRetention(t *testing.T) {
	f := newFixture(t, decision.Policy{})
	old := decision.AuditEntry{Time: t0.Add(-100 * 24 * time.Hour), User: ann, DeviceID: "D1", Actor: "x", Event: decision.EventOverride}
	recent := decision.AuditEntry{Time: t0.Add(-time.Hour), User: ann, DeviceID: "D1", Actor: "x", Event: decision.EventRegister}
	if err := f.store.AppendAudit(ctx, []decision.AuditEntry{old, recent}); err != nil {
		t.Fatal(err)
	}
	e, err := decision.New(ctx, decision.Options{Store: f.store, Now: f.clk.Now, AuditRetention: 90 * 24 * time.Hour,
		PolicyRefresh: -1, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.Close() // Close waits for the background goroutine, which prunes when it starts
	log := ok[[]decision.AuditEntry](t)(f.store.Audit(ctx, decision.AuditFilter{User: ann}))
	if len(log) != 1 || log[0].Event != decision.EventRegister {
		t.Fatalf("after retention: %+v", log)
	}
}

// TestTwoAccountsOnePhoneAreTwoDevices: a device is keyed by (user, DeviceId); an admin block
// of one account's partnership does not touch the other account on the same phone, and user
// names are normalised so case variants share one record.
func TestTwoAccountsOnePhoneAreTwoDevices(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow})
	f.expect(f.input(ann, "PHONE1"), decision.Allow, decision.ReasonUnknownDevice)
	f.expect(f.input("bob@example.com", "PHONE1"), decision.Allow, decision.ReasonUnknownDevice)
	ok[decision.Device](t)(f.e.SetOverride(ctx, "ANN@EXAMPLE.COM", "PHONE1", decision.OverrideBlock, "admin"))
	f.expect(f.input("Ann@Example.com", "PHONE1"), decision.Block, decision.ReasonAdminBlock)
	f.expect(f.input("bob@example.com", "PHONE1"), decision.Allow, decision.ReasonUnknownDevice)
	list := ok[[]decision.Device](t)(f.e.Devices(ctx, decision.DeviceFilter{}))
	if len(list) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(list), list)
	}
}

// TestInputBuffersNotRetained: the gateway may build Input strings over request buffers it
// reuses (fasthttp); the engine must copy what it keeps. The caller's bytes are overwritten
// after each call and the cached state must be unaffected.
func TestInputBuffersNotRetained(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow}, func(o *decision.Options) { o.CacheTTL = 24 * time.Hour })
	buf := []byte("ann@example.com|DEV1|iPhone|Apple-iPhone15C2/2104.1|203.0.113.9|MyCommand")
	view := func(i, j int) string { return unsafe.String(&buf[i], j-i) }
	in := &decision.Input{User: view(0, 15), DeviceID: view(16, 20), DeviceType: view(21, 27),
		UserAgent: view(28, 51), ClientAddr: view(52, 63), Command: view(64, 73), Groups: []string{view(21, 27)}}
	for round := 0; round < 2; round++ {
		if round == 1 {
			// Record other values first, so round 1 is a cache hit that observes changes and
			// must copy them.
			other := f.input(ann, "DEV1")
			other.UserAgent, other.Command, other.ClientAddr = "Apple-iPhone15C2/2104.1", "Ping", "198.51.100.1"
			f.decide(other)
		}
		d := f.expect(in, decision.Allow, decision.ReasonUnknownDevice)
		if round == 1 && !d.Cached {
			t.Fatal("round 1 was not a cache hit")
		}
		saved := append([]byte(nil), buf...)
		for i := range buf {
			buf[i] = 'X'
		}
		// With the buffer scribbled over, the engine's state must still name the real device.
		if !decision.Cached(f.e, ann, "DEV1") {
			t.Fatal("cache entry key was aliased to the caller's buffer")
		}
		f.e.Flush()
		rec := ok[decision.Device](t)(f.store.Device(ctx, ann, "DEV1"))
		if rec.UserAgent != "Apple-iPhone15C2/2104.1" || rec.ClientAddr != "203.0.113.9" || rec.LastCommand != "MyCommand" {
			t.Fatalf("record corrupted by buffer reuse: %+v", rec)
		}
		copy(buf, saved)
		f.clk.Add(2 * time.Hour) // past TouchInterval so the next round flushes again
	}
}

// gatedStore blocks RecordSightings until released, to hold the flusher still.
type gatedStore struct {
	decision.Store
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) RecordSightings(ctx context.Context, s []decision.Sighting) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.Store.RecordSightings(ctx, s)
}

// TestPendingBounded: observations waiting for the flusher are bounded (MaxPending queued plus
// the FlushBatch being written); beyond that they are dropped and counted, never blocking a
// request, and retried by the device's next request.
func TestPendingBounded(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow})
	gs := &gatedStore{Store: f.store, entered: make(chan struct{}, 1), release: make(chan struct{})}
	e, err := decision.New(ctx, decision.Options{Store: gs, Now: f.clk.Now, MaxPending: 2, FlushBatch: 1,
		FlushInterval: time.Hour, TouchInterval: time.Hour, PolicyRefresh: -1, AuditRetention: -1})
	if err != nil {
		t.Fatal(err)
	}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(gs.release) }) }
	defer func() { release(); e.Close() }()
	decideOn := func(id, cmd string) {
		in := f.input(ann, id)
		in.Command = cmd
		if _, err := e.Decide(ctx, in); err != nil {
			t.Fatal(err)
		}
		e.WaitCache()
	}
	decideOn("D0", "Sync") // first sighting: queues its decision; the flusher takes it and blocks
	<-gs.entered
	for i := 1; i <= 4; i++ {
		decideOn(fmt.Sprintf("D%d", i), "Sync") // D1, D2 fill the queue; D3, D4 are dropped
	}
	if s := e.Stats(); s.DroppedSightings != 2 {
		t.Fatalf("dropped %d observations, want 2 (MaxPending=2, one batch in flight): %+v", s.DroppedSightings, s)
	}
	// Release the flusher; D4's next request with something new queues it again.
	release()
	e.Flush()
	decideOn("D4", "Ping")
	e.Flush()
	if rec := ok[decision.Device](t)(f.store.Device(ctx, ann, "D4")); rec.LastCommand != "Ping" || rec.LastAction != decision.Allow {
		t.Fatalf("D4 after retry: %+v", rec)
	}
}

// TestRefreshAhead: a device in steady use never waits for the registry once its record is
// cached. Hits in the last fifth of an entry's lifetime re-read the record in the background,
// so across several TTLs every decision is a cache hit, and another node's write still becomes
// visible within CacheTTL.
func TestRefreshAhead(t *testing.T) {
	f := newFixture(t, decision.Policy{UnknownDevice: decision.Allow}, func(o *decision.Options) {
		o.CacheTTL = 30 * time.Second
	})
	in := f.input(ann, "STEADY")
	f.expect(in, decision.Allow, decision.ReasonUnknownDevice)
	misses := f.e.Stats().CacheMisses
	// another node blocks the device; this node learns of it by reading ahead, not by a miss.
	ok[decision.Device](t)(f.store.UpdateDevice(ctx, ann, "STEADY", false, func(d *decision.Device) error {
		d.Override = decision.OverrideBlock
		return nil
	}))
	var blockedAfter time.Duration
	for step := time.Duration(0); step < 3*time.Minute; step += time.Second {
		f.clk.Add(time.Second)
		d := f.decide(in)
		if !d.Cached {
			t.Fatalf("at +%v: decision not from the cache: %+v", step, d)
		}
		if d.Action == decision.Block && blockedAfter == 0 {
			blockedAfter = step + time.Second
		}
		// let a background read started by this hit finish before the clock moves on.
		deadline := time.Now().Add(5 * time.Second)
		for decision.Refreshing(f.e, ann, "STEADY") && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	if got := f.e.Stats().CacheMisses; got != misses {
		t.Errorf("%d registry reads on the request path in steady use, want 0", got-misses)
	}
	if n := f.e.Stats().RefreshedAhead; n < 4 {
		t.Errorf("RefreshedAhead = %d over 6 TTLs, want at least 4", n)
	}
	if blockedAfter == 0 || blockedAfter > 36*time.Second {
		t.Errorf("the other node's block became visible after %v, want within CacheTTL + 20 %%", blockedAfter)
	}
}
