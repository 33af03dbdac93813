package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/pkg/k8s"
)

// pluginRun is what one exec of the steer binary did.
type pluginRun struct {
	exit           int
	stdout, stderr []byte
}

// cniError is the CNI error the plugin printed, or nil when it exited 0. A non-zero exit
// without a CNI error on stdout (a panic, a crash) fails the test.
func (r pluginRun) cniError(t *testing.T, verb string) *types.Error {
	t.Helper()
	if r.exit == 0 {
		return nil
	}
	var te types.Error
	if err := json.Unmarshal(r.stdout, &te); err != nil || te.Code == 0 || te.Msg == "" {
		t.Fatalf("%s exited %d without a CNI error on stdout (a crash?)\nstdout: %s\nstderr: %s", verb, r.exit, r.stdout, r.stderr)
	}
	return &te
}

// hostileCall is one set of CNI arguments; empty fields take the pod's own.
type hostileCall struct {
	containerID, ifName, cniArgs string
}

// execPlugin runs the steer binary from the node namespace with the environment a runtime
// sets, and conf on stdin. libcni (Node.Add) cannot be used: it refuses a bad CNI_CONTAINERID
// or CNI_IFNAME before any plugin runs, as containerd and CRI-O do through it; but a runtime
// that does not, or anyone allowed to exec the plugin, can pass them, so steer must refuse
// them itself. TMPDIR is tmp, which must stay empty.
func execPlugin(t *testing.T, f *fixture, verb string, p *cninode.Pod, c hostileCall, conf []byte, tmp string) pluginRun {
	t.Helper()
	id, ifName, cniArgs := p.ContainerID, "eth0", strings.Join([]string{"IgnoreUnknown=1",
		"K8S_POD_NAMESPACE=" + p.Namespace, "K8S_POD_NAME=" + p.Name,
		"K8S_POD_INFRA_CONTAINER_ID=" + p.ContainerID, "K8S_POD_UID=" + p.UID}, ";")
	if c.containerID != "" {
		id = c.containerID
	}
	if c.ifName != "" {
		ifName = c.ifName
	}
	if c.cniArgs != "" {
		cniArgs = c.cniArgs
	}
	cmd := exec.Command(filepath.Join(f.BinDir, "steer"))
	cmd.Env = []string{
		"CNI_COMMAND=" + verb, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + p.NetNS.Path(), "CNI_IFNAME=" + ifName,
		"CNI_ARGS=" + cniArgs, "CNI_PATH=" + f.BinDir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=" + tmp,
	}
	cmd.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var runErr error
	// Started from a thread in the node namespace, as a runtime on the node would.
	if err := f.Host.Do(func(ns.NetNS) error { runErr = cmd.Run(); return nil }); err != nil {
		t.Fatal(err)
	}
	r := pluginRun{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(runErr, &exitErr):
		r.exit = exitErr.ExitCode()
	case runErr != nil:
		t.Fatalf("exec steer: %v", runErr)
	}
	return r
}

// treeFiles lists every path under dir, relative to it.
func treeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(dir, path); rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// fuzzSeeds decodes the first string of each file of a Go fuzz corpus directory
// (`go test fuzz v1`, then one `string("...")` line per argument).
func fuzzSeeds(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string]string{}
	for _, fe := range files {
		data, err := os.ReadFile(filepath.Join(dir, fe.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus file", fe.Name())
		}
		arg, ok := strings.CutPrefix(strings.TrimSpace(lines[1]), "string(")
		arg, ok2 := strings.CutSuffix(arg, ")")
		if !ok || !ok2 {
			t.Fatalf("%s: first argument %q is not a string(...)", fe.Name(), lines[1])
		}
		if seeds[fe.Name()], err = strconv.Unquote(arg); err != nil {
			t.Fatalf("%s: %v", fe.Name(), err)
		}
	}
	return seeds
}

