package decision

import (
	"fmt"
	"strings"
)

// Action is what the gateway does with a request. The zero value is Block, so a Decision that was
// never filled in denies.
type Action uint8

const (
	// Block refuses the request (the gateway answers with an EAS access-denied status).
	Block Action = iota
	// Allow forwards the request to the mail backend.
	Allow
	// Quarantine keeps the device away from company mail; the gateway answers it locally with the
	// remediation message (see Decision.Failures for what to fix).
	Quarantine
	// Wipe answers the device with a full remote wipe (MS-ASPROV RemoteWipe).
	Wipe
	// AccountOnlyWipe answers the device with an account-only remote wipe (EAS 16.1
	// AccountOnlyRemoteWipe).
	AccountOnlyWipe
	numActions
)

var actionNames = [numActions]string{"block", "allow", "quarantine", "wipe", "account_only_wipe"}

// String returns the stable lower-case name used in configuration, JSON and the audit log.
func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ParseAction parses the names String returns.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if strings.EqualFold(s, n) {
			return Action(i), nil
		}
	}
	return Block, fmt.Errorf("decision: unknown action %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) {
	if a >= numActions {
		return nil, fmt.Errorf("decision: invalid action %d", uint8(a))
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Reason is a stable, machine-readable code saying why a Decision was taken. Codes never change
// meaning; dashboards, the audit log and the quarantine responder key on them. Rule reasons carry
// the rule's ID after a colon ("rule_block:legacy-android").
type Reason string

// Reason codes. Each is produced by exactly one step of the evaluation order documented on
// Engine.Decide.
const (
	ReasonAllowed          Reason = "allowed"             // enrolled (or policy-acknowledged) and compliant
	ReasonAdminAllow       Reason = "admin_allow"         // per-device admin override: allow
	ReasonAdminBlock       Reason = "admin_block"         // per-device admin override: block
	ReasonExempt           Reason = "exempt"              // user is in an exempt group
	ReasonNotTargeted      Reason = "not_targeted"        // policy targets groups the user is not in
	ReasonUnknownDevice    Reason = "unknown_device"      // not enrolled; Policy.UnknownDevice applied
	ReasonUnmanageable     Reason = "unmanageable_device" // platform cannot enrol; Policy.Unmanageable applied
	ReasonNotCompliant     Reason = "not_compliant"       // compliance rules failed; see Failures
	ReasonMaxDevices       Reason = "max_devices"         // a new device beyond Policy.MaxDevicesPerUser
	ReasonSuspicious       Reason = "suspicious_device"   // spoofing/churn signal quarantined it
	ReasonWipePending      Reason = "wipe_pending"        // a wipe is requested or delivered, not yet acknowledged
	ReasonWiped            Reason = "wiped"               // the device acknowledged a successful wipe
	ReasonWipeFailed       Reason = "wipe_failed"         // the device reported that the wipe failed
	ReasonStoreUnavailable Reason = "store_unavailable"   // registry unreachable and no usable last decision
	ReasonInvalidRequest   Reason = "invalid_request"     // empty user or device ID
)

// Prefixes of rule reasons; the full reason is prefix + Rule.ID.
const (
	ReasonRuleAllowPrefix      = "rule_allow:"
	ReasonRuleBlockPrefix      = "rule_block:"
	ReasonRuleQuarantinePrefix = "rule_quarantine:"
)

// RuleReason returns the reason for a device access rule with the given ID and action.
func RuleReason(a Action, id string) Reason {
	switch a {
	case Allow:
		return Reason(ReasonRuleAllowPrefix + id)
	case Quarantine:
		return Reason(ReasonRuleQuarantinePrefix + id)
	default:
		return Reason(ReasonRuleBlockPrefix + id)
	}
}

// RuleID returns the rule ID of a rule reason and whether r is one.
func (r Reason) RuleID() (string, bool) {
	for _, p := range []string{ReasonRuleAllowPrefix, ReasonRuleBlockPrefix, ReasonRuleQuarantinePrefix} {
		if strings.HasPrefix(string(r), p) {
			return string(r[len(p):]), true
		}
	}
	return "", false
}

// FailureCode names one compliance rule. Each failing rule yields exactly one Failure.
type FailureCode string

// Compliance failure codes.
const (
	FailMinOSVersion        FailureCode = "min_os_version"
	FailPasscodeRequired    FailureCode = "passcode_required"
	FailMinPasscodeLength   FailureCode = "min_passcode_length"
	FailEncryptionRequired  FailureCode = "encryption_required"
	FailJailbroken          FailureCode = "jailbroken"
	FailCheckInTooOld       FailureCode = "mdm_checkin_too_old"
	FailMinPolicyVersionAck FailureCode = "min_policy_version"
)

// Failure is one failed compliance rule with what the rule wants and what the device has ("unknown"
// when the MDM never reported the fact), ready for the quarantine message.
type Failure struct {
	Rule FailureCode `json:"rule"`
	Want string      `json:"want"`
	Have string      `json:"have"`
}

// Decision is the verdict for one request. It is a plain value; Failures is shared with the
// engine's cache and must be treated as read-only (copy it before modifying).
type Decision struct {
	Action Action `json:"action"`
	Reason Reason `json:"reason"`
	// Failures lists the failed compliance rules when Reason is ReasonNotCompliant, in the order
	// of the compliance rule's fields.
	Failures []Failure `json:"failures,omitempty"`
	// Detail is a short human-readable explanation for logs and the admin API; never send it to a
	// device verbatim.
	Detail string `json:"detail,omitempty"`
	// Stale is set when the registry could not be reached and the engine repeated the device's
	// last decision (within Options.StaleMaxAge).
	Stale bool `json:"stale,omitempty"`
	// Cached reports whether the decision was answered from the in-memory cache without I/O.
	Cached bool `json:"-"`
}

// Allowed reports whether the request may go to the mail backend.
func (d Decision) Allowed() bool { return d.Action == Allow }

func (d Decision) sameVerdict(o Decision) bool {
	if d.Action != o.Action || d.Reason != o.Reason || len(d.Failures) != len(o.Failures) {
		return false
	}
	for i := range d.Failures {
		if d.Failures[i] != o.Failures[i] {
			return false
		}
	}
	return true
}
