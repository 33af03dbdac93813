package delegate

import (
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// Network is one delegate configuration, ready for libcni. Raw holds the bytes it was
// parsed from, unchanged: callers cache and compare those, never a re-encoding.
type Network struct {
	// Raw is the configuration exactly as given to Parse.
	Raw []byte
	// Name and CNIVersion are those libcni runs the plugins with.
	Name       string
	CNIVersion string
	list       *libcni.NetworkConfigList
}

// Types lists the plugin types of the network in execution order.
func (n *Network) Types() []string {
	out := make([]string, len(n.list.Plugins))
	for i, p := range n.list.Plugins {
		out[i] = p.Network.Type
	}
	return out
}

// PluginTypes lists every binary the network runs: each plugin's type and IPAM type.
func (n *Network) PluginTypes() []string {
	var out []string
	for _, p := range n.list.Plugins {
		out = append(out, p.Network.Type)
		if p.Network.IPAM.Type != "" {
			out = append(out, p.Network.IPAM.Type)
		}
	}
	return out
}

// Capabilities reports the capabilities any plugin of the network declares.
func (n *Network) Capabilities() map[string]bool {
	caps := map[string]bool{}
	for _, p := range n.list.Plugins {
		for k, v := range p.Network.Capabilities {
			if v {
				caps[k] = true
			}
		}
	}
	return caps
}

// Parse turns a single-plugin configuration or a configuration list into a Network. A single
// configuration is wrapped into a list of one plugin whose bytes are conf itself, so every
// verb goes through the libcni list API. When the configuration has no cniVersion,
// fallbackVersion is used (as Multus uses its own), so the plugins see one they understand.
//
// Errors are *types.Error: code 6 when conf does not decode, 7 when it lacks a name or type.
func Parse(conf []byte, fallbackVersion string) (*Network, error) {
	var top struct {
		Type    string            `json:"type"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(conf, &top); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("network config does not decode: %v", err), "")
	}
	var list *libcni.NetworkConfigList
	if top.Type != "" {
		// A top-level "type" wins over "plugins", as in Multus and netconf.Inspect.
		pc, err := libcni.NetworkPluginConfFromBytes(conf)
		if err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, err.Error(), "")
		}
		list = &libcni.NetworkConfigList{
			Name:       pc.Network.Name,
			CNIVersion: pc.Network.CNIVersion,
			Plugins:    []*libcni.PluginConfig{pc},
			Bytes:      conf,
		}
	} else {
		switch {
		case top.Plugins == nil:
			return nil, types.NewError(types.ErrInvalidNetworkConfig, `network config has neither "type" nor "plugins"`, "")
		case len(top.Plugins) == 0:
			return nil, types.NewError(types.ErrInvalidNetworkConfig, `network config: "plugins" is empty`, "")
		}
		var err error
		if list, err = libcni.NetworkConfFromBytes(conf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, err.Error(), "")
		}
	}
	if list.Name == "" {
		// libcni refuses it at ADD; say so before anything runs.
		return nil, types.NewError(types.ErrInvalidNetworkConfig, `network config has no "name"`, "")
	}
	if list.CNIVersion == "" {
		// libcni injects the list's version into every plugin it runs.
		list.CNIVersion = fallbackVersion
	}
	return &Network{Raw: conf, Name: list.Name, CNIVersion: list.CNIVersion, list: list}, nil
}
