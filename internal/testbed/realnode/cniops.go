package realnode

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// containerdMetricsAddr is where containerd serves its Prometheus metrics: the loopback of the
// node's network namespace.
const containerdMetricsAddr = "127.0.0.1:1338"

// cniOpsMetric is containerd's histogram of its CNI calls, labelled by operation: the time
// around the network plugin's set-up (CNI ADD) and tear-down (CNI DEL) of a sandbox, as
// containerd measures it.
const cniOpsMetric = "containerd_cri_network_plugin_operations_duration_seconds_seconds"

// CNIOps is containerd's running account of the CNI calls it made: how many set-ups (ADD) and
// tear-downs (DEL), and their time in all. The difference of two readings around one pod's
// start or stop is that pod's ADD or DEL as containerd saw it.
type CNIOps struct {
	SetUps, TearDowns       int
	SetUpTime, TearDownTime time.Duration
}

// Sub is o minus an earlier reading.
func (o CNIOps) Sub(earlier CNIOps) CNIOps {
	return CNIOps{
		SetUps: o.SetUps - earlier.SetUps, TearDowns: o.TearDowns - earlier.TearDowns,
		SetUpTime: o.SetUpTime - earlier.SetUpTime, TearDownTime: o.TearDownTime - earlier.TearDownTime,
	}
}

// CNIOps reads containerd's account of its CNI calls from its metrics.
func (n *Node) CNIOps(ctx context.Context) (CNIOps, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		// The socket is made in the node's namespace and keeps it.
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = n.netns.Do(func(ns.NetNS) error {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+containerdMetricsAddr+"/v1/metrics", nil)
	if err != nil {
		return CNIOps{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return CNIOps{}, fmt.Errorf("containerd's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return CNIOps{}, fmt.Errorf("containerd's metrics: %s", resp.Status)
	}
	return parseCNIOps(resp.Body)
}

// parseCNIOps reads the CNI histogram's sums and counts from Prometheus' text format; an
// operation containerd has not made yet has no series, and counts zero.
func parseCNIOps(r io.Reader) (CNIOps, error) {
	var o CNIOps
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, cniOpsMetric+"_")
		if !ok {
			continue
		}
		kind, rest, ok := strings.Cut(rest, "{")
		if !ok || (kind != "sum" && kind != "count") {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return CNIOps{}, fmt.Errorf("containerd's metrics: %q: %w", line, err)
		}
		switch {
		case strings.Contains(labels, `operation_type="set_up_pod"`) && kind == "sum":
			o.SetUpTime = seconds(v)
		case strings.Contains(labels, `operation_type="set_up_pod"`):
			o.SetUps = int(v)
		case strings.Contains(labels, `operation_type="tear_down_pod"`) && kind == "sum":
			o.TearDownTime = seconds(v)
		case strings.Contains(labels, `operation_type="tear_down_pod"`):
			o.TearDowns = int(v)
		}
	}
	return o, sc.Err()
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
