package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleConfigLoads(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := strings.ReplaceAll(ExampleConfig, "/etc/easgate/tls/", dir+"/")
	env := map[string]string{"EASGATE_ADMIN_TOKEN": strings.Repeat("a", 40), "EASGATE_PORTAL_KEY": strings.Repeat("b", 40), "EASGATE_MDM_SECRET": strings.Repeat("c", 40), "EASGATE_POLICY_KEY_SECRET": strings.Repeat("d", 40)}
	c, err := ParseConfig([]byte(text), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.policy == nil || len(c.policy.Rules) != 1 || c.policy.MaxDevicesPerUser != 10 || len(c.policy.Compliance) != 1 {
		t.Fatalf("policy not read: %+v", c.policy)
	}
	if c.Quarantine.Organization != "Example Corp IT" || !c.OAuth.TokenService.Enabled || len(c.OAuth.Issuers) != 1 {
		t.Fatalf("sections not read: %+v", c)
	}
	copyOnDisk, err := os.ReadFile("../examples/easgate.yaml")
	if err != nil || string(copyOnDisk) != ExampleConfig {
		t.Fatal("examples/easgate.yaml differs from gateway/example.yaml: copy it again")
	}
}
