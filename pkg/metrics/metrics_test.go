package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/service"
)

// TestServiceCounters checks that a pod's frontends are exported summed per Service.
func TestServiceCounters(t *testing.T) {
	fe := func(svc string, packets, conns, refused uint64) datapath.ServiceFrontend {
		return datapath.ServiceFrontend{Service: svc, Frontend: service.Frontend{Proto: service.TCP},
			Counters: datapath.ServiceCounters{Packets: packets, Bytes: 100 * packets, Connections: conns, NoBackend: refused}}
	}
	frontends := []datapath.ServiceFrontend{fe("default/web", 3, 1, 0), fe("default/web", 4, 2, 0), fe("default/dns", 0, 0, 5)}
	c := collectorFunc(func(ch chan<- prometheus.Metric) { collectServices(ch, "c1", frontends) })
	want := `
# HELP steer_service_connections_total Connections (TCP, UDP flows) a pod opened to a Service's backends.
# TYPE steer_service_connections_total counter
steer_service_connections_total{container="c1",service="default/dns"} 0
steer_service_connections_total{container="c1",service="default/web"} 3
# HELP steer_service_no_backend_total Packets to a Service without backends, answered with a reset or an ICMP unreachable.
# TYPE steer_service_no_backend_total counter
steer_service_no_backend_total{container="c1",service="default/dns"} 5
steer_service_no_backend_total{container="c1",service="default/web"} 0
# HELP steer_service_packets_total Packets to and from a Service's backends proxied in a pod, both ways.
# TYPE steer_service_packets_total counter
steer_service_packets_total{container="c1",service="default/dns"} 0
steer_service_packets_total{container="c1",service="default/web"} 7
`
	names := []string{"steer_service_connections_total", "steer_service_no_backend_total", "steer_service_packets_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
