package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/notifier"
)

// The admin REST API, under /admin/v1/ (already authenticated by handleAdmin):
//
//	GET    devices?user=&state=&action=&after_user=&after_device=&limit=
//	POST   devices                               {"user","device_id","device_type","info"}  enrol
//	GET    devices/{user}/{device}
//	DELETE devices/{user}/{device}               forget
//	POST   devices/{user}/{device}/allow|block|clear|release|unenroll|cancel-wipe|clear-suspicion
//	POST   devices/{user}/{device}/wipe          {"account_only": bool}
//	POST   devices/{user}/{device}/compliance    an MDM compliance report (decision.Compliance)
//	GET    policy          PUT policy            the access policy (validated before it applies)
//	GET    audit?user=&device=&since=&until=&before_id=&limit=
//
// "release" is the admin allow of a quarantined device (an allow override); "clear" returns a
// device to the policy. Every change is audited with the actor "admin-api".
func (s *Server) serveAdminAPI(ctx *fasthttp.RequestCtx, path string) {
	if s.admin == nil {
		adminJSONError(ctx, 404, "device administration is not enabled")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const actor = "admin-api"
	parts := strings.Split(path, "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			adminJSONError(ctx, 400, "malformed path")
			return
		}
		parts[i] = u
	}
	method := string(ctx.Method())
	var (
		v   any
		err error
	)
	switch {
	case len(parts) == 1 && parts[0] == "devices" && method == "GET":
		v, err = s.listDevices(c, ctx.QueryArgs())
	case len(parts) == 1 && parts[0] == "devices" && method == "POST":
		var r struct {
			User       string              `json:"user"`
			DeviceID   string              `json:"device_id"`
			DeviceType string              `json:"device_type"`
			Info       decision.DeviceInfo `json:"info"`
		}
		if !decodeJSON(ctx, &r) {
			return
		}
		v, err = s.admin.Register(c, decision.Registration{User: r.User, DeviceID: r.DeviceID, DeviceType: r.DeviceType, Info: r.Info}, actor)
	case len(parts) == 3 && parts[0] == "devices" && method == "GET":
		v, err = s.admin.Device(c, parts[1], parts[2])
	case len(parts) == 3 && parts[0] == "devices" && method == "DELETE":
		err = s.admin.Forget(c, parts[1], parts[2], actor)
		v = map[string]string{"result": "forgotten"}
	case len(parts) == 4 && parts[0] == "devices" && method == "POST":
		v, err = s.deviceAction(c, ctx, parts[1], parts[2], parts[3], actor)
		if v == nil && err == nil {
			return // deviceAction answered (bad body)
		}
	case len(parts) == 1 && parts[0] == "policy" && method == "GET":
		v = s.admin.Policy()
	case len(parts) == 1 && parts[0] == "policy" && method == "PUT":
		var p decision.Policy
		if !decodeJSON(ctx, &p) {
			return
		}
		if verr := p.Validate(); verr != nil {
			adminJSONError(ctx, 400, verr.Error())
			return
		}
		if err = s.admin.SetPolicy(c, p, actor); err == nil {
			v = s.admin.Policy()
		}
	case len(parts) == 1 && parts[0] == "audit" && method == "GET":
		v, err = s.audit(c, ctx.QueryArgs())
	case len(parts) == 1 && parts[0] == "outbox" && method == "GET" && s.notices != nil:
		items, lerr := s.notices.n.Outbox().List(c, notifier.ListFilter{State: notifier.State(ctx.QueryArgs().Peek("state")),
			User: string(ctx.QueryArgs().Peek("user")), Limit: ctx.QueryArgs().GetUintOrZero("limit")})
		v, err = map[string]any{"messages": items}, lerr
	case len(parts) == 3 && parts[0] == "outbox" && parts[2] == "requeue" && method == "POST" && s.notices != nil:
		err = s.notices.n.Outbox().Requeue(c, parts[1], time.Now())
		v = map[string]string{"result": "requeued"}
	default:
		adminJSONError(ctx, 404, "no such endpoint")
		return
	}
	if err != nil {
		s.adminError(ctx, err)
		return
	}
	adminJSON(ctx, 200, v)
}

