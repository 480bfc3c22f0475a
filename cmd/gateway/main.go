// Command gateway is easgate: the conditional-access gateway for mobile email.
//
//	gateway serve --config FILE     run the gateway
//	gateway config example          print a complete, commented example configuration
//	gateway devices ...             drive the admin API from a shell
//	gateway wbxml decode|encode     turn captured EAS WBXML into XML and back
//	gateway version                 print the version
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: gateway serve|config|devices|wbxml|version ...")
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stderr)
	case "config":
		return runConfig(args[1:], stdout, stderr)
	case "devices":
		return runDevices(args[1:], stdout, stderr)
	case "wbxml":
		return runWBXML(args[1:], stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "easgate", version)
		return 0
	default:
		fmt.Fprintf(stderr, "gateway: unknown command %q\nusage: gateway serve|config|devices|wbxml|version ...\n", args[0])
		return 2
	}
}
