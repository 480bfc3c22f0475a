package eas

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/easgate/easgate/eas/wbxml"
)

// TestPolicyElementsMatchCodePage checks the element table against MS-ASWBXML code page 14
// (the generated tables): every name resolves to its tag, and the first protocol version of
// each element is the one the code page records (MS-ASPROV "Protocol Versions").
func TestPolicyElementsMatchCodePage(t *testing.T) {
	if len(PolicyElements()) != 42 {
		t.Fatalf("%d elements, MS-ASPROV 2.2.2.28 defines 42 settings", len(PolicyElements()))
	}
	for _, el := range PolicyElements() {
		if el.Tag.Name() != el.Name {
			t.Errorf("%s: tag is %s", el.Name, el.Tag)
		}
		if since, _ := ParseVersion(el.Tag.Since()); since != el.Since {
			t.Errorf("%s: since %v, code page says %q", el.Name, el.Since, el.Tag.Since())
		}
		if el.Rule == RuleMaximum && el.Unlimited == nil {
			t.Errorf("%s: maximum rule without an unlimited test", el.Name)
		}
	}
}

func doc(t *testing.T, kv ...string) *PolicyDocument {
	t.Helper()
	d := &PolicyDocument{}
	for i := 0; i < len(kv); i += 2 {
		if err := d.Set(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func get(t *testing.T, d *PolicyDocument, name string) string {
	t.Helper()
	el, _ := LookupPolicyElement(name)
	s := d.slot(el.Tag)
	switch {
	case s.b != nil:
		if *s.b == nil {
			return "absent"
		}
		if **s.b {
			return "true"
		}
		return "false"
	case s.n != nil:
		if *s.n == nil {
			return "absent"
		}
		if **s.n == NoLimit {
			return "unlimited"
		}
		return strconv.FormatInt(**s.n, 10)
	}
	return "list"
}

// TestMergeStricter_MS_ASPROV_2_2_2 is the "stricter of" rule of every scalar element: for
// each, a pair of values (upstream, gateway) and the value the device must receive, plus
// the one-sided cases (an element only one side sets is kept).
func TestMergeStricter_MS_ASPROV_2_2_2(t *testing.T) {
	cases := []struct {
		name      string
		a, b, out string // "" means absent on that side
	}{
		// Requirements: true wins.
		{"DevicePasswordEnabled", "false", "true", "true"},
		{"DevicePasswordEnabled", "true", "false", "true"},
		{"AlphanumericDevicePasswordRequired", "false", "true", "true"},
		{"RequireStorageCardEncryption", "true", "false", "true"},
		{"PasswordRecoveryEnabled", "false", "true", "true"},
		{"RequireDeviceEncryption", "false", "true", "true"},
		{"RequireManualSyncWhenRoaming", "true", "false", "true"},
		{"RequireSignedSMIMEMessages", "false", "true", "true"},
		{"RequireEncryptedSMIMEMessages", "true", "false", "true"},
		// Permissions: false wins.
		{"AttachmentsEnabled", "true", "false", "false"},
		{"AllowSimpleDevicePassword", "false", "true", "false"},
		{"AllowStorageCard", "true", "false", "false"},
		{"AllowCamera", "true", "false", "false"},
		{"AllowUnsignedApplications", "false", "true", "false"},
		{"AllowUnsignedInstallationPackages", "true", "false", "false"},
		{"AllowWiFi", "true", "false", "false"},
		{"AllowTextMessaging", "false", "true", "false"},
		{"AllowPOPIMAPEmail", "true", "false", "false"},
		{"AllowIrDA", "true", "false", "false"},
		{"AllowDesktopSync", "false", "true", "false"},
		{"AllowHTMLEmail", "true", "false", "false"},
		{"AllowSMIMESoftCerts", "true", "false", "false"},
		{"AllowBrowser", "false", "true", "false"},
		{"AllowConsumerEmail", "true", "false", "false"},
		{"AllowRemoteDesktop", "true", "false", "false"},
		{"AllowInternetSharing", "false", "true", "false"},
		// Minimums: larger wins; empty is no minimum.
		{"MinDevicePasswordLength", "4", "8", "8"},
		{"MinDevicePasswordLength", "unlimited", "6", "6"},
		{"DevicePasswordHistory", "5", "2", "5"},
		{"MinDevicePasswordComplexCharacters", "2", "3", "3"},
		// Maximums: smaller limit wins; each element's "unlimited" loses.
		{"MaxInactivityTimeDeviceLock", "900", "300", "300"},
		{"MaxInactivityTimeDeviceLock", "9999", "600", "600"},
		{"MaxInactivityTimeDeviceLock", "unlimited", "600", "600"},
		{"MaxDevicePasswordFailedAttempts", "10", "8", "8"},
		{"MaxDevicePasswordFailedAttempts", "unlimited", "8", "8"},
		{"MaxAttachmentSize", "1048576", "unlimited", "1048576"},
		{"MaxAttachmentSize", "1048576", "0", "0"},
		{"DevicePasswordExpiration", "0", "90", "90"},
		{"DevicePasswordExpiration", "30", "90", "30"},
		{"MaxCalendarAgeFilter", "0", "5", "5"},
		{"MaxCalendarAgeFilter", "7", "4", "4"},
		{"MaxEmailAgeFilter", "0", "3", "3"},
		{"MaxEmailAgeFilter", "5", "2", "2"},
		{"MaxEmailBodyTruncationSize", "-1", "100", "100"},
		{"MaxEmailBodyTruncationSize", "0", "100", "0"},
		{"MaxEmailHTMLBodyTruncationSize", "unlimited", "50", "50"},
		{"MaxEmailHTMLBodyTruncationSize", "200", "50", "50"},
		// Levels: lower wins.
		{"AllowBluetooth", "2", "1", "1"},
		{"AllowBluetooth", "0", "2", "0"},
		{"AllowSMIMEEncryptionAlgorithmNegotiation", "2", "1", "1"},
		{"RequireSignedSMIMEAlgorithm", "1", "0", "0"},
		// Strongest encryption algorithm: TripleDES > RC2-128 > RC2-64 > DES > RC2-40.
		{"RequireEncryptionSMIMEAlgorithm", "1", "2", "2"},
		{"RequireEncryptionSMIMEAlgorithm", "4", "3", "3"},
		{"RequireEncryptionSMIMEAlgorithm", "0", "2", "0"},
		{"RequireEncryptionSMIMEAlgorithm", "4", "1", "1"},
		// One side only: kept as is, even when it is the weaker value.
		{"AllowCamera", "true", "", "true"},
		{"MinDevicePasswordLength", "", "4", "4"},
		{"MaxInactivityTimeDeviceLock", "9999", "", "9999"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.name] = true
		a, b := &PolicyDocument{}, &PolicyDocument{}
		if c.a != "" {
			a = doc(t, c.name, c.a)
		}
		if c.b != "" {
			b = doc(t, c.name, c.b)
		}
		want := c.out
		if want == "-1" {
			want = "unlimited"
		}
		if got := get(t, MergeStricter(a, b), c.name); got != want {
			t.Errorf("%s: stricter of %q and %q = %s, want %s", c.name, c.a, c.b, got, want)
		}
		// The rule is symmetric.
		if got := get(t, MergeStricter(b, a), c.name); got != want {
			t.Errorf("%s: stricter of %q and %q (swapped) = %s, want %s", c.name, c.b, c.a, got, want)
		}
	}
	for _, el := range PolicyElements() {
		if el.Kind != KindList && !seen[el.Name] {
			t.Errorf("no stricter-of case for %s", el.Name)
		}
	}
}

// TestMergeStricter_ApplicationLists: in-ROM applications that must not run are the union
// of both lists; approved in-memory applications are those both approve.
func TestMergeStricter_ApplicationLists(t *testing.T) {
	a, b := &PolicyDocument{}, &PolicyDocument{}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.SetList("UnapprovedInROMApplicationList", []string{"Games", "Browser"}))
	must(b.SetList("UnapprovedInROMApplicationList", []string{"Browser", "Camera"}))
	must(a.SetList("ApprovedApplicationList", []string{"h1", "h2", "h3"}))
	must(b.SetList("ApprovedApplicationList", []string{"h3", "h2", "h9"}))
	m := MergeStricter(a, b)
	if !reflect.DeepEqual(m.UnapprovedInROMApplicationList, []string{"Games", "Browser", "Camera"}) {
		t.Errorf("unapproved: %v", m.UnapprovedInROMApplicationList)
	}
	if !reflect.DeepEqual(m.ApprovedApplicationList, []string{"h2", "h3"}) {
		t.Errorf("approved: %v", m.ApprovedApplicationList)
	}
	// An approved list on one side only restricts; an empty intersection is an empty
	// (present) list: nothing may run, never "no restriction".
	must(b.SetList("ApprovedApplicationList", []string{"h9"}))
	if m := MergeStricter(a, b); m.ApprovedApplicationList == nil || len(m.ApprovedApplicationList) != 0 {
		t.Errorf("disjoint approved lists: %#v", m.ApprovedApplicationList)
	}
	if m := MergeStricter(a, &PolicyDocument{}); !reflect.DeepEqual(m.ApprovedApplicationList, []string{"h1", "h2", "h3"}) {
		t.Errorf("one-sided approved list: %v", m.ApprovedApplicationList)
	}
	// The merge shares nothing with its inputs.
	m = MergeStricter(a, nil)
	m.UnapprovedInROMApplicationList[0] = "changed"
	if a.UnapprovedInROMApplicationList[0] != "Games" {
		t.Error("merge aliases its input")
	}
}

// TestPolicyForVersion_NoLoopFor12_0: a 12.0 client is never sent a 12.1 element, so the
// document it acknowledges is exactly what the server holds for 12.0.
func TestPolicyForVersion_NoLoopFor12_0(t *testing.T) {
	d := doc(t, "DevicePasswordEnabled", "true", "MinDevicePasswordLength", "6", "AllowCamera", "false",
		"RequireDeviceEncryption", "true", "AllowBluetooth", "1")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.SetList("ApprovedApplicationList", []string{"h"}))
	v120 := d.ForVersion(V120)
	for _, n := range []string{"AllowCamera", "RequireDeviceEncryption", "AllowBluetooth"} {
		if get(t, v120, n) != "absent" {
			t.Errorf("12.0 document carries %s", n)
		}
	}
	if v120.ApprovedApplicationList != nil || get(t, v120, "MinDevicePasswordLength") != "6" {
		t.Errorf("12.0 document: %+v", v120)
	}
	b, err := v120.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := wbxml.Parse(b, wbxml.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	parsed.Root.Walk(func(e *wbxml.Element) bool {
		if s := e.Tag.Since(); s == "12.1" {
			t.Errorf("12.0 encoding carries %s", e.Tag)
		}
		return true
	})
	for _, v := range []Version{V121, V140, V141, V160, V161} {
		x, _ := d.ForVersion(v).Encode(nil)
		y, _ := d.Encode(nil)
		if !bytes.Equal(x, y) {
			t.Errorf("%v drops elements it defines", v)
		}
	}
}

func TestPolicySetValidation(t *testing.T) {
	d := &PolicyDocument{}
	bad := [][2]string{
		{"MinDevicePasswordLength", "17"}, {"MinDevicePasswordLength", "0"},
		{"MaxDevicePasswordFailedAttempts", "3"}, {"MaxDevicePasswordFailedAttempts", "17"},
		{"MinDevicePasswordComplexCharacters", "5"}, {"AllowBluetooth", "3"},
		{"MaxCalendarAgeFilter", "2"}, {"MaxEmailAgeFilter", "6"},
		{"RequireEncryptionSMIMEAlgorithm", "5"}, {"DevicePasswordHistory", "unlimited"},
		{"AllowCamera", "maybe"}, {"NoSuchElement", "1"}, {"MaxAttachmentSize", "x"},
	}
	for _, c := range bad {
		if err := d.Set(c[0], c[1]); !errors.Is(err, ErrPolicySetting) {
			t.Errorf("Set(%s, %s) = %v", c[0], c[1], err)
		}
	}
	if err := d.SetList("AllowCamera", []string{"x"}); err == nil {
		t.Error("SetList on a boolean")
	}
	good := &PolicyDocument{}
	for _, c := range [][2]string{{"MinDevicePasswordLength", "16"}, {"MaxDevicePasswordFailedAttempts", "4"},
		{"MaxInactivityTimeDeviceLock", "unlimited"}, {"MaxCalendarAgeFilter", "0"}, {"MaxEmailBodyTruncationSize", "-1"}} {
		if err := good.Set(c[0], c[1]); err != nil {
			t.Errorf("Set(%s, %s): %v", c[0], c[1], err)
		}
	}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
	good.MinDevicePasswordLength = Ptr(int64(40))
	if err := good.Validate(); !errors.Is(err, ErrPolicySetting) {
		t.Errorf("Validate = %v", err)
	}
}

// TestMergedPolicyRoundTrips: a merged document encodes into a Provision response that
// parses back to the same settings.
func TestMergedPolicyRoundTrips(t *testing.T) {
	up := doc(t, "DevicePasswordEnabled", "true", "MaxInactivityTimeDeviceLock", "900", "MaxAttachmentSize", "unlimited")
	gw := doc(t, "MinDevicePasswordLength", "8", "MaxInactivityTimeDeviceLock", "300", "AllowCamera", "false")
	m := MergeStricter(up, gw)
	p := &Provision{Status: ProvisionSuccess, Policies: []*Policy{{PolicyType: PolicyTypeWBXML, Status: PolicySuccess, PolicyKey: "42", Data: m}}}
	b, err := p.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := wbxml.Parse(b, wbxml.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseProvision(d)
	if err != nil {
		t.Fatal(err)
	}
	got := back.Policies[0].Data
	for _, n := range []string{"DevicePasswordEnabled", "MaxInactivityTimeDeviceLock", "MaxAttachmentSize", "MinDevicePasswordLength", "AllowCamera"} {
		if get(t, got, n) != get(t, m, n) {
			t.Errorf("%s: %s after round trip, %s before", n, get(t, got, n), get(t, m, n))
		}
	}
	if get(t, got, "MaxInactivityTimeDeviceLock") != "300" || get(t, got, "MaxAttachmentSize") != "unlimited" {
		t.Errorf("merged: %+v", got)
	}
}
