package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// fakeExec plays every plugin in-process. ADD answers with one pod interface named
// CNI_IFNAME and an address from a counter; "fail" makes "<type> <COMMAND> <ifname>" fail.
type fakeExec struct {
	mu      sync.Mutex
	missing map[string]bool
	fail    map[string]bool
	calls   []fakeCall
	next    int
}

type fakeCall struct {
	Cmd, Type, IfName, ContainerID string
	Args                           string // CNI_ARGS
	Stdin                          []byte
}

func (c fakeCall) String() string { return c.Type + " " + c.Cmd + " " + c.IfName }

func newFakeExec() *fakeExec { return &fakeExec{missing: map[string]bool{}, fail: map[string]bool{}} }

func (f *fakeExec) ExecPlugin(_ context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	c := fakeCall{Cmd: env["CNI_COMMAND"], Type: filepath.Base(path), IfName: env["CNI_IFNAME"], ContainerID: env["CNI_CONTAINERID"], Args: env["CNI_ARGS"], Stdin: stdin}
	f.calls = append(f.calls, c)
	if f.fail[c.String()] {
		return nil, types.NewError(types.ErrTryAgainLater, c.String()+" failed on purpose", "")
	}
	if c.Cmd != "ADD" {
		return nil, nil
	}
	var conf struct {
		CNIVersion    string         `json:"cniVersion"`
		RuntimeConfig map[string]any `json:"runtimeConfig"`
	}
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return nil, err
	}
	if p, ok := conf.RuntimeConfig[deviceInfoCapability].(string); ok {
		if err := os.WriteFile(p, []byte(`{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:00.1"}}`), 0o600); err != nil {
			return nil, err
		}
	}
	f.next++
	return json.Marshal(map[string]any{
		"cniVersion": conf.CNIVersion,
		"interfaces": []map[string]any{{"name": c.IfName, "mac": fmt.Sprintf("02:00:00:00:00:%02x", f.next), "sandbox": env["CNI_NETNS"]}},
		"ips":        []map[string]any{{"address": fmt.Sprintf("10.0.%d.2/24", f.next), "gateway": fmt.Sprintf("10.0.%d.1", f.next), "interface": 0}},
		"routes":     []map[string]any{{"dst": "0.0.0.0/0"}},
		"dns":        map[string]any{"nameservers": []string{"10.96.0.10"}},
	})
}

func (f *fakeExec) FindInPath(plugin string, paths []string) (string, error) {
	if f.missing[plugin] {
		return "", fmt.Errorf("failed to find plugin %q in path %s", plugin, paths)
	}
	return filepath.Join(paths[0], plugin), nil
}

func (f *fakeExec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}

// seq lists the calls as "type CMD ifname", optionally only those of one command.
func (f *fakeExec) seq(cmd string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if cmd == "" || c.Cmd == cmd {
			out = append(out, c.String())
		}
	}
	return out
}

func (f *fakeExec) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// fakeAPI is an in-memory apiserver: pods, NADs and the network-status written.
type fakeAPI struct {
	mu        sync.Mutex
	pods      map[string]*k8s.Pod
	nads      map[string]string // "ns/name" -> spec.config
	status    map[string][]k8s.NetworkStatus
	err       error // returned by every call when set
	statusErr error
	events    []string // "ns/name reason: message"
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{pods: map[string]*k8s.Pod{}, nads: map[string]string{}, status: map[string][]k8s.NetworkStatus{}}
}

type fakePods struct{ *fakeAPI }
type fakeNADs struct{ *fakeAPI }

func (f fakePods) Get(_ context.Context, ns, name string) (*k8s.Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	p, ok := f.pods[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
	}
	return p, nil
}

func (f fakePods) SetNetworkStatus(_ context.Context, ns, name, _ string, st []k8s.NetworkStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := errors.Join(f.err, f.statusErr); err != nil {
		return err
	}
	if st == nil {
		delete(f.status, ns+"/"+name)
	} else {
		f.status[ns+"/"+name] = st
	}
	return nil
}

func (f fakePods) Warn(_ context.Context, pod *k8s.Pod, _, reason, message string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.events = append(f.events, pod.Namespace+"/"+pod.Name+" "+reason+": "+message)
	return nil
}

