package eas

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/easgate/easgate/eas/wbxml"
)

// This file combines EAS policy documents (MS-ASPROV 2.2.2.28 EASProvisionDoc): the
// "stricter of" two documents, element by element, and the subset of a document that a
// protocol version defines. It is what a gateway in front of an EAS server uses to tighten
// the upstream's policy with its own, and what keeps a 12.x client from being sent settings
// it cannot acknowledge (which would make it provision again and again).

// PolicyRule says how MergeStricter combines one element of two policy documents. An element
// absent from one document is taken from the other unchanged (absent means "this side sets
// nothing"); the rules below apply when both documents carry the element.
type PolicyRule uint8

const (
	// RuleRequire: a boolean that requires something of the device ("Require*",
	// DevicePasswordEnabled, AlphanumericDevicePasswordRequired, PasswordRecoveryEnabled):
	// true wins.
	RuleRequire PolicyRule = iota + 1
	// RuleAllow: a boolean that permits something ("Allow*", AttachmentsEnabled): false wins.
	RuleAllow
	// RuleMinimum: a lower bound (MinDevicePasswordLength, DevicePasswordHistory,
	// MinDevicePasswordComplexCharacters): the larger value wins; empty means "no minimum".
	RuleMinimum
	// RuleMaximum: an upper bound or a timeout: the smaller limited value wins. Each element
	// has its own "unlimited" values (PolicyElement.Unlimited), which lose to any limit.
	RuleMaximum
	// RuleLevel: an ordered permission level where lower is stricter (AllowBluetooth 0 off,
	// 1 hands-free only, 2 on; AllowSMIMEEncryptionAlgorithmNegotiation 0 none, 1 strong
	// only, 2 any; RequireSignedSMIMEAlgorithm 0 SHA-1, 1 MD5): the smaller value wins.
	RuleLevel
	// RuleStrongest: RequireEncryptionSMIMEAlgorithm, whose codes are not ordered by
	// strength (0 TripleDES, 1 DES, 2 RC2-128, 3 RC2-64, 4 RC2-40): the stronger algorithm
	// wins, by the order TripleDES > RC2-128 > RC2-64 > DES > RC2-40.
	RuleStrongest
	// RuleUnion: UnapprovedInROMApplicationList (in-ROM applications that must not run):
	// both lists are forbidden, so the union wins.
	RuleUnion
	// RuleIntersect: ApprovedApplicationList (when present, only the listed in-memory
	// applications may run): only what both allow may run, so the intersection wins.
	RuleIntersect
)

var ruleNames = [...]string{"", "require (true wins)", "allow (false wins)", "minimum (larger wins)",
	"maximum (smaller limit wins)", "level (lower wins)", "strongest algorithm wins", "union", "intersection"}

func (r PolicyRule) String() string {
	if int(r) < len(ruleNames) && r != 0 {
		return ruleNames[r]
	}
	return "rule(" + strconv.Itoa(int(r)) + ")"
}

// PolicyKind is the value type of a policy element.
type PolicyKind uint8

const (
	KindBool PolicyKind = iota + 1 // 0 or 1
	KindInt                        // an integer; NoLimit is the empty element
	KindList                       // a list of strings (ApplicationName or Hash children)
)

// PolicyElement describes one setting of the EASProvisionDoc element as MS-ASPROV defines it.
type PolicyElement struct {
	Name string // element name, e.g. "MaxInactivityTimeDeviceLock"
	Tag  wbxml.Tag
	Kind PolicyKind
	Rule PolicyRule
	// Since is the first protocol version that defines the element (12.0 or 12.1; all of
	// them exist through 16.1).
	Since Version
	// Min and Max bound an integer value (inclusive); Empty says whether the empty element
	// (NoLimit) is valid.
	Min, Max int64
	Empty    bool
	// Unlimited reports whether an integer value means "no limit" for RuleMaximum
	// (e.g. 0 for DevicePasswordExpiration, >= 9999 for MaxInactivityTimeDeviceLock).
	Unlimited func(int64) bool
}

func isNoLimit(v int64) bool { return v == NoLimit }

