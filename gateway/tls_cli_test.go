package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/decision"
)

// TestClientListenerTLS serves the client listener over TLS with a certificate from the
// configuration and refuses TLS 1.1.
func TestClientListenerTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	g := startGateway(t, func(c *Config, _ *decision.Policy) {
		c.Listen.TLSCert, c.Listen.TLSKey = certFile, keyFile
	})
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	req, _ := http.NewRequest("POST", "https://"+g.addr+"/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=TLS1&DeviceType=iPhone", strings.NewReader(string(syncRequest)))
	req.SetBasicAuth("jdoe", "pw")
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || g.up.hits.Load() != 1 {
		t.Fatalf("over TLS: %d", resp.StatusCode)
	}
	old := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11}
	if c, err := tls.Dial("tcp", g.addr, old); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 accepted")
	}
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "easgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestHeldPingOverTLS: a Ping held on a TLS connection is parked like a plain one (the poller
// watches the socket under the TLS layer). Its answer reaches the device through TLS, and a
// device that hangs up — after a TLS close_notify, which is bytes, not a hang-up, until the FIN
// follows — has its upstream request cancelled and its slot released.
func TestHeldPingOverTLS(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t, t.TempDir())
	g := startGateway(t, func(c *Config, _ *decision.Policy) {
		c.Listen.TLSCert, c.Listen.TLSKey = certFile, keyFile
	})
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	ping := func(device string) *tls.Conn {
		c, err := tls.Dial("tcp", g.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		body := pingRequest(300)
		fmt.Fprintf(c, "POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=jdoe&DeviceId=%s&DeviceType=iPhone HTTP/1.1\r\nHost: gw\r\nAuthorization: %s\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: %d\r\n\r\n%s",
			device, basic("jdoe", "pw"), len(body), body)
		return c
	}

	// Answered by the upstream after a short hold: the device reads it over TLS.
	g.up.mu.Lock()
	g.up.pingHold = 300 * time.Millisecond
	g.up.mu.Unlock()
	c := ping("TLSP1")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(got), "HTTP/1.1 200") || !strings.Contains(string(got), "Connection: close") {
		t.Fatalf("held Ping over TLS: %q %v", got, err)
	}

	// Abandoned: 50 devices hang up while held.
	g.up.mu.Lock()
	g.up.pingHold = time.Hour
	g.up.mu.Unlock()
	var conns []*tls.Conn
	for i := range 50 {
		conns = append(conns, ping(fmt.Sprintf("TLSP%d", i+10)))
	}
	waitFor(t, func() bool { return g.up.activePings.Load() == 50 && g.srv.pings.held() == 50 })
	for _, c := range conns {
		c.Close() // close_notify, then FIN
	}
	waitFor(t, func() bool {
		return g.up.activePings.Load() == 0 && g.srv.pings.held() == 0 && g.srv.holding.Load() == 0
	})
}
