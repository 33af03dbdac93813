package datapath

// BPF_PROG_TEST_RUN tests of the Service proxy: DNAT+SNAT on egress, reverse NAT on ingress,
// stickiness, backend removal, sessionAffinity, and the reset or ICMP unreachable of a frontend
// without backends, IPv4 and IPv6, with the maps written by programServices as Program writes
// them.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/pkg/service"
)

var (
	svcFrontend4 = netip.MustParseAddr("192.0.2.80")
	svcFrontend6 = netip.MustParseAddr("2001:db8:80::80")
	svcEmpty4    = netip.MustParseAddr("192.0.2.81")
	svcEmpty6    = netip.MustParseAddr("2001:db8:80::81")
	svcSticky4   = netip.MustParseAddr("192.0.2.82")
	// Backends on secondary A's subnets, and one behind its gateway.
	svcBackends4 = []netip.AddrPort{netip.MustParseAddrPort("10.1.0.21:8080"), netip.MustParseAddrPort("10.1.0.22:8080")}
	svcBackends6 = []netip.AddrPort{netip.MustParseAddrPort("[fd00:1::21]:8080"), netip.MustParseAddrPort("[2001:db8:5::5]:8080")}
	svcThree4    = []netip.AddrPort{netip.MustParseAddrPort("10.1.0.31:80"), netip.MustParseAddrPort("10.1.0.32:80"), netip.MustParseAddrPort("10.1.0.33:80")}
)

func svcEntry(fe netip.Addr, port uint16, proto service.Protocol, backends ...netip.AddrPort) service.Entry {
	return service.Entry{
		Frontend: service.Frontend{Addr: netip.AddrPortFrom(fe, port), Proto: proto},
		Service:  "default/web-dmz", IfName: "p1", Backends: backends,
	}
}

// svcSetup is the pod of prSetup with subnets on its secondaries.
func svcSetup(t *testing.T) *prEnv {
	e := prSetup(t, func(c *Config) {
		for i := range c.Interfaces {
			c.Interfaces[i].Bits4, c.Interfaces[i].Bits6 = 16, 64
		}
	})
	e.svcMaps() // the proxy lives as long as the test, not one of its subtests
	return e
}

// svcProxies are the proxies loaded for the test collections, as Program loads a pod's.
var (
	svcProxiesMu sync.Mutex
	svcProxies   = map[*Objects]*serviceMaps{}
)

// svcMaps returns the Service maps of the test's collection, its proxy loaded.
func (e *prEnv) svcMaps() *serviceMaps {
	e.t.Helper()
	svcProxiesMu.Lock()
	defer svcProxiesMu.Unlock()
	if m, ok := svcProxies[e.objs]; ok {
		return m
	}
	m := sharedServiceMaps(e.objs)
	if _, err := loadProxy(m, 0, nil); err != nil {
		e.t.Fatal(err)
	}
	svcProxies[e.objs] = m
	e.t.Cleanup(func() {
		svcProxiesMu.Lock()
		defer svcProxiesMu.Unlock()
		delete(svcProxies, e.objs)
		for _, p := range []*ebpf.Map{m.slots, m.backends, m.conns, m.revnat, m.affinity, m.counters} {
			p.Close()
		}
	})
	return m
}

func (e *prEnv) program(entries ...service.Entry) {
	e.t.Helper()
	if err := programServices(e.svcMaps(), e.cfg.Interfaces, entries); err != nil {
		e.t.Fatalf("program: %v", err)
	}
}

func (e *prEnv) services() map[string]ServiceFrontend {
	e.t.Helper()
	fes, err := readServiceMaps(e.svcMaps(), e.cfg.Interfaces)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]ServiceFrontend{}
	for _, f := range fes {
		out[fmt.Sprintf("%s/%s", f.Frontend.Addr, f.Frontend.Proto)] = f
	}
	return out
}

// svcOut is a packet the pod sends from its primary address to a frontend, out of the primary.
func svcOut(fe netip.Addr, sport, dport uint16, proto service.Protocol, flags uint8) []byte {
	src := prAddr(prPrimary, fe.Is6())
	var l4 packet.Transport = &packet.UDP{SrcPort: sport, DstPort: dport}
	if proto == service.TCP {
		l4 = &packet.TCP{SrcPort: sport, DstPort: dport, Seq: 1000, Ack: 2000, Flags: flags}
	}
	return prBuild(prHopMAC[prPrimary], prMAC[prPrimary], src, fe, l4, "steer-service")
}

