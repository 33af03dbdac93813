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
	"sort"
	"strings"
	"time"
)

// ConfigName is Steer's CNI config. "00-" sorts it first, so the runtime picks it over the
// primary network's config, which it wraps.
const ConfigName = "00-steer.conflist"

// Config says how to write Steer's CNI config.
type Config struct {
	ConfDir string // the node's CNI conf dir (/etc/cni/net.d)
	// Plugin holds Steer's own keys for the plugin entry (kubeconfig, socketPath, cniDir, ...).
	Plugin map[string]any
}

// Primary returns the path and contents of the node's primary CNI config: the first config
// file by name that is not Steer's own, as the runtime would choose without Steer.
func Primary(confDir string) (string, []byte, error) {
	entries, err := os.ReadDir(confDir)
	if err != nil {
		return "", nil, err
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
		if probe.Type == "steer" {
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

// Render builds Steer's conflist around the primary config: the primary's bytes are carried
// verbatim as the cluster network delegate, and its capabilities (portMappings, bandwidth) are
// declared by Steer so the runtime passes them on.
func Render(c Config, primary []byte) ([]byte, error) {
	var p struct {
		CNIVersion string                       `json:"cniVersion"`
		Name       string                       `json:"name"`
		Plugins    []map[string]json.RawMessage `json:"plugins"`
		Caps       map[string]bool              `json:"capabilities"`
	}
	if err := json.Unmarshal(primary, &p); err != nil {
		return nil, fmt.Errorf("primary CNI config: %w", err)
	}
	caps := map[string]bool{}
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
	version := p.CNIVersion
	if version == "" {
		version = "1.0.0"
	}
	plugin := map[string]any{}
	for k, v := range c.Plugin {
		plugin[k] = v
	}
	plugin["type"] = "steer"
	plugin["delegates"] = []json.RawMessage{bytes.TrimSpace(primary)}
	if len(caps) > 0 {
		plugin["capabilities"] = caps
	}
	out := map[string]any{"cniVersion": version, "name": "steer-cni-network", "plugins": []any{plugin}}
	// Not indented: Marshal keeps the primary's bytes as they are, only compacted.
	return json.Marshal(out)
}

// WriteConfig writes Steer's config around the current primary config and returns the
// primary's path. It writes only when the content changed, so watchers see no churn.
func WriteConfig(c Config, primary []byte) error {
	b, err := Render(c, primary)
	if err != nil {
		return err
	}
	path := filepath.Join(c.ConfDir, ConfigName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return writeAtomic(path, 0o644, func(w io.Writer) error {
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
