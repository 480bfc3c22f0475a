//go:build !linux

package park

import "net"

// Poller is unavailable on this platform: Shared and New return ErrUnsupported.
type Poller struct{}

// Watch is unavailable on this platform.
type Watch struct{}

// Shared returns ErrUnsupported on this platform.
func Shared() (*Poller, error) { return nil, ErrUnsupported }

// New returns ErrUnsupported on this platform.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Close does nothing.
func (p *Poller) Close() error { return nil }

// Len is 0.
func (p *Poller) Len() int { return 0 }

// Watch returns ErrUnsupported.
func (p *Poller) Watch(net.Conn, Mode, func(Event)) (*Watch, error) { return nil, ErrUnsupported }

// Stop reports false.
func (w *Watch) Stop() bool { return false }
