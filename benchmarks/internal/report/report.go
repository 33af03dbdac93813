// Package report holds a benchmark run's results and renders them: the Markdown report, the
// chart, and the short summary printed at the end of a run.
package report

import (
	"time"

	"github.com/steernet/steer/benchmarks/internal/perpkt"
	"github.com/steernet/steer/benchmarks/internal/stats"
	"github.com/steernet/steer/pkg/datapath"
)

// Metric names one measurement of a path.
type Metric string

// The metrics of a path: iperf3 goodput in Gbit/s, RR latency in µs, RR transactions/s; for a
// Service, also TCP connect-request-response-close (netperf's TCP_CRR) latency and rate.
const (
	Fwd    Metric = "fwd"
	Rev    Metric = "rev"
	UDP50  Metric = "udp p50"
	UDP99  Metric = "udp p99"
	UDPTps Metric = "udp tps"
	TCP50  Metric = "tcp p50"
	TCP99  Metric = "tcp p99"
	TCPTps Metric = "tcp tps"
	CRR50  Metric = "tcp crr p50"
	CRR99  Metric = "tcp crr p99"
	CRRTps Metric = "tcp crr tps"
)

// PathSet is a set of variants of one path, measured interleaved; Variants[0] is the baseline
// every ratio is taken against.
type PathSet struct {
	Variants []string
	Series   map[string]map[Metric]stats.Series
}

// NewPathSet has an empty series for every variant and metric.
func NewPathSet(variants []string) *PathSet {
	p := &PathSet{Variants: variants, Series: map[string]map[Metric]stats.Series{}}
	for _, v := range variants {
		p.Series[v] = map[Metric]stats.Series{}
	}
	return p
}

// Add appends one repetition's sample.
func (p *PathSet) Add(variant string, m Metric, s stats.Sample) {
	p.Series[variant][m] = append(p.Series[variant][m], s)
}

// Multicast is the packet rate of each sender variant, sent and received per LAN.
type Multicast struct {
	Variants []string
	LANs     map[string][]string // variant -> the LANs its copies should reach
	Sent     map[string]stats.Series
	Recv     map[string]map[string]stats.Series // variant -> LAN -> packets/s
}

// NewMulticast has empty series for every variant.
func NewMulticast() *Multicast {
	return &Multicast{LANs: map[string][]string{}, Sent: map[string]stats.Series{}, Recv: map[string]map[string]stats.Series{}}
}

// Service is the Service section: a client pod to one backend through the ClusterIP and
// straight to the backend's address, and the client's frontend counters after the run.
type Service struct {
	Paths     *PathSet
	Frontends []Frontend
}

// Frontend is one of the client's Service frontends with its counters.
type Frontend struct {
	Frontend, Backends   string
	Packets, Connections uint64
	Refused              uint64 // packets answered with a reset or unreachable: no backend, or no free port
}

// CNI is the output of benchmarks/cni, when that package exists.
type CNI struct {
	Command string
	Output  string
	Err     string
}

// Counters are the Steer counters of one pod after the run: proof that the steered variants
// took Steer's path.
type Counters struct {
	Variant string
	Rows    []datapath.Counter
}

// Param is one setting of the run, for the report.
type Param struct{ Name, Value string }

// Report is one run.
type Report struct {
	Start     time.Time
	Elapsed   time.Duration
	Quick     bool
	Command   string
	Machine   Machine
	Params    []Param
	Secondary *PathSet // client to a pod's secondary address; baseline: direct
	Primary   *PathSet // pod to pod over eth0; baseline: no programs
	Multicast *Multicast
	Service   *Service // client pod to a backend on the DMZ; baseline: the backend's address
	Counters  []Counters
	PerPacket *perpkt.Results
	CNI       *CNI
	Node      *CNI // benchmarks/node: its results as markdown, or its output when it failed
	Notes     []string
}