// expectDNAT checks that out is in, sent to one of backends from secondary A's address, and
// returns the backend.
func expectDNAT(t *testing.T, r prRun, in []byte, backends []netip.AddrPort) netip.AddrPort {
	t.Helper()
	if r.ret != tcRedirect {
		t.Fatalf("verdict %d, want redirect", r.ret)
	}
	orig := prParse(t, in)
	p := prParse(t, r.out)
	got := netip.AddrPortFrom(p.Dst, p.DstPort)
	found := false
	for _, b := range backends {
		found = found || b == got
	}
	if !found {
		t.Errorf("sent to %v, want one of %v", got, backends)
	}
	if want := prAddr(prA, orig.Src.Is6()); p.Src != want || p.SrcPort != orig.SrcPort {
		t.Errorf("from %v:%d, want %v:%d", p.Src, p.SrcPort, want, orig.SrcPort)
	}
	if string(p.Payload) != string(orig.Payload) || p.Protocol != orig.Protocol {
		t.Errorf("payload or protocol changed")
	}
	return got
}

func TestProgRunServiceNAT(t *testing.T) {
	e := svcSetup(t)
	for _, tc := range []struct {
		fe       netip.Addr
		proto    service.Protocol
		backends []netip.AddrPort
	}{
		{svcFrontend4, service.TCP, svcBackends4},
		{svcFrontend4, service.UDP, svcBackends4},
		{svcFrontend6, service.TCP, svcBackends6},
		{svcFrontend6, service.UDP, svcBackends6},
	} {
		t.Run(fmt.Sprintf("%s/%s", prFamilyName(tc.fe.Is6()), tc.proto), func(t *testing.T) {
			e := e.in(t)
			e.reset()
			in := svcOut(tc.fe, 40000, 80, tc.proto, packet.TCPSyn)
			// Without Service entries the packet is the kernel's.
			e.program()
			if r := e.egress(prPrimary, in); r.ret != tcOK {
				t.Fatalf("no entries: verdict %d, want pass", r.ret)
			} else {
				prUnchanged(t, in, r.out)
			}

			e.program(svcEntry(tc.fe, 80, tc.proto, tc.backends...))
			b := expectDNAT(t, e.egress(prPrimary, in), in, tc.backends)
			// Every later packet of the connection goes to the same backend.
			for range 16 {
				if got := expectDNAT(t, e.egress(prPrimary, svcOut(tc.fe, 40000, 80, tc.proto, packet.TCPAck)), in, tc.backends); got != b {
					t.Fatalf("connection moved from %v to %v", b, got)
				}
			}
			// New connections are spread over the backends.
			seen := map[netip.AddrPort]bool{}
			for sport := uint16(41000); sport < 41064; sport++ {
				in := svcOut(tc.fe, sport, 80, tc.proto, packet.TCPSyn)
				seen[expectDNAT(t, e.egress(prPrimary, in), in, tc.backends)] = true
			}
			if len(seen) != len(tc.backends) {
				t.Errorf("64 connections went to %v, want all of %v", seen, tc.backends)
			}

			// The backend's reply, on A, is rewritten back to the frontend for the socket.
			local := prAddr(prA, tc.fe.Is6())
			var l4 packet.Transport = &packet.UDP{SrcPort: b.Port(), DstPort: 40000}
			if tc.proto == service.TCP {
				l4 = &packet.TCP{SrcPort: b.Port(), DstPort: 40000, Seq: 5000, Ack: 1001, Flags: packet.TCPSyn | packet.TCPAck}
			}
			reply := prBuild(prMAC[prA], prHopMAC[prA], b.Addr(), local, l4, "steer-reply")
			r := e.ingress(prA, reply)
			if r.ret != tcOK {
				t.Fatalf("reply: verdict %d, want ok", r.ret)
			}
			p := prParse(t, r.out)
			if got, want := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(tc.fe, 80); got != want {
				t.Errorf("reply from %v, want %v", got, want)
			}
			if got, want := netip.AddrPortFrom(p.Dst, p.DstPort), netip.AddrPortFrom(prAddr(prPrimary, tc.fe.Is6()), 40000); got != want {
				t.Errorf("reply to %v, want %v", got, want)
			}
			if len(e.flows()) != 0 {
				t.Errorf("a Service reply was learned as a flow: %v", e.flows())
			}
			// A packet from the backend that is no reply is left alone.
			other := prBuild(prMAC[prA], prHopMAC[prA], b.Addr(), local, &packet.UDP{SrcPort: b.Port(), DstPort: 39999}, "x")
			if r := e.ingress(prA, other); r.ret != tcOK {
				t.Errorf("other packet: verdict %d", r.ret)
			} else if tc.proto == service.UDP {
				prUnchanged(t, other, r.out)
			}

			st := e.services()[fmt.Sprintf("%s/%s", netip.AddrPortFrom(tc.fe, 80), tc.proto)]
			if st.Counters.Connections != 65 || st.Counters.Packets != 1+16+64+1 || st.Counters.NoBackend != 0 {
				t.Errorf("counters %+v, want 65 connections, 82 packets", st.Counters)
			}
			if st.Service != "default/web-dmz" || st.Interface != "p1" || len(st.Backends) != len(tc.backends) {
				t.Errorf("read back %+v", st)
			}
		})
	}
}

