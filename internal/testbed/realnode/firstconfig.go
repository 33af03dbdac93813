package realnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"time"
)

// UseCNIConfig makes conf, written as name into CNIConfDir, the node's network (the first
// config by name, as containerd picks it), removing every other config there but the cluster
// network's, and waits until containerd has loaded it. With name ClusterConfigName (conf is
// then ignored) the node is back on the cluster network alone. It is for a node whose meta
// plugins keep their own configs aside (ApplySteerAside) and a caller that switches between
// them, one pod at a time: containerd tears a pod down with the config loaded at that moment.
func (n *Node) UseCNIConfig(ctx context.Context, name string, conf []byte) error {
	entries, err := os.ReadDir(CNIConfDir)
	if err != nil {
		return err
	}
	if name == ClusterConfigName {
		if conf, err = os.ReadFile(filepath.Join(CNIConfDir, ClusterConfigName)); err != nil {
			return err
		}
	} else {
		if name >= ClusterConfigName {
			return fmt.Errorf("%s would not sort before %s", name, ClusterConfigName)
		}
		tmp := filepath.Join(CNIConfDir, ".tmp-"+name)
		if err := os.WriteFile(tmp, conf, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(CNIConfDir, name)); err != nil {
			return errors.Join(err, os.Remove(tmp))
		}
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == name || e.Name() == ClusterConfigName {
			continue
		}
		if err := os.Remove(filepath.Join(CNIConfDir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	want, err := pluginsOf([]byte(conf))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return poll(ctx, 30*time.Second, func() error {
		got, err := n.loadedPlugins(ctx)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("containerd has not loaded %s yet", name)
		}
		return nil
	})
}

// pluginsOf is the list of plugin configs of a CNI config (a .conf is a list of one), decoded,
// so that a config compares equal to containerd's copy of it.
func pluginsOf(conf []byte) ([]any, error) {
	var c map[string]any
	if err := json.Unmarshal(conf, &c); err != nil {
		return nil, err
	}
	if ps, ok := c["plugins"].([]any); ok {
		return ps, nil
	}
	return []any{c}, nil
}

// loadedPlugins is the plugin list of the network containerd's CRI would set up a pod with now
// (the pod network, after its internal loopback), as `crictl info` reports it.
func (n *Node) loadedPlugins(ctx context.Context) ([]any, error) {
	out, err := n.Crictl(ctx, "info")
	if err != nil {
		return nil, fmt.Errorf("crictl info: %w: %s", err, out)
	}
	var info map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return nil, fmt.Errorf("crictl info: %w", err)
	}
	raw := info["cniconfig"]
	var s string
	if json.Unmarshal(raw, &s) == nil { // a JSON document in a string, as the CRI carries it
		raw = json.RawMessage(s)
	}
	var cfg struct {
		Networks []struct {
			Config struct{ Source string }
			IFName string
		}
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("crictl info: cniconfig: %w", err)
	}
	for _, nw := range cfg.Networks {
		if nw.IFName != "lo" {
			return pluginsOf([]byte(nw.Config.Source))
		}
	}
	return nil, errors.New("containerd has no pod network loaded")
}
