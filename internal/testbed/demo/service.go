package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/pkg/service"
)

const (
	svcName     = "web-dmz"
	svcHTTPPort = 80
	svcDNSPort  = 53
	whoPort     = 8082 // each backend answers a connection with who it is
	connections = 8    // new connections the client makes once served
	// programmedWithin bounds how long the Service takes to be served once steerd runs: the
	// controller's election, its EndpointSlices, the node agent programming the client pod.
	programmedWithin = 20 * time.Second
)

// dmzService is the Service of multus-service's API: kube-proxy leaves it to multus-proxy, and
// its backends are the pods' DMZ addresses.
func dmzService(namespace string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: svcName,
			Labels:      map[string]string{service.ProxyNameLabel: service.MultusProxyName},
			Annotations: map[string]string{service.NetworkAnnotation: "dmz"},
		},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: svcHTTPPort, TargetPort: intstr.FromInt32(whoPort), Protocol: corev1.ProtocolTCP},
				{Name: "dns", Port: svcDNSPort, TargetPort: intstr.FromInt32(emulation.EchoUDPPort), Protocol: corev1.ProtocolUDP},
			},
		},
	}
}

func (e *env) seed001Service(ctx context.Context) (Verdict, error) {
	e.p.heading("Seed 001 — a Service on the DMZ (multus-service's label and annotation): a client pod on the DMZ calls its ClusterIP")
	services := e.w.cluster().Client().CoreV1().Services(e.ns)
	svc, err := services.Create(ctx, dmzService(e.ns), createOpts)
	if err != nil {
		return Verdict{}, err
	}
	defer func() { _ = services.Delete(context.Background(), svcName, metav1.DeleteOptions{}) }()
	e.p.cmd(ctx, e.kubectl(), "--kubeconfig", e.w.cluster().Kubeconfig(), "-n", e.ns, "get", "service", svcName,
		"-o", `custom-columns=NAME:.metadata.name,CLUSTER-IP:.spec.clusterIP,PORTS:.spec.ports[*].port,PROXY:.metadata.labels.service\.kubernetes\.io/service-proxy-name,NETWORK:.metadata.annotations.k8s\.v1\.cni\.cncf\.io/service-network`)
	clusterIP, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		return Verdict{}, fmt.Errorf("ClusterIP of %s: %w", svcName, err)
	}
	http, dns := netip.AddrPortFrom(clusterIP, svcHTTPPort), netip.AddrPortFrom(clusterIP, svcDNSPort)

	broken, fixed, err := e.modes(ctx, func(ctx context.Context, on bool) (bool, error) {
		for i, host := range []int{15, 16} {
			name := fmt.Sprintf("web-%c", 'a'+i)
			pod, stop, err := e.runLabelledPod(ctx, i%e.w.nodes(), name, selection(ipsElem("dmz", emulation.DMZ, host)), map[string]string{"app": "web"})
			if err != nil {
				return false, err
			}
			defer stop()
			who, err := startWho(pod.netns, name)
			if err != nil {
				return false, err
			}
			defer who.Close()
		}
		client, stop, err := e.runPod(ctx, 0, "client", selection(ipsElem("dmz", emulation.DMZ, 14)))
		if err != nil {
			return false, err
		}
		defer stop()
		c4, _ := emulation.DMZ.Addr(14)

		// With Service support the answer comes once steerd has programmed the client pod.
		deadline := time.Now()
		if on {
			deadline = deadline.Add(programmedWithin)
		}
		answer, errTCP := askWho(ctx, client.netns, http)
		for errTCP != nil && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			answer, errTCP = askWho(ctx, client.netns, http)
		}
		errUDP := emulation.ProbeUDP(ctx, client.netns, dns)
		e.p.say("pod client %s -> %s %-16s TCP %s   UDP %s", c4, svcName, clusterIP, mark(errTCP == nil), mark(errUDP == nil))
		if errTCP == nil {
			// New connections are balanced over the backends: show who took a few.
			answers := []string{answer}
			for range connections - 1 {
				if a, err := askWho(ctx, client.netns, http); err == nil && !slices.Contains(answers, a) {
					answers = append(answers, a)
				}
			}
			slices.Sort(answers)
			for _, a := range answers {
				e.p.say("answered by %s", a)
			}
		}
		if !on {
			why := errTCP
			if why == nil {
				why = errUDP
			}
			if why != nil {
				e.p.say("what the client sees: %s", firstLine(why.Error()))
			}
			route, _ := client.exec(ctx, "ip", "route", "get", clusterIP.String())
			e.p.say("why: kube-proxy leaves multus-proxy Services alone, and the pod routes the ClusterIP by its default route: %s", firstRoute(route))
		} else {
			e.p.cmd(ctx, e.Steerctl, "-bpffs", e.w.pinRoot(), "services", client.containerID)
		}
		return errTCP == nil && errUDP == nil, nil
	})
	return Verdict{Story: "seed 001: a Service on the DMZ, answered by backends at their DMZ addresses", Broken: broken, Fixed: fixed}, err
}

// whoServer answers every TCP connection with its pod's name, the address the connection
// reached it at and the client's address as it saw it.
type whoServer struct{ l net.Listener }

func startWho(n ns.NetNS, name string) (*whoServer, error) {
	var l net.Listener
	err := n.Do(func(ns.NetNS) (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", whoPort))
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			local, _ := netip.ParseAddrPort(c.LocalAddr().String())
			remote, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			_, _ = fmt.Fprintf(c, "%s at %s (it saw the client as %s)", name, local, remote.Addr())
			c.Close()
		}
	}()
	return &whoServer{l: l}, nil
}

func (w *whoServer) Close() { w.l.Close() }

// askWho connects from n to addr and returns what the backend says.
func askWho(ctx context.Context, n ns.NetNS, addr netip.AddrPort) (string, error) {
	var c net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		d := net.Dialer{Timeout: emulation.ProbeTimeout}
		c, err = d.DialContext(ctx, "tcp", addr.String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(emulation.ProbeTimeout))
	b, err := io.ReadAll(c)
	if err == nil && len(b) == 0 {
		err = fmt.Errorf("tcp %s: connection closed without an answer", addr)
	}
	return strings.TrimSpace(string(b)), err
}
