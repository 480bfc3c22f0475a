package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/valyala/fasthttp"

	upstream "github.com/easgate/easgate/backends/eas"
	"github.com/easgate/easgate/eas"
)

// serveForwardProxy is -mode forward-proxy: a fasthttp server whose handler is only
// backends/eas Forward, the gateway's pass-through path without authentication or decisions.
// It is a lower bound for the gateway's cost and the template for adding the gateway itself.
// It serves until ctx ends or its standard input closes (the parent exited).
func serveForwardProxy(ctx context.Context, upstreamURL, listen string) error {
	if upstreamURL == "" || listen == "" {
		return errors.New("-mode forward-proxy needs -upstream and -listen")
	}
	up, err := upstream.New(upstream.Config{URL: upstreamURL})
	if err != nil {
		return err
	}
	defer up.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{
		Name:        "easbench-forward",
		Concurrency: 64 << 10,
		Handler: func(rc *fasthttp.RequestCtx) {
			opt := forwardOptions(rc.URI().QueryString())
			opt.ClientAddr = rc.RemoteIP().String()
			if err := up.Forward(context.Background(), &rc.Request, &rc.Response, opt); err != nil {
				var e *upstream.Error
				errors.As(err, &e)
				rc.Response.Reset()
				rc.SetStatusCode(e.StatusCode())
				if ra := e.RetryAfterHeader(); ra != "" {
					rc.Response.Header.Set("Retry-After", ra)
				}
			}
		},
	}
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); _ = srv.Shutdown() }()
	go func() { <-ctx.Done(); _ = srv.Shutdown() }()
	return srv.Serve(ln)
}

// forwardOptions classes a request by its command, read from either query form as the
// gateway reads it (a third of the fleet sends base64): a base64 Ping classed as an ordinary
// request would count against MaxRequestConns, and the 513th held one would be refused.
func forwardOptions(query []byte) upstream.ForwardOptions {
	var req eas.Request
	_ = eas.ParseQuery(query, &req) // unparsable: ClassNormal, as the upstream will refuse it
	opt := upstream.ForwardOptions{Idempotent: true}
	switch {
	case req.Cmd.LongPoll():
		opt.Class = upstream.ClassPing
	case req.Cmd != eas.CmdNone && !req.Cmd.Idempotent():
		opt.Class, opt.Idempotent = upstream.ClassSend, false
	}
	return opt
}

// startForwardProxy runs this program in -mode forward-proxy as a child pinned to cpus. It
// returns the proxy's EAS URL and PID (pinning execs taskset in place, so the PID stays).
func startForwardProxy(upstreamURL, cpus string) (string, int, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	addr := l.Addr().String()
	l.Close()
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(exe, "-mode", "forward-proxy", "-upstream", upstreamURL, "-listen", addr, "-client-cpus", cpus)
	cmd.Env = os.Environ()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + addr + "/Microsoft-Server-ActiveSync", cmd.Process.Pid, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", 0, nil, fmt.Errorf("forward proxy did not listen on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
