// Package emulation emulates the clusters in which pods with secondary networks break: two nodes
// joined by an underlay, a VXLAN overlay as the primary network (the flannel / Calico VXLAN
// case), and two secondary LANs behind a router with clients on a remote subnet. Every host is
// a network namespace of its own; nothing touches the machine's own network. Tests, the demo
// and the benchmarks all run on it.
package emulation

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/internal/testutil/netscript"
)

// Addresses. Documentation and benchmarking ranges only, and only inside the namespaces.
var (
	Underlay = [2]string{"198.19.0.1", "198.19.0.2"}
	// Pod subnets of the overlay, per node; the bridge gateway is .1 / ::1.
	PodCIDR4 = [2]netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("198.18.2.0/24")}
	PodCIDR6 = [2]netip.Prefix{netip.MustParsePrefix("2001:db8:18:1::/64"), netip.MustParsePrefix("2001:db8:18:2::/64")}

	// The DMZ LAN (macvlan on lan0) and the management LAN (macvlan on mgmt0).
	DMZ4  = netip.MustParsePrefix("192.0.2.0/24")
	DMZ6  = netip.MustParsePrefix("2001:db8:2::/64")
	Mgmt4 = netip.MustParsePrefix("198.51.100.0/24")
	Mgmt6 = netip.MustParsePrefix("2001:db8:51::/64")
	// The remote subnet behind the router.
	Remote4 = netip.MustParsePrefix("203.0.113.0/24")
	Remote6 = netip.MustParsePrefix("2001:db8:3::/64")

	// Hosts.
	RouterDMZ4, RouterDMZ6   = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:2::1")
	RouterMgmt4, RouterMgmt6 = netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:51::1")
	Client4, Client6         = netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8:3::10")
	LANHost4, LANHost6       = netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("2001:db8:2::50")
)

// vxlanMAC is each node's VTEP address, fixed so the static FDB needs no learning (flannel's way).
var vxlanMAC = [2]string{"02:5e:00:00:00:0a", "02:5e:00:00:00:0b"}

// Topology is the set of namespaces and links of one emulated cluster.
type Topology struct {
	Nodes   [2]*podns.NS // node-a, node-b: the hosts in which CNI plugins run
	DMZ     *podns.NS    // the DMZ LAN's switch (a bridge)
	Mgmt    *podns.NS    // the management LAN's switch
	Router  *podns.NS    // routes between both LANs and the remote subnet
	Client  *podns.NS    // a client on the remote subnet
	LANHost *podns.NS    // a host on the DMZ LAN itself (the direct path)

	all []*podns.NS
}

// Build creates the topology; Close removes it. On error nothing is left.
func Build(ctx context.Context, prefix string) (t *Topology, err error) {
	t = &Topology{}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Close())
			t = nil
		}
	}()
	mk := func(name string) (*podns.NS, error) {
		n, err := podns.New(prefix + "-" + name)
		if err == nil {
			t.all = append(t.all, n)
		}
		return n, err
	}
	for i, name := range []string{"node-a", "node-b"} {
		if t.Nodes[i], err = mk(name); err != nil {
			return t, err
		}
	}
	for _, p := range []struct {
		dst  **podns.NS
		name string
	}{{&t.DMZ, "dmz"}, {&t.Mgmt, "mgmt"}, {&t.Router, "router"}, {&t.Client, "client"}, {&t.LANHost, "lanhost"}} {
		if *p.dst, err = mk(p.name); err != nil {
			return t, err
		}
	}
	return t, t.wire(ctx)
}

// Close removes every namespace, and with them every link.
func (t *Topology) Close() error {
	var errs []error
	for i := len(t.all) - 1; i >= 0; i-- {
		errs = append(errs, t.all[i].Remove())
	}
	t.all = nil
	return errors.Join(errs...)
}

