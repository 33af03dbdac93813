package realnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/child"
)

// Multus on the node, as its own manifests (deployments/ of multus-cni) install it, to compare
// Steer with: its ServiceAccount and RBAC, the thin plugin's kubeconfig in
// /etc/cni/net.d/multus.d, its binaries in CNIBinDir, and for the thick plugin multus-daemon
// run as a host process in the node's network namespace (as its hostNetwork DaemonSet runs it,
// without the image). Neither config is put in CNIConfDir: UseCNIConfig does that.
type Multus struct {
	n *Node
	// Thin is the thin plugin's 00-multus.conf: the cluster network as its delegate, given as
	// a directory holding only the cluster network's config (Multus re-encodes a .conflist
	// path, or a conflist delegate, through structs that drop fields, and its DEL of the
	// cluster network then fails).
	Thin []byte
	// Thick is the shim's config as multus-daemon writes it ("auto"), nil without the daemon.
	Thick  []byte
	daemon *child.Process
}

// Multus' names, as its manifests have them.
const (
	multusAccount = "multus"
	// MultusConfigName is the config Multus' installs write in CNIConfDir.
	MultusConfigName = "00-multus.conf"
	multusDir        = CNIConfDir + "/multus.d"
	// multusThickConfDir is multus-daemon's cniConfigDir: a copy of the cluster network's
	// config, where the daemon writes the shim's config (it keeps that file in place, so it
	// cannot be CNIConfDir on a node that switches networks).
	multusThickConfDir = "/etc/cni/multus-thick"
)

// multusRules are the ClusterRole of Multus' thick DaemonSet (the thin one's, with list and
// watch of pods for the daemon's informer).
var multusRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"k8s.cni.cncf.io"}, Resources: []string{"*"}, Verbs: []string{"*"}},
	{APIGroups: []string{""}, Resources: []string{"pods", "pods/status"}, Verbs: []string{"get", "list", "update", "watch"}},
	{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
}

// InstallMultus installs Multus from dir (the cached build: multus, multus-shim,
// multus-daemon) and, with thick, starts multus-daemon. Close stops the daemon; the node's
// Stop removes the rest.
func (n *Node) InstallMultus(ctx context.Context, dir string, thick bool) (_ *Multus, err error) {
	m := &Multus{n: n}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("install Multus: %w", err), m.Close())
		}
	}()
	for _, b := range []string{"multus", "multus-shim"} {
		data, err := os.ReadFile(filepath.Join(dir, b))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(CNIBinDir, b), data, 0o755); err != nil {
			return nil, err
		}
	}
	token, err := n.multusRBAC(ctx)
	if err != nil {
		return nil, err
	}
	cfg := n.cluster.RESTConfig()
	clusterDir := filepath.Join(multusDir, "cluster")
	for _, d := range []string{clusterDir, multusThickConfDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	kubeconfig := filepath.Join(multusDir, "multus.kubeconfig")
	if err := os.WriteFile(kubeconfig, multusKubeconfig(cfg.Host, cfg.CAData, token), 0o600); err != nil {
		return nil, err
	}
	cluster, err := os.ReadFile(filepath.Join(CNIConfDir, ClusterConfigName))
	if err != nil {
		return nil, err
	}
	for _, d := range []string{clusterDir, multusThickConfDir} {
		if err := os.WriteFile(filepath.Join(d, ClusterConfigName), cluster, 0o644); err != nil {
			return nil, err
		}
	}
	var version struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(cluster, &version); err != nil {
		return nil, err
	}
	thin := map[string]any{
		"cniVersion": version.CNIVersion, "name": "multus-cni-network", "type": "multus",
		"kubeconfig": kubeconfig, "clusterNetwork": clusterDir,
	}
	if m.Thin, err = json.Marshal(thin); err != nil {
		return nil, err
	}
	if thick {
		if err := m.startDaemon(ctx, filepath.Join(dir, "multus-daemon"), thin, token, cfg.CAData); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// multusRBAC creates Multus' ServiceAccount, ClusterRole and binding, and returns a token of
// the account.
func (n *Node) multusRBAC(ctx context.Context) (string, error) {
	c := n.cluster.Client()
	meta := metav1.ObjectMeta{Name: multusAccount}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta, Rules: multusRules}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: meta,
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: multusAccount},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: multusAccount, Namespace: SteerNamespace}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if _, err := c.CoreV1().ServiceAccounts(SteerNamespace).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: multusAccount, Namespace: SteerNamespace},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	expiry := int64((6 * time.Hour).Seconds())
	tr, err := c.CoreV1().ServiceAccounts(SteerNamespace).CreateToken(ctx, multusAccount,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of %s/%s: %w", SteerNamespace, multusAccount, err)
	}
	return tr.Status.Token, nil
}

