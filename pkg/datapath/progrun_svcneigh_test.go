package datapath

// BPF_PROG_TEST_RUN tests of the proxy's answers to the pod's own kernel asking for a
// frontend's link-layer address (bpf/lib/svc_neigh.h): ARP requests and IPv6 neighbour
// solicitations leaving a secondary, through the pod's egress program.

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/pkg/service"
)

var ethBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpFrame is an Ethernet ARP packet for IPv4 over Ethernet.
func arpFrame(dstMAC, srcMAC net.HardwareAddr, op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := append(append([]byte{}, dstMAC...), srcMAC...)
	b = binary.BigEndian.AppendUint16(b, 0x0806)
	b = append(b, 0, 1, 0x08, 0, 6, 4)
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(append(b, sha...), spa.AsSlice()...)
	return append(append(b, tha...), tpa.AsSlice()...)
}

// ndFrame is an IPv6 neighbour solicitation (typ 135) or advertisement (136) with one
// link-layer address option, as Linux sends them, its checksum computed.
func ndFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, typ uint8, flags uint32, target netip.Addr, lladdr net.HardwareAddr) []byte {
	nd := []byte{typ, 0, 0, 0}
	nd = binary.BigEndian.AppendUint32(nd, flags)
	nd = append(nd, target.AsSlice()...)
	opt := byte(1)
	if typ == 136 {
		opt = 2
	}
	nd = append(append(nd, opt, 1), lladdr...)
	binary.BigEndian.PutUint16(nd[2:], packet.L4Checksum(src, dst, packet.ProtoICMPv6, nd))
	b := append(append([]byte{}, dstMAC...), srcMAC...)
	b = binary.BigEndian.AppendUint16(b, 0x86dd)
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(nd)))
	b = append(b, packet.ProtoICMPv6, 255)
	b = append(append(b, src.AsSlice()...), dst.AsSlice()...)
	return append(b, nd...)
}

// solicitedNode is the solicited-node multicast address of a, and its MAC.
func solicitedNode(a netip.Addr) (netip.Addr, net.HardwareAddr) {
	s := a.As16()
	g := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: s[13], 14: s[14], 15: s[15]})
	return g, packet.MulticastMAC(g)
}

// TestProgRunServiceAnswersSolicitations: an ARP request or a neighbour solicitation (multicast,
// and unicast as the kernel confirms a stale entry) for a frontend's address, leaving a
// secondary, is answered back into the pod with the interface's own MAC; one for any other
// address, duplicate address detection, and any of them in a pod without frontends leave as
// the kernel sent them.
func TestProgRunServiceAnswersSolicitations(t *testing.T) {
	e := svcSetup(t)
	mac := prMAC[prA]
	other4, other6 := netip.MustParseAddr("10.1.0.99"), netip.MustParseAddr("fd00:1::99")
	arp := func(dstMAC net.HardwareAddr, tpa netip.Addr) []byte {
		return arpFrame(dstMAC, mac, 1, mac, prAddr(prA, false), make(net.HardwareAddr, 6), tpa)
	}
	nsMulticast := func(target netip.Addr) []byte {
		g, gmac := solicitedNode(target)
		return ndFrame(gmac, mac, prAddr(prA, true), g, 135, 0, target, mac)
	}
	nsUnicast := func(target netip.Addr) []byte {
		return ndFrame(mac, mac, prAddr(prA, true), target, 135, 0, target, mac)
	}
	dad := func(target netip.Addr) []byte {
		g, gmac := solicitedNode(target)
		return ndFrame(gmac, mac, netip.IPv6Unspecified(), g, 135, 0, target, mac)
	}
	passes := func(t *testing.T, name string, in []byte) {
		t.Helper()
		r := e.in(t).egress(prA, in)
		if r.ret != tcOK || !bytes.Equal(r.out, in) {
			t.Errorf("%s: verdict %d, changed %v: want it to leave untouched", name, r.ret, !bytes.Equal(r.out, in))
		}
	}

	// No frontends yet: the pod's program does not even hand them to the proxy.
	passes(t, "ARP request without frontends", arp(ethBroadcast, svcFrontend4))
	passes(t, "solicitation without frontends", nsMulticast(svcFrontend6))

	e.program(svcEntry(svcFrontend4, 80, service.TCP, svcBackends4...), svcEntry(svcFrontend6, 53, service.UDP, svcBackends6...),
		svcEntry(svcEmpty6, 80, service.TCP))

	for name, in := range map[string][]byte{"broadcast": arp(ethBroadcast, svcFrontend4), "unicast": arp(mac, svcFrontend4)} {
		t.Run("ARP/"+name, func(t *testing.T) {
			r := e.in(t).egress(prA, in)
			if r.ret != tcRedirect {
				t.Fatalf("verdict %d, want redirect (into the pod)", r.ret)
			}
			want := arpFrame(mac, mac, 2, mac, svcFrontend4, mac, prAddr(prA, false))
			if !bytes.Equal(r.out, want) {
				t.Errorf("answer\n%x, want\n%x", r.out, want)
			}
		})
	}
	for name, in := range map[string][]byte{
		"multicast": nsMulticast(svcFrontend6), "unicast": nsUnicast(svcFrontend6),
		"frontend without backends": nsMulticast(svcEmpty6),
	} {
		t.Run("NS/"+name, func(t *testing.T) {
			r := e.in(t).egress(prA, in)
			if r.ret != tcRedirect {
				t.Fatalf("verdict %d, want redirect (into the pod)", r.ret)
			}
			target := netip.AddrFrom16([16]byte(in[packet.EthLen+40+8 : packet.EthLen+40+24]))
			// Solicited and override, from the target to the asker, checksum included.
			want := ndFrame(mac, mac, target, prAddr(prA, true), 136, 0x60000000, target, mac)
			if !bytes.Equal(r.out, want) {
				t.Errorf("answer\n%x, want\n%x", r.out, want)
			}
		})
	}
	passes(t, "ARP request for another address", arp(ethBroadcast, other4))
	passes(t, "ARP reply", arpFrame(mac, prHopMAC[prA], 2, prHopMAC[prA], svcFrontend4, mac, prAddr(prA, false)))
	passes(t, "solicitation for another address", nsMulticast(other6))
	passes(t, "duplicate address detection", dad(svcFrontend6))
	passes(t, "advertisement", ndFrame(mac, mac, svcFrontend6, prAddr(prA, true), 136, 0x60000000, svcFrontend6, mac))
}
