package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/steernet/steer/pkg/api"
)

// A node running Multus has Multus' config first in its conf dir: the thin plugin's
// 00-multus.conf (00-multus.conflist from CNI 1.0.0), the thick plugin's 00-multus.conf
// ("multus-shim"), or an operator's own file. Steer takes such a node over without a moment
// where the runtime's first config is missing or broken: it writes its own config first (the
// runtime keeps using Multus' meanwhile, as "00-multus" sorts before "00-steer"), then
// renames Multus' config aside, one atomic rename, to <name>.steer-replaced, an extension no
// runtime loads. Uninstall renames it back before removing Steer's, so the node is Multus'
// again, its config byte for byte as it was.

// MultusBackupSuffix is appended to the name of the Multus config Steer replaced.
const MultusBackupSuffix = ".steer-replaced"

// multusTypes are the plugin types of Multus' configs: the thin plugin and the thick shim.
var multusTypes = map[string]bool{"multus": true, "multus-shim": true}

// Multus is a Multus installation found in a conf dir.
type Multus struct {
	// Path is Multus' config: where the runtime reads it, or where Uninstall puts it back.
	Path string
	// Replaced says Steer took the node over: the config is kept at Path+MultusBackupSuffix.
	Replaced bool
	// Active are Multus configs the runtime may still load, first first. After the takeover
	// only a Multus DaemonSet that is still running writes them.
	Active []string
	// Thick is true for the thick plugin's shim config.
	Thick bool
	// Plugin is the multus plugin object of the config, its keys as written.
	Plugin map[string]json.RawMessage
}

// multusPlugin returns the multus plugin object of a CNI config, or nil when the config is
// not Multus'.
func multusPlugin(conf []byte) (map[string]json.RawMessage, string) {
	var top map[string]json.RawMessage
	if json.Unmarshal(conf, &top) != nil {
		return nil, ""
	}
	if typ := stringKey(top, "type"); multusTypes[typ] {
		return top, typ
	}
	var plugins []map[string]json.RawMessage
	if raw, ok := top["plugins"]; ok && json.Unmarshal(raw, &plugins) == nil {
		for _, p := range plugins {
			if typ := stringKey(p, "type"); multusTypes[typ] {
				return p, typ
			}
		}
	}
	return nil, ""
}

func stringKey(m map[string]json.RawMessage, key string) string {
	var s string
	_ = json.Unmarshal(m[key], &s)
	return s
}

// wrapsSteer tells whether a Multus plugin object runs Steer's config as its cluster network:
// what a Multus DaemonSet still running writes once Steer's config is the first it finds.
func wrapsSteer(plugin map[string]json.RawMessage) bool {
	if strings.Contains(stringKey(plugin, "clusterNetwork"), ConfigName) {
		return true
	}
	var delegates []json.RawMessage
	_ = json.Unmarshal(plugin["delegates"], &delegates)
	for _, d := range delegates {
		if isSteerConfig(d) {
			return true
		}
	}
	return false
}

