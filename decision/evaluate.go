package decision

import (
	"strconv"
	"time"
)

// evalInput is what evaluation needs from the request.
type evalInput struct {
	user       string
	deviceType string
	userAgent  string
	groups     []string
	now        time.Time
}

// evaluate applies the policy to one device. It is pure: the same device, input and policy give
// the same Decision. It also returns the time at which the result could change by the passage of
// time alone (a check-in growing too old, a signal quarantine ending); zero means never.
//
// The order is documented on Engine.Decide; keep the two in sync.
func (p *compiledPolicy) evaluate(d *Device, in *evalInput) (Decision, time.Time) {
	var until time.Time
	// 1. Wipe lifecycle.
	switch d.Wipe.Status {
	case WipePending, WipeDelivered:
		if d.Wipe.Kind == WipeAccountOnly {
			return Decision{Action: AccountOnlyWipe, Reason: ReasonWipePending}, until
		}
		return Decision{Action: Wipe, Reason: ReasonWipePending}, until
	case WipeSucceeded:
		return Decision{Action: Block, Reason: ReasonWiped}, until
	case WipeFailed:
		return Decision{Action: Block, Reason: ReasonWipeFailed}, until
	}
	// 2. Admin override.
	switch d.Override {
	case OverrideBlock:
		return Decision{Action: Block, Reason: ReasonAdminBlock}, until
	case OverrideAllow:
		return Decision{Action: Allow, Reason: ReasonAdminAllow}, until
	}
	// 3. Spoofing / churn quarantine.
	if d.Suspicion.Signal != "" {
		if p.signals.QuarantineFor == 0 {
			return Decision{Action: Quarantine, Reason: ReasonSuspicious, Detail: string(d.Suspicion.Signal)}, until
		}
		end := d.Suspicion.At.Add(time.Duration(p.signals.QuarantineFor))
		if in.now.Before(end) {
			return Decision{Action: Quarantine, Reason: ReasonSuspicious, Detail: string(d.Suspicion.Signal)}, end
		}
	}
	// 4. Group targeting and exemptions.
	if ex, tg := p.groupStatus(in); ex {
		return Decision{Action: Allow, Reason: ReasonExempt}, until
	} else if !tg {
		return Decision{Action: Allow, Reason: ReasonNotTargeted}, until
	}
	// 5. Device access rules, by priority.
	for i := range p.rules {
		r := &p.rules[i]
		if r.match.matches(in.deviceType, in.userAgent, d) {
			return Decision{Action: r.action, Reason: r.reason}, until
		}
	}
	// 6. Platforms that cannot enrol.
	for i := range p.unmanageable {
		if p.unmanageable[i].matches(in.deviceType, in.userAgent, d) {
			return Decision{Action: p.unmanAction, Reason: ReasonUnmanageable}, until
		}
	}
	// 7. Enrolment.
	cr := p.complianceFor(d, in.deviceType)
	enrolled := d.Enrolled || (cr != nil && cr.rule.EASPolicyCounts && d.Provisioning.Acknowledged())
	if !enrolled {
		return Decision{Action: p.unknown, Reason: ReasonUnknownDevice}, until
	}
	// 8. Compliance.
	if cr == nil {
		return Decision{Action: Allow, Reason: ReasonAllowed}, until
	}
	failures, until := cr.check(d, in.now)
	if len(failures) > 0 {
		return Decision{Action: Quarantine, Reason: ReasonNotCompliant, Failures: failures}, until
	}
	return Decision{Action: Allow, Reason: ReasonAllowed}, until
}

// groupStatus reports whether the user is exempt and whether the policy targets them.
func (p *compiledPolicy) groupStatus(in *evalInput) (exempt, targeted bool) {
	if len(p.exempt) == 0 && len(p.target) == 0 {
		return false, true
	}
	member := func(list []string) bool {
		for _, g := range in.groups {
			if containsFold(list, g) {
				return true
			}
		}
		for _, g := range p.members[in.user] {
			if containsFold(list, g) {
				return true
			}
		}
		return false
	}
	if len(p.exempt) > 0 && member(p.exempt) {
		return true, true
	}
	return false, len(p.target) == 0 || member(p.target)
}

func (p *compiledPolicy) complianceFor(d *Device, deviceType string) *compiledCompliance {
	plat := devicePlatform(d, deviceType)
	for i := range p.compliance {
		if globMatch(p.compliance[i].rule.Platform, plat) {
			return &p.compliance[i]
		}
	}
	return nil
}

const unknownFact = "unknown"

func factText(b *bool) string {
	if b == nil {
		return unknownFact
	}
	return strconv.FormatBool(*b)
}

// check returns one Failure per failing rule, and when a passing check-in rule will start failing.
func (c *compiledCompliance) check(d *Device, now time.Time) ([]Failure, time.Time) {
	var out []Failure
	var until time.Time
	r := &c.rule
	cp := &d.Compliance
	easProof := r.EASPolicyCounts && d.Provisioning.Acknowledged()
	if c.hasMinOS {
		_, have := deviceOS(d)
		v, ok := parseVersion(have)
		if !ok || v.compare(c.minOS) < 0 {
			if have == "" {
				have = unknownFact
			}
			out = append(out, Failure{Rule: FailMinOSVersion, Want: r.MinOSVersion, Have: have})
		}
	}
	if r.PasscodeRequired && !easProof && (cp.PasscodeSet == nil || !*cp.PasscodeSet) {
		out = append(out, Failure{Rule: FailPasscodeRequired, Want: "true", Have: factText(cp.PasscodeSet)})
	}
	if r.MinPasscodeLength > 0 && !easProof && cp.PasscodeLength < r.MinPasscodeLength {
		have := unknownFact
		if cp.PasscodeLength > 0 {
			have = strconv.Itoa(cp.PasscodeLength)
		}
		out = append(out, Failure{Rule: FailMinPasscodeLength, Want: c.wantLength, Have: have})
	}
	if r.EncryptionRequired && !easProof && (cp.Encrypted == nil || !*cp.Encrypted) {
		out = append(out, Failure{Rule: FailEncryptionRequired, Want: "true", Have: factText(cp.Encrypted)})
	}
	if r.BlockJailbroken && (cp.Jailbroken == nil || *cp.Jailbroken) {
		out = append(out, Failure{Rule: FailJailbroken, Want: "false", Have: factText(cp.Jailbroken)})
	}
	if r.MaxCheckInAge > 0 {
		max := time.Duration(r.MaxCheckInAge)
		switch {
		case cp.CheckIn.IsZero():
			out = append(out, Failure{Rule: FailCheckInTooOld, Want: max.String(), Have: "never"})
		case now.Sub(cp.CheckIn) > max:
			out = append(out, Failure{Rule: FailCheckInTooOld, Want: max.String(),
				Have: now.Sub(cp.CheckIn).Truncate(time.Second).String()})
		default:
			until = cp.CheckIn.Add(max).Add(time.Nanosecond)
		}
	}
	if c.hasMinPol {
		have := "none"
		ok := false
		if d.Provisioning.Acknowledged() {
			have = d.Provisioning.PolicyVersionAcked
			v, vok := parseVersion(have)
			ok = vok && v.compare(c.minPolicy) >= 0
		}
		if !ok {
			out = append(out, Failure{Rule: FailMinPolicyVersionAck, Want: r.MinPolicyVersion, Have: have})
		}
	}
	return out, until
}
