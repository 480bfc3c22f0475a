package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/easgate/easgate/gateway"
)

// runServe runs the gateway until SIGINT or SIGTERM, then drains: held Pings are answered so
// devices re-ping another node, requests in flight finish.
func runServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/easgate/easgate.yaml", "configuration file")
	if fs.Parse(args) != nil || fs.NArg() != 0 {
		return 2
	}
	cfg, err := gateway.LoadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(stderr, cfg.Log.Level)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := gateway.Open(ctx, cfg, log)
	if err != nil {
		log.Error("start-up failed", "err", err.Error())
		return 1
	}
	err = app.Run(ctx)
	if cerr := app.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Error("stopped with an error", "err", err.Error())
		return 1
	}
	log.Info("stopped")
	return 0
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// runConfig: `gateway config example` prints the commented example; `gateway config check FILE`
// validates a file and reports every problem at once.
func runConfig(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && args[0] == "example":
		io.WriteString(stdout, gateway.ExampleConfig)
		return 0
	case len(args) == 2 && args[0] == "check":
		if _, err := gateway.LoadConfig(args[1]); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintln(stdout, "configuration is valid")
		return 0
	}
	fmt.Fprintln(stderr, "usage: gateway config example | gateway config check FILE")
	return 2
}
