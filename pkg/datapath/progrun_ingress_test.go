package datapath

import (
	"net"
	"net/netip"
	"testing"

	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/internal/testutil/progrun"
)

func prL4(proto string, sport, dport uint16, reply bool) packet.Transport {
	switch proto {
	case "tcp":
		return &packet.TCP{SrcPort: sport, DstPort: dport, Seq: 1000, Ack: 2000, Flags: packet.TCPAck}
	case "udp":
		return &packet.UDP{SrcPort: sport, DstPort: dport}
	case "icmp":
		return &packet.Echo{ID: sport, Seq: 1, Reply: reply}
	}
	panic("unknown protocol " + proto)
}

func prBuild(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, l4 packet.Transport, payload string) []byte {
	return packet.Frame{
		Eth:     packet.Ethernet{Dst: dstMAC, Src: srcMAC},
		IP:      &packet.IP{Src: src, Dst: dst, ID: 0x1234, Flags: packet.DontFragment, FlowLabel: 0xabcde},
		L4:      l4,
		Payload: []byte(payload),
	}.Bytes()
}

// prRequest is a request from the remote end arriving on slot: from its hop's MAC to the
// slot's MAC and address.
func prRequest(slot int, v6 bool, l4 packet.Transport) []byte {
	return prBuild(prMAC[slot], prHopMAC[slot], prRemote(v6), prAddr(slot, v6), l4, "steer-request")
}

// prSyn is a TCP SYN with the options Linux sends, the MSS first.
func prSyn(mss uint16) *packet.TCP {
	return &packet.TCP{SrcPort: 40000, DstPort: 80, Seq: 7, Flags: packet.TCPSyn,
		Options: packet.Options(packet.MSS(mss), packet.SACKPermitted(), packet.Timestamps(1, 0), packet.NOP(), packet.WindowScale(7))}
}

// Ingress.

type prIngressCase struct {
	name     string
	ifindex  func(*prEnv) int
	frame    []byte
	mss      uint16 // the MSS expected after the program; 0: the frame must not change
	counters map[prCount]uint64
	flows    func(*prEnv) map[steerFlowKey]steerFlowValue // nil: none
	// xdpOnly: BPF_PROG_TEST_RUN refuses (EINVAL) skb frames whose IP header is cut, so those
	// reach the shared parser through XDP only.
	xdpOnly bool
}

func prOn(slot int) func(*prEnv) int { return func(e *prEnv) int { return e.index[slot] } }

// prLearned is the flow a request on slot learns.
func prLearned(slot int, v6 bool, proto uint8, rport, lport uint16) func(*prEnv) map[steerFlowKey]steerFlowValue {
	return func(e *prEnv) map[steerFlowKey]steerFlowValue {
		return map[steerFlowKey]steerFlowValue{
			prKey(proto, prRemote(v6), rport, lport): prValue(e.index[slot], prHopMAC[slot], prMAC[slot], prAddr(slot, v6)),
		}
	}
}

