package decision

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Device is one registry record. A device is keyed by (User, DeviceID): two accounts on one phone
// are two devices. The first block is what the gateway learns from requests; the rest is what it is
// told by admins, the MDM and the device's provisioning exchange.
type Device struct {
	User     string `json:"user"`      // normalised (see NormalizeUser)
	DeviceID string `json:"device_id"` // EAS DeviceId, exact bytes, case-sensitive

	DeviceType  string     `json:"device_type"`
	UserAgent   string     `json:"user_agent"`
	FirstSeen   time.Time  `json:"first_seen"`
	LastSeen    time.Time  `json:"last_seen"`
	LastCommand string     `json:"last_command"`
	ClientAddr  string     `json:"client_addr"`
	Info        DeviceInfo `json:"info"`

	// Enrolled is set by Register/Enrol or by an MDM compliance report: the device is managed.
	Enrolled   bool       `json:"enrolled"`
	EnrolledAt time.Time  `json:"enrolled_at,omitzero"`
	Compliance Compliance `json:"compliance"`

	Override   Override  `json:"override"`
	OverrideBy string    `json:"override_by,omitempty"`
	OverrideAt time.Time `json:"override_at,omitzero"`

	Wipe         WipeState    `json:"wipe"`
	Provisioning Provisioning `json:"provisioning"`
	Suspicion    Suspicion    `json:"suspicion"`

	// Last decision taken for this device (updated when it changes, in the background).
	LastAction     Action    `json:"last_action"`
	LastReason     Reason    `json:"last_reason"`
	LastDecisionAt time.Time `json:"last_decision_at,omitzero"`
}

// DeviceInfo is the Settings DeviceInformation a device reports (MS-ASCMD 2.2.3.46).
type DeviceInfo struct {
	Model          string `json:"model,omitempty"`
	IMEI           string `json:"imei,omitempty"`
	FriendlyName   string `json:"friendly_name,omitempty"`
	OS             string `json:"os,omitempty"` // e.g. "iOS 17.1 21B74", "Android 14"
	OSLanguage     string `json:"os_language,omitempty"`
	PhoneNumber    string `json:"phone_number,omitempty"`
	MobileOperator string `json:"mobile_operator,omitempty"`
	UserAgent      string `json:"user_agent,omitempty"`
}

// Compliance holds the facts an MDM reports. A nil pointer means "not reported"; compliance rules
// treat unreported facts as failing (fail closed).
type Compliance struct {
	Platform       string    `json:"platform,omitempty"`   // "ios", "android", "windows", ...
	OSVersion      string    `json:"os_version,omitempty"` // dotted numeric, e.g. "17.4.1"
	PasscodeSet    *bool     `json:"passcode_set,omitempty"`
	PasscodeLength int       `json:"passcode_length,omitempty"` // 0: not reported
	PasscodeStrong *bool     `json:"passcode_strong,omitempty"` // alphanumeric/complex passcode
	Encrypted      *bool     `json:"encrypted,omitempty"`
	Jailbroken     *bool     `json:"jailbroken,omitempty"`
	CheckIn        time.Time `json:"checkin,omitzero"` // last MDM check-in
	Source         string    `json:"source,omitempty"` // which MDM reported
}

// Override is an admin's per-device decision, stronger than every rule except a wipe.
type Override uint8

const (
	OverrideNone Override = iota
	OverrideAllow
	OverrideBlock
)

var overrideNames = []string{"none", "allow", "block"}

func (o Override) String() string {
	if int(o) < len(overrideNames) {
		return overrideNames[o]
	}
	return fmt.Sprintf("override(%d)", uint8(o))
}

// MarshalText implements encoding.TextMarshaler.
func (o Override) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Override) UnmarshalText(b []byte) error {
	for i, n := range overrideNames {
		if strings.EqualFold(string(b), n) {
			*o = Override(i)
			return nil
		}
	}
	return fmt.Errorf("decision: unknown override %q", b)
}

// WipeKind says what a wipe erases.
type WipeKind uint8

const (
	WipeFull        WipeKind = iota + 1 // the whole device (RemoteWipe)
	WipeAccountOnly                     // only this account's data (AccountOnlyRemoteWipe, EAS 16.1)
)

func (k WipeKind) String() string {
	switch k {
	case WipeFull:
		return "full"
	case WipeAccountOnly:
		return "account_only"
	}
	return "none"
}

