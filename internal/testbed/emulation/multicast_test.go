package emulation

import (
	"net/netip"
	"testing"
	"time"

	"github.com/steernet/steer/internal/testutil/nstest"
)

const listenFor = 700 * time.Millisecond

// TestSeed000Multicast: a pod on the overlay with a macvlan into a LAN multicasts with a default
// socket, and joins a group without naming an interface. Without Steer both go to eth0.
func TestSeed000Multicast(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	for _, steer := range modes() {
		t.Run(modeName(steer), func(t *testing.T) {
			pod := addPod(t, topo, layout, 0, "mc", steer, []Network{eth0(t, 0),
				secondary("net1", DMZ, 10, "239.1.1.0/24", "ff0e::1:0/112")})
			a4, a6 := DMZ.Addr(10)
			for _, c := range []struct {
				group netip.Addr
				src   netip.Addr
			}{{Group4, a4}, {Group6, a6}} {
				lan, err := JoinGroup(topo.LANHost, c.group, "eth0")
				if err != nil {
					t.Fatal(err)
				}
				if err := SendGroup(pod.NS, c.group, 5); err != nil {
					t.Fatal(err)
				}
				expectSources(t, "LAN host, group "+c.group.String(), lan.Sources(listenFor), steer, c.src)
				lan.Close()

				in, err := JoinGroup(pod.NS, c.group)
				if err != nil {
					t.Fatal(err)
				}
				if err := SendGroup(topo.LANHost, c.group, 5); err != nil {
					t.Fatal(err)
				}
				from := LANHost4
				if c.group.Is6() {
					from = LANHost6
				}
				expectSources(t, "pod joined without an interface, group "+c.group.String(), in.Sources(listenFor), steer, from)
				in.Close()
			}
		})
	}
}

// TestMulticastFanOut: one group taken by two secondary networks reaches both LANs, each copy
// with that network's source address.
func TestMulticastFanOut(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	for _, steer := range modes() {
		t.Run(modeName(steer), func(t *testing.T) {
			pod := addPod(t, topo, layout, 0, "fan", steer, []Network{eth0(t, 0),
				secondary("net1", DMZ, 11, "239.1.1.0/24", "ff0e::1:0/112"),
				secondary("net2", Mgmt, 11, "239.1.1.0/24", "ff0e::1:0/112")})
			d4, d6 := DMZ.Addr(11)
			m4, m6 := Mgmt.Addr(11)
			for _, c := range []struct {
				group netip.Addr
				srcs  []netip.Addr
			}{{Group4, []netip.Addr{d4, m4}}, {Group6, []netip.Addr{d6, m6}}} {
				router, err := JoinGroup(topo.Router, c.group, "dmz", "mgmt")
				if err != nil {
					t.Fatal(err)
				}
				if err := SendGroup(pod.NS, c.group, 5); err != nil {
					t.Fatal(err)
				}
				expectSources(t, "router on both LANs, group "+c.group.String(), router.Sources(listenFor), steer, c.srcs...)
				router.Close()
			}
		})
	}
}
