package main

import (
	"context"
	"fmt"
	"time"

	"github.com/easgate/easgate/bench"
	"github.com/easgate/easgate/bench/servers"
)

// startGateway runs the easgate gateway as its own process pinned to cpus, in front of
// upstreamURL (dir, if set, keeps its files; see servers.GatewayOptions.Dir), and, when
// warm > 0, sends two Syncs from each of the first warm devices of the fleet so that every
// device is registered (allowed) and its decision is cached before the measured rounds: the
// comparison is the steady state, not first contact.
func startGateway(ctx context.Context, upstreamURL, binary, dir, cpus string, warm int) (*servers.Gateway, error) {
	g, err := servers.NewGateway(servers.GatewayOptions{Upstream: upstreamURL, Binary: binary, Dir: dir, CPUs: cpus})
	if err != nil {
		return nil, err
	}
	if warm <= 0 {
		return g, nil
	}
	var mix bench.Mix
	mix[bench.CmdSync] = 1
	r, err := bench.Run(ctx, bench.Workload{
		Target:      g.URL,
		Devices:     bench.NewFleet(warm),
		Mix:         mix,
		Concurrency: 8,
		MaxRequests: int64(2 * warm),
		Duration:    max(time.Minute, time.Duration(warm)*20*time.Millisecond), // ≥ 50 first sightings/s
	})
	if err == nil && r.Errors > 0 {
		err = fmt.Errorf("gateway warm-up: %d of %d requests failed, first: %s\n%s", r.Errors, r.Requests, r.FirstError, g.LogTail(10))
	}
	if err != nil {
		g.Stop()
		return nil, err
	}
	time.Sleep(200 * time.Millisecond) // the decision cache's Sets become visible asynchronously
	return g, nil
}
