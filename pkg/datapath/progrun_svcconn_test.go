package datapath

// BPF_PROG_TEST_RUN tests of the Service proxy's connection table over a connection's life:
// the pair of entries (connection, reverse NAT) a proxied connection leaves must not outlive
// it, or a later direct connection of the pod to the same backend that reuses the source port
// has its replies rewritten to the frontend. Closing by FINs and resets with a grace for late
// packets, idle timeouts (by ageing the entries' stamps), a direct flow ending the pair its tuple
// collides with, another source port for a proxied connection whose tuple is taken, and live
// connections' stickiness through all of it.

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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

// expectReply runs a backend's packet through A's ingress and checks that the socket sees it
// from fe, at the primary's address and port.
func (e *prEnv) expectReply(in []byte, fe netip.AddrPort, port uint16) {
	e.t.Helper()
	r := e.ingress(prA, in)
	if r.ret != tcOK {
		e.t.Fatalf("reply: verdict %d, want ok", r.ret)
	}
	p := prParse(e.t, r.out)
	if got := netip.AddrPortFrom(p.Src, p.SrcPort); got != fe {
		e.t.Errorf("reply from %v, want the frontend %v", got, fe)
	}
	if got, want := netip.AddrPortFrom(p.Dst, p.DstPort), netip.AddrPortFrom(prAddr(prPrimary, fe.Addr().Is6()), port); got != want {
		e.t.Errorf("reply to %v, want %v", got, want)
	}
}

// expectUntouched runs a backend's packet through A's ingress and checks that it enters as sent.
func (e *prEnv) expectUntouched(in []byte) {
	e.t.Helper()
	r := e.ingress(prA, in)
	if r.ret != tcOK {
		e.t.Fatalf("verdict %d, want ok", r.ret)
	}
	prUnchanged(e.t, in, r.out)
}

// svcPairs reads the connection and reverse-NAT tables.
func (e *prEnv) svcPairs() (map[svcSvcConnKey]svcSvcConn, map[svcSvcConnKey]svcSvcRev) {
	e.t.Helper()
	m := e.svcMaps()
	conns, revs := map[svcSvcConnKey]svcSvcConn{}, map[svcSvcConnKey]svcSvcRev{}
	if err := iterate(m.conns, func(k svcSvcConnKey, v svcSvcConn) { conns[k] = v }); err != nil {
		e.t.Fatal(err)
	}
	if err := iterate(m.revnat, func(k svcSvcConnKey, v svcSvcRev) { revs[k] = v }); err != nil {
		e.t.Fatal(err)
	}
	return conns, revs
}

// svcAge makes the stamps of the connections (conns) and reverse NATs (revs) d older, as if
// the proxy's clock had moved on by d since.
func (e *prEnv) svcAge(d time.Duration, conns, revs bool) {
	e.t.Helper()
	e.svcRestamp(func(s uint64) uint64 { return s - uint64(d) }, conns, revs)
}