func (s *Server) deviceAction(c context.Context, ctx *fasthttp.RequestCtx, user, id, verb, actor string) (v any, err error) {
	defer func() {
		if err != nil || s.notices == nil {
			return
		}
		switch verb {
		case "block":
			s.notices.admin(notifier.EventBlock, user, id, "admin_block")
		case "release", "allow":
			s.notices.admin(notifier.EventRelease, user, id, "admin_allow")
		case "wipe":
			s.notices.admin(notifier.EventWipe, user, id, "wipe_requested")
		}
	}()
	switch verb {
	case "allow", "release":
		return s.admin.SetOverride(c, user, id, decision.OverrideAllow, actor)
	case "block":
		return s.admin.SetOverride(c, user, id, decision.OverrideBlock, actor)
	case "clear":
		return s.admin.SetOverride(c, user, id, decision.OverrideNone, actor)
	case "unenroll":
		return s.admin.Unenroll(c, user, id, actor)
	case "clear-suspicion":
		return s.admin.ClearSuspicion(c, user, id, actor)
	case "cancel-wipe":
		return s.admin.CancelWipe(c, user, id, actor)
	case "wipe":
		var r struct {
			AccountOnly bool `json:"account_only"`
		}
		if len(ctx.PostBody()) > 0 && !decodeJSON(ctx, &r) {
			return nil, nil
		}
		kind := decision.WipeFull
		if r.AccountOnly {
			// A device known to speak EAS before 16.1 cannot do an account-only wipe; refuse
			// now rather than let it stay pending (it is never turned into a full wipe).
			if err := s.AccountOnlyWipeCheck(c, user, id); err != nil {
				return nil, err
			}
			kind = decision.WipeAccountOnly
		}
		return s.admin.RequestWipe(c, user, id, kind, actor)
	case "compliance":
		var r decision.Compliance
		if !decodeJSON(ctx, &r) {
			return nil, nil
		}
		return s.admin.ReportCompliance(c, user, id, r, actor)
	}
	return nil, errAdminNotFound
}

var errAdminNotFound = errors.New("gateway: no such endpoint")

func (s *Server) listDevices(c context.Context, q *fasthttp.Args) (any, error) {
	f := decision.DeviceFilter{
		User:          string(q.Peek("user")),
		State:         string(q.Peek("state")),
		AfterUser:     string(q.Peek("after_user")),
		AfterDeviceID: string(q.Peek("after_device")),
		Limit:         q.GetUintOrZero("limit"),
	}
	if a := q.Peek("action"); len(a) > 0 {
		act, err := decision.ParseAction(string(a))
		if err != nil {
			return nil, &adminBadRequest{err.Error()}
		}
		f.LastAction = &act
	}
	devs, err := s.admin.Devices(c, f)
	if err != nil {
		return nil, err
	}
	if devs == nil {
		devs = []decision.Device{}
	}
	return map[string]any{"devices": devs}, nil
}

func (s *Server) audit(c context.Context, q *fasthttp.Args) (any, error) {
	f := decision.AuditFilter{
		User:     string(q.Peek("user")),
		DeviceID: string(q.Peek("device")),
		Limit:    q.GetUintOrZero("limit"),
	}
	if b := q.Peek("before_id"); len(b) > 0 {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return nil, &adminBadRequest{"before_id must be an integer"}
		}
		f.BeforeID = n
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if b := q.Peek(t.name); len(b) > 0 {
			v, err := time.Parse(time.RFC3339, string(b))
			if err != nil {
				return nil, &adminBadRequest{t.name + " must be an RFC 3339 time"}
			}
			*t.dst = v
		}
	}
	entries, err := s.admin.Audit(c, f)
	if err != nil {
		return nil, err
	}
	if entries == nil {
		entries = []decision.AuditEntry{}
	}
	return map[string]any{"entries": entries}, nil
}

type adminBadRequest struct{ msg string }

func (e *adminBadRequest) Error() string { return e.msg }

// adminError maps decision errors onto admin API statuses. Validation messages are the admin's
// own input echoed back, so they are safe to return; store failures are not detailed.
func (s *Server) adminError(ctx *fasthttp.RequestCtx, err error) {
	var br *adminBadRequest
	switch {
	case errors.As(err, &br):
		adminJSONError(ctx, 400, br.msg)
	case errors.Is(err, errAdminNotFound):
		adminJSONError(ctx, 404, "no such endpoint")
	case errors.Is(err, decision.ErrNotFound), errors.Is(err, notifier.ErrNotFound):
		adminJSONError(ctx, 404, "no such device")
	case errors.Is(err, decision.ErrInvalidState):
		adminJSONError(ctx, 409, err.Error())
	default:
		s.log.Error("admin api", "err", err.Error())
		adminJSONError(ctx, 500, "internal error")
	}
}

// decodeJSON reads a JSON request body strictly (unknown fields are errors), answering 400
// itself when it fails.
func decodeJSON(ctx *fasthttp.RequestCtx, v any) bool {
	dec := json.NewDecoder(strings.NewReader(string(ctx.PostBody())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminJSONError(ctx, 400, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}
