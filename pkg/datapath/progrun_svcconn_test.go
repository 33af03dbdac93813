package datapath

// BPF_PROG_TEST_RUN tests of the Service proxy's connection table over a connection's life:
// the pair of entries (connection, reverse NAT) a proxied connection leaves must not outlive
// it, or a later direct connection of the pod to the same backend that reuses the source port
// has its replies rewritten to the frontend.

import (
	"net/netip"
	"testing"

	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/pkg/service"
)

// svcDirect is a packet the pod sends from secondary A's address straight to a backend.
func svcDirect(to netip.AddrPort, sport uint16, proto service.Protocol, flags uint8) []byte {
	var l4 packet.Transport = &packet.UDP{SrcPort: sport, DstPort: to.Port()}
	if proto == service.TCP {
		l4 = &packet.TCP{SrcPort: sport, DstPort: to.Port(), Seq: 7000, Flags: flags}
	}
	return prBuild(prHopMAC[prA], prMAC[prA], prAddr(prA, to.Addr().Is6()), to.Addr(), l4, "steer-direct")
}

// svcFromBackend is a packet a backend sends to secondary A's address and port dport.
func svcFromBackend(from netip.AddrPort, dport uint16, proto service.Protocol, flags uint8) []byte {
	var l4 packet.Transport = &packet.UDP{SrcPort: from.Port(), DstPort: dport}
	if proto == service.TCP {
		l4 = &packet.TCP{SrcPort: from.Port(), DstPort: dport, Seq: 9000, Ack: 7001, Flags: flags}
	}
	return prBuild(prMAC[prA], prHopMAC[prA], from.Addr(), prAddr(prA, from.Addr().Is6()), l4, "steer-backend")
}

// TestProgRunServiceDirectAfterProxied: a connection through the frontend from port 40000,
// then a direct connection to its backend from the same port on A's address: the direct
// connection's SYN-ACK reaches its socket as the backend sent it.
func TestProgRunServiceDirectAfterProxied(t *testing.T) {
	e := svcSetup(t)
	backend := svcBackends4[0]
	e.program(svcEntry(svcFrontend4, 80, service.TCP, backend))
	in := svcOut(svcFrontend4, 40000, 80, service.TCP, packet.TCPSyn)
	expectDNAT(t, e.egress(prPrimary, in), in, []netip.AddrPort{backend})

	syn := svcDirect(backend, 40000, service.TCP, packet.TCPSyn)
	if r := e.egress(prA, syn); r.ret != tcOK {
		t.Fatalf("direct SYN: verdict %d, want pass", r.ret)
	} else {
		prUnchanged(t, syn, r.out)
	}
	synAck := svcFromBackend(backend, 40000, service.TCP, packet.TCPSyn|packet.TCPAck)
	r := e.ingress(prA, synAck)
	if r.ret != tcOK {
		t.Fatalf("direct SYN-ACK: verdict %d, want pass", r.ret)
	}
	p := prParse(t, r.out)
	if got := netip.AddrPortFrom(p.Src, p.SrcPort); got != backend {
		t.Errorf("the direct connection's SYN-ACK comes from %v, want the backend %v", got, backend)
	}
	prUnchanged(t, synAck, r.out)
}