// TestProgRunServiceNextHop checks where a backend is reached: through the kernel's route of
// the interface on its subnet (no next hop named), through the gateway elsewhere.
func TestProgRunServiceNextHop(t *testing.T) {
	itf := Interface{Name: "p1", Index: 7, Addr4: prAddr4[prA], Bits4: 16, Gateway4: netip.MustParseAddr("10.1.0.1"),
		Addr6: prAddr6[prA], Bits6: 64, Gateway6: netip.MustParseAddr("fd00:1::1")}
	want, err := encodeEntries([]service.Entry{svcEntry(svcFrontend6, 80, service.TCP, svcBackends6...),
		svcEntry(svcFrontend4, 80, service.TCP, netip.MustParseAddrPort("10.1.9.9:80"), netip.MustParseAddrPort("198.51.100.9:80"))},
		map[string]Interface{"p1": itf})
	if err != nil {
		t.Fatal(err)
	}
	for i, nh := range []string{"", "fd00:1::1", "", "10.1.0.1"} {
		b := want[i/2].backends[i%2]
		got := ""
		if b.NhFamily != 0 {
			got = addrFrom(b.Nexthop.V6, b.NhFamily).String()
		}
		if got != nh || b.Ifindex != 7 {
			t.Errorf("backend %d: next hop %q via %d, want %q via 7", i, got, b.Ifindex, nh)
		}
	}
}

func TestProgRunServiceBackendRemoval(t *testing.T) {
	e := svcSetup(t)
	e.program(svcEntry(svcFrontend4, 80, service.TCP, svcThree4...))
	// A connection on each backend.
	conns := map[netip.AddrPort]uint16{}
	for sport := uint16(42000); len(conns) < 3 && sport < 42200; sport++ {
		in := svcOut(svcFrontend4, sport, 80, service.TCP, packet.TCPSyn)
		b := expectDNAT(t, e.egress(prPrimary, in), in, svcThree4)
		if _, ok := conns[b]; !ok {
			conns[b] = sport
		}
	}
	if len(conns) != 3 {
		t.Fatalf("200 connections reached %d backends", len(conns))
	}
	gone, stays := svcThree4[0], svcThree4[1:]
	e.program(svcEntry(svcFrontend4, 80, service.TCP, stays...))
	for _, b := range stays {
		in := svcOut(svcFrontend4, conns[b], 80, service.TCP, packet.TCPAck)
		if got := expectDNAT(t, e.egress(prPrimary, in), in, stays); got != b {
			t.Errorf("connection to %v, which stays, moved to %v", b, got)
		}
	}
	in := svcOut(svcFrontend4, conns[gone], 80, service.TCP, packet.TCPAck)
	expectDNAT(t, e.egress(prPrimary, in), in, stays)
	for sport := uint16(43000); sport < 43032; sport++ {
		in := svcOut(svcFrontend4, sport, 80, service.TCP, packet.TCPSyn)
		expectDNAT(t, e.egress(prPrimary, in), in, stays)
	}
	// Every backend gone: refused.
	e.program(svcEntry(svcFrontend4, 80, service.TCP))
	in = svcOut(svcFrontend4, conns[stays[0]], 80, service.TCP, packet.TCPAck)
	if r := e.egress(prPrimary, in); r.ret != tcRedirect || prParse(t, r.out).TCPFlags != packet.TCPRst {
		t.Errorf("connection to a frontend left without backends: verdict %d, want a reset", r.ret)
	}
	// The frontend removed: the kernel's again.
	e.program()
	if r := e.egress(prPrimary, in); r.ret != tcOK {
		t.Errorf("removed frontend: verdict %d, want pass", r.ret)
	}
	if n := len(e.services()); n != 0 {
		t.Errorf("%d frontends left", n)
	}
}

