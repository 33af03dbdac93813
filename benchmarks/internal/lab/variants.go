package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// Variant names, in the order the report lists them. Direct is every ratio's baseline.
const (
	Direct     = "direct"
	Broken     = "broken"
	Static     = "static routes"
	Policy     = "policy routing"
	SteerTC    = "Steer TC"
	StaticHD   = "static routes, host-device"
	SteerXDP   = "Steer XDP"
	NoPrograms = "no programs"
	WithSteer  = "Steer"
	FanOut     = "Steer fan-out"
)

// Path is one way a client reaches a pod: from a namespace to one of the pod's addresses.
type Path struct {
	Name string
	From *podns.NS
	To   netip.Addr
	Pod  *Pod
}

// Group is the multicast group of the benchmark, in every steered pod's policy.
var Group = netip.MustParsePrefix("239.1.1.0/24")

// Setup is every pod of a run, by what it measures.
type Setup struct {
	Secondary []Path   // client to a pod's net1 address (direct: the LAN host); Direct first
	Primary   []Path   // pod to pod over eth0 across nodes; NoPrograms first
	Multicast []Sender // Direct first
}

// Build adds the pods and starts their servers.
func (l *Lab) Build(ctx context.Context) (*Setup, error) {
	s := &Setup{}
	if err := l.secondary(ctx, s); err != nil {
		return nil, err
	}
	if err := l.primary(ctx, s); err != nil {
		return nil, err
	}
	if err := l.multicast(ctx, s); err != nil {
		return nil, err
	}
	started := map[*Pod]bool{}
	for _, p := range append(s.Secondary, s.Primary...) {
		if !started[p.Pod] {
			started[p.Pod] = true
			if err := l.Servers(ctx, p.Pod); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

func (l *Lab) steer(ingress datapath.IngressMode) steering.Dataplane {
	return steering.BPF{Options: datapath.Options{Layout: l.Layout, Ingress: ingress}}
}

func (l *Lab) eth0(node int) emulation.Network {
	return emulation.Network{IfName: "eth0", Conf: emulation.ClusterNetwork(node, l.DataDir(node)), Primary: true}
}

// macvlan is the NAD users write for the DMZ; groups go into Steer's policy (ignored by Off).
func macvlan(lan emulation.LAN, host int, ifname string, groups ...netip.Prefix) emulation.Network {
	p := netconf.DefaultPolicy()
	p.Multicast = groups
	return emulation.Network{IfName: ifname, Conf: lan.MacvlanConf(host, nil), Policy: p}
}

// The DMZ host numbers of the pods.
const (
	hostDirect = 20 + iota
	hostBroken
	hostStatic
	hostPolicy
	hostSteerTC
	hostSteerXDP
	hostFanOut
	hostStaticHD
)

func (l *Lab) secondary(ctx context.Context, s *Setup) error {
	add := func(name, pod string, host int, dp steering.Dataplane, net1 emulation.Network) (*Pod, error) {
		node := 0
		if name == StaticHD {
			node = 1 // node 0's spare DMZ device goes to Steer XDP
		}
		p, err := l.AddPod(ctx, pod, node, dp, []emulation.Network{l.eth0(node), net1})
		if err == nil {
			a4, _ := emulation.DMZ.Addr(host)
			from := l.Topo.Client
			if name == Direct {
				from = l.Topo.LANHost
			}
			s.Secondary = append(s.Secondary, Path{Name: name, From: from, To: a4, Pod: p})
		}
		return p, err
	}
	off := steering.Off{}
	if _, err := add(Direct, "direct", hostDirect, off, macvlan(emulation.DMZ, hostDirect, "net1")); err != nil {
		return err
	}
	if _, err := add(Broken, "broken", hostBroken, off, macvlan(emulation.DMZ, hostBroken, "net1")); err != nil {
		return err
	}
	if _, err := add(Static, "static", hostStatic, off, staticRoutes(hostStatic)); err != nil {
		return err
	}
	p, err := add(Policy, "policy", hostPolicy, off, macvlan(emulation.DMZ, hostPolicy, "net1"))
	if err != nil {
		return err
	}
	if err := policyRouting(ctx, p, hostPolicy); err != nil {
		return err
	}
	if _, err := add(SteerTC, "steer-tc", hostSteerTC, l.steer(datapath.IngressTC), macvlan(emulation.DMZ, hostSteerTC, "net1", Group)); err != nil {
		return err
	}
	if _, err := add(StaticHD, "static-hd", hostStaticHD, off, withRoutes(hostDevice(hostStaticHD))); err != nil {
		return err
	}
	_, err = add(SteerXDP, "steer-xdp", hostSteerXDP, l.steer(datapath.IngressXDP), hostDevice(hostSteerXDP))
	return err
}

// staticRoutes is the hand fix users write into the NAD: a route for each known client subnet
// via the LAN's router, and the multicast range on net1. IPAM gives a route without "gw" the
// interface's gateway, which turns multicast into unicast to the router: as users get it.
func staticRoutes(host int) emulation.Network {
	return withRoutes(macvlan(emulation.DMZ, host, "net1"))
}

func withRoutes(n emulation.Network) emulation.Network {
	var conf map[string]any
	_ = json.Unmarshal(n.Conf, &conf)
	conf["ipam"].(map[string]any)["routes"] = []any{
		map[string]any{"dst": emulation.Remote4.String(), "gw": emulation.RouterDMZ4.String()},
		map[string]any{"dst": emulation.Remote6.String(), "gw": emulation.RouterDMZ6.String()},
		map[string]any{"dst": "224.0.0.0/4"},
	}
	n.Conf, _ = json.Marshal(conf)
	return n
}

// policyRouting is what Spiderpool's coordinator sets up: traffic from net1's address looks up
// a table whose default route is net1's gateway.
func policyRouting(ctx context.Context, p *Pod, host int) error {
	a4, a6 := emulation.DMZ.Addr(host)
	for _, c := range []string{
		fmt.Sprintf("ip -4 rule add from %s table 100", a4),
		fmt.Sprintf("ip -4 route add default via %s dev net1 table 100", emulation.RouterDMZ4),
		fmt.Sprintf("ip -6 rule add from %s table 100", a6),
		fmt.Sprintf("ip -6 route add default via %s dev net1 table 100", emulation.RouterDMZ6),
	} {
		if _, err := p.Exec(ctx, strings.Fields(c)...); err != nil {
			return err
		}
	}
	return nil
}

// hostDevice moves the node's spare DMZ veth (hd0) into the pod, as a VF would be: a device
// with native XDP, so Steer's ingress takes the XDP path. Without programs (and with static
// routes) it is the same device's kernel-only baseline.
func hostDevice(host int) emulation.Network {
	a4, a6 := emulation.DMZ.Addr(host)
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "dmz-hd", "type": "host-device", "device": "hd0",
		"ipam": map[string]any{"type": "static", "addresses": []any{
			map[string]any{"address": fmt.Sprintf("%s/24", a4), "gateway": emulation.RouterDMZ4.String()},
			map[string]any{"address": fmt.Sprintf("%s/64", a6), "gateway": emulation.RouterDMZ6.String()},
		}},
	}
	b, _ := json.Marshal(conf)
	return emulation.Network{IfName: "net1", Conf: b, Policy: netconf.DefaultPolicy()}
}
