package install

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// multusThin is 00-multus.conf as Multus v4.3.0's thin entrypoint writes it around flannel
// (its template, with --namespace-isolation, --global-namespaces and --multus-log-level).
const multusThin = `{
        "cniVersion": "0.3.1",
        "name": "multus-cni-network",
        "type": "multus",
        "capabilities": {"portMappings":true},
        "namespaceIsolation": true,
        "globalNamespaces": "default,shared",
        "logLevel": "verbose",
        "cniConf": "/host/etc/cni/multus/net.d",
        "cniDir": "/var/lib/cni/multus-custom",
        "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
        "delegates": [
                {"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"flannel"}]}
        ]
}
`

// multusThick is the thick plugin's 00-multus.conf: the shim, its cluster network a path in
// the Multus daemon's container.
const multusThick = `{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus-shim","logLevel":"verbose","logToStderr":true,"clusterNetwork":"/host/etc/cni/net.d/10-flannel.conflist","daemonSocketDir":"/run/multus"}`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// firstConfigWatch checks, as often as it can until stopped, that the runtime's first config
// (by name, as libcni and containerd pick it) exists and is Multus' or Steer's, never missing
// or broken, and returns what it saw.
func firstConfigWatch(t *testing.T, dir string) (stop func() []string) {
	t.Helper()
	var done atomic.Bool
	var wg sync.WaitGroup
	var seen []string
	var bad []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for last := false; !last; {
			last = done.Load() // one more look once stopped: the final state counts too
			entries, err := os.ReadDir(dir)
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			var names []string
			for _, e := range entries {
				switch filepath.Ext(e.Name()) {
				case ".conf", ".conflist", ".json":
					names = append(names, e.Name())
				}
			}
			slices.Sort(names)
			if len(names) == 0 {
				bad = append(bad, "no config")
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, names[0]))
			if err != nil {
				continue // renamed between the listing and the read: the runtime lists again
			}
			plugin, _ := multusPlugin(b)
			switch {
			case isSteerConfig(b):
				if len(seen) == 0 || seen[len(seen)-1] != "steer" {
					seen = append(seen, "steer")
				}
			case plugin != nil:
				if len(seen) == 0 || seen[len(seen)-1] != "multus" {
					seen = append(seen, "multus")
				}
			default:
				bad = append(bad, names[0]+": "+string(b))
			}
		}
	}()
	return func() []string {
		done.Store(true)
		wg.Wait()
		if len(bad) > 0 {
			t.Errorf("the runtime's first config was missing or broken: %q", bad[:min(len(bad), 3)])
		}
		return seen
	}
}

func steerPlugin(t *testing.T, dir string) map[string]json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Plugins []map[string]json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(b, &l); err != nil || len(l.Plugins) != 1 {
		t.Fatalf("Steer's config %s: %v", b, err)
	}
	return l.Plugins[0]
}

// Thin Multus on the node: Steer's config is written, then Multus' set aside, with the node's
// first config Multus' or Steer's at every moment; Multus' keys carry over (cniDir as
// multusCNIDir, kubeconfig when Steer has none). A Multus DaemonSet still running writes its
// config again, wrapping Steer's: taken over again. Uninstall restores Multus' file as it was.
func TestTakeOverThinMultus(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-flannel.conflist"), flannel)
	writeFile(t, filepath.Join(dir, "00-multus.conf"), multusThin)
	writeFile(t, filepath.Join(dir, "multus.d", "multus.kubeconfig"), "apiVersion: v1\n")
	log := slog.New(slog.DiscardHandler)
	c := Config{ConfDir: dir, Plugin: map[string]any{"socketPath": "/run/steer/steerd.sock"}}

	stop := firstConfigWatch(t, dir)
	if _, err := Apply(context.Background(), c, log); err != nil {
		t.Fatal(err)
	}
	if seen := stop(); seen[len(seen)-1] != "steer" || len(seen) > 2 {
		t.Errorf("first configs seen %v, want (multus then) steer", seen)
	}
	if _, err := os.Stat(filepath.Join(dir, "00-multus.conf")); !os.IsNotExist(err) {
		t.Errorf("00-multus.conf still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "00-multus.conf"+MultusBackupSuffix)); err != nil || string(b) != multusThin {
		t.Errorf("Multus' config not kept as it was: %v %s", err, b)
	}
	p := steerPlugin(t, dir)
	for k, want := range map[string]string{
		"type": `"steer-shim"`, "socketPath": `"/run/steer/steerd.sock"`, "namespaceIsolation": "true",
		"globalNamespaces": `"default,shared"`, "logLevel": `"verbose"`, "multusCNIDir": `"/var/lib/cni/multus-custom"`,
		"kubeconfig": `"/etc/cni/net.d/multus.d/multus.kubeconfig"`, "capabilities": `{"portMappings":true}`,
		"delegates": "[" + flannel + "]",
	} {
		if string(p[k]) != want {
			t.Errorf("%s = %s, want %s", k, p[k], want)
		}
	}
	for _, k := range []string{"cniConf", "cniDir", "clusterNetwork"} {
		if _, ok := p[k]; ok {
			t.Errorf("%s carried: %s", k, p[k])
		}
	}

	// Multus' thin entrypoint, still running, wraps the first config it finds: Steer's.
	wrapping := strings.Replace(multusThin, `{"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"flannel"}]}`,
		`{"cniVersion":"1.0.0","name":"steer-cni-network","plugins":[{"type":"steer"}]}`, 1)
	writeFile(t, filepath.Join(dir, "00-multus.conf"), wrapping)
	if _, err := Apply(context.Background(), c, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "00-multus.conf")); !os.IsNotExist(err) {
		t.Errorf("the Multus config wrapping Steer's is still there: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "00-multus.conf"+MultusBackupSuffix)); string(b) != multusThin {
		t.Errorf("the kept config was replaced: %s", b)
	}
	if string(steerPlugin(t, dir)["multusCNIDir"]) != `"/var/lib/cni/multus-custom"` {
		t.Error("keys not carried from the kept config")
	}

	// Uninstall, while steerd's Sync still runs (the preStop hook): Multus' config back first,
	// then Steer's removed, and Sync stops instead of taking the node over again.
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	synced := make(chan error, 1)
	go func() { synced <- Sync(sctx, c, time.Millisecond, log, nil) }()
	time.Sleep(20 * time.Millisecond)
	stop = firstConfigWatch(t, dir)
	path, err := Uninstall(dir)
	if err != nil || path != filepath.Join(dir, "00-multus.conf") {
		t.Fatalf("Uninstall = %s %v", path, err)
	}
	select {
	case err := <-synced:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sync still running after uninstall")
	}
	if seen := stop(); seen[len(seen)-1] != "multus" || len(seen) > 2 {
		t.Errorf("first configs seen during uninstall %v, want (steer then) multus", seen)
	}
	b, err := os.ReadFile(filepath.Join(dir, "00-multus.conf"))
	fi, _ := os.Stat(filepath.Join(dir, "00-multus.conf"))
	if err != nil || string(b) != multusThin || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored %v %v %s", err, fi.Mode(), b)
	}
	if _, ok, err := RestoreMultus(dir); ok || err != nil {
		t.Errorf("second restore: %v %v", ok, err)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"00-multus.conf", "10-flannel.conflist", "multus.d"}) {
		t.Errorf("after uninstall: %v", names)
	}
}