func TestProgRunServiceAffinity(t *testing.T) {
	e := svcSetup(t)
	sticky := svcEntry(svcSticky4, 80, service.TCP, svcThree4...)
	sticky.AffinityTimeout = time.Hour
	e.program(sticky, svcEntry(svcFrontend4, 80, service.TCP, svcThree4...))
	for i, tc := range []struct {
		fe       netip.Addr
		backends int
	}{{svcSticky4, 1}, {svcFrontend4, 3}} {
		seen := map[netip.AddrPort]bool{}
		// Ports of its own per frontend: the same port to the same backend would collide on the
		// wire, and take another.
		for sport := uint16(44000 + 100*i); sport < uint16(44040+100*i); sport++ {
			in := svcOut(tc.fe, sport, 80, service.TCP, packet.TCPSyn)
			seen[expectDNAT(t, e.egress(prPrimary, in), in, svcThree4)] = true
		}
		if len(seen) != tc.backends {
			t.Errorf("%v: 40 connections of one client reached %d backends, want %d", tc.fe, len(seen), tc.backends)
		}
	}
	if got := e.services()["192.0.2.82:80/TCP"].AffinityTimeout; got != time.Hour {
		t.Errorf("affinity timeout read back %v", got)
	}
}

// TestProgRunServiceRefuse sends a SYN and a datagram to frontends without backends: a reset
// and a port unreachable come back into the pod at once.
func TestProgRunServiceRefuse(t *testing.T) {
	e := svcSetup(t)
	e.program(svcEntry(svcEmpty4, 80, service.TCP), svcEntry(svcEmpty4, 53, service.UDP),
		svcEntry(svcEmpty6, 80, service.TCP), svcEntry(svcEmpty6, 53, service.UDP))
	for _, fe := range []netip.Addr{svcEmpty4, svcEmpty6} {
		t.Run(prFamilyName(fe.Is6())+"/TCP", func(t *testing.T) {
			in := svcOut(fe, 40000, 80, service.TCP, packet.TCPSyn)
			r := e.in(t).egress(prPrimary, in)
			if r.ret != tcRedirect {
				t.Fatalf("verdict %d, want redirect (into the pod)", r.ret)
			}
			p := prParse(t, r.out)
			if p.EthDst.String() != prMAC[prPrimary].String() || p.EthSrc.String() != prHopMAC[prPrimary].String() {
				t.Errorf("MACs %v <- %v, want the pod's as destination", p.EthDst, p.EthSrc)
			}
			if p.Src != fe || p.SrcPort != 80 || p.Dst != prAddr(prPrimary, fe.Is6()) || p.DstPort != 40000 {
				t.Errorf("reset %v:%d -> %v:%d", p.Src, p.SrcPort, p.Dst, p.DstPort)
			}
			// The SYN (sequence number 1000) carries the 13 bytes of "steer-service".
			if p.TCPFlags != packet.TCPRst|packet.TCPAck || p.TCPAck != 1014 || p.TCPSeq != 0 || len(p.Payload) != 0 {
				t.Errorf("reset flags %#x seq %d ack %d payload %d, want RST|ACK acking 1014", p.TCPFlags, p.TCPSeq, p.TCPAck, len(p.Payload))
			}
		})
		t.Run(prFamilyName(fe.Is6())+"/UDP", func(t *testing.T) {
			in := svcOut(fe, 40001, 53, service.UDP, 0)
			r := e.in(t).egress(prPrimary, in)
			if r.ret != tcRedirect {
				t.Fatalf("verdict %d, want redirect (into the pod)", r.ret)
			}
			p := prParse(t, r.out)
			wantProto, wantType, wantCode, quote := uint8(packet.ProtoICMP), uint8(3), uint8(3), 20+8
			if fe.Is6() {
				wantProto, wantType, wantCode, quote = packet.ProtoICMPv6, 1, 4, 40+8
			}
			if p.Protocol != wantProto || p.ICMPType != wantType || p.ICMPCode != wantCode {
				t.Fatalf("answer protocol %d type %d code %d, want %d %d %d", p.Protocol, p.ICMPType, p.ICMPCode, wantProto, wantType, wantCode)
			}
			if p.Src != fe || p.Dst != prAddr(prPrimary, fe.Is6()) {
				t.Errorf("unreachable %v -> %v", p.Src, p.Dst)
			}
			// After the unused word: the datagram's IP and UDP headers, as sent.
			orig := in[packet.EthLen : packet.EthLen+quote]
			if got := p.Payload[4:]; string(got) != string(orig) {
				t.Errorf("quoted %x, want %x", got, orig)
			}
			if binary.BigEndian.Uint32(p.Payload[:4]) != 0 {
				t.Errorf("unused word %x", p.Payload[:4])
			}
		})
	}
	st := e.services()
	if n := st["192.0.2.81:80/TCP"].Counters.NoBackend; n != 1 {
		t.Errorf("no-backend counter %d, want 1", n)
	}
}

