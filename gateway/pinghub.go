package gateway

import (
	"context"
	"errors"
	"sync"
)

// Why a held long poll ended before its upstream answered. These are context cancel causes,
// never sent to a client.
var (
	errSuperseded   = errors.New("gateway: ping superseded by a newer ping from the same device")
	errClientGone   = errors.New("gateway: client closed the connection during a held ping")
	errShuttingDown = errors.New("gateway: shutting down")
	errPingLimit    = errors.New("gateway: too many held pings")
)

// PingLimits caps held long polls. Zero means the documented default.
type PingLimits struct {
	PerUser   int `yaml:"per_user"`   // default 20: a user rarely has more than a handful of devices
	PerClient int `yaml:"per_client"` // default 2000: one carrier NAT address fronts many devices
	Total     int `yaml:"total"`      // default 15000: below the process's open-file limit with headroom
}

func (l PingLimits) withDefaults() PingLimits {
	if l.PerUser == 0 {
		l.PerUser = 20
	}
	if l.PerClient == 0 {
		l.PerClient = 2000
	}
	if l.Total == 0 {
		l.Total = 15000
	}
	return l
}

// pingHub tracks held pings: one per (user, device) — a new Ping from the same device answers
// the older one — and the caps per user, per client address and in total. Safe for concurrent use.
type pingHub struct {
	lim PingLimits

	mu       sync.Mutex
	byDevice map[deviceKey]*heldPing
	perUser  map[string]int
	perAddr  map[string]int
	total    int
	closed   bool
}

type deviceKey struct{ user, device string }

// heldPing is one held long poll. ctx is cancelled with a cause from the list above.
type heldPing struct {
	key    deviceKey
	addr   string
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newPingHub(lim PingLimits) *pingHub {
	return &pingHub{
		lim:      lim.withDefaults(),
		byDevice: make(map[deviceKey]*heldPing),
		perUser:  make(map[string]int),
		perAddr:  make(map[string]int),
	}
}

// acquire registers a held ping for (user, device) from addr. An older ping from the same
// device is cancelled with errSuperseded (and its slot given to the new one). It fails with
// errPingLimit when a cap is reached and errShuttingDown after shutdown began.
func (h *pingHub) acquire(parent context.Context, user, device, addr string) (*heldPing, error) {
	key := deviceKey{user, device}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errShuttingDown
	}
	if old := h.byDevice[key]; old != nil {
		old.cancel(errSuperseded)
		h.removeLocked(old)
	}
	if h.total >= h.lim.Total || h.perUser[user] >= h.lim.PerUser || h.perAddr[addr] >= h.lim.PerClient {
		return nil, errPingLimit
	}
	ctx, cancel := context.WithCancelCause(parent)
	p := &heldPing{key: key, addr: addr, ctx: ctx, cancel: cancel}
	h.byDevice[key] = p
	h.perUser[user]++
	h.perAddr[addr]++
	h.total++
	return p, nil
}

// release ends p's registration; it is a no-op when p was already superseded.
func (h *pingHub) release(p *heldPing) {
	h.mu.Lock()
	if h.byDevice[p.key] == p {
		h.removeLocked(p)
	}
	h.mu.Unlock()
	p.cancel(context.Canceled)
}

func (h *pingHub) removeLocked(p *heldPing) {
	delete(h.byDevice, p.key)
	decr(h.perUser, p.key.user)
	decr(h.perAddr, p.addr)
	h.total--
}

func decr(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// draining reports whether shutdown began.
func (h *pingHub) draining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// held returns the number of pings held now.
func (h *pingHub) held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// shutdown refuses new pings and cancels every held one with errShuttingDown, so that each is
// answered at once and its device re-pings (another node, after a rolling restart).
func (h *pingHub) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, p := range h.byDevice {
		p.cancel(errShuttingDown)
	}
}
