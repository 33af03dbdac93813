package netconf

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// RuntimeConfig returns the CNI capability arguments (libcni's
// RuntimeConf.CapabilityArgs) that the selection element asks for:
//
//	ips             -> "ips"
//	mac             -> "mac"
//	portMappings    -> "portMappings"
//	bandwidth       -> "bandwidth"
//	infiniband-guid -> "infinibandGUID"
//	deviceID        -> "deviceID" (only when declared, as Multus)
//
// libcni silently drops a capability no plugin declares. Multus accepts such
// an element (and passes its ips and mac in CNI_ARGS, see LegacyArgs), so by
// default the undeclared capability is left out and its selection field
// returned in undeclared, for a warning. With strict, a pod that asked for a
// static IP or MAC and would not get it fails instead (*types.Error, code 7,
// naming the capability). deviceID is never refused: Multus also feeds it to
// plugins through the config. The map is never nil.
func RuntimeConfig(elem NetworkSelectionElement, conf []byte, strict bool) (rc map[string]any, undeclared []string, err error) {
	info, err := Inspect(conf)
	if err != nil {
		return nil, nil, prefixError(fmt.Sprintf("network %q", elem.key()), err)
	}
	rc = map[string]any{}
	want := func(field, capability string, set bool, val any) error {
		if !set {
			return nil
		}
		if !info.HasCapability(capability) {
			if !strict {
				undeclared = append(undeclared, field)
				return nil
			}
			return invalidError(`network %q: the selection element sets %q, but no plugin in the network config declares the %q capability (declared: %s)`,
				elem.key(), field, capability, info.capabilityList())
		}
		rc[capability] = val
		return nil
	}
	for _, c := range []struct {
		field, capability string
		set               bool
		val               any
	}{
		{"ips", "ips", len(elem.IPs) > 0, elem.IPs},
		{"mac", "mac", elem.MAC != "", elem.MAC},
		{"portMappings", "portMappings", len(elem.PortMappings) > 0, elem.PortMappings},
		{"bandwidth", "bandwidth", elem.Bandwidth != nil, elem.Bandwidth},
		{"infiniband-guid", "infinibandGUID", elem.InfinibandGUID != "", elem.InfinibandGUID},
	} {
		if err := want(c.field, c.capability, c.set, c.val); err != nil {
			return nil, nil, err
		}
	}
	if elem.DeviceID != "" && info.HasCapability("deviceID") {
		rc["deviceID"] = elem.DeviceID
	}
	return rc, undeclared, nil
}

// LegacyArgs are the CNI_ARGS Multus adds to a delegate's ADD for the
// element's mac and ips (its pre-capability way, which e.g. static IPAM
// still reads): MAC=<mac>, then IP=<ips joined by ",">. Only the fields in
// undeclared get one: Multus adds them even when the capability is declared,
// but then runtimeConfig already carries the value, and host-local refuses
// IP=<a>,<b> as one address.
func LegacyArgs(elem NetworkSelectionElement, undeclared []string) [][2]string {
	var out [][2]string
	if elem.MAC != "" && slices.Contains(undeclared, "mac") {
		out = append(out, [2]string{"MAC", elem.MAC})
	}
	if len(elem.IPs) > 0 && slices.Contains(undeclared, "ips") {
		out = append(out, [2]string{"IP", strings.Join(elem.IPs, ",")})
	}
	return out
}

// MergeCNIArgs merges a selection element's cni-args into the network's
// config as Multus does: into "args": {"cni": {...}} at the top level of a
// single-plugin config, or of every plugin of a configuration list, the
// element's keys replacing the config's. Only those members change; every
// other byte of nadConf is kept. With no args the config is returned as is.
//
// The Steer policy cannot be set through cni-args: a "steer" key is an error
// (*types.Error, code 7), as is an "args" or "args.cni" that is not an object.
func MergeCNIArgs(nadConf []byte, elemArgs map[string]any) ([]byte, error) {
	if _, ok := elemArgs[PolicyKey]; ok {
		return nil, invalidError(`cni-args: key %q is reserved for the Steer policy; use the selection element's %q key`, PolicyKey, PolicyKey)
	}
	info, err := Inspect(nadConf)
	if err != nil {
		return nil, err
	}
	if len(elemArgs) == 0 {
		return nadConf, nil
	}
	keys := make([]string, 0, len(elemArgs))
	for k := range elemArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic output for identical input
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		if vals[i], err = json.Marshal(elemArgs[k]); err != nil {
			return nil, invalidError("cni-args: %q: %v", k, err)
		}
	}
	merge := func(obj []byte, where string) ([]byte, error) {
		out, err := mergeArgs(obj, keys, vals)
		if err != nil {
			return nil, invalidError("network config %q: %s%v", info.Name, where, err)
		}
		return out, nil
	}
	if !info.IsList {
		return merge(nadConf, "")
	}
	ms, err := objectMembers(nadConf)
	if err != nil {
		return nil, decodeError("network config: %v", err)
	}
	psp, _ := lastMember(ms, "plugins") // Inspect saw it
	plugins := nadConf[psp.start:psp.end]
	elems, err := arrayElems(plugins)
	if err != nil {
		return nil, decodeError("network config: plugins: %v", err)
	}
	// Edit back to front so that the spans of earlier plugins stay valid.
	for i := len(elems) - 1; i >= 0; i-- {
		sp := elems[i]
		p, err := merge(plugins[sp.start:sp.end], fmt.Sprintf("plugins[%d].", i))
		if err != nil {
			return nil, err
		}
		plugins = splice(plugins, sp, p)
	}
	return splice(nadConf, psp, plugins), nil
}

// mergeArgs sets args.cni.<keys[i]> = vals[i] in the object obj.
func mergeArgs(obj []byte, keys []string, vals [][]byte) ([]byte, error) {
	args, err := childObject(obj, "args")
	if err != nil {
		return nil, err
	}
	cni, err := childObject(args, "cni")
	if err != nil {
		return nil, fmt.Errorf("args.%w", err)
	}
	for i, k := range keys {
		if cni, err = setMember(cni, k, vals[i]); err != nil {
			return nil, err
		}
	}
	if args, err = setMember(args, "cni", cni); err != nil {
		return nil, err
	}
	return setMember(obj, "args", args)
}

// childObject returns the object value of key in obj, or "{}" when the key is
// missing or null.
func childObject(obj []byte, key string) ([]byte, error) {
	ms, err := objectMembers(obj)
	if err != nil {
		return nil, err
	}
	sp, ok := lastMember(ms, key)
	if !ok {
		return []byte("{}"), nil
	}
	v := obj[sp.start:sp.end]
	switch firstByte(v) {
	case '{':
		return v, nil
	case 'n':
		return []byte("{}"), nil
	}
	return nil, fmt.Errorf("%s: must be a JSON object", key)
}
