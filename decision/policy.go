package decision

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Policy is the access policy: plain data, JSON-encodable, persisted in the store by
// Engine.SetPolicy. A zero Policy is valid and strict (unknown and unmanageable devices are
// blocked, no rules, no limits); DefaultPolicy returns the recommended starting point.
// Call Validate before use; it reports every problem at once.
type Policy struct {
	// UnknownDevice is the action for devices that are neither enrolled nor admitted by a rule:
	// Allow, Block or Quarantine. Zero value: Block. DefaultPolicy: Quarantine.
	UnknownDevice Action `json:"unknown_device"`
	// Unmanageable lists platforms that cannot enrol in management and what to do with them.
	Unmanageable UnmanageablePolicy `json:"unmanageable"`
	// Rules are device access rules, evaluated by ascending Priority (ties: list order); the first
	// match decides.
	Rules []Rule `json:"rules,omitempty"`
	// Groups restricts which users the policy applies to.
	Groups GroupPolicy `json:"groups"`
	// MaxDevicesPerUser limits how many devices one user may have in the registry; the next new
	// device gets ReasonMaxDevices. Zero: no limit.
	MaxDevicesPerUser int `json:"max_devices_per_user,omitempty"`
	// Compliance holds per-platform compliance rules; the first whose Platform matches applies.
	// No matching rule: every enrolled device is compliant.
	Compliance []ComplianceRule `json:"compliance,omitempty"`
	// Signals configures spoofing and churn detection.
	Signals SignalPolicy `json:"signals"`
}

// UnmanageablePolicy says which platforms cannot enrol and whether they may connect.
type UnmanageablePolicy struct {
	Match []Match `json:"match,omitempty"`
	// Action is Allow or Block. Zero value: Block.
	Action Action `json:"action"`
}

// Rule is one device access rule.
type Rule struct {
	// ID is stable and unique; it appears in reasons ("rule_block:<ID>"). Letters, digits, '-',
	// '_' and '.' only.
	ID       string `json:"id"`
	Priority int    `json:"priority,omitempty"`
	Match    Match  `json:"match"`
	// Action is Allow, Block or Quarantine. An Allow rule admits the device without enrolment
	// and without compliance checks (like an Exchange device access rule).
	Action Action `json:"action"`
}

// Match selects devices. Every non-empty field must match. Text fields are case-insensitive
// globs ('*' any run, '?' one character); without a wildcard they must match exactly.
type Match struct {
	DeviceType string `json:"device_type,omitempty"`
	Model      string `json:"model,omitempty"`
	UserAgent  string `json:"user_agent,omitempty"`
	// OS is an OS name glob optionally followed by comma-separated version constraints with
	// the operators >=, >, <=, <, ==, !=: "iOS >= 17.0", "Android >= 10, < 13", "Windows*".
	// The OS comes from the MDM report (Compliance.Platform, OSVersion) when present, otherwise
	// from Settings DeviceInformation OS ("iOS 17.1 21B74").
	OS string `json:"os,omitempty"`
}

// GroupPolicy targets the policy at groups. Groups of a user are the union of Input.Groups and
// Members[user]; names compare case-insensitively.
type GroupPolicy struct {
	// Target: when non-empty, only members of at least one of these groups are subject to the
	// policy; everybody else gets Allow/ReasonNotTargeted.
	Target []string `json:"target,omitempty"`
	// Exempt: members of any of these groups get Allow/ReasonExempt (admin blocks and wipes
	// still apply).
	Exempt []string `json:"exempt,omitempty"`
	// Members maps a normalised user to groups, for deployments whose identity provider does not
	// supply groups with the request.
	Members map[string][]string `json:"members,omitempty"`
}

