package realnode

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/podns"
)

// LAN is the DMZ LAN of the emulation wired to the node: a switch (a bridge in a namespace of
// its own) with the node's uplink lan0, a router to the remote subnet where the client lives,
// and a host on the LAN itself. Addresses are the emulation's (emulation.DMZ, emulation.Client4,
// emulation.LANHost4 ...).
type LAN struct {
	Switch, Router, Client, Host *podns.NS
	all                          []*podns.NS
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
	var s script
	s.ip(node, "link add %s type bridge", NodeBridge)
	s.ip(node, "addr add %s/24 dev %s", NodeIP, NodeBridge)
	s.ip(node, "link set %s up", NodeBridge)
	s.sysctl(node, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	s.sysctl(router, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1")
	s.ip(sw, "link add br0 type bridge")
	s.ip(sw, "link set br0 up")
	s.uplink(node, Uplink, sw, "node")
	s.uplink(router, "dmz", sw, "router")
	s.addr(router, "dmz", emulation.RouterDMZ4, emulation.DMZ4, emulation.RouterDMZ6, emulation.DMZ6)
	s.veth(router, "remote", client, "eth0")
	s.addr(router, "remote", netip.MustParseAddr("203.0.113.1"), emulation.Remote4, netip.MustParseAddr("2001:db8:3::1"), emulation.Remote6)
	s.addr(client, "eth0", emulation.Client4, emulation.Remote4, emulation.Client6, emulation.Remote6)
	s.ip(client, "route add default via 203.0.113.1")
	s.ip(client, "-6 route add default via 2001:db8:3::1")
	s.uplink(host, "eth0", sw, "lanhost")
	s.addr(host, "eth0", emulation.LANHost4, emulation.DMZ4, emulation.LANHost6, emulation.DMZ6)
	s.ip(host, "route add default via %s", emulation.RouterDMZ4)
	s.ip(host, "-6 route add default via %s", emulation.RouterDMZ6)
	return s.run(ctx)
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

// script collects commands and runs them in order, stopping at the first failure.
type script struct{ cmds [][]string }

func (s *script) cmd(args ...string) { s.cmds = append(s.cmds, args) }

func (s *script) ip(ns, format string, a ...any) {
	s.cmd(append([]string{"ip", "-n", ns}, strings.Fields(fmt.Sprintf(format, a...))...)...)
}

func (s *script) sysctl(ns string, kv ...string) {
	s.cmd(append([]string{"ip", "netns", "exec", ns, "sysctl", "-qw"}, kv...)...)
}

func (s *script) veth(ns1, name1, ns2, name2 string) {
	s.cmd("ip", "-n", ns1, "link", "add", name1, "type", "veth", "peer", "name", name2, "netns", ns2)
	s.ip(ns1, "link set %s up", name1)
	s.ip(ns2, "link set %s up", name2)
}

func (s *script) uplink(ns, name, sw, port string) {
	s.veth(ns, name, sw, port)
	s.ip(sw, "link set %s master br0", port)
}

func (s *script) addr(ns, dev string, a4 netip.Addr, p4 netip.Prefix, a6 netip.Addr, p6 netip.Prefix) {
	s.ip(ns, "addr add %s/%d dev %s", a4, p4.Bits(), dev)
	s.ip(ns, "-6 addr add %s/%d dev %s nodad", a6, p6.Bits(), dev)
}

func (s *script) run(ctx context.Context) error {
	for _, c := range s.cmds {
		out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