// Hostile input through the real plugin against a real apiserver: every ADD fails with a CNI
// error naming what is wrong (or, for odd but valid input, succeeds), DEL with the same
// arguments succeeds, nothing is left of the pod, and nothing is written outside Steer's
// directories: not under the test's root, not in /tmp, not on the bpffs.
//
// A NAD of another namespace under namespaceIsolation is TestBadInput's "NAD in a forbidden
// namespace"; here the namespace itself is hostile ("namespace traversal").
func TestHostileInput(t *testing.T) {
	f := setup(t)
	long := strings.Repeat("a", 300)
	// Networks for the fuzz seeds' selections to find.
	for i, name := range []string{"a", "b", "c"} {
		f.CreateNAD(t, f.ns, name, f.MacvlanConf(name, cninode.Masters[i%2], fmt.Sprintf("192.168.%d.0/24", 71+i)))
	}

	type tc struct {
		name     string
		call     hostileCall
		networks string // the pod's selection annotation
		prepare  func(*testing.T, *cninode.Pod)
		// codes are the CNI error codes ADD may fail with; none: ADD may also succeed.
		codes []uint
		msg   []string // substrings of the error; NS is the test namespace
		// payload is part of a name that must not appear under the test root, in /tmp or on
		// the bpffs.
		payload string
		// added checks a successful ADD (which it requires), before DEL.
		added func(*testing.T, *cninode.Pod)
	}
	cases := []tc{
		// CNI_CONTAINERID names the cache file and the pin directory. A NUL cannot be passed in
		// an environment variable (execve takes C strings): TestServeHostileArguments in
		// pkg/daemon sends "a\x00b" to steerd over its socket.
		{name: "container ID traversal", call: hostileCall{containerID: "../../../tmp/steer-escape"}, payload: "steer-escape"},
		{name: "container ID with a slash", call: hostileCall{containerID: "a/b"}},
		{name: "container ID of 300 bytes", call: hostileCall{containerID: long}, payload: long[:100]},
		{name: "container ID not ASCII", call: hostileCall{containerID: "pod-ü"}, payload: "pod-ü"},
		{name: "container ID with a leading dot", call: hostileCall{containerID: ".hidden-escape"}, payload: ".hidden-escape"},
		// CNI_IFNAME goes to the cluster network's delegates and into file names.
		{name: "ifname traversal", call: hostileCall{ifName: "../steer-escape"}, payload: "steer-escape"}, // 15 bytes
		{name: "ifname with a slash", call: hostileCall{ifName: "a/b"}},
		{name: "ifname of 300 bytes", call: hostileCall{ifName: long}},
		{name: "ifname with a zero-width space", call: hostileCall{ifName: "eth0\u200b"}},
		{name: "ifname with a bidi override", call: hostileCall{ifName: "\u202eeth0"}},
		{name: "ifname dot-dot", call: hostileCall{ifName: ".."}},
	}
	for i := range cases {
		c := &cases[i]
		c.networks, c.codes = "lan", []uint{types.ErrInvalidEnvironmentVariables}
		switch {
		case c.call.containerID != "":
			c.msg = []string{"CNI_CONTAINERID: ", strconv.Quote(c.call.containerID)}
		default:
			c.msg = []string{"CNI_IFNAME: ", strconv.Quote(c.call.ifName)}
		}
	}

	// Pod namespace and name from CNI_ARGS go into apiserver paths: anything Kubernetes could
	// not have named is refused before any request.
	cases = append(cases,
		tc{name: "pod namespace traversal", networks: "lan",
			call:  hostileCall{cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=../../etc;K8S_POD_NAME=a/b"},
			codes: []uint{types.ErrInvalidEnvironmentVariables}, msg: []string{"CNI_ARGS: ", `"../../etc"`}},
		tc{name: "pod name with a slash", networks: "lan",
			call:  hostileCall{cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=NS;K8S_POD_NAME=../escape"},
			codes: []uint{types.ErrInvalidEnvironmentVariables}, msg: []string{"CNI_ARGS: ", `"../escape"`}},
	)

	// Every seed of the netconf fuzz corpora, as a pod's selection and as a NAD's config: odd
	// input may attach or fail, but always cleanly. Invalid UTF-8 in a seed reaches steer as
	// U+FFFD: it travels as JSON through the apiserver.
	seeds := fuzzSeeds(t, "../../pkg/netconf/testdata/fuzz/FuzzParseNetworkSelection")
	for _, file := range slices.Sorted(maps.Keys(seeds)) {
		cases = append(cases, tc{name: "selection seed " + file, networks: seeds[file]})
	}
	seeds = fuzzSeeds(t, "../../pkg/netconf/testdata/fuzz/FuzzNetworkConfig")
	for _, file := range slices.Sorted(maps.Keys(seeds)) {
		nad, config := "fuzz-"+file, seeds[file]
		cases = append(cases, tc{name: "NAD config seed " + file, networks: "lan," + nad,
			prepare: func(t *testing.T, _ *cninode.Pod) { f.CreateNAD(t, f.ns, nad, config) }})
	}

	// Steer's own keys smuggled through the selection.
	evil := filepath.Join(f.Dir, "evil")
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	evilSocket := filepath.Join(evil, "steerd.sock")
	var evilDials atomic.Int32
	ln, err := net.Listen("unix", evilSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			evilDials.Add(1)
			c.Close()
		}
	}()
	smuggled := map[string]string{"socketPath": evilSocket, "bpffsRoot": filepath.Join(evil, "bpf"),
		"cniDir": filepath.Join(evil, "cni"), "binDir": evil, "kubeconfig": filepath.Join(evil, "kubeconfig")}
	smuggledJSON, _ := json.Marshal(smuggled)
	// A NAD that nests steer (or Multus) as a delegate or as IPAM would run it with the NAD's
	// binDir: any binary, as root. Refused before anything runs.
	evilBin := filepath.Join(f.Dir, "evil-bin")
	marker := filepath.Join(evilBin, "ran")
	if err := os.Mkdir(evilBin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(evilBin, "evil"), []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, nested := range []struct{ name, config string }{
		{"nested-steer", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"nested-steer","type":"steer","binDir":%q,"delegates":[{"cniVersion":"1.0.0","name":"x","type":"evil"}]}`, evilBin)},
		{"steer-as-ipam", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"steer-as-ipam","type":"macvlan","master":"lan0","ipam":{"type":"steer","binDir":%q,"delegates":[{"cniVersion":"1.0.0","name":"x","type":"evil"}]}}`, evilBin)},
		{"nested-multus", `{"cniVersion":"1.0.0","name":"nested-multus","plugins":[{"type":"multus-shim"}]}`},
	} {
		cases = append(cases, tc{name: "NAD " + nested.name, networks: "lan," + nested.name,
			codes: []uint{types.ErrInvalidNetworkConfig}, msg: []string{"cannot be a delegate"},
			prepare: func(t *testing.T, _ *cninode.Pod) { f.CreateNAD(t, f.ns, nested.name, nested.config) }})
	}
	t.Cleanup(func() {
		if cninode.FileExists(marker) {
			t.Errorf("a binary from a NAD's binDir ran")
		}
	})

	cases = append(cases,
		tc{name: "namespace traversal", networks: `[{"name":"lan","namespace":"../../etc"}]`,
			codes: []uint{types.ErrInvalidNetworkConfig}, msg: []string{`"namespace": "../../etc" is not a valid namespace name`}},
		tc{name: "steer policy in cni-args", networks: `[{"name":"lan","cni-args":{"steer":{"steering":false}}}]`,
			codes: []uint{types.ErrInvalidNetworkConfig}, msg: []string{`"cni-args": key "steer" is reserved`}},
		tc{name: "steer keys in cni-args", networks: `[{"name":"lan","cni-args":` + string(smuggledJSON) + `}]`,
			added: func(t *testing.T, p *cninode.Pod) {
				// The keys went to the delegate's args.cni, and only there: steer still
				// pinned under its bpffsRoot, cached in its cniDir, and did not dial the socket.
				if !cninode.FileExists(filepath.Join(f.BPFRoot, p.ContainerID, "flows")) {
					t.Errorf("no pins under bpffsRoot %s/%s: %v", f.BPFRoot, p.ContainerID, dirNames(t, f.BPFRoot))
				}
				if n := evilDials.Load(); n != 0 {
					t.Errorf("the smuggled socketPath was dialed %d times", n)
				}
				if got := treeFiles(t, evil); !slices.Equal(got, []string{"steerd.sock"}) {
					t.Errorf("written under the smuggled directories: %v", got)
				}
				var entry struct {
					Attachments []struct {
						IfName string `json:"ifName"`
						Config []byte `json:"config"`
					} `json:"attachments"`
				}
				raw, err := os.ReadFile(filepath.Join(f.CNIDir, p.ContainerID+".json"))
				if err == nil {
					err = json.Unmarshal(raw, &entry)
				}
				if err != nil || len(entry.Attachments) != 2 || entry.Attachments[1].IfName != "net1" {
					t.Fatalf("cache in cniDir: %v %+v", err, entry)
				}
				var delegate struct {
					Args struct {
						CNI map[string]string `json:"cni"`
					} `json:"args"`
				}
				if err := json.Unmarshal(entry.Attachments[1].Config, &delegate); err != nil || !maps.Equal(delegate.Args.CNI, smuggled) {
					t.Errorf("delegate config %s: want the keys in args.cni (%v)", entry.Attachments[1].Config, err)
				}
			}},
	)

	tmp := filepath.Join(f.Dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	// What steer, its delegates and the runtime keep under the test root; anything else new
	// there is a write outside Steer's directories.
	allowed := func(rel string) bool {
		for _, dir := range []string{f.CNIDir, f.IPAMDir, f.LogFile} {
			if r, _ := filepath.Rel(f.Dir, dir); rel == r || strings.HasPrefix(rel, r+"/") {
				return true
			}
		}
		return false
	}
	bpfParent := filepath.Dir(f.BPFRoot)
	conf := f.conf(t, map[string]any{"apiTimeout": "5s"})
	start := time.Now()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := treeFiles(t, f.Dir)
			p := f.NewPod(t, f.ns, fmt.Sprintf("hostile-%d", i), map[string]string{k8s.NetworksAnnotation: c.networks})
			if c.prepare != nil {
				c.prepare(t, p)
			}
			call := c.call
			call.cniArgs = strings.ReplaceAll(call.cniArgs, "NS", f.ns)
			add := execPlugin(t, f, "ADD", p, call, conf, tmp)
			te := add.cniError(t, "ADD")
			switch {
			case te == nil && len(c.codes) > 0:
				t.Errorf("ADD succeeded, want code %v: %s", c.codes, add.stdout)
			case te != nil && c.added != nil:
				t.Errorf("ADD: %d %q, want success", te.Code, te.Error())
			case te != nil && len(c.codes) > 0 && !slices.Contains(c.codes, te.Code):
				t.Errorf("ADD: code %d %q, want code %v", te.Code, te.Error(), c.codes)
			case te != nil:
				t.Logf("ADD: %d %s", te.Code, te.Error())
				for _, m := range c.msg {
					if m = strings.ReplaceAll(m, "NS", f.ns); !strings.Contains(te.Error(), m) {
						t.Errorf("ADD error %q does not contain %q", te.Error(), m)
					}
				}
			case c.added != nil:
				c.added(t, p)
			}
			del := execPlugin(t, f, "DEL", p, call, conf, tmp)
			if del.exit != 0 {
				t.Errorf("DEL exited %d: %v\n%s", del.exit, del.cniError(t, "DEL"), del.stderr)
			}
			f.AssertClean(t, p)

			for _, path := range treeFiles(t, f.Dir) {
				if !slices.Contains(before, path) && !allowed(path) {
					t.Errorf("%s written under the test root", path)
				}
			}
			// Other tests and processes write to /tmp and the bpffs at the same time: there, look
			// for the payload (and anything "escape") rather than for any new name.
			for _, name := range slices.Concat(dirNames(t, os.TempDir()), dirNames(t, bpfParent), treeFiles(t, f.Dir)) {
				if strings.Contains(name, "escape") || c.payload != "" && strings.Contains(name, c.payload) {
					t.Errorf("%s written (in %s, %s or %s)", name, os.TempDir(), bpfParent, f.Dir)
				}
			}
		})
	}
	t.Logf("%d cases in %s", len(cases), time.Since(start).Round(time.Millisecond))

	// Anywhere under /tmp, at any depth.
	var payloads []string
	for _, c := range cases {
		if c.payload != "" {
			payloads = append(payloads, c.payload)
		}
	}
	_ = filepath.WalkDir(os.TempDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // gone meanwhile, or unreadable: not ours
		}
		for _, p := range payloads {
			if strings.Contains(d.Name(), p) {
				t.Errorf("%s exists", path)
			}
		}
		return nil
	})
}
