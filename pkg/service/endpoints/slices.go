package endpoints

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/pkg/service"
)

// plan is what one sync writes.
type plan struct {
	create, update, delete []*discovery.EndpointSlice
}

func (p plan) empty() bool { return len(p.create)+len(p.update)+len(p.delete) == 0 }

// group is the endpoints that share an address type and resolved ports, hence slices.
type group struct {
	addrType  discovery.AddressType
	ports     []discovery.EndpointPort
	endpoints map[string]discovery.Endpoint // by pod name
}

// portsKey identifies a set of resolved ports.
func portsKey(addrType discovery.AddressType, ports []discovery.EndpointPort) string {
	var b strings.Builder
	b.WriteString(string(addrType))
	for _, p := range ports {
		fmt.Fprintf(&b, "|%s/%s/%d", deref(p.Name), derefProto(p.Protocol), deref(p.Port))
	}
	return b.String()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func derefProto(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return corev1.ProtocolTCP
	}
	return *p
}

// addressTypes are the families the Service's slices hold: those of its ClusterIPs, both for a
// headless Service that names none.
func addressTypes(svc *corev1.Service) []discovery.AddressType {
	var out []discovery.AddressType
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, discovery.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discovery.AddressTypeIPv6)
		}
	}
	if len(out) == 0 {
		out = []discovery.AddressType{discovery.AddressTypeIPv4, discovery.AddressTypeIPv6}
	}
	return out
}

// sliceLabels are the Service's labels (so a proxy's selector on the Service's labels finds
// its slices, as multus-proxy's did) with the reserved ones set.
func sliceLabels(svc *corev1.Service) map[string]string {
	out := make(map[string]string, len(svc.Labels)+3)
	for k, v := range svc.Labels {
		out[k] = v
	}
	delete(out, corev1.IsHeadlessService)
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[corev1.IsHeadlessService] = ""
	}
	out[service.ServiceNameLabel] = svc.Name
	out[service.ManagedByLabel] = service.SteerManagedBy
	return out
}

func ownerRef(svc *corev1.Service) metav1.OwnerReference {
	ref := metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))
	block := false // no finalizer rights needed, and the Service's deletion is never held up
	ref.BlockOwnerDeletion = &block
	return *ref
}

func ownedBy(s *discovery.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == svc.UID && o.Kind == "Service" && o.APIVersion == "v1" {
			return true
		}
	}
	return false
}

// newSlice is an empty slice of the Service for a group.
func newSlice(svc *corev1.Service, addrType discovery.AddressType, ports []discovery.EndpointPort) *discovery.EndpointSlice {
	return &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    svc.Name + "-steer-",
			Namespace:       svc.Namespace,
			Labels:          sliceLabels(svc),
			OwnerReferences: []metav1.OwnerReference{ownerRef(svc)},
		},
		AddressType: addrType,
		Ports:       ports,
		Endpoints:   []discovery.Endpoint{},
	}
}