// multusKubeconfig is the kubeconfig Multus' thin install writes from its pod's account.
func multusKubeconfig(server string, ca []byte, token string) []byte {
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Config",
		"clusters": []any{map[string]any{"name": "local", "cluster": map[string]any{
			"server": server, "certificate-authority-data": ca}}},
		"users":           []any{map[string]any{"name": "multus", "user": map[string]any{"token": token}}},
		"contexts":        []any{map[string]any{"name": "multus-context", "context": map[string]any{"cluster": "local", "user": "multus"}}},
		"current-context": "multus-context",
	})
	return b
}

// startDaemon runs multus-daemon with the thin plugin's keys (cluster network, bin dir) as
// its daemon config, "auto" as its manifests run it, and takes the shim's config it writes.
// The daemon knows the apiserver only from the in-cluster environment: it runs in a mount
// namespace of its own whose /run is a tmpfs holding the service account's token and CA.
func (m *Multus) startDaemon(ctx context.Context, daemonBin string, thin map[string]any, token string, ca []byte) error {
	n := m.n
	dir := filepath.Join(n.dir, "multus")
	sa, socketDir := filepath.Join(dir, "serviceaccount"), filepath.Join(dir, "run")
	for _, d := range []string{sa, socketDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte(token), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sa, "ca.crt"), ca, 0o644); err != nil {
		return err
	}
	conf := map[string]any{}
	for k, v := range thin {
		// The daemon's client is in-cluster (a kubeconfig key would reach its delegates), and
		// the shim's config it writes takes its name and type from the daemon's own keys.
		if k != "kubeconfig" && k != "type" && k != "name" {
			conf[k] = v
		}
	}
	for k, v := range map[string]any{
		"chrootDir": "", "socketDir": socketDir, "logToStderr": true, "logLevel": "error",
		"multusConfigFile": "auto", "cniConfigDir": multusThickConfDir, "multusAutoconfigDir": multusThickConfDir,
		"daemonSocketDir": socketDir,
	} {
		conf[k] = v
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	confPath := filepath.Join(dir, "daemon-config.json")
	if err := os.WriteFile(confPath, b, 0o644); err != nil {
		return err
	}
	api, err := url.Parse(n.cluster.Host())
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(api.Host)
	if err != nil {
		return err
	}
	const saDir = "/run/secrets/kubernetes.io/serviceaccount"
	script := fmt.Sprintf("mount -t tmpfs tmpfs /run && mkdir -p %[1]s && cp %[2]s/token %[2]s/ca.crt %[1]s/ && exec %[3]s -config %[4]s",
		saDir, sa, daemonBin, confPath)
	env := []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port, "MULTUS_NODE_NAME=" + n.name}
	p, err := n.nodeSpawner.start("multus-daemon", "unshare", []string{"--mount", "--propagation", "slave", "sh", "-c", script},
		env, filepath.Join(n.dir, "multus-daemon.log"))
	if err != nil {
		return err
	}
	m.daemon = p
	shim := filepath.Join(multusThickConfDir, MultusConfigName)
	return poll(ctx, 2*time.Minute, func() error {
		if p.Exited() {
			return permanent(fmt.Errorf("multus-daemon exited: %s", p.Tail(20)))
		}
		c, err := net.Dial("unix", filepath.Join(socketDir, "multus.sock"))
		if err != nil {
			return fmt.Errorf("multus-daemon not answering: %w", err)
		}
		c.Close()
		b, err := os.ReadFile(shim)
		if err != nil {
			return fmt.Errorf("multus-daemon wrote no shim config: %w", err)
		}
		var conf map[string]any
		if err := json.Unmarshal(b, &conf); err != nil {
			return fmt.Errorf("%s: %w", shim, err)
		}
		if conf["type"] != "multus-shim" {
			return permanent(fmt.Errorf("multus-daemon wrote a config of type %v, not multus-shim: %s", conf["type"], b))
		}
		conf["daemonSocketDir"] = socketDir
		m.Thick, err = json.Marshal(conf)
		return err
	})
}

// Close stops multus-daemon.
func (m *Multus) Close() error {
	if m.daemon == nil {
		return nil
	}
	err := m.daemon.StopGroup(10 * time.Second)
	m.daemon = nil
	return err
}
