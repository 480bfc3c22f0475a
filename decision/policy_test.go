package decision

import (
	"strings"
	"testing"
	"time"
)

var now0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func bp(b bool) *bool { return &b }

func mustCompile(t *testing.T, p Policy) *compiledPolicy {
	t.Helper()
	cp, err := compilePolicy(&p)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func enrolledIOS(os string) Device {
	return Device{User: "ann@example.com", DeviceID: "D1", DeviceType: "iPhone", UserAgent: "Apple-iPhone15C2/2104.1",
		Enrolled: true, Info: DeviceInfo{Model: "iPhone15,2", OS: "iOS " + os + " 21E236"},
		Compliance: Compliance{Platform: "iOS", OSVersion: os, PasscodeSet: bp(true), PasscodeLength: 6,
			Encrypted: bp(true), Jailbroken: bp(false), CheckIn: now0.Add(-time.Hour)}}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		want   bool
	}{
		{"iPhone", "iPhone", true},
		{"iphone", "IPHONE", true},
		{"iPhone", "iPhone2", false},
		{"Apple-*", "Apple-iPhone15C2/2104.1", true},
		{"*/2104.*", "Apple-iPhone15C2/2104.1", true},
		{"Android?", "Android1", true},
		{"Android?", "Android", false},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"*Outlook*", "Microsoft Outlook-iOS/2.0", true},
	} {
		if got := globMatch(tc.pat, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pat, tc.s, got, tc.want)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"17", "17.0", 0}, {"17.0.1", "17.0", 1}, {"16.4", "17.0", -1}, {"10", "9.3", 1},
		{"14.0.0-beta", "14", 0}, {"17.1a", "17.1", 0}, {"1.2.3.4", "1.2.3.5", -1},
	} {
		a, _ := parseVersion(tc.a)
		b, _ := parseVersion(tc.b)
		if got := a.compare(b); got != tc.want {
			t.Errorf("compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	for _, bad := range []string{"", "x", "v17", ".1"} {
		if _, ok := parseVersion(bad); ok {
			t.Errorf("parseVersion(%q) accepted", bad)
		}
	}
}

func TestDeviceOS(t *testing.T) {
	for _, tc := range []struct {
		d          Device
		name, vers string
	}{
		{Device{Info: DeviceInfo{OS: "iOS 17.1 21B74"}}, "iOS", "17.1"},
		{Device{Info: DeviceInfo{OS: "Android 14"}}, "Android", "14"},
		{Device{Info: DeviceInfo{OS: "Windows 10.0.19045"}}, "Windows", "10.0.19045"},
		{Device{Info: DeviceInfo{OS: "iOS 16.0"}, Compliance: Compliance{Platform: "ios", OSVersion: "17.2"}}, "ios", "17.2"},
		{Device{Info: DeviceInfo{OS: "BlackBerry"}}, "BlackBerry", ""},
	} {
		n, v := deviceOS(&tc.d)
		if n != tc.name || v != tc.vers {
			t.Errorf("deviceOS(%q) = %q %q, want %q %q", tc.d.Info.OS, n, v, tc.name, tc.vers)
		}
	}
}

// TestRules covers device access rules: each field, globs, OS version ranges and priority.
func TestRules(t *testing.T) {
	p := Policy{
		UnknownDevice: Quarantine,
		Rules: []Rule{
			{ID: "old-ios", Priority: 10, Match: Match{OS: "iOS < 16"}, Action: Block},
			{ID: "ios-16", Priority: 20, Match: Match{OS: "iOS >= 16, < 17"}, Action: Quarantine},
			{ID: "pixel", Priority: 30, Match: Match{Model: "Pixel*"}, Action: Allow},
			{ID: "outlook", Priority: 5, Match: Match{UserAgent: "Outlook-*"}, Action: Allow},
			{ID: "exact-ua", Priority: 6, Match: Match{UserAgent: "BadClient/1.0"}, Action: Block},
			{ID: "winphone", Priority: 40, Match: Match{DeviceType: "WP*", OS: "Windows*"}, Action: Block},
			{ID: "late-catch", Priority: 50, Match: Match{DeviceType: "*"}, Action: Quarantine},
			{ID: "shadowed", Priority: 60, Match: Match{DeviceType: "iPhone"}, Action: Allow},
		},
	}
	cp := mustCompile(t, p)
	for _, tc := range []struct {
		name       string
		d          Device
		deviceType string
		ua         string
		wantA      Action
		wantR      Reason
	}{
		{"ios 15 blocked", enrolledIOS("15.7"), "iPhone", "Apple-iPhone/1", Block, "rule_block:old-ios"},
		{"ios 16.4 quarantined by range", enrolledIOS("16.4"), "iPhone", "Apple-iPhone/1", Quarantine, "rule_quarantine:ios-16"},
		{"ios 17.0 falls to catch-all", enrolledIOS("17.0"), "iPhone", "Apple-iPhone/1", Quarantine, "rule_quarantine:late-catch"},
		{"priority: UA rule before OS rule", enrolledIOS("15.0"), "iPhone", "Outlook-iOS/2.0", Allow, "rule_allow:outlook"},
		{"exact UA", enrolledIOS("17.0"), "iPhone", "BadClient/1.0", Block, "rule_block:exact-ua"},
		{"exact UA does not match prefix", enrolledIOS("15.0"), "iPhone", "BadClient/1.01", Block, "rule_block:old-ios"},
		{"model glob", Device{Info: DeviceInfo{Model: "Pixel 8", OS: "Android 14"}}, "Android", "Android/14", Allow, "rule_allow:pixel"},
		{"all fields must match", Device{Info: DeviceInfo{OS: "Android 14"}}, "WP8", "x", Quarantine, "rule_quarantine:late-catch"},
		{"two fields match", Device{Info: DeviceInfo{OS: "Windows 10.0"}}, "WP8", "x", Block, "rule_block:winphone"},
		{"unknown OS version matches no range", Device{Info: DeviceInfo{OS: "iOS"}}, "iPhone", "x", Quarantine, "rule_quarantine:late-catch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := cp.evaluate(&tc.d, &evalInput{deviceType: tc.deviceType, userAgent: tc.ua, now: now0})
			if d.Action != tc.wantA || d.Reason != tc.wantR {
				t.Fatalf("got %v/%s, want %v/%s", d.Action, d.Reason, tc.wantA, tc.wantR)
			}
		})
	}
}

