package decision

import (
	"context"
	"errors"
	"time"
)

// Store is the device registry the engine decides from. Implementations live in sub-packages
// (decision/sqlite, decision/postgres) and must be safe for concurrent use. User arguments are
// already normalised; DeviceIDs compare exactly. The conformance suite in decision/storetest
// defines the behaviour precisely.
type Store interface {
	// Device returns one device or an error wrapping ErrNotFound.
	Device(ctx context.Context, user, deviceID string) (Device, error)
	// CreateDevice inserts d if no device with its key exists. It returns the stored device and
	// whether this call created it (false: d was ignored and the existing record is returned).
	CreateDevice(ctx context.Context, d Device) (Device, bool, error)
	// UpdateDevice atomically reads the device, applies fn and writes the result (fn must not
	// change User or DeviceID). With create set, a missing device starts as the zero Device with
	// the key filled in; without it, a missing device yields ErrNotFound. An error from fn aborts
	// the update and is returned as is.
	UpdateDevice(ctx context.Context, user, deviceID string, create bool, fn func(*Device) error) (Device, error)
	// DeleteDevice removes a device; ErrNotFound if absent.
	DeleteDevice(ctx context.Context, user, deviceID string) error
	// ListDevices returns devices ordered by (User, DeviceID) matching f.
	ListDevices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// CountDevices counts a user's devices first seen at or after since (zero: all).
	CountDevices(ctx context.Context, user string, since time.Time) (int, error)
	// RecordSightings applies what the gateway observed, in one batch. A sighting for a device
	// that no longer exists is ignored; LastSeen never moves backwards.
	RecordSightings(ctx context.Context, s []Sighting) error
	// AppendAudit stores audit entries (their ID is assigned by the store).
	AppendAudit(ctx context.Context, e []AuditEntry) error
	// Audit returns entries matching f, newest first.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// PruneAudit deletes entries older than before and returns how many.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
	// LoadPolicy returns the persisted policy document (JSON) and its revision, or ErrNotFound.
	LoadPolicy(ctx context.Context) ([]byte, int64, error)
	// SavePolicy persists a policy document and returns its new revision.
	SavePolicy(ctx context.Context, doc []byte) (int64, error)
	// Close releases the store; later calls fail.
	Close() error
}

// Errors stores return (wrapped). Callers test with errors.Is.
var (
	ErrNotFound = errors.New("decision: not found")
	ErrClosed   = errors.New("decision: closed")
)

// DeviceFilter selects devices for ListDevices. Zero fields do not filter.
type DeviceFilter struct {
	User     string
	DeviceID string // with User: exactly one device
	// State filters by lifecycle: "enrolled", "unenrolled", "wipe" (a wipe in progress),
	// "overridden", "suspicious".
	State string
	// LastAction filters by the last decision taken.
	LastAction *Action
	// Paging: devices strictly after the key (AfterUser, AfterDeviceID) in (User, DeviceID)
	// order, at most Limit (zero or above MaxListLimit: MaxListLimit).
	AfterUser, AfterDeviceID string
	Limit                    int
}

// MaxListLimit bounds one page of ListDevices and Audit.
const MaxListLimit = 1000

// Device lifecycle states accepted by DeviceFilter.State.
const (
	StateEnrolled   = "enrolled"
	StateUnenrolled = "unenrolled"
	StateWipe       = "wipe"
	StateOverridden = "overridden"
	StateSuspicious = "suspicious"
)

// Sighting is what one or more requests taught the gateway about a device, coalesced.
type Sighting struct {
	User, DeviceID string
	LastSeen       time.Time
	LastCommand    string
	ClientAddr     string
	// Decision change (zero DecidedAt: unchanged).
	Action    Action
	Reason    Reason
	DecidedAt time.Time
}

// AuditEntry is one state change or decision change.
type AuditEntry struct {
	ID       int64     `json:"id"`
	Time     time.Time `json:"time"`
	User     string    `json:"user,omitempty"`
	DeviceID string    `json:"device_id,omitempty"`
	Actor    string    `json:"actor"`
	Event    Event     `json:"event"`
	// Action is set on decision events (EventDecision, EventMaxDevicesReached) only.
	Action *Action `json:"action,omitempty"`
	Reason Reason  `json:"reason,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// ActionPtr returns a pointer to a, for AuditEntry.Action and DeviceFilter.LastAction.
func ActionPtr(a Action) *Action { return &a }

// AuditFilter selects audit entries. Zero fields do not filter. Paging: entries with ID below
// BeforeID (newest first), at most Limit (zero or above MaxListLimit: MaxListLimit).
type AuditFilter struct {
	User, DeviceID string
	Since, Until   time.Time // Since inclusive, Until exclusive
	BeforeID       int64
	Limit          int
}

// Event names what an audit entry records.
type Event string

// Audit events.
const (
	EventFirstSeen         Event = "first_seen"
	EventDecision          Event = "decision_changed"
	EventRegister          Event = "registered"
	EventCompliance        Event = "compliance_reported"
	EventDeviceInfo        Event = "device_info"
	EventOverride          Event = "override"
	EventForget            Event = "forgotten"
	EventWipeRequested     Event = "wipe_requested"
	EventWipeCancelled     Event = "wipe_cancelled"
	EventWipeDelivered     Event = "wipe_delivered"
	EventWipeAcked         Event = "wipe_acknowledged"
	EventPolicyKeyIssued   Event = "policy_key_issued"
	EventPolicyKeyAcked    Event = "policy_key_acknowledged"
	EventSignal            Event = "signal"
	EventSuspicionCleared  Event = "suspicion_cleared"
	EventPolicyChanged     Event = "policy_changed"
	EventMaxDevicesReached Event = "max_devices"
)
