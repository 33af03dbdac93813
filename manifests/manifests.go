// Package manifests embeds the Kubernetes manifests Steer ships, so Go code (the local test
// cluster, installers) applies exactly the YAML the DaemonSet deployment uses.
//
// It lives next to the YAML because go:embed cannot reach a parent directory.
package manifests

import "embed"

// FS holds every *.yaml file of this directory. CRDs are named crd-*.yaml.
//
//go:embed *.yaml
var FS embed.FS

// CRDGlob matches the CustomResourceDefinition manifests in FS.
const CRDGlob = "crd-*.yaml"