// policyElements is MS-ASPROV 2.2.2 for the EASProvisionDoc children, in code page order.
// Ranges: MS-ASPROV 2.2.2.2 (AllowBluetooth), .13, .26, .27, .30–.38, .50, .51.
var policyElements = []PolicyElement{
	{Name: "DevicePasswordEnabled", Tag: wbxml.ProvisionDevicePasswordEnabled, Kind: KindBool, Rule: RuleRequire, Since: V120},
	{Name: "AlphanumericDevicePasswordRequired", Tag: wbxml.ProvisionAlphanumericDevicePasswordRequired, Kind: KindBool, Rule: RuleRequire, Since: V120},
	{Name: "RequireStorageCardEncryption", Tag: wbxml.ProvisionRequireStorageCardEncryption, Kind: KindBool, Rule: RuleRequire, Since: V120},
	// PasswordRecoveryEnabled asks the device to escrow a recovery password with the
	// server: a management requirement, so requiring it is the stricter choice.
	{Name: "PasswordRecoveryEnabled", Tag: wbxml.ProvisionPasswordRecoveryEnabled, Kind: KindBool, Rule: RuleRequire, Since: V120},
	{Name: "AttachmentsEnabled", Tag: wbxml.ProvisionAttachmentsEnabled, Kind: KindBool, Rule: RuleAllow, Since: V120},
	// 1–16; empty or 1 means no minimum (2.2.2.38).
	{Name: "MinDevicePasswordLength", Tag: wbxml.ProvisionMinDevicePasswordLength, Kind: KindInt, Rule: RuleMinimum, Since: V120, Min: 1, Max: 16, Empty: true},
	// Seconds; >= 9999 or empty means no limit (2.2.2.36).
	{Name: "MaxInactivityTimeDeviceLock", Tag: wbxml.ProvisionMaxInactivityTimeDeviceLock, Kind: KindInt, Rule: RuleMaximum, Since: V120, Min: 0, Max: 1<<32 - 1, Empty: true,
		Unlimited: func(v int64) bool { return v == NoLimit || v >= 9999 }},
	// 4–16; empty means no maximum (2.2.2.32).
	{Name: "MaxDevicePasswordFailedAttempts", Tag: wbxml.ProvisionMaxDevicePasswordFailedAttempts, Kind: KindInt, Rule: RuleMaximum, Since: V120, Min: 4, Max: 16, Empty: true, Unlimited: isNoLimit},
	// Bytes; empty means no limit (2.2.2.30).
	{Name: "MaxAttachmentSize", Tag: wbxml.ProvisionMaxAttachmentSize, Kind: KindInt, Rule: RuleMaximum, Since: V120, Min: 0, Max: 1<<32 - 1, Empty: true, Unlimited: isNoLimit},
	{Name: "AllowSimpleDevicePassword", Tag: wbxml.ProvisionAllowSimpleDevicePassword, Kind: KindBool, Rule: RuleAllow, Since: V120},
	// Days; 0 or empty means passwords never expire (2.2.2.26).
	{Name: "DevicePasswordExpiration", Tag: wbxml.ProvisionDevicePasswordExpiration, Kind: KindInt, Rule: RuleMaximum, Since: V120, Min: 0, Max: 1<<32 - 1, Empty: true,
		Unlimited: func(v int64) bool { return v == NoLimit || v == 0 }},
	// 0 means no history (2.2.2.27).
	{Name: "DevicePasswordHistory", Tag: wbxml.ProvisionDevicePasswordHistory, Kind: KindInt, Rule: RuleMinimum, Since: V120, Min: 0, Max: 1<<32 - 1},
	{Name: "AllowStorageCard", Tag: wbxml.ProvisionAllowStorageCard, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "AllowCamera", Tag: wbxml.ProvisionAllowCamera, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "RequireDeviceEncryption", Tag: wbxml.ProvisionRequireDeviceEncryption, Kind: KindBool, Rule: RuleRequire, Since: V121},
	{Name: "AllowUnsignedApplications", Tag: wbxml.ProvisionAllowUnsignedApplications, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "AllowUnsignedInstallationPackages", Tag: wbxml.ProvisionAllowUnsignedInstallationPackages, Kind: KindBool, Rule: RuleAllow, Since: V121},
	// 1–4 character groups (2.2.2.37).
	{Name: "MinDevicePasswordComplexCharacters", Tag: wbxml.ProvisionMinDevicePasswordComplexCharacters, Kind: KindInt, Rule: RuleMinimum, Since: V121, Min: 1, Max: 4},
	{Name: "AllowWiFi", Tag: wbxml.ProvisionAllowWiFi, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "AllowTextMessaging", Tag: wbxml.ProvisionAllowTextMessaging, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "AllowPOPIMAPEmail", Tag: wbxml.ProvisionAllowPOPIMAPEmail, Kind: KindBool, Rule: RuleAllow, Since: V121},
	// 0 disable, 1 hands-free only, 2 allow (2.2.2.2).
	{Name: "AllowBluetooth", Tag: wbxml.ProvisionAllowBluetooth, Kind: KindInt, Rule: RuleLevel, Since: V121, Min: 0, Max: 2},
	{Name: "AllowIrDA", Tag: wbxml.ProvisionAllowIrDA, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "RequireManualSyncWhenRoaming", Tag: wbxml.ProvisionRequireManualSyncWhenRoaming, Kind: KindBool, Rule: RuleRequire, Since: V121},
	{Name: "AllowDesktopSync", Tag: wbxml.ProvisionAllowDesktopSync, Kind: KindBool, Rule: RuleAllow, Since: V121},
	// 0 all, 4 two weeks, 5 one month, 6 three months, 7 six months (2.2.2.31).
	{Name: "MaxCalendarAgeFilter", Tag: wbxml.ProvisionMaxCalendarAgeFilter, Kind: KindInt, Rule: RuleMaximum, Since: V121, Min: 0, Max: 7,
		Unlimited: func(v int64) bool { return v == NoLimit || v == 0 }},
	{Name: "AllowHTMLEmail", Tag: wbxml.ProvisionAllowHTMLEmail, Kind: KindBool, Rule: RuleAllow, Since: V121},
	// 0 all, 1 one day, 2 three days, 3 one week, 4 two weeks, 5 one month (2.2.2.33).
	{Name: "MaxEmailAgeFilter", Tag: wbxml.ProvisionMaxEmailAgeFilter, Kind: KindInt, Rule: RuleMaximum, Since: V121, Min: 0, Max: 5,
		Unlimited: func(v int64) bool { return v == NoLimit || v == 0 }},
	// -1 no truncation, 0 headers only, >0 size (2.2.2.34, 2.2.2.35).
	{Name: "MaxEmailBodyTruncationSize", Tag: wbxml.ProvisionMaxEmailBodyTruncationSize, Kind: KindInt, Rule: RuleMaximum, Since: V121, Min: -1, Max: 1<<31 - 1, Empty: true, Unlimited: isNoLimit},
	{Name: "MaxEmailHTMLBodyTruncationSize", Tag: wbxml.ProvisionMaxEmailHTMLBodyTruncationSize, Kind: KindInt, Rule: RuleMaximum, Since: V121, Min: -1, Max: 1<<31 - 1, Empty: true, Unlimited: isNoLimit},
	{Name: "RequireSignedSMIMEMessages", Tag: wbxml.ProvisionRequireSignedSMIMEMessages, Kind: KindBool, Rule: RuleRequire, Since: V121},
	{Name: "RequireEncryptedSMIMEMessages", Tag: wbxml.ProvisionRequireEncryptedSMIMEMessages, Kind: KindBool, Rule: RuleRequire, Since: V121},
	// 0 SHA-1, 1 MD5 (2.2.2.50).
	{Name: "RequireSignedSMIMEAlgorithm", Tag: wbxml.ProvisionRequireSignedSMIMEAlgorithm, Kind: KindInt, Rule: RuleLevel, Since: V121, Min: 0, Max: 1},
	// 0 TripleDES, 1 DES, 2 RC2 128, 3 RC2 64, 4 RC2 40 (2.2.2.49).
	{Name: "RequireEncryptionSMIMEAlgorithm", Tag: wbxml.ProvisionRequireEncryptionSMIMEAlgorithm, Kind: KindInt, Rule: RuleStrongest, Since: V121, Min: 0, Max: 4},
	// 0 do not negotiate, 1 strong algorithm, 2 any algorithm (2.2.2.13).
	{Name: "AllowSMIMEEncryptionAlgorithmNegotiation", Tag: wbxml.ProvisionAllowSMIMEEncryptionAlgorithmNegotiation, Kind: KindInt, Rule: RuleLevel, Since: V121, Min: 0, Max: 2},
	{Name: "AllowSMIMESoftCerts", Tag: wbxml.ProvisionAllowSMIMESoftCerts, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "AllowBrowser", Tag: wbxml.ProvisionAllowBrowser, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "AllowConsumerEmail", Tag: wbxml.ProvisionAllowConsumerEmail, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "AllowRemoteDesktop", Tag: wbxml.ProvisionAllowRemoteDesktop, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "AllowInternetSharing", Tag: wbxml.ProvisionAllowInternetSharing, Kind: KindBool, Rule: RuleAllow, Since: V121},
	{Name: "UnapprovedInROMApplicationList", Tag: wbxml.ProvisionUnapprovedInROMApplicationList, Kind: KindList, Rule: RuleUnion, Since: V121},
	{Name: "ApprovedApplicationList", Tag: wbxml.ProvisionApprovedApplicationList, Kind: KindList, Rule: RuleIntersect, Since: V121},
}

