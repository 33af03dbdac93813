package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/internal/testutil/progrun"
)

func prReply(slot int, v6 bool, src netip.Addr, l4 packet.Transport, payload string) []byte {
	return prBuild(prHopMAC[slot], prMAC[slot], src, prRemote(v6), l4, payload)
}

// prRewritten lists the byte ranges a rewrite may change: the MACs, and when the source
// changes the address, the IPv4 header checksum and the transport checksum.
func prRewritten(p *packet.Parsed, srcChanged bool) [][2]int {
	r := [][2]int{{0, 2 * 6}}
	if !srcChanged {
		return r
	}
	if p.Family == 4 {
		r = append(r, [2]int{p.L3Off + 10, p.L3Off + 16})
	} else {
		r = append(r, [2]int{p.L3Off + 8, p.L3Off + 24})
	}
	if p.L4ChecksumOff >= 0 && p.Protocol != packet.ProtoICMP {
		r = append(r, [2]int{p.L4ChecksumOff, p.L4ChecksumOff + 2})
	}
	return r
}

// prExpectSentBy checks a frame was rewritten to leave slot toward dstMAC from src: the MACs,
// the source, valid checksums, and nothing else changed.
func prExpectSentBy(t *testing.T, in, out []byte, slot int, dstMAC net.HardwareAddr, src netip.Addr) *packet.Parsed {
	t.Helper()
	p := prParse(t, out)
	if p.EthDst.String() != dstMAC.String() {
		t.Errorf("destination MAC %v, want %v", p.EthDst, dstMAC)
	}
	if p.EthSrc.String() != prMAC[slot].String() {
		t.Errorf("source MAC %v, want slot %d's %v", p.EthSrc, slot, prMAC[slot])
	}
	if p.Src != src {
		t.Errorf("source %v, want %v", p.Src, src)
	}
	orig, err := packet.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	prExpectOnly(t, in, out, prRewritten(p, orig.Src != src)...)
	return p
}

// TestProgRunEgressPinned learns a flow on secondary A, then sends its reply out of the primary
// (where the kernel's default route points): it must be redirected to A, to the hop that
// delivered the request, from A's MAC and, for UDP and ICMP, from the flow's local address.
func TestProgRunEgressPinned(t *testing.T) {
	e := prSetup(t)
	for _, v6 := range []bool{false, true} {
		for _, proto := range []string{"tcp", "udp", "icmp"} {
			// TCP replies come from the address the request reached; UDP and ICMP from
			// the kernel's choice (the primary's) or from the right one.
			sources := map[string]netip.Addr{"from-local": prAddr(prA, v6)}
			if proto != "tcp" {
				sources["from-primary"] = prAddr(prPrimary, v6)
			}
			for srcName, src := range sources {
				t.Run(fmt.Sprintf("%s/%s/%s", prFamilyName(v6), proto, srcName), func(t *testing.T) {
					e := e.in(t)
					e.reset()
					rport, lport := uint16(40000), uint16(8080)
					if proto == "icmp" {
						rport, lport = 0x4242, 0
					}
					e.ingress(prA, prRequest(prA, v6, prL4(proto, rport, lport, false)))

					reply := prL4(proto, lport, rport, true)
					if proto == "icmp" {
						reply = prL4(proto, rport, 0, true)
					}
					in := prReply(prPrimary, v6, src, reply, "steer-reply")
					r := e.egress(prPrimary, in)
					if r.ret != tcRedirect {
						t.Errorf("verdict %d, want TC_ACT_REDIRECT", r.ret)
					}
					prExpectSentBy(t, in, r.out, prA, prHopMAC[prA], prAddr(prA, v6))
					e.expectCounters(map[prCount]uint64{
						{prA, steerSteerReasonSTEER_REASON_LEARNED}: 1,
						{prA, steerSteerReasonSTEER_REASON_PINNED}:  1,
					})
				})
			}
		}
	}
}

