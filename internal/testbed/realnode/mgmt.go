package realnode

import (
	"context"
	"net/netip"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/internal/testutil/netscript"
)

// MgmtHost4 and MgmtHost6 are the addresses of the host on the management LAN.
var MgmtHost4, MgmtHost6 = netip.MustParseAddr("198.51.100.50"), netip.MustParseAddr("2001:db8:51::50")

// wireMgmt wires the management LAN when the node has one (Options.Mgmt), as the emulation's:
// a switch, the node's uplink named as the mgmt NAD's master expects, a leg of the DMZ's router
// (so the remote client reaches both LANs, and the router's strict rp_filter drops a reply that
// leaves the pod by the other LAN) and a host on the LAN itself.
func (n *Node) wireMgmt(ctx context.Context) (err error) {
	if !n.mgmt {
		return nil
	}
	if n.lan.MgmtSwitch, err = n.lanNS("mgmt"); err != nil {
		return err
	}
	if n.lan.MgmtHost, err = n.lanNS("mgmthost"); err != nil {
		return err
	}
	node, sw, router, host := n.netns.Name(), n.lan.MgmtSwitch.Name(), n.lan.Router.Name(), n.lan.MgmtHost.Name()
	var s netscript.Script
	s.IP(sw, "link add br0 type bridge")
	s.IP(sw, "link set br0 up")
	s.Uplink(node, emulation.Mgmt.Master, sw, "node")
	s.Uplink(router, "mgmt", sw, "router")
	s.Addr(router, "mgmt", emulation.RouterMgmt4, emulation.Mgmt4, emulation.RouterMgmt6, emulation.Mgmt6)
	s.Uplink(host, "eth0", sw, "mgmthost")
	s.Addr(host, "eth0", MgmtHost4, emulation.Mgmt4, MgmtHost6, emulation.Mgmt6)
	s.IP(host, "route add default via %s", emulation.RouterMgmt4)
	s.IP(host, "-6 route add default via %s", emulation.RouterMgmt6)
	return s.Run(ctx)
}

// lanNS creates a namespace of the node's LAN, removed with it.
func (n *Node) lanNS(name string) (*podns.NS, error) {
	ns, err := podns.New(n.name + "-" + name)
	if err == nil {
		n.lan.all = append(n.lan.all, ns)
	}
	return ns, err
}
