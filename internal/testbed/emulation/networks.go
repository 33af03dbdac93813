package emulation

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// Families are the address families of the primary network.
type Families int

const (
	DualStack Families = iota // today's default of the emulation
	IPv4Only                  // most flannel and Calico clusters
	IPv6Only
)

func (f Families) String() string {
	return [...]string{"dual-stack", "ipv4-only", "ipv6-only"}[f]
}

// ClusterNetwork is the primary network's CNI config on node i: a bridge on the overlay with
// host-local IPAM, the default route via the bridge (what flannel and Calico give a pod).
func ClusterNetwork(i int, dataDir string) []byte {
	return ClusterNetworkOf(i, dataDir, DualStack)
}

// ClusterNetworkOf is ClusterNetwork with the given address families.
func ClusterNetworkOf(i int, dataDir string, fams Families) []byte {
	var ranges []any
	if fams != IPv6Only {
		ranges = append(ranges, []any{map[string]any{"subnet": PodCIDR4[i].String()}})
	}
	if fams != IPv4Only {
		ranges = append(ranges, []any{map[string]any{"subnet": PodCIDR6[i].String()}})
	}
	return mustJSON(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "overlay",
		"plugins": []any{map[string]any{
			"type":             "bridge",
			"bridge":           "cni0",
			"isGateway":        true,
			"isDefaultGateway": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": dataDir,
				"ranges":  ranges,
			},
		}},
	})
}

// LAN names a secondary LAN of the topology.
type LAN struct {
	Master        string // uplink on each node
	V4, V6        netip.Prefix
	Gateway4, Gw6 netip.Addr
	NetworkName   string
}

// DMZ and Management are the two secondary LANs.
var (
	DMZ  = LAN{Master: "lan0", V4: DMZ4, V6: DMZ6, Gateway4: RouterDMZ4, Gw6: RouterDMZ6, NetworkName: "dmz"}
	Mgmt = LAN{Master: "mgmt0", V4: Mgmt4, V6: Mgmt6, Gateway4: RouterMgmt4, Gw6: RouterMgmt6, NetworkName: "mgmt"}
)

// Addr returns the LAN's address number host, IPv4 and IPv6.
func (l LAN) Addr(host int) (netip.Addr, netip.Addr) {
	a4 := l.V4.Addr().As4()
	a4[3] = byte(host)
	a6 := l.V6.Addr().As16()
	a6[15] = byte(host)
	return netip.AddrFrom4(a4), netip.AddrFrom16(a6)
}

// MacvlanConf is the macvlan NetworkAttachmentDefinition config users write for the LAN:
// static addresses with the router as gateway, and no routes. extra keys (Steer's policy) are
// merged at the top level.
func (l LAN) MacvlanConf(host int, extra map[string]any) []byte {
	a4, a6 := l.Addr(host)
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       l.NetworkName,
		"type":       "macvlan",
		"master":     l.Master,
		"mode":       "bridge",
		"ipam": map[string]any{
			"type": "static",
			"addresses": []any{
				map[string]any{"address": fmt.Sprintf("%s/%d", a4, l.V4.Bits()), "gateway": l.Gateway4.String()},
				map[string]any{"address": fmt.Sprintf("%s/%d", a6, l.V6.Bits()), "gateway": l.Gw6.String()},
			},
		},
	}
	for k, v := range extra {
		conf[k] = v
	}
	return mustJSON(conf)
}

// HostLocalConf is the macvlan config of the LAN with dual-stack host-local IPAM: 50
// addresses from host number first on, the router as gateway, and routes only to the subnets listed (through the
// router) — the NAD users write, with no Steer key.
func (l LAN) HostLocalConf(name, dataDir string, first int, routes ...netip.Prefix) []byte {
	r4, r6 := l.Addr(first)
	e4, e6 := l.Addr(first + 49)
	var rs []any
	for _, r := range routes {
		gw := l.Gateway4
		if r.Addr().Is6() {
			gw = l.Gw6
		}
		rs = append(rs, map[string]any{"dst": r.String(), "gw": gw.String()})
	}
	ipam := map[string]any{
		"type":    "host-local",
		"dataDir": dataDir,
		"ranges": []any{
			[]any{map[string]any{"subnet": l.V4.String(), "rangeStart": r4.String(), "rangeEnd": e4.String(), "gateway": l.Gateway4.String()}},
			[]any{map[string]any{"subnet": l.V6.String(), "rangeStart": r6.String(), "rangeEnd": e6.String(), "gateway": l.Gw6.String()}},
		},
	}
	if len(rs) > 0 {
		ipam["routes"] = rs
	}
	return mustJSON(map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"type":       "macvlan",
		"master":     l.Master,
		"mode":       "bridge",
		"ipam":       ipam,
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