// ComplianceRule is the compliance bar for one platform. Each failing field yields one Failure.
type ComplianceRule struct {
	// Platform is a case-insensitive glob against the device platform (Compliance.Platform,
	// else the OS name, else DeviceType); "*" matches all.
	Platform           string   `json:"platform"`
	MinOSVersion       string   `json:"min_os_version,omitempty"`
	PasscodeRequired   bool     `json:"passcode_required,omitempty"`
	MinPasscodeLength  int      `json:"min_passcode_length,omitempty"`
	EncryptionRequired bool     `json:"encryption_required,omitempty"`
	BlockJailbroken    bool     `json:"block_jailbroken,omitempty"`
	MaxCheckInAge      Duration `json:"max_checkin_age,omitempty"` // zero: not checked
	// EASPolicyCounts makes an acknowledged EAS provisioning policy count as enrolment and as
	// proof of the passcode and encryption rules (which EAS provisioning enforces on the device).
	// Facts only an MDM knows (jailbreak, check-in) still need a report.
	EASPolicyCounts bool `json:"eas_policy_counts,omitempty"`
	// MinPolicyVersion, when set, requires the acknowledged policy version to be at least this.
	MinPolicyVersion string `json:"min_policy_version,omitempty"`
}

// SignalAction is what a spoofing/churn signal does.
type SignalAction uint8

const (
	SignalIgnore     SignalAction = iota // nothing
	SignalAudit                          // an audit entry
	SignalQuarantine                     // an audit entry and the device is quarantined (ReasonSuspicious)
)

var signalActionNames = []string{"ignore", "audit", "quarantine"}

func (a SignalAction) String() string {
	if int(a) < len(signalActionNames) {
		return signalActionNames[a]
	}
	return fmt.Sprintf("signal_action(%d)", uint8(a))
}

// MarshalText implements encoding.TextMarshaler.
func (a SignalAction) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *SignalAction) UnmarshalText(b []byte) error {
	for i, n := range signalActionNames {
		if strings.EqualFold(string(b), n) {
			*a = SignalAction(i)
			return nil
		}
	}
	return fmt.Errorf("decision: unknown signal action %q", b)
}

// SignalPolicy configures spoofing and churn signals.
type SignalPolicy struct {
	// UserAgentChange: the user agent changed under one DeviceId. Zero value: ignore.
	// DefaultPolicy: audit (OS updates change user agents legitimately).
	UserAgentChange SignalAction `json:"user_agent_change"`
	// DeviceTypeChange: the DeviceType changed under one DeviceId. DefaultPolicy: quarantine.
	DeviceTypeChange SignalAction `json:"device_type_change"`
	// ChurnMaxNewDevices new DeviceIds for one user within ChurnWindow trigger ChurnAction on the
	// next new device. Zero: off. DefaultPolicy: 5 within 24h, audit.
	ChurnMaxNewDevices int          `json:"churn_max_new_devices,omitempty"`
	ChurnWindow        Duration     `json:"churn_window,omitempty"`
	ChurnAction        SignalAction `json:"churn_action"`
	// QuarantineFor is how long a signal quarantine lasts. Zero: until an admin clears it.
	QuarantineFor Duration `json:"quarantine_for,omitempty"`
}

// DefaultPolicy returns the recommended policy: unknown devices quarantined, unmanageable
// platforms blocked, user-agent changes audited, device-type changes quarantined for 24 hours,
// more than 5 new devices a day audited. It has no rules and no compliance bar.
func DefaultPolicy() Policy {
	return Policy{
		UnknownDevice: Quarantine,
		Unmanageable:  UnmanageablePolicy{Action: Block},
		Signals: SignalPolicy{
			UserAgentChange:    SignalAudit,
			DeviceTypeChange:   SignalQuarantine,
			ChurnMaxNewDevices: 5,
			ChurnWindow:        Duration(24 * time.Hour),
			ChurnAction:        SignalAudit,
			QuarantineFor:      Duration(24 * time.Hour),
		},
	}
}

// Duration is a time.Duration that reads and writes as text ("720h", "30m").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("decision: duration: %v", err)
	}
	*d = Duration(v)
	return nil
}

// Validate checks the whole policy and returns every problem at once (errors.Join), or nil.
func (p *Policy) Validate() error {
	_, err := compilePolicy(p)
	return err
}

// compiled forms ------------------------------------------------------------------------------

