// Package manifests embeds the Kubernetes manifests Steer ships, so Go code (the local test
// cluster, installers) applies exactly the YAML the DaemonSet deployment uses.
//
// The Helm chart in charts/steer is the one source of the objects: steer.yaml, which
// kustomization.yaml applies, is its templates rendered with the default values (`make
// manifests`), and the CRD is the chart's own crds/ file.
//
// It lives next to the YAML because go:embed cannot reach a parent directory.
package manifests

import (
	"embed"
	"strings"
)

// FS holds the kustomize manifests (*.yaml) and the chart's CRDs.
//
//go:embed *.yaml charts/steer/crds/*.yaml
var FS embed.FS

// CRDGlob matches the CustomResourceDefinition manifests in FS.
const CRDGlob = "charts/steer/crds/*.yaml"

// tools names the releases of the tools that render and install the manifests (helm).
//
//go:embed tools.txt
var tools string

// ToolVersion is the release of tool in tools.txt, the one `make deps` builds; empty when
// tools.txt names none.
func ToolVersion(tool string) string {
	for _, line := range strings.Split(tools, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == tool {
			return f[1]
		}
	}
	return ""
}
