package netconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// Seeds are also committed under testdata/fuzz/<FuzzName>/, which plain
// `go test` replays; f.Add keeps a few here so the fuzzers read on their own.

// mustCNIError fails unless err is a *types.Error with code 6 or 7.
func mustCNIError(t *testing.T, err error) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) || (te.Code != types.ErrDecodingFailure && te.Code != types.ErrInvalidNetworkConfig) {
		t.Fatalf("error %v (%T) is not a *types.Error with code 6 or 7", err, err)
	}
}

func FuzzParseNetworkSelection(f *testing.F) {
	f.Add("a,b, ns/c , ns/d@net5", "default")
	f.Add(`[{"name":"a","interface":"net2"},{"name":"b"},{"name":"c","default-route":["10.0.0.1","fd00::1"],"steer":{"multicast":["239.0.0.0/8"]}}]`, "pod-ns")
	f.Fuzz(func(t *testing.T, annotation, podNS string) {
		elems, err := ParseNetworkSelection(annotation, podNS)
		if err != nil {
			mustCNIError(t, err)
			return
		}
		checkSelection(t, elems)
		if len(elems) == 0 {
			return // nil marshals as "null", which is a network name
		}
		// Writing the result back as JSON, with the assigned names, must
		// parse to the same networks and names.
		for i := range elems {
			elems[i].Interface, elems[i].InterfaceRequest = elems[i].IfName, ""
		}
		doc, err := json.Marshal(elems)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if len(doc) > MaxAnnotationSize {
			return
		}
		again, err := ParseNetworkSelection(string(doc), "other-ns")
		if err != nil {
			t.Fatalf("re-parse of %s: %v", doc, err)
		}
		for i := range again {
			again[i].Interface = again[i].IfName
		}
		if !reflect.DeepEqual(again, elems) {
			t.Fatalf("round trip changed the selection:\n%+v\n%+v", elems, again)
		}
	})
}

// checkSelection asserts the invariants of a successful parse.
func checkSelection(t *testing.T, elems []NetworkSelectionElement) {
	t.Helper()
	seen := map[string]bool{}
	v4, v6 := 0, 0
	for i, e := range elems {
		if !isDNS1123Subdomain(e.Name) || !isDNS1123Label(e.Namespace) {
			t.Fatalf("element %d: bad name %q/%q", i, e.Namespace, e.Name)
		}
		if err := ValidateInterfaceName(e.IfName); err != nil || len(e.IfName) > MaxInterfaceNameLen {
			t.Fatalf("element %d: IfName %q: %v", i, e.IfName, err)
		}
		if e.Interface != "" && e.Interface != e.IfName {
			t.Fatalf("element %d: Interface %q but IfName %q", i, e.Interface, e.IfName)
		}
		if seen[e.IfName] {
			t.Fatalf("element %d: IfName %q is not unique", i, e.IfName)
		}
		seen[e.IfName] = true
		for _, gw := range e.DefaultRoute {
			if ip := net.ParseIP(gw); ip == nil {
				t.Fatalf("element %d: gateway %q", i, gw)
			} else if ip.To4() != nil {
				v4++
			} else {
				v6++
			}
		}
		if _, ok := e.CNIArgs[PolicyKey]; ok {
			t.Fatalf("element %d: cni-args carries %q", i, PolicyKey)
		}
		if err := e.Steer.validate(); err != nil {
			t.Fatalf("element %d: steer: %v", i, err)
		}
	}
	if v4 > 1 || v6 > 1 {
		t.Fatalf("%d IPv4 and %d IPv6 default gateways", v4, v6)
	}
}

func FuzzParseConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"steer","type":"steer","clusterNetwork":"flannel","apiTimeout":"3s"}`))
	f.Add([]byte(`{"name":"steer","type":"steer","delegates":[{"type":"flannel"},{"plugins":[{"type":"macvlan"}]}],"globalNamespaces":"a, b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConf(data)
		if err != nil {
			mustCNIError(t, err)
			return
		}
		switch {
		case len(c.Delegates) > 0 && c.ClusterNetwork != "":
			t.Fatal("delegates and clusterNetwork both set")
		case len(c.Delegates) == 0 && c.ClusterNetwork == "" && c.SocketPath == "":
			t.Fatal("no network and no socket")
		case c.APITimeout <= 0:
			t.Fatalf("APITimeout %v", c.APITimeout)
		case c.ConfDir == "" || c.CNIDir == "" || c.BinDir == "" || !filepath.IsAbs(c.BPFFSRoot):
			t.Fatalf("bad dirs %+v", c)
		case c.SocketPath != "" && !filepath.IsAbs(c.SocketPath):
			t.Fatalf("relative socket %q", c.SocketPath)
		case !filepath.IsAbs(c.CNIDir) || !filepath.IsAbs(c.ConfDir) || !filepath.IsAbs(c.BinDir):
			t.Fatalf("relative dirs %+v", c)
		case !isDNS1123Label(c.Namespace):
			t.Fatalf("namespace %q", c.Namespace)
		case c.LogLevel != "" && !isLogLevel(c.LogLevel):
			t.Fatalf("logLevel %q", c.LogLevel)
		case c.LogFile != "" && !filepath.IsAbs(c.LogFile):
			t.Fatalf("relative logFile %q", c.LogFile)
		case c.LogOptions.MaxAge < 0 || c.LogOptions.MaxSize < 0 || c.LogOptions.MaxBackups < 0:
			t.Fatalf("logOptions %+v", c.LogOptions)
		case !bytes.Equal(c.Raw, data):
			t.Fatal("Raw differs from the input")
		}
		for i, d := range c.Delegates {
			if _, err := Inspect(d); err != nil || !bytes.Contains(data, d) {
				t.Fatalf("delegate %d (%s) invalid or not from the input: %v", i, d, err)
			}
		}
	})
}

func FuzzResolvePolicy(f *testing.F) {
	f.Add([]byte(`{"type":"macvlan","steer":{"steering":false,"multicast":["239.1.1.0/24","ff0e::1:1/128"],"gateway":"10.0.0.1"}}`), []byte(`{"multicast":[]}`))
	f.Add([]byte(`{"plugins":[{"type":"a"}]}`), []byte(`{"gateway":"fe80::1","steering":true}`))
	f.Add([]byte(`{"type":"a","steer":{"gateway":["192.0.2.1","2001:db8:2::1"]}}`), []byte(`{"gateway":[]}`))
	f.Fuzz(func(t *testing.T, conf, elemSteer []byte) {
		spec, err := ParsePolicySpec(elemSteer)
		if err != nil {
			mustCNIError(t, err)
			spec = nil
		}
		elem := &NetworkSelectionElement{Name: "n", Namespace: "ns", Steer: spec}
		pol, err := ResolvePolicy(conf, elem)
		if err != nil {
			mustCNIError(t, err)
			return
		}
		if len(pol.Multicast) > MaxMulticastGroups {
			t.Fatalf("%d groups", len(pol.Multicast))
		}
		seen := map[netip.Prefix]bool{}
		for _, p := range pol.Multicast {
			in4 := p.Addr().Is4() && p.Bits() >= 4 && mcast4.Contains(p.Addr())
			in6 := p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() >= 8 && mcast6.Contains(p.Addr())
			if !(in4 || in6) || p != p.Masked() || seen[p] || p.Addr().Zone() != "" {
				t.Fatalf("group %v is not a unique, masked multicast prefix", p)
			}
			seen[p] = true
		}
		if len(pol.Gateways) > 2 || len(pol.Gateways) == 2 && pol.Gateways[0].Is4() == pol.Gateways[1].Is4() {
			t.Fatalf("gateways %v: more than one per family", pol.Gateways)
		}
		for _, g := range pol.Gateways {
			if !g.IsValid() || g.IsMulticast() || g.IsUnspecified() || g.IsLoopback() || g.Zone() != "" || g.Is4In6() {
				t.Fatalf("gateway %v", g)
			}
		}
		if spec != nil && spec.Steering != nil && pol.Steering != *spec.Steering {
			t.Fatal("element steering override lost")
		}
	})
}