type compiledPolicy struct {
	src          Policy
	unknown      Action
	unmanageable []compiledMatch
	unmanAction  Action
	rules        []compiledRule
	target       []string
	exempt       []string
	members      map[string][]string
	maxDevices   int
	compliance   []compiledCompliance
	signals      SignalPolicy
}

type compiledRule struct {
	id     string
	match  compiledMatch
	action Action
	reason Reason
}

type compiledMatch struct {
	deviceType, model, userAgent string
	osName                       string
	osCons                       []versionConstraint
	hasOS                        bool
}

type versionConstraint struct {
	op  string
	ver version
}

type compiledCompliance struct {
	rule       ComplianceRule
	minOS      version
	hasMinOS   bool
	minPolicy  version
	hasMinPol  bool
	wantLength string // precomputed Want texts so evaluation does not format
}

func compilePolicy(p *Policy) (*compiledPolicy, error) {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("decision: policy: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	c := &compiledPolicy{src: clonePolicy(*p), unknown: p.UnknownDevice, unmanAction: p.Unmanageable.Action,
		maxDevices: p.MaxDevicesPerUser, signals: p.Signals}
	switch p.UnknownDevice {
	case Allow, Block, Quarantine:
	default:
		fail("unknown_device", "must be allow, block or quarantine, not %v", p.UnknownDevice)
	}
	switch p.Unmanageable.Action {
	case Allow, Block:
	default:
		fail("unmanageable.action", "must be allow or block, not %v", p.Unmanageable.Action)
	}
	for i, m := range p.Unmanageable.Match {
		cm, err := compileMatch(m)
		if err != nil {
			fail(fmt.Sprintf("unmanageable.match[%d]", i), "%v", err)
		}
		if cm.empty() {
			fail(fmt.Sprintf("unmanageable.match[%d]", i), "matches every device; set at least one field")
		}
		c.unmanageable = append(c.unmanageable, cm)
	}
	ids := map[string]bool{}
	order := make([]int, len(p.Rules))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p.Rules[order[a]].Priority < p.Rules[order[b]].Priority })
	for _, i := range order {
		r := p.Rules[i]
		field := fmt.Sprintf("rules[%d]", i)
		if r.ID == "" || !validRuleID(r.ID) {
			fail(field+".id", "%q must be non-empty letters, digits, '-', '_' or '.'", r.ID)
		} else if ids[r.ID] {
			fail(field+".id", "duplicate rule id %q", r.ID)
		}
		ids[r.ID] = true
		switch r.Action {
		case Allow, Block, Quarantine:
		default:
			fail(field+".action", "must be allow, block or quarantine, not %v", r.Action)
		}
		cm, err := compileMatch(r.Match)
		if err != nil {
			fail(field+".match", "%v", err)
		}
		if cm.empty() {
			fail(field+".match", "matches every device; set at least one field")
		}
		c.rules = append(c.rules, compiledRule{id: r.ID, match: cm, action: r.Action, reason: RuleReason(r.Action, r.ID)})
	}
	for i, g := range p.Groups.Target {
		if strings.TrimSpace(g) == "" {
			fail(fmt.Sprintf("groups.target[%d]", i), "empty group name")
		}
	}
	for i, g := range p.Groups.Exempt {
		if strings.TrimSpace(g) == "" {
			fail(fmt.Sprintf("groups.exempt[%d]", i), "empty group name")
		}
	}
	c.target, c.exempt = p.Groups.Target, p.Groups.Exempt
	if len(p.Groups.Members) > 0 {
		c.members = make(map[string][]string, len(p.Groups.Members))
		for u, gs := range p.Groups.Members {
			n := NormalizeUser(u)
			if n == "" {
				fail("groups.members", "empty user name")
			}
			c.members[n] = append(c.members[n], gs...)
		}
	}
	if p.MaxDevicesPerUser < 0 {
		fail("max_devices_per_user", "must not be negative")
	}
	for i, r := range p.Compliance {
		field := fmt.Sprintf("compliance[%d]", i)
		cc := compiledCompliance{rule: r, wantLength: strconv.Itoa(r.MinPasscodeLength)}
		if strings.TrimSpace(r.Platform) == "" {
			fail(field+".platform", "empty (use \"*\" for all platforms)")
		}
		if r.MinOSVersion != "" {
			v, ok := parseVersion(r.MinOSVersion)
			if !ok {
				fail(field+".min_os_version", "%q is not a dotted numeric version", r.MinOSVersion)
			}
			cc.minOS, cc.hasMinOS = v, true
		}
		if r.MinPolicyVersion != "" {
			v, ok := parseVersion(r.MinPolicyVersion)
			if !ok {
				fail(field+".min_policy_version", "%q is not a dotted numeric version", r.MinPolicyVersion)
			}
			cc.minPolicy, cc.hasMinPol = v, true
		}
		if r.MinPasscodeLength < 0 || r.MinPasscodeLength > 64 {
			fail(field+".min_passcode_length", "must be between 0 and 64")
		}
		if r.MaxCheckInAge < 0 {
			fail(field+".max_checkin_age", "must not be negative")
		}
		c.compliance = append(c.compliance, cc)
	}
	s := p.Signals
	for name, a := range map[string]SignalAction{"user_agent_change": s.UserAgentChange,
		"device_type_change": s.DeviceTypeChange, "churn_action": s.ChurnAction} {
		if a > SignalQuarantine {
			fail("signals."+name, "must be ignore, audit or quarantine")
		}
	}
	if s.ChurnMaxNewDevices < 0 {
		fail("signals.churn_max_new_devices", "must not be negative")
	}
	if s.ChurnMaxNewDevices > 0 && s.ChurnWindow <= 0 {
		fail("signals.churn_window", "must be positive when churn_max_new_devices is set")
	}
	if s.QuarantineFor < 0 {
		fail("signals.quarantine_for", "must not be negative")
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func clonePolicy(p Policy) Policy {
	q := p
	q.Rules = append([]Rule(nil), p.Rules...)
	q.Unmanageable.Match = append([]Match(nil), p.Unmanageable.Match...)
	q.Compliance = append([]ComplianceRule(nil), p.Compliance...)
	q.Groups.Target = append([]string(nil), p.Groups.Target...)
	q.Groups.Exempt = append([]string(nil), p.Groups.Exempt...)
	if p.Groups.Members != nil {
		q.Groups.Members = make(map[string][]string, len(p.Groups.Members))
		for k, v := range p.Groups.Members {
			q.Groups.Members[k] = append([]string(nil), v...)
		}
	}
	return q
}

func validRuleID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return len(s) <= 64
}

