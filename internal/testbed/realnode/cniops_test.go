package realnode

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCNIOps(t *testing.T) {
	const metrics = `# HELP containerd_cri_network_plugin_operations_duration_seconds_seconds latency in seconds of network plugin operations. Broken down by operation type
# TYPE containerd_cri_network_plugin_operations_duration_seconds_seconds histogram
containerd_cri_network_plugin_operations_duration_seconds_seconds_bucket{operation_type="set_up_pod",le="0.005"} 0
containerd_cri_network_plugin_operations_duration_seconds_seconds_sum{operation_type="set_up_pod"} 1.25
containerd_cri_network_plugin_operations_duration_seconds_seconds_count{operation_type="set_up_pod"} 7
containerd_cri_network_plugin_operations_duration_seconds_seconds_sum{operation_type="tear_down_pod"} 0.5
containerd_cri_network_plugin_operations_duration_seconds_seconds_count{operation_type="tear_down_pod"} 3
containerd_cri_network_plugin_operations_total{operation_type="set_up_pod"} 7
`
	got, err := parseCNIOps(strings.NewReader(metrics))
	if err != nil {
		t.Fatal(err)
	}
	want := CNIOps{SetUps: 7, TearDowns: 3, SetUpTime: 1250 * time.Millisecond, TearDownTime: 500 * time.Millisecond}
	if got != want {
		t.Errorf("parseCNIOps = %+v, want %+v", got, want)
	}
	if d := want.Sub(CNIOps{SetUps: 6, SetUpTime: time.Second}); d.SetUps != 1 || d.SetUpTime != 250*time.Millisecond {
		t.Errorf("Sub = %+v", d)
	}
}

// A .conf compares equal to containerd's conflist of it; a conflist to itself.
func TestPluginsOf(t *testing.T) {
	conf, err := pluginsOf([]byte(`{"cniVersion":"1.1.0","name":"multus-cni-network","type":"multus","kubeconfig":"/k"}`))
	if err != nil {
		t.Fatal(err)
	}
	list, err := pluginsOf([]byte(`{"cniVersion":"1.1.0","name":"multus-cni-network","plugins":[{"kubeconfig":"/k","name":"multus-cni-network","type":"multus","cniVersion":"1.1.0"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(conf, list) {
		t.Errorf("%v != %v", conf, list)
	}
}
