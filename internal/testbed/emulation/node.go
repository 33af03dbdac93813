package emulation

import (
	"os"
	"path/filepath"

	"github.com/steernet/steer/internal/testbed/cniplugins"
	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/install"
)

// HostRoot is an emulated node's file system: the directories a CNI runtime and Steer use on
// a real node, under a private root.
type HostRoot struct {
	Dir string
}

// Paths inside the root.
func (h HostRoot) ConfDir() string     { return filepath.Join(h.Dir, "etc/cni/net.d") }
func (h HostRoot) BinDir() string      { return filepath.Join(h.Dir, "opt/cni/bin") }
func (h HostRoot) CNIDir() string      { return filepath.Join(h.Dir, "var/lib/cni/steer") }
func (h HostRoot) IPAMDir() string     { return filepath.Join(h.Dir, "var/lib/cni/networks") }
func (h HostRoot) RuntimeDir() string  { return filepath.Join(h.Dir, "var/lib/cni/cache") }
func (h HostRoot) NADConfDir() string  { return filepath.Join(h.Dir, "etc/cni/multus/net.d") }
func (h HostRoot) SteerConfig() string { return filepath.Join(h.ConfDir(), install.ConfigName) }

// NewHostRoot lays out node i's root under dir with the primary network's config (the overlay
// bridge, as flannel would have written it) and the reference plugins in its bin dir.
func NewHostRoot(dir string, node int) (HostRoot, error) {
	return NewHostRootOf(dir, node, DualStack)
}

// NewHostRootOf is NewHostRoot with a primary network of the given address families.
func NewHostRootOf(dir string, node int, fams Families) (HostRoot, error) {
	h := HostRoot{Dir: dir}
	for _, d := range []string{h.ConfDir(), h.BinDir(), h.CNIDir(), h.IPAMDir(), h.RuntimeDir(), h.NADConfDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return h, err
		}
	}
	plugins, err := cniplugins.Dir()
	if err != nil {
		return h, err
	}
	entries, err := os.ReadDir(plugins)
	if err != nil {
		return h, err
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(plugins, e.Name()), filepath.Join(h.BinDir(), e.Name())); err != nil {
			return h, err
		}
	}
	return h, os.WriteFile(filepath.Join(h.ConfDir(), "10-overlay.conflist"), ClusterNetworkOf(node, h.IPAMDir(), fams), 0o644)
}

// SteerOptions are the plugin keys an emulated node's Steer config carries.
type SteerOptions struct {
	Kubeconfig string
	SocketPath string // thick mode when set
	BPFFSRoot  string
	Steering   bool
	LogLevel   string // the plugin's; empty: its default
	// Extra are further plugin keys (e.g. "delegateTimeout").
	Extra map[string]any
}

// InstallPlugin puts the plugin binary and steer-shim next to it (BuildPlugin builds both) in
// the node's CNI bin dir, as steerd's init container does before steerd writes the config.
func (h HostRoot) InstallPlugin(pluginBinary string) error {
	if err := install.Binary(pluginBinary, h.BinDir(), api.PluginBinary); err != nil {
		return err
	}
	return install.Binary(filepath.Join(filepath.Dir(pluginBinary), api.ShimBinary), h.BinDir(), api.ShimBinary)
}

// InstallSteer installs the plugin binary and writes Steer's config around the primary, as
// `steerd install` does on a node. Calling it again rewrites the config (e.g. to turn steering
// off or on).
func (h HostRoot) InstallSteer(pluginBinary string, o SteerOptions) error {
	if err := h.InstallPlugin(pluginBinary); err != nil {
		return err
	}
	path, primary, err := install.Primary(h.ConfDir())
	if err != nil {
		return err
	}
	plugin := map[string]any{
		"kubeconfig": o.Kubeconfig,
		"confDir":    h.NADConfDir(),
		"cniDir":     h.CNIDir(),
		"binDir":     h.BinDir(),
		"bpffsRoot":  o.BPFFSRoot,
		"steering":   o.Steering,
	}
	if o.LogLevel != "" {
		plugin["logLevel"] = o.LogLevel
	}
	if o.SocketPath != "" {
		plugin["socketPath"] = o.SocketPath
	}
	for k, v := range o.Extra {
		plugin[k] = v
	}
	_, err = install.WriteConfig(install.Config{ConfDir: h.ConfDir(), Plugin: plugin}, path, primary)
	return err
}
