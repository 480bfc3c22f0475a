// Package rawio makes the system calls of a proxied request cheaper: a TCP connection whose
// reads and writes first try the socket directly, without the Go runtime's system-call
// bookkeeping, and wait in the runtime's poller (with the connection's deadlines) only when
// the socket is not ready.
//
// The sockets are non-blocking, so these calls never block; what they skip is
// entersyscall/exitsyscall. On one core that bookkeeping is most of what the runtime's
// monitor thread costs a proxy: the first system call after every idle moment wakes it, and it
// then polls every 20 µs (see docs/benchmarks.md). Waiting, deadlines, closing and the file
// descriptor's lifetime stay the runtime's: every call runs inside syscall.RawConn's Read or
// Write, which hold the descriptor for the call and wait for readiness.
//
// WriteAwaitReply sends a request and waits for its answer in one step, sending from inside
// the poller's read wait: the read that would find nothing right after a request is not made
// (a system call saved per upstream round trip). It is only used where the previous exchange
// on the connection began a moment ago (AwaitWindow), because what the peer sent before the
// wait began is only seen by a later event.
//
// Elsewhere than Linux, Wrap and NewListener return what they are given.
package rawio
