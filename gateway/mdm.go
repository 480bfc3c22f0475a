package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/notifier"
)

// The MDM webhook: management systems push compliance reports to POST /mdm/v1/compliance on
// the admin listener, signed instead of carrying the admin token (MDMs send webhooks with a
// shared secret, not a bearer token of ours). The signature is the one easgate's own webhooks
// carry: header X-Easgate-Signature "t=<unix>,v1=<hex HMAC-SHA256 of t + "." + body>" with
// admin.mdm_webhook_secret, at most 5 minutes old. The body is one report or a batch:
//
//	{"user": "jdoe@example.com", "device_id": "ABC123", "compliance": {...decision.Compliance}}
//	{"reports": [ {...}, {...} ]}
//
// Each report replaces the device's compliance facts (decision.Engine.ReportCompliance) and is
// audited with the actor "mdm:<source>". The answer lists the result per report.
const mdmPath = "/mdm/v1/compliance"

type mdmReport struct {
	User       string              `json:"user"`
	DeviceID   string              `json:"device_id"`
	Compliance decision.Compliance `json:"compliance"`
}

func (s *Server) serveMDM(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		adminJSONError(ctx, 405, "POST only")
		return
	}
	secret := s.cfg.Admin.MDMWebhookSecret
	if secret == "" || s.admin == nil {
		adminJSONError(ctx, 404, "the MDM webhook is not configured")
		return
	}
	body := ctx.PostBody()
	if err := notifier.VerifyWebhookSignature([]byte(secret), string(ctx.Request.Header.Peek("X-Easgate-Signature")), body, time.Now(), 5*time.Minute); err != nil {
		adminJSONError(ctx, 401, "bad or missing X-Easgate-Signature")
		return
	}
	var batch struct {
		mdmReport
		Reports []mdmReport `json:"reports"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&batch); err != nil {
		adminJSONError(ctx, 400, "invalid JSON body: "+err.Error())
		return
	}
	reports := batch.Reports
	if batch.User != "" || batch.DeviceID != "" {
		reports = append(reports, batch.mdmReport)
	}
	if len(reports) == 0 || len(reports) > 1000 {
		adminJSONError(ctx, 400, "between 1 and 1000 reports per request")
		return
	}
	type result struct {
		User     string `json:"user"`
		DeviceID string `json:"device_id"`
		Result   string `json:"result"`
	}
	out := make([]result, 0, len(reports))
	for _, r := range reports {
		user, ok := s.names.canonicalUser(r.User)
		res := result{User: r.User, DeviceID: r.DeviceID, Result: "recorded"}
		if !ok || r.DeviceID == "" {
			res.Result = "invalid user or device_id"
			out = append(out, res)
			continue
		}
		c, cancel := context.WithTimeout(s.baseCtx, 5*time.Second)
		_, err := s.admin.ReportCompliance(c, user, r.DeviceID, r.Compliance, "mdm:"+r.Compliance.Source)
		cancel()
		if err != nil {
			res.Result = "refused: " + err.Error()
		}
		out = append(out, res)
	}
	adminJSON(ctx, 200, map[string]any{"results": out})
}
