package agent

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/pkg/service"
)

func ptr[T any](v T) *T { return &v }

func endpoint(addr string, ready, serving, terminating *bool) discovery.Endpoint {
	return discovery.Endpoint{Addresses: []string{addr}, Conditions: discovery.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
}

func testSlice(t discovery.AddressType, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	return &discovery.EndpointSlice{AddressType: t, Ports: ports, Endpoints: eps}
}

var webPorts = []discovery.EndpointPort{
	{Name: ptr("http"), Protocol: ptr(corev1.ProtocolTCP), Port: ptr(int32(8080))},
	{Name: ptr("dns"), Protocol: ptr(corev1.ProtocolUDP), Port: ptr(int32(5353))},
}

func webService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Annotations: map[string]string{service.NetworkAnnotation: "dmz"}},
		Spec: corev1.ServiceSpec{
			ClusterIPs: []string{"10.96.0.10", "2001:db8:96::10"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
				{Name: "sctp", Port: 9, Protocol: corev1.ProtocolSCTP},
			},
		},
	}
}

// TestServiceEntries: frontends are ClusterIPs × ports (TCP and UDP), backends the family's
// ready endpoints at the port resolved by name; terminating-but-serving endpoints stand in when
// none is ready; sessionAffinity ClientIP defaults to Kubernetes' timeout.
func TestServiceEntries(t *testing.T) {
	svc := webService()
	svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	yes, no := ptr(true), ptr(false)
	ss := []*discovery.EndpointSlice{
		testSlice(discovery.AddressTypeIPv4, webPorts,
			endpoint("192.0.2.11", yes, yes, no), endpoint("192.0.2.10", nil, nil, nil), // nil reads as ready
			endpoint("192.0.2.12", no, no, no), endpoint("192.0.2.13", no, yes, yes)),
		testSlice(discovery.AddressTypeIPv6, webPorts, endpoint("2001:db8:2::a", no, yes, yes), endpoint("2001:db8:2::b", no, no, yes)),
	}
	f, ok := serviceEntries(svc, ss)
	if !ok || f.network != "shop/dmz" {
		t.Fatalf("serviceEntries: %v %q", ok, f.network)
	}
	got := ""
	for _, e := range f.entries {
		got += fmt.Sprintf("%s %s %v %s\n", e.Frontend.Proto, e.Frontend.Addr, e.Backends, e.AffinityTimeout)
	}
	want := "TCP 10.96.0.10:80 [192.0.2.10:8080 192.0.2.11:8080] 3h0m0s\n" +
		"UDP 10.96.0.10:53 [192.0.2.10:5353 192.0.2.11:5353] 3h0m0s\n" +
		"TCP [2001:db8:96::10]:80 [[2001:db8:2::a]:8080] 3h0m0s\n" +
		"UDP [2001:db8:96::10]:53 [[2001:db8:2::a]:5353] 3h0m0s\n"
	if got != want {
		t.Errorf("entries:\n%s\nwant:\n%s", got, want)
	}

	svc.Spec.ClusterIPs, svc.Spec.ClusterIP = []string{"None"}, "None"
	if _, ok := serviceEntries(svc, ss); ok {
		t.Error("a headless Service has entries")
	}
	svc = webService()
	delete(svc.Annotations, service.NetworkAnnotation)
	if _, ok := serviceEntries(svc, ss); ok {
		t.Error("a Service without network has entries")
	}
}

// TestContainerEntries: a pod gets the Services of the networks it is on, through its first
// interface on each; a pod on none gets none.
func TestContainerEntries(t *testing.T) {
	fe := func(ip string) frontends {
		return frontends{network: "shop/dmz", entries: []service.Entry{{
			Frontend: service.Frontend{Addr: netip.MustParseAddrPort(ip + ":80"), Proto: service.TCP}, Service: "shop/web",
			Backends: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.10:8080")}, AffinityTimeout: time.Second,
		}}}
	}
	byNetwork := map[string][]frontends{"shop/dmz": {fe("10.96.0.20"), fe("10.96.0.10")}}
	c := Container{ID: "c", Interfaces: []Interface{{IfName: "net1", Network: "shop/mgmt"}, {IfName: "net2", Network: "shop/dmz"}, {IfName: "net3", Network: "shop/dmz"}}}
	got := containerEntries(c, byNetwork)
	if len(got) != 2 || got[0].Frontend.Addr.Addr().String() != "10.96.0.10" || got[0].IfName != "net2" || got[1].IfName != "net2" {
		t.Errorf("entries %+v: want both frontends, sorted, through net2", got)
	}
	if got := containerEntries(Container{ID: "off", Interfaces: []Interface{{IfName: "net1", Network: "shop/mgmt"}}}, byNetwork); len(got) != 0 {
		t.Errorf("a pod off the network got %+v", got)
	}
	if !equalEntries(got, containerEntries(c, byNetwork)) {
		t.Error("equalEntries: the same entries compare different")
	}
	moved := containerEntries(c, byNetwork)
	moved[1].Backends = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.11:8080")}
	if equalEntries(got, moved) {
		t.Error("equalEntries: a moved backend compares equal")
	}
}
