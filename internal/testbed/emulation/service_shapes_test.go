package emulation

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/lookup"
	"github.com/steernet/steer/pkg/service"
)

// peersPort is where peersServer listens, TCP and UDP.
const peersPort = 8084

// Host numbers of a shape's pods on each of its LANs.
const (
	shapeClientHost = 60
	shapeBackend0   = 61 // on node A
	shapeBackend1   = 62 // on node B
)

// peersServer answers every TCP connection and every UDP datagram on peersPort, on each of
// addrs, with "<its address> <the client's address>": which backend took a connection at which
// of its addresses, and as whom the client reached it.
func peersServer(t *testing.T, n ns.NetNS, addrs ...netip.Addr) {
	t.Helper()
	answerServer(t, n, peersPort, func(c net.Conn) string {
		return c.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String() + " " +
			c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String()
	})
	for _, a := range addrs {
		var pc net.PacketConn
		err := n.Do(func(ns.NetNS) (err error) {
			pc, err = net.ListenPacket("udp", netip.AddrPortFrom(a, peersPort).String())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 512)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				peer := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
				_, _ = pc.WriteTo([]byte(a.String()+" "+peer.String()), from)
			}
		}()
	}
}

// askPeers asks a peersServer behind addr over proto ("tcp", "udp") on a new socket what it
// answered at and whom it saw.
func askPeers(ctx context.Context, n ns.NetNS, proto string, addr netip.AddrPort) (at, peer string, err error) {
	var c net.Conn
	err = n.Do(func(ns.NetNS) (err error) {
		d := net.Dialer{Timeout: ProbeTimeout}
		c, err = d.DialContext(ctx, proto, addr.String())
		return err
	})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ProbeTimeout))
	if proto == "udp" {
		if _, err := c.Write([]byte("who\n")); err != nil {
			return "", "", err
		}
	}
	buf := make([]byte, 512)
	nr, err := c.Read(buf)
	if err != nil {
		return "", "", fmt.Errorf("%s %s: %w", proto, addr, err)
	}
	at, peer, _ = strings.Cut(string(buf[:nr]), " ")
	return at, peer, nil
}

// A shape of cluster, network and client that users run Services on secondary networks in.
type serviceShape struct {
	name string
	thin bool     // the plugin does ADD itself; steerd still runs the Services
	fams Families // the cluster network's
	// nets are the client's secondaries in annotation order (net1, net2, ...), each with a
	// Service on it and backends on both nodes.
	nets []LAN
	// defaultRoute moves the client's default routes to net1 (default-route in its selection).
	defaultRoute bool
	// plainNADs strips Steer's keys from the NADs of examples/: what users carry over from
	// Multus.
	plainNADs bool
}

// TestServiceShapes: the whole chain of Services on secondary networks (real apiserver, steerd
// with Services on both nodes, the EndpointSlice controller, the node agent, pods through the
// kubelet and the plugin, real traffic) in the shapes users run: thin mode, single-stack
// cluster networks (the ClusterIP of the missing family routed by Steer's fallback route
// through the secondary), the default route moved to the DMZ (the ClusterIP meets net1's
// egress program, not eth0's), a client on two secondaries with a Service on each, NADs without
// Steer's keys (on single-stack cluster networks too: the fallback route is then on-link, and
// the proxy answers the kernel's ARP or NDP question for the ClusterIP). In each, TCP and UDP to the IPv4 and IPv6 ClusterIPs are answered by backends on
// both nodes at their addresses on the Service's network, reached from the client's address on
// that network; the same Services without multus-service's label answer nothing.
func TestServiceShapes(t *testing.T) {
	for _, s := range []serviceShape{
		// The examples' dmz names its router (the gateway key): the fallback route goes through it.
		{name: "thin/ipv4-only", thin: true, fams: IPv4Only, nets: []LAN{DMZ}},
		{name: "thick/ipv6-only", fams: IPv6Only, nets: []LAN{DMZ}},
		{name: "thick/default-route-dmz", fams: DualStack, nets: []LAN{DMZ}, defaultRoute: true},
		{name: "thin/dmz+mgmt/plain-nads", thin: true, fams: DualStack, nets: []LAN{DMZ, Mgmt}, plainNADs: true},
		// The IPv6 ClusterIP of mgmt's Service meets net1's egress program (the fallback
		// route), which sends it out of net2.
		{name: "thick/ipv4-only/dmz+mgmt", fams: IPv4Only, nets: []LAN{DMZ, Mgmt}},
		// NADs without Steer's keys carry no gateway (static addresses): the fallback route of
		// the family the cluster network lacks is on-link, and the kernel resolves that
		// family's ClusterIP as a neighbour on the LAN; the proxy answers for its frontends.
		{name: "thin/ipv4-only/plain-nads", thin: true, fams: IPv4Only, nets: []LAN{DMZ}, plainNADs: true},
		{name: "thick/ipv6-only/dmz+mgmt/plain-nads", fams: IPv6Only, nets: []LAN{DMZ, Mgmt}, plainNADs: true},
	} {
		t.Run(s.name, func(t *testing.T) { testServiceShape(t, s) })
	}
}