func compileMatch(m Match) (compiledMatch, error) {
	cm := compiledMatch{deviceType: m.DeviceType, model: m.Model, userAgent: m.UserAgent}
	if strings.TrimSpace(m.OS) == "" {
		return cm, nil
	}
	cm.hasOS = true
	parts := strings.Split(m.OS, ",")
	head := strings.TrimSpace(parts[0])
	// The name runs up to the first operator.
	opAt := strings.IndexAny(head, "<>=!")
	if opAt < 0 {
		cm.osName = head
	} else {
		cm.osName = strings.TrimSpace(head[:opAt])
		parts[0] = head[opAt:]
	}
	if cm.osName == "" {
		return cm, fmt.Errorf("os %q: missing OS name (use \"*\" for any)", m.OS)
	}
	if opAt < 0 {
		parts = parts[1:]
	}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		var op string
		for _, o := range []string{">=", "<=", "==", "!=", ">", "<"} {
			if strings.HasPrefix(p, o) {
				op = o
				break
			}
		}
		if op == "" {
			return cm, fmt.Errorf("os %q: constraint %q needs one of >= > <= < == !=", m.OS, p)
		}
		v, ok := parseVersion(strings.TrimSpace(p[len(op):]))
		if !ok {
			return cm, fmt.Errorf("os %q: %q is not a dotted numeric version", m.OS, p[len(op):])
		}
		cm.osCons = append(cm.osCons, versionConstraint{op: op, ver: v})
	}
	return cm, nil
}