// TestServiceEntriesRefused checks that entries the datapath cannot honour are refused with a
// reason, and leave the maps as they were.
func TestServiceEntriesRefused(t *testing.T) {
	e := svcSetup(t)
	good := svcEntry(svcFrontend4, 80, service.TCP, svcBackends4...)
	e.program(good)
	for name, bad := range map[string]service.Entry{
		"unknown interface": {Frontend: good.Frontend, IfName: "nope", Backends: svcBackends4},
		"mixed families":    svcEntry(svcFrontend4, 80, service.TCP, svcBackends6...),
		"port 0":            svcEntry(svcFrontend4, 0, service.TCP),
		"SCTP":              svcEntry(svcFrontend4, 80, 132),
	} {
		if err := programServices(e.svcMaps(), e.cfg.Interfaces, []service.Entry{bad}); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if err := programServices(e.svcMaps(), e.cfg.Interfaces, []service.Entry{good, good}); err == nil {
		t.Error("a frontend given twice: accepted")
	}
	if st := e.services(); len(st) != 1 || len(st["192.0.2.80:80/TCP"].Backends) != 2 {
		t.Errorf("maps changed by refused entries: %+v", st)
	}
}

// svcProxyBudget is, per program of the Service proxy, the most instructions the verifier may
// process: the figure measured (clang 14, Linux 6.18) plus 25%. It does not depend on the pod's
// configuration, and is paid at a pod's first Service entry only.
var svcProxyBudget = map[string]int{
	svcProgSteerSvcEgress:  12280, // measured 9821 (5514 before the connections' close, idle and port collisions)
	svcProgSteerSvcIngress: 3345,  // measured 2676 (1254 before)
}

// TestServiceProxyVerifierCost loads the proxy with verifier statistics.
func TestServiceProxyVerifierCost(t *testing.T) {
	prSkipUnlessRoot(t)
	parsed, err := parsedSvcSpec()
	if err != nil {
		t.Fatal(err)
	}
	spec := parsed.Copy()
	if err := foldVariables(spec); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
	if err != nil {
		t.Fatalf("load the proxy: %+v", err)
	}
	defer coll.Close()
	for name, p := range coll.Programs {
		m := processedRE.FindStringSubmatch(p.VerifierLog)
		if m == nil {
			t.Fatalf("%s: no statistics in the verifier log", name)
		}
		n, _ := strconv.Atoi(m[1])
		t.Logf("%s: processed %d insns", name, n)
		if budget, ok := svcProxyBudget[name]; !ok || n > budget {
			t.Errorf("%s: the verifier processed %d instructions, over its budget of %d", name, n, budget)
		}
	}
}
