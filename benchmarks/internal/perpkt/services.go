package perpkt

import (
	"fmt"
	"net/netip"

	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/service"
)

// A Service on net1's LAN, as steerd's node agent programs it into a pod on that network: its
// UDP port's ClusterIPs and a backend on net1's subnet.
var (
	svcIP4, svcIP6           = netip.MustParseAddr("198.18.96.10"), netip.MustParseAddr("2001:db8:96::10")
	svcBackend4, svcBackend6 = netip.MustParseAddr("192.0.2.30"), netip.MustParseAddr("2001:db8:2::30")
	lanHost4, lanHost6       = netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("2001:db8:2::50") // no backend
)

const (
	svcPort        = 53
	svcBackendPort = 5353
	svcPairPort    = 40010 // the source port of the proxied flow that makes a pair live
)

// svcEntries are the pod's Service entries in the cases run with Services.
func svcEntries() []service.Entry {
	var out []service.Entry
	for _, v6 := range []bool{false, true} {
		out = append(out, service.Entry{
			Frontend: service.Frontend{Addr: netip.AddrPortFrom(pick(v6, svcIP4, svcIP6), svcPort), Proto: service.UDP},
			Service:  "default/dns-dmz", IfName: fmt.Sprintf("p%d", slotNet1),
			Backends: []netip.AddrPort{netip.AddrPortFrom(pick(v6, svcBackend4, svcBackend6), svcBackendPort)},
		})
	}
	return out
}

// serviceCases are what a pod with Services pays on its other traffic: a UDP flow of its own
// straight to a backend's address (a DNS client talking to the server it knows), both ways, in
// the pod without Services and with them, against a datagram to a host that is no backend (what
// any packet of a pod with Services pays: the frontend lookup); and the same datagram while a
// proxied pair to that backend is live (another socket's, through the ClusterIP), when it must
// go to the proxy to end a pair its tuple could collide with, as every one did before backend
// addresses kept their pairs' ticks.
func serviceCases() []kase {
	var cs []kase
	for _, v6 := range []bool{false, true} {
		f := famName(v6)
		net1, backend := pick(v6, addr4[slotNet1], addr6[slotNet1]), pick(v6, svcBackend4, svcBackend6)
		direct := out(slotNet1, net1, backend, &packet.UDP{SrcPort: udpClient, DstPort: svcBackendPort})
		reply := in(slotNet1, backend, net1, &packet.UDP{SrcPort: svcBackendPort, DstPort: udpClient})
		other := out(slotNet1, net1, pick(v6, lanHost4, lanHost6), &packet.UDP{SrcPort: udpClient, DstPort: svcBackendPort})
		passed := row{slotNet1, datapath.ReasonPassed}
		learned := row{slotNet1, datapath.ReasonLearned}
		cs = append(cs,
			kase{name: "direct UDP to a backend, pod without Services", family: f, hook: tcEgress, slot: slotNet1,
				frame: direct, verdict: tcOK, want: passed},
			kase{name: "direct UDP to a backend, pod with Services", family: f, hook: tcEgress, slot: slotNet1,
				frame: direct, verdict: tcOK, want: passed, pod: servicesPod},
			kase{name: "UDP to a host that is no backend, pod with Services", family: f, hook: tcEgress, slot: slotNet1,
				frame: other, verdict: tcOK, want: passed, pod: servicesPod},
			kase{name: "direct UDP to a backend, pod with Services, a proxied pair to it live", family: f, hook: tcEgress,
				slot: slotNet1, frame: direct, verdict: tcOK, want: passed, pod: livePairPod},
			kase{name: "UDP from a backend, pod without Services", family: f, hook: tcIngress, slot: slotNet1,
				frame: reply, verdict: tcOK, want: learned},
			kase{name: "UDP from a backend, pod with Services", family: f, hook: tcIngress, slot: slotNet1,
				frame: reply, verdict: tcOK, want: learned, pod: servicesPod},
		)
	}
	return cs
}

// openPair opens a proxied UDP pair to the backend of each family in the pod with Services
// objs: a datagram through the ClusterIP from another socket than the cases'. The pair stays live
// for the proxy's UDP idle time, a minute: it is opened again before each measurement.
func (e *env) openPair(objs *datapath.Objects) error {
	for _, v6 := range []bool{false, true} {
		proxied := out(slotEth0, pick(v6, addr4[slotEth0], addr6[slotEth0]), pick(v6, svcIP4, svcIP6),
			&packet.UDP{SrcPort: svcPairPort, DstPort: svcPort})
		if err := e.send(objs, slotEth0, proxied, tcRedirect); err != nil {
			return fmt.Errorf("open a proxied pair: %w", err)
		}
	}
	return nil
}

// send runs a frame once through the egress program of slot and checks its verdict.
func (e *env) send(objs *datapath.Objects, slot int, frame []byte, verdict uint32) error {
	c := kase{hook: tcEgress, slot: slot, frame: frame}
	ret, err := e.run(progOf(objs, c.hook), c)
	if err != nil {
		return err
	}
	if ret != verdict {
		return fmt.Errorf("verdict %d, want %d", ret, verdict)
	}
	return nil
}

// loadServices loads the pod's collection with a flow table of entries and its Service entries.
func (e *env) loadServices(entries uint32) (*datapath.Objects, error) {
	objs, err := e.load(entries)
	if err != nil {
		return nil, err
	}
	if err := objs.ProgramServices(e.config(entries).Interfaces, svcEntries()); err != nil {
		objs.Close()
		return nil, fmt.Errorf("program Services: %w", err)
	}
	return objs, nil
}