func testServiceShape(t *testing.T, s serviceShape) {
	start := time.Now()
	e := newSteerdEnv(t, s.fams, SteerdOptions{Services: true, Thin: s.thin})
	ctx := context.Background()
	client := kubetest.Cluster(t).Client()
	if s.plainNADs {
		stripSteerKeys(t, e.ns, "dmz", "mgmt")
	}
	checkSteerdMode(t, e, s.thin, false)

	// Backends of each network's Service on both nodes.
	for _, lan := range s.nets {
		for node, host := range []int{shapeBackend0, shapeBackend1} {
			a4, a6 := lan.Addr(host)
			pod, err := e.runObject(t, node, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("web-%s-%d", lan.NetworkName, node), Labels: map[string]string{"app": "web-" + lan.NetworkName},
				Annotations: map[string]string{k8s.NetworksAnnotation: ipsAnnotation(lan.NetworkName, a4, a6)},
			}})
			if err != nil {
				t.Fatal(err)
			}
			peersServer(t, pod.NS, a4, a6)
			if err := setReady(ctx, client, pod); err != nil {
				t.Fatal(err)
			}
		}
	}
	var sel []map[string]any
	for i, lan := range s.nets {
		a4, a6 := lan.Addr(shapeClientHost)
		el := map[string]any{"name": lan.NetworkName, "ips": []string{a4.String() + "/24", a6.String() + "/64"}}
		if i == 0 && s.defaultRoute {
			el["default-route"] = []string{lan.Gateway4.String(), lan.Gw6.String()}
		}
		sel = append(sel, el)
	}
	cli := e.run(t, 0, "client", string(mustJSON(sel)))
	checkSteerdMode(t, e, s.thin, true)

	// The Services as kube-proxy would serve them: nothing here answers them.
	dual := corev1.IPFamilyPolicyRequireDualStack
	svcs := map[string]*corev1.Service{}
	for _, lan := range s.nets {
		svc, err := client.CoreV1().Services(e.ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + lan.NetworkName},
			Spec: corev1.ServiceSpec{
				Selector:       map[string]string{"app": "web-" + lan.NetworkName},
				IPFamilyPolicy: &dual,
				Ports: []corev1.ServicePort{
					{Name: "tcp", Port: svcWebPort, TargetPort: intstr.FromInt32(peersPort), Protocol: corev1.ProtocolTCP},
					{Name: "udp", Port: svcDNSPort, TargetPort: intstr.FromInt32(peersPort), Protocol: corev1.ProtocolUDP},
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Spec.ClusterIPs) != 2 {
			t.Fatalf("ClusterIPs %v, want one per family", svc.Spec.ClusterIPs)
		}
		svcs[lan.NetworkName] = svc
	}
	clusterIPs := func(lan LAN) []netip.Addr {
		var ips []netip.Addr
		for _, a := range svcs[lan.NetworkName].Spec.ClusterIPs {
			ips = append(ips, netip.MustParseAddr(a))
		}
		return ips
	}
	checkClusterIPRoutes(t, cli, s, clusterIPs(s.nets[0]))

	// Control: every probe, at once (each failure waits out the probe's timeout).
	var wg sync.WaitGroup
	for _, lan := range s.nets {
		for _, ip := range clusterIPs(lan) {
			for _, proto := range []string{"tcp", "udp"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if at, _, err := askPeers(ctx, cli.NS, proto, netip.AddrPortFrom(ip, svcPort(proto))); err == nil {
						t.Errorf("%s %s answered by %s without the multus-proxy label: the emulation does not show the problem", proto, ip, at)
					}
				}()
			}
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// multus-service's API: Steer takes the Services over.
	labelled := time.Now()
	for _, lan := range s.nets {
		svc := svcs[lan.NetworkName]
		svc.Labels = map[string]string{service.ProxyNameLabel: service.MultusProxyName}
		svc.Annotations = map[string]string{service.NetworkAnnotation: lan.NetworkName}
		if _, err := client.CoreV1().Services(e.ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, lan := range s.nets {
		for _, ip := range clusterIPs(lan) {
			for _, h := range []int{shapeBackend0, shapeBackend1} {
				a4, a6 := lan.Addr(h)
				if ip.Is6() {
					a4 = a6
				}
				for _, proto := range []service.Protocol{service.TCP, service.UDP} {
					fe := service.Frontend{Addr: netip.AddrPortFrom(ip, svcPort(strings.ToLower(proto.String()))), Proto: proto}
					waitProgrammed(t, e, cli.ContainerID, fe, a4, labelled)
				}
			}
		}
	}
	t.Logf("labelled Services' backends in the client's maps after %v", time.Since(labelled).Round(time.Millisecond))

	st, err := datapath.ReadPinned(e.layout, cli.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	for i, lan := range s.nets {
		ifname := fmt.Sprintf("net%d", i+1)
		for _, f := range st.Services {
			if f.Service == e.ns+"/web-"+lan.NetworkName && f.Interface != ifname {
				t.Errorf("frontend %s of %s leaves by %s, want %s", f.Frontend.Addr, f.Service, f.Interface, ifname)
			}
		}
		for _, ip := range clusterIPs(lan) {
			for _, proto := range []string{"tcp", "udp"} {
				expectPeers(t, cli.NS, lan, proto, ip)
			}
		}
	}
	t.Logf("%s: %v", s.name, time.Since(start).Round(time.Millisecond))
}

// svcPort is the port of the shapes' Services for proto.
func svcPort(proto string) uint16 {
	if proto == "udp" {
		return svcDNSPort
	}
	return svcWebPort
}

// expectPeers checks that new connections (TCP) or flows (UDP) to the ClusterIP ip are answered by
// both of lan's backends at their addresses on lan, each seeing the client's address on lan.
func expectPeers(t *testing.T, n ns.NetNS, lan LAN, proto string, ip netip.Addr) {
	t.Helper()
	pick := func(a4, a6 netip.Addr) string {
		if ip.Is6() {
			return a6.String()
		}
		return a4.String()
	}
	want := []string{pick(lan.Addr(shapeBackend0)), pick(lan.Addr(shapeBackend1))}
	client := pick(lan.Addr(shapeClientHost))
	seen := map[string]int{}
	for range 16 {
		at, peer, err := askPeers(context.Background(), n, proto, netip.AddrPortFrom(ip, svcPort(proto)))
		if err != nil {
			t.Errorf("%s %s: %v", proto, ip, err)
			return
		}
		if peer != client {
			t.Errorf("%s %s: %s saw the client as %s, want its %s address %s", proto, ip, at, peer, lan.NetworkName, client)
		}
		seen[at]++
	}
	if len(seen) != 2 || seen[want[0]] == 0 || seen[want[1]] == 0 {
		t.Errorf("16 %s flows to %s reached %v, want the %s addresses %v", proto, ip, seen, lan.NetworkName, want)
	}
}

// waitProgrammed waits until the pod's frontend fe proxies to a backend at addr.
func waitProgrammed(t *testing.T, e *thickEnv, id string, fe service.Frontend, addr netip.Addr, since time.Time) {
	t.Helper()
	for {
		has, err := programmedHas(e.layout, id, fe, addr)
		if err != nil {
			t.Fatal(err)
		}
		if has {
			return
		}
		if time.Since(since) > 15*time.Second {
			t.Fatalf("frontend %s/%s has no backend %s 15 s after the Services were labelled", fe.Addr, fe.Proto, addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkClusterIPRoutes checks by which interface the client's kernel routes the ClusterIPs of
// its first network's Service: the one the shape says, whose egress program then meets them.
func checkClusterIPRoutes(t *testing.T, cli *Pod, s serviceShape, ips []netip.Addr) {
	t.Helper()
	for _, ip := range ips {
		want := "eth0"
		if s.defaultRoute || ip.Is6() && s.fams == IPv4Only || ip.Is4() && s.fams == IPv6Only {
			want = "net1"
		}
		out, err := cli.Exec(context.Background(), "ip", "route", "get", ip.String())
		if err != nil || !slices.Contains(strings.Fields(out), want) {
			t.Fatalf("the client's route to %s: %q %v, want one through %s", ip, out, err, want)
		}
		t.Logf("the client's route to %s: %s", ip, strings.TrimSpace(out))
	}
}

// checkSteerdMode checks that the nodes run the plugin as steerd's config says: in thin mode
// the config steerd wrote names the plugin and no socket, and the plugin serves ADD itself
// (steerd serves none) with its pod, NADs and network-status through steerd's lookups; in thick
// mode it names the shim, and steerd served them (once pods ran: afterADD).
func checkSteerdMode(t *testing.T, e *thickEnv, thin, afterADD bool) {
	t.Helper()
	for i, h := range e.hosts {
		b, err := os.ReadFile(h.SteerConfig())
		if err != nil {
			t.Fatal(err)
		}
		var conf struct {
			Plugins []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(b, &conf); err != nil || len(conf.Plugins) == 0 {
			t.Fatalf("node %d's config %s: %v", i, b, err)
		}
		want := api.ShimBinary
		if thin {
			want = api.PluginBinary
		}
		if _, ok := conf.Plugins[0]["socketPath"]; ok == thin || conf.Plugins[0]["type"] != want {
			t.Errorf("node %d's config (thin %t) written by steerd: %s", i, thin, b)
		}
		if !afterADD {
			continue
		}
		page, err := e.steerd[i].MetricsPage(e.topo.Nodes[i])
		if err != nil {
			t.Fatal(err)
		}
		served := strings.Contains(page, `steer_cni_request_duration_seconds_count{result="ok",verb="ADD"}`)
		if served == thin {
			t.Errorf("node %d: steerd served ADD %t, thin mode %t", i, served, thin)
		}
		for _, kind := range []string{lookup.KindPod, lookup.KindNAD, lookup.KindStatus} {
			if answered := lookups(page, kind, "ok") > 0; answered != thin {
				t.Errorf("node %d: steerd answered the plugin's %s lookups %t, thin mode %t", i, kind, answered, thin)
			}
		}
	}
}

// stripSteerKeys replaces the namespace's NADs names by the same configs without Steer's keys.
func stripSteerKeys(t *testing.T, namespace string, names ...string) {
	t.Helper()
	ctx := context.Background()
	nads, err := k8s.NewNADClientForConfig(kubetest.Cluster(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		nad, err := nads.Get(ctx, namespace, name)
		if err != nil {
			t.Fatal(err)
		}
		var conf map[string]any
		if err := json.Unmarshal([]byte(nad.Spec.Config), &conf); err != nil {
			t.Fatal(err)
		}
		delete(conf, "steer")
		if err := nads.Delete(ctx, namespace, name); err != nil {
			t.Fatal(err)
		}
		plain := &k8s.NetworkAttachmentDefinition{TypeMeta: nad.TypeMeta,
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec:       k8s.NetworkAttachmentDefinitionSpec{Config: string(mustJSON(conf))}}
		if _, err := nads.Create(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
}