// TestProgRunEgressPinnedSameInterface: a reply already leaving the flow's interface from the
// flow's address is left alone; one from another source is fixed in place (TC_ACT_OK).
func TestProgRunEgressPinnedSameInterface(t *testing.T) {
	e := prSetup(t)
	for _, v6 := range []bool{false, true} {
		t.Run(prFamilyName(v6), func(t *testing.T) {
			e := e.in(t)
			e.reset()
			e.ingress(prA, prRequest(prA, v6, prL4("udp", 40000, 53, false)))

			in := prReply(prA, v6, prAddr(prA, v6), prL4("udp", 53, 40000, true), "right")
			r := e.egress(prA, in)
			if r.ret != tcOK {
				t.Errorf("right way: verdict %d, want TC_ACT_OK", r.ret)
			}
			prUnchanged(t, in, r.out)

			in = prReply(prA, v6, prAddr(prPrimary, v6), prL4("udp", 53, 40000, true), "wrong source")
			r = e.egress(prA, in)
			if r.ret != tcOK {
				t.Errorf("wrong source: verdict %d, want TC_ACT_OK", r.ret)
			}
			prExpectSentBy(t, in, r.out, prA, prHopMAC[prA], prAddr(prA, v6))
			e.expectCounters(map[prCount]uint64{
				{prA, steerSteerReasonSTEER_REASON_LEARNED}: 1,
				{prA, steerSteerReasonSTEER_REASON_PASSED}:  1,
				{prA, steerSteerReasonSTEER_REASON_PINNED}:  1,
			})
		})
	}
}

// TestProgRunEgressTCPOtherSource: a TCP segment to a learned remote port from another local
// address is another connection: not pinned, and (the primary not being pinned) passed.
func TestProgRunEgressTCPOtherSource(t *testing.T) {
	e := prSetup(t)
	for _, v6 := range []bool{false, true} {
		t.Run(prFamilyName(v6), func(t *testing.T) {
			e := e.in(t)
			e.reset()
			e.ingress(prA, prRequest(prA, v6, prL4("tcp", 40000, 80, false)))
			in := prReply(prPrimary, v6, prAddr(prPrimary, v6), prL4("tcp", 80, 40000, false), "x")
			r := e.egress(prPrimary, in)
			if r.ret != tcOK {
				t.Errorf("verdict %d, want TC_ACT_OK", r.ret)
			}
			prUnchanged(t, in, r.out)
			e.expectCounters(map[prCount]uint64{
				{prA, steerSteerReasonSTEER_REASON_LEARNED}:      1,
				{prPrimary, steerSteerReasonSTEER_REASON_PASSED}: 1,
			})
		})
	}
}

// prZeroSumPayload finds a two-byte payload making the checksum of frame(payload) compute to
// zero, which UDP must send as 0xffff.
func prZeroSumPayload(t *testing.T, frame func(payload string) []byte) string {
	t.Helper()
	for i := range 1 << 16 {
		payload := string([]byte{byte(i >> 8), byte(i)})
		p, err := packet.Parse(frame(payload))
		if err != nil {
			t.Fatal(err)
		}
		if p.L4Checksum == 0xffff {
			return payload
		}
	}
	t.Fatal("no payload with a zero checksum")
	return ""
}

