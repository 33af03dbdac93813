package agent_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/svctest"
	"github.com/steernet/steer/pkg/service"
	"github.com/steernet/steer/pkg/service/agent"
)

// slice is an EndpointSlice of svc as a controller named managedBy writes it, one ready
// endpoint per address, the http port resolved to 8080.
func slice(svc *corev1.Service, managedBy string, addrs ...string) *discovery.EndpointSlice {
	name, proto, port := "http", corev1.ProtocolTCP, int32(8080)
	ready := true
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: svc.Name + "-", Namespace: svc.Namespace,
			Labels: map[string]string{service.ServiceNameLabel: svc.Name, service.ManagedByLabel: managedBy,
				service.ProxyNameLabel: service.MultusProxyName},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: &name, Protocol: &proto, Port: &port}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{a}, Conditions: discovery.EndpointConditions{Ready: &ready}})
	}
	return s
}

// TestAgentReadsMultusSlices: on a cluster still running multus-service's controller, the
// agent serves its slices; once Steer's controller has written slices for the Service, those
// win. Kubernetes' own slices of the Service (primary addresses) are never read.
func TestAgentReadsMultusSlices(t *testing.T) {
	c := kubetest.Cluster(t).Client()
	ns := kubetest.Namespace(t)
	svc, err := c.CoreV1().Services(ns).Create(t.Context(), svctest.Service(ns, "web-dmz", "dmz", corev1.IPv4Protocol), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	create := func(s *discovery.EndpointSlice) {
		if _, err := c.DiscoveryV1().EndpointSlices(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(slice(svc, "endpointslice-controller.k8s.io", "10.244.1.5"))
	create(slice(svc, service.MultusManagedBy, "192.0.2.20"))

	src := &source{}
	src.set(agent.Container{ID: "client", Namespace: ns, Pod: "client", Interfaces: []agent.Interface{{IfName: "net1", Network: ns + "/dmz"}}})
	rec := newRecorder()
	startAgent(t, c, src, rec)
	ip := svc.Spec.ClusterIP
	waitProgrammed(t, rec, "client", ns+"/web-dmz UDP "+ip+":53 via net1 -> []\n"+ns+"/web-dmz TCP "+ip+":80 via net1 -> [192.0.2.20:8080]")

	create(slice(svc, service.SteerManagedBy, "192.0.2.30"))
	waitProgrammed(t, rec, "client", ns+"/web-dmz UDP "+ip+":53 via net1 -> []\n"+ns+"/web-dmz TCP "+ip+":80 via net1 -> [192.0.2.30:8080]")
}
