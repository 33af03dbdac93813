package engine

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/k8s"
)

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// added is an env with pod ns1/web attached to the cluster network, a and b.
func added(t *testing.T, extra string) (*env, *k8s.Pod) {
	e := newEnv(t)
	e.withNADs()
	pod := e.addPod("ns1", "web", map[string]string{k8s.NetworksAnnotation: "a,b"})
	conf := e.conf(extra)
	if _, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	e.exec.reset()
	return e, pod
}

func TestDelUsesTheCacheOnly(t *testing.T) {
	e, pod := added(t, "")
	cached := e.cacheEntry("cid1")
	// The apiserver is gone, and so are the NADs: DEL needs neither.
	e.api.err = os.ErrDeadlineExceeded
	e.api.nads = map[string]string{}
	conf := e.conf("")
	args := e.args("cid1", pod, conf.Raw)
	args.Netns = ""
	if err := e.eng.Del(t.Context(), conf, args); err != nil {
		t.Fatal(err)
	}
	want := []string{"steering DETACH ", "tuning DEL net2", "macvlan DEL net2", "macvlan DEL net1", "clusterplugin DEL eth0"}
	if got := e.exec.seq(""); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	// Each single-plugin delegate got every member of its cached configuration (libcni adds
	// name, cniVersion, prevResult and runtimeConfig; lists are checked in package delegate).
	byIf := map[string][]byte{}
	for _, a := range cached.Attachments {
		byIf[a.IfName] = a.Config
	}
	for _, c := range e.exec.calls {
		if c.Cmd != "DEL" || c.IfName == "net2" {
			continue
		}
		var got, orig map[string]any
		_ = json.Unmarshal(c.Stdin, &got)
		_ = json.Unmarshal(byIf[c.IfName], &orig)
		for k, v := range orig {
			if g := mustJSON(got[k]); g != mustJSON(v) {
				t.Errorf("%s: %s = %s, cached %s", c, k, g, mustJSON(v))
			}
		}
	}
	if e.cacheExists("cid1") {
		t.Error("cache left")
	}
	// Idempotent: nothing left to do.
	e.exec.reset()
	if err := e.eng.Del(t.Context(), conf, args); err != nil || len(e.exec.seq("")) > 0 {
		t.Errorf("second DEL: %v, calls %v", err, e.exec.seq(""))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDelGoesOnPastFailures(t *testing.T) {
	for _, retry := range []bool{false, true} {
		extra := ""
		if retry {
			extra = `,"retryDeleteOnError":true`
		}
		e, pod := added(t, extra)
		e.exec.fail["macvlan DEL net1"] = true
		conf := e.conf(extra)
		err := e.eng.Del(t.Context(), conf, e.args("cid1", pod, conf.Raw))
		te := cniCode(t, err)
		if te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, `network "ns1/a" (net1)`) {
			t.Errorf("retry=%v: error %+v", retry, te)
		}
		if got := e.exec.seq("DEL"); len(got) != 4 || got[3] != "clusterplugin DEL eth0" {
			t.Errorf("retry=%v: DELs %v: want all of them", retry, got)
		}
		if retry {
			c := e.cacheEntry("cid1")
			if len(c.Attachments) != 1 || c.Attachments[0].IfName != "net1" {
				t.Errorf("retryDeleteOnError cache: %+v", c.Attachments)
			}
		} else if e.cacheExists("cid1") {
			t.Error("cache kept without retryDeleteOnError")
		}
	}
}

func TestDelClearsStatusWhileNetnsExists(t *testing.T) {
	e, pod := added(t, "")
	if e.api.status["ns1/web"] == nil {
		t.Fatal("no status after ADD")
	}
	conf := e.conf("")
	if err := e.eng.Del(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	if e.api.status["ns1/web"] != nil {
		t.Error("status kept after DEL")
	}
}

func TestCheck(t *testing.T) {
	e, pod := added(t, "")
	conf := e.conf("")
	if err := e.eng.Check(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	want := []string{"clusterplugin CHECK eth0", "macvlan CHECK net1", "macvlan CHECK net2", "tuning CHECK net2", "steering CHECK "}
	if got := e.exec.seq(""); !slices.Equal(got, want) {
		t.Errorf("calls %v", got)
	}
	// The dataplane gets the attachments as ADD gave them, policies included.
	if len(e.dp.checked) != len(e.dp.atts) {
		t.Fatalf("dataplane checked %d attachments, ADD attached %d", len(e.dp.checked), len(e.dp.atts))
	}
	for i, a := range e.dp.checked {
		if b := e.dp.atts[i]; a.IfName != b.IfName || a.Primary != b.Primary || a.Policy.Steering != b.Policy.Steering || a.Result == nil {
			t.Errorf("checked attachment %d = %+v, ADD had %+v", i, a, b)
		}
	}
	e.dp.checkErr = errors.New("egress program on net1: not attached")
	err := e.eng.Check(t.Context(), conf, e.args("cid1", pod, conf.Raw))
	if te := cniCode(t, err); te.Code != types.ErrInternal || !strings.Contains(te.Msg+te.Details, "egress program on net1") {
		t.Errorf("CHECK with the dataplane broken = %v", err)
	}
	// A cache written before policies were cached: the dataplane cannot be derived, so only the
	// delegates are checked.
	store := cacheStore{dir: conf.CNIDir}
	entry, err := store.read("cid1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range entry.Attachments {
		entry.Attachments[i].Policy = nil
	}
	if err := store.write(entry); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.Check(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Errorf("CHECK of an older cache entry = %v", err)
	}
	e.dp.checkErr = nil
	e.exec.fail["macvlan CHECK net2"] = true
	if err := e.eng.Check(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err == nil || !strings.Contains(err.Error(), `"ns1/b" (net2)`) {
		t.Errorf("CHECK = %v", err)
	}
	err = e.eng.Check(t.Context(), conf, e.args("nobody", pod, conf.Raw))
	if te := cniCode(t, err); te.Code != types.ErrUnknownContainer {
		t.Errorf("CHECK of an unknown container: %v", err)
	}
}

func gcArgs(t *testing.T, conf []byte, valid ...string) []byte {
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	va := []types.GCAttachment{}
	for _, id := range valid {
		va = append(va, types.GCAttachment{ContainerID: id, IfName: "eth0"})
	}
	m["cni.dev/valid-attachments"] = va
	b, _ := json.Marshal(m)
	return b
}

func TestGC(t *testing.T) {
	e, pod := added(t, "")
	conf := e.conf("")
	// cid2 is stale, cid3 an ADD in progress (incomplete and recent).
	if _, err := e.eng.Add(t.Context(), conf, e.args("cid2", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	c3 := e.cacheEntry("cid2")
	c3.ContainerID, c3.Complete, c3.Attachments = "cid3", false, c3.Attachments[:1]
	if err := (cacheStore{dir: conf.CNIDir}).write(c3); err != nil {
		t.Fatal(err)
	}
	e.exec.reset()
	args := e.args("", nil, gcArgs(t, conf.Raw, "cid1"))
	if err := e.eng.GC(t.Context(), conf, args); err != nil {
		t.Fatal(err)
	}
	dels, gcs, valid := gcCalls(e.exec)
	wantDels := []string{"cid2 tuning DEL net2", "cid2 macvlan DEL net2", "cid2 macvlan DEL net1", "cid2 clusterplugin DEL eth0"}
	if !slices.Equal(dels, wantDels) {
		t.Errorf("DELs %v, want %v", dels, wantDels)
	}
	if !slices.Equal(gcs, []string{"clusterplugin", "macvlan", "macvlan", "tuning"}) {
		t.Errorf("GC went to %v", gcs)
	}
	if valid["cluster"] != `[{"containerID":"cid1","ifname":"eth0"},{"containerID":"cid3","ifname":"eth0"}]` ||
		valid["a"] != `[{"containerID":"cid1","ifname":"net1"}]` || valid["b-net"] != `[{"containerID":"cid1","ifname":"net2"}]` {
		t.Errorf("valid attachments per network: %v", valid)
	}
	if e.cacheExists("cid2") || !e.cacheExists("cid1") || !e.cacheExists("cid3") {
		t.Error("GC removed the wrong caches")
	}

	// An incomplete cache past the grace period is a dead ADD: deleted.
	old := time.Now().Add(-2 * addGrace)
	if err := os.Chtimes(filepath.Join(conf.CNIDir, "cid3.json"), old, old); err != nil {
		t.Fatal(err)
	}
	e.exec.reset()
	// cid9 is valid but has no cache: its secondaries are unknown, so only the cluster
	// network gets GC.
	if err := e.eng.GC(t.Context(), conf, e.args("", nil, gcArgs(t, conf.Raw, "cid1", "cid9"))); err != nil {
		t.Fatal(err)
	}
	if got := e.exec.seq(""); !slices.Equal(got, []string{"steering DETACH ", "clusterplugin DEL eth0", "clusterplugin GC "}) {
		t.Errorf("calls %v", got)
	}

	// A GC without the list of valid attachments would delete everything: refused.
	e.exec.reset()
	err := e.eng.GC(t.Context(), conf, e.args("", nil, conf.Raw))
	if te := cniCode(t, err); te.Code != types.ErrInvalidNetworkConfig || len(e.exec.seq("")) > 0 || !e.cacheExists("cid1") {
		t.Errorf("GC without valid attachments: %v, calls %v", err, e.exec.seq(""))
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	ready := filepath.Join(e.dir, "ready")
	conf := e.conf(`,"readinessindicatorfile":"` + ready + `"`)
	args := e.args("", nil, conf.Raw)
	err := e.eng.Status(t.Context(), conf, args)
	if te := cniCode(t, err); te.Code != types.ErrPluginNotAvailable || !strings.Contains(te.Msg, "readiness indicator") {
		t.Errorf("STATUS without the file: %v", err)
	}
	if err := os.WriteFile(ready, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.Status(t.Context(), conf, args); err != nil {
		t.Fatal(err)
	}
	if got := e.exec.seq(""); !slices.Equal(got, []string{"clusterplugin STATUS "}) {
		t.Errorf("calls %v", got)
	}
	e.exec.fail["clusterplugin STATUS "] = true
	if te := cniCode(t, e.eng.Status(t.Context(), conf, args)); te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, `cluster network "cluster"`) {
		t.Errorf("STATUS with a failing delegate: %+v", te)
	}
	e.exec.missing["clusterplugin"] = true
	if te := cniCode(t, e.eng.Status(t.Context(), conf, args)); te.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS with a missing binary: %+v", te)
	}
}

// gcCalls sorts what a GC made the delegates do: the DELs ("<container> <call>"), the plugin
// types GC went to, and each network's valid attachments as JSON.
func gcCalls(f *fakeExec) (dels, gcs []string, valid map[string]string) {
	valid = map[string]string{}
	for _, c := range f.calls {
		switch c.Cmd {
		case "DEL":
			dels = append(dels, c.ContainerID+" "+c.String())
		case "GC":
			var m struct {
				Name  string               `json:"name"`
				Valid []types.GCAttachment `json:"cni.dev/valid-attachments"`
			}
			_ = json.Unmarshal(c.Stdin, &m)
			gcs = append(gcs, c.Type)
			valid[m.Name] = mustJSON(m.Valid)
		}
	}
	return dels, gcs, valid
}