// TestGroups covers targeting, exemptions, config membership and case-insensitive names.
func TestGroups(t *testing.T) {
	p := Policy{UnknownDevice: Block, Groups: GroupPolicy{
		Target:  []string{"Mobile-Users"},
		Exempt:  []string{"Executives"},
		Members: map[string][]string{"Carol@Example.com": {"executives"}, "dave@example.com": {"mobile-users"}},
	}}
	cp := mustCompile(t, p)
	dev := Device{DeviceType: "iPhone"}
	for _, tc := range []struct {
		user   string
		groups []string
		wantA  Action
		wantR  Reason
	}{
		{"ann@example.com", []string{"mobile-users"}, Block, ReasonUnknownDevice},
		{"bob@example.com", []string{"sales"}, Allow, ReasonNotTargeted},
		{"bob@example.com", nil, Allow, ReasonNotTargeted},
		{"ann@example.com", []string{"mobile-users", "EXECUTIVES"}, Allow, ReasonExempt},
		{"carol@example.com", nil, Allow, ReasonExempt},
		{"dave@example.com", nil, Block, ReasonUnknownDevice},
	} {
		d, _ := cp.evaluate(&dev, &evalInput{user: tc.user, groups: tc.groups, deviceType: "iPhone", now: now0})
		if d.Action != tc.wantA || d.Reason != tc.wantR {
			t.Errorf("%s %v: got %v/%s, want %v/%s", tc.user, tc.groups, d.Action, d.Reason, tc.wantA, tc.wantR)
		}
	}
}

