package decision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidState is returned (wrapped) by admin operations that do not apply to the device's
// current state, e.g. acknowledging a wipe that was never delivered.
var ErrInvalidState = errors.New("decision: invalid state for this operation")

// Admin operations. Each one writes the registry, invalidates the device's cache entry before
// returning (so the next Decide sees it) and appends an audit entry naming actor. User names
// are normalised. They may be called concurrently with Decide.

// Devices lists devices (admin API "list").
func (e *Engine) Devices(ctx context.Context, f DeviceFilter) ([]Device, error) {
	if f.User != "" {
		f.User = NormalizeUser(f.User)
	}
	return e.store.ListDevices(ctx, f)
}

// Device returns one device (admin API "get"), or an error wrapping ErrNotFound.
func (e *Engine) Device(ctx context.Context, user, deviceID string) (Device, error) {
	return e.store.Device(ctx, NormalizeUser(user), deviceID)
}

// Registration enrols a device.
type Registration struct {
	User, DeviceID string
	DeviceType     string     // optional; recorded if the device was never seen
	Info           DeviceInfo // optional; replaces the recorded info when non-zero
}

// Register enrols (registers) a device as managed, creating its record if the gateway never saw
// it. Registration is not subject to MaxDevicesPerUser: the admin decides.
func (e *Engine) Register(ctx context.Context, r Registration, actor string) (Device, error) {
	now := e.opts.Now()
	return e.update(ctx, r.User, r.DeviceID, true, actor, EventRegister, "", func(d *Device) error {
		if d.FirstSeen.IsZero() {
			d.FirstSeen = now
			d.DeviceType = r.DeviceType
		}
		if r.Info != (DeviceInfo{}) {
			d.Info = r.Info
		}
		if !d.Enrolled {
			d.Enrolled, d.EnrolledAt = true, now
		}
		return nil
	})
}

// Unenroll marks a device as no longer managed; it becomes an unknown device again.
func (e *Engine) Unenroll(ctx context.Context, user, deviceID, actor string) (Device, error) {
	return e.update(ctx, user, deviceID, false, actor, EventRegister, "unenrolled", func(d *Device) error {
		d.Enrolled, d.EnrolledAt = false, time.Time{}
		return nil
	})
}

// ReportCompliance stores an MDM compliance report, replacing the previous facts, and marks
// the device enrolled (an MDM reporting on it manages it). A report for a device the gateway
// never saw creates the record. A zero CheckIn is set to now.
func (e *Engine) ReportCompliance(ctx context.Context, user, deviceID string, c Compliance, actor string) (Device, error) {
	now := e.opts.Now()
	if c.CheckIn.IsZero() {
		c.CheckIn = now
	}
	if c.OSVersion != "" {
		if _, ok := parseVersion(c.OSVersion); !ok {
			return Device{}, fmt.Errorf("decision: compliance: os_version %q is not a dotted numeric version", c.OSVersion)
		}
	}
	return e.update(ctx, user, deviceID, true, actor, EventCompliance, c.Source, func(d *Device) error {
		if d.FirstSeen.IsZero() {
			d.FirstSeen = now
		}
		d.Compliance = c
		if !d.Enrolled {
			d.Enrolled, d.EnrolledAt = true, now
		}
		return nil
	})
}

// UpdateDeviceInfo records Settings DeviceInformation (MS-ASCMD Settings) sent by the device.
func (e *Engine) UpdateDeviceInfo(ctx context.Context, user, deviceID string, info DeviceInfo) (Device, error) {
	return e.update(ctx, user, deviceID, false, "device", EventDeviceInfo, info.Model, func(d *Device) error {
		d.Info = info
		return nil
	})
}

// SetOverride sets or clears (OverrideNone) the admin's per-device allow/block.
func (e *Engine) SetOverride(ctx context.Context, user, deviceID string, o Override, actor string) (Device, error) {
	if o > OverrideBlock {
		return Device{}, fmt.Errorf("decision: invalid override %d", o)
	}
	now := e.opts.Now()
	return e.update(ctx, user, deviceID, false, actor, EventOverride, o.String(), func(d *Device) error {
		d.Override, d.OverrideBy, d.OverrideAt = o, actor, now
		if o == OverrideNone {
			d.OverrideBy, d.OverrideAt = "", time.Time{}
		}
		return nil
	})
}