// TestProgRunEgressUDPChecksumEdges: an IPv4 datagram without checksum keeps none after its
// source is rewritten (BPF_F_MARK_MANGLED_0), and one whose checksum becomes zero after the
// rewrite carries 0xffff, not the "no checksum" zero.
func TestProgRunEgressUDPChecksumEdges(t *testing.T) {
	e := prSetup(t)
	udp := func(zero bool) packet.Transport { return &packet.UDP{SrcPort: 53, DstPort: 40000, ZeroChecksum: zero} }
	t.Run("v4 zero checksum stays zero", func(t *testing.T) {
		e := e.in(t)
		e.reset()
		e.ingress(prA, prRequest(prA, false, prL4("udp", 40000, 53, false)))
		in := prReply(prPrimary, false, prAddr4[prPrimary], udp(true), "no checksum")
		r := e.egress(prPrimary, in)
		if r.ret != tcRedirect {
			t.Errorf("verdict %d", r.ret)
		}
		p := prExpectSentBy(t, in, r.out, prA, prHopMAC[prA], prAddr4[prA])
		if p.L4Checksum != 0 {
			t.Errorf("UDP checksum %#04x, want 0 (none)", p.L4Checksum)
		}
	})
	for _, v6 := range []bool{false, true} {
		t.Run(prFamilyName(v6)+" computed zero is sent as 0xffff", func(t *testing.T) {
			e := e.in(t)
			e.reset()
			e.ingress(prA, prRequest(prA, v6, prL4("udp", 40000, 53, false)))
			payload := prZeroSumPayload(t, func(pl string) []byte {
				return prReply(prPrimary, v6, prAddr(prA, v6), udp(false), pl) // as it will leave
			})
			in := prReply(prPrimary, v6, prAddr(prPrimary, v6), udp(false), payload)
			r := e.egress(prPrimary, in)
			if r.ret != tcRedirect {
				t.Errorf("verdict %d", r.ret)
			}
			p := prExpectSentBy(t, in, r.out, prA, prHopMAC[prA], prAddr(prA, v6))
			if p.L4Checksum != 0xffff {
				t.Errorf("UDP checksum %#04x, want 0xffff", p.L4Checksum)
			}
		})
	}
}

// prPadded is a UDP reply of exactly size bytes.
func prPadded(v6 bool, src netip.Addr, size int) []byte {
	hdr := packet.EthLen + packet.IPv4Len + packet.UDPLen
	if v6 {
		hdr = packet.EthLen + packet.IPv6Len + packet.UDPLen
	}
	return prReply(prPrimary, v6, src, &packet.UDP{SrcPort: 53, DstPort: 40000}, string(make([]byte, size-hdr)))
}

// TestProgRunEgressOversize: a reply redirected to an interface with a smaller MTU than the
// frame is dropped (it would bypass IP fragmentation); at the MTU it passes; a GSO packet is
// segmented later and passes whatever its length.
func TestProgRunEgressOversize(t *testing.T) {
	e := prSetup(t)
	for _, v6 := range []bool{false, true} {
		t.Run(prFamilyName(v6), func(t *testing.T) {
			e := e.in(t)
			e.reset()
			e.ingress(prA, prRequest(prA, v6, prL4("udp", 40000, 53, false)))
			src := prAddr(prA, v6)

			in := prPadded(v6, src, prMTUA+packet.EthLen+1)
			r := e.egress(prPrimary, in)
			if r.ret != tcShot {
				t.Errorf("MTU+1: verdict %d, want TC_ACT_SHOT", r.ret)
			}
			prUnchanged(t, in, r.out)

			in = prPadded(v6, src, prMTUA+packet.EthLen)
			if r = e.egress(prPrimary, in); r.ret != tcRedirect {
				t.Errorf("MTU: verdict %d, want TC_ACT_REDIRECT", r.ret)
			}

			in = prPadded(v6, src, prMTU+packet.EthLen)
			r = e.tc(e.objs.SteerEgress, e.index[prPrimary], in, progrun.Skb{GSOSegs: 2, GSOSize: 1000})
			if r.ret != tcRedirect {
				t.Errorf("GSO: verdict %d, want TC_ACT_REDIRECT", r.ret)
			}
			prExpectSentBy(t, in, r.out, prA, prHopMAC[prA], src)
			e.expectCounters(map[prCount]uint64{
				{prA, steerSteerReasonSTEER_REASON_LEARNED}:             1,
				{prPrimary, steerSteerReasonSTEER_REASON_DROP_OVERSIZE}: 1,
				{prA, steerSteerReasonSTEER_REASON_PINNED}:              2,
			})
		})
	}
}

