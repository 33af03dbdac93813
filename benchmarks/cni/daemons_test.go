package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/pkg/api"
)

// nodeName is the node the benchmark's pods are bound to: the daemons cache that node's pods.
const nodeName = "bench-node"

// daemon is a node daemon (steerd or multus-daemon) started in the node's namespace.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

// startDaemon starts cmd in the node's network namespace, logging to a file in the node's dir,
// and stops it when the benchmark ends. Forked from a thread inside the namespace, the child
// inherits it; Pdeathsig fires when that thread ends, so the thread is kept, locked, for the
// daemon alone.
func startDaemon(b testing.TB, n *cninode.Node, name string, cmd *exec.Cmd) *daemon {
	b.Helper()
	d := &daemon{name: name, cmd: cmd, log: filepath.Join(n.Dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := n.Host.Set(); err != nil {
			started <- err
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.err = cmd.Wait()
		close(d.exited)
	}()
	if err := <-started; err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	b.Cleanup(func() {
		d.stop()
		if b.Failed() {
			out, _ := os.ReadFile(d.log)
			b.Logf("%s log:\n%s", name, tailOf(string(out), 40))
		}
	})
	return d
}

// stop stops the daemon as its DaemonSet's pod is stopped (SIGTERM, then SIGKILL), and waits
// for it to exit.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// waitSocket waits until the daemon answers on its unix socket.
func (d *daemon) waitSocket(b testing.TB, socket string) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-d.exited:
			out, _ := os.ReadFile(d.log)
			b.Fatalf("%s exited: %v\n%s", d.name, d.err, tailOf(string(out), 40))
		default:
		}
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(d.log)
			b.Fatalf("%s not answering on %s:\n%s", d.name, socket, tailOf(string(out), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rss is the daemon's resident memory in bytes.
func (d *daemon) rss() (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kib, err := strconv.ParseInt(f[1], 10, 64)
			return kib << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

func tailOf(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// buildSteerd builds steerd from this module into dir.
func buildSteerd(b testing.TB, dir string) string {
	b.Helper()
	bin := filepath.Join(dir, "steerd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/steernet/steer/cmd/steerd")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build steerd: %v\n%s", err, out)
	}
	return bin
}

// startSteerd runs steerd in thick mode on the node, as its DaemonSet does, and returns the
// plugin configuration that hands every verb to it: conf (a steer configuration of the node)
// with its socket. steerd gets a CNI config dir of its own holding cluster, the primary it
// installs itself in front of. It also keeps readySets collections loaded for the thin plugin and
// answers its lookups on the node's cniDir, as a thin-mode node's steerd does, when thin paths
// run on the same node.
func startSteerd(b testing.TB, n *cninode.Node, cluster, conf []byte, readySets int) (*daemon, []byte) {
	b.Helper()
	dir := filepath.Join(n.Dir, "steerd")
	confDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-cbr0.conflist"), cluster, 0o644); err != nil {
		b.Fatal(err)
	}
	socket := filepath.Join(dir, "steerd.sock")
	var plugin map[string]any
	if err := json.Unmarshal(conf, &plugin); err != nil {
		b.Fatal(err)
	}
	plugin["socketPath"], plugin["type"] = socket, api.ShimBinary // as steerd install writes it
	thick, err := json.Marshal(plugin)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(buildSteerd(b, dir), "run",
		"-socket", socket,
		"-node-name", nodeName,
		"-kubeconfig", n.Kubeconfig,
		"-cni-conf-dir", confDir,
		"-thin-kubeconfig=false",
		"-plugin-config", string(mustJSON(b, map[string]any{"socketPath": socket, "cniDir": n.CNIDir})),
		"-bpffs-root", n.BPFRoot,
		"-metrics-addr", "127.0.0.1:0",
		"-services=false",
		"-ready-sets", strconv.Itoa(readySets),
	)
	d := startDaemon(b, n, "steerd", cmd)
	d.waitSocket(b, socket)
	return d, thick
}

// startMultusDaemon runs Multus' thick plugin on the node: multus-daemon (hack/install-multus.sh)
// with the same cluster network, delegates, confDir and binDir as the thin plugin's conf, and
// returns the configuration of its shim. The daemon takes its apiserver from the in-cluster
// environment only: it runs in a mount namespace of its own where a tmpfs on /var holds the
// service account files (the node proxy's token and CA).
func startMultusDaemon(b testing.TB, n *cninode.Node, multusBin string, cluster, thin []byte) (*daemon, []byte) {
	b.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(cfg.Host, "https://"))
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(n.Dir, "multus-thick")
	sa := filepath.Join(dir, "serviceaccount")
	socketDir := filepath.Join(dir, "run")
	for _, d := range []string{sa, socketDir, filepath.Join(dir, "net.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte(cfg.BearerToken), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sa, "ca.crt"), cfg.CAData, 0o644); err != nil {
		b.Fatal(err)
	}
	var daemonConf map[string]any
	if err := json.Unmarshal(thin, &daemonConf); err != nil {
		b.Fatal(err)
	}
	delete(daemonConf, "kubeconfig") // the daemon's client is in-cluster; the key would reach its delegates
	shimConf := mustJSON(b, map[string]any{
		"cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus-shim",
		"daemonSocketDir": socketDir, "logFile": filepath.Join(dir, "shim.log"), "logLevel": "error",
	})
	// "auto", as Multus' manifests run it: the daemon writes its shim's config in front of the
	// primary's in cniConfigDir (a directory of its own here) and keeps it there; with a
	// configuration file of the user's, multus-daemon v4.3.0 exits once it has started.
	confDir := filepath.Join(dir, "net.d")
	if err := os.WriteFile(filepath.Join(confDir, "10-cbr0.conflist"), cluster, 0o644); err != nil {
		b.Fatal(err)
	}
	maps := map[string]any{
		"chrootDir": "", "socketDir": socketDir, "logToStderr": true, "logLevel": "error",
		"multusConfigFile": "auto", "cniConfigDir": confDir, "multusAutoconfigDir": confDir, "daemonSocketDir": socketDir,
	}
	for k, v := range maps {
		daemonConf[k] = v
	}
	daemonPath := filepath.Join(dir, "daemon-config.json")
	if err := os.WriteFile(daemonPath, mustJSON(b, daemonConf), 0o644); err != nil {
		b.Fatal(err)
	}
	const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// /var/run is a link to /run on the host: in the tmpfs it is a directory, with the pods'
	// network namespaces bound in (a slave of the host's /run/netns, so new ones appear).
	script := fmt.Sprintf("mount -t tmpfs tmpfs /var && mkdir -p %[1]s /var/run/netns && mount --rbind /run/netns /var/run/netns && "+
		"cp %[2]s/token %[2]s/ca.crt %[1]s/ && exec %[3]s -config %[4]s",
		saDir, sa, filepath.Join(filepath.Dir(multusBin), "multus-daemon"), daemonPath)
	cmd := exec.Command("unshare", "--mount", "--propagation", "slave", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port, "MULTUS_NODE_NAME="+nodeName)
	d := startDaemon(b, n, "multus-daemon", cmd)
	d.waitSocket(b, filepath.Join(socketDir, "multus.sock"))
	bin := filepath.Join(n.BinDir, "multus-shim")
	if err := os.Symlink(filepath.Join(filepath.Dir(multusBin), "multus-shim"), bin); err != nil && !os.IsExist(err) {
		b.Fatal(err)
	}
	return d, shimConf
}

func mustJSON(b testing.TB, v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
