package perpkt

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/internal/testutil/progrun"
	"github.com/steernet/steer/pkg/datapath"
)

// hook is where a case's program runs.
type hook string

const (
	tcEgress   hook = "TC egress"
	tcIngress  hook = "TC ingress"
	xdpIngress hook = "XDP ingress"
)

// Verdicts (TC_ACT_*, XDP_*).
const (
	tcOK       = progrun.TCOK
	tcShot     = progrun.TCShot
	tcRedirect = progrun.TCRedirect
	xdpPass    = progrun.XDPPass
)

// kase is one branch of one program: a frame, where it runs, and the counter row and verdict
// that prove the branch was taken.
type kase struct {
	name    string
	family  string
	hook    hook
	slot    int // interface the program runs on
	frame   []byte
	verdict uint32
	want    row
	// flows: the cost depends on the flow table (a lookup); multicast does none.
	flows bool
	// passes is how many egress runs the packet takes (0: one). A pinned reply takes two: the
	// redirect, then the loop-mark test of its new interface's program. A repeat loop keeps the
	// skb, mark included, so it alternates the two as the packet would.
	passes int
	// pod is the pod the case runs in: a pod with Services is measured on the first table.
	pod pod
}

// pod is a pod of the measurements, each a collection of its own.
type pod int

const (
	plainPod    pod = iota // no Service entries
	servicesPod            // svcEntries programmed
	livePairPod            // svcEntries programmed and a proxied UDP pair to the backend live
	pods
)

type row struct {
	slot   int
	reason datapath.Reason
}

var (
	remote4 = netip.MustParseAddr("203.0.113.10") // the scenarios' remote client
	remote6 = netip.MustParseAddr("2001:db8:3::10")
	peer4   = netip.MustParseAddr("198.18.2.7") // a pod on the other node, over eth0
	peer6   = netip.MustParseAddr("2001:db8:18:2::7")
	other4  = netip.MustParseAddr("203.0.113.99") // a host the pod talks to first
	other6  = netip.MustParseAddr("2001:db8:3::99")
)

// Ports of the learned test flows.
const (
	clientPort = 40000
	tcpPort    = 80
	udpClient  = 40001
	udpPort    = 53
)

// testFlows are the flows the cases' replies belong to, learned on net1.
func (e *env) testFlows() map[datapath.FlowKey]datapath.FlowValue {
	out := map[datapath.FlowKey]datapath.FlowValue{}
	for _, v6 := range []bool{false, true} {
		r := pick(v6, remote4, remote6)
		out[key(unix.IPPROTO_TCP, r, clientPort, tcpPort)] = e.valueOn(slotNet1, v6)
		out[key(unix.IPPROTO_UDP, r, udpClient, udpPort)] = e.valueOn(slotNet1, v6)
	}
	return out
}

func pick(v6 bool, a4, a6 netip.Addr) netip.Addr {
	if v6 {
		return a6
	}
	return a4
}

func famName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// out is a frame the pod sends from slot's MAC toward that LAN's hop.
func out(slot int, src, dst netip.Addr, l4 packet.Transport) []byte {
	dmac := hopMAC[slot]
	if dst.IsMulticast() {
		dmac = packet.MulticastMAC(dst)
	}
	return packet.Frame{Eth: packet.Ethernet{Dst: dmac, Src: podMAC[slot]}, IP: &packet.IP{Src: src, Dst: dst},
		L4: l4, Payload: make([]byte, 64)}.Bytes()
}

// in is a frame arriving on slot from that LAN's hop.
func in(slot int, src, dst netip.Addr, l4 packet.Transport) []byte {
	return packet.Frame{Eth: packet.Ethernet{Dst: podMAC[slot], Src: hopMAC[slot]}, IP: &packet.IP{Src: src, Dst: dst},
		L4: l4, Payload: make([]byte, 64)}.Bytes()
}

func ack(sport, dport uint16) *packet.TCP {
	return &packet.TCP{SrcPort: sport, DstPort: dport, Flags: packet.TCPAck, Seq: 1, Ack: 1}
}

// cases lists every branch, IPv4 and IPv6 where the branch looks at addresses.
func cases() []kase {
	var cs []kase
	for _, v6 := range []bool{false, true} {
		f := famName(v6)
		eth0, net1 := pick(v6, addr4[slotEth0], addr6[slotEth0]), pick(v6, addr4[slotNet1], addr6[slotNet1])
		remote := pick(v6, remote4, remote6)
		cs = append(cs,
			kase{name: "primary-path miss", family: f, hook: tcEgress, slot: slotEth0, flows: true,
				frame:   out(slotEth0, eth0, pick(v6, peer4, peer6), ack(50000, tcpPort)),
				verdict: tcOK, want: row{slotEth0, datapath.ReasonPassed}},
			kase{name: "pinned reply (TCP)", family: f, hook: tcEgress, slot: slotEth0, flows: true, passes: 2,
				frame:   out(slotEth0, net1, remote, ack(tcpPort, clientPort)),
				verdict: tcRedirect, want: row{slotNet1, datapath.ReasonPinned}},
			kase{name: "pinned reply (UDP, source rewritten)", family: f, hook: tcEgress, slot: slotEth0, flows: true, passes: 2,
				frame:   out(slotEth0, eth0, remote, &packet.UDP{SrcPort: udpPort, DstPort: udpClient}),
				verdict: tcRedirect, want: row{slotNet1, datapath.ReasonPinned}},
			kase{name: "source steering", family: f, hook: tcEgress, slot: slotEth0, flows: true,
				frame:   out(slotEth0, net1, pick(v6, other4, other6), &packet.TCP{SrcPort: 41000, DstPort: 443, Flags: packet.TCPSyn}),
				verdict: tcRedirect, want: row{slotNet1, datapath.ReasonSource}},
			kase{name: "ingress learn (known flow)", family: f, hook: tcIngress, slot: slotNet1, flows: true,
				frame:   in(slotNet1, remote, net1, ack(clientPort, tcpPort)),
				verdict: tcOK, want: row{slotNet1, datapath.ReasonLearned}},
			kase{name: "ingress learn (known flow)", family: f, hook: xdpIngress, slot: slotNet1, flows: true,
				frame:   in(slotNet1, remote, net1, ack(clientPort, tcpPort)),
				verdict: xdpPass, want: row{slotNet1, datapath.ReasonLearned}},
		)
	}
	cs = append(cs, serviceCases()...)
	one, fan := netip.MustParseAddr("239.2.0.9"), netip.MustParseAddr("239.1.2.3")
	udp := &packet.UDP{SrcPort: 5000, DstPort: 5000}
	return append(cs,
		kase{name: "multicast on its interface", family: "IPv4", hook: tcEgress, slot: slotNet1,
			frame: out(slotNet1, addr4[slotNet1], one, udp), verdict: tcOK, want: row{slotNet1, datapath.ReasonPassed}},
		kase{name: "multicast steered off eth0 (1 copy)", family: "IPv4", hook: tcEgress, slot: slotEth0,
			frame: out(slotEth0, addr4[slotEth0], one, udp), verdict: tcShot, want: row{slotNet1, datapath.ReasonMulticast}},
		kase{name: "multicast fan-out (1 copy + original)", family: "IPv4", hook: tcEgress, slot: slotNet1,
			frame: out(slotNet1, addr4[slotNet1], fan, udp), verdict: tcOK, want: row{slotNet2, datapath.ReasonMulticast}},
	)
}
