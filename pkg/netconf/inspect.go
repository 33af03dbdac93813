package netconf

import (
	"encoding/json"
	"fmt"
	"sort"
)

// ConfInfo summarises a CNI network configuration (a single plugin .conf or
// a .conflist) without modelling it: the bytes stay the source of truth.
type ConfInfo struct {
	// Name is the configuration's "name".
	Name string
	// CNIVersion is the configuration's "cniVersion".
	CNIVersion string
	// IsList is true for a configuration list ("plugins", no top-level "type").
	IsList bool
	// Types lists the plugin "type"s in execution order.
	Types []string
	// Capabilities holds every capability that at least one plugin declares
	// true in its "capabilities" object.
	Capabilities map[string]bool
}

// HasCapability reports whether some plugin of the configuration declares the
// capability, so that libcni would pass it the matching runtimeConfig value.
func (i ConfInfo) HasCapability(name string) bool { return i.Capabilities[name] }

// pluginHeader is what libcni itself decodes of each plugin. Decoding into a
// struct is fine here: these values are only read, never re-encoded.
type pluginHeader struct {
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities"`
}

// Inspect checks that conf is a CNI network configuration the way Multus
// does (a "type", or else a non-empty "plugins" list whose plugins all have a
// "type") and summarises it. A top-level "type" wins over "plugins", as in
// Multus. Errors are *types.Error: code 6 when conf or a value does not
// decode, 7 when a required key is missing.
func Inspect(conf []byte) (ConfInfo, error) {
	if !isJSONObject(conf) {
		if !json.Valid(conf) {
			return ConfInfo{}, decodeError("network config is not valid JSON")
		}
		return ConfInfo{}, decodeError("network config must be a JSON object")
	}
	// Top-level keys match exactly, as libcni reads configuration lists and
	// as our in-place edits find them.
	ms, err := objectMembers(conf)
	if err != nil {
		return ConfInfo{}, decodeError("network config: %s", jsonErrText(err))
	}
	var top struct {
		CNIVersion, Name, Type string
		Capabilities           map[string]bool
		Plugins                []json.RawMessage
	}
	for _, f := range []struct {
		key string
		dst any
	}{
		{"cniVersion", &top.CNIVersion}, {"name", &top.Name}, {"type", &top.Type},
		{"capabilities", &top.Capabilities}, {"plugins", &top.Plugins},
	} {
		if sp, ok := lastMember(ms, f.key); ok {
			if err := json.Unmarshal(conf[sp.start:sp.end], f.dst); err != nil {
				return ConfInfo{}, decodeError("network config: %q: %s", f.key, typeErrText(err))
			}
		}
	}
	info := ConfInfo{Name: top.Name, CNIVersion: top.CNIVersion, Capabilities: map[string]bool{}}
	if top.Type != "" {
		info.Types = []string{top.Type}
		addCapabilities(info.Capabilities, top.Capabilities)
		return info, nil
	}
	if top.Plugins == nil {
		return ConfInfo{}, invalidError(`network config %q has neither "type" nor "plugins"`, top.Name)
	}
	if len(top.Plugins) == 0 {
		return ConfInfo{}, invalidError(`network config %q: "plugins" is empty`, top.Name)
	}
	info.IsList = true
	for i, raw := range top.Plugins {
		var p pluginHeader
		if !isJSONObject(raw) {
			return ConfInfo{}, decodeError(`network config %q: "plugins[%d]" must be a JSON object`, top.Name, i)
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return ConfInfo{}, decodeError(`network config %q: "plugins[%d]": %s`, top.Name, i, jsonErrText(err))
		}
		if p.Type == "" {
			return ConfInfo{}, invalidError(`network config %q: "plugins[%d]" has no "type"`, top.Name, i)
		}
		info.Types = append(info.Types, p.Type)
		addCapabilities(info.Capabilities, p.Capabilities)
	}
	return info, nil
}

func addCapabilities(dst, src map[string]bool) {
	for k, v := range src {
		if v {
			dst[k] = true
		}
	}
}

// capabilityList renders the declared capabilities for error messages.
func (i ConfInfo) capabilityList() string {
	names := make([]string, 0, len(i.Capabilities))
	for k := range i.Capabilities {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprintf("%q", names)
}
