package emulation

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// The groups of the multicast scenarios.
var (
	Group4 = netip.MustParseAddr("239.1.1.1")
	Group6 = netip.MustParseAddr("ff0e::1:1")
)

// GroupListener receives a group's datagrams.
type GroupListener struct {
	conn *net.UDPConn
}

// JoinGroup joins group inside n on the named interfaces, or, with none named, on whichever
// interface the kernel picks (what an application that does not name one gets).
func JoinGroup(n ns.NetNS, group netip.Addr, ifnames ...string) (*GroupListener, error) {
	var conn *net.UDPConn
	err := n.Do(func(ns.NetNS) error {
		gaddr := &net.UDPAddr{IP: group.AsSlice(), Port: GroupPort}
		network := "udp4"
		if group.Is6() {
			network = "udp6"
		}
		if len(ifnames) == 0 {
			var err error
			conn, err = net.ListenMulticastUDP(network, nil, gaddr)
			return err
		}
		for i, name := range ifnames {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			if i == 0 {
				if conn, err = net.ListenMulticastUDP(network, ifi, gaddr); err != nil {
					return err
				}
				continue
			}
			if err := joinMore(conn, ifi, group); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("join %s: %w", group, err)
	}
	return &GroupListener{conn: conn}, nil
}

// Sources returns the source addresses of what arrives within d.
func (g *GroupListener) Sources(d time.Duration) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(d)
	for {
		_ = g.conn.SetReadDeadline(deadline)
		_, from, err := g.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return out
		}
		if a := from.Addr().Unmap(); !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
}

// Close leaves the group.
func (g *GroupListener) Close() { g.conn.Close() }

// SendGroup sends count datagrams to group from n with a default socket: no interface named,
// no source bound, as most applications do.
func SendGroup(n ns.NetNS, group netip.Addr, count int) error {
	return n.Do(func(ns.NetNS) error {
		c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: group.AsSlice(), Port: GroupPort})
		if err != nil {
			return fmt.Errorf("send to %s: %w", group, err)
		}
		defer c.Close()
		for i := 0; i < count; i++ {
			if _, err := c.Write([]byte("steer group probe")); err != nil {
				return fmt.Errorf("send to %s: %w", group, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
}
