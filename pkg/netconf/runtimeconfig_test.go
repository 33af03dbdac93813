package netconf

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRuntimeConfig(t *testing.T) {
	conf := []byte(`{"name":"l","plugins":[
	  {"type":"macvlan","capabilities":{"ips":true}},
	  {"type":"tuning","capabilities":{"mac":true,"infinibandGUID":true}},
	  {"type":"portmap","capabilities":{"portMappings":true}},
	  {"type":"bandwidth","capabilities":{"bandwidth":true,"deviceID":true}}]}`)
	elem := NetworkSelectionElement{
		Name: "l", Namespace: "ns", IPs: []string{"10.0.0.5/24"}, MAC: "02:00:00:00:00:01",
		PortMappings:   []PortMapping{{HostPort: 1, ContainerPort: 2}},
		Bandwidth:      &Bandwidth{IngressRate: 9},
		InfinibandGUID: "c2:11:22:33:44:55:66:77", DeviceID: "0000:03:00.1",
	}
	got, _, err := RuntimeConfig(elem, conf, true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"ips": elem.IPs, "mac": elem.MAC, "portMappings": elem.PortMappings, "bandwidth": elem.Bandwidth,
		"infinibandGUID": elem.InfinibandGUID, "deviceID": elem.DeviceID,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	b, _ := json.Marshal(got["portMappings"])
	if string(b) != `[{"hostPort":1,"containerPort":2}]` {
		t.Errorf("portMappings encode as %s", b)
	}

	empty, _, err := RuntimeConfig(NetworkSelectionElement{Name: "x", Namespace: "ns"}, []byte(`{"type":"macvlan"}`), true)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("nothing requested: %v, %v", empty, err)
	}
	// deviceID without the capability is dropped, not an error (Multus).
	rc, _, err := RuntimeConfig(NetworkSelectionElement{Name: "x", Namespace: "ns", DeviceID: "d"}, []byte(`{"type":"sriov"}`), true)
	if err != nil || len(rc) != 0 {
		t.Errorf("undeclared deviceID: %v, %v", rc, err)
	}
}

