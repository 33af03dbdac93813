// Package examples holds the NetworkAttachmentDefinitions of the README and the demo, as users
// write them. The demo applies them with kubectl; the tests apply the same files.
package examples

import "embed"

// FS holds every example manifest.
//
//go:embed *.yaml
var FS embed.FS