func prIngressCases() []prIngressCase {
	learned := func(slot int) map[prCount]uint64 {
		return map[prCount]uint64{{slot, steerSteerReasonSTEER_REASON_LEARNED}: 1}
	}
	clamped := map[prCount]uint64{{prA, steerSteerReasonSTEER_REASON_MSS_CLAMPED}: 1}
	passed := func(slot int) map[prCount]uint64 {
		return map[prCount]uint64{{slot, steerSteerReasonSTEER_REASON_PASSED}: 1}
	}
	cut := func(b []byte, n int) []byte { return b[:n] }
	ipOpts := packet.Frame{
		Eth: packet.Ethernet{Dst: prMAC[prA], Src: prHopMAC[prA]},
		IP:  &packet.IP{Src: prRemote4, Dst: prAddr4[prA], Options: []byte{1, 1, 1, 0}},
		L4:  prSyn(1460),
	}.Bytes()
	frag := func(flags uint16) []byte {
		return packet.Frame{
			Eth: packet.Ethernet{Dst: prMAC[prA], Src: prHopMAC[prA]},
			IP:  &packet.IP{Src: prRemote4, Dst: prAddr4[prA], Flags: flags},
			L4:  &packet.UDP{SrcPort: 5000, DstPort: 53}, Payload: []byte("fragment"),
		}.Bytes()
	}
	// IPv6 with a hop-by-hop header (next header 0) before UDP: passed untouched.
	udpSeg := prBuild(nil, nil, prRemote6, prAddr6[prA], &packet.UDP{SrcPort: 1, DstPort: 2}, "")[packet.EthLen+packet.IPv6Len:]
	hbhBytes := packet.Frame{
		Eth:     packet.Ethernet{Dst: prMAC[prA], Src: prHopMAC[prA]},
		IP:      &packet.IP{Src: prRemote6, Dst: prAddr6[prA]},                   // no L4: protocol 0, hop-by-hop
		Payload: append([]byte{packet.ProtoUDP, 0, 1, 4, 0, 0, 0, 0}, udpSeg...), // next UDP, PadN
	}.Bytes()
	arp := packet.Frame{Eth: packet.Ethernet{Dst: prMAC[prA], Src: prHopMAC[prA], Type: packet.EtherTypeARP}, Payload: make([]byte, 28)}.Bytes()
	bcast := func(dst netip.Addr) []byte {
		return prBuild(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, prHopMAC[prA], prRemote4, dst,
			&packet.UDP{SrcPort: 5000, DstPort: 6000}, "discover")
	}

	return []prIngressCase{
		{name: "tcp4 syn clamped to mtu-40", ifindex: prOn(prA), frame: prRequest(prA, false, prSyn(1460)), mss: prMTUA - 40,
			counters: clamped, flows: prLearned(prA, false, packet.ProtoTCP, 40000, 80)},
		{name: "tcp6 syn clamped to mtu-60", ifindex: prOn(prA), frame: prRequest(prA, true, prSyn(1440)), mss: prMTUA - 60,
			counters: clamped, flows: prLearned(prA, true, packet.ProtoTCP, 40000, 80)},
		{name: "tcp4 syn-ack mss after other options", ifindex: prOn(prA), mss: prMTUA - 40,
			frame: prRequest(prA, false, &packet.TCP{SrcPort: 40000, DstPort: 80, Flags: packet.TCPSyn | packet.TCPAck,
				Options: packet.Options(packet.NOP(), packet.NOP(), packet.Timestamps(9, 9), packet.SACKPermitted(), packet.MSS(65495))}),
			counters: clamped, flows: prLearned(prA, false, packet.ProtoTCP, 40000, 80)},
		{name: "tcp4 syn with ip options clamped", ifindex: prOn(prA), frame: ipOpts, mss: prMTUA - 40,
			counters: clamped, flows: prLearned(prA, false, packet.ProtoTCP, 40000, 80)},
		{name: "tcp4 syn mss already small", ifindex: prOn(prA), frame: prRequest(prA, false, prSyn(1200)),
			counters: learned(prA), flows: prLearned(prA, false, packet.ProtoTCP, 40000, 80)},
		{name: "tcp4 syn mss equal to mtu-40", ifindex: prOn(prB), frame: prRequest(prB, false, prSyn(1460)),
			counters: learned(prB), flows: prLearned(prB, false, packet.ProtoTCP, 40000, 80)},
		{name: "tcp6 syn mss equal to mtu-60", ifindex: prOn(prB), frame: prRequest(prB, true, prSyn(1440)),
			counters: learned(prB), flows: prLearned(prB, true, packet.ProtoTCP, 40000, 80)},
		{name: "tcp6 syn without mss", ifindex: prOn(prA),
			frame:    prRequest(prA, true, &packet.TCP{SrcPort: 40000, DstPort: 80, Flags: packet.TCPSyn}),
			counters: learned(prA), flows: prLearned(prA, true, packet.ProtoTCP, 40000, 80)},
		{name: "tcp4 ack with mss option not clamped", ifindex: prOn(prA),
			frame:    prRequest(prA, false, &packet.TCP{SrcPort: 40000, DstPort: 80, Flags: packet.TCPAck, Options: packet.MSS(1460)}),
			counters: learned(prA), flows: prLearned(prA, false, packet.ProtoTCP, 40000, 80)},
		{name: "tcp4 syn cut inside the mss option", ifindex: prOn(prA),
			frame:    cut(prRequest(prA, false, prSyn(1460)), packet.EthLen+packet.IPv4Len+packet.TCPLen+3),
			counters: learned(prA), flows: prLearned(prA, false, packet.ProtoTCP, 40000, 80)},
		{name: "udp4", ifindex: prOn(prA), frame: prRequest(prA, false, prL4("udp", 5353, 53, false)),
			counters: learned(prA), flows: prLearned(prA, false, packet.ProtoUDP, 5353, 53)},
		{name: "udp6", ifindex: prOn(prB), frame: prRequest(prB, true, prL4("udp", 5353, 53, false)),
			counters: learned(prB), flows: prLearned(prB, true, packet.ProtoUDP, 5353, 53)},
		{name: "icmp4 echo request", ifindex: prOn(prA), frame: prRequest(prA, false, prL4("icmp", 0x4242, 0, false)),
			counters: learned(prA), flows: prLearned(prA, false, packet.ProtoICMP, 0x4242, 0x4242)},
		{name: "icmp6 echo request", ifindex: prOn(prA), frame: prRequest(prA, true, prL4("icmp", 0x4242, 0, false)),
			counters: learned(prA), flows: prLearned(prA, true, packet.ProtoICMPv6, 0x4242, 0x4242)},
		{name: "icmp4 echo reply", ifindex: prOn(prA), frame: prRequest(prA, false, prL4("icmp", 0x4242, 0, true)),
			counters: passed(prA)},
		{name: "icmp6 echo reply", ifindex: prOn(prA), frame: prRequest(prA, true, prL4("icmp", 0x4242, 0, true)),
			counters: passed(prA)},
		{name: "udp4 multicast", ifindex: prOn(prA), counters: passed(prA),
			frame: prBuild(packet.MulticastMAC(prGroupAll), prHopMAC[prA], prRemote4, prGroupAll, prL4("udp", 5000, 6000, false), "mc")},
		{name: "udp6 multicast", ifindex: prOn(prA), counters: passed(prA),
			frame: prBuild(packet.MulticastMAC(prGroup6), prHopMAC[prA], prRemote6, prGroup6, prL4("udp", 5000, 6000, false), "mc")},
		{name: "udp4 subnet broadcast", ifindex: prOn(prA), frame: bcast(netip.MustParseAddr("10.1.255.255")), counters: passed(prA)},
		{name: "udp4 limited broadcast", ifindex: prOn(prA), frame: bcast(netip.MustParseAddr("255.255.255.255")), counters: passed(prA)},
		{name: "primary does not learn", ifindex: prOn(prPrimary), frame: prRequest(prPrimary, false, prSyn(1460)),
			counters: passed(prPrimary)},
		{name: "unknown interface", ifindex: func(e *prEnv) int { return e.unknown }, frame: prRequest(prA, false, prSyn(1460)),
			counters: passed(prUnknown)},
		{name: "ipv4 first fragment", ifindex: prOn(prA), frame: frag(packet.MoreFragments), counters: passed(prA)},
		{name: "ipv4 later fragment", ifindex: prOn(prA), frame: frag(185), counters: passed(prA)},
		{name: "ipv6 hop-by-hop header", ifindex: prOn(prA), frame: hbhBytes, counters: passed(prA)},
		{name: "arp", ifindex: prOn(prA), frame: arp, counters: passed(prA)},
		{name: "ethernet header only", ifindex: prOn(prA), frame: cut(prRequest(prA, false, prSyn(1460)), packet.EthLen), counters: passed(prA), xdpOnly: true},
		{name: "ipv4 header cut", ifindex: prOn(prA), frame: cut(prRequest(prA, false, prSyn(1460)), packet.EthLen+19), counters: passed(prA), xdpOnly: true},
		{name: "ipv6 header cut", ifindex: prOn(prA), frame: cut(prRequest(prA, true, prSyn(1460)), packet.EthLen+39), counters: passed(prA), xdpOnly: true},
		{name: "tcp header cut", ifindex: prOn(prA), frame: cut(prRequest(prA, false, prSyn(1460)), packet.EthLen+packet.IPv4Len+19),
			counters: passed(prA)},
		{name: "udp header cut", ifindex: prOn(prA), frame: cut(prRequest(prA, true, prL4("udp", 1, 2, false)), packet.EthLen+packet.IPv6Len+7),
			counters: passed(prA)},
		{name: "icmp header cut", ifindex: prOn(prA), frame: cut(prRequest(prA, false, prL4("icmp", 1, 0, false)), packet.EthLen+packet.IPv4Len+7),
			counters: passed(prA)},
	}
}

