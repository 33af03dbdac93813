// Package service is the model of Kubernetes Services on secondary networks as Steer proxies
// them: the frontends (ClusterIP, port, protocol) that pods attached to a network reach, and the
// ready backends behind each, addressed on that network. The control plane (EndpointSlices,
// Services) produces it; the datapath programs it into each attached pod.
package service

import (
	"net/netip"
	"time"
)

// Protocol is an IP protocol number the proxy handles.
type Protocol uint8

const (
	TCP Protocol = 6
	UDP Protocol = 17
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return "unknown"
}

// Frontend is one Service port as a client pod addresses it.
type Frontend struct {
	Addr  netip.AddrPort // the ClusterIP and the Service port
	Proto Protocol
}

// Entry is what one pod does with traffic to one frontend.
type Entry struct {
	Frontend Frontend
	// Service is "namespace/name", for counters and steerctl.
	Service string
	// IfName is the pod's interface on the Service's network: DNAT'ed traffic leaves by it, with
	// that interface's address as source.
	IfName string
	// Backends are the ready endpoints' addresses on the network with their target port, sorted.
	// None: the frontend answers at once with a TCP reset or an ICMP unreachable.
	Backends []netip.AddrPort
	// AffinityTimeout is sessionAffinity ClientIP's timeout; zero means no affinity.
	AffinityTimeout time.Duration
}

// Programmer installs a pod's complete set of entries, replacing what it had. Connections to
// backends that stay must survive; new connections must avoid backends that left.
type Programmer interface {
	Program(containerID string, entries []Entry) error
}
