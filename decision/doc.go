// Package decision is the device layer of the gateway. For every EAS request it answers one
// question — is this user, on this device, allowed to get company mail right now? — as data: an
// Action (Allow, Block, Quarantine, Wipe, AccountOnlyWipe), a stable Reason code and, for
// compliance failures, one Failure per failing rule.
//
// It knows nothing of HTTP, WBXML or fasthttp and imports nothing else of easgate. Mapping a
// Decision to an EAS answer (for example ReasonMaxDevices to MS-ASCMD status 177, "the user
// has too many device partnerships") is the caller's job.
//
// # Pieces
//
//   - Store: the device registry interface, owned here. decision/sqlite is the embedded default
//     (one file, WAL, migrations at open); decision/postgres serves fleets of gateway nodes.
//     decision/storetest is the conformance suite both pass.
//   - Policy: plain, JSON-encodable configuration with documented zero values and
//     DefaultPolicy; Validate reports every problem at once. See Engine.Decide for the order in
//     which its parts apply.
//   - Engine: Decide, the admin operations (Register, ReportCompliance, SetOverride, Forget,
//     RequestWipe, CancelWipe, MarkWipeDelivered, AckWipe, IssuePolicyKey, AckPolicyKey, ...),
//     the audit log, runtime policy changes and Stats for metrics.
//
// # Cache and hot path
//
// A ristretto cache holds one entry per (user, DeviceId): the device record and the last
// evaluation. A hit does no I/O and no allocation; it re-evaluates whenever the policy, the
// user's groups or the time-dependent parts (MDM check-in age, signal quarantine) changed, so
// nothing is sticky. Every write through the Engine invalidates the device's entry before
// returning; writes by another node are seen within Options.CacheTTL. A miss, an expired entry
// or a Set that ristretto dropped goes to the registry, never to "allow".
//
// What requests teach the gateway (last seen, last command, client address, decision changes)
// is coalesced per device in memory and written in batches by a background flusher (bounded by
// Options.MaxPending, flushed on Close). Only a first sighting (which creates the record) and a
// user-agent or device-type change under one DeviceId (a spoofing signal) write synchronously.
//
// # Fail mode
//
// When the registry is unreachable, devices not in memory are blocked (ReasonStoreUnavailable);
// a device whose record was read within Options.StaleMaxAge keeps its last decision, marked
// Decision.Stale; beyond that it is blocked.
package decision
