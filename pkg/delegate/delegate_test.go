package delegate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// fakeExec plays plugins in-process: it records every call and answers ADD with a result
// naming CNI_IFNAME, in the configuration's version.
type fakeExec struct {
	plugins map[string]bool // installed plugin types
	fail    map[string]bool // "<type> <COMMAND>" that fail
	calls   []call
}

type call struct {
	typ, cmd string
	stdin    map[string]any
	env      map[string]string
}

func (f *fakeExec) ExecPlugin(_ context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var conf map[string]any
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return nil, err
	}
	typ := filepath.Base(path)
	f.calls = append(f.calls, call{typ, env["CNI_COMMAND"], conf, env})
	if f.fail[typ+" "+env["CNI_COMMAND"]] {
		return nil, types.NewError(types.ErrTryAgainLater, typ+" failed on purpose", "")
	}
	if env["CNI_COMMAND"] != "ADD" {
		return nil, nil
	}
	ver, _ := conf["cniVersion"].(string)
	res := map[string]any{
		"cniVersion": ver,
		"ips":        []map[string]any{{"address": "10.1.0.5/24", "gateway": "10.1.0.1"}},
	}
	if ver >= "0.3.0" {
		res["interfaces"] = []map[string]any{{"name": env["CNI_IFNAME"], "sandbox": env["CNI_NETNS"]}}
	} else {
		res["ip4"] = map[string]any{"ip": "10.1.0.5/24"}
		delete(res, "ips")
	}
	return json.Marshal(res)
}

func (f *fakeExec) FindInPath(plugin string, paths []string) (string, error) {
	if !f.plugins[plugin] {
		return "", fmt.Errorf("failed to find plugin %q in path %s", plugin, paths)
	}
	return filepath.Join(paths[0], plugin), nil
}

func (f *fakeExec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}

func (f *fakeExec) commands() []string {
	var out []string
	for _, c := range f.calls {
		out = append(out, c.typ+" "+c.cmd)
	}
	return out
}

func newFake(t *testing.T, plugins ...string) (*fakeExec, *Runner, string) {
	t.Helper()
	f := &fakeExec{plugins: map[string]bool{}, fail: map[string]bool{}}
	for _, p := range plugins {
		f.plugins[p] = true
	}
	cache := t.TempDir()
	return f, NewRunner([]string{"/opt/cni/bin"}, cache, f), cache
}

func target(ifname string) Target {
	return Target{ContainerID: "c1", NetNS: "/run/netns/pod", IfName: ifname, Args: [][2]string{{"IgnoreUnknown", "true"}}}
}

// A configuration the Multus 4.3 cache drops fields of: bridge, ipam.ranges, a plugin-specific
// key, and a number that a float64 round trip would still keep.
const bridgeConf = `{"cniVersion":"1.1.0","name":"cbr0","type":"bridge","bridge":"cni0","vendorKey":{"x":[1,2]},
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]}}`

func TestParseKeepsBytesAndWrapsSingleConf(t *testing.T) {
	n, err := Parse([]byte(bridgeConf), "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if string(n.Raw) != bridgeConf {
		t.Errorf("Raw changed:\n%s", n.Raw)
	}
	if n.Name != "cbr0" || n.CNIVersion != "1.1.0" || !slices.Equal(n.Types(), []string{"bridge"}) {
		t.Errorf("parsed %q %q %v", n.Name, n.CNIVersion, n.Types())
	}

	f, r, _ := newFake(t, "bridge")
	if _, err := r.Add(t.Context(), n, target("eth0")); err != nil {
		t.Fatal(err)
	}
	got := f.calls[0].stdin
	ipam, _ := got["ipam"].(map[string]any)
	if got["bridge"] != "cni0" || got["vendorKey"] == nil || ipam["ranges"] == nil {
		t.Errorf("plugin did not get every field of the raw config: %v", got)
	}
}

func TestParseFallbackVersionAndList(t *testing.T) {
	list := `{"name":"chain","plugins":[{"type":"macvlan","master":"eth1"},{"type":"tuning","capabilities":{"mac":true}}]}`
	n, err := Parse([]byte(list), "0.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if n.CNIVersion != "0.4.0" || !slices.Equal(n.Types(), []string{"macvlan", "tuning"}) || !n.Capabilities()["mac"] {
		t.Fatalf("got %q %v %v", n.CNIVersion, n.Types(), n.Capabilities())
	}
	f, r, _ := newFake(t, "macvlan", "tuning")
	tg := target("net1")
	tg.CapabilityArgs = map[string]any{"mac": "02:00:00:00:00:01", "ips": []string{"10.0.0.1/24"}}
	if _, err := r.Add(t.Context(), n, tg); err != nil {
		t.Fatal(err)
	}
	if err := r.Del(t.Context(), n, tg); err != nil {
		t.Fatal(err)
	}
	want := []string{"macvlan ADD", "tuning ADD", "tuning DEL", "macvlan DEL"}
	if got := f.commands(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	if v := f.calls[0].stdin["cniVersion"]; v != "0.4.0" {
		t.Errorf("plugin got cniVersion %v, want the fallback", v)
	}
	rc, _ := f.calls[1].stdin["runtimeConfig"].(map[string]any)
	if rc["mac"] != "02:00:00:00:00:01" || rc["ips"] != nil {
		t.Errorf("tuning runtimeConfig %v: want only the declared mac capability", rc)
	}
	if f.calls[3].stdin["prevResult"] == nil {
		t.Error("DEL got no prevResult from libcni's cache")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		conf string
		code uint
		msg  string
	}{
		{`{"name":`, types.ErrDecodingFailure, "does not decode"},
		{`{"name":"x","type":"bridge","capabilities":[]}`, types.ErrDecodingFailure, "error parsing configuration"},
		{`{"type":"bridge"}`, types.ErrInvalidNetworkConfig, `no "name"`},
		{`{"name":"x"}`, types.ErrInvalidNetworkConfig, `neither "type" nor "plugins"`},
		{`{"name":"x","plugins":[]}`, types.ErrInvalidNetworkConfig, `"plugins" is empty`},
		{`{"name":"x","plugins":[{"master":"eth0"}]}`, types.ErrDecodingFailure, "missing 'type'"},
	} {
		_, err := Parse([]byte(tc.conf), "1.0.0")
		var te *types.Error
		if !errors.As(err, &te) || te.Code != tc.code || !strings.Contains(te.Msg, tc.msg) {
			t.Errorf("Parse(%s) = %v, want code %d containing %q", tc.conf, err, tc.code, tc.msg)
		}
	}
}

func TestFindPlugins(t *testing.T) {
	_, r, _ := newFake(t, "macvlan")
	n, err := Parse([]byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"macvlan"},{"type":"nope"}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.FindPlugins(n); !errors.Is(err, ErrPluginNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("FindPlugins = %v, want ErrPluginNotFound naming nope", err)
	}
}

func TestAddConvertsOldResults(t *testing.T) {
	_, r, _ := newFake(t, "bridge")
	for _, v := range []string{"0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		n, err := Parse([]byte(`{"cniVersion":"`+v+`","name":"n","type":"bridge"}`), "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Add(t.Context(), n, target("eth0"))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.1.0.5/24" {
			t.Errorf("%s: converted result %+v", v, res)
		}
	}
}