// ClearSuspicion lifts a spoofing/churn quarantine.
func (e *Engine) ClearSuspicion(ctx context.Context, user, deviceID, actor string) (Device, error) {
	return e.update(ctx, user, deviceID, false, actor, EventSuspicionCleared, "", func(d *Device) error {
		d.Suspicion = Suspicion{}
		return nil
	})
}

// Forget deletes a device and its state (not its audit history). The next request from it is a
// first sighting.
func (e *Engine) Forget(ctx context.Context, user, deviceID, actor string) error {
	user = NormalizeUser(user)
	err := e.store.DeleteDevice(ctx, user, deviceID)
	e.invalidate(user, deviceID)
	if err != nil {
		return err
	}
	e.audit(ctx, AuditEntry{Time: e.opts.Now(), User: user, DeviceID: deviceID, Actor: actor, Event: EventForget})
	return nil
}

// RequestWipe asks for a full or account-only wipe. The next request from the device is
// answered with it (Action Wipe or AccountOnlyWipe) until AckWipe. Requesting again replaces a
// pending or finished wipe.
func (e *Engine) RequestWipe(ctx context.Context, user, deviceID string, kind WipeKind, actor string) (Device, error) {
	if kind != WipeFull && kind != WipeAccountOnly {
		return Device{}, fmt.Errorf("decision: invalid wipe kind %d", kind)
	}
	now := e.opts.Now()
	return e.update(ctx, user, deviceID, false, actor, EventWipeRequested, kind.String(), func(d *Device) error {
		d.Wipe = WipeState{Kind: kind, Status: WipePending, RequestedBy: actor, RequestedAt: now}
		return nil
	})
}

// CancelWipe withdraws a wipe that was not yet delivered.
func (e *Engine) CancelWipe(ctx context.Context, user, deviceID, actor string) (Device, error) {
	return e.update(ctx, user, deviceID, false, actor, EventWipeCancelled, "", func(d *Device) error {
		if d.Wipe.Status != WipePending {
			return fmt.Errorf("%w: wipe is %v, only a pending wipe can be cancelled", ErrInvalidState, d.Wipe.Status)
		}
		d.Wipe = WipeState{}
		return nil
	})
}

// MarkWipeDelivered records that the gateway sent the wipe command to the device.
func (e *Engine) MarkWipeDelivered(ctx context.Context, user, deviceID string) (Device, error) {
	now := e.opts.Now()
	return e.update(ctx, user, deviceID, false, "gateway", EventWipeDelivered, "", func(d *Device) error {
		switch d.Wipe.Status {
		case WipePending:
			d.Wipe.Status, d.Wipe.DeliveredAt = WipeDelivered, now
		case WipeDelivered:
			d.Wipe.DeliveredAt = now // sent again (the device asked again)
		default:
			return fmt.Errorf("%w: no wipe to deliver (wipe is %v)", ErrInvalidState, d.Wipe.Status)
		}
		return nil
	})
}

// AckWipe records the device's wipe acknowledgement (MS-ASPROV RemoteWipe Status).
func (e *Engine) AckWipe(ctx context.Context, user, deviceID string, success bool) (Device, error) {
	now := e.opts.Now()
	detail := "failure"
	if success {
		detail = "success"
	}
	return e.update(ctx, user, deviceID, false, "device", EventWipeAcked, detail, func(d *Device) error {
		if d.Wipe.Status != WipeDelivered && d.Wipe.Status != WipePending {
			return fmt.Errorf("%w: no wipe outstanding (wipe is %v)", ErrInvalidState, d.Wipe.Status)
		}
		d.Wipe.Status, d.Wipe.AckedAt = WipeFailed, now
		if success {
			d.Wipe.Status = WipeSucceeded
		}
		return nil
	})
}