// TestCompliance gives each compliance rule its own failing case with its code and detail.
func TestCompliance(t *testing.T) {
	rule := ComplianceRule{Platform: "ios", MinOSVersion: "17.0", PasscodeRequired: true, MinPasscodeLength: 6,
		EncryptionRequired: true, BlockJailbroken: true, MaxCheckInAge: Duration(24 * time.Hour), MinPolicyVersion: "2"}
	cp := mustCompile(t, Policy{Compliance: []ComplianceRule{rule, {Platform: "*"}}})
	good := enrolledIOS("17.4")
	good.Provisioning = Provisioning{PolicyKeyIssued: 7, PolicyKeyAcked: 7, PolicyVersionAcked: "2.1"}
	for _, tc := range []struct {
		name   string
		mutate func(*Device)
		want   []Failure
	}{
		{"compliant", func(*Device) {}, nil},
		{"min_os_version", func(d *Device) { d.Compliance.OSVersion = "16.4" }, []Failure{{FailMinOSVersion, "17.0", "16.4"}}},
		{"passcode_required", func(d *Device) { d.Compliance.PasscodeSet = bp(false) }, []Failure{{FailPasscodeRequired, "true", "false"}}},
		{"passcode unknown", func(d *Device) { d.Compliance.PasscodeSet = nil }, []Failure{{FailPasscodeRequired, "true", "unknown"}}},
		{"min_passcode_length", func(d *Device) { d.Compliance.PasscodeLength = 4 }, []Failure{{FailMinPasscodeLength, "6", "4"}}},
		{"encryption_required", func(d *Device) { d.Compliance.Encrypted = bp(false) }, []Failure{{FailEncryptionRequired, "true", "false"}}},
		{"jailbroken", func(d *Device) { d.Compliance.Jailbroken = bp(true) }, []Failure{{FailJailbroken, "false", "true"}}},
		{"jailbreak unknown fails closed", func(d *Device) { d.Compliance.Jailbroken = nil }, []Failure{{FailJailbroken, "false", "unknown"}}},
		{"mdm_checkin_too_old", func(d *Device) { d.Compliance.CheckIn = now0.Add(-48 * time.Hour) },
			[]Failure{{FailCheckInTooOld, "24h0m0s", "48h0m0s"}}},
		{"never checked in", func(d *Device) { d.Compliance.CheckIn = time.Time{} }, []Failure{{FailCheckInTooOld, "24h0m0s", "never"}}},
		{"min_policy_version", func(d *Device) { d.Provisioning.PolicyVersionAcked = "1.9" }, []Failure{{FailMinPolicyVersionAck, "2", "1.9"}}},
		{"policy not acknowledged", func(d *Device) { d.Provisioning.PolicyKeyAcked = 0 }, []Failure{{FailMinPolicyVersionAck, "2", "none"}}},
		{"several, one per rule, stable order", func(d *Device) {
			d.Compliance.OSVersion = "16.0"
			d.Compliance.PasscodeSet, d.Compliance.PasscodeLength = nil, 0
			d.Compliance.Encrypted = nil
		}, []Failure{{FailMinOSVersion, "17.0", "16.0"}, {FailPasscodeRequired, "true", "unknown"},
			{FailMinPasscodeLength, "6", "unknown"}, {FailEncryptionRequired, "true", "unknown"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good
			d.Compliance.PasscodeSet, d.Compliance.Encrypted, d.Compliance.Jailbroken = bp(true), bp(true), bp(false)
			tc.mutate(&d)
			got, until := cp.evaluate(&d, &evalInput{deviceType: "iPhone", now: now0})
			if len(tc.want) == 0 {
				if got.Action != Allow || got.Reason != ReasonAllowed || len(got.Failures) != 0 {
					t.Fatalf("got %+v, want allowed", got)
				}
				if want := d.Compliance.CheckIn.Add(24*time.Hour + time.Nanosecond); !until.Equal(want) {
					t.Fatalf("valid until %v, want %v", until, want)
				}
				return
			}
			if got.Action != Quarantine || got.Reason != ReasonNotCompliant {
				t.Fatalf("got %v/%s, want quarantine/not_compliant", got.Action, got.Reason)
			}
			if len(got.Failures) != len(tc.want) {
				t.Fatalf("failures %+v, want %+v", got.Failures, tc.want)
			}
			for i := range tc.want {
				if got.Failures[i] != tc.want[i] {
					t.Fatalf("failures %+v, want %+v", got.Failures, tc.want)
				}
			}
		})
	}
	// Another platform falls to the "*" rule, which demands nothing.
	android := Device{Enrolled: true, Info: DeviceInfo{OS: "Android 9"}}
	if d, _ := cp.evaluate(&android, &evalInput{deviceType: "Android", now: now0}); d.Reason != ReasonAllowed {
		t.Fatalf("android: %+v", d)
	}
}

// TestEASPolicyCounts: an acknowledged EAS policy stands in for enrolment and for the passcode
// and encryption facts, not for MDM-only facts.
func TestEASPolicyCounts(t *testing.T) {
	cp := mustCompile(t, Policy{UnknownDevice: Block, Compliance: []ComplianceRule{{Platform: "*", PasscodeRequired: true,
		MinPasscodeLength: 6, EncryptionRequired: true, EASPolicyCounts: true}}})
	d := Device{DeviceType: "SAMSUNGSMG991B", Info: DeviceInfo{OS: "Android 14"}}
	in := &evalInput{deviceType: d.DeviceType, now: now0}
	if got, _ := cp.evaluate(&d, in); got.Reason != ReasonUnknownDevice || got.Action != Block {
		t.Fatalf("unacknowledged: %+v", got)
	}
	d.Provisioning = Provisioning{PolicyKeyIssued: 9, PolicyKeyAcked: 9}
	if got, _ := cp.evaluate(&d, in); got.Reason != ReasonAllowed {
		t.Fatalf("acknowledged: %+v", got)
	}
	d.Provisioning.PolicyKeyAcked = 8 // acknowledged an older key
	if got, _ := cp.evaluate(&d, in); got.Reason != ReasonUnknownDevice {
		t.Fatalf("stale ack: %+v", got)
	}
	cp2 := mustCompile(t, Policy{Compliance: []ComplianceRule{{Platform: "*", BlockJailbroken: true, EASPolicyCounts: true}}})
	d.Provisioning.PolicyKeyAcked = 9
	if got, _ := cp2.evaluate(&d, in); got.Reason != ReasonNotCompliant || got.Failures[0].Rule != FailJailbroken {
		t.Fatalf("jailbreak still needs the MDM: %+v", got)
	}
}

// TestEvaluationOrder pins the precedence documented on Engine.Decide.
func TestEvaluationOrder(t *testing.T) {
	p := Policy{UnknownDevice: Quarantine, Groups: GroupPolicy{Exempt: []string{"vip"}},
		Rules:        []Rule{{ID: "all-iphones", Match: Match{DeviceType: "iPhone"}, Action: Block}},
		Unmanageable: UnmanageablePolicy{Match: []Match{{DeviceType: "iPhone"}}, Action: Allow},
		Signals:      SignalPolicy{QuarantineFor: Duration(time.Hour)}}
	cp := mustCompile(t, p)
	base := Device{DeviceType: "iPhone", Enrolled: true}
	vip := &evalInput{deviceType: "iPhone", groups: []string{"vip"}, now: now0}
	plain := &evalInput{deviceType: "iPhone", now: now0}
	cases := []struct {
		name  string
		d     Device
		in    *evalInput
		wantR Reason
	}{
		{"wipe beats override", func() Device { d := base; d.Wipe.Status = WipePending; d.Override = OverrideAllow; return d }(), vip, ReasonWipePending},
		{"override beats suspicion", func() Device {
			d := base
			d.Override = OverrideAllow
			d.Suspicion = Suspicion{Signal: SignalDeviceChurn, At: now0}
			return d
		}(), plain, ReasonAdminAllow},
		{"suspicion beats exemption", func() Device { d := base; d.Suspicion = Suspicion{Signal: SignalDeviceChurn, At: now0}; return d }(), vip, ReasonSuspicious},
		{"suspicion expires", func() Device {
			d := base
			d.Suspicion = Suspicion{Signal: SignalDeviceChurn, At: now0.Add(-2 * time.Hour)}
			return d
		}(), plain, "rule_block:all-iphones"},
		{"exemption beats rules", base, vip, ReasonExempt},
		{"rules beat unmanageable", base, plain, "rule_block:all-iphones"},
	}
	for _, tc := range cases {
		got, _ := cp.evaluate(&tc.d, tc.in)
		if got.Reason != tc.wantR {
			t.Errorf("%s: got %s, want %s", tc.name, got.Reason, tc.wantR)
		}
	}
	cp = mustCompile(t, Policy{UnknownDevice: Quarantine, Unmanageable: UnmanageablePolicy{Match: []Match{{UserAgent: "*Mail*"}}, Action: Allow}})
	if got, _ := cp.evaluate(&Device{}, &evalInput{userAgent: "WindowsMail/1", now: now0}); got.Reason != ReasonUnmanageable || got.Action != Allow {
		t.Errorf("unmanageable before unknown: %+v", got)
	}
}

// TestPolicyValidateReportsAll: every problem is reported in one error.
func TestPolicyValidateReportsAll(t *testing.T) {
	p := Policy{
		UnknownDevice: Wipe,
		Unmanageable:  UnmanageablePolicy{Action: Quarantine, Match: []Match{{}}},
		Rules: []Rule{
			{ID: "a", Match: Match{OS: "iOS >= x"}, Action: Block},
			{ID: "a", Match: Match{DeviceType: "x"}, Action: Block},
			{ID: "bad id!", Match: Match{}, Action: Wipe},
			{ID: "c", Match: Match{OS: ">= 17"}, Action: Allow},
		},
		Groups:            GroupPolicy{Target: []string{""}},
		MaxDevicesPerUser: -1,
		Compliance:        []ComplianceRule{{Platform: "", MinOSVersion: "latest", MinPasscodeLength: 100}},
		Signals:           SignalPolicy{ChurnMaxNewDevices: 3},
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("invalid policy accepted")
	}
	for _, want := range []string{"unknown_device", "unmanageable.action", "unmanageable.match[0]", "rules[0].match",
		"duplicate rule id", "rules[2].id", "rules[2].action", "rules[2].match", "rules[3].match", "groups.target[0]",
		"max_devices_per_user", "compliance[0].platform", "compliance[0].min_os_version",
		"compliance[0].min_passcode_length", "signals.churn_window"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if !strings.HasPrefix(err.Error(), "decision: ") {
		t.Errorf("error not prefixed: %v", err)
	}
	var zero Policy
	if err := zero.Validate(); err != nil {
		t.Errorf("zero policy: %v", err)
	}
	def := DefaultPolicy()
	if err := def.Validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
}

func TestNormalizeUser(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"User@Example.COM", "user@example.com"},
		{"  ann@example.com ", "ann@example.com"},
		{`CORP\Ann`, `corp\ann`},
		{"ann@example.com", "ann@example.com"},
		{"ÄNNE@Example.de", "änne@example.de"},
		{"", ""},
	} {
		if got := NormalizeUser(tc.in); got != tc.want {
			t.Errorf("NormalizeUser(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { NormalizeUser("ann@example.com") }); n != 0 {
		t.Errorf("NormalizeUser of a normal name allocates %v", n)
	}
}

// TestActionText round-trips the stable names.
func TestActionText(t *testing.T) {
	for a := Block; a < numActions; a++ {
		b, err := a.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Action
		if err := back.UnmarshalText(b); err != nil || back != a {
			t.Fatalf("%v: %s → %v, %v", a, b, back, err)
		}
	}
	if _, err := ParseAction("permit"); err == nil {
		t.Fatal("unknown action parsed")
	}
	if id, ok := RuleReason(Block, "x1").RuleID(); !ok || id != "x1" {
		t.Fatal("RuleID")
	}
}
