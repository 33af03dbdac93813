package netconf_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/steernet/steer/pkg/netconf"
)

func ExampleParseNetworkSelection() {
	elems, err := netconf.ParseNetworkSelection("macvlan-net, other-ns/dmz, mgmt@mgmt0", "shop")
	if err != nil {
		panic(err)
	}
	for _, e := range elems {
		fmt.Println(e)
	}
	// Output:
	// shop/macvlan-net@net1
	// other-ns/dmz@net2
	// shop/mgmt@mgmt0
}

func ExampleResolvePolicy() {
	nad := []byte(`{"type":"macvlan","master":"eth1","steer":{"multicast":["239.1.1.0/24"]}}`)
	elems, _ := netconf.ParseNetworkSelection(`[{"name":"lan","steer":{"gateway":"192.168.10.254"}}]`, "shop")
	pol, err := netconf.ResolvePolicy(nad, &elems[0])
	if err != nil {
		panic(err)
	}
	fmt.Println(pol.Steering, pol.Multicast, pol.Gateways)
	// Output: true [239.1.1.0/24] [192.168.10.254]
}

func ExampleNetworkConfig() {
	conf, _ := netconf.NetworkConfig("lan", `{"cniVersion":"1.0.0", "type":"macvlan"}`, "/etc/cni/multus/net.d")
	fmt.Println(string(conf))
	// Output: {"cniVersion":"1.0.0", "type":"macvlan","name":"lan"}
}

func ExampleMergeCNIArgs() {
	elems, _ := netconf.ParseNetworkSelection(`[{"name":"lan","cni-args":{"vlan":10}}]`, "shop")
	conf, _ := netconf.MergeCNIArgs([]byte(`{"type":"macvlan","args":{"cni":{"vlan":1,"mtu":9000}}}`), elems[0].CNIArgs)
	fmt.Println(string(conf))
	// Output: {"type":"macvlan","args":{"cni":{"vlan":10,"mtu":9000}}}
}

// TestDocExamples keeps the JSON examples of the package documentation valid.
func TestDocExamples(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//\t"); ok {
			cur = append(cur, rest)
			continue
		}
		if cur != nil {
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	if len(blocks) != 4 {
		t.Fatalf("found %d example blocks, want 4", len(blocks))
	}
	if _, err := netconf.ParseConf([]byte(blocks[0])); err != nil {
		t.Errorf("plugin config example: %v", err)
	}
	comma := strings.TrimPrefix(blocks[1], netconf.NetworksAnnotation+": ")
	if _, err := netconf.ParseNetworkSelection(comma, "ns"); err != nil {
		t.Errorf("comma example: %v", err)
	}
	elems, err := netconf.ParseNetworkSelection(blocks[2], "ns")
	if err != nil {
		t.Fatalf("JSON example: %v", err)
	}
	if _, err := netconf.NetworkConfig("lan", blocks[3], ""); err != nil {
		t.Errorf("NAD example: %v", err)
	}
	if _, err := netconf.ResolvePolicy([]byte(blocks[3]), &elems[0]); err != nil {
		t.Errorf("policy example: %v", err)
	}
}
