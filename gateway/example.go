package gateway

import _ "embed"

// ExampleConfig is a complete, commented configuration: `gateway config example` prints it and
// examples/easgate.yaml is a copy (a test keeps the two equal and checks that it loads).
//
//go:embed example.yaml
var ExampleConfig string
