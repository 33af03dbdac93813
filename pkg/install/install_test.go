package install

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const flannel = `{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}`

// TestBinaryWhileRunning replaces a binary that is executing: no "text file busy", and the
// running process keeps its old inode.
func TestBinaryWhileRunning(t *testing.T) {
	dir := t.TempDir()
	if err := Binary("/bin/sleep", dir, "steer"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "steer"), "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// Writing in place is what fails with ETXTBSY; the atomic install must not.
	if err := os.WriteFile(filepath.Join(dir, "steer"), []byte("x"), 0o755); err == nil {
		t.Log("note: in-place write did not fail on this kernel")
	}
	if err := Binary("/bin/true", dir, "steer"); err != nil {
		t.Fatalf("install over a running binary: %v", err)
	}
	if out, err := exec.Command(filepath.Join(dir, "steer")).CombinedOutput(); err != nil {
		t.Fatalf("installed binary does not run: %v %s", err, out)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestConfigWrapsPrimary(t *testing.T) {
	dir := t.TempDir()
	c := Config{ConfDir: dir, Plugin: map[string]any{"kubeconfig": "/etc/cni/net.d/steer.d/steer.kubeconfig"}}
	if err := os.WriteFile(filepath.Join(dir, "10-flannel.conflist"), []byte(flannel), 0o644); err != nil {
		t.Fatal(err)
	}
	path, primary, err := Primary(dir)
	if err != nil || filepath.Base(path) != "10-flannel.conflist" {
		t.Fatalf("Primary = %s, %v", path, err)
	}
	if _, err := WriteConfig(c, path, primary); err != nil {
		t.Fatal(err)
	}
	var got struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type         string            `json:"type"`
			Kubeconfig   string            `json:"kubeconfig"`
			Delegates    []json.RawMessage `json:"delegates"`
			Capabilities map[string]bool   `json:"capabilities"`
		} `json:"plugins"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, ConfigName))
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	p := got.Plugins[0]
	if got.CNIVersion != "1.0.0" || p.Type != "steer" || p.Kubeconfig == "" || !p.Capabilities["portMappings"] {
		t.Errorf("config = %s", b)
	}
	if len(p.Delegates) != 1 || string(p.Delegates[0]) != flannel {
		t.Errorf("primary not carried verbatim: %s", p.Delegates)
	}
	// Steer's own config is never taken for the primary.
	if path, _, _ := Primary(dir); filepath.Base(path) != "10-flannel.conflist" {
		t.Errorf("Primary after install = %s", path)
	}
	// Uninstall: the runtime's first config is the primary again.
	if err := RemoveConfig(dir); err != nil {
		t.Fatal(err)
	}
	if err := RemoveConfig(dir); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "10-flannel.conflist" {
		t.Errorf("after uninstall: %v", entries)
	}
}

// TestSyncWaitsAndFollowsPrimary: no config until the primary appears; rewritten when it changes.
func TestSyncWaitsAndFollowsPrimary(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Sync(ctx, Config{ConfDir: dir}, 20*time.Millisecond, slog.New(slog.DiscardHandler), nil)
	}()
	steerConf := filepath.Join(dir, ConfigName)
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(steerConf); !os.IsNotExist(err) {
		t.Fatalf("config written before the primary exists: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-calico.conflist"), []byte(strings.Replace(flannel, "flannel", "calico", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { b, _ := os.ReadFile(steerConf); return strings.Contains(string(b), "calico") })
	if err := os.WriteFile(filepath.Join(dir, "10-calico.conflist"), []byte(strings.Replace(flannel, "flannel", "calico-v2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { b, _ := os.ReadFile(steerConf); return strings.Contains(string(b), "calico-v2") })
	// Uninstall (the preStop hook) removes Steer's config while steerd still runs: Sync stops
	// rather than write it again.
	if err := RemoveConfig(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sync still running after uninstall")
	}
	cancel()
	if _, err := os.Stat(steerConf); !os.IsNotExist(err) {
		t.Errorf("config written again after uninstall: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
