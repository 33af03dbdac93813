// Package metrics exports Steer's node metrics for Prometheus: the BPF counters of every pod,
// read from the pins at scrape time, and the daemon's CNI request latencies and errors.
package metrics

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
)

// Registry holds Steer's collectors.
type Registry struct {
	*prometheus.Registry
	Requests *prometheus.HistogramVec // seconds per CNI verb and outcome
	Upgrades *prometheus.CounterVec   // pods upgraded in place, by result
	Lookups  *prometheus.CounterVec   // the thin plugin's lookups answered, by kind and result
}

// New registers the collectors. Pod counters are read from layout's pins on each scrape, so
// they are right after a daemon restart and cost nothing between scrapes.
func New(layout bpffs.Layout, log *slog.Logger) *Registry {
	r := &Registry{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "steer_cni_request_duration_seconds",
			Help:    "Time to serve a CNI request in the daemon, by verb and result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"verb", "result"}),
		Upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steer_upgrades_total",
			Help: "In-place upgrades of a pod's programs to this steerd's build, by result (upgraded, failed: the pod keeps its programs).",
		}, []string{"result"}),
		Lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steer_plugin_lookups_total",
			Help: "The thin plugin's apiserver calls steerd answered for it, by kind (pod, nad, network-status, event) and result (ok, error: the apiserver's, passed on).",
		}, []string{"kind", "result"}),
	}
	r.MustRegister(r.Requests, r.Upgrades, r.Lookups, podCounters{layout: layout, log: log},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

var (
	packetsDesc = prometheus.NewDesc("steer_packets_total",
		"Packets seen by Steer's programs, by pod attachment, interface and reason.",
		[]string{"container", "interface", "reason"}, nil)
	bytesDesc = prometheus.NewDesc("steer_bytes_total",
		"Bytes seen by Steer's programs, by pod attachment, interface and reason.",
		[]string{"container", "interface", "reason"}, nil)
	flowsDesc = prometheus.NewDesc("steer_flows",
		"Flows learned on a pod's secondary interfaces.", []string{"container"}, nil)
	attachmentsDesc = prometheus.NewDesc("steer_attachments",
		"Pods with Steer's programs attached on this node.", nil, nil)
	outdatedDesc = prometheus.NewDesc("steer_attachments_outdated",
		"Pods whose programs are not this steerd's build: an upgrade is pending, under way or failed.", nil, nil)

	// Per Service proxied in a pod: the sums over its frontends (ports, families).
	svcLabels      = []string{"container", "service"}
	svcPacketsDesc = prometheus.NewDesc("steer_service_packets_total",
		"Packets to and from a Service's backends proxied in a pod, both ways.", svcLabels, nil)
	svcBytesDesc = prometheus.NewDesc("steer_service_bytes_total",
		"Bytes to and from a Service's backends proxied in a pod, both ways.", svcLabels, nil)
	svcConnsDesc = prometheus.NewDesc("steer_service_connections_total",
		"Connections (TCP, UDP flows) a pod opened to a Service's backends.", svcLabels, nil)
	svcNoBackendDesc = prometheus.NewDesc("steer_service_no_backend_total",
		"Packets to a Service without backends, answered with a reset or an ICMP unreachable.", svcLabels, nil)
)

type podCounters struct {
	layout bpffs.Layout
	log    *slog.Logger
}

func (podCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- packetsDesc
	ch <- bytesDesc
	ch <- flowsDesc
	ch <- attachmentsDesc
	ch <- outdatedDesc
	ch <- svcPacketsDesc
	ch <- svcBytesDesc
	ch <- svcConnsDesc
	ch <- svcNoBackendDesc
}

func (c podCounters) Collect(ch chan<- prometheus.Metric) {
	ids, err := c.layout.Containers()
	if err != nil {
		c.log.Warn("list attachments", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(attachmentsDesc, prometheus.GaugeValue, float64(len(ids)))
	obj, err := datapath.Embedded()
	if err != nil {
		c.log.Warn("programs", "err", err)
		return
	}
	outdated := 0
	defer func() { ch <- prometheus.MustNewConstMetric(outdatedDesc, prometheus.GaugeValue, float64(outdated)) }()
	for _, id := range ids {
		// Told apart from the pins' state: a pod whose upgrade failed may be unreadable.
		if v, err := datapath.ReadVersion(c.layout, id); err == nil && v != obj.Version {
			outdated++
		}
		st, err := datapath.ReadPinned(c.layout, id)
		if err != nil {
			// A pod being deleted while we read: skip it this time.
			c.log.Debug("read pins", "container", id, "err", err)
			continue
		}
		for _, ct := range st.Counters {
			itf := ct.Interface
			if itf == "" {
				itf = "other"
			}
			ch <- prometheus.MustNewConstMetric(packetsDesc, prometheus.CounterValue, float64(ct.Packets), id, itf, ct.Reason.String())
			ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(ct.Bytes), id, itf, ct.Reason.String())
		}
		ch <- prometheus.MustNewConstMetric(flowsDesc, prometheus.GaugeValue, float64(len(st.Flows)), id)
		collectServices(ch, id, st.Services)
	}
}

// collectServices exports a pod's Service counters, summed per Service.
func collectServices(ch chan<- prometheus.Metric, id string, frontends []datapath.ServiceFrontend) {
	sums := map[string]datapath.ServiceCounters{}
	var order []string
	for _, f := range frontends {
		s, ok := sums[f.Service]
		if !ok {
			order = append(order, f.Service)
		}
		s.Packets += f.Counters.Packets
		s.Bytes += f.Counters.Bytes
		s.Connections += f.Counters.Connections
		s.NoBackend += f.Counters.NoBackend
		sums[f.Service] = s
	}
	for _, name := range order {
		s := sums[name]
		ch <- prometheus.MustNewConstMetric(svcPacketsDesc, prometheus.CounterValue, float64(s.Packets), id, name)
		ch <- prometheus.MustNewConstMetric(svcBytesDesc, prometheus.CounterValue, float64(s.Bytes), id, name)
		ch <- prometheus.MustNewConstMetric(svcConnsDesc, prometheus.CounterValue, float64(s.Connections), id, name)
		ch <- prometheus.MustNewConstMetric(svcNoBackendDesc, prometheus.CounterValue, float64(s.NoBackend), id, name)
	}
}