// TestProgRunEgressLoopMark: a packet carrying the loop mark (a copy Steer sent) passes
// untouched even when it matches a flow, and leaves with the bit cleared and the rest of the
// mark kept. With another LoopMark configured, the default bit means nothing.
func TestProgRunEgressLoopMark(t *testing.T) {
	const defaultMark, otherBits = 0x00200000, 0x1001
	for _, tc := range []struct {
		name     string
		loopMark uint32 // Config.LoopMark
		bit      uint32 // the bit the program uses
	}{
		{"default", 0, defaultMark},
		{"configured", 0x4, 0x4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := prSetup(t, func(c *Config) { c.LoopMark = tc.loopMark })
			for _, v6 := range []bool{false, true} {
				e.reset()
				e.ingress(prA, prRequest(prA, v6, prL4("udp", 40000, 53, false)))
				in := prReply(prPrimary, v6, prAddr(prPrimary, v6), prL4("udp", 53, 40000, true), "copy")

				r := e.tc(e.objs.SteerEgress, e.index[prPrimary], in, progrun.Skb{Mark: tc.bit | otherBits})
				if r.ret != tcOK {
					t.Errorf("%s marked: verdict %d, want TC_ACT_OK", prFamilyName(v6), r.ret)
				}
				prUnchanged(t, in, r.out)
				if r.mark != otherBits {
					t.Errorf("%s: mark %#x after the run, want %#x", prFamilyName(v6), r.mark, otherBits)
				}
				mc := prBuild(packet.MulticastMAC(prGroupAll), prMAC[prPrimary], prAddr4[prPrimary], prGroupAll,
					prL4("udp", 5000, 6000, false), "marked multicast")
				if r := e.tc(e.objs.SteerEgress, e.index[prPrimary], mc, progrun.Skb{Mark: tc.bit}); r.ret != tcOK || r.mark != 0 {
					t.Errorf("marked multicast: verdict %d mark %#x", r.ret, r.mark)
				}
				e.expectCounters(map[prCount]uint64{
					{prA, steerSteerReasonSTEER_REASON_LEARNED}:      1,
					{prPrimary, steerSteerReasonSTEER_REASON_PASSED}: 2,
				})

				if tc.bit != defaultMark { // the default bit is an ordinary mark bit now
					r := e.tc(e.objs.SteerEgress, e.index[prPrimary], in, progrun.Skb{Mark: defaultMark})
					if r.ret != tcRedirect || r.mark != defaultMark|tc.bit {
						t.Errorf("default bit with a configured mark: verdict %d mark %#x", r.ret, r.mark)
					}
				}
			}
		})
	}
}

