package agent

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/steernet/steer/pkg/service"
)

// Container is a pod sandbox of this node as Steer attached it.
type Container struct {
	ID             string
	Namespace, Pod string
	Interfaces     []Interface // the secondary attachments, in attachment order
}

// Interface is one secondary attachment of a container.
type Interface struct {
	IfName  string
	Network string // "namespace/name" of the NetworkAttachmentDefinition
}

// frontends are a Service's entries but for the interface: what every pod on its network gets.
type frontends struct {
	network string
	entries []service.Entry
}

// defaultAffinity is Kubernetes' default sessionAffinity ClientIP timeout.
const defaultAffinity = 10800 * time.Second

// serviceEntries computes the entries of one Service from its slices (those of one manager),
// for the pods on network. ok is false for a Service that has no network or no ClusterIP.
func serviceEntries(svc *corev1.Service, slices []*discovery.EndpointSlice) (frontends, bool) {
	network, err := service.ParseNetwork(svc.Annotations[service.NetworkAnnotation], svc.Namespace)
	if _, annotated := svc.Annotations[service.NetworkAnnotation]; !annotated || err != nil {
		return frontends{}, false
	}
	var affinity time.Duration
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = defaultAffinity
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	name := svc.Namespace + "/" + svc.Name
	out := frontends{network: network}
	for _, ip := range clusterIPs(svc) {
		for _, sp := range svc.Spec.Ports {
			proto, ok := protocol(sp.Protocol)
			if !ok {
				continue
			}
			out.entries = append(out.entries, service.Entry{
				Frontend:        service.Frontend{Addr: netip.AddrPortFrom(ip, uint16(sp.Port)), Proto: proto},
				Service:         name,
				Backends:        backends(slices, ip.Is4(), sp),
				AffinityTimeout: affinity,
			})
		}
	}
	return out, len(out.entries) > 0
}

func clusterIPs(svc *corev1.Service) []netip.Addr {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func protocol(p corev1.Protocol) (service.Protocol, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return service.TCP, true
	case corev1.ProtocolUDP:
		return service.UDP, true
	}
	return 0, false
}

// backends are the ready endpoints of the family for a Service port, at their resolved target
// port, sorted. With none ready, endpoints that still serve while terminating stand in, as
// kube-proxy lets them, so a rolling update does not cut a Service off.
func backends(ss []*discovery.EndpointSlice, v4 bool, sp corev1.ServicePort) []netip.AddrPort {
	want := discovery.AddressTypeIPv6
	if v4 {
		want = discovery.AddressTypeIPv4
	}
	var ready, terminating []netip.AddrPort
	for _, s := range ss {
		if s.AddressType != want {
			continue
		}
		port, ok := slicePort(s, sp)
		if !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || a.Unmap().Is4() != v4 {
				continue
			}
			ap := netip.AddrPortFrom(a.Unmap(), port)
			c := ep.Conditions
			switch {
			case c.Ready == nil || *c.Ready: // unknown reads as ready, per the API
				ready = append(ready, ap)
			case c.Serving != nil && *c.Serving && c.Terminating != nil && *c.Terminating:
				terminating = append(terminating, ap)
			}
		}
	}
	if len(ready) == 0 {
		ready = terminating
	}
	slices.SortFunc(ready, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Compact(ready)
}

// slicePort is the port a slice resolves the Service port to, matched by name and protocol.
func slicePort(s *discovery.EndpointSlice, sp corev1.ServicePort) (uint16, bool) {
	for _, p := range s.Ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if p.Name != nil && *p.Name == sp.Name && proto == cmp.Or(sp.Protocol, corev1.ProtocolTCP) && p.Port != nil {
			return uint16(*p.Port), true
		}
	}
	return 0, false
}

// containerEntries are a container's entries: every Service on a network it is attached to,
// through its first interface on that network, sorted by frontend.
func containerEntries(c Container, byNetwork map[string][]frontends) []service.Entry {
	var out []service.Entry
	seen := map[string]bool{}
	for _, itf := range c.Interfaces {
		if seen[itf.Network] {
			continue
		}
		seen[itf.Network] = true
		for _, f := range byNetwork[itf.Network] {
			for _, e := range f.entries {
				e.IfName = itf.IfName
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b service.Entry) int {
		return cmp.Or(a.Frontend.Addr.Compare(b.Frontend.Addr), cmp.Compare(a.Frontend.Proto, b.Frontend.Proto))
	})
	return out
}

func equalEntries(a, b []service.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y service.Entry) bool {
		return x.Frontend == y.Frontend && x.Service == y.Service && x.IfName == y.IfName &&
			x.AffinityTimeout == y.AffinityTimeout && slices.Equal(x.Backends, y.Backends)
	})
}