// reconcile turns the existing slices of a Service into the desired groups with few writes:
// an endpoint stays in the slice that holds it, new ones fill slices with room before new
// slices are made, slices left empty go, and each address type keeps at least one slice
// (an empty placeholder when it has no endpoints) so readers can tell "none" from "not yet".
func reconcile(svc *corev1.Service, groups map[string]*group, existing []*discovery.EndpointSlice, maxPerSlice int) plan {
	var p plan
	wanted := map[discovery.AddressType]bool{}
	for _, t := range addressTypes(svc) {
		wanted[t] = true
	}
	labels := sliceLabels(svc)
	byGroup := map[string][]*discovery.EndpointSlice{}
	for _, s := range existing {
		if !ownedBy(s, svc) || !wanted[s.AddressType] {
			p.delete = append(p.delete, s)
			continue
		}
		k := portsKey(s.AddressType, s.Ports)
		byGroup[k] = append(byGroup[k], s)
	}
	kept := map[discovery.AddressType]int{} // slices left per address type
	var emptied []*discovery.EndpointSlice
	for _, k := range sortedKeys(byGroup) {
		ss := byGroup[k]
		slices.SortFunc(ss, func(a, b *discovery.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
		g := groups[k]
		placed := map[string]bool{}
		next := make([]*discovery.EndpointSlice, len(ss))
		for i, s := range ss {
			n := *s // shallow: only Labels and Endpoints change, and both are replaced
			n.Labels = labels
			n.Endpoints = make([]discovery.Endpoint, 0, len(s.Endpoints))
			next[i] = &n
			for _, ep := range s.Endpoints {
				if g == nil || ep.TargetRef == nil || placed[ep.TargetRef.Name] {
					continue
				}
				if want, ok := g.endpoints[ep.TargetRef.Name]; ok {
					placed[ep.TargetRef.Name] = true
					next[i].Endpoints = append(next[i].Endpoints, want)
				}
			}
		}
		var rest []string
		if g != nil {
			for _, name := range sortedKeys(g.endpoints) {
				if !placed[name] {
					rest = append(rest, name)
				}
			}
		}
		for i, s := range next {
			for len(rest) > 0 && len(s.Endpoints) < maxPerSlice {
				s.Endpoints = append(s.Endpoints, g.endpoints[rest[0]])
				rest = rest[1:]
			}
			switch {
			case len(s.Endpoints) == 0:
				emptied = append(emptied, ss[i])
			case !slices.EqualFunc(s.Endpoints, ss[i].Endpoints, endpointEqual) || !maps.Equal(s.Labels, ss[i].Labels):
				p.update = append(p.update, s)
				kept[s.AddressType]++
			default:
				kept[s.AddressType]++
			}
		}
		if g != nil {
			made := fill(svc, g, rest, maxPerSlice)
			p.create = append(p.create, made...)
			kept[g.addrType] += len(made)
		}
	}
	for _, k := range sortedKeys(groups) {
		if _, ok := byGroup[k]; ok {
			continue
		}
		g := groups[k]
		made := fill(svc, g, sortedKeys(g.endpoints), maxPerSlice)
		p.create = append(p.create, made...)
		kept[g.addrType] += len(made)
	}
	// Every wanted address type keeps one slice; an emptied one of that type becomes the
	// placeholder rather than being deleted and made again.
	for _, t := range addressTypes(svc) {
		if kept[t] > 0 {
			continue
		}
		i := slices.IndexFunc(emptied, func(s *discovery.EndpointSlice) bool { return s.AddressType == t })
		if i < 0 {
			p.create = append(p.create, newSlice(svc, t, []discovery.EndpointPort{}))
			continue
		}
		old := emptied[i]
		emptied = slices.Delete(emptied, i, i+1)
		if len(old.Endpoints) == 0 && len(old.Ports) == 0 && maps.Equal(old.Labels, labels) {
			continue // already the placeholder
		}
		ph := old.DeepCopy()
		ph.Endpoints, ph.Ports, ph.Labels = []discovery.Endpoint{}, []discovery.EndpointPort{}, labels
		p.update = append(p.update, ph)
	}
	p.delete = append(p.delete, emptied...)
	return p
}

// fill makes new slices of at most maxPerSlice endpoints for names.
func fill(svc *corev1.Service, g *group, names []string, maxPerSlice int) []*discovery.EndpointSlice {
	var out []*discovery.EndpointSlice
	for len(names) > 0 {
		n := min(len(names), maxPerSlice)
		s := newSlice(svc, g.addrType, g.ports)
		for _, name := range names[:n] {
			s.Endpoints = append(s.Endpoints, g.endpoints[name])
		}
		names = names[n:]
		out = append(out, s)
	}
	return out
}

// endpointEqual compares what the controller writes of an endpoint; fields it never sets are
// compared in full. Semantic.DeepEqual costs ten times more at a thousand endpoints.
func endpointEqual(a, b discovery.Endpoint) bool {
	ra, rb := a.TargetRef, b.TargetRef
	return slices.Equal(a.Addresses, b.Addresses) &&
		ptrEqual(a.Conditions.Ready, b.Conditions.Ready) &&
		ptrEqual(a.Conditions.Serving, b.Conditions.Serving) &&
		ptrEqual(a.Conditions.Terminating, b.Conditions.Terminating) &&
		ptrEqual(a.NodeName, b.NodeName) && ptrEqual(a.Hostname, b.Hostname) && ptrEqual(a.Zone, b.Zone) &&
		(ra == nil) == (rb == nil) && (ra == nil || *ra == *rb) &&
		(a.Hints == nil && b.Hints == nil || apiequality.Semantic.DeepEqual(a.Hints, b.Hints))
}

func ptrEqual[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
