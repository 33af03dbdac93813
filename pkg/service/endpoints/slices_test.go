package endpoints

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "svc-uid"},
		Spec:       corev1.ServiceSpec{IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}},
	}
}

// endpointsGroup is the named endpoints on one port, each pod-N at an address of its own.
func endpointsGroup(names ...string) map[string]*group {
	name, proto, port := "http", corev1.ProtocolTCP, int32(8080)
	ports := []discovery.EndpointPort{{Name: &name, Protocol: &proto, Port: &port}}
	g := &group{addrType: discovery.AddressTypeIPv4, ports: ports, endpoints: map[string]discovery.Endpoint{}}
	ready := true
	for _, n := range names {
		var i int
		_, _ = fmt.Sscanf(n, "pod-%d", &i)
		g.endpoints[n] = discovery.Endpoint{
			Addresses:  []string{fmt.Sprintf("198.51.%d.%d", 100+i/250, i%250+1)},
			Conditions: discovery.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: n},
		}
	}
	return map[string]*group{portsKey(g.addrType, ports): g}
}

func podNames(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("pod-%03d", i))
	}
	return out
}

// apply plays the plan as the apiserver would, naming created slices.
func apply(existing []*discovery.EndpointSlice, p plan) []*discovery.EndpointSlice {
	byName := map[string]*discovery.EndpointSlice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for _, s := range p.update {
		byName[s.Name] = s
	}
	for _, s := range p.delete {
		delete(byName, s.Name)
	}
	for i, s := range p.create {
		s = s.DeepCopy()
		s.Name = fmt.Sprintf("%s%d-%d", s.GenerateName, len(byName), i)
		byName[s.Name] = s
	}
	var out []*discovery.EndpointSlice
	for _, k := range sortedKeys(byName) {
		out = append(out, byName[k])
	}
	return out
}

// TestReconcileChurn: slices fill to the maximum, a new endpoint is one update, a removed one
// is one update, and the last endpoint's leaving keeps an empty placeholder.
func TestReconcileChurn(t *testing.T) {
	svc := testService()
	p := reconcile(svc, endpointsGroup(podNames(0, 250)...), nil, 100)
	if len(p.create) != 3 || len(p.update)+len(p.delete) != 0 {
		t.Fatalf("250 endpoints: create %d update %d delete %d, want 3 creates", len(p.create), len(p.update), len(p.delete))
	}
	slices := apply(nil, p)
	if n := len(reconcile(svc, endpointsGroup(podNames(0, 250)...), slices, 100).update); n != 0 {
		t.Fatalf("no change: %d updates", n)
	}

	p = reconcile(svc, endpointsGroup(podNames(0, 251)...), slices, 100)
	if len(p.create)+len(p.delete) != 0 || len(p.update) != 1 || len(p.update[0].Endpoints) != 51 {
		t.Fatalf("one more endpoint: create %d update %d delete %d, want one update of the slice with room", len(p.create), len(p.update), len(p.delete))
	}
	slices = apply(slices, p)

	p = reconcile(svc, endpointsGroup(append(podNames(0, 10), podNames(11, 251)...)...), slices, 100)
	if len(p.create)+len(p.delete) != 0 || len(p.update) != 1 {
		t.Fatalf("one endpoint less: create %d update %d delete %d, want one update", len(p.create), len(p.update), len(p.delete))
	}
	slices = apply(slices, p)

	p = reconcile(svc, nil, slices, 100)
	slices = apply(slices, p)
	if len(slices) != 1 || len(slices[0].Endpoints) != 0 || len(slices[0].Ports) != 0 {
		t.Fatalf("no endpoints left: %d slices, want one empty placeholder", len(slices))
	}
	if p := reconcile(svc, nil, slices, 100); !p.empty() {
		t.Fatalf("placeholder rewritten: %+v", p)
	}
}

// TestReconcileForeignAndFamilies: slices of an earlier Service of the same name and of a
// family the Service no longer has go.
func TestReconcileForeignAndFamilies(t *testing.T) {
	svc := testService()
	old := newSlice(svc, discovery.AddressTypeIPv4, nil)
	old.Name, old.OwnerReferences[0].UID = "web-old", "earlier-uid"
	v6 := newSlice(svc, discovery.AddressTypeIPv6, nil)
	v6.Name = "web-v6"
	p := reconcile(svc, endpointsGroup("pod-a"), []*discovery.EndpointSlice{old, v6}, 100)
	if len(p.delete) != 2 || len(p.create) != 1 {
		t.Fatalf("delete %d create %d, want both old slices deleted and one made", len(p.delete), len(p.create))
	}
}

// BenchmarkReconcile is one sync's computation for a Service of 1,000 endpoints, one of which
// changed.
func BenchmarkReconcile(b *testing.B) {
	svc := testService()
	slices := apply(nil, reconcile(svc, endpointsGroup(podNames(0, 1000)...), nil, 100))
	groups := endpointsGroup(podNames(1, 1001)...)
	b.ReportAllocs()
	for b.Loop() {
		reconcile(svc, groups, slices, 100)
	}
}
