// Package bench is easgate's load harness: a fleet of simulated Exchange ActiveSync devices
// driving a target URL with a realistic command mix, a simulated EAS upstream server, and the
// runners that compare the upstream reached directly, through nginx, and through the gateway.
//
//   - Device / NewFleet: each device has its own user, DeviceId, DeviceType, User-Agent and Basic
//     credentials, and sends the plain or the base64 query form (MS-ASHTTP 2.2.1.1.1).
//   - SyncRequest, SyncResponse, PingRequest, ...: constant WBXML bodies (MS-ASWBXML code pages),
//     a ~2 KB Sync each way, FolderSync, Ping, SendMail, a 1 MiB ItemOperations fetch.
//   - StartUpstream: the simulated EAS server (fasthttp) holding Pings for a configurable time.
//   - Run: one workload over a fixed set of connections, closed loop (each sends when answered)
//     or open loop (requests released on a schedule, latency from the moment each was due),
//     bounded by duration and request count, with per-command latency histograms. In the open
//     loop a Probe stream can go straight to the upstream at the same time, released by the
//     same schedule; Result.AddedP99 is the target's p99 less the probe's, from the same seconds.
//   - Compare: the same workload against several targets in alternating rounds, with ratios to
//     the first target.
//   - MeasureHeldPingRSS: memory per held Ping of a proxy, from its RSS at several levels.
//
// Every target must be a loopback address; the harness refuses anything else. The command
// bench/cmd/easbench wires it all together with nginx from bench/servers.
package bench
