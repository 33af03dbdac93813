package lab

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/service"
)

// Variants of the Service path: the client pod straight to the backend's DMZ address (the
// baseline), and to the Service's ClusterIP, proxied by the client pod's own programs.
const (
	ToBackend = "backend address"
	ClusterIP = "ClusterIP"
)

// ServiceName is the benchmark Service's "namespace/name", as its counters name it.
const ServiceName = "default/bench-dmz"

// clusterIP is the benchmark Service's address: in the benchmarking range the emulation routes
// through eth0's default route and uses for nothing else.
var clusterIP = netip.MustParseAddr("198.18.97.10")

// The DMZ host numbers of the Service's pods.
const (
	hostSvcClient  = 50
	hostSvcBackend = 51
)

// ServiceSetup is the Service section's client pod and its two paths to one backend.
type ServiceSetup struct {
	Paths  []Path // ToBackend first
	Client *Pod
}

// BuildService adds a client pod on node 0 and a backend pod on node 1, both on the DMZ with
// Steer, programs the client's Service entries (iperf3 TCP, RR TCP and UDP ports of the
// ClusterIP to the backend's DMZ address, same ports) and starts the backend's servers.
func (l *Lab) BuildService(ctx context.Context) (*ServiceSetup, error) {
	dp := l.steer(datapath.IngressTC)
	client, err := l.AddPod(ctx, "svc-client", 0, dp, []emulation.Network{l.eth0(0), macvlan(emulation.DMZ, hostSvcClient, "net1")})
	if err != nil {
		return nil, err
	}
	backend, err := l.AddPod(ctx, "svc-backend", 1, dp, []emulation.Network{l.eth0(1), macvlan(emulation.DMZ, hostSvcBackend, "net1")})
	if err != nil {
		return nil, err
	}
	if err := l.Servers(ctx, backend); err != nil {
		return nil, err
	}
	addr, _ := emulation.DMZ.Addr(hostSvcBackend)
	entry := func(port uint16, proto service.Protocol) service.Entry {
		return service.Entry{
			Frontend: service.Frontend{Addr: netip.AddrPortFrom(clusterIP, port), Proto: proto},
			Service:  ServiceName, IfName: "net1",
			Backends: []netip.AddrPort{netip.AddrPortFrom(addr, port)},
		}
	}
	entries := []service.Entry{entry(IperfPort, service.TCP), entry(RRPort, service.TCP), entry(RRPort, service.UDP)}
	if err := (datapath.Services{Layout: l.Layout}).Program(client.ContainerID, entries); err != nil {
		return nil, fmt.Errorf("program the client's Service entries: %w", err)
	}
	// Both paths start with the backend's neighbour entry resolved, whichever runs first.
	if err := emulation.Ping(ctx, client.NS.Name(), addr); err != nil {
		return nil, err
	}
	return &ServiceSetup{Client: client, Paths: []Path{
		{Name: ToBackend, From: client.NS, To: addr, Pod: backend},
		{Name: ClusterIP, From: client.NS, To: clusterIP, Pod: backend},
	}}, nil
}

// ServiceCounters reads the client's per-frontend counters: proof that the ClusterIP's
// traffic took the proxy.
func (l *Lab) ServiceCounters(s *ServiceSetup) ([]datapath.ServiceFrontend, error) {
	st, err := datapath.ReadPinned(l.Layout, s.Client.ContainerID)
	if err != nil {
		return nil, err
	}
	return st.Services, nil
}
