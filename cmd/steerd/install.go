package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/steernet/steer/pkg/install"
	"github.com/steernet/steer/pkg/netconf"
)

// installFlags configure the CNI config steerd writes.
type installFlags struct {
	hostFlags
	hostConfDir  string // the conf dir as the host (and so the plugin) sees it
	pluginConfig string // extra plugin keys, JSON
	waitPrimary  time.Duration
	thin         bool
}

func (f *installFlags) register(fs *flag.FlagSet) {
	f.hostFlags.register(fs)
	fs.StringVar(&f.hostConfDir, "host-cni-conf-dir", "/etc/cni/net.d", "the CNI config directory as the host sees it")
	fs.StringVar(&f.pluginConfig, "plugin-config", "{}", "extra keys for Steer's plugin entry, as JSON (e.g. {\"socketPath\":\"/run/steer/steer.sock\"})")
	fs.DurationVar(&f.waitPrimary, "wait-primary", 10*time.Minute, "how long to wait for the primary network's CNI config")
	fs.BoolVar(&f.thin, "thin-kubeconfig", true, "write a kubeconfig for the plugin from this pod's service account")
}

// config is the install.Config for the flags.
func (f *installFlags) config() (install.Config, error) {
	plugin := map[string]any{}
	if err := json.Unmarshal([]byte(f.pluginConfig), &plugin); err != nil {
		return install.Config{}, fmt.Errorf("-plugin-config: %w", err)
	}
	if f.thin {
		if _, ok := plugin["kubeconfig"]; !ok {
			plugin["kubeconfig"] = filepath.Join(f.hostConfDir, "steer.d", "steer.kubeconfig")
		}
	}
	return install.Config{ConfDir: f.confDir, HostConfDir: f.hostConfDir, Plugin: plugin}, nil
}

// runInstall puts the binary in place first and the config last: the runtime may call the
// plugin the moment the config appears.
func runInstall(ctx context.Context, log *slog.Logger, args []string) error {
	var f installFlags
	fs := flag.NewFlagSet("steerd install", flag.ExitOnError)
	f.register(fs)
	_ = fs.Parse(args)
	c, err := f.config()
	if err != nil {
		return err
	}
	for _, bin := range f.binaries() {
		if err := install.Binary(bin.src, f.binDir, bin.name); err != nil {
			return fmt.Errorf("install %s: %w", bin.name, err)
		}
	}
	log.Info("plugin installed", "dir", f.binDir)
	if f.thin {
		if err := writeThinKubeconfig(f); err != nil {
			return err
		}
	}
	if err := logMultus(f, log); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, f.waitPrimary)
	defer cancel()
	if _, err := install.Apply(wctx, c, log); err != nil {
		return err
	}
	log.Info("CNI config written", "file", filepath.Join(f.confDir, install.ConfigName))
	return nil
}

// logMultus says what Steer takes over from a Multus installation on the node: its config,
// the keys carried into Steer's, its kubeconfig and its cache.
func logMultus(f installFlags, log *slog.Logger) error {
	m, err := install.FindMultus(f.confDir)
	if err != nil || m == nil || m.Plugin == nil {
		return err
	}
	carried, dropped := m.Carried()
	keys := make([]string, 0, len(carried))
	for k := range carried {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []any{"config", m.Path, "thick", m.Thick, "alreadyReplaced", m.Replaced, "carried", keys, "dropped", dropped}
	var kc, cniDir string
	_ = json.Unmarshal(carried["kubeconfig"], &kc)
	_ = json.Unmarshal(carried["multusCNIDir"], &cniDir)
	if kc != "" {
		// A host path: look for it under the conf dir as mounted here.
		rel, err := filepath.Rel(f.hostConfDir, kc)
		_, serr := os.Stat(filepath.Join(f.confDir, rel))
		args = append(args, "kubeconfig", kc, "kubeconfigFound", err == nil && !strings.HasPrefix(rel, "..") && serr == nil)
	}
	if cniDir == "" {
		cniDir = netconf.DefaultMultusCNIDir
	}
	args = append(args, "multusCNIDir", cniDir)
	log.Info("Multus found: Steer takes the node over, keeping Multus' keys; pods Multus attached are deleted from its cache", args...)
	return nil
}

// writeThinKubeconfig writes the plugin's kubeconfig and a first copy of the token it reads.
func writeThinKubeconfig(f installFlags) error {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" {
		return fmt.Errorf("no KUBERNETES_SERVICE_HOST: not in a pod; use -thin-kubeconfig=false")
	}
	dir := filepath.Join(f.confDir, "steer.d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tokenSrc := filepath.Join(install.ServiceAccountDir, install.TokenFile)
	tok, err := os.ReadFile(tokenSrc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), tok, 0o600); err != nil {
		return err
	}
	return install.WriteKubeconfig(filepath.Join(dir, "steer.kubeconfig"), install.Kubeconfig{
		Server:    "https://" + net.JoinHostPort(host, port),
		CAFile:    filepath.Join(install.ServiceAccountDir, install.CAFile),
		TokenPath: filepath.Join(f.hostConfDir, "steer.d", "token"),
	})
}

// runUninstall removes the config first, so new pods fall back to the primary network, then
// the kubeconfig and the binary.
func runUninstall(ctx context.Context, log *slog.Logger, args []string) error {
	var f hostFlags
	var ifDeleted string
	fs := flag.NewFlagSet("steerd uninstall", flag.ExitOnError)
	f.register(fs)
	fs.StringVar(&ifDeleted, "if-daemonset-deleted", "", "namespace/name: uninstall only when this DaemonSet is gone or being deleted (a preStop hook that must not uninstall on a rolling update)")
	_ = fs.Parse(args)
	if ifDeleted != "" {
		deleting, err := daemonSetDeleting(ctx, ifDeleted)
		if err != nil {
			// Unsure: keep Steer installed. A node with Steer's config and no daemon still
			// works when the config allows thin fallback; one without it loses networks.
			return fmt.Errorf("check DaemonSet %s: %w", ifDeleted, err)
		}
		if !deleting {
			log.Info("DaemonSet still in place (an update): keeping Steer installed", "daemonset", ifDeleted)
			return nil
		}
	}
	restored, err := install.Uninstall(f.confDir)
	if err != nil {
		return err
	}
	if restored != "" {
		log.Info("Multus' CNI config restored as it was before Steer", "file", restored)
	}
	if err := install.RemoveKubeconfig(filepath.Join(f.confDir, "steer.d")); err != nil {
		return err
	}
	for _, bin := range f.binaries() {
		if err := os.Remove(filepath.Join(f.binDir, bin.name)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	log.Info("Steer removed from the node; pods keep their attachments until deleted")
	return nil
}

// daemonSetDeleting tells whether the DaemonSet ns/name is gone or marked for deletion.
func daemonSetDeleting(ctx context.Context, ref string) (bool, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return false, fmt.Errorf("want namespace/name, got %q", ref)
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return false, err
	}
	cfg.Timeout = 10 * time.Second
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return false, err
	}
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	ds, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return ds.GetDeletionTimestamp() != nil, nil
}
