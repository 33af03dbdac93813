package emulation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/service"
)

// ClusterIPs of the Services on the DMZ, in the benchmarking and documentation ranges the
// emulation uses nowhere else.
var (
	svcWeb4, svcWeb6     = netip.MustParseAddr("198.18.96.10"), netip.MustParseAddr("2001:db8:96::10")
	svcEmpty4, svcEmpty6 = netip.MustParseAddr("198.18.96.11"), netip.MustParseAddr("2001:db8:96::11")
	svcRemote4           = netip.MustParseAddr("198.18.96.12")
)

const (
	svcWebPort  = 80
	svcDNSPort  = 53
	svcWhoPort  = 81   // answered by whoServer: which backend took the connection
	whoPort     = 8082 // whoServer's
	svcIfName   = "net1"
	svcDMZName  = "default/web-dmz"
	streamChunk = 1024
)

// whoServer answers every TCP connection on whoPort with name, then closes it.
func whoServer(t *testing.T, n ns.NetNS, name string) {
	answerServer(t, n, whoPort, func(net.Conn) string { return name })
}

// answerServer answers every TCP connection on port with what answer says of it, then closes it.
func answerServer(t *testing.T, n ns.NetNS, port int, answer func(net.Conn) string) {
	t.Helper()
	var l net.Listener
	err := n.Do(func(ns.NetNS) (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(answer(c)))
			c.Close()
		}
	}()
}

// who asks the Service on svcWhoPort which backend takes a new connection.
func who(ctx context.Context, n ns.NetNS, fe netip.Addr) (string, error) {
	var c net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		d := net.Dialer{Timeout: ProbeTimeout}
		c, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(fe, svcWhoPort).String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ProbeTimeout))
	b, err := io.ReadAll(c)
	return string(b), err
}

// svcEntries are the client pod's entries for backends (DMZ host numbers, with their pod
// names for whoServer).
func svcEntries(backends ...int) []service.Entry {
	entry := func(fe netip.Addr, port uint16, proto service.Protocol, target uint16, hosts []int) service.Entry {
		e := service.Entry{
			Frontend: service.Frontend{Addr: netip.AddrPortFrom(fe, port), Proto: proto},
			Service:  svcDMZName, IfName: svcIfName,
		}
		for _, h := range hosts {
			a4, a6 := DMZ.Addr(h)
			a := a4
			if fe.Is6() {
				a = a6
			}
			e.Backends = append(e.Backends, netip.AddrPortFrom(a, target))
		}
		return e
	}
	var out []service.Entry
	for _, fe := range []netip.Addr{svcWeb4, svcWeb6} {
		out = append(out, entry(fe, svcWebPort, service.TCP, EchoTCPPort, backends),
			entry(fe, svcDNSPort, service.UDP, EchoUDPPort, backends),
			entry(fe, svcWhoPort, service.TCP, whoPort, backends))
	}
	for _, fe := range []netip.Addr{svcEmpty4, svcEmpty6} {
		out = append(out, entry(fe, svcWebPort, service.TCP, EchoTCPPort, nil), entry(fe, svcDNSPort, service.UDP, EchoUDPPort, nil))
	}
	// A backend behind the DMZ's router: the remote client's echo servers.
	remote := entry(svcRemote4, svcWebPort, service.TCP, EchoTCPPort, nil)
	remote.Backends = []netip.AddrPort{netip.AddrPortFrom(Client4, EchoTCPPort)}
	return append(out, remote)
}

// expectRefused checks that a probe was refused at once, not left to time out.
func expectRefused(t *testing.T, what string, err error, took time.Duration) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: answered, want refused", what)
	case !errors.Is(err, syscall.ECONNREFUSED):
		t.Errorf("%s: %v, want connection refused", what, err)
	case took > ProbeTimeout/2:
		t.Errorf("%s: refused after %v, want at once", what, took)
	}
}