// Thick Multus: the shim's config is taken over the same way; its cluster network, a path in
// Multus' container, is not carried: Steer wraps the node's primary config.
func TestTakeOverThickMultus(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-flannel.conflist"), flannel)
	writeFile(t, filepath.Join(dir, "00-multus.conf"), multusThick)
	m, err := FindMultus(dir)
	if err != nil || m == nil || !m.Thick {
		t.Fatalf("FindMultus = %+v, %v", m, err)
	}
	if _, dropped := m.Carried(); !slices.Equal(dropped, []string{"daemonSocketDir"}) {
		t.Errorf("dropped %v", dropped)
	}
	if _, err := Apply(context.Background(), Config{ConfDir: dir, Plugin: map[string]any{"socketPath": "/run/steer/steerd.sock"}}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	p := steerPlugin(t, dir)
	if string(p["delegates"]) != "["+flannel+"]" || p["clusterNetwork"] != nil || string(p["logLevel"]) != `"verbose"` {
		t.Errorf("Steer's plugin %v", p)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "00-multus.conf"+MultusBackupSuffix)); string(b) != multusThick {
		t.Errorf("kept %s", b)
	}
}

// A Multus conflist (the thin entrypoint's template from CNI 1.0.0) with an auxiliary chain:
// the chain's plugins live beside the cluster network file, so Steer's config names the
// primary's path (as the host sees it) as clusterNetwork. An operator's Multus config whose
// clusterNetwork is a network name keeps it, and then needs no primary file.
func TestTakeOverMultusConflist(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-flannel.conflist"), flannel)
	writeFile(t, filepath.Join(dir, "00-multus.conflist"), `{"cniVersion":"1.0.0","name":"multus-cni-network","plugins":[{"type":"multus",
	 "auxiliaryCNIChainName":"vendor-chain","kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","delegates":[`+flannel+`]}]}`)
	c := Config{ConfDir: dir, HostConfDir: "/etc/cni/net.d", Plugin: map[string]any{"kubeconfig": "/etc/cni/net.d/steer.d/steer.kubeconfig"}}
	if _, err := Apply(context.Background(), c, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	p := steerPlugin(t, dir)
	if string(p["clusterNetwork"]) != `"/etc/cni/net.d/10-flannel.conflist"` || p["delegates"] != nil ||
		string(p["auxiliaryCNIChainName"]) != `"vendor-chain"` || string(p["kubeconfig"]) != `"/etc/cni/net.d/steer.d/steer.kubeconfig"` {
		t.Errorf("Steer's plugin %v", p)
	}

	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "05-multus.conflist"), `{"cniVersion":"1.0.0","name":"multus-cni-network","plugins":[{"type":"multus",
	 "clusterNetwork":"calico","defaultNetworks":["monitoring"],"capabilities":{"bandwidth":true}}]}`)
	if _, err := Apply(context.Background(), Config{ConfDir: dir, Plugin: map[string]any{"socketPath": "/run/steer/steerd.sock"}}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	p = steerPlugin(t, dir)
	if string(p["clusterNetwork"]) != `"calico"` || string(p["defaultNetworks"]) != `["monitoring"]` || string(p["capabilities"]) != `{"bandwidth":true}` || p["delegates"] != nil {
		t.Errorf("Steer's plugin %v", p)
	}
	if _, err := os.Stat(filepath.Join(dir, "05-multus.conflist"+MultusBackupSuffix)); err != nil {
		t.Error(err)
	}
}

// A Multus config that would make Steer's invalid is not taken over: Steer's is not written,
// Multus' stays the node's config.
func TestTakeOverRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-flannel.conflist"), flannel)
	writeFile(t, filepath.Join(dir, "00-multus.conf"), `{"cniVersion":"0.3.1","name":"m","type":"multus","kubeconfig":"relative/kc","delegates":[`+flannel+`]}`)
	_, err := Apply(context.Background(), Config{ConfDir: dir}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `"kubeconfig"`) {
		t.Fatalf("Apply = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files %v", entries)
	}
}
