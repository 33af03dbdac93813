package netconf

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// A clusterNetwork (or defaultNetworks entry) that is a .conflist file also gets the plugin
// files of the directory named after the list, beside it, appended to its plugins: libcni's
// subdirectory loading, which Multus v4.3.0 applies to such a file (LoadChainedPluginsFromFile)
// and the runtime applies to the file it loads itself. "loadOnlyInlinedPlugins": true turns it
// off.

// cniNetworkName is libcni's rule for a network name that may name a directory.
var cniNetworkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// withSubdirPlugins returns conf (read from a .conflist file in dir) with the .conf files of
// dir/<name>, in name order, appended to "plugins"; conf unchanged when there are none.
func withSubdirPlugins(conf []byte, dir string) ([]byte, error) {
	var l struct {
		Name       string          `json:"name"`
		InlineOnly json.RawMessage `json:"loadOnlyInlinedPlugins"`
		Plugins    []json.RawMessage
	}
	if err := json.Unmarshal(conf, &l); err != nil {
		return nil, decodeError("network config: %s", jsonErrText(err))
	}
	if v := strings.ToLower(strings.Trim(string(l.InlineOnly), `"`)); v == "true" {
		return conf, nil
	}
	if !cniNetworkName.MatchString(l.Name) {
		return nil, invalidError("network config name %q cannot name a plugin directory (libcni's rule)", l.Name)
	}
	sub := filepath.Join(dir, l.Name)
	files, err := confFiles(sub, ".conf")
	if err != nil || len(files) == 0 {
		return conf, err
	}
	plugins := l.Plugins
	for _, f := range files {
		b, err := readConfFile(f)
		if err != nil {
			return nil, err
		}
		var p struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(b, &p); err != nil || p.Type == "" {
			return nil, invalidError("plugin config %s: not a plugin configuration with a \"type\"", f)
		}
		plugins = append(plugins, json.RawMessage(b))
	}
	list, err := json.Marshal(plugins)
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	out, err := setMember(conf, "plugins", list)
	if err != nil {
		return nil, decodeError("network config: %v", err)
	}
	return out, nil
}