// TestServiceOnDMZ: a client pod on the DMZ reaches a Service's ClusterIP, proxied by its own
// programs to backends on both nodes at their DMZ addresses (TCP and UDP, IPv4 and IPv6) and to
// one behind the DMZ's router; a frontend without backends refuses at once; a pod without entries
// is not affected; removing a backend leaves a long TCP stream to another one running. Before
// the entries are programmed, every one of these fails.
func TestServiceOnDMZ(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	ctx := context.Background()
	const hostA, hostB, hostClient, hostPlain = 21, 22, 20, 23
	backends := map[int]*Pod{}
	for i, h := range []int{hostA, hostB} {
		name := fmt.Sprintf("web%d", i)
		pod := addPod(t, topo, layout, i, name, true, []Network{eth0(t, i), secondary(svcIfName, DMZ, h)})
		startEcho(t, pod)
		whoServer(t, pod.NS, name)
		backends[h] = pod
	}
	echo, err := StartEcho(topo.Client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(echo.Close)
	client := addPod(t, topo, layout, 0, "client", true, []Network{eth0(t, 0), secondary(svcIfName, DMZ, hostClient)})
	plain := addPod(t, topo, layout, 1, "plain", true, []Network{eth0(t, 1), secondary(svcIfName, DMZ, hostPlain)})
	startEcho(t, plain)
	programmer := datapath.Services{Layout: layout}

	web := []netip.AddrPort{
		netip.AddrPortFrom(svcWeb4, svcWebPort), netip.AddrPortFrom(svcWeb6, svcWebPort),
	}
	dns := []netip.AddrPort{
		netip.AddrPortFrom(svcWeb4, svcDNSPort), netip.AddrPortFrom(svcWeb6, svcDNSPort),
	}
	remote := netip.AddrPortFrom(svcRemote4, svcWebPort)

	t.Run("without-service-support", func(t *testing.T) {
		for _, fe := range append(web, remote) {
			if err := ProbeTCP(ctx, client.NS, fe); err == nil {
				t.Errorf("TCP %s answered without Service support: the emulation does not show the problem", fe)
			}
		}
		for _, fe := range dns {
			if err := ProbeUDP(ctx, client.NS, fe); err == nil {
				t.Errorf("UDP %s answered without Service support", fe)
			}
		}
		start := time.Now()
		err := ProbeTCP(ctx, client.NS, netip.AddrPortFrom(svcEmpty4, svcWebPort))
		if err == nil || errors.Is(err, syscall.ECONNREFUSED) && time.Since(start) < ProbeTimeout/2 {
			t.Errorf("a ClusterIP without Service support refused at once (%v): the no-backend case shows nothing", err)
		}
	})

	if err := programmer.Program(client.ContainerID, svcEntries(hostA, hostB)); err != nil {
		t.Fatal(err)
	}
	// The backend behind the router is reached through the router as the next hop the program
	// names, which holds only once the pod's neighbour entry of the router is resolved (see
	// datapath's nextHop): as it is in a pod that has talked to its router before.
	if err := Ping(ctx, client.NS.Name(), RouterDMZ4); err != nil {
		t.Fatal(err)
	}

	t.Run("backends", func(t *testing.T) {
		for _, fe := range append(web, remote) {
			if err := ProbeTCP(ctx, client.NS, fe); err != nil {
				t.Errorf("TCP %s: %v", fe, err)
			}
		}
		for _, fe := range dns {
			if err := ProbeUDP(ctx, client.NS, fe); err != nil {
				t.Errorf("UDP %s: %v", fe, err)
			}
		}
		// New connections reach both backends, on both nodes.
		seen := map[string]int{}
		for range 24 {
			name, err := who(ctx, client.NS, svcWeb4)
			if err != nil {
				t.Fatalf("who: %v", err)
			}
			seen[name]++
		}
		if len(seen) != 2 {
			t.Errorf("24 connections reached %v, want both backends", seen)
		}
	})

	t.Run("direct-after-proxied", func(t *testing.T) {
		// A connection through the ClusterIP, then one straight to the backend that took it,
		// from the client's DMZ address and the same port: the proxy's entries of the first
		// must not take the second's replies.
		var c net.Conn
		err := client.NS.Do(func(ns.NetNS) (err error) {
			d := net.Dialer{Timeout: ProbeTimeout}
			c, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(svcWeb4, svcWhoPort).String())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(ProbeTimeout))
		name, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.TCPAddr).Port
		backend := hostA
		if string(name) == "web1" {
			backend = hostB
		}
		local, _ := DMZ.Addr(hostClient)
		to, _ := DMZ.Addr(backend)
		err = client.NS.Do(func(ns.NetNS) (err error) {
			d := net.Dialer{Timeout: ProbeTimeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, uint16(port)))}
			c, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(to, whoPort).String())
			return err
		})
		if err != nil {
			t.Fatalf("straight to %s from port %d, which a connection through the ClusterIP used: %v", name, port, err)
		}
		_ = c.SetDeadline(time.Now().Add(ProbeTimeout))
		direct, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(direct) != string(name) {
			t.Errorf("straight to %s: answered %q, %v", name, direct, err)
		}
	})

	t.Run("proxied-after-direct", func(t *testing.T) {
		// Connections straight to a backend's echo port, closed by the client first (their
		// ports wait in TIME_WAIT on the client's DMZ address), then connections through the
		// ClusterIP to the same backend and port: each gets through, whatever port it has.
		if err := programmer.Program(client.ContainerID, svcEntries(hostA)); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := programmer.Program(client.ContainerID, svcEntries(hostA, hostB)); err != nil {
				t.Fatal(err)
			}
		}()
		a4, _ := DMZ.Addr(hostA)
		for range 200 {
			if err := ProbeTCP(ctx, client.NS, netip.AddrPortFrom(a4, EchoTCPPort)); err != nil {
				t.Fatalf("straight to the backend: %v", err)
			}
		}
		for i := range 200 {
			if err := ProbeTCP(ctx, client.NS, netip.AddrPortFrom(svcWeb4, svcWebPort)); err != nil {
				t.Fatalf("through the ClusterIP after %d: %v", i, err)
			}
		}
	})

	t.Run("no-backend", func(t *testing.T) {
		for _, fe := range []netip.Addr{svcEmpty4, svcEmpty6} {
			start := time.Now()
			err := ProbeTCP(ctx, client.NS, netip.AddrPortFrom(fe, svcWebPort))
			expectRefused(t, "TCP "+fe.String(), err, time.Since(start))
			start = time.Now()
			err = ProbeUDP(ctx, client.NS, netip.AddrPortFrom(fe, svcDNSPort))
			expectRefused(t, "UDP "+fe.String(), err, time.Since(start))
		}
	})

	t.Run("pod-without-entries", func(t *testing.T) {
		for _, fe := range web {
			if err := ProbeTCP(ctx, plain.NS, fe); err == nil {
				t.Errorf("a pod without entries reached %s", fe)
			}
		}
		// Its own steering is untouched: the remote client reaches it on the DMZ.
		a4, a6 := DMZ.Addr(hostPlain)
		for _, a := range []netip.Addr{a4, a6} {
			if err := ProbeTCP(ctx, topo.Client, netip.AddrPortFrom(a, EchoTCPPort)); err != nil {
				t.Errorf("client to the pod without entries at %s: %v", a, err)
			}
		}
	})

	t.Run("backend-removal", func(t *testing.T) {
		// A long stream through the Service to backend A alone...
		if err := programmer.Program(client.ContainerID, svcEntries(hostA)); err != nil {
			t.Fatal(err)
		}
		stream, err := openStream(ctx, client.NS, netip.AddrPortFrom(svcWeb4, svcWebPort))
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		streamErr := make(chan error, 1)
		stop := make(chan struct{})
		go func() { streamErr <- stream.run(stop) }()

		// ... while B joins and leaves again.
		if err := programmer.Program(client.ContainerID, svcEntries(hostA, hostB)); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for range 16 {
			name, err := who(ctx, client.NS, svcWeb4)
			if err != nil {
				t.Fatalf("who: %v", err)
			}
			seen[name]++
		}
		if len(seen) != 2 {
			t.Errorf("with both backends, 16 connections reached %v", seen)
		}
		if err := programmer.Program(client.ContainerID, svcEntries(hostA)); err != nil {
			t.Fatal(err)
		}
		for range 16 {
			name, err := who(ctx, client.NS, svcWeb4)
			if err != nil {
				t.Fatalf("who: %v", err)
			}
			if name != "web0" {
				t.Errorf("a new connection reached %s, removed", name)
			}
		}
		time.Sleep(2 * time.Second) // the stream runs on after the removal
		close(stop)
		if err := <-streamErr; err != nil {
			t.Errorf("the stream to the backend that stayed: %v", err)
		}
		t.Logf("stream: %d bytes echoed", stream.echoed)
	})

	st, err := datapath.ReadPinned(layout, client.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	var conns uint64
	for _, f := range st.Services {
		if f.Service != svcDMZName {
			t.Errorf("frontend %s of %q", f.Frontend.Addr, f.Service)
		}
		conns += f.Counters.Connections
	}
	if conns == 0 {
		t.Error("no connection counted")
	}
	checkNoServiceState(t, layout, plain.ContainerID)
}

