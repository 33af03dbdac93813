package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/install"
)

// A node that runs Steer next to another meta plugin (Multus, to compare them) cannot let
// steerd own CNIConfDir: steerd takes over any Multus config that sorts ahead of its own. So
// steerd runs as its DaemonSet runs it, with its CNI conf dir at a host directory of its own
// (ApplySteerAside), where it writes its config around a copy of the primary's, and whoever
// chooses the node's network copies that config into CNIConfDir (UseCNIConfig).

// ApplySteerAside deploys Steer as ApplySteer does, except that the DaemonSet's CNI conf dir
// is dir on the host (under /etc/cni, which the node cleans), seeded with the cluster
// network's config; Steer's config appears at SteerAsideConfig(dir).
func (n *Node) ApplySteerAside(ctx context.Context, image, dir string) error {
	if !strings.HasPrefix(dir, "/etc/cni/") {
		return fmt.Errorf("%s: Steer's conf dir aside must be under /etc/cni, which the node puts back", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	primary, err := os.ReadFile(filepath.Join(CNIConfDir, ClusterConfigName))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ClusterConfigName), primary, 0o644); err != nil {
		return err
	}
	return n.applySteer(ctx, image, "steer-aside-overlay", func(spec corev1.PodSpec) ([]byte, error) { return asidePatch(spec, dir) })
}

// asidePatch points the DaemonSet's CNI conf volume at dir and tells steerd, in each container
// that mounts it, that the host sees the conf dir there (the plugin's kubeconfig path follows).
// steerd run also keeps collections loaded for the thin plugin, as it does in thin mode: the
// node runs both modes under one DaemonSet.
func asidePatch(spec corev1.PodSpec, dir string) ([]byte, error) {
	var ops []map[string]any
	volume := ""
	for i, v := range spec.Volumes {
		if v.HostPath != nil && v.HostPath.Path == CNIConfDir {
			volume = v.Name
			ops = append(ops, map[string]any{"op": "replace", "path": fmt.Sprintf("/spec/template/spec/volumes/%d/hostPath/path", i), "value": dir})
		}
	}
	if volume == "" {
		return nil, fmt.Errorf("the DaemonSet mounts no %s", CNIConfDir)
	}
	for kind, cs := range map[string][]corev1.Container{"initContainers": spec.InitContainers, "containers": spec.Containers} {
		for i, c := range cs {
			for _, m := range c.VolumeMounts {
				if m.Name == volume && len(c.Command) > 0 {
					ops = append(ops, map[string]any{"op": "add", "path": fmt.Sprintf("/spec/template/spec/%s/%d/command/-", kind, i), "value": "-host-cni-conf-dir=" + dir})
					if kind == "containers" {
						ops = append(ops, map[string]any{"op": "add", "path": fmt.Sprintf("/spec/template/spec/%s/%d/command/-", kind, i), "value": fmt.Sprintf("-ready-sets=%d", datapath.ReadySets)})
					}
					break
				}
			}
		}
	}
	return json.Marshal(ops)
}

// SteerAsideConfig is Steer's CNI config in its conf dir aside.
func SteerAsideConfig(dir string) string { return filepath.Join(dir, install.ConfigName) }

// WaitSteerAside waits until Steer's DaemonSet runs image, ready, and its config is written in
// dir.
func (n *Node) WaitSteerAside(ctx context.Context, image, dir string) error {
	return n.waitSteer(ctx, image, SteerAsideConfig(dir))
}