// TestProgRunEgressPinnedLoopMark: a reply redirected to its flow's interface carries the loop
// mark on top of the pod's own bits, so that interface's egress program passes it on the mark
// alone and clears it; a reply fixed in place (TC_ACT_OK) leaves without it.
func TestProgRunEgressPinnedLoopMark(t *testing.T) {
	const podBits = 0x1001
	for _, tc := range []struct {
		name     string
		loopMark uint32 // Config.LoopMark
		bit      uint32 // the bit the program uses
	}{
		{"default", 0, 0x00200000},
		{"configured", 0x4, 0x4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := prSetup(t, func(c *Config) { c.LoopMark = tc.loopMark })
			for _, v6 := range []bool{false, true} {
				for _, proto := range []string{"tcp", "udp"} {
					name := prFamilyName(v6) + "/" + proto
					e.reset()
					e.ingress(prA, prRequest(prA, v6, prL4(proto, 40000, 8080, false)))
					src := prAddr(prA, v6)
					if proto == "udp" {
						src = prAddr(prPrimary, v6) // rewritten on the way
					}
					in := prReply(prPrimary, v6, src, prL4(proto, 8080, 40000, true), "pinned")
					r := e.tc(e.objs.SteerEgress, e.index[prPrimary], in, progrun.Skb{Mark: podBits})
					if r.ret != tcRedirect || r.mark != podBits|tc.bit {
						t.Fatalf("%s redirected: verdict %d mark %#x, want TC_ACT_REDIRECT and %#x", name, r.ret, r.mark, podBits|tc.bit)
					}
					// What A's egress program sees next: passed as it is, the pod's bits kept.
					sent := r.out
					r = e.tc(e.objs.SteerEgress, e.index[prA], sent, progrun.Skb{Mark: r.mark})
					if r.ret != tcOK || r.mark != podBits {
						t.Errorf("%s on A: verdict %d mark %#x, want TC_ACT_OK and %#x", name, r.ret, r.mark, podBits)
					}
					prUnchanged(t, sent, r.out)
					e.expectCounters(map[prCount]uint64{
						{prA, steerSteerReasonSTEER_REASON_LEARNED}: 1,
						{prA, steerSteerReasonSTEER_REASON_PINNED}:  1,
						{prA, steerSteerReasonSTEER_REASON_PASSED}:  1,
					})
				}
				// Fixed in place on A: it leaves now, so no mark.
				e.reset()
				e.ingress(prA, prRequest(prA, v6, prL4("udp", 40000, 53, false)))
				in := prReply(prA, v6, prAddr(prPrimary, v6), prL4("udp", 53, 40000, true), "in place")
				r := e.tc(e.objs.SteerEgress, e.index[prA], in, progrun.Skb{Mark: podBits})
				if r.ret != tcOK || r.mark != podBits {
					t.Errorf("%s in place: verdict %d mark %#x, want TC_ACT_OK and %#x", prFamilyName(v6), r.ret, r.mark, podBits)
				}
			}
		})
	}
}

// Egress: source steering and what passes.

// TestProgRunEgressSource: traffic without a flow but sourced from a pinned secondary's address
// is redirected to that secondary (through its gateway) untouched; from the current
// interface's own address or the primary's it passes.
func TestProgRunEgressSource(t *testing.T) {
	e := prSetup(t, func(c *Config) { c.Interfaces[prA].Gateway4, c.Interfaces[prA].Gateway6 = netip.Addr{}, netip.Addr{} })
	for _, v6 := range []bool{false, true} {
		for _, proto := range []string{"tcp", "udp", "icmp"} {
			t.Run(prFamilyName(v6)+"/"+proto, func(t *testing.T) {
				e := e.in(t)
				e.reset()
				l4 := prL4(proto, 33000, 443, false)
				for _, tc := range []struct {
					cur, src int
					want     uint32
				}{
					{prPrimary, prB, tcRedirect}, // B has a gateway
					{prPrimary, prA, tcRedirect}, // A has none: redirect_neigh resolves the destination
					{prB, prA, tcRedirect},
					{prA, prA, tcOK},       // already leaving its interface
					{prA, prPrimary, tcOK}, // the primary is not pinned
					{prPrimary, prPrimary, tcOK},
				} {
					in := prBuild(prHopMAC[tc.cur], prMAC[tc.cur], prAddr(tc.src, v6), prRemote(v6), l4, "sourced")
					r := e.egress(tc.cur, in)
					if r.ret != tc.want {
						t.Errorf("from slot %d's address on slot %d: verdict %d, want %d", tc.src, tc.cur, r.ret, tc.want)
					}
					// Redirected, it carries the loop mark: the target's egress passes it on that alone.
					if marked := r.mark&0x00200000 != 0; marked != (tc.want == tcRedirect) {
						t.Errorf("from slot %d's address on slot %d: mark %#x", tc.src, tc.cur, r.mark)
					}
					prUnchanged(t, in, r.out)
				}
				e.expectCounters(map[prCount]uint64{
					{prB, steerSteerReasonSTEER_REASON_SOURCE}:       1,
					{prA, steerSteerReasonSTEER_REASON_SOURCE}:       2,
					{prA, steerSteerReasonSTEER_REASON_PASSED}:       2,
					{prPrimary, steerSteerReasonSTEER_REASON_PASSED}: 1,
				})
			})
		}
	}
	// Packets the parser does not track are steered by source too.
	t.Run("v4 fragment", func(t *testing.T) {
		e := e.in(t)
		e.reset()
		in := packet.Frame{Eth: packet.Ethernet{Dst: prHopMAC[0], Src: prMAC[0]},
			IP: &packet.IP{Src: prAddr4[prB], Dst: prRemote4, Flags: 185}, L4: &packet.UDP{SrcPort: 1, DstPort: 2}}.Bytes()
		if r := e.egress(prPrimary, in); r.ret != tcRedirect {
			t.Errorf("verdict %d", r.ret)
		}
		e.expectCounters(map[prCount]uint64{{prB, steerSteerReasonSTEER_REASON_SOURCE}: 1})
	})
}