// PolicyElements returns the description of every EASProvisionDoc setting, in code page
// order. The slice is shared; do not modify it.
func PolicyElements() []PolicyElement { return policyElements }

// LookupPolicyElement returns the element named name (exact MS-ASPROV spelling).
func LookupPolicyElement(name string) (PolicyElement, bool) {
	for _, e := range policyElements {
		if e.Name == name {
			return e, true
		}
	}
	return PolicyElement{}, false
}

// ErrPolicySetting is the sentinel of invalid policy settings (Set, SetList, Validate).
var ErrPolicySetting = errors.New("eas: invalid policy setting")

// slot is where one element lives in a PolicyDocument.
type slot struct {
	b    **bool
	n    **int64
	list *[]string
}

func (d *PolicyDocument) slot(t wbxml.Tag) slot {
	switch t {
	case wbxml.ProvisionUnapprovedInROMApplicationList:
		return slot{list: &d.UnapprovedInROMApplicationList}
	case wbxml.ProvisionApprovedApplicationList:
		return slot{list: &d.ApprovedApplicationList}
	}
	for _, f := range d.fields() {
		if f.tag == t {
			return slot{b: f.b, n: f.n}
		}
	}
	return slot{}
}

// Set sets the element name from its text form: "true"/"false" or "1"/"0" for booleans, a
// decimal integer for integers, and "" or "unlimited" for the empty element (NoLimit) where
// the element allows it. The value is checked against the element's range.
func (d *PolicyDocument) Set(name, value string) error {
	el, ok := LookupPolicyElement(name)
	if !ok {
		return fmt.Errorf("%w: unknown element %q", ErrPolicySetting, name)
	}
	s := d.slot(el.Tag)
	switch el.Kind {
	case KindBool:
		switch strings.ToLower(value) {
		case "true", "1":
			*s.b = Ptr(true)
		case "false", "0":
			*s.b = Ptr(false)
		default:
			return fmt.Errorf("%w: %s must be true or false, got %q", ErrPolicySetting, name, value)
		}
	case KindInt:
		var v int64
		if value == "" || strings.EqualFold(value, "unlimited") {
			v = NoLimit
		} else {
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: %s must be an integer, got %q", ErrPolicySetting, name, value)
			}
			v = n
		}
		if err := el.check(v); err != nil {
			return err
		}
		*s.n = Ptr(v)
	default:
		return fmt.Errorf("%w: %s is a list", ErrPolicySetting, name)
	}
	return nil
}

