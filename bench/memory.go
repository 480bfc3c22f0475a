package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// HeldPings keeps Ping requests open against a target, one connection each, as a fleet of
// idle phones does. The requests are written and never read: the proxy in between holds one
// device connection and one upstream connection per Ping until the upstream answers or the
// connection is closed.
type HeldPings struct {
	target  *url.URL
	devices []Device
	ping    []byte
	conns   []net.Conn
}

// NewHeldPings prepares held Pings against target (loopback only) using the fleet's devices
// round robin; heartbeat is the HeartbeatInterval in seconds written in the body.
func NewHeldPings(target string, devices []Device, heartbeat int) (*HeldPings, error) {
	u, err := checkLoopback(target)
	if err != nil {
		return nil, err
	}
	if len(devices) == 0 {
		return nil, errors.New("bench: no devices")
	}
	return &HeldPings{target: u, devices: devices, ping: PingRequest(heartbeat)}, nil
}

// Len is the number of open Pings.
func (h *HeldPings) Len() int { return len(h.conns) }

// Grow opens Pings until n are open.
func (h *HeldPings) Grow(ctx context.Context, n int) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	for len(h.conns) < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		dev := &h.devices[len(h.conns)%len(h.devices)]
		c, err := d.DialContext(ctx, "tcp", h.target.Host)
		if err != nil {
			return fmt.Errorf("bench: held ping %d: %w", len(h.conns), err)
		}
		req := fmt.Sprintf("POST %s?%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nUser-Agent: %s\r\n"+
			"MS-ASProtocolVersion: 14.1\r\nContent-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: %d\r\n\r\n",
			h.target.Path, dev.Query(CmdPing), h.target.Host, dev.Authorization(), dev.UserAgent, len(h.ping))
		if _, err := c.Write(append([]byte(req), h.ping...)); err != nil {
			c.Close()
			return fmt.Errorf("bench: held ping %d: %w", len(h.conns), err)
		}
		h.conns = append(h.conns, c)
	}
	return nil
}

// Close closes every held Ping's connection.
func (h *HeldPings) Close() {
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// RSSPoint is the measured memory with Held Pings open.
type RSSPoint struct {
	Held int
	RSS  int64 // bytes
}

// RSSOptions configure MeasureHeldPingRSS.
type RSSOptions struct {
	Target  string   // the proxy's EAS URL (loopback)
	Devices []Device // default NewFleet(1000)
	// Levels of held Pings to measure at, ascending, e.g. 1000, 4000, 9000. Each held Ping
	// costs four file descriptors on this machine (device, proxy ×2, upstream): keep the
	// largest level × 2 under the per-process limit for the bench process and the proxy.
	Levels []int
	// RSS reads the proxy's resident memory (e.g. Nginx.WorkersRSS, or ProcRSS of the gateway).
	RSS func() (int64, error)
	// UpstreamHeld reports how many Pings the upstream holds; each level waits until the
	// upstream holds them all (so the proxy has both connections open).
	UpstreamHeld func() int64
	// Settle is the pause before each reading; default 500 ms.
	Settle    time.Duration
	Heartbeat int // default 480
}

// MeasureHeldPingRSS opens held Pings through a proxy level by level and reads the proxy's
// RSS at each (and once before the first Ping). It closes the Pings before returning.
func MeasureHeldPingRSS(ctx context.Context, o RSSOptions) ([]RSSPoint, error) {
	if o.RSS == nil || o.UpstreamHeld == nil || len(o.Levels) == 0 {
		return nil, errors.New("bench: RSSOptions needs RSS, UpstreamHeld and Levels")
	}
	if len(o.Devices) == 0 {
		o.Devices = NewFleet(1000)
	}
	if o.Settle <= 0 {
		o.Settle = 500 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 480
	}
	hp, err := NewHeldPings(o.Target, o.Devices, o.Heartbeat)
	if err != nil {
		return nil, err
	}
	defer hp.Close()
	var points []RSSPoint
	read := func(n int) error {
		time.Sleep(o.Settle)
		rss, err := o.RSS()
		if err != nil {
			return err
		}
		points = append(points, RSSPoint{Held: n, RSS: rss})
		return nil
	}
	if err := read(0); err != nil {
		return nil, err
	}
	for _, n := range o.Levels {
		// Ramp in steps, each waiting until the upstream holds them all: a burst of thousands
		// of connects overflows listen backlogs, and a proxy whose upstream connect times out
		// answers 502 and the Ping is lost.
		for hp.Len() < n {
			step := min(n, hp.Len()+rampStep)
			if err := hp.Grow(ctx, step); err != nil {
				return points, err
			}
			deadline := time.Now().Add(30 * time.Second)
			for o.UpstreamHeld() < int64(step) {
				if time.Now().After(deadline) {
					return points, fmt.Errorf("bench: upstream holds %d of %d Pings after 30 s", o.UpstreamHeld(), step)
				}
				if err := ctx.Err(); err != nil {
					return points, err
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if err := read(n); err != nil {
			return points, err
		}
	}
	return points, nil
}

// rampStep is how many held Pings are opened before waiting for the upstream to hold them.
const rampStep = 500

// Slope is the least-squares bytes of RSS per held Ping over points.
func Slope(points []RSSPoint) float64 {
	if len(points) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, p := range points {
		x, y := float64(p.Held), float64(p.RSS)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	n := float64(len(points))
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}