// IssuePolicyKey records the policy key sent to the device in a Provision response.
func (e *Engine) IssuePolicyKey(ctx context.Context, user, deviceID string, key uint32) (Device, error) {
	now := e.opts.Now()
	return e.update(ctx, user, deviceID, false, "gateway", EventPolicyKeyIssued, fmt.Sprint(key), func(d *Device) error {
		d.Provisioning.PolicyKeyIssued, d.Provisioning.IssuedAt = key, now
		return nil
	})
}

// AckPolicyKey records that the device acknowledged policy key (and policy version) in its
// second Provision request. A key other than the one issued is rejected with ErrInvalidState.
func (e *Engine) AckPolicyKey(ctx context.Context, user, deviceID string, key uint32, policyVersion string) (Device, error) {
	now := e.opts.Now()
	return e.update(ctx, user, deviceID, false, "device", EventPolicyKeyAcked, policyVersion, func(d *Device) error {
		if key == 0 || key != d.Provisioning.PolicyKeyIssued {
			return fmt.Errorf("%w: policy key %d was not issued (issued %d)", ErrInvalidState, key, d.Provisioning.PolicyKeyIssued)
		}
		d.Provisioning.PolicyKeyAcked, d.Provisioning.PolicyVersionAcked, d.Provisioning.AckedAt = key, policyVersion, now
		return nil
	})
}

func (e *Engine) update(ctx context.Context, user, deviceID string, create bool, actor string, ev Event, detail string,
	fn func(*Device) error) (Device, error) {
	user = NormalizeUser(user)
	if user == "" || deviceID == "" {
		return Device{}, errors.New("decision: user and device ID are required")
	}
	d, err := e.store.UpdateDevice(ctx, user, deviceID, create, fn)
	// Invalidate even on error: the write may have happened before a lost reply.
	e.invalidate(user, deviceID)
	if err != nil {
		return Device{}, err
	}
	e.audit(ctx, AuditEntry{Time: e.opts.Now(), User: user, DeviceID: deviceID, Actor: actor, Event: ev, Detail: detail})
	return d, nil
}

// Audit queries the audit log, newest first.
func (e *Engine) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.User != "" {
		f.User = NormalizeUser(f.User)
	}
	return e.store.Audit(ctx, f)
}

// Policy returns the policy in force (a copy).
func (e *Engine) Policy() Policy {
	return clonePolicy(e.policy.Load().src)
}

// SetPolicy validates p, persists it and puts it in force at once on this node (other nodes
// sharing the store pick it up within Options.PolicyRefresh). On a validation error nothing
// changes and every problem is reported.
func (e *Engine) SetPolicy(ctx context.Context, p Policy, actor string) error {
	cp, err := compilePolicy(&p)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(cp.src)
	if err != nil {
		return fmt.Errorf("decision: policy: %v", err)
	}
	e.policyMu.Lock()
	defer e.policyMu.Unlock()
	rev, err := e.store.SavePolicy(ctx, doc)
	if err != nil {
		return fmt.Errorf("decision: save policy: %w", err)
	}
	e.policy.Store(cp)
	e.policyRev.Store(rev)
	e.audit(ctx, AuditEntry{Time: e.opts.Now(), Actor: actor, Event: EventPolicyChanged, Detail: fmt.Sprintf("revision %d", rev)})
	return nil
}

// SignalSpoofing is the audit reason of a request refused because its credentials were bound to
// another user or device (an OAuth token for another DeviceId, an EAS User that is not the
// authenticated identity).
const SignalSpoofing Reason = "spoofing"

// RecordSpoofing audits a refused request whose credentials belong to another user or device.
// It does not change the device's record: the request never reached a decision. The write is
// bounded by Options.StoreTimeout; a failure is counted like other background errors.
func (e *Engine) RecordSpoofing(ctx context.Context, user, deviceID, detail string) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.StoreTimeout)
	defer cancel()
	e.audit(ctx, AuditEntry{Time: e.opts.Now(), User: NormalizeUser(user), DeviceID: deviceID, Actor: "gateway",
		Event: EventSignal, Reason: SignalSpoofing, Detail: detail})
}
