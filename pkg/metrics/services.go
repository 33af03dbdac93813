package metrics

import "github.com/prometheus/client_golang/prometheus"

// EndpointSlices are the metrics of the controller that writes the EndpointSlices of Services
// on secondary networks (on the elected steerd only, but for the leader gauge).
type EndpointSlices struct {
	Leader   prometheus.Gauge       // 1 while this steerd is the elected controller
	Syncs    *prometheus.CounterVec // Service syncs by result: ok, error, invalid
	Writes   *prometheus.CounterVec // EndpointSlice writes by operation: create, update, delete
	Duration prometheus.Histogram   // seconds per Service sync
	// Endpoints counts the endpoints in the slices by state: ready, not_ready.
	Endpoints *prometheus.GaugeVec
}

// NewEndpointSlices registers the controller's metrics with reg.
func NewEndpointSlices(reg prometheus.Registerer) *EndpointSlices {
	m := &EndpointSlices{
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steer_endpointslice_controller_leader",
			Help: "1 while this steerd holds the lease of the EndpointSlice controller of Services on secondary networks.",
		}),
		Syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steer_endpointslice_syncs_total",
			Help: "Syncs of Services on secondary networks by result (ok, error, invalid: a bad service-network annotation).",
		}, []string{"result"}),
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steer_endpointslice_writes_total",
			Help: "EndpointSlices written for Services on secondary networks, by operation (create, update, delete).",
		}, []string{"operation"}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "steer_endpointslice_sync_duration_seconds",
			Help:    "Time to sync one Service on a secondary network, writes included.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		Endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steer_endpointslice_endpoints",
			Help: "Endpoints in the EndpointSlices of Services on secondary networks, by state (ready, not_ready).",
		}, []string{"state"}),
	}
	reg.MustRegister(m.Leader, m.Syncs, m.Writes, m.Duration, m.Endpoints)
	return m
}

// ServiceProxy are the metrics of the node agent that programs Services into this node's pods.
type ServiceProxy struct {
	Programs *prometheus.CounterVec // Programmer calls by result: ok, error
	// Latency is from the change that made a pod's entries differ to their being programmed.
	Latency prometheus.Histogram
	Pods    prometheus.Gauge // pods of this node with at least one Service entry
	Entries prometheus.Gauge // Service frontends programmed into this node's pods, summed
}

// NewServiceProxy registers the node agent's metrics with reg.
func NewServiceProxy(reg prometheus.Registerer) *ServiceProxy {
	m := &ServiceProxy{
		Programs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steer_service_programs_total",
			Help: "Pods whose Service entries were programmed, by result (ok, error).",
		}, []string{"result"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "steer_service_program_latency_seconds",
			Help:    "Time from a change of Services, EndpointSlices or attachments to a pod's entries programmed.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		Pods: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steer_service_pods",
			Help: "Pods of this node with entries of Services on their secondary networks.",
		}),
		Entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steer_service_entries",
			Help: "Service frontends programmed into this node's pods, summed over the pods.",
		}),
	}
	reg.MustRegister(m.Programs, m.Latency, m.Pods, m.Entries)
	return m
}