func (t *Topology) wire(ctx context.Context) error {
	a, b := t.Nodes[0].Name(), t.Nodes[1].Name()
	dmz, mgmt, router := t.DMZ.Name(), t.Mgmt.Name(), t.Router.Name()
	client, lanhost := t.Client.Name(), t.LANHost.Name()
	var s netscript.Script
	// Forwarding on the nodes and the router; strict rp_filter on the router so a reply that
	// leaves the pod by the wrong LAN is dropped there, as a real router with uRPF would.
	for _, n := range []string{a, b, router} {
		s.Sysctl(n, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}
	s.Sysctl(router, "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1")

	// Underlay and VXLAN overlay.
	s.Veth(a, "ul0", b, "ul0")
	for i, n := range []string{a, b} {
		peer := 1 - i
		s.IP(n, "addr add %s/24 dev ul0", Underlay[i])
		s.IP(n, "link add vxlan0 address %s type vxlan id 42 local %s dev ul0 dstport 4789 nolearning", vxlanMAC[i], Underlay[i])
		s.IP(n, "link set vxlan0 up")
		s.IP(n, "addr add %s/32 dev vxlan0", PodCIDR4[i].Addr())
		s.IP(n, "-6 addr add %s/128 dev vxlan0 nodad", PodCIDR6[i].Addr())
		s.IP(n, "route add %s via %s dev vxlan0 onlink", PodCIDR4[peer], PodCIDR4[peer].Addr())
		s.IP(n, "neigh add %s lladdr %s dev vxlan0 nud permanent", PodCIDR4[peer].Addr(), vxlanMAC[peer])
		s.IP(n, "-6 route add %s via %s dev vxlan0 onlink", PodCIDR6[peer], PodCIDR6[peer].Addr())
		s.IP(n, "-6 neigh add %s lladdr %s dev vxlan0 nud permanent", PodCIDR6[peer].Addr(), vxlanMAC[peer])
		s.Cmd("bridge", "-n", n, "fdb", "append", vxlanMAC[peer], "dev", "vxlan0", "dst", Underlay[peer])
	}

	// The two LAN switches; each node has an uplink into each (lan0: DMZ, mgmt0: management).
	for _, sw := range []string{dmz, mgmt} {
		s.IP(sw, "link add br0 type bridge")
		s.IP(sw, "link set br0 up")
	}
	for i, n := range []string{a, b} {
		s.Uplink(n, "lan0", dmz, fmt.Sprintf("node%d", i))
		s.Uplink(n, "mgmt0", mgmt, fmt.Sprintf("node%d", i))
		// A spare DMZ port per node, for a device moved into a pod with host-device (like a
		// VF): a veth, so the pod's ingress takes the native XDP path.
		s.Uplink(n, "hd0", dmz, fmt.Sprintf("node%dhd", i))
	}

	// The router: a leg on each LAN and one on the remote subnet, where the client lives.
	s.Uplink(router, "dmz", dmz, "router")
	s.Uplink(router, "mgmt", mgmt, "router")
	s.Addr(router, "dmz", RouterDMZ4, DMZ4, RouterDMZ6, DMZ6)
	s.Addr(router, "mgmt", RouterMgmt4, Mgmt4, RouterMgmt6, Mgmt6)
	s.Veth(router, "remote", client, "eth0")
	s.Addr(router, "remote", netip.MustParseAddr("203.0.113.1"), Remote4, netip.MustParseAddr("2001:db8:3::1"), Remote6)
	s.Addr(client, "eth0", Client4, Remote4, Client6, Remote6)
	s.IP(client, "route add default via 203.0.113.1")
	s.IP(client, "-6 route add default via 2001:db8:3::1")

	// A host on the DMZ LAN itself.
	s.Uplink(lanhost, "eth0", dmz, "lanhost")
	s.Addr(lanhost, "eth0", LANHost4, DMZ4, LANHost6, DMZ6)
	s.IP(lanhost, "route add default via %s", RouterDMZ4)
	s.IP(lanhost, "-6 route add default via %s", RouterDMZ6)
	return s.Run(ctx)
}
