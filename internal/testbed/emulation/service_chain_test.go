package emulation

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/service"
)

// reachedPort is where reachedServer listens.
const reachedPort = 8083

// reachedServer answers every TCP connection with the address it was reached at, then closes
// it: through a Service, which backend took the connection and on which of its addresses.
func reachedServer(t *testing.T, n ns.NetNS) {
	answerServer(t, n, reachedPort, func(c net.Conn) string {
		return c.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String()
	})
}

// setReady sets the pod's Ready condition through the status subresource, as its kubelet
// would once its containers pass their probes.
func setReady(ctx context.Context, client kubernetes.Interface, p *Pod) error {
	obj, err := client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.Status.Phase = corev1.PodRunning
	obj.Status.Conditions = append(obj.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now(),
	})
	_, err = client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	return err
}

// streamHolder is the backend whose echo server holds an established connection.
func streamHolder(ctx context.Context, backends map[netip.Addr]*Pod) (netip.Addr, error) {
	var held []netip.Addr
	for a, p := range backends {
		out, err := p.Exec(ctx, "ss", "-Htn", "state", "established", "sport", "=", fmt.Sprintf(":%d", EchoTCPPort))
		if err != nil {
			return netip.Addr{}, err
		}
		if strings.TrimSpace(out) != "" {
			held = append(held, a)
		}
	}
	if len(held) != 1 {
		return netip.Addr{}, fmt.Errorf("the stream is held by %v, want one backend", held)
	}
	return held[0], nil
}

// sliceHas tells whether a ready endpoint of the Service's EndpointSlices has addr.
func sliceHas(ctx context.Context, client kubernetes.Interface, namespace, svc string, addr netip.Addr) (bool, error) {
	list, err := client.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: service.ServiceNameLabel + "=" + svc})
	if err != nil {
		return false, err
	}
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if slices.Contains(ep.Addresses, addr.String()) {
				return true, nil
			}
		}
	}
	return false, nil
}

// programmedHas tells whether the pod's frontend fe proxies to a backend at addr.
func programmedHas(layout bpffs.Layout, id string, fe service.Frontend, addr netip.Addr) (bool, error) {
	st, err := datapath.ReadPinned(layout, id)
	if err != nil {
		return false, err
	}
	for _, f := range st.Services {
		if f.Frontend == fe {
			return slices.ContainsFunc(f.Backends, func(b netip.AddrPort) bool { return b.Addr() == addr }), nil
		}
	}
	return false, nil
}

