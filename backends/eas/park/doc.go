// Package park waits for many idle connections at once without a goroutine each.
//
// A held long poll (an EAS Ping or a Sync with Wait) spends nearly all its life waiting: for the
// upstream's answer and, on the device's side, for nothing — the device only matters again if
// it hangs up. With one goroutine blocked per connection, a gateway holding ten thousand Pings
// keeps twenty thousand goroutine stacks and their read buffers for up to an hour. park keeps
// such connections in one epoll set served by one goroutine for the whole process, and calls
// back once when a connection becomes readable or its peer hangs up.
//
// The epoll file descriptor is itself registered with the Go runtime's network poller, so the
// serving goroutine sleeps like any other network read: no extra OS thread, no busy loop.
// A Watch is one-shot (EPOLLONESHOT) and level-triggered, so bytes that arrived before the
// watch began are reported at once rather than lost.
//
// Only Linux has the implementation; elsewhere Shared returns ErrUnsupported and callers keep a
// goroutine per connection.
package park

import (
	"errors"
	"net"
)

// Mode is what a Watch waits for.
type Mode uint8

const (
	// Readable: bytes to read, end of stream, or an error (the upstream side of a held
	// request: its answer has begun).
	Readable Mode = iota + 1
	// HangUp: the peer closed or reset the connection; bytes it sends are not an event (the
	// device side of a held request, which must not mistake a TLS close_notify or a pipelined
	// request for a hang-up, and must not consume what it reads).
	HangUp
)

// Event is what happened to a watched connection.
type Event uint8

const (
	// EventReadable: a read would not block.
	EventReadable Event = 1 << iota
	// EventHangUp: the peer shut its side down (FIN), reset the connection, or the socket failed.
	EventHangUp
)

// ErrUnsupported: this platform, or this connection (one without a file descriptor, such as
// an in-memory pipe), cannot be parked; the caller waits in a goroutine instead.
var ErrUnsupported = errors.New("park: unsupported here")

// ErrClosed: the poller is closed.
var ErrClosed = errors.New("park: poller closed")

// rawConn unwraps TLS, whose readiness is its socket's.
func rawConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = u.NetConn()
	}
}
