package netconf

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"

	"github.com/steernet/steer/pkg/bpffs"
)

// statePathKeys are where Steer writes state and pins: an explicit "" or null there is a
// templating mistake, not a request for the default, and is refused.
var statePathKeys = []string{"cniDir", "bpffsRoot"}

// checkPaths requires every path in the configuration to be absolute: a relative one is
// resolved against whatever directory the runtime started the plugin in ("cniDir": "x" wrote
// under it). It runs on the decoded values, before finish fills in defaults.
func (c *Conf) checkPaths(top map[string]json.RawMessage) error {
	for _, key := range statePathKeys {
		raw, ok := lookupFold(top, key)
		if v := strings.TrimSpace(string(raw)); ok && (v == "null" || v == `""`) {
			return invalidError(`steer config: %q: %s is not a path; leave the key out for the default`, key, v)
		}
	}
	for _, p := range []struct{ key, val string }{
		{"confDir", c.ConfDir}, {"cniDir", c.CNIDir}, {"multusCNIDir", c.MultusCNIDir}, {"binDir", c.BinDir},
		{"kubeconfig", c.Kubeconfig}, {"readinessindicatorfile", c.ReadinessIndicatorFile},
		{"socketPath", c.SocketPath}, {"bpffsRoot", c.BPFFSRoot},
	} {
		if p.val != "" && !filepath.IsAbs(p.val) {
			return invalidError(`steer config: %q: %q is not an absolute path`, p.key, p.val)
		}
	}
	// clusterNetwork and defaultNetworks are paths when they contain '/' (as in Multus).
	refs := append([]string{c.ClusterNetwork}, c.DefaultNetworks...)
	for _, ref := range refs {
		if ref = strings.TrimSpace(ref); strings.Contains(ref, "/") && !filepath.IsAbs(ref) {
			return invalidError(`steer config: network %q is a relative path; use an absolute one or a network name`, ref)
		}
	}
	if c.BPFFSRoot != "" {
		if err := bpffs.CheckRoot(c.BPFFSRoot); err != nil {
			return invalidError(`steer config: "bpffsRoot": %v`, err)
		}
	}
	return nil
}

// checkFoldedKeys refuses two members that name one known key in different case
// ("cniVersion" and "CNIVERSION"): steer took the exact match while skel, like
// encoding/json, took the last one, so it validated one version and printed another.
func checkFoldedKeys(top map[string]json.RawMessage, known map[string]bool) error {
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]string{}
	for _, k := range keys {
		l := strings.ToLower(k)
		if !known[l] {
			continue
		}
		if prev, ok := seen[l]; ok {
			return invalidError(`steer config: %q and %q are the same key in different case`, prev, k)
		}
		seen[l] = k
	}
	return nil
}