func (f fakeNADs) Get(_ context.Context, ns, name string) (*k8s.NetworkAttachmentDefinition, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	c, ok := f.nads[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "k8s.cni.cncf.io", Resource: "network-attachment-definitions"}, name)
	}
	nad := &k8s.NetworkAttachmentDefinition{Spec: k8s.NetworkAttachmentDefinitionSpec{Config: c}}
	nad.Namespace, nad.Name = ns, name
	return nad, nil
}

// recorder is a Dataplane that records calls into the fake exec's log, so their order
// relative to the delegates shows.
type recorder struct {
	f         *fakeExec
	attachErr error
	checkErr  error
	atts      []steering.Attachment
	checked   []steering.Attachment
	prepared  []steering.Attachment
}

func (r *recorder) Prepare(atts []steering.Attachment) {
	r.prepared = atts
	r.f.calls = append(r.f.calls, fakeCall{Cmd: "PREPARE", Type: "steering"})
}

func (r *recorder) Attach(_ context.Context, _, _ string, atts []steering.Attachment) error {
	r.atts = atts
	r.f.calls = append(r.f.calls, fakeCall{Cmd: "ATTACH", Type: "steering"})
	return r.attachErr
}

func (r *recorder) Detach(context.Context, string, string) error {
	r.f.calls = append(r.f.calls, fakeCall{Cmd: "DETACH", Type: "steering"})
	return nil
}

func (r *recorder) Check(_ context.Context, _, _ string, atts []steering.Attachment) error {
	r.checked = atts
	r.f.calls = append(r.f.calls, fakeCall{Cmd: "CHECK", Type: "steering"})
	return r.checkErr
}

// env is one engine under test with its fakes, a conf dir and a real (empty) pod netns.
type env struct {
	t     *testing.T
	exec  *fakeExec
	api   *fakeAPI
	dp    *recorder
	eng   *Engine
	dir   string
	netns string
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, exec: newFakeExec(), api: newFakeAPI(), dir: t.TempDir(), netns: nstest.NewNS(t).Path()}
	e.dp = &recorder{f: e.exec}
	e.eng = New(Options{Pods: fakePods{e.api}, NADs: fakeNADs{e.api}, Status: fakePods{e.api}, Events: fakePods{e.api}, Dataplane: e.dp, Exec: e.exec})
	if err := os.MkdirAll(filepath.Join(e.dir, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The cluster network, as a file in confDir.
	e.writeConf("10-cluster.conf", `{"cniVersion":"1.1.0","name":"cluster","type":"clusterplugin","capabilities":{"portMappings":true}}`)
	return e
}

func (e *env) writeConf(file, conf string) {
	if err := os.MkdirAll(filepath.Dir(filepath.Join(e.dir, "net.d", file)), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "net.d", file), []byte(conf), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// conf is a steer config for the env, with extra JSON members appended.
func (e *env) conf(extra string) *netconf.Conf {
	e.t.Helper()
	raw := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"steer-net","type":"steer","clusterNetwork":"cluster",
 "confDir":%q,"cniDir":%q,"binDir":"/opt/cni/bin"%s}`, filepath.Join(e.dir, "net.d"), filepath.Join(e.dir, "cni"), extra)
	c, err := netconf.ParseConf([]byte(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) addPod(ns, name string, annotations map[string]string) *k8s.Pod {
	p := &k8s.Pod{Namespace: ns, Name: name, UID: "uid-" + name, Annotations: annotations}
	e.api.pods[ns+"/"+name] = p
	return p
}

func (e *env) args(cid string, pod *k8s.Pod, stdin []byte) *skel.CmdArgs {
	a := &skel.CmdArgs{ContainerID: cid, Netns: e.netns, IfName: "eth0", StdinData: stdin}
	if pod != nil {
		a.Args = fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s", pod.Namespace, pod.Name, pod.UID)
	}
	return a
}

func (e *env) cacheEntry(cid string) *cacheEntry {
	e.t.Helper()
	c, err := cacheStore{dir: filepath.Join(e.dir, "cni")}.read(cid)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) cacheExists(cid string) bool {
	_, err := os.Stat(filepath.Join(e.dir, "cni", cid+".json"))
	return err == nil
}

func cniCode(t *testing.T, err error) *types.Error {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("%v (%T) is not a *types.Error", err, err)
	}
	return te
}
