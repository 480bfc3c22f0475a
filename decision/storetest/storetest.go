// Package storetest is the conformance suite every decision.Store implementation must pass. The
// same tests run against SQLite and a real PostgreSQL; they exercise the store directly and
// through a decision.Engine.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/decision"
)

// NewStore returns a fresh, empty store for one subtest; the suite closes it (closing twice must
// be harmless).
type NewStore func(t *testing.T) decision.Store

// Run runs the conformance suite.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, decision.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateIfAbsent", testCreateIfAbsent},
		{"UpdateDevice", testUpdate},
		{"UpdateAtomic", testUpdateAtomic},
		{"Delete", testDelete},
		{"ListFilterPaging", testList},
		{"CountSince", testCount},
		{"Sightings", testSightings},
		{"Audit", testAudit},
		{"Policy", testPolicy},
		{"Closed", testClosed},
		{"EngineLifecycle", testEngineLifecycle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func yes() *bool { b := true; return &b }

func sample(user, id string) decision.Device {
	return decision.Device{
		User: user, DeviceID: id, DeviceType: "iPhone", UserAgent: "Apple-iPhone15C2/2104.1",
		FirstSeen: t0, LastSeen: t0, LastCommand: "Sync", ClientAddr: "192.0.2.7",
		Info:         decision.DeviceInfo{Model: "iPhone15,2", IMEI: "351234567890123", OS: "iOS 17.4.1 21E236", FriendlyName: "Ann's phone"},
		Enrolled:     true,
		EnrolledAt:   t0,
		Compliance:   decision.Compliance{Platform: "ios", OSVersion: "17.4.1", PasscodeSet: yes(), PasscodeLength: 6, Encrypted: yes(), CheckIn: t0},
		Wipe:         decision.WipeState{Kind: decision.WipeFull, Status: decision.WipePending, RequestedBy: "admin", RequestedAt: t0},
		Provisioning: decision.Provisioning{PolicyKeyIssued: 42, IssuedAt: t0},
		Suspicion:    decision.Suspicion{Signal: decision.SignalDeviceTypeChanged, At: t0, Detail: "x"},
		Override:     decision.OverrideAllow, OverrideBy: "admin", OverrideAt: t0,
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equalDevice(t *testing.T, got, want decision.Device) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("device mismatch\n got %s\nwant %s", g, w)
	}
}

func testCreateGet(t *testing.T, s decision.Store) {
	ctx := context.Background()
	if _, err := s.Device(ctx, "ann@example.com", "A1"); !errors.Is(err, decision.ErrNotFound) {
		t.Fatalf("missing device: err = %v, want ErrNotFound", err)
	}
	d := sample("ann@example.com", "A1")
	got, created, err := s.CreateDevice(ctx, d)
	must(t, err)
	if !created {
		t.Fatal("created = false for a new device")
	}
	equalDevice(t, got, d)
	got, err = s.Device(ctx, "ann@example.com", "A1")
	must(t, err)
	equalDevice(t, got, d)
	// Keys are exact: another user with the same DeviceId is another device, and DeviceIds are
	// case-sensitive.
	for _, k := range [][2]string{{"bob@example.com", "A1"}, {"ann@example.com", "a1"}} {
		if _, err := s.Device(ctx, k[0], k[1]); !errors.Is(err, decision.ErrNotFound) {
			t.Fatalf("Device(%q, %q): err = %v, want ErrNotFound", k[0], k[1], err)
		}
	}
}

func testCreateIfAbsent(t *testing.T, s decision.Store) {
	ctx := context.Background()
	d := sample("ann@example.com", "A1")
	_, _, err := s.CreateDevice(ctx, d)
	must(t, err)
	other := d
	other.DeviceType = "Android"
	got, created, err := s.CreateDevice(ctx, other)
	must(t, err)
	if created || got.DeviceType != "iPhone" {
		t.Fatalf("second create: created=%v type=%q, want false, iPhone (existing record kept)", created, got.DeviceType)
	}
}

func testUpdate(t *testing.T, s decision.Store) {
	ctx := context.Background()
	_, err := s.UpdateDevice(ctx, "ann@example.com", "A1", false, func(*decision.Device) error { return nil })
	if !errors.Is(err, decision.ErrNotFound) {
		t.Fatalf("update missing without create: err = %v, want ErrNotFound", err)
	}
	d, err := s.UpdateDevice(ctx, "ann@example.com", "A1", true, func(d *decision.Device) error {
		d.Enrolled = true
		d.Override = decision.OverrideBlock
		return nil
	})
	must(t, err)
	if d.User != "ann@example.com" || d.DeviceID != "A1" || !d.Enrolled {
		t.Fatalf("created by update: %+v", d)
	}
	boom := errors.New("boom")
	_, err = s.UpdateDevice(ctx, "ann@example.com", "A1", false, func(d *decision.Device) error {
		d.Enrolled = false
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("fn error: got %v", err)
	}
	got, err := s.Device(ctx, "ann@example.com", "A1")
	must(t, err)
	if !got.Enrolled || got.Override != decision.OverrideBlock {
		t.Fatalf("aborted update changed the record: %+v", got)
	}
	want := sample("ann@example.com", "A1")
	_, err = s.UpdateDevice(ctx, "ann@example.com", "A1", false, func(d *decision.Device) error {
		*d = want
		d.User, d.DeviceID = "evil", "other" // must be ignored
		return nil
	})
	must(t, err)
	got, err = s.Device(ctx, "ann@example.com", "A1")
	must(t, err)
	equalDevice(t, got, want)
}

func testUpdateAtomic(t *testing.T, s decision.Store) {
	ctx := context.Background()
	_, _, err := s.CreateDevice(ctx, decision.Device{User: "ann@example.com", DeviceID: "A1", FirstSeen: t0})
	must(t, err)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateDevice(ctx, "ann@example.com", "A1", false, func(d *decision.Device) error {
				d.Compliance.PasscodeLength++
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	d, err := s.Device(ctx, "ann@example.com", "A1")
	must(t, err)
	if d.Compliance.PasscodeLength != n {
		t.Fatalf("after %d concurrent increments: %d (lost updates)", n, d.Compliance.PasscodeLength)
	}
}

func testDelete(t *testing.T, s decision.Store) {
	ctx := context.Background()
	if err := s.DeleteDevice(ctx, "ann@example.com", "A1"); !errors.Is(err, decision.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	_, _, err := s.CreateDevice(ctx, sample("ann@example.com", "A1"))
	must(t, err)
	must(t, s.DeleteDevice(ctx, "ann@example.com", "A1"))
	if _, err := s.Device(ctx, "ann@example.com", "A1"); !errors.Is(err, decision.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func testList(t *testing.T, s decision.Store) {
	ctx := context.Background()
	for i := 0; i < 7; i++ {
		d := decision.Device{User: "ann@example.com", DeviceID: fmt.Sprintf("D%d", i), FirstSeen: t0}
		d.Enrolled = i%2 == 0
		if i == 3 {
			d.Wipe.Status = decision.WipePending
		}
		if i == 4 {
			d.Override = decision.OverrideBlock
		}
		if i == 5 {
			d.Suspicion.Signal = decision.SignalDeviceChurn
		}
		_, _, err := s.CreateDevice(ctx, d)
		must(t, err)
	}
	_, _, err := s.CreateDevice(ctx, decision.Device{User: "bob@example.com", DeviceID: "B0", FirstSeen: t0})
	must(t, err)
	must(t, s.RecordSightings(ctx, []decision.Sighting{{User: "bob@example.com", DeviceID: "B0", LastSeen: t0,
		Action: decision.Quarantine, Reason: decision.ReasonUnknownDevice, DecidedAt: t0}}))
	ids := func(ds []decision.Device) (out []string) {
		for _, d := range ds {
			out = append(out, d.User[:1]+":"+d.DeviceID)
		}
		return out
	}
	q := decision.Quarantine
	for _, tc := range []struct {
		f    decision.DeviceFilter
		want string
	}{
		{decision.DeviceFilter{}, "[a:D0 a:D1 a:D2 a:D3 a:D4 a:D5 a:D6 b:B0]"},
		{decision.DeviceFilter{User: "bob@example.com"}, "[b:B0]"},
		{decision.DeviceFilter{User: "ann@example.com", DeviceID: "D2"}, "[a:D2]"},
		{decision.DeviceFilter{State: decision.StateEnrolled}, "[a:D0 a:D2 a:D4 a:D6]"},
		{decision.DeviceFilter{State: decision.StateUnenrolled, User: "ann@example.com"}, "[a:D1 a:D3 a:D5]"},
		{decision.DeviceFilter{State: decision.StateWipe}, "[a:D3]"},
		{decision.DeviceFilter{State: decision.StateOverridden}, "[a:D4]"},
		{decision.DeviceFilter{State: decision.StateSuspicious}, "[a:D5]"},
		{decision.DeviceFilter{LastAction: &q}, "[b:B0]"},
		{decision.DeviceFilter{Limit: 3}, "[a:D0 a:D1 a:D2]"},
		{decision.DeviceFilter{Limit: 3, AfterUser: "ann@example.com", AfterDeviceID: "D2"}, "[a:D3 a:D4 a:D5]"},
		{decision.DeviceFilter{Limit: 3, AfterUser: "ann@example.com", AfterDeviceID: "D5"}, "[a:D6 b:B0]"},
	} {
		got, err := s.ListDevices(ctx, tc.f)
		must(t, err)
		if g := fmt.Sprint(ids(got)); g != tc.want {
			t.Errorf("ListDevices(%+v) = %s, want %s", tc.f, g, tc.want)
		}
	}
	if _, err := s.ListDevices(ctx, decision.DeviceFilter{State: "bogus"}); err == nil {
		t.Error("unknown state accepted")
	}
}

func testCount(t *testing.T, s decision.Store) {
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		_, _, err := s.CreateDevice(ctx, decision.Device{User: "ann@example.com", DeviceID: fmt.Sprint(i),
			FirstSeen: t0.Add(time.Duration(i) * time.Hour)})
		must(t, err)
	}
	for _, tc := range []struct {
		since time.Time
		want  int
	}{{time.Time{}, 5}, {t0.Add(2 * time.Hour), 3}, {t0.Add(10 * time.Hour), 0}} {
		n, err := s.CountDevices(ctx, "ann@example.com", tc.since)
		must(t, err)
		if n != tc.want {
			t.Errorf("CountDevices(since %v) = %d, want %d", tc.since, n, tc.want)
		}
	}
	n, err := s.CountDevices(ctx, "nobody@example.com", time.Time{})
	must(t, err)
	if n != 0 {
		t.Errorf("count for unknown user = %d", n)
	}
}

func testSightings(t *testing.T, s decision.Store) {
	ctx := context.Background()
	_, _, err := s.CreateDevice(ctx, sample("ann@example.com", "A1"))
	must(t, err)
	later := t0.Add(time.Hour)
	must(t, s.RecordSightings(ctx, []decision.Sighting{
		{User: "ann@example.com", DeviceID: "A1", LastSeen: later, LastCommand: "Ping", ClientAddr: "198.51.100.1",
			Action: decision.Allow, Reason: decision.ReasonAllowed, DecidedAt: later},
		{User: "ann@example.com", DeviceID: "gone", LastSeen: later}, // ignored
	}))
	d, err := s.Device(ctx, "ann@example.com", "A1")
	must(t, err)
	if !d.LastSeen.Equal(later) || d.LastCommand != "Ping" || d.ClientAddr != "198.51.100.1" ||
		d.LastAction != decision.Allow || d.LastReason != decision.ReasonAllowed || !d.LastDecisionAt.Equal(later) {
		t.Fatalf("after sighting: %+v", d)
	}
	if d.Info.Model != "iPhone15,2" || !d.Enrolled {
		t.Fatalf("sighting clobbered other fields: %+v", d)
	}
	// An older sighting (a late batch) does not move anything backwards; an empty command keeps
	// the recorded one.
	must(t, s.RecordSightings(ctx, []decision.Sighting{{User: "ann@example.com", DeviceID: "A1", LastSeen: t0,
		LastCommand: "Sync", Action: decision.Block, Reason: decision.ReasonAdminBlock, DecidedAt: t0}}))
	must(t, s.RecordSightings(ctx, []decision.Sighting{{User: "ann@example.com", DeviceID: "A1", LastSeen: later.Add(time.Minute)}}))
	d, err = s.Device(ctx, "ann@example.com", "A1")
	must(t, err)
	if !d.LastSeen.Equal(later.Add(time.Minute)) || d.LastCommand != "Ping" || d.LastAction != decision.Allow {
		t.Fatalf("sightings not monotonic: %+v", d)
	}
	if s.RecordSightings(ctx, nil) != nil {
		t.Fatal("empty batch failed")
	}
}

func testAudit(t *testing.T, s decision.Store) {
	ctx := context.Background()
	var es []decision.AuditEntry
	for i := 0; i < 10; i++ {
		user := "ann@example.com"
		if i%2 == 1 {
			user = "bob@example.com"
		}
		es = append(es, decision.AuditEntry{Time: t0.Add(time.Duration(i) * time.Minute), User: user, DeviceID: "D",
			Actor: "admin", Event: decision.EventDecision, Action: decision.ActionPtr(decision.Block), Reason: decision.ReasonAdminBlock, Detail: fmt.Sprint(i)})
	}
	es[0].Action = nil // entries that are not decisions carry no action
	es[0].Event = decision.EventRegister
	must(t, s.AppendAudit(ctx, es))
	all, err := s.Audit(ctx, decision.AuditFilter{})
	must(t, err)
	if len(all) != 10 || all[0].Detail != "9" || all[9].Detail != "0" {
		t.Fatalf("audit not newest first: %d entries", len(all))
	}
	e := all[0]
	if e.ID == 0 || !e.Time.Equal(t0.Add(9*time.Minute)) || e.User != "bob@example.com" || e.Actor != "admin" ||
		e.Event != decision.EventDecision || e.Action == nil || *e.Action != decision.Block || e.Reason != decision.ReasonAdminBlock {
		t.Fatalf("entry round trip: %+v", e)
	}
	details := func(es []decision.AuditEntry) (out []string) {
		for _, e := range es {
			out = append(out, e.Detail)
		}
		return out
	}
	for _, tc := range []struct {
		f    decision.AuditFilter
		want string
	}{
		{decision.AuditFilter{User: "ann@example.com"}, "[8 6 4 2 0]"},
		{decision.AuditFilter{User: "ann@example.com", DeviceID: "D", Limit: 2}, "[8 6]"},
		{decision.AuditFilter{Since: t0.Add(3 * time.Minute), Until: t0.Add(6 * time.Minute)}, "[5 4 3]"},
		{decision.AuditFilter{BeforeID: all[6].ID, Limit: 2}, "[2 1]"},
		{decision.AuditFilter{DeviceID: "other"}, "[]"},
	} {
		got, err := s.Audit(ctx, tc.f)
		must(t, err)
		if g := fmt.Sprint(details(got)); g != tc.want {
			t.Errorf("Audit(%+v) = %s, want %s", tc.f, g, tc.want)
		}
	}
	if last := all[9]; last.Action != nil || last.Event != decision.EventRegister {
		t.Fatalf("entry without action: %+v", last)
	}
	n, err := s.PruneAudit(ctx, t0.Add(5*time.Minute))
	must(t, err)
	if n != 5 {
		t.Fatalf("pruned %d, want 5", n)
	}
	rest, err := s.Audit(ctx, decision.AuditFilter{})
	must(t, err)
	if fmt.Sprint(details(rest)) != "[9 8 7 6 5]" {
		t.Fatalf("after prune: %v", details(rest))
	}
}

func testPolicy(t *testing.T, s decision.Store) {
	ctx := context.Background()
	if _, _, err := s.LoadPolicy(ctx); !errors.Is(err, decision.ErrNotFound) {
		t.Fatalf("empty store: LoadPolicy err = %v", err)
	}
	r1, err := s.SavePolicy(ctx, []byte(`{"a":1}`))
	must(t, err)
	r2, err := s.SavePolicy(ctx, []byte(`{"a":2}`))
	must(t, err)
	if r2 <= r1 {
		t.Fatalf("revisions %d then %d", r1, r2)
	}
	doc, rev, err := s.LoadPolicy(ctx)
	must(t, err)
	if string(doc) != `{"a":2}` || rev != r2 {
		t.Fatalf("LoadPolicy = %s rev %d", doc, rev)
	}
}

func testClosed(t *testing.T, s decision.Store) {
	ctx := context.Background()
	must(t, s.Close())
	must(t, s.Close())
	if _, err := s.Device(ctx, "a", "b"); !errors.Is(err, decision.ErrClosed) {
		t.Fatalf("Device after Close: %v", err)
	}
	if _, err := s.UpdateDevice(ctx, "a", "b", true, func(*decision.Device) error { return nil }); !errors.Is(err, decision.ErrClosed) {
		t.Fatalf("UpdateDevice after Close: %v", err)
	}
	if err := s.RecordSightings(ctx, []decision.Sighting{{User: "a", DeviceID: "b", LastSeen: t0}}); !errors.Is(err, decision.ErrClosed) {
		t.Fatalf("RecordSightings after Close: %v", err)
	}
}

// testEngineLifecycle drives one device through its life via the Engine on this store.
func testEngineLifecycle(t *testing.T, s decision.Store) {
	ctx := context.Background()
	now := t0
	p := decision.DefaultPolicy()
	p.Compliance = []decision.ComplianceRule{{Platform: "ios", MinOSVersion: "17.0", PasscodeRequired: true}}
	e, err := decision.New(ctx, decision.Options{Store: s, Policy: &p, Now: func() time.Time { return now },
		FlushInterval: time.Hour, PolicyRefresh: -1})
	must(t, err)
	defer e.Close()
	in := &decision.Input{User: "Ann@Example.com", DeviceID: "ApplDNQ1", DeviceType: "iPhone",
		UserAgent: "Apple-iPhone15C2/2104.1", Command: "FolderSync", ClientAddr: "192.0.2.7", Now: now}
	step := func(name string, wantA decision.Action, wantR decision.Reason) decision.Decision {
		t.Helper()
		d, err := e.Decide(ctx, in)
		must(t, err)
		if d.Action != wantA || d.Reason != wantR {
			t.Fatalf("%s: got %v/%s, want %v/%s", name, d.Action, d.Reason, wantA, wantR)
		}
		e.WaitCache()
		return d
	}
	step("first sighting", decision.Quarantine, decision.ReasonUnknownDevice)
	if _, err := s.Device(ctx, "ann@example.com", "ApplDNQ1"); err != nil {
		t.Fatalf("first sighting did not create the record: %v", err)
	}
	_, err = e.ReportCompliance(ctx, "ann@example.com", "ApplDNQ1", decision.Compliance{Platform: "ios", OSVersion: "16.4", PasscodeSet: yes()}, "mdm")
	must(t, err)
	d := step("old OS", decision.Quarantine, decision.ReasonNotCompliant)
	if len(d.Failures) != 1 || d.Failures[0] != (decision.Failure{Rule: decision.FailMinOSVersion, Want: "17.0", Have: "16.4"}) {
		t.Fatalf("failures = %+v", d.Failures)
	}
	_, err = e.ReportCompliance(ctx, "ann@example.com", "ApplDNQ1", decision.Compliance{Platform: "ios", OSVersion: "17.4", PasscodeSet: yes()}, "mdm")
	must(t, err)
	step("compliant", decision.Allow, decision.ReasonAllowed)
	_, err = e.SetOverride(ctx, "ann@example.com", "ApplDNQ1", decision.OverrideBlock, "admin")
	must(t, err)
	step("admin block", decision.Block, decision.ReasonAdminBlock)
	_, err = e.SetOverride(ctx, "ann@example.com", "ApplDNQ1", decision.OverrideNone, "admin")
	must(t, err)
	_, err = e.RequestWipe(ctx, "ann@example.com", "ApplDNQ1", decision.WipeAccountOnly, "admin")
	must(t, err)
	step("wipe pending", decision.AccountOnlyWipe, decision.ReasonWipePending)
	_, err = e.MarkWipeDelivered(ctx, "ann@example.com", "ApplDNQ1")
	must(t, err)
	step("wipe delivered", decision.AccountOnlyWipe, decision.ReasonWipePending)
	_, err = e.AckWipe(ctx, "ann@example.com", "ApplDNQ1", true)
	must(t, err)
	step("wiped", decision.Block, decision.ReasonWiped)
	must(t, e.Forget(ctx, "ann@example.com", "ApplDNQ1", "admin"))
	step("forgotten → unknown again", decision.Quarantine, decision.ReasonUnknownDevice)
	e.Flush()
	dev, err := s.Device(ctx, "ann@example.com", "ApplDNQ1")
	must(t, err)
	if dev.LastAction != decision.Quarantine || dev.LastReason != decision.ReasonUnknownDevice || dev.LastCommand != "FolderSync" {
		t.Fatalf("flushed record: %+v", dev)
	}
	log, err := e.Audit(ctx, decision.AuditFilter{User: "ann@example.com", DeviceID: "ApplDNQ1"})
	must(t, err)
	seen := map[decision.Event]bool{}
	for _, a := range log {
		seen[a.Event] = true
	}
	for _, ev := range []decision.Event{decision.EventFirstSeen, decision.EventCompliance, decision.EventOverride,
		decision.EventWipeRequested, decision.EventWipeDelivered, decision.EventWipeAcked, decision.EventForget, decision.EventDecision} {
		if !seen[ev] {
			t.Errorf("audit log lacks %s", ev)
		}
	}
}
