package install

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/netconf"
)

// ConfigName is Steer's CNI config. "00-" sorts it first, so the runtime picks it over the
// primary network's config, which it wraps.
const ConfigName = "00-steer.conflist"

// Config says how to write Steer's CNI config.
type Config struct {
	ConfDir string // the node's CNI conf dir (/etc/cni/net.d), as this process sees it
	// HostConfDir is ConfDir as the host, and so the plugin, sees it; "" when they agree.
	HostConfDir string
	// Plugin holds Steer's own keys for the plugin entry (kubeconfig, socketPath, cniDir, ...).
	Plugin map[string]any
	// Multus holds the keys carried from the Multus config Steer replaces (see
	// Multus.Carried); Plugin's win.
	Multus map[string]json.RawMessage
}

// Primary returns the path and contents of the node's primary CNI config: the first config
// file by name that is neither Steer's nor Multus', as the runtime would choose without them.
func Primary(confDir string) (string, []byte, error) {
	names, err := configFiles(confDir)
	if err != nil {
		return "", nil, err
	}
	for _, n := range names {
		path := filepath.Join(confDir, n)
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var probe struct {
			Type    string            `json:"type"`
			Plugins []json.RawMessage `json:"plugins"`
		}
		if json.Unmarshal(b, &probe) != nil || (probe.Type == "" && len(probe.Plugins) == 0) {
			continue // not a CNI config (yet): skip, as the runtime would
		}
		if isSteerConfig(b) {
			continue
		}
		if plugin, _ := multusPlugin(b); plugin != nil {
			continue
		}
		return path, b, nil
	}
	return "", nil, os.ErrNotExist
}

// WaitPrimary waits, bounded by ctx, for the primary network's config to appear: at node start
// steerd may run before flannel or Calico has written theirs.
func WaitPrimary(ctx context.Context, confDir string) (string, []byte, error) {
	for {
		path, b, err := Primary(confDir)
		if err == nil {
			return path, b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", nil, err
		}
		select {
		case <-ctx.Done():
			return "", nil, fmt.Errorf("no primary CNI config in %s: %w", confDir, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Render builds Steer's conflist around the primary config (at primaryPath): the primary's
// bytes are carried verbatim as the cluster network delegate, and its capabilities
// (portMappings, bandwidth) are declared by Steer so the runtime passes them on. Keys carried
// from Multus come first, Steer's own keys override them. A carried clusterNetwork (a
// network name) replaces the primary, which may then be nil; a carried auxiliaryCNIChainName
// makes the primary's path the clusterNetwork, since the chain's plugins live beside it.
func Render(c Config, primaryPath string, primary []byte) ([]byte, error) {
	caps := map[string]bool{}
	version := ""
	if primary != nil {
		var p struct {
			CNIVersion string                       `json:"cniVersion"`
			Plugins    []map[string]json.RawMessage `json:"plugins"`
			Caps       map[string]bool              `json:"capabilities"`
		}
		if err := json.Unmarshal(primary, &p); err != nil {
			return nil, fmt.Errorf("primary CNI config: %w", err)
		}
		for k, v := range p.Caps {
			caps[k] = v
		}
		for _, pl := range p.Plugins {
			var pc map[string]bool
			if raw, ok := pl["capabilities"]; ok && json.Unmarshal(raw, &pc) == nil {
				for k, v := range pc {
					caps[k] = caps[k] || v
				}
			}
		}
		version = p.CNIVersion
	}
	if version == "" {
		version = "1.0.0"
	}
	plugin := map[string]any{}
	for k, v := range c.Multus {
		if k == "capabilities" {
			var mc map[string]bool
			if json.Unmarshal(v, &mc) == nil {
				for k, v := range mc {
					caps[k] = caps[k] || v
				}
			}
			continue
		}
		plugin[k] = v
	}
	for k, v := range c.Plugin {
		for pk := range plugin { // one spelling per key: Steer refuses two
			if strings.EqualFold(pk, k) {
				delete(plugin, pk)
			}
		}
		plugin[k] = v
	}
	// Thick mode execs the shim: the plugin's engine, BPF loader and Kubernetes client would
	// only slow every call that steerd answers anyway.
	plugin["type"] = api.PluginBinary
	if s, _ := plugin["socketPath"].(string); s != "" {
		plugin["type"] = api.ShimBinary
	}
	_, aux := plugin["auxiliaryCNIChainName"]
	switch _, named := plugin["clusterNetwork"]; {
	case named:
	case primary == nil:
		return nil, errors.New("no primary CNI config to wrap")
	case aux && primaryPath != "":
		plugin["clusterNetwork"] = filepath.Join(c.hostConfDir(), filepath.Base(primaryPath))
	default:
		plugin["delegates"] = []json.RawMessage{bytes.TrimSpace(primary)}
	}
	if len(caps) > 0 {
		plugin["capabilities"] = caps
	}
	out := map[string]any{"cniVersion": version, "name": "steer-cni-network", "plugins": []any{plugin}}
	// Not indented: Marshal keeps the primary's bytes as they are, only compacted.
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	// Never write a config the plugin would refuse: the runtime would fail every pod.
	pb, err := json.Marshal(plugin)
	if err != nil {
		return nil, err
	}
	if _, err := netconf.ParseConf(pb); err != nil {
		return nil, fmt.Errorf("the rendered config would be invalid: %w", err)
	}
	return b, nil
}

func (c Config) hostConfDir() string {
	if c.HostConfDir != "" {
		return c.HostConfDir
	}
	return c.ConfDir
}

// NeedsPrimary tells whether Steer's config wraps the node's primary config, i.e. no
// clusterNetwork was carried from Multus.
func (c Config) NeedsPrimary() bool {
	_, named := c.Multus["clusterNetwork"]
	if _, own := c.Plugin["clusterNetwork"]; own {
		named = true
	}
	return !named
}

// WriteConfig writes Steer's config around the primary config at primaryPath. It writes only
// when the content changed, so watchers see no churn, and reports whether it wrote.
func WriteConfig(c Config, primaryPath string, primary []byte) (bool, error) {
	b, err := Render(c, primaryPath, primary)
	if err != nil {
		return false, err
	}
	path := filepath.Join(c.ConfDir, ConfigName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return false, nil
	}
	return true, writeAtomic(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// RemoveConfig removes Steer's config, so new pods fall back to the primary network alone.
func RemoveConfig(confDir string) error {
	err := os.Remove(filepath.Join(confDir, ConfigName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