// TestServiceThroughSteerd: the whole chain of a Service on the DMZ, with multus-service's API
// and nothing of it running. steerd on both nodes (thick mode, Services on) elects the
// EndpointSlice controller, which writes the backends' DMZ addresses from the network-status the
// plugin wrote; each node's agent programs its pods; a client pod on the DMZ reaches the
// ClusterIP (TCP, UDP, IPv4, IPv6) and backends on both nodes answer at their DMZ addresses. A
// backend deleted while a stream runs to the other: the stream runs on, new connections leave
// it within about a second. A pod not on the DMZ is not affected, and the client still reaches
// a primary network's Service through kube-proxy's path (a DNAT on its node). The same Service without the
// multus-proxy label and service-network annotation answers nothing: the emulation has no
// other Service proxy.
func TestServiceThroughSteerd(t *testing.T) {
	e := newThickEnvWith(t, DualStack, true)
	ctx := context.Background()
	client := kubetest.Cluster(t).Client()
	const svcName = "web-dmz"

	backends := map[netip.Addr]*Pod{} // by DMZ IPv4 address
	for node, host := range []int{41, 42} {
		a4, a6 := DMZ.Addr(host)
		pod, err := e.runObject(t, node, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("web%d", node), Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{k8s.NetworksAnnotation: ipsAnnotation("dmz", a4, a6)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		startEcho(t, pod)
		reachedServer(t, pod.NS)
		if err := setReady(ctx, client, pod); err != nil {
			t.Fatal(err)
		}
		backends[a4] = pod
	}
	c4, c6 := DMZ.Addr(40)
	cli := e.run(t, 0, "client", ipsAnnotation("dmz", c4, c6))
	m4, m6 := Mgmt.Addr(40)
	plain := e.run(t, 0, "plain", ipsAnnotation("mgmt", m4, m6))
	startEcho(t, plain)

	// The Service as kube-proxy would serve it: nothing here answers it.
	dual := corev1.IPFamilyPolicyRequireDualStack
	svc, err := client.CoreV1().Services(e.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svcName},
		Spec: corev1.ServiceSpec{
			Selector:       map[string]string{"app": "web"},
			IPFamilyPolicy: &dual,
			Ports: []corev1.ServicePort{
				{Name: "echo", Port: svcWebPort, TargetPort: intstr.FromInt32(EchoTCPPort), Protocol: corev1.ProtocolTCP},
				{Name: "dns", Port: svcDNSPort, TargetPort: intstr.FromInt32(EchoUDPPort), Protocol: corev1.ProtocolUDP},
				{Name: "reached", Port: svcWhoPort, TargetPort: intstr.FromInt32(reachedPort), Protocol: corev1.ProtocolTCP},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []netip.Addr
	for _, s := range svc.Spec.ClusterIPs {
		ips = append(ips, netip.MustParseAddr(s))
	}
	if len(ips) != 2 || !ips[0].Is4() || !ips[1].Is6() {
		t.Fatalf("ClusterIPs %v, want one IPv4 and one IPv6", ips)
	}
	ip4 := ips[0]
	probeAll := func(from ns.NetNS) []error {
		var errs []error
		for _, ip := range ips {
			errs = append(errs, ProbeTCP(ctx, from, netip.AddrPortFrom(ip, svcWebPort)),
				ProbeUDP(ctx, from, netip.AddrPortFrom(ip, svcDNSPort)))
		}
		return errs
	}
	for _, err := range probeAll(cli.NS) {
		if err == nil {
			t.Fatal("the ClusterIP answered without the multus-proxy label: the emulation does not show the problem")
		}
	}

	// multus-service's API: Steer takes the Service over.
	svc.Labels = map[string]string{service.ProxyNameLabel: service.MultusProxyName}
	svc.Annotations = map[string]string{service.NetworkAnnotation: "dmz"}
	labelled := time.Now()
	if _, err := client.CoreV1().Services(e.ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	fe := service.Frontend{Addr: netip.AddrPortFrom(ip4, svcWhoPort), Proto: service.TCP}
	for a := range backends {
		for {
			has, err := programmedHas(e.layout, cli.ContainerID, fe, a)
			if err != nil {
				t.Fatal(err)
			}
			if has {
				break
			}
			if time.Since(labelled) > 15*time.Second {
				t.Fatalf("the client has no entry of backend %s 15 s after the Service was labelled", a)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("labelled Service to both backends in the client's maps: %v", time.Since(labelled).Round(time.Millisecond))

	t.Run("backends", func(t *testing.T) {
		for i, err := range probeAll(cli.NS) {
			if err != nil {
				t.Errorf("probe %d: %v", i, err)
			}
		}
		// New connections reach both backends, on both nodes, at their DMZ addresses.
		for _, ip := range ips {
			seen := map[string]int{}
			for range 24 {
				got, err := who(ctx, cli.NS, ip)
				if err != nil {
					t.Fatalf("%s: %v", ip, err)
				}
				seen[got]++
			}
			var want []string
			for _, h := range []int{41, 42} {
				a4, a6 := DMZ.Addr(h)
				if ip.Is6() {
					a4 = a6
				}
				want = append(want, a4.String())
			}
			if len(seen) != 2 || seen[want[0]] == 0 || seen[want[1]] == 0 {
				t.Errorf("24 connections to %s reached %v, want the DMZ addresses %v", ip, seen, want)
			}
		}
	})

	t.Run("pod-not-on-dmz", func(t *testing.T) {
		for i, err := range probeAll(plain.NS) {
			if err == nil {
				t.Errorf("probe %d: a pod not on the DMZ reached the Service", i)
			}
		}
		checkNoServiceState(t, e.layout, plain.ContainerID)
		expectProbes(t, e.topo, "client", true, m4, m6)
	})

	t.Run("primary-network-service", func(t *testing.T) {
		// kube-proxy's path, as a DNAT on node A from a ClusterIP of the primary network to the
		// plain pod's eth0 address: the client's programs, which proxy the DMZ Service, leave it
		// to the primary network.
		out, err := plain.Exec(ctx, "ip", "-4", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if err != nil {
			t.Fatal(err)
		}
		target := netip.MustParsePrefix(strings.Fields(out)[3]).Addr()
		primaryIP := netip.AddrPortFrom(netip.MustParseAddr("198.18.99.10"), 80)
		node := e.topo.Nodes[0].Name()
		rule := []string{"-t", "nat", "PREROUTING", "-d", primaryIP.Addr().String(), "-p", "tcp",
			"--dport", "80", "-j", "DNAT", "--to-destination", netip.AddrPortFrom(target, EchoTCPPort).String()}
		iptables := func(op string) error {
			_, err := execIn(ctx, node, append([]string{"iptables", rule[0], rule[1], op}, rule[2:]...)...)
			return err
		}
		if err := iptables("-A"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = iptables("-D") })
		if err := ProbeTCP(ctx, cli.NS, primaryIP); err != nil {
			t.Errorf("the primary network's Service from a pod that proxies the DMZ's: %v", err)
		}
	})

	t.Run("scale-down", func(t *testing.T) {
		stream, err := openStream(ctx, cli.NS, netip.AddrPortFrom(ip4, svcWebPort))
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		streamErr := make(chan error, 1)
		stop := make(chan struct{})
		go func() { streamErr <- stream.run(stop) }()
		time.Sleep(100 * time.Millisecond)
		kept, err := streamHolder(ctx, backends)
		if err != nil {
			t.Fatal(err)
		}
		var gone netip.Addr
		for a := range backends {
			if a != kept {
				gone = a
			}
		}
		// The pod object goes; its sandbox still answers until the test ends, so a new
		// connection sent to it would succeed and show.
		deleted := time.Now()
		zero := int64(0)
		if err := client.CoreV1().Pods(e.ns).Delete(ctx, backends[gone].Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		var sliceAt, mapsAt time.Time
		for sliceAt.IsZero() || mapsAt.IsZero() {
			if time.Since(deleted) > 10*time.Second {
				t.Fatalf("10 s after the delete: slice updated %t, client programmed %t", !sliceAt.IsZero(), !mapsAt.IsZero())
			}
			if sliceAt.IsZero() {
				if has, err := sliceHas(ctx, client, e.ns, svcName, gone); err != nil {
					t.Fatal(err)
				} else if !has {
					sliceAt = time.Now()
				}
			}
			if mapsAt.IsZero() {
				if has, err := programmedHas(e.layout, cli.ContainerID, fe, gone); err != nil {
					t.Fatal(err)
				} else if !has {
					mapsAt = time.Now()
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("backend %s deleted: EndpointSlice updated after %v, client's maps after %v (%v after the slice)",
			gone, sliceAt.Sub(deleted).Round(time.Millisecond), mapsAt.Sub(deleted).Round(time.Millisecond), mapsAt.Sub(sliceAt).Round(time.Millisecond))
		if d := mapsAt.Sub(deleted); d > 2*time.Second {
			t.Errorf("new connections reached the removed backend for %v", d)
		}
		for range 16 {
			got, err := who(ctx, cli.NS, ip4)
			if err != nil {
				t.Fatalf("who: %v", err)
			}
			if got != kept.String() {
				t.Errorf("a new connection reached %s, removed", got)
			}
		}
		time.Sleep(time.Second) // the stream runs on after the removal
		close(stop)
		if err := <-streamErr; err != nil {
			t.Errorf("the stream to the backend that stayed: %v", err)
		}
		t.Logf("stream: %d bytes echoed", stream.echoed)
	})

	page, err := e.steerd[0].MetricsPage(e.topo.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("steer_service_connections_total{container=%q,service=%q} ", cli.ContainerID, e.ns+"/"+svcName)
	if conns := grep(page, want); conns == "" || strings.HasSuffix(conns, " 0") {
		t.Errorf("the client's connections to the Service in node A's metrics: %q", conns)
	}
	var leaders int
	for i, d := range e.steerd {
		page, err := d.MetricsPage(e.topo.Nodes[i])
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(page, "\nsteer_endpointslice_controller_leader 1\n") {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d steerds lead the EndpointSlice controller, want 1", leaders)
	}
}
