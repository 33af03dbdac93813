// Package manifests embeds the Kubernetes manifests Steer ships, so Go code (the local test
// cluster, installers) applies exactly the YAML the DaemonSet deployment uses.
//
// The Helm chart in charts/steer is the one source of the objects: steer.yaml, which
// kustomization.yaml applies, is its templates rendered with the default values (`make
// manifests`), and the CRD is the chart's own crds/ file.
//
// It lives next to the YAML because go:embed cannot reach a parent directory.
package manifests

import "embed"

// FS holds the kustomize manifests (*.yaml) and the chart's CRDs.
//
//go:embed *.yaml charts/steer/crds/*.yaml
var FS embed.FS

// CRDGlob matches the CustomResourceDefinition manifests in FS.
const CRDGlob = "charts/steer/crds/*.yaml"
