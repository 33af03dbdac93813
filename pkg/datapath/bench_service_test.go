package datapath

import (
	"net/netip"
	"testing"

	"github.com/steernet/steer/internal/testutil/progrun"
	"github.com/steernet/steer/pkg/service"
)

// BenchmarkEgressService: the Service proxy per packet, in a pod with one frontend of two
// backends on net1. primary-miss: a packet of the pod's cluster traffic, to no frontend (what
// every packet of a pod with Service entries pays: the divert's lookup). established: a packet
// of a connection to the frontend (divert, tail call, connection and backend lookups, DNAT,
// SNAT, redirect). BenchmarkEgressPrimaryMiss is the same primary packet in a pod without
// entries. One run per BPF_PROG_TEST_RUN for established: the proxy rewrites the packet.
func BenchmarkEgressService(b *testing.B) {
	itfs := []Interface{
		benchIface("eth0", 0, benchMAC, benchAddr, false),
		benchIface("net1", 1000, benchMACA, benchAddrA, true),
	}
	itfs[1].Bits4 = 16
	objs, n := benchLoad(b, Config{Interfaces: itfs})
	m := sharedServiceMaps(objs)
	if _, err := loadProxy(m, 0, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		m.slots.Close()
		m.backends.Close()
		m.conns.Close()
		m.revnat.Close()
		m.affinity.Close()
		m.counters.Close()
	})
	fe := netip.MustParseAddr("192.0.2.80")
	entry := service.Entry{Frontend: service.Frontend{Addr: netip.AddrPortFrom(fe, 80), Proto: service.TCP},
		Service: "default/web", IfName: "net1",
		Backends: []netip.AddrPort{netip.MustParseAddrPort("10.1.0.21:8080"), netip.MustParseAddrPort("10.1.0.22:8080")}}
	if err := programServices(m, itfs, []service.Entry{entry}); err != nil {
		b.Fatal(err)
	}
	b.Run("primary-miss", func(b *testing.B) {
		frame := prBuild(benchHop, benchMAC, benchAddr, benchRemote, benchTCP(33000, 443), "payload")
		benchRun(b, n, objs.SteerEgress, frame, tcOK)
	})
	b.Run("established", func(b *testing.B) {
		frame := prBuild(benchHop, benchMAC, benchAddr, fe, benchTCP(33001, 80), "payload")
		benchRunFresh(b, n, objs.SteerEgress, frame, progrun.TC(benchLoopback), tcRedirect)
	})
}