// checkNoServiceState checks that a pod never programmed has no frontend.
func checkNoServiceState(t *testing.T, layout bpffs.Layout, id string) {
	t.Helper()
	st, err := datapath.ReadPinned(layout, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 0 {
		t.Errorf("pod %s has frontends %v", id, st.Services)
	}
}

// echoStream writes chunks to an echo server and reads each back, until stopped.
type echoStream struct {
	net.Conn
	echoed int
}

func openStream(ctx context.Context, n ns.NetNS, addr netip.AddrPort) (*echoStream, error) {
	var c net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		d := net.Dialer{Timeout: ProbeTimeout}
		c, err = d.DialContext(ctx, "tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &echoStream{Conn: c}, nil
}

func (s *echoStream) run(stop <-chan struct{}) error {
	out := []byte(strings.Repeat("steer-stream ", streamChunk/13+1))[:streamChunk]
	in := make([]byte, streamChunk)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		_ = s.SetDeadline(time.Now().Add(ProbeTimeout))
		if _, err := s.Write(out); err != nil {
			return fmt.Errorf("after %d bytes: write: %w", s.echoed, err)
		}
		if _, err := io.ReadFull(s, in); err != nil {
			return fmt.Errorf("after %d bytes: read: %w", s.echoed, err)
		}
		s.echoed += len(in)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServiceIPv4OnlyPrimary: a client pod whose cluster network is IPv4-only (most flannel and
// Calico clusters) on a dual-stack DMZ. The IPv6 ClusterIP is routed by the pod's IPv6 default
// route, which the cluster network does not give: Steer's fallback route through the DMZ's
// router (the family the primary lacks) is that route, so the packet leaves by net1, where the
// pod's egress program proxies it to a backend like any other. IPv4 and IPv6, TCP and UDP;
// before the entries are programmed, none of it answers.
func TestServiceIPv4OnlyPrimary(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	ctx := context.Background()
	const hostA, hostClient = 21, 20
	web := addPod(t, topo, layout, 1, "web0", true, []Network{eth0(t, 1), secondary(svcIfName, DMZ, hostA)})
	startEcho(t, web)
	client := addPod(t, topo, layout, 0, "client", true, []Network{
		{IfName: "eth0", Conf: ClusterNetworkOf(0, t.TempDir(), IPv4Only), Primary: true},
		secondary(svcIfName, DMZ, hostClient),
	})
	routes, err := client.Exec(ctx, "ip", "-6", "route", "get", svcWeb6.String())
	if err != nil || !strings.Contains(routes, "dev "+svcIfName) {
		t.Fatalf("the client's route to the IPv6 ClusterIP: %q %v, want Steer's fallback route through %s", routes, err, svcIfName)
	}
	t.Logf("the client's route to the IPv6 ClusterIP: %s", strings.TrimSpace(routes))
	probe := func(want bool) {
		t.Helper()
		for _, fe := range []netip.Addr{svcWeb4, svcWeb6} {
			if err := ProbeTCP(ctx, client.NS, netip.AddrPortFrom(fe, svcWebPort)); (err == nil) != want {
				t.Errorf("TCP %s: %v, want answered=%v", fe, err, want)
			}
			if err := ProbeUDP(ctx, client.NS, netip.AddrPortFrom(fe, svcDNSPort)); (err == nil) != want {
				t.Errorf("UDP %s: %v, want answered=%v", fe, err, want)
			}
		}
	}
	probe(false)
	if err := (datapath.Services{Layout: layout}).Program(client.ContainerID, svcEntries(hostA)); err != nil {
		t.Fatal(err)
	}
	probe(true)
}