func TestRuntimeConfigErrors(t *testing.T) {
	single := []byte(`{"name":"lan","type":"macvlan","capabilities":{"ips":true,"mac":false}}`)
	base := NetworkSelectionElement{Name: "lan", Namespace: "ns"}
	for _, tc := range []struct {
		name   string
		mutate func(*NetworkSelectionElement)
		want   []string
	}{
		{"mac", func(e *NetworkSelectionElement) { e.MAC = "02:00:00:00:00:01" }, []string{`"ns/lan"`, `"mac"`, `["ips"]`}},
		{"portMappings", func(e *NetworkSelectionElement) { e.PortMappings = []PortMapping{{HostPort: 1, ContainerPort: 1}} }, []string{`"portMappings"`}},
		{"bandwidth", func(e *NetworkSelectionElement) { e.Bandwidth = &Bandwidth{} }, []string{`"bandwidth"`}},
		{"infiniband-guid", func(e *NetworkSelectionElement) { e.InfinibandGUID = "x" }, []string{`"infiniband-guid"`, `"infinibandGUID"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			tc.mutate(&e)
			_, _, err := RuntimeConfig(e, single, true)
			checkErr(t, err, codeInvalid, tc.want...)
		})
	}
	_, _, err := RuntimeConfig(NetworkSelectionElement{Name: "a", Namespace: "b", IPs: []string{"10.0.0.1"}}, []byte(`{"type":"a"}`), true)
	checkErr(t, err, codeInvalid, `"ips"`, "none")
	_, _, err = RuntimeConfig(base, []byte(`{`), true)
	checkErr(t, err, codeDecode, `"ns/lan"`)
}

// Without strict, an undeclared capability is accepted as Multus does: left out of the
// capability arguments (libcni drops it anyway) and reported for a warning.
func TestRuntimeConfigLenient(t *testing.T) {
	single := []byte(`{"name":"lan","type":"macvlan","capabilities":{"ips":true}}`)
	elem := NetworkSelectionElement{Name: "lan", Namespace: "ns", IPs: []string{"10.0.0.5/24"}, MAC: "02:00:00:00:00:01",
		PortMappings: []PortMapping{{HostPort: 1, ContainerPort: 2}}, Bandwidth: &Bandwidth{IngressRate: 9}}
	rc, undeclared, err := RuntimeConfig(elem, single, false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rc, map[string]any{"ips": elem.IPs}) || !reflect.DeepEqual(undeclared, []string{"mac", "portMappings", "bandwidth"}) {
		t.Errorf("rc %v, undeclared %v", rc, undeclared)
	}
	_, _, err = RuntimeConfig(elem, []byte(`{`), false)
	checkErr(t, err, codeDecode, `"ns/lan"`)
}

// Multus' DelegateAdd: MAC first, then the IPs joined by commas; here only for undeclared
// capabilities.
func TestLegacyArgs(t *testing.T) {
	elem := NetworkSelectionElement{IPs: []string{"10.0.0.5/24", "fd00::5/64"}, MAC: "02:00:00:00:00:01"}
	got := LegacyArgs(elem, []string{"portMappings", "ips", "mac"})
	want := [][2]string{{"MAC", "02:00:00:00:00:01"}, {"IP", "10.0.0.5/24,fd00::5/64"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := LegacyArgs(elem, []string{"ips"}); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("mac declared: %v", got)
	}
	if got := LegacyArgs(elem, nil); got != nil {
		t.Errorf("all declared: %v", got)
	}
}

func TestMergeCNIArgs(t *testing.T) {
	args := map[string]any{"vlan": json.Number("10"), "label": "a<b", "big": json.Number("123456789012345678901234567890")}
	for _, tc := range []struct{ name, in, want string }{
		{"single, no args",
			`{"type":"macvlan", "ipam": {"type":"static"} }`,
			`{"type":"macvlan", "ipam": {"type":"static"},"args":{"cni":{"big":123456789012345678901234567890,"label":"a\u003cb","vlan":10}} }`},
		{"single, args.cni merged, annotation wins",
			`{"type":"a","args":{"cni":{"vlan":1,"keep":true},"other":{}}}`,
			`{"type":"a","args":{"cni":{"vlan":10,"keep":true,"big":123456789012345678901234567890,"label":"a\u003cb"},"other":{}}}`},
		{"single, null args",
			`{"type":"a","args":null}`,
			`{"type":"a","args":{"cni":{"big":123456789012345678901234567890,"label":"a\u003cb","vlan":10}}}`},
		{"list, every plugin",
			"{\"name\":\"l\",\"plugins\":[ {\"type\":\"a\"},\n {\"type\":\"b\",\"args\":{\"cni\":{}}} ],\"x\":1.0}",
			"{\"name\":\"l\",\"plugins\":[ {\"type\":\"a\",\"args\":{\"cni\":{\"big\":123456789012345678901234567890,\"label\":\"a\\u003cb\",\"vlan\":10}}},\n {\"type\":\"b\",\"args\":{\"cni\":{\"big\":123456789012345678901234567890,\"label\":\"a\\u003cb\",\"vlan\":10}}} ],\"x\":1.0}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MergeCNIArgs([]byte(tc.in), args)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	in := []byte(`{"type":"a", "z":1}`)
	if got, err := MergeCNIArgs(in, nil); err != nil || string(got) != string(in) {
		t.Errorf("no args: %s, %v", got, err)
	}
}

func TestMergeCNIArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		args     map[string]any
		code     uint
		want     []string
	}{
		{"steer key", `{"type":"a"}`, map[string]any{"steer": map[string]any{}}, codeInvalid, []string{`"steer"`}},
		{"args not object", `{"name":"n","type":"a","args":[]}`, map[string]any{"k": 1}, codeInvalid, []string{`"n"`, "args"}},
		{"args.cni not object", `{"type":"a","args":{"cni":"x"}}`, map[string]any{"k": 1}, codeInvalid, []string{"args.cni"}},
		{"plugin args not object", `{"plugins":[{"type":"a"},{"type":"b","args":1}]}`, map[string]any{"k": 1}, codeInvalid, []string{"plugins[1].args"}},
		{"unmarshallable value", `{"type":"a"}`, map[string]any{"k": make(chan int)}, codeInvalid, []string{`"k"`}},
		{"not a config", `{"x":1}`, map[string]any{"k": 1}, codeInvalid, []string{`"type"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := MergeCNIArgs([]byte(tc.in), tc.args)
			checkErr(t, err, tc.code, tc.want...)
		})
	}
}
