package netconf

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// brief is the part of an element most tests care about.
type brief struct{ ns, name, iface, ifname string }

func briefs(elems []NetworkSelectionElement) []brief {
	out := make([]brief, len(elems))
	for i, e := range elems {
		out[i] = brief{e.Namespace, e.Name, e.Interface, e.IfName}
	}
	return out
}

func TestParseNetworkSelectionForms(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []brief
	}{
		{"blank", "  \n", nil},
		{"empty list", "[]", nil},
		{"one", "a", []brief{{"pod-ns", "a", "", "net1"}}},
		{"comma", "a,b, ns/c , ns/d@net5",
			[]brief{{"pod-ns", "a", "", "net1"}, {"pod-ns", "b", "", "net2"}, {"ns", "c", "", "net3"}, {"ns", "d", "net5", "net5"}}},
		{"spaces around separators", " ns / a @ lan0 ", []brief{{"ns", "a", "lan0", "lan0"}}},
		{"empty ns and ifname default like Multus", "/a@, b", []brief{{"pod-ns", "a", "", "net1"}, {"pod-ns", "b", "", "net2"}}},
		{"dotted name", "net.example", []brief{{"pod-ns", "net.example", "", "net1"}}},
		{"explicit does not shift numbering", "a@lan0, b", []brief{{"pod-ns", "a", "lan0", "lan0"}, {"pod-ns", "b", "", "net2"}}},
		{"auto skips an explicit later name", "a, b@net1", []brief{{"pod-ns", "a", "", "net2"}, {"pod-ns", "b", "net1", "net1"}}},
		{"skips chain", "a@net2, b, c", []brief{{"pod-ns", "a", "net2", "net2"}, {"pod-ns", "b", "", "net3"}, {"pod-ns", "c", "", "net4"}}},
		{"json", `[{"name":"a"},{"name":"b","namespace":"x","interface":"lan0"}]`,
			[]brief{{"pod-ns", "a", "", "net1"}, {"x", "b", "lan0", "lan0"}}},
		{"json interfaceRequest", `[{"name":"a","interfaceRequest":"old0"}]`, []brief{{"pod-ns", "a", "old0", "old0"}}},
		{"json interface wins", `[{"name":"a","interface":"new0","interfaceRequest":"old0"}]`, []brief{{"pod-ns", "a", "new0", "new0"}}},
		{"json unknown keys ignored", `[{"name":"a","futureKey":{"x":1}}]`, []brief{{"pod-ns", "a", "", "net1"}}},
		{"json 15-byte interface", `[{"name":"a","interface":"abcdefghijklmno"}]`, []brief{{"pod-ns", "a", "abcdefghijklmno", "abcdefghijklmno"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNetworkSelection(tc.in, "pod-ns")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(briefs(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("got  %+v\nwant %+v", briefs(got), tc.want)
			}
		})
	}
}

func TestParseNetworkSelectionJSONFields(t *testing.T) {
	in := `[{
	  "name": "lan", "namespace": "nets", "interface": "lan0",
	  "ips": ["192.168.10.5/24", "fd00::5"], "mac": "02:00:00:0a:00:05",
	  "default-route": ["192.168.10.1", "fd00::1"],
	  "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "TCP", "hostIP": "10.0.0.1"}],
	  "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 3000, "egressBurst": 4000},
	  "cni-args": {"vlan": 10, "big": 123456789012345678901234567890, "s": "x"},
	  "infiniband-guid": "c2:11:22:33:44:55:66:77", "deviceID": "0000:03:00.1",
	  "steer": {"steering": false, "multicast": ["239.1.1.0/24"], "gateway": "192.168.10.254"}
	}]`
	got, err := ParseNetworkSelection(in, "pod-ns")
	if err != nil {
		t.Fatal(err)
	}
	f := false
	gw := "192.168.10.254"
	want := NetworkSelectionElement{
		Name: "lan", Namespace: "nets", Interface: "lan0", IfName: "lan0",
		IPs: []string{"192.168.10.5/24", "fd00::5"}, MAC: "02:00:00:0a:00:05",
		DefaultRoute: []string{"192.168.10.1", "fd00::1"},
		PortMappings: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "TCP", HostIP: "10.0.0.1"}},
		Bandwidth:    &Bandwidth{IngressRate: 1000, IngressBurst: 2000, EgressRate: 3000, EgressBurst: 4000},
		CNIArgs: map[string]any{"vlan": json.Number("10"), "big": json.Number("123456789012345678901234567890"),
			"s": "x"},
		InfinibandGUID: "c2:11:22:33:44:55:66:77", DeviceID: "0000:03:00.1",
		Steer: &PolicySpec{Steering: &f, Multicast: []string{"239.1.1.0/24"}, Gateway: GatewaySpec{gw}},
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if s := got[0].String(); s != "nets/lan@lan0" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseNetworkSelectionDefaultRouteEmptyListKept(t *testing.T) {
	got, err := ParseNetworkSelection(`[{"name":"a","default-route":[]},{"name":"b"}]`, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].DefaultRoute == nil || got[1].DefaultRoute != nil {
		t.Errorf("default-route presence lost: %#v / %#v", got[0].DefaultRoute, got[1].DefaultRoute)
	}
}

func TestParseNetworkSelectionDualStackDefaultRoutes(t *testing.T) {
	// Multus accepts an IPv4 default route on one network and an IPv6 one on another.
	if _, err := ParseNetworkSelection(`[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["fd00::1"]}]`, "ns"); err != nil {
		t.Fatal(err)
	}
}

func TestParseNetworkSelectionErrors(t *testing.T) {
	long := strings.Repeat("a", 254)
	for _, tc := range []struct {
		name string
		in   string
		code uint
		want []string
	}{
		{"bad json", `[{"name":"a"`, codeDecode, []string{NetworksAnnotation, "JSON"}},
		{"json object not list", `{"name":"a"}`, codeDecode, []string{"JSON list"}},
		{"element not object", `[{"name":"a"}, "b"]`, codeDecode, []string{"element 1", "JSON object"}},
		{"element null", `[null]`, codeDecode, []string{"element 0", "JSON object"}},
		{"field type", `[{"name":"a"},{"name":"b","ips":"10.0.0.1"}]`, codeDecode, []string{"element 1", `"ips"`}},
		{"cni-args type", `[{"name":"a","cni-args":[1]}]`, codeDecode, []string{"element 0", `"cni-args"`}},
		{"negative bandwidth", `[{"name":"a","bandwidth":{"ingressRate":-1}}]`, codeDecode, []string{"element 0", "ingressRate"}},
		{"steer unknown key", `[{"name":"a","steer":{"mutlicast":[]}}]`, codeDecode, []string{"element 0", "steer", "mutlicast"}},
		{"steer type", `[{"name":"a","steer":{"steering":"no"}}]`, codeDecode, []string{"element 0", "steer", "steering"}},
		{"missing name", `[{"namespace":"x"}]`, codeInvalid, []string{"element 0", `"name" is required`}},
		{"empty comma item", `a,,b`, codeInvalid, []string{"element 1", `"name"`}},
		{"trailing comma", `a,`, codeInvalid, []string{"element 1", `"name"`}},
		{"upper-case name", `Macvlan`, codeInvalid, []string{"element 0", `"name"`, "Macvlan"}},
		{"name with space", `mac vlan`, codeInvalid, []string{"element 0", `"name"`}},
		{"name too long", long, codeInvalid, []string{"element 0", `"name"`}},
		{"bad namespace", `Bad_NS/a`, codeInvalid, []string{"element 0", `"namespace"`, "Bad_NS"}},
		{"no namespace at all", `[{"name":"a"}]`, codeInvalid, []string{"element 0", `"namespace"`}},
		{"two slashes", `a/b/c`, codeInvalid, []string{"element 0", "'/'"}},
		{"two ats", `a@b@c`, codeInvalid, []string{"element 0", "'@'"}},
		{"ifname too long", `a@abcdefghijklmnop`, codeInvalid, []string{"element 0", `"interface"`, "15"}},
		{"ifname dot", `[{"name":"a","interface":"."}]`, codeInvalid, []string{"element 0", `"interface"`}},
		{"ifname dotdot", `a@..`, codeInvalid, []string{"element 0", `"interface"`}},
		{"ifname colon", `a@eth0:1`, codeInvalid, []string{"element 0", `"interface"`}},
		{"ifname slash", `[{"name":"a","interface":"x/y"}]`, codeInvalid, []string{"element 0", `"interface"`}},
		{"ifname space", `[{"name":"a","interface":"x y"}]`, codeInvalid, []string{"element 0", `"interface"`}},
		{"ifname NUL", `[{"name":"a","interface":"x\u0000"}]`, codeInvalid, []string{"element 0", `"interface"`}},
		{"ifname invalid utf-8", "a@x\xb8", codeInvalid, []string{"element 0", `"interface"`, "UTF-8"}},
		{"ifname zero-width space", `[{"name":"a","interface":"eth0\u200b"}]`, codeInvalid, []string{"element 0", `"interface"`, "U+200B"}},
		{"ifname bidi override", `[{"name":"a","interface":"\u202e1ten"}]`, codeInvalid, []string{"element 0", `"interface"`, "U+202E"}},
		{"ifname unicode too long", `[{"name":"a","interface":"réseau-privé-1"}]`, codeInvalid, []string{"element 0", `"interface"`, "15"}},
		{"duplicate ifname", `a@lan0, b, c@lan0`, codeInvalid, []string{"element 2", `"lan0"`, "element 0"}},
		{"bad ip", `[{"name":"a","ips":["10.0.0.1","10.0.0.300"]}]`, codeInvalid, []string{"element 0", `"ips[1]"`}},
		{"bad cidr", `[{"name":"a","ips":["10.0.0.1/33"]}]`, codeInvalid, []string{"element 0", `"ips[0]"`}},
		{"bad mac", `[{"name":"a","mac":"02:00:00:0a:00"}]`, codeInvalid, []string{"element 0", `"mac"`}},
		{"bad guid", `[{"name":"a","infiniband-guid":"zz"}]`, codeInvalid, []string{"element 0", `"infiniband-guid"`}},
		{"bad port", `[{"name":"a","portMappings":[{"hostPort":0,"containerPort":80}]}]`, codeInvalid, []string{"element 0", `"portMappings[0]"`, "hostPort"}},
		{"bad protocol", `[{"name":"a","portMappings":[{"hostPort":1,"containerPort":80,"protocol":"icmp"}]}]`, codeInvalid, []string{`"portMappings[0]"`, "icmp"}},
		{"bad hostIP", `[{"name":"a","portMappings":[{"hostPort":1,"containerPort":80,"hostIP":"x"}]}]`, codeInvalid, []string{`"portMappings[0]"`, "hostIP"}},
		{"bad gateway", `[{"name":"a","default-route":["gw"]}]`, codeInvalid, []string{"element 0", `"default-route"`}},
		{"ecmp in one element", `[{"name":"a","default-route":["10.0.0.1","10.0.0.2"]}]`, codeInvalid, []string{"element 0", `"default-route"`, "ECMP"}},
		{"two v4 default routes", `[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["10.1.0.1"]}]`, codeInvalid, []string{`"default-route"`, "elements 0 and 1", "IPv4"}},
		{"two v6 default routes", `[{"name":"a","default-route":["fd00::1"]},{"name":"b"},{"name":"c","default-route":["fd01::1","10.0.0.1"]}]`, codeInvalid, []string{"elements 0 and 2", "IPv6"}},
		{"steer in cni-args", `[{"name":"a","cni-args":{"steer":{"steering":false}}}]`, codeInvalid, []string{"element 0", `"cni-args"`, `"steer"`}},
		{"steer bad group", `[{"name":"a","steer":{"multicast":["10.0.0.0/8"]}}]`, codeInvalid, []string{"element 0", "steer.multicast[0]", "10.0.0.0/8"}},
		{"steer bad gateway", `[{"name":"a","steer":{"gateway":"224.0.0.1"}}]`, codeInvalid, []string{"element 0", "steer", "gateway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "pod-ns"
			if tc.name == "no namespace at all" {
				ns = ""
			}
			got, err := ParseNetworkSelection(tc.in, ns)
			if err == nil {
				t.Fatalf("ParseNetworkSelection(%q) = %+v, want error", tc.in, got)
			}
			checkErr(t, err, tc.code, tc.want...)
		})
	}
}

func TestParseNetworkSelectionHugeFailsFast(t *testing.T) {
	huge := "[" + strings.Repeat(`{"name":"a"},`, 1<<20/13) + `{"name":"a"}]`
	start := time.Now()
	_, err := ParseNetworkSelection(huge, "ns")
	checkErr(t, err, codeInvalid, NetworksAnnotation, "bytes", "limit")
	if d := time.Since(start); d > 10*time.Millisecond {
		t.Errorf("rejecting a %d-byte annotation took %v", len(huge), d)
	}
	// Just under the limit still parses.
	ok := strings.Repeat("a,", MaxAnnotationSize/2-1) + "a"
	if _, err := ParseNetworkSelection(ok, "ns"); err != nil {
		t.Errorf("%d-byte annotation: %v", len(ok), err)
	}
}

func TestAssignInterfaceNames(t *testing.T) {
	mk := func(ifaces ...string) []NetworkSelectionElement {
		out := make([]NetworkSelectionElement, len(ifaces))
		for i, s := range ifaces {
			out[i] = NetworkSelectionElement{Name: "n", Namespace: "ns", Interface: s}
		}
		return out
	}
	names := func(es []NetworkSelectionElement) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.IfName
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		ifaces   []string
		first    int
		reserved []string
		want     []string
	}{
		{"multus positions", []string{"", "", ""}, 1, nil, []string{"net1", "net2", "net3"}},
		{"after two default networks", []string{"", "lan0", ""}, 3, nil, []string{"net3", "lan0", "net5"}},
		{"reserved skipped", []string{"", ""}, 1, []string{"eth0", "net1"}, []string{"net2", "net3"}},
		{"zero base", []string{""}, 0, nil, []string{"net0"}},
		{"many skips", []string{"", "", "net1", "net2", "net3"}, 1, nil, []string{"net4", "net5", "net1", "net2", "net3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := mk(tc.ifaces...)
			if err := AssignInterfaceNames(es, tc.first, tc.reserved...); err != nil {
				t.Fatal(err)
			}
			if got := names(es); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	err := AssignInterfaceNames(mk("", "eth0"), 1, "eth0")
	checkErr(t, err, codeInvalid, "element 1", `"eth0"`, "cluster or default network")
	checkErr(t, AssignInterfaceNames(mk(""), -1), codeInvalid, "-1")
	checkErr(t, AssignInterfaceNames(mk(""), 1e13), codeInvalid, "too long")
	checkErr(t, AssignInterfaceNames(mk("bad name"), 1), codeInvalid, `"interface"`)
}

func TestAssignInterfaceNamesLinear(t *testing.T) {
	// Half automatic elements first, then explicit net1..netN: every automatic
	// element must skip all the explicit names without rescanning them.
	const n = 20000
	es := make([]NetworkSelectionElement, 2*n)
	for i := 0; i < n; i++ {
		es[n+i].Interface = "net" + itoa(i+1)
	}
	start := time.Now()
	if err := AssignInterfaceNames(es, 1); err != nil {
		t.Fatal(err)
	}
	if es[0].IfName != "net"+itoa(n+1) || es[n-1].IfName != "net"+itoa(2*n) {
		t.Errorf("got %s..%s", es[0].IfName, es[n-1].IfName)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