// TestProgRunIngress runs every ingress case through the TC program and the XDP program: the
// same verdict (pass), the same bytes, counters and learned flow.
func TestProgRunIngress(t *testing.T) {
	e := prSetup(t)
	hooks := []struct {
		name string
		run  func(ifindex int, in []byte) prRun
		pass uint32
	}{
		{"tc", func(ifindex int, in []byte) prRun { return e.tc(e.objs.SteerIngress, ifindex, in, progrun.Skb{}) }, tcOK},
		{"xdp", e.xdp, xdpPass},
	}
	for _, tc := range prIngressCases() {
		for _, h := range hooks {
			t.Run(h.name+"/"+tc.name, func(t *testing.T) {
				if tc.xdpOnly && h.name != "xdp" {
					t.Skip("BPF_PROG_TEST_RUN rejects skb frames with a cut IP header; the XDP run covers the parser")
				}
				e := e.in(t)
				e.reset()
				r := h.run(tc.ifindex(e), tc.frame)
				if r.ret != h.pass {
					t.Errorf("verdict %d, want %d", r.ret, h.pass)
				}
				prExpectIngressBytes(t, tc.frame, r.out, tc.mss)
				e.expectCounters(tc.counters)
				var want map[steerFlowKey]steerFlowValue
				if tc.flows != nil {
					want = tc.flows(e)
				}
				e.expectFlows(want)
			})
		}
	}
}

