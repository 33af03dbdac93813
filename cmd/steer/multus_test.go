package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/internal/testutil/files"
	"github.com/steernet/steer/pkg/k8s"
)

// multusVersion is the Multus release whose pods steer must delete (hack/install-multus.sh).
const multusVersion = "v4.3.0"

// multusConf links Multus' thin plugin (built and cached by hack/install-multus.sh) into the
// node's bin dir and returns its configuration: the node's kubeconfig, confDir and bin dir,
// its cache in cniDir, and the cluster network as a directory holding only the bridge
// conflist, or with asFile that conflist's path.
func (f *fixture) multusConf(t *testing.T, cniDir string, asFile bool) []byte {
	t.Helper()
	cmd := exec.Command("../../hack/install-multus.sh")
	cmd.Env = append(os.Environ(), "MULTUS_VERSION="+multusVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install Multus: %v\n%s", err, out)
	}
	cache := os.Getenv("STEER_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "steer")
	}
	if err := os.Symlink(filepath.Join(cache, "multus", multusVersion, "multus"), filepath.Join(f.BinDir, "multus")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	dir := filepath.Join(f.Dir, "multus-cluster")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cluster, err := os.ReadFile(f.clusterPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(f.clusterPath)), cluster, 0o644); err != nil {
		t.Fatal(err)
	}
	clusterRef := dir
	if asFile {
		clusterRef = f.clusterPath
	}
	conf, err := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus",
		"kubeconfig": f.Kubeconfig, "clusterNetwork": clusterRef, "confDir": f.ConfDir, "binDir": f.BinDir,
		"cniDir": cniDir, "logFile": filepath.Join(f.Dir, "multus.log"), "logLevel": "error",
	})
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// A pod that the real Multus attached (thin plugin, cluster network and two NADs) is deleted
// by steer after the switch: every delegate's DEL runs, from Multus' cache.
func TestDelOfPodMultusAttached(t *testing.T) {
	t.Run("cluster network directory", func(t *testing.T) { testDelOfPodMultusAttached(t, false) })
	// Multus caches a re-encoded conflist that lost ipam.ranges (its own DEL fails), next to
	// the list it ran: steer deletes with the latter.
	t.Run("cluster network conflist path", func(t *testing.T) { testDelOfPodMultusAttached(t, true) })
}

func testDelOfPodMultusAttached(t *testing.T, asFile bool) {
	f := setup(t)
	multusDir := filepath.Join(f.Dir, "cni-multus")
	p := f.pod(t, "lan,mgmt@ext0")
	f.MustAdd(t, p, f.multusConf(t, multusDir, asFile))
	if links := cninode.Links(t, p.NetNS); !slices.Equal(links, []string{"eth0", "ext0", "lo", "net1"}) {
		t.Fatalf("pod links after Multus' ADD %v", links)
	}
	if len(f.IPAMAllocations(t)) != 3 {
		t.Fatalf("allocations after Multus' ADD %v", f.IPAMAllocations(t))
	}
	if _, err := os.Stat(filepath.Join(multusDir, p.ContainerID)); err != nil {
		t.Fatalf("no Multus cache: %v", err)
	}

	conf := f.conf(t, map[string]any{"multusCNIDir": multusDir})
	if err := f.Check(t, p, conf); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	f.del(t, p, conf)
	if left := files.Below(t, multusDir); len(left) > 0 {
		t.Errorf("left in Multus' cniDir: %v", left)
	}
}

// A NAD without declared capabilities, static IPAM and an element with ips and mac: accepted
// as Multus accepts it, the address and MAC arriving through CNI_ARGS IP= and MAC=.
func TestUndeclaredCapabilitiesStaticIPAM(t *testing.T) {
	f := setup(t)
	f.CreateNAD(t, f.ns, "fixed", `{"cniVersion":"1.0.0","name":"fixed","type":"macvlan","master":"eth1","ipam":{"type":"static"}}`)
	p := f.pod(t, `[{"name":"fixed","ips":["192.168.57.9/24"],"mac":"02:42:c0:a8:39:09"}]`)
	if _, err := f.Add(t, p, f.conf(t, map[string]any{"strictCapabilities": true})); err == nil {
		t.Fatal("strictCapabilities: ADD accepted")
	}
	conf := f.conf(t, nil)
	f.MustAdd(t, p, conf)
	if a := addrPrefix(t, p, "net1", "192.168.57."); a != "192.168.57.9/24" {
		t.Errorf("net1 has %s", a)
	}
	if mac := cninode.MAC(t, p.NetNS, "net1"); mac != "02:42:c0:a8:39:09" {
		t.Errorf("net1 MAC %s", mac)
	}
	f.del(t, p, conf)
}

// GC after the switch: a valid pod Multus attached keeps its addresses, a stale one (its
// sandbox gone, its Multus cache older than an ADD could be) is deleted from Multus' cache.
func TestGCOfPodsMultusAttached(t *testing.T) {
	f := setup(t)
	multusDir := filepath.Join(f.Dir, "cni-multus")
	mconf := f.multusConf(t, multusDir, false)
	alive := f.NewPod(t, f.ns, "alive", map[string]string{k8s.NetworksAnnotation: "lan"})
	gone := f.NewPod(t, f.ns, "gone", map[string]string{k8s.NetworksAnnotation: "lan"})
	f.MustAdd(t, alive, mconf)
	f.MustAdd(t, gone, mconf)
	aliveIPs := []string{
		"cbr0/" + strings.Split(addrPrefix(t, alive, "eth0", "10.10.0."), "/")[0],
		"lan/" + strings.Split(addrPrefix(t, alive, "net1", "192.168.50."), "/")[0],
	}
	if n := len(f.IPAMAllocations(t)); n != 4 {
		t.Fatalf("%d allocations", n)
	}
	destroyNetNS(t, gone)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(multusDir, gone.ContainerID), old, old); err != nil {
		t.Fatal(err)
	}

	conf := f.conf(t, map[string]any{"multusCNIDir": multusDir})
	if err := f.GC(t, conf, alive); err != nil {
		t.Fatalf("GC: %v", err)
	}
	got := f.IPAMAllocations(t)
	slices.Sort(got)
	slices.Sort(aliveIPs)
	if !slices.Equal(got, aliveIPs) {
		t.Errorf("allocations after GC %v, want only the live pod's %v", got, aliveIPs)
	}
	for _, file := range files.Below(t, multusDir) {
		if strings.Contains(file, gone.ContainerID) {
			t.Errorf("left of the stale pod in Multus' cniDir: %s", file)
		}
	}
	f.del(t, alive, conf)
	if left := files.Below(t, multusDir); len(left) > 0 {
		t.Errorf("left in Multus' cniDir: %v", left)
	}
}