func TestCheckSkipsOldVersions(t *testing.T) {
	f, r, _ := newFake(t, "bridge")
	old, _ := Parse([]byte(`{"cniVersion":"0.3.1","name":"n","type":"bridge"}`), "")
	if err := r.Check(t.Context(), old, target("eth0")); err != nil || len(f.calls) != 0 {
		t.Errorf("CHECK of 0.3.1: err %v, calls %v; want a no-op", err, f.commands())
	}
	n, _ := Parse([]byte(bridgeConf), "")
	if _, err := r.Add(t.Context(), n, target("eth0")); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(t.Context(), n, target("eth0")); err != nil {
		t.Fatal(err)
	}
	if c := f.calls[len(f.calls)-1]; c.cmd != "CHECK" || c.stdin["prevResult"] == nil {
		t.Errorf("last call %s %v, want CHECK with prevResult", c.cmd, c.stdin)
	}
}

func TestGCDeletesStaleAndSendsValid(t *testing.T) {
	f, r, cache := newFake(t, "bridge")
	n, _ := Parse([]byte(bridgeConf), "")
	for _, id := range []string{"live", "dead"} {
		tg := target("eth0")
		tg.ContainerID = id
		if _, err := r.Add(t.Context(), n, tg); err != nil {
			t.Fatal(err)
		}
	}
	f.calls = nil
	valid := []types.GCAttachment{{ContainerID: "live", IfName: "eth0"}}
	if err := r.GC(t.Context(), n, valid); err != nil {
		t.Fatal(err)
	}
	if got := f.commands(); !slices.Equal(got, []string{"bridge DEL", "bridge GC"}) {
		t.Fatalf("calls %v, want a DEL of the stale attachment then GC", got)
	}
	if f.calls[0].env["CNI_CONTAINERID"] != "dead" {
		t.Errorf("DEL went to %q", f.calls[0].env["CNI_CONTAINERID"])
	}
	va, _ := json.Marshal(f.calls[1].stdin["cni.dev/valid-attachments"])
	if string(va) != `[{"containerID":"live","ifname":"eth0"}]` {
		t.Errorf("GC valid attachments %s", va)
	}
	left, _ := filepath.Glob(filepath.Join(cache, "results", "*"))
	if len(left) != 1 || !strings.Contains(left[0], "live") {
		t.Errorf("libcni cache after GC: %v", left)
	}
}

func TestStatusAndErrorsKeepCode(t *testing.T) {
	f, r, _ := newFake(t, "bridge")
	n, _ := Parse([]byte(bridgeConf), "")
	if err := r.Status(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	f.fail["bridge STATUS"] = true
	var te *types.Error
	if err := r.Status(t.Context(), n); !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Errorf("Status = %v, want the plugin's code 11", err)
	}
	f.fail["bridge ADD"] = true
	if _, err := r.Add(t.Context(), n, target("eth0")); !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Errorf("Add = %v, want the plugin's code 11", err)
	}
	old, _ := Parse([]byte(`{"cniVersion":"1.0.0","name":"n","type":"bridge"}`), "")
	f.calls = nil
	if err := r.Status(t.Context(), old); err != nil || len(f.calls) != 0 {
		t.Errorf("STATUS of a 1.0.0 network: %v %v, want ready without a call", err, f.commands())
	}
}

func TestRollback(t *testing.T) {
	var order []string
	var rb Rollback
	for _, name := range []string{"eth0", "net1", "net2"} {
		rb.Push(name, func(context.Context) error {
			order = append(order, name)
			if name == "net1" {
				return errors.New("boom")
			}
			return nil
		})
	}
	if rb.Len() != 3 {
		t.Fatalf("Len = %d", rb.Len())
	}
	err := rb.Run(t.Context())
	if !slices.Equal(order, []string{"net2", "net1", "eth0"}) {
		t.Errorf("undo order %v, want last first and no stop at a failure", order)
	}
	if err == nil || err.Error() != "undo net1: boom" {
		t.Errorf("Run = %v", err)
	}
	if rb.Len() != 0 || rb.Run(t.Context()) != nil {
		t.Error("steps kept after Run")
	}
}