// prExpectIngressBytes checks an ingress output: unchanged, or with only the MSS option and the
// TCP checksum rewritten to a valid segment announcing mss.
func prExpectIngressBytes(t *testing.T, in, out []byte, mss uint16) {
	t.Helper()
	if mss == 0 {
		prUnchanged(t, in, out)
		return
	}
	p := prParse(t, out)
	got, off, ok := p.MSS()
	if !ok || got != mss {
		t.Fatalf("MSS %d (found %v), want %d", got, ok, mss)
	}
	prExpectOnly(t, in, out, [2]int{off, off + 2}, [2]int{p.L4ChecksumOff, p.L4ChecksumOff + 2})
}

// TestProgRunIngressRelearn checks a flow moves with its packets: to another interface and hop,
// and to another local address; a repeated packet leaves the entry alone.
func TestProgRunIngressRelearn(t *testing.T) {
	e := prSetup(t)
	udp := prL4("udp", 5353, 53, false)
	key := prKey(packet.ProtoUDP, prRemote4, 5353, 53)

	e.ingress(prA, prRequest(prA, false, udp))
	e.ingress(prA, prRequest(prA, false, udp))
	e.expectFlows(map[steerFlowKey]steerFlowValue{key: prValue(e.index[prA], prHopMAC[prA], prMAC[prA], prAddr4[prA])})

	e.ingress(prB, prRequest(prB, false, udp))
	e.expectFlows(map[steerFlowKey]steerFlowValue{key: prValue(e.index[prB], prHopMAC[prB], prMAC[prB], prAddr4[prB])})

	otherHop := net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x99}
	e.ingress(prB, prBuild(prMAC[prB], otherHop, prRemote4, prAddr4[prB], udp, "x"))
	e.expectFlows(map[steerFlowKey]steerFlowValue{key: prValue(e.index[prB], otherHop, prMAC[prB], prAddr4[prB])})

	vip := netip.MustParseAddr("10.2.0.99") // another address reached through B
	e.ingress(prB, prBuild(prMAC[prB], otherHop, prRemote4, vip, udp, "x"))
	e.expectFlows(map[steerFlowKey]steerFlowValue{key: prValue(e.index[prB], otherHop, prMAC[prB], vip)})
	e.expectCounters(map[prCount]uint64{
		{prA, steerSteerReasonSTEER_REASON_LEARNED}: 2,
		{prB, steerSteerReasonSTEER_REASON_LEARNED}: 3,
	})
}

// TestProgRunCounterBytes checks counters add the frame length, on TC and XDP alike.
func TestProgRunCounterBytes(t *testing.T) {
	e := prSetup(t)
	f := prRequest(prA, false, prL4("udp", 1, 2, false))
	e.ingress(prA, f)
	e.xdp(e.index[prA], f)
	var vals []steerSteerCounter
	key := uint32(prA*int(steerSteerReasonSTEER_REASON_MAX)) + uint32(steerSteerReasonSTEER_REASON_LEARNED)
	if err := e.objs.SteerCounters.Lookup(key, &vals); err != nil {
		t.Fatal(err)
	}
	var pkts, n uint64
	for _, v := range vals {
		pkts += v.Packets
		n += v.Bytes
	}
	if pkts != 2 || n != uint64(2*len(f)) {
		t.Fatalf("%d packets, %d bytes; want 2, %d", pkts, n, 2*len(f))
	}
}

// Egress: replies of learned flows.

// prReply is the pod's reply to a prRequest leaving through slot as the kernel routed it: from
// the slot's MAC to the slot's hop, sourced from src.