// svcRestamp replaces the stamps of the connections (conns) and reverse NATs (revs) by f's.
func (e *prEnv) svcRestamp(f func(uint64) uint64, conns, revs bool) {
	e.t.Helper()
	m := e.svcMaps()
	cs, rs := e.svcPairs()
	for k, v := range cs {
		if conns {
			v.SeenNs = f(v.SeenNs)
			if err := m.conns.Update(k, v, ebpf.UpdateExist); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	for k, v := range rs {
		if revs {
			v.SeenNs = f(v.SeenNs)
			if err := m.revnat.Update(k, v, ebpf.UpdateExist); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// svcClock reads the proxy's clock (bpf_ktime_get_coarse_ns).
func svcClock(t *testing.T) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

func (e *prEnv) conns(fe netip.AddrPort, proto service.Protocol) uint64 {
	e.t.Helper()
	return e.services()[fmt.Sprintf("%s/%s", fe, proto)].Counters.Connections
}

// svcCases are the families and protocols every lifecycle test runs in.
var svcCases = []struct {
	fe      netip.Addr
	backend netip.AddrPort
	proto   service.Protocol
}{
	{svcFrontend4, svcBackends4[0], service.TCP},
	{svcFrontend4, svcBackends4[0], service.UDP},
	{svcFrontend6, svcBackends6[0], service.TCP},
	{svcFrontend6, svcBackends6[0], service.UDP},
}

// TestProgRunServiceDirectAfterProxied: a connection through the frontend from port 40000,
// then a direct flow to its backend from the same port on A's address: its first packet ends the
// proxied pair, and the backend's answer reaches the direct socket as the backend sent it.
func TestProgRunServiceDirectAfterProxied(t *testing.T) {
	e := svcSetup(t)
	for _, tc := range svcCases {
		t.Run(fmt.Sprintf("%s/%s", prFamilyName(tc.fe.Is6()), tc.proto), func(t *testing.T) {
			e := e.in(t)
			e.program(svcEntry(tc.fe, 80, tc.proto, tc.backend))
			in := svcOut(tc.fe, 40000, 80, tc.proto, packet.TCPSyn)
			expectDNAT(t, e.egress(prPrimary, in), in, []netip.AddrPort{tc.backend})
			e.expectReply(svcFromBackend(tc.backend, 40000, tc.proto, packet.TCPSyn|packet.TCPAck), netip.AddrPortFrom(tc.fe, 80), 40000)

			syn := svcDirect(tc.backend, 40000, tc.proto, packet.TCPSyn)
			if r := e.egress(prA, syn); r.ret != tcOK {
				t.Fatalf("direct SYN: verdict %d, want pass", r.ret)
			} else {
				prUnchanged(t, syn, r.out)
			}
			e.expectUntouched(svcFromBackend(tc.backend, 40000, tc.proto, packet.TCPSyn|packet.TCPAck))
			if cs, rs := e.svcPairs(); len(cs) != 0 || len(rs) != 0 {
				t.Errorf("the proxied pair outlived the direct flow: %d connections, %d reverse NATs", len(cs), len(rs))
			}
			// The proxied socket's next packet gets a pair anew, on another port on the wire.
			in = svcOut(tc.fe, 40000, 80, tc.proto, packet.TCPAck)
			r := e.egress(prPrimary, in)
			if r.ret != tcRedirect {
				t.Fatalf("proxied packet after the direct flow: verdict %d, want redirect", r.ret)
			}
			e.program()
		})
	}
}

// TestProgRunServiceClose: a TCP connection is over once a FIN went each way or a reset
// either way; its pair still serves late packets for the grace period, and not after; a SYN
// on a closing pair opens a new connection; a half-closed connection lives on.
func TestProgRunServiceClose(t *testing.T) {
	e := svcSetup(t)
	backend := svcBackends4[0]
	fe := netip.AddrPortFrom(svcFrontend4, 80)
	e.program(svcEntry(svcFrontend4, 80, service.TCP, backend))
	for i, tc := range []struct {
		name  string
		close func(e *prEnv, port uint16)
		over  bool
	}{
		{"FIN both ways", func(e *prEnv, port uint16) {
			expectDNAT(e.t, e.egress(prPrimary, svcOut(svcFrontend4, port, 80, service.TCP, packet.TCPFin|packet.TCPAck)), svcOut(svcFrontend4, port, 80, service.TCP, 0), []netip.AddrPort{backend})
			e.expectReply(svcFromBackend(backend, port, service.TCP, packet.TCPFin|packet.TCPAck), fe, port)
		}, true},
		{"FIN from the backend first", func(e *prEnv, port uint16) {
			e.expectReply(svcFromBackend(backend, port, service.TCP, packet.TCPFin|packet.TCPAck), fe, port)
			expectDNAT(e.t, e.egress(prPrimary, svcOut(svcFrontend4, port, 80, service.TCP, packet.TCPFin|packet.TCPAck)), svcOut(svcFrontend4, port, 80, service.TCP, 0), []netip.AddrPort{backend})
		}, true},
		{"reset from the backend", func(e *prEnv, port uint16) {
			e.expectReply(svcFromBackend(backend, port, service.TCP, packet.TCPRst), fe, port)
		}, true},
		{"reset from the pod", func(e *prEnv, port uint16) {
			expectDNAT(e.t, e.egress(prPrimary, svcOut(svcFrontend4, port, 80, service.TCP, packet.TCPRst)), svcOut(svcFrontend4, port, 80, service.TCP, 0), []netip.AddrPort{backend})
		}, true},
		{"half-closed", func(e *prEnv, port uint16) {
			expectDNAT(e.t, e.egress(prPrimary, svcOut(svcFrontend4, port, 80, service.TCP, packet.TCPFin|packet.TCPAck)), svcOut(svcFrontend4, port, 80, service.TCP, 0), []netip.AddrPort{backend})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			port := uint16(45000 + i)
			in := svcOut(svcFrontend4, port, 80, service.TCP, packet.TCPSyn)
			expectDNAT(t, e.egress(prPrimary, in), in, []netip.AddrPort{backend})
			e.expectReply(svcFromBackend(backend, port, service.TCP, packet.TCPSyn|packet.TCPAck), fe, port)
			tc.close(e, port)
			cs, rs := e.svcPairs()
			for k, v := range cs {
				if beToHost(k.Sport) == port && svcClosedFlags(v.Closing) != tc.over {
					t.Errorf("connection closing %#x, want over=%v", v.Closing, tc.over)
				}
			}
			for k, v := range rs {
				if beToHost(k.Dport) == port && svcClosedFlags(v.Closing) != tc.over {
					t.Errorf("reverse NAT closing %#x, want over=%v", v.Closing, tc.over)
				}
			}
			// Late packets within the grace period are the connection's.
			e.expectReply(svcFromBackend(backend, port, service.TCP, packet.TCPAck), fe, port)
			e.svcAge(11*time.Second, true, true)
			late := svcFromBackend(backend, port, service.TCP, packet.TCPAck)
			if !tc.over {
				e.expectReply(late, fe, port)
				return
			}
			e.expectUntouched(late)
			if _, rs := e.svcPairs(); len(rs) != 0 {
				for k := range rs {
					if beToHost(k.Dport) == port {
						t.Errorf("the reverse NAT of a connection over for its grace period is still there")
					}
				}
			}
			// The same socket tuple again: a new connection.
			before := e.conns(fe, service.TCP)
			in = svcOut(svcFrontend4, port, 80, service.TCP, packet.TCPSyn)
			expectDNAT(t, e.egress(prPrimary, in), in, []netip.AddrPort{backend})
			if got := e.conns(fe, service.TCP); got != before+1 {
				t.Errorf("a SYN after the close: %d connections, want %d", got, before+1)
			}
			e.expectReply(svcFromBackend(backend, port, service.TCP, packet.TCPSyn|packet.TCPAck), fe, port)
		})
	}

	t.Run("SYN within the grace period", func(t *testing.T) {
		e := e.in(t)
		port := uint16(45100)
		in := svcOut(svcFrontend4, port, 80, service.TCP, packet.TCPSyn)
		expectDNAT(t, e.egress(prPrimary, in), in, []netip.AddrPort{backend})
		e.expectReply(svcFromBackend(backend, port, service.TCP, packet.TCPRst), fe, port)
		before := e.conns(fe, service.TCP)
		expectDNAT(t, e.egress(prPrimary, in), in, []netip.AddrPort{backend})
		if got := e.conns(fe, service.TCP); got != before+1 {
			t.Errorf("a SYN on a closing pair: %d connections, want a new one (%d)", got, before+1)
		}
		cs, _ := e.svcPairs()
		for k, v := range cs {
			if beToHost(k.Sport) == port && v.Closing != 0 {
				t.Errorf("the new connection starts closing %#x", v.Closing)
			}
		}
		// And a direct connection from the port right after a close: its answer is its own.
		e.expectReply(svcFromBackend(backend, port, service.TCP, packet.TCPFin|packet.TCPAck), fe, port)
		e.egress(prPrimary, svcOut(svcFrontend4, port, 80, service.TCP, packet.TCPFin|packet.TCPAck))
		syn := svcDirect(backend, port, service.TCP, packet.TCPSyn)
		if r := e.egress(prA, syn); r.ret != tcOK {
			t.Fatalf("direct SYN: verdict %d", r.ret)
		}
		e.expectUntouched(svcFromBackend(backend, port, service.TCP, packet.TCPSyn|packet.TCPAck))
	})
}

// svcClosedFlags tells whether closing says the connection is over (svc_closed).
func svcClosedFlags(c svcSvcClosing) bool {
	const fins = svcSvcClosingSVC_FIN_OUT | svcSvcClosingSVC_FIN_IN
	return c&svcSvcClosingSVC_RST != 0 || c&fins == fins
}

// TestProgRunServiceIdle: a pair that saw nothing either way for its protocol's idle timeout
// counts as absent; one kept by traffic one way only lives on; a live connection's stamp is
// refreshed once a second.
func TestProgRunServiceIdle(t *testing.T) {
	e := svcSetup(t)
	uptime := time.Duration(svcClock(t))
	for _, tc := range svcCases {
		idle := 61 * time.Second
		if tc.proto == service.TCP {
			idle = 6*time.Hour + time.Second
		}
		t.Run(fmt.Sprintf("%s/%s", prFamilyName(tc.fe.Is6()), tc.proto), func(t *testing.T) {
			if uptime <= idle {
				t.Skipf("the clock reads %v: an entry %v old cannot be written", uptime, idle)
			}
			e := e.in(t)
			fe := netip.AddrPortFrom(tc.fe, 80)
			e.program(svcEntry(tc.fe, 80, tc.proto, tc.backend))
			defer e.program()
			in := svcOut(tc.fe, 46000, 80, tc.proto, packet.TCPSyn)
			expectDNAT(t, e.egress(prPrimary, in), in, []netip.AddrPort{tc.backend})
			e.expectReply(svcFromBackend(tc.backend, 46000, tc.proto, packet.TCPAck), fe, 46000)

			// A stale stamp is refreshed by the next packet.
			e.svcAge(2*time.Second, true, true)
			before := svcClock(t)
			e.egress(prPrimary, svcOut(tc.fe, 46000, 80, tc.proto, packet.TCPAck))
			e.expectReply(svcFromBackend(tc.backend, 46000, tc.proto, packet.TCPAck), fe, 46000)
			cs, rs := e.svcPairs()
			for _, v := range cs {
				if v.SeenNs < before {
					t.Errorf("connection stamp not refreshed: %d < %d", v.SeenNs, before)
				}
			}
			for _, v := range rs {
				if v.SeenNs < before {
					t.Errorf("reverse NAT stamp not refreshed: %d < %d", v.SeenNs, before)
				}
			}

			// Entries carried over from an older proxy (stamp 0) are stamped by their next packet.
			e.svcRestamp(func(uint64) uint64 { return 0 }, true, true)
			expectDNAT(t, e.egress(prPrimary, svcOut(tc.fe, 46000, 80, tc.proto, packet.TCPAck)), in, []netip.AddrPort{tc.backend})
			e.expectReply(svcFromBackend(tc.backend, 46000, tc.proto, packet.TCPAck), fe, 46000)
			cs, rs = e.svcPairs()
			for _, v := range cs {
				if v.SeenNs == 0 {
					t.Errorf("carried connection not stamped")
				}
			}
			for _, v := range rs {
				if v.SeenNs == 0 {
					t.Errorf("carried reverse NAT not stamped")
				}
			}

			// Quiet one way: kept by the other.
			n := e.conns(fe, tc.proto)
			e.svcAge(idle, true, false)
			expectDNAT(t, e.egress(prPrimary, svcOut(tc.fe, 46000, 80, tc.proto, packet.TCPAck)), in, []netip.AddrPort{tc.backend})
			if got := e.conns(fe, tc.proto); got != n {
				t.Errorf("a connection quiet one way only was replaced: %d connections, want %d", got, n)
			}
			e.svcAge(idle, false, true)
			e.expectReply(svcFromBackend(tc.backend, 46000, tc.proto, packet.TCPAck), fe, 46000)

			// Quiet both ways: gone.
			e.svcAge(idle, true, true)
			e.expectUntouched(svcFromBackend(tc.backend, 46000, tc.proto, packet.TCPAck))
			expectDNAT(t, e.egress(prPrimary, svcOut(tc.fe, 46000, 80, tc.proto, packet.TCPAck)), in, []netip.AddrPort{tc.backend})
			if got := e.conns(fe, tc.proto); got != n+1 {
				t.Errorf("after the idle timeout: %d connections, want a new one (%d)", got, n+1)
			}
		})
	}
}

// TestProgRunServicePortCollision: a new proxied connection whose tuple on the wire is already
// an open connection's pair (two frontends with one backend, the same client port), or a
// socket's of the pod on A's address, takes another source port, and its replies come back to
// its own; the tuple of a connection that is over is taken as it is.
func TestProgRunServicePortCollision(t *testing.T) {
	e := svcSetup(t)
	backend := svcBackends4[0]
	fe1, fe2 := netip.AddrPortFrom(svcFrontend4, 80), netip.AddrPortFrom(svcSticky4, 80)
	for _, proto := range []service.Protocol{service.TCP, service.UDP} {
		t.Run("pair/"+proto.String(), func(t *testing.T) {
			e := e.in(t)
			e.program(svcEntry(svcFrontend4, 80, proto, backend), svcEntry(svcSticky4, 80, proto, backend))
			defer e.program()
			in1 := svcOut(svcFrontend4, 47000, 80, proto, packet.TCPSyn)
			r := e.egress(prPrimary, in1)
			expectDNAT(t, r, in1, []netip.AddrPort{backend})
			in2 := svcOut(svcSticky4, 47000, 80, proto, packet.TCPSyn)
			r2 := e.egress(prPrimary, in2)
			if r2.ret != tcRedirect {
				t.Fatalf("verdict %d", r2.ret)
			}
			p := prParse(t, r2.out)
			if p.SrcPort < 61000 || netip.AddrPortFrom(p.Dst, p.DstPort) != backend || p.Src != prAddr(prA, false) {
				t.Fatalf("colliding connection sent from %v:%d to %v:%d, want another port above 61000 to %v", p.Src, p.SrcPort, p.Dst, p.DstPort, backend)
			}
			nat := p.SrcPort
			// It keeps that port, and each pair's replies reach their own socket.
			for range 4 {
				if p := prParse(t, e.egress(prPrimary, svcOut(svcSticky4, 47000, 80, proto, packet.TCPAck)).out); p.SrcPort != nat {
					t.Fatalf("the connection moved from port %d to %d", nat, p.SrcPort)
				}
			}
			e.expectReply(svcFromBackend(backend, nat, proto, packet.TCPAck), fe2, 47000)
			e.expectReply(svcFromBackend(backend, 47000, proto, packet.TCPAck), fe1, 47000)
		})
	}

	t.Run("pair-over", func(t *testing.T) {
		// A connection that is over may be followed on its tuple at once.
		e := e.in(t)
		e.program(svcEntry(svcFrontend4, 80, service.TCP, backend), svcEntry(svcSticky4, 80, service.TCP, backend))
		defer e.program()
		in1 := svcOut(svcFrontend4, 47050, 80, service.TCP, packet.TCPSyn)
		expectDNAT(t, e.egress(prPrimary, in1), in1, []netip.AddrPort{backend})
		e.expectReply(svcFromBackend(backend, 47050, service.TCP, packet.TCPRst), fe1, 47050)
		in2 := svcOut(svcSticky4, 47050, 80, service.TCP, packet.TCPSyn)
		expectDNAT(t, e.egress(prPrimary, in2), in2, []netip.AddrPort{backend})
		e.expectReply(svcFromBackend(backend, 47050, service.TCP, packet.TCPSyn|packet.TCPAck), fe2, 47050)
	})

	// A socket of the pod on A's address and the client's port.
	err := e.pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("p1")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: prAddr4[prA].AsSlice(), Mask: net.CIDRMask(16, 32)}})
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, proto := range []service.Protocol{service.TCP, service.UDP} {
		t.Run("socket/"+proto.String(), func(t *testing.T) {
			e := e.in(t)
			e.program(svcEntry(svcFrontend4, 80, proto, backend))
			defer e.program()
			port := uint16(47100 + i)
			err := e.pod.Do(func(ns.NetNS) error {
				addr := net.JoinHostPort(prAddr4[prA].String(), strconv.Itoa(int(port)))
				if proto == service.TCP {
					l, err := net.Listen("tcp4", addr)
					if err == nil {
						t.Cleanup(func() { l.Close() })
					}
					return err
				}
				c, err := net.ListenPacket("udp4", addr)
				if err == nil {
					t.Cleanup(func() { c.Close() })
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			in := svcOut(svcFrontend4, port, 80, proto, packet.TCPSyn)
			r := e.egress(prPrimary, in)
			if r.ret != tcRedirect {
				t.Fatalf("verdict %d", r.ret)
			}
			p := prParse(t, r.out)
			if p.SrcPort == port || p.SrcPort < 61000 {
				t.Fatalf("sent from port %d, which a socket of the pod holds on %v", p.SrcPort, p.Src)
			}
			e.expectReply(svcFromBackend(backend, p.SrcPort, proto, packet.TCPAck), fe1, port)
		})
	}
}

// The backend addresses' ticks, as bpf/lib/service.h counts them.
const (
	svcTickShift     = 30
	svcUDPPairTicks  = 60_000_000_000>>svcTickShift + 4
	svcLongPastTick  = 1 // the loader's
	svcUnknownTick   = 0 // an older loader's
	svcDirectUDPPort = 40000
)

// svcBackendKey is a backend address's key in steer_svc_backend_addrs.
func svcBackendKey(b netip.AddrPort, proto service.Protocol) svcSvcKey {
	k := svcSvcKey{Family: unix.AF_INET, Proto: uint8(proto), Port: hostToBE(b.Port())}
	if b.Addr().Is6() {
		k.Family = unix.AF_INET6
	}
	k.Addr.V6 = AddrBytes(b.Addr())
	return k
}

// svcTick reads the tick of a backend address's last active UDP pair.
func (e *prEnv) svcTick(b netip.AddrPort) uint32 {
	e.t.Helper()
	var tick uint32
	if err := e.svcMaps().backendAddrs.Lookup(svcBackendKey(b, service.UDP), &tick); err != nil {
		e.t.Fatal(err)
	}
	return tick
}

func (e *prEnv) setSvcTick(b netip.AddrPort, tick uint32) {
	e.t.Helper()
	if err := e.svcMaps().backendAddrs.Update(svcBackendKey(b, service.UDP), tick, ebpf.UpdateExist); err != nil {
		e.t.Fatal(err)
	}
}

// TestProgRunServiceUDPTicks: a backend address holds the tick of its last active UDP pair (the
// loader's is long past; a pair's opening writes the clock's), and the pod's programs hand the
// proxy a datagram straight to that backend, or from it, only while a pair may be live by that
// tick, or when an older loader wrote none: an established direct UDP flow to a backend no pair
// used for a minute does not pay the proxy. Ticks are set by hand below to show each side of
// the test on the same pair.
func TestProgRunServiceUDPTicks(t *testing.T) {
	e := svcSetup(t)
	for _, tc := range svcCases {
		if tc.proto != service.UDP {
			continue
		}
		t.Run(prFamilyName(tc.fe.Is6()), func(t *testing.T) {
			e := e.in(t)
			e.program(svcEntry(tc.fe, 53, service.UDP, tc.backend))
			if got := e.svcTick(tc.backend); got != svcLongPastTick {
				t.Errorf("a new backend's tick %d, want %d", got, svcLongPastTick)
			}
			in := svcOut(tc.fe, svcDirectUDPPort, 53, service.UDP, 0)
			expectDNAT(t, e.egress(prPrimary, in), in, []netip.AddrPort{tc.backend})
			now := uint32(svcClock(t) >> svcTickShift)
			if got := e.svcTick(tc.backend); got+1 < now || got > now+1 {
				t.Errorf("tick %d after a pair opened, want the clock's %d", got, now)
			}
			reply := svcFromBackend(tc.backend, svcDirectUDPPort, service.UDP, 0)
			direct := svcDirect(tc.backend, svcDirectUDPPort, service.UDP, 0)

			// Long past: neither the backend's datagram nor a direct one reaches the proxy, which
			// would rewrite the first and end the pair at the second.
			e.setSvcTick(tc.backend, svcLongPastTick)
			e.expectUntouched(reply)
			if r := e.egress(prA, direct); r.ret != tcOK {
				t.Fatalf("direct datagram: verdict %d, want pass", r.ret)
			}
			if cs, rs := e.svcPairs(); len(cs) != 1 || len(rs) != 1 {
				t.Fatalf("a direct datagram reached the proxy with a tick long past: %d connections, %d reverse NATs", len(cs), len(rs))
			}
			// The oldest tick a live pair can have: the backend's datagram is a reply.
			e.setSvcTick(tc.backend, uint32(svcClock(t)>>svcTickShift)-svcUDPPairTicks)
			e.expectReply(reply, netip.AddrPortFrom(tc.fe, 53), svcDirectUDPPort)
			// An older loader's: the direct datagram ends the pair.
			e.setSvcTick(tc.backend, svcUnknownTick)
			if r := e.egress(prA, direct); r.ret != tcOK {
				t.Fatalf("direct datagram: verdict %d, want pass", r.ret)
			}
			if cs, rs := e.svcPairs(); len(cs) != 0 || len(rs) != 0 {
				t.Errorf("a direct datagram with an older loader's tick left %d connections, %d reverse NATs", len(cs), len(rs))
			}
			e.program()
		})
	}
}

// TestProgRunServiceBackendOpens: a backend that opens a TCP connection to the pod from its
// Service port (its SYN from a backend address and port, to A's address: BGP peers, 179 to 179)
// is a flow like any other: the pod's ingress
// program learns it instead of handing it to the proxy (no proxied pair starts with the
// backend's SYN), so the pod's SYN-ACK, leaving by the kernel's route through the primary, is
// pinned back to A. The connection's later segments from the backend still pass the proxy
// untouched.
func TestProgRunServiceBackendOpens(t *testing.T) {
	e := svcSetup(t)
	for _, tc := range svcCases {
		if tc.proto != service.TCP {
			continue
		}
		t.Run(prFamilyName(tc.fe.Is6()), func(t *testing.T) {
			e := e.in(t)
			e.program(svcEntry(tc.fe, 80, service.TCP, tc.backend))
			const podPort = 8443
			syn := svcFromBackend(tc.backend, podPort, service.TCP, packet.TCPSyn)
			before := len(e.flows())
			e.expectUntouched(syn)
			if n := len(e.flows()) - before; n != 1 {
				t.Fatalf("the backend's SYN: %d flows learned, want 1", n)
			}
			synAck := svcDirect(tc.backend, podPort, service.TCP, packet.TCPSyn|packet.TCPAck)
			if r := e.egress(prPrimary, synAck); r.ret != tcRedirect {
				t.Errorf("the pod's SYN-ACK leaving by the primary: verdict %d, want a redirect to A", r.ret)
			}
			e.expectUntouched(svcFromBackend(tc.backend, podPort, service.TCP, packet.TCPAck))
			if cs, rs := e.svcPairs(); len(cs) != 0 || len(rs) != 0 {
				t.Errorf("a connection the backend opened left %d connections, %d reverse NATs", len(cs), len(rs))
			}
			e.program()
		})
	}
}