func (m *compiledMatch) empty() bool {
	return m.deviceType == "" && m.model == "" && m.userAgent == "" && !m.hasOS
}

// matches reports whether the device matches. It does not allocate.
func (m *compiledMatch) matches(deviceType, userAgent string, d *Device) bool {
	if m.deviceType != "" && !globMatch(m.deviceType, deviceType) {
		return false
	}
	if m.userAgent != "" && !globMatch(m.userAgent, userAgent) {
		return false
	}
	if m.model != "" && !globMatch(m.model, d.Info.Model) {
		return false
	}
	if m.hasOS {
		name, ver := deviceOS(d)
		if !globMatch(m.osName, name) {
			return false
		}
		if len(m.osCons) > 0 {
			v, ok := parseVersion(ver)
			if !ok {
				return false // an unknown version satisfies no range
			}
			for _, c := range m.osCons {
				if !c.holds(v) {
					return false
				}
			}
		}
	}
	return true
}

func (c versionConstraint) holds(v version) bool {
	r := v.compare(c.ver)
	switch c.op {
	case ">=":
		return r >= 0
	case ">":
		return r > 0
	case "<=":
		return r <= 0
	case "<":
		return r < 0
	case "==":
		return r == 0
	default:
		return r != 0
	}
}

// deviceOS returns the OS name and version of d: the MDM's when it reported them, else parsed from
// Settings DeviceInformation OS ("iOS 17.1 21B74" → "iOS", "17.1"). The results alias d's strings.
func deviceOS(d *Device) (name, ver string) {
	if d.Compliance.Platform != "" && d.Compliance.OSVersion != "" {
		return d.Compliance.Platform, d.Compliance.OSVersion
	}
	s := strings.TrimSpace(d.Info.OS)
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' && (i == 0 || s[i-1] == ' ' || s[i-1] == '/') {
			j := i
			for j < len(s) && s[j] != ' ' {
				j++
			}
			name = strings.TrimRight(s[:i], " /")
			if name == "" {
				name = d.Compliance.Platform
			}
			return name, s[i:j]
		}
	}
	if s == "" {
		s = d.Compliance.Platform
	}
	return s, d.Compliance.OSVersion
}

// devicePlatform is what compliance rules match against.
func devicePlatform(d *Device, deviceType string) string {
	if d.Compliance.Platform != "" {
		return d.Compliance.Platform
	}
	if name, _ := deviceOS(d); name != "" {
		return name
	}
	return deviceType
}

// version is a dotted numeric version with up to four components ("17.4.1"); it does not
// allocate. Trailing text after the numbers ("14.0.0-beta", "17.1a") is ignored.
type version struct {
	n   [4]uint32
	len int
}

func parseVersion(s string) (version, bool) {
	var v version
	i := 0
	for v.len < len(v.n) {
		start := i
		var x uint32
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if x > 1<<28 {
				return v, false
			}
			x = x*10 + uint32(s[i]-'0')
			i++
		}
		if i == start {
			break
		}
		v.n[v.len] = x
		v.len++
		if i < len(s) && s[i] == '.' {
			i++
			continue
		}
		break
	}
	return v, v.len > 0
}

// compare orders versions numerically, missing components counting as zero (17 == 17.0).
func (v version) compare(o version) int {
	for i := range v.n {
		switch {
		case v.n[i] < o.n[i]:
			return -1
		case v.n[i] > o.n[i]:
			return 1
		}
	}
	return 0
}

// globMatch matches s against a case-insensitive (ASCII) glob with '*' and '?'. It does not
// allocate. An empty pattern matches only the empty string.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, -1
	for sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				px++
				sx++
				continue
			default:
				if foldByte(c) == foldByte(s[sx]) {
					px++
					sx++
					continue
				}
			}
		}
		if starPx < 0 {
			return false
		}
		starSx++
		px, sx = starPx+1, starSx
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

func foldByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
