package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/quarantine"
)

// answerLocally answers a request whose decision is not Allow, without the backend: the
// quarantine responder builds the answer for the command and protocol version. The commands a
// device needs to become compliant pass through (quarantine.PassThrough).
func (s *Server) answerLocally(ctx *fasthttp.RequestCtx, st *reqState) error {
	// A wipe-pending device's Provision is answered with the wipe directive here, never by
	// the upstream (provision.go answerWipe).
	if st.dec.Action == decision.Wipe || st.dec.Action == decision.AccountOnlyWipe {
		if done, err := s.answerWipe(ctx, st); done {
			return err
		}
	}
	if quarantine.PassThrough(st.req.Cmd, st.dec) {
		return s.forward(ctx, st)
	}
	a, err := s.responder.Answer(&st.req, st.dec, ctx.PostBody(), time.Now())
	if err != nil {
		return err
	}
	if s.notices != nil && st.dec.Action == decision.Quarantine {
		s.notices.quarantined(st, s.responder.Language(&st.req))
	}
	if a.Hold <= 0 {
		writeAnswer(&ctx.Response, &a)
		return nil
	}
	// A quarantined device's Ping (or waiting Sync) with nothing new is held like a real one,
	// so the device keeps its usual rhythm instead of polling in a tight loop.
	return s.hold(ctx, st, func(hctx context.Context, finish func(*fasthttp.Response, error)) {
		var once sync.Once
		answer := func() {
			once.Do(func() {
				resp := fasthttp.AcquireResponse()
				writeAnswer(resp, &a)
				finish(resp, nil)
			})
		}
		t := time.AfterFunc(a.Hold, answer)
		// the hold's context ends when the device leaves, a newer Ping arrives, the gateway
		// drains — or after the answer, when the hold is released.
		context.AfterFunc(hctx, func() {
			t.Stop()
			answer()
		})
	})
}

func writeAnswer(resp *fasthttp.Response, a *quarantine.Answer) {
	resp.SetStatusCode(a.Status)
	for _, h := range a.Headers {
		resp.Header.Set(h.Name, h.Value)
	}
	if a.Body != nil {
		resp.Header.SetContentType(a.ContentType)
		resp.SetBody(a.Body)
	}
}
