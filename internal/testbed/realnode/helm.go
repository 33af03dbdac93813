package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/manifests"
)

// HelmRelease is the release name Steer's chart is installed under; the chart names its objects
// after a release whose name contains "steer", so the DaemonSet is SteerDaemonSet.
const HelmRelease = "steer"

// helmPostRenderer is the Helm plugin that adapts the chart's output to this node.
const helmPostRenderer = "steer-node"

// Helm is the helm `make deps` builds: $STEER_CACHE/tools/helm-<release of manifests/tools.txt>.
func Helm() (string, error) {
	version := manifests.ToolVersion("helm")
	if version == "" {
		return "", fmt.Errorf("manifests/tools.txt names no helm release")
	}
	cache, err := localcluster.CacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "tools", "helm-"+version)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("helm %s missing, run `make deps`: %w", version, err)
	}
	return bin, nil
}

// HelmSteer deploys Steer as operators do with Helm: `helm upgrade --install` of
// manifests/charts/steer (install the first time, upgrade after), release HelmRelease in
// SteerNamespace, with image (Images().Steer or RetagSteer's) set through the chart's values,
// pullPolicy Never (no registry) and further values (e.g. "--set-json", `pluginConfig={...}`).
// What differs from a stock node (the apiserver's address, containerd's netns directory, as
// ApplySteer's overlay) comes in through a post-renderer, the way operators adapt a chart they
// do not own: a Helm plugin running kustomize with those patches. It returns the command as an
// operator would type it, without the node's kubeconfig.
func (n *Node) HelmSteer(ctx context.Context, helm, image string, values ...string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	kubectl, err := localcluster.Kubectl()
	if err != nil {
		return "", err
	}
	ds, err := shippedDaemonSet(ctx, kubectl, filepath.Join(root, "manifests"))
	if err != nil {
		return "", err
	}
	home := filepath.Join(n.dir, "helm")
	overlay := filepath.Join(home, "overlay")
	plugin := filepath.Join(home, "plugins", helmPostRenderer)
	for _, d := range []string{overlay, plugin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	const rendered = "rendered.yaml"
	kust, err := n.overlay(rendered, ds, "")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), kust, 0o644); err != nil {
		return "", err
	}
	manifest := fmt.Sprintf(`name: %s
version: 0.1.0
type: postrenderer/v1
apiVersion: v1
runtime: subprocess
runtimeConfig:
  platformCommand:
    - command: ${HELM_PLUGIN_DIR}/render
`, helmPostRenderer)
	render := fmt.Sprintf("#!/bin/sh\n# The chart's output, patched for this node by kustomize.\nset -e\ncat > %q\nexec %q kustomize %q\n",
		filepath.Join(overlay, rendered), kubectl, overlay)
	if err := os.WriteFile(filepath.Join(plugin, "plugin.yaml"), []byte(manifest), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(plugin, "render"), []byte(render), 0o755); err != nil {
		return "", err
	}

	name, tag, _ := strings.Cut(image, ":")
	args := []string{"upgrade", "--install", HelmRelease, filepath.Join("manifests", "charts", "steer"),
		"--namespace", SteerNamespace,
		"--set", "image.repository=" + name, "--set", "image.tag=" + tag, "--set", "image.pullPolicy=Never"}
	args = append(args, values...)
	args = append(args, "--post-renderer", helmPostRenderer)
	cmd := exec.CommandContext(ctx, helm, append(args, "--kubeconfig", n.cluster.Kubeconfig())...)
	cmd.Dir = root
	// Helm's own state stays in the node's directory, not in the user's home.
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home,
		"HELM_PLUGINS="+filepath.Join(home, "plugins"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return "helm " + strings.Join(quoteArgs(args), " "), nil
}

// quoteArgs quotes the arguments a shell would split or expand.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " {}\"'*$") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}
