package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the webhook signature: "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" keyed with WebhookConfig.Secret>". The timestamp is the time of the attempt, so a
// receiver can reject replays older than its tolerance.
const SignatureHeader = "X-Easgate-Signature"

// EventIDHeader carries the outbox row id, the same on every retry: receivers deduplicate on it.
const EventIDHeader = "X-Easgate-Event-Id"

// Errors of VerifyWebhookSignature.
var (
	ErrSignatureMalformed = errors.New("notifier: webhook signature header malformed")
	ErrSignatureMismatch  = errors.New("notifier: webhook signature mismatch")
	ErrSignatureExpired   = errors.New("notifier: webhook signature timestamp outside tolerance")
)

// SignWebhook returns the SignatureHeader value for body sent at t.
func SignWebhook(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhookSignature checks a SignatureHeader value against body, in constant time, and
// that its timestamp is within tolerance of now. Receivers (and tests) use it.
func VerifyWebhookSignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMalformed
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil {
				return ErrSignatureMalformed
			}
			sigs = append(sigs, b)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMalformed
	}
	want := webhookMAC(secret, ts, body)
	match := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			match = true
		}
	}
	if !match {
		return ErrSignatureMismatch
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureExpired
	}
	return nil
}

type webhookSender struct {
	cfg    WebhookConfig
	client *http.Client
}

func newWebhookSender(cfg WebhookConfig) (*webhookSender, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if cfg.CAFile != "" {
		pool, err := loadCAFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("notifier: webhook: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &webhookSender{cfg: cfg, client: &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// A redirect could send the signed body elsewhere; treat it as an answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// send POSTs body to url. Errors are *DeliveryError: 4xx other than 408 and 429 is permanent;
// 3xx, 5xx, 408, 429 and transport failures are temporary.
func (w *webhookSender) send(ctx context.Context, id, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &DeliveryError{Permanent: true, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "easgate-notifier")
	req.Header.Set(EventIDHeader, id)
	req.Header.Set(SignatureHeader, SignWebhook([]byte(w.cfg.Secret), time.Now(), body))
	resp, err := w.client.Do(req)
	if err != nil {
		return &DeliveryError{Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests:
		return &DeliveryError{Code: c, Err: fmt.Errorf("webhook answered %s", resp.Status)}
	case c >= 400 && c < 500:
		return &DeliveryError{Permanent: true, Code: c, Err: fmt.Errorf("webhook answered %s", resp.Status)}
	default:
		return &DeliveryError{Code: c, Err: fmt.Errorf("webhook answered %s", resp.Status)}
	}
}