// MarshalText implements encoding.TextMarshaler.
func (k WipeKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *WipeKind) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "full":
		*k = WipeFull
	case "account_only", "account-only":
		*k = WipeAccountOnly
	case "none", "":
		*k = 0
	default:
		return fmt.Errorf("decision: unknown wipe kind %q", b)
	}
	return nil
}

// WipeStatus is where a wipe stands.
type WipeStatus uint8

const (
	WipeNone      WipeStatus = iota
	WipePending              // requested, not yet sent to the device
	WipeDelivered            // sent in a Provision response, not yet acknowledged
	WipeSucceeded            // the device acknowledged success
	WipeFailed               // the device acknowledged failure
)

var wipeStatusNames = []string{"none", "pending", "delivered", "succeeded", "failed"}

func (s WipeStatus) String() string {
	if int(s) < len(wipeStatusNames) {
		return wipeStatusNames[s]
	}
	return fmt.Sprintf("wipe_status(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s WipeStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *WipeStatus) UnmarshalText(b []byte) error {
	for i, n := range wipeStatusNames {
		if strings.EqualFold(string(b), n) {
			*s = WipeStatus(i)
			return nil
		}
	}
	return fmt.Errorf("decision: unknown wipe status %q", b)
}

// WipeState is a device's wipe lifecycle: none → pending → delivered → succeeded | failed.
type WipeState struct {
	Kind        WipeKind   `json:"kind"`
	Status      WipeStatus `json:"status"`
	RequestedBy string     `json:"requested_by,omitempty"`
	RequestedAt time.Time  `json:"requested_at,omitzero"`
	DeliveredAt time.Time  `json:"delivered_at,omitzero"`
	AckedAt     time.Time  `json:"acked_at,omitzero"`
}

// Provisioning tracks the MS-ASPROV policy key exchange.
type Provisioning struct {
	PolicyKeyIssued    uint32    `json:"policy_key_issued,omitempty"`
	IssuedAt           time.Time `json:"issued_at,omitzero"`
	PolicyKeyAcked     uint32    `json:"policy_key_acked,omitempty"`
	PolicyVersionAcked string    `json:"policy_version_acked,omitempty"`
	AckedAt            time.Time `json:"acked_at,omitzero"`
}

// Acknowledged reports whether the device acknowledged the policy key it was last issued.
func (p Provisioning) Acknowledged() bool {
	return p.PolicyKeyIssued != 0 && p.PolicyKeyAcked == p.PolicyKeyIssued
}

// Suspicion is set when a spoofing or churn signal quarantined the device; it lasts until
// Policy.Signals.QuarantineFor has passed or an admin clears it.
type Suspicion struct {
	Signal Signal    `json:"signal,omitempty"`
	At     time.Time `json:"at,omitzero"`
	Detail string    `json:"detail,omitempty"`
}

// Signal names a spoofing/churn signal.
type Signal string

const (
	SignalUserAgentChanged  Signal = "user_agent_changed"
	SignalDeviceTypeChanged Signal = "device_type_changed"
	SignalDeviceChurn       Signal = "device_churn"
)

// NormalizeUser returns the canonical registry form of an EAS or identity user name:
//
//   - surrounding white space is removed and the name is lower-cased (Unicode simple folding),
//     so "User@Example.COM" becomes "user@example.com";
//   - a down-level name "DOMAIN\User" keeps its domain: "domain\user". The domain is never
//     dropped, because two domains may each have a "user" and must not share device records;
//     a gateway that knows the UPN for a down-level name should map it before calling.
//
// Names that are already canonical are returned as is, without allocating.
func NormalizeUser(s string) string {
	if isNormalUser(s) {
		return s
	}
	return strings.ToLower(strings.TrimSpace(s))
}

// isNormalUser reports whether s is already in NormalizeUser form, without allocating.
func isNormalUser(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c-'A' < 26 {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.ToLower(r) != r {
			return false
		}
		i += n
	}
	first, last := s[0], s[len(s)-1]
	if first < utf8.RuneSelf && last < utf8.RuneSelf {
		return first > ' ' && last > ' '
	}
	r1, _ := utf8.DecodeRuneInString(s)
	r2, _ := utf8.DecodeLastRuneInString(s)
	return !unicode.IsSpace(r1) && !unicode.IsSpace(r2)
}