func FuzzNetworkConfig(f *testing.F) {
	f.Add(`{"cniVersion":"1.0.0","type":"macvlan","master":"eth1"}`)
	f.Add(`{"name":"","plugins":[{"type":"bridge"}], "x": [1, {"y": "\u00e9"}]}`)
	f.Fuzz(func(t *testing.T, nadConfig string) {
		if len(bytes.TrimSpace([]byte(nadConfig))) == 0 {
			return // that path reads confDir; covered by table tests
		}
		out, err := NetworkConfig("nad", nadConfig, "/nonexistent")
		if err != nil {
			mustCNIError(t, err)
			return
		}
		info, err := Inspect(out)
		if err != nil || !json.Valid(out) {
			t.Fatalf("output %s invalid: %v", out, err)
		}
		before, _ := objectMembers([]byte(nadConfig))
		after, err := objectMembers(out)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := confName(out)
		if prev, _ := confName([]byte(nadConfig)); prev != "" {
			if string(out) != nadConfig {
				t.Fatal("config with a name was modified")
			}
			return
		}
		if name != "nad" || info.Name == "" {
			t.Fatalf("name not injected: %s", out)
		}
		// Every member but "name" keeps its exact bytes.
		var kept []string
		for _, m := range after {
			if m.key != "name" {
				kept = append(kept, string(out[m.val.start:m.val.end]))
			}
		}
		var want []string
		for _, m := range before {
			if m.key != "name" {
				want = append(want, nadConfig[m.val.start:m.val.end])
			}
		}
		if !reflect.DeepEqual(kept, want) {
			t.Fatalf("members changed:\n%q\n%q", want, kept)
		}
	})
}

func FuzzMergeCNIArgs(f *testing.F) {
	f.Add([]byte(`{"type":"a","args":{"cni":{"x":1}}}`), []byte(`{"x":2,"y":"z"}`))
	f.Add([]byte(`{"plugins":[{"type":"a"},{"type":"b","args":null}]}`), []byte(`{"n":1e400}`))
	f.Fuzz(func(t *testing.T, conf, argsJSON []byte) {
		var args map[string]any
		dec := json.NewDecoder(bytes.NewReader(argsJSON))
		dec.UseNumber()
		if dec.Decode(&args) != nil {
			return
		}
		out, err := MergeCNIArgs(conf, args)
		if err != nil {
			mustCNIError(t, err)
			return
		}
		info, err := Inspect(out)
		if err != nil {
			t.Fatalf("output %s: %v", out, err)
		}
		if len(args) == 0 {
			return
		}
		objs := [][]byte{out}
		if info.IsList {
			plugins := exactMember(t, out, "plugins")
			spans, err := arrayElems(plugins)
			if err != nil {
				t.Fatal(err)
			}
			objs = nil
			for _, sp := range spans {
				objs = append(objs, plugins[sp.start:sp.end])
			}
		}
		for _, o := range objs {
			// Exact keys, last duplicate wins: what MergeCNIArgs edits.
			cni := exactMember(t, exactMember(t, o, "args"), "cni")
			var got map[string]any
			d := json.NewDecoder(bytes.NewReader(cni))
			d.UseNumber()
			if err := d.Decode(&got); err != nil {
				t.Fatalf("%s: %v", o, err)
			}
			for k, v := range args {
				if !reflect.DeepEqual(got[k], v) {
					t.Fatalf("args.cni[%q] = %#v, want %#v in %s", k, got[k], v, o)
				}
			}
		}
	})
}

func exactMember(t *testing.T, obj []byte, key string) []byte {
	t.Helper()
	ms, err := objectMembers(obj)
	if err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	sp, ok := lastMember(ms, key)
	if !ok {
		t.Fatalf("%s has no %q", obj, key)
	}
	return obj[sp.start:sp.end]
}
