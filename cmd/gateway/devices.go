package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// runDevices drives the admin API from a shell: gateway devices list|show|allow|block|forget|
// wipe|cancel-wipe|release. It reads EASGATE_ADMIN_URL (default http://127.0.0.1:9090) and
// EASGATE_ADMIN_TOKEN.
func runDevices(args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, `usage: gateway devices list [-user U] [-action A] [-limit N]
       gateway devices show USER DEVICEID
       gateway devices allow|block|release|forget|cancel-wipe USER DEVICEID
       gateway devices wipe USER DEVICEID [-account-only]
       gateway devices audit [-user U] [-device D] [-limit N]
environment: EASGATE_ADMIN_URL (default http://127.0.0.1:9090), EASGATE_ADMIN_TOKEN`)
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	c := adminClient{base: strings.TrimRight(envOr("EASGATE_ADMIN_URL", "http://127.0.0.1:9090"), "/"), token: os.Getenv("EASGATE_ADMIN_TOKEN")}
	if c.token == "" {
		fmt.Fprintln(stderr, "gateway devices: EASGATE_ADMIN_TOKEN is not set")
		return 2
	}
	verb, rest := args[0], args[1:]
	var method, path string
	var body any
	switch verb {
	case "list", "audit":
		fs := flag.NewFlagSet(verb, flag.ContinueOnError)
		fs.SetOutput(stderr)
		user := fs.String("user", "", "only this user")
		action := fs.String("action", "", "only devices whose last decision was this action (list)")
		device := fs.String("device", "", "only this device id (audit)")
		limit := fs.Int("limit", 100, "at most this many rows")
		if fs.Parse(rest) != nil || fs.NArg() != 0 {
			return usage()
		}
		q := url.Values{}
		for k, v := range map[string]string{"user": *user, "action": *action, "device": *device} {
			if v != "" {
				q.Set(k, v)
			}
		}
		q.Set("limit", fmt.Sprint(*limit))
		method, path = http.MethodGet, "/admin/v1/devices?"+q.Encode()
		if verb == "audit" {
			path = "/admin/v1/audit?" + q.Encode()
		}
	case "show", "allow", "block", "release", "forget", "cancel-wipe", "wipe":
		fs := flag.NewFlagSet(verb, flag.ContinueOnError)
		fs.SetOutput(stderr)
		accountOnly := fs.Bool("account-only", false, "wipe only the company account (EAS 16.1 AccountOnlyRemoteWipe)")
		// Flags may follow the positional arguments: gateway devices wipe USER ID --account-only.
		var pos []string
		for len(rest) > 0 {
			if fs.Parse(rest) != nil {
				return usage()
			}
			if fs.NArg() == 0 {
				break
			}
			pos = append(pos, fs.Arg(0))
			rest = fs.Args()[1:]
		}
		if len(pos) != 2 || (*accountOnly && verb != "wipe") {
			return usage()
		}
		dev := "/admin/v1/devices/" + url.PathEscape(pos[0]) + "/" + url.PathEscape(pos[1])
		switch verb {
		case "show":
			method, path = http.MethodGet, dev
		case "forget":
			method, path = http.MethodDelete, dev
		case "wipe":
			method, path = http.MethodPost, dev+"/wipe"
			body = map[string]bool{"account_only": *accountOnly}
		default:
			method, path = http.MethodPost, dev+"/"+verb
		}
	default:
		return usage()
	}
	out, err := c.do(method, path, body)
	if err != nil {
		fmt.Fprintf(stderr, "gateway devices %s: %v\n", verb, err)
		return 1
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") == nil {
		out = append(pretty.Bytes(), '\n')
	}
	stdout.Write(out)
	return 0
}

type adminClient struct {
	base, token string
}

func (c adminClient) do(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return out, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