// SetList sets a list element (UnapprovedInROMApplicationList, ApprovedApplicationList). A
// nil vals removes the element; an empty non-nil slice is an empty list.
func (d *PolicyDocument) SetList(name string, vals []string) error {
	el, ok := LookupPolicyElement(name)
	if !ok || el.Kind != KindList {
		return fmt.Errorf("%w: %q is not a list element", ErrPolicySetting, name)
	}
	for _, v := range vals {
		if v == "" {
			return fmt.Errorf("%w: %s has an empty entry", ErrPolicySetting, name)
		}
	}
	if vals != nil {
		vals = append([]string{}, vals...)
	}
	*d.slot(el.Tag).list = vals
	return nil
}

func (el PolicyElement) check(v int64) error {
	if v == NoLimit && el.Empty {
		return nil
	}
	if v < el.Min || v > el.Max || (el.Name == "MaxCalendarAgeFilter" && v > 0 && v < 4) {
		return fmt.Errorf("%w: %s = %d is out of range (MS-ASPROV)", ErrPolicySetting, el.Name, v)
	}
	return nil
}

// Validate checks every integer element against its MS-ASPROV range and returns all
// problems at once (errors.Join), or nil.
func (d *PolicyDocument) Validate() error {
	var errs []error
	for _, el := range policyElements {
		if el.Kind != KindInt {
			continue
		}
		if p := *d.slot(el.Tag).n; p != nil {
			if err := el.check(*p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Clone returns a deep copy of d that shares nothing with it (nor with a parsed tree: the
// copy encodes from scratch). A nil d gives nil.
func (d *PolicyDocument) Clone() *PolicyDocument {
	if d == nil {
		return nil
	}
	c := &PolicyDocument{}
	for _, el := range policyElements {
		src, dst := d.slot(el.Tag), c.slot(el.Tag)
		switch {
		case src.b != nil && *src.b != nil:
			*dst.b = Ptr(**src.b)
		case src.n != nil && *src.n != nil:
			*dst.n = Ptr(**src.n)
		case src.list != nil && *src.list != nil:
			*dst.list = append([]string{}, (*src.list)...)
		}
	}
	return c
}

// ForVersion returns a copy of d without the elements protocol version v does not define
// (MS-ASPROV "Protocol Versions" of each element: 12.0 lacks every 12.1 addition). A
// client must never be sent a setting it cannot acknowledge: it would report partial
// success or provision again and again.
func (d *PolicyDocument) ForVersion(v Version) *PolicyDocument {
	c := d.Clone()
	if c == nil {
		return nil
	}
	for _, el := range policyElements {
		if v >= el.Since {
			continue
		}
		s := c.slot(el.Tag)
		switch {
		case s.b != nil:
			*s.b = nil
		case s.n != nil:
			*s.n = nil
		default:
			*s.list = nil
		}
	}
	return c
}

// Empty reports whether d sets nothing.
func (d *PolicyDocument) Empty() bool {
	if d == nil {
		return true
	}
	for _, el := range policyElements {
		s := d.slot(el.Tag)
		if (s.b != nil && *s.b != nil) || (s.n != nil && *s.n != nil) || (s.list != nil && *s.list != nil) {
			return false
		}
	}
	return true
}

// MergeStricter returns a new document that, element by element, carries the stricter of a
// and b by the element's PolicyRule. An element only one side sets is taken from that side;
// either document may be nil. The result shares nothing with a or b.
func MergeStricter(a, b *PolicyDocument) *PolicyDocument {
	if a == nil {
		if b == nil {
			return &PolicyDocument{}
		}
		return b.Clone()
	}
	if b == nil {
		return a.Clone()
	}
	out := &PolicyDocument{}
	for _, el := range policyElements {
		sa, sb, so := a.slot(el.Tag), b.slot(el.Tag), out.slot(el.Tag)
		switch el.Kind {
		case KindBool:
			x, y := *sa.b, *sb.b
			switch {
			case x == nil && y == nil:
			case x == nil:
				*so.b = Ptr(*y)
			case y == nil:
				*so.b = Ptr(*x)
			case el.Rule == RuleRequire:
				*so.b = Ptr(*x || *y)
			default:
				*so.b = Ptr(*x && *y)
			}
		case KindInt:
			x, y := *sa.n, *sb.n
			switch {
			case x == nil && y == nil:
			case x == nil:
				*so.n = Ptr(*y)
			case y == nil:
				*so.n = Ptr(*x)
			default:
				*so.n = Ptr(stricterInt(el, *x, *y))
			}
		case KindList:
			x, y := *sa.list, *sb.list
			switch {
			case x == nil && y == nil:
			case x == nil:
				*so.list = append([]string{}, y...)
			case y == nil:
				*so.list = append([]string{}, x...)
			case el.Rule == RuleUnion:
				*so.list = unionStrings(x, y)
			default:
				*so.list = intersectStrings(x, y)
			}
		}
	}
	return out
}

// smimeStrength orders RequireEncryptionSMIMEAlgorithm codes, strongest first.
var smimeStrength = map[int64]int{0: 0, 2: 1, 3: 2, 1: 3, 4: 4}

func stricterInt(el PolicyElement, x, y int64) int64 {
	switch el.Rule {
	case RuleMinimum:
		// NoLimit (empty) is "no minimum": any value beats it.
		return max(x, y)
	case RuleMaximum:
		ux, uy := el.Unlimited(x), el.Unlimited(y)
		switch {
		case ux && uy:
			return x
		case ux:
			return y
		case uy:
			return x
		}
		return min(x, y)
	case RuleStrongest:
		rx, okx := smimeStrength[x]
		ry, oky := smimeStrength[y]
		switch {
		case !oky || (okx && rx <= ry):
			return x
		default:
			return y
		}
	default: // RuleLevel
		return min(x, y)
	}
}

// unionStrings returns the values of a, then those of b not in a. Comparison is exact:
// MS-ASPROV gives application names no case rule.
func unionStrings(a, b []string) []string {
	out := append([]string{}, a...)
	for _, v := range b {
		if !containsString(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// intersectStrings returns the values of a that are also in b, in a's order. Hash values
// (base64 SHA-1) compare exactly.
func intersectStrings(a, b []string) []string {
	out := []string{}
	for _, v := range a {
		if containsString(b, v) && !containsString(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Encode returns the EASProvisionDoc element of d as WBXML bytes appended to dst: a stable
// encoding (code page order) suitable for fingerprinting two documents for equality.
func (d *PolicyDocument) Encode(dst []byte) ([]byte, error) {
	c := d.Clone()
	if c == nil {
		c = &PolicyDocument{}
	}
	return wbxml.NewDocument(c.element()).Encode(dst)
}