// isSteerConfig tells whether a CNI config is Steer's (a steer plugin, alone or in a list).
func isSteerConfig(conf []byte) bool {
	var probe struct {
		Type    string `json:"type"`
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if json.Unmarshal(conf, &probe) != nil {
		return false
	}
	if api.IsSteerType(probe.Type) {
		return true
	}
	for _, p := range probe.Plugins {
		if api.IsSteerType(p.Type) {
			return true
		}
	}
	return false
}

// configFiles lists the CNI config files of dir in the runtime's order (by name), Steer's
// own excluded.
func configFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == ConfigName || strings.HasPrefix(n, ".") {
			continue
		}
		switch filepath.Ext(n) {
		case ".conf", ".conflist", ".json":
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// FindMultus returns the Multus installation in confDir: the config Steer replaced, else the
// first Multus config the runtime would load. It is nil when there is neither.
func FindMultus(confDir string) (*Multus, error) {
	names, err := configFiles(confDir)
	if err != nil {
		return nil, err
	}
	var m *Multus
	entries, err := os.ReadDir(confDir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		orig, ok := strings.CutSuffix(e.Name(), MultusBackupSuffix)
		if !ok || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(confDir, e.Name()))
		if err != nil {
			return nil, err
		}
		plugin, typ := multusPlugin(b)
		if plugin == nil {
			return nil, fmt.Errorf("%s is not a Multus config", e.Name())
		}
		m = &Multus{Path: filepath.Join(confDir, orig), Replaced: true, Thick: typ == "multus-shim", Plugin: plugin}
		break
	}
	var active []string
	var first *Multus
	for _, n := range names {
		path := filepath.Join(confDir, n)
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		plugin, typ := multusPlugin(b)
		if plugin == nil {
			continue
		}
		active = append(active, path)
		if first == nil && !wrapsSteer(plugin) {
			first = &Multus{Path: path, Thick: typ == "multus-shim", Plugin: plugin}
		}
	}
	if m == nil {
		m = first
	}
	if m == nil && len(active) > 0 {
		m = &Multus{} // only configs wrapping Steer's: nothing to hand back, but they must go
	}
	if m != nil {
		m.Active = active
	}
	return m, nil
}

// multusKeys are the Multus keys Steer's config carries, with Steer's name for each. Keys
// not listed mean nothing to Steer (the thick shim's daemonSocketDir, the thin entrypoint's
// "cniConf", which Multus itself never reads) or name the cluster network, which Steer
// takes from the node's primary config as Multus' generated configs do.
var multusKeys = map[string]string{
	"confdir": "confDir", "bindir": "binDir", "kubeconfig": "kubeconfig",
	"defaultnetworks": "defaultNetworks", "namespaceisolation": "namespaceIsolation",
	"globalnamespaces": "globalNamespaces", "systemnamespaces": "systemNamespaces",
	"multusnamespace": "multusNamespace", "readinessindicatorfile": "readinessindicatorfile",
	"retrydeleteonerror": "retryDeleteOnError", "logfile": "logFile", "loglevel": "logLevel",
	"logtostderr": "logToStderr", "logoptions": "logOptions",
	"auxiliarycnichainname": "auxiliaryCNIChainName", "capabilities": "capabilities",
	// Multus' cache is where Steer reads the pods Multus attached; Steer keeps its own apart.
	"cnidir": "multusCNIDir",
}

// Carried returns the keys of Multus' config that Steer's config keeps, under Steer's names,
// and the names of those it drops. A clusterNetwork that names a NetworkAttachmentDefinition
// or a config (no '/') is kept; a path is the primary config Steer wraps anyway (the thick
// plugin's is even a path inside Multus' container).
func (m *Multus) Carried() (map[string]json.RawMessage, []string) {
	out := map[string]json.RawMessage{}
	var dropped []string
	for k, v := range m.Plugin {
		l := strings.ToLower(k)
		if name, ok := multusKeys[l]; ok {
			out[name] = v
			continue
		}
		switch l {
		case "type", "name", "cniversion", "delegates":
		case "clusternetwork":
			if !strings.Contains(stringKey(m.Plugin, k), "/") {
				out["clusterNetwork"] = v
			}
		default:
			dropped = append(dropped, k)
		}
	}
	sort.Strings(dropped)
	return out, dropped
}

// TakeOver moves Multus' active configs out of the runtime's way; call it once Steer's
// config is written. The first is kept aside for Uninstall (unless one already is); the others
// (a Multus DaemonSet still running rewrote one, wrapping Steer's) are removed.
func TakeOver(m *Multus, log *slog.Logger) error {
	if m == nil {
		return nil
	}
	for _, path := range m.Active {
		if path == m.Path && !m.Replaced {
			if err := os.Rename(path, path+MultusBackupSuffix); err != nil {
				return fmt.Errorf("set Multus' config aside: %w", err)
			}
			m.Replaced = true
			log.Info("Multus' CNI config replaced by Steer's; uninstall restores it", "file", path, "kept", path+MultusBackupSuffix)
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove a Multus config written after the takeover: %w", err)
		}
		log.Warn("removed a Multus CNI config written after Steer took the node over (is Multus' DaemonSet still running?)", "file", path)
	}
	if len(m.Active) == 0 {
		return nil
	}
	dir := filepath.Dir(m.Active[0])
	m.Active = nil
	return syncDir(dir)
}

// RestoreMultus puts back the Multus config Steer replaced, as it was. It returns false when
// there is none.
func RestoreMultus(confDir string) (string, bool, error) {
	m, err := FindMultus(confDir)
	if err != nil || m == nil || !m.Replaced {
		return "", false, err
	}
	if err := os.Rename(m.Path+MultusBackupSuffix, m.Path); err != nil {
		return "", false, fmt.Errorf("restore Multus' config: %w", err)
	}
	return m.Path, true, syncDir(confDir)
}

func syncDir(dir string) error {
	if dir == "" || dir == "." {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