// TestProgRunEgressPasses: what Steer leaves to the kernel, byte for byte.
func TestProgRunEgressPasses(t *testing.T) {
	e := prSetup(t)
	from0 := func(v6 bool, l4 packet.Transport) []byte {
		return prBuild(prHopMAC[0], prMAC[0], prAddr(prPrimary, v6), prRemote(v6), l4, "primary")
	}
	arp := packet.Frame{Eth: packet.Ethernet{Dst: prHopMAC[0], Src: prMAC[0], Type: packet.EtherTypeARP}, Payload: make([]byte, 28)}.Bytes()
	cases := []struct {
		name    string
		ifindex func(*prEnv) int
		frame   []byte
		row     int
	}{
		{"arp", prOn(prPrimary), arp, prPrimary},
		// (BPF_PROG_TEST_RUN refuses skb frames with a cut IP header: TestProgRunIngress runs
		// those through XDP, whose parser is the same.)
		{"tcp header cut", prOn(prPrimary), from0(false, prL4("tcp", 1, 2, false))[:packet.EthLen+packet.IPv4Len+10], prPrimary},
		{"unknown interface", func(e *prEnv) int { return e.unknown }, from0(false, prL4("udp", 1, 2, false)), prUnknown},
		{"multicast in no group", prOn(prPrimary), prBuild(packet.MulticastMAC(prGroupOff), prMAC[0], prAddr4[0], prGroupOff,
			prL4("udp", 1, 2, false), "nobody's"), prPrimary},
		{"multicast fragment", prOn(prPrimary), packet.Frame{Eth: packet.Ethernet{Dst: packet.MulticastMAC(prGroupAll), Src: prMAC[0]},
			IP: &packet.IP{Src: prAddr4[0], Dst: prGroupAll, Flags: packet.MoreFragments}, L4: &packet.UDP{SrcPort: 1, DstPort: 2}}.Bytes(), prPrimary},
	}
	for _, v6 := range []bool{false, true} {
		for _, proto := range []string{"tcp", "udp", "icmp"} {
			cases = append(cases, struct {
				name    string
				ifindex func(*prEnv) int
				frame   []byte
				row     int
			}{fmt.Sprintf("primary miss %s %s", prFamilyName(v6), proto), prOn(prPrimary), from0(v6, prL4(proto, 33000, 443, false)), prPrimary})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			e.reset()
			r := e.tc(e.objs.SteerEgress, tc.ifindex(e), tc.frame, progrun.Skb{})
			if r.ret != tcOK {
				t.Errorf("verdict %d, want TC_ACT_OK", r.ret)
			}
			prUnchanged(t, tc.frame, r.out)
			e.expectCounters(map[prCount]uint64{{tc.row, steerSteerReasonSTEER_REASON_PASSED}: 1})
			e.expectFlows(nil)
		})
	}
}

// Egress: multicast fan-out. Copies are sent for real by bpf_clone_redirect, through the veth
// links, and captured on their peers.

// captures opens an AF_PACKET capture on the peer of every slot's link.
