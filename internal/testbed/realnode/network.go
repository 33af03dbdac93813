package realnode

import (
	"context"
	"errors"
	"net/netip"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/internal/testutil/netscript"
)

// LAN is the DMZ LAN of the emulation wired to the node: a switch (a bridge in a namespace of
// its own) with the node's uplink lan0, a router to the remote subnet where the client lives,
// and a host on the LAN itself. Addresses are the emulation's (emulation.DMZ, emulation.Client4,
// emulation.LANHost4 ...).
type LAN struct {
	Switch, Router, Client, Host *podns.NS
	// MgmtSwitch and MgmtHost are the management LAN's switch and a host on it (Options.Mgmt;
	// nil otherwise); the router has a leg on it too.
	MgmtSwitch, MgmtHost *podns.NS
	all                  []*podns.NS
}

// Uplink is the node's interface into the DMZ LAN, the master of the dmz NAD's macvlan.
const Uplink = "lan0"

// NodeBridge holds the node's IP.
const NodeBridge = "node0"

// wireNetwork creates the node's namespace (its IP on an empty bridge) and the DMZ LAN.
func (n *Node) wireNetwork(ctx context.Context) (err error) {
	if n.netns, err = podns.New(n.name); err != nil {
		return err
	}
	n.lan = &LAN{}
	for _, p := range []struct {
		dst  **podns.NS
		name string
	}{{&n.lan.Switch, "dmz"}, {&n.lan.Router, "router"}, {&n.lan.Client, "client"}, {&n.lan.Host, "lanhost"}} {
		if *p.dst, err = podns.New(n.name + "-" + p.name); err != nil {
			return err
		}
		n.lan.all = append(n.lan.all, *p.dst)
	}
	node, sw, router, client, host := n.netns.Name(), n.lan.Switch.Name(), n.lan.Router.Name(), n.lan.Client.Name(), n.lan.Host.Name()
	var s netscript.Script
	s.IP(node, "link add %s type bridge", NodeBridge)
	s.IP(node, "addr add %s/24 dev %s", NodeIP, NodeBridge)
	s.IP(node, "link set %s up", NodeBridge)
	s.Sysctl(node, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	s.Sysctl(router, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1")
	s.IP(sw, "link add br0 type bridge")
	s.IP(sw, "link set br0 up")
	s.Uplink(node, Uplink, sw, "node")
	s.Uplink(router, "dmz", sw, "router")
	s.Addr(router, "dmz", emulation.RouterDMZ4, emulation.DMZ4, emulation.RouterDMZ6, emulation.DMZ6)
	s.Veth(router, "remote", client, "eth0")
	s.Addr(router, "remote", netip.MustParseAddr("203.0.113.1"), emulation.Remote4, netip.MustParseAddr("2001:db8:3::1"), emulation.Remote6)
	s.Addr(client, "eth0", emulation.Client4, emulation.Remote4, emulation.Client6, emulation.Remote6)
	s.IP(client, "route add default via 203.0.113.1")
	s.IP(client, "-6 route add default via 2001:db8:3::1")
	s.Uplink(host, "eth0", sw, "lanhost")
	s.Addr(host, "eth0", emulation.LANHost4, emulation.DMZ4, emulation.LANHost6, emulation.DMZ6)
	s.IP(host, "route add default via %s", emulation.RouterDMZ4)
	s.IP(host, "-6 route add default via %s", emulation.RouterDMZ6)
	return s.Run(ctx)
}

// Close removes the LAN's namespaces and with them their links.
func (l *LAN) Close() error {
	var errs []error
	for i := len(l.all) - 1; i >= 0; i-- {
		errs = append(errs, l.all[i].Remove())
	}
	l.all = nil
	return errors.Join(errs...)
}
