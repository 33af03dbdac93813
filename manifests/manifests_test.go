package manifests_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/manifests"
)

var update = flag.Bool("update", false, "rewrite steer.yaml from the chart's defaults (`make manifests`)")

const (
	chartDir = "charts/steer"
	// rendered is the kustomize manifests' copy of the chart's templates, at the default values.
	rendered         = "steer.yaml"
	renderedHeader   = "# The Helm chart charts/steer rendered with its default values by `make manifests`: edit the\n# chart, not this file (a test fails when the two differ).\n"
	defaultRelease   = "steer"
	defaultNamespace = "kube-system"
	socket           = "/run/steer/steerd.sock"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestRenderedManifestsAreFresh: steer.yaml, what `kubectl apply -k manifests/` applies, is the
// chart rendered with its defaults, byte for byte. `make manifests` rewrites it.
func TestRenderedManifestsAreFresh(t *testing.T) {
	out, err := helm(t, "template", defaultRelease, chartDir, "--namespace", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	want := renderedHeader + out
	if *update {
		if err := os.WriteFile(rendered, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(rendered)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from the chart rendered with its defaults: run `make manifests` and commit it\n%s",
			rendered, firstDifference(string(got), want))
	}
}

// TestKustomizeBuildIsTheChart: kustomize (kubectl's) builds from kustomization.yaml exactly the
// objects the chart installs with its defaults, CRD included.
func TestKustomizeBuildIsTheChart(t *testing.T) {
	kubectl := kubectlBinary(t)
	out, err := run(t, kubectl, "kustomize", ".")
	if err != nil {
		t.Fatal(err)
	}
	built := decode(t, out)
	chartOut, err := helm(t, "template", defaultRelease, chartDir, "--namespace", defaultNamespace, "--include-crds")
	if err != nil {
		t.Fatal(err)
	}
	chart := decode(t, chartOut)
	if len(built) != len(chart) {
		t.Fatalf("kustomize builds %d objects, the chart %d:\n%v\n%v", len(built), len(chart), keys(built), keys(chart))
	}
	for i := range chart {
		if !reflect.DeepEqual(built[i].Object, chart[i].Object) {
			t.Errorf("%s differs between kustomize and the chart:\nkustomize: %v\nchart:     %v", key(chart[i]), built[i].Object, chart[i].Object)
		}
	}
}

// TestKustomizeAppliesServerSide applies what `kubectl apply -k manifests/` applies to the real
// apiserver with server-side apply, with validation as strict as it gets: any rejected field
// fails the test.
func TestKustomizeAppliesServerSide(t *testing.T) {
	cluster := kubetest.Cluster(t)
	out, err := run(t, kubectlBinary(t), "kustomize", ".")
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, out)
	a := newApplier(t, cluster.RESTConfig())
	for _, u := range objs {
		if err := a.apply(t.Context(), u, false); err != nil {
			t.Errorf("%s rejected: %v", key(u), err)
		}
	}
	if len(objs) < 7 {
		t.Errorf("applied %d objects, want at least 7 (CRD, SA, ClusterRole, binding, Role, binding, DaemonSet): %v", len(objs), keys(objs))
	}
	// The local cluster installs the CRDs from the same embedded files.
	crds, err := fs.Glob(manifests.FS, manifests.CRDGlob)
	if err != nil || len(crds) != 1 {
		t.Errorf("CRDs embedded for the local cluster: %v, %v", crds, err)
	}
}

// operatorValues changes every value an operator sets; the chart must render them into objects
// the apiserver accepts.
const operatorValues = `
image: {repository: registry.example/steer, tag: 0.1.0-rc1, pullPolicy: Always}
mode: thin
pluginConfig:
  clusterNetwork: flannel
  namespaceIsolation: true
  multusCNIDir: /var/lib/cni/multus
  logLevel: verbose
waitPrimary: 2m
metrics:
  port: 9500
  serviceMonitor: {enabled: true, interval: 15s, labels: {release: kube-prometheus-stack}}
resources:
  steerd: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 512Mi}}
  install: {requests: {cpu: 20m, memory: 32Mi}, limits: {memory: 96Mi}}
tolerations:
  - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
nodeSelector: {kubernetes.io/os: linux, steer.example/enabled: "true"}
`

// TestChart lints the chart and renders it with `helm template`, with the default values and
// with an operator's, checks that the values land where they should, and applies every object to
// the real apiserver with server-side apply in dry-run mode and strict field validation.
func TestChart(t *testing.T) {
	cluster := kubetest.Cluster(t)
	a := newApplier(t, cluster.RESTConfig())
	valuesFile := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(operatorValues), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, release, namespace string
		args                     []string
		check                    func(*testing.T, string, string, map[string]*unstructured.Unstructured)
	}{
		{"defaults", defaultRelease, defaultNamespace, nil, checkDefaults},
		{"operator values", "edge", "", []string{"--values", valuesFile}, checkOperatorValues},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.namespace
			if ns == "" {
				ns = kubetest.Namespace(t)
			}
			if _, err := helm(t, append([]string{"lint", chartDir, "--strict", "--namespace", ns}, tc.args...)...); err != nil {
				t.Fatal(err)
			}
			out, err := helm(t, append([]string{"template", tc.release, chartDir, "--namespace", ns, "--include-crds"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			objs := decode(t, out)
			byKey := map[string]*unstructured.Unstructured{}
			for _, u := range objs {
				byKey[u.GetKind()+"/"+u.GetName()] = u
				if u.GetKind() == "ServiceMonitor" {
					a.installServiceMonitorCRD(t)
				}
			}
			tc.check(t, tc.release, ns, byKey)
			for _, u := range objs {
				if err := a.apply(t.Context(), u, true); err != nil {
					t.Errorf("%s rejected: %v", key(u), err)
				}
			}
		})
	}
}

// TestHelmInstallUpgradeUninstall runs the chart's life cycle with the real helm against the
// local apiserver: install (the CRD already there is kept), an upgrade to another image updates
// the DaemonSet in place (the same object: its selector never changes), and uninstall removes
// every object the release made but the CRD.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	cluster := kubetest.Cluster(t)
	ns := kubetest.Namespace(t)
	release := "steer-" + ns[strings.LastIndex(ns, "-")+1:]
	kube := []string{"--kubeconfig", cluster.Kubeconfig(), "--namespace", ns}
	client := cluster.Client()
	home, bin := t.TempDir(), helmBinary(t)
	t.Cleanup(func() {
		// After a failure: the release's cluster-scoped objects outlive the namespace.
		_, _ = runHelm(context.Background(), bin, home, append([]string{"uninstall", release, "--ignore-not-found"}, kube...)...)
	})

	if _, err := helm(t, append([]string{"install", release, chartDir}, kube...)...); err != nil {
		t.Fatal(err)
	}
	installed, err := client.AppsV1().DaemonSets(ns).Get(t.Context(), release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := installed.Spec.Template.Spec.Containers[0].Image; img != "steernet/steer:0.1.0" {
		t.Errorf("installed image %s", img)
	}

	if _, err := helm(t, append([]string{"upgrade", release, chartDir, "--set", "image.tag=0.1.1"}, kube...)...); err != nil {
		t.Fatal(err)
	}
	upgraded, err := client.AppsV1().DaemonSets(ns).Get(t.Context(), release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if upgraded.UID != installed.UID || upgraded.Generation <= installed.Generation {
		t.Errorf("upgrade replaced the DaemonSet (uid %s -> %s, generation %d -> %d), want it updated in place",
			installed.UID, upgraded.UID, installed.Generation, upgraded.Generation)
	}
	if img := upgraded.Spec.Template.Spec.Containers[0].Image; img != "steernet/steer:0.1.1" {
		t.Errorf("upgraded image %s", img)
	}

	if _, err := helm(t, append([]string{"uninstall", release}, kube...)...); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AppsV1().DaemonSets(ns).Get(t.Context(), release, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("DaemonSet after uninstall: %v", err)
	}
	if _, err := client.RbacV1().ClusterRoles().Get(t.Context(), release, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole after uninstall: %v", err)
	}
	if _, err := newApplier(t, cluster.RESTConfig()).dyn.Resource(crdResource).Get(t.Context(), "network-attachment-definitions.k8s.cni.cncf.io", metav1.GetOptions{}); err != nil {
		t.Errorf("the NAD CRD after uninstall: %v (Helm keeps CRDs)", err)
	}
}

// TestChartRefusesBadValues: values the chart cannot honour fail the render with a message that
// names them, instead of writing a node config that silently differs.
func TestChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"pluginConfig.socketPath=/tmp/s.sock", "pluginConfig.socketPath cannot be set: it follows mode"},
		{"pluginConfig.BpffsRoot=/sys/fs/bpf/x", "pluginConfig.BpffsRoot cannot be set"},
		{"pluginConfig.delegates=null", "pluginConfig.delegates cannot be set"},
		{"mode=thik", "mode"},
		{"metrics.port=70000", "metrics.port"},
		{"image.pullPolicy=Sometimes", "image.pullPolicy"},
		{"waitPrimary=10 minutes", "waitPrimary"},
		{"tolerance=x", "tolerance"},
	} {
		out, err := helm(t, "template", defaultRelease, chartDir, "--set", tc.set)
		if err == nil {
			t.Errorf("--set %s rendered:\n%s", tc.set, out)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want it to say %q", tc.set, err, tc.want)
		}
	}
}

func checkDefaults(t *testing.T, release, ns string, objs map[string]*unstructured.Unstructured) {
	ds := daemonSet(t, objs, "steer")
	install, steerd := ds.Spec.Template.Spec.InitContainers[0], ds.Spec.Template.Spec.Containers[0]
	for _, c := range []corev1.Container{install, steerd} {
		if c.Image != "steernet/steer:0.1.0" {
			t.Errorf("%s runs %s, want the chart's appVersion of steernet/steer", c.Name, c.Image)
		}
		if cfg := pluginConfig(t, c); !reflect.DeepEqual(cfg, map[string]any{"socketPath": socket}) {
			t.Errorf("%s: plugin config %v, want thick mode's socketPath alone", c.Name, cfg)
		}
	}
	wantArgs(t, steerd, "-socket="+socket, "-metrics-addr=:9465")
	wantArgs(t, install, "-wait-primary=10m")
	if got := steerd.Lifecycle.PreStop.Exec.Command; got[len(got)-1] != "-if-daemonset-deleted=kube-system/steer" {
		t.Errorf("preStop %q does not name the DaemonSet", got)
	}
	if _, ok := objs["ServiceMonitor/steer"]; ok {
		t.Error("a ServiceMonitor by default: the Prometheus Operator's CRD may be missing")
	}
	for _, k := range []string{"CustomResourceDefinition/network-attachment-definitions.k8s.cni.cncf.io", "ServiceAccount/steer", "ClusterRole/steer", "ClusterRoleBinding/steer", "Role/steer", "RoleBinding/steer"} {
		if objs[k] == nil {
			t.Errorf("no %s", k)
		}
	}
}

func checkOperatorValues(t *testing.T, release, ns string, objs map[string]*unstructured.Unstructured) {
	name := release + "-steer"
	ds := daemonSet(t, objs, name)
	spec := ds.Spec.Template.Spec
	install, steerd := spec.InitContainers[0], spec.Containers[0]
	wantConfig := map[string]any{"clusterNetwork": "flannel", "namespaceIsolation": true, "multusCNIDir": "/var/lib/cni/multus", "logLevel": "verbose"}
	for _, c := range []corev1.Container{install, steerd} {
		if c.Image != "registry.example/steer:0.1.0-rc1" || c.ImagePullPolicy != corev1.PullAlways {
			t.Errorf("%s runs %s (%s)", c.Name, c.Image, c.ImagePullPolicy)
		}
		if cfg := pluginConfig(t, c); !reflect.DeepEqual(cfg, wantConfig) {
			t.Errorf("%s: plugin config %v, want %v (thin mode: no socketPath)", c.Name, cfg, wantConfig)
		}
	}
	for _, arg := range steerd.Command {
		if strings.HasPrefix(arg, "-socket") {
			t.Errorf("thin mode, yet steerd serves %s", arg)
		}
	}
	wantArgs(t, steerd, "-metrics-addr=:9500")
	wantArgs(t, install, "-wait-primary=2m")
	if p := steerd.Ports[0]; p.Name != "metrics" || p.ContainerPort != 9500 {
		t.Errorf("port %+v, want metrics on 9500", p)
	}
	if steerd.LivenessProbe.HTTPGet.Port.String() != "metrics" || steerd.ReadinessProbe.HTTPGet.Port.String() != "metrics" {
		t.Errorf("probes not on the metrics port: %v %v", steerd.LivenessProbe.HTTPGet.Port, steerd.ReadinessProbe.HTTPGet.Port)
	}
	if got := steerd.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("512Mi")) != 0 {
		t.Errorf("steerd memory limit %s, want 512Mi", got.String())
	}
	if got := install.Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("20m")) != 0 {
		t.Errorf("install cpu request %s, want 20m", got.String())
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Key != "node-role.kubernetes.io/control-plane" {
		t.Errorf("tolerations %+v", spec.Tolerations)
	}
	if spec.NodeSelector["steer.example/enabled"] != "true" {
		t.Errorf("nodeSelector %v", spec.NodeSelector)
	}
	if spec.ServiceAccountName != name {
		t.Errorf("service account %s, want %s", spec.ServiceAccountName, name)
	}
	if got := steerd.Lifecycle.PreStop.Exec.Command; got[len(got)-1] != "-if-daemonset-deleted="+ns+"/"+name {
		t.Errorf("preStop %q does not name the DaemonSet %s/%s", got, ns, name)
	}
	role := objs["Role/"+name]
	if role == nil {
		t.Fatalf("no Role %s", name)
	}
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if names, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any), "resourceNames"); !reflect.DeepEqual(names, []string{name}) {
		t.Errorf("the Role reads DaemonSets %v, want %s", names, name)
	}
	svc, sm := objs["Service/"+name+"-metrics"], objs["ServiceMonitor/"+name]
	if svc == nil || sm == nil {
		t.Fatalf("serviceMonitor.enabled, yet Service %v, ServiceMonitor %v", svc != nil, sm != nil)
	}
	var service corev1.Service
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(svc.Object, &service, true); err != nil {
		t.Fatal(err)
	}
	if p := service.Spec.Ports[0]; p.Port != 9500 || p.TargetPort.String() != "metrics" {
		t.Errorf("metrics Service port %d to %s, want 9500 to the pods' metrics port", p.Port, p.TargetPort.String())
	}
	if v, _, _ := unstructured.NestedString(sm.Object, "metadata", "labels", "release"); v != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
	}
	// The ServiceMonitor selects the metrics Service, and the Service the DaemonSet's pods.
	match, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range match {
		if svc.GetLabels()[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the Service is labelled %v", k, v, svc.GetLabels())
		}
	}
	for k, v := range service.Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, the pods are labelled %v", k, v, ds.Spec.Template.Labels)
		}
	}
}

func daemonSet(t *testing.T, objs map[string]*unstructured.Unstructured, name string) *appsv1.DaemonSet {
	t.Helper()
	u := objs["DaemonSet/"+name]
	if u == nil {
		t.Fatalf("no DaemonSet %s", name)
	}
	var ds appsv1.DaemonSet
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &ds, true); err != nil {
		t.Fatal(err)
	}
	if len(ds.Spec.Template.Spec.InitContainers) != 1 || len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("DaemonSet %s: want one init container and one container", name)
	}
	return &ds
}

// pluginConfig decodes the -plugin-config argument of a container.
func pluginConfig(t *testing.T, c corev1.Container) map[string]any {
	t.Helper()
	for _, arg := range c.Command {
		if v, ok := strings.CutPrefix(arg, "-plugin-config="); ok {
			var cfg map[string]any
			if err := json.Unmarshal([]byte(v), &cfg); err != nil {
				t.Fatalf("%s: -plugin-config %q: %v", c.Name, v, err)
			}
			return cfg
		}
	}
	t.Fatalf("%s: no -plugin-config in %q", c.Name, c.Command)
	return nil
}

func wantArgs(t *testing.T, c corev1.Container, args ...string) {
	t.Helper()
	for _, want := range args {
		found := false
		for _, arg := range c.Command {
			found = found || arg == want
		}
		if !found {
			t.Errorf("%s: no %s in %q", c.Name, want, c.Command)
		}
	}
}

// applier applies objects with server-side apply through a dynamic client.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(t *testing.T, cfg *rest.Config) *applier {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

// apply applies u with server-side apply and strict field validation; dryRun: the apiserver
// validates, admits and defaults it, and stores nothing.
func (a *applier) apply(ctx context.Context, u *unstructured.Unstructured, dryRun bool) error {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	data, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "steer-test", Force: &force, FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if u.GetNamespace() != "" {
		ri = a.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, opts)
	return err
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installServiceMonitorCRD installs testdata's ServiceMonitor CRD until the test ends.
func (a *applier) installServiceMonitorCRD(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("testdata/servicemonitor-crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	crd := decode(t, string(b))[0]
	ctx := t.Context()
	if err := a.apply(ctx, crd, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := a.dyn.Resource(crdResource).Delete(context.Background(), crd.GetName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete CRD %s: %v", crd.GetName(), err)
		}
		a.mapper.Reset()
	})
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := a.dyn.Resource(crdResource).Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			c := c.(map[string]any)
			if c["type"] == "Established" && c["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", crd.GetName(), err)
	}
	a.mapper.Reset()
}

// helm runs the helm `make deps` built, with its own empty config, cache and data directories.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runHelm(t.Context(), helmBinary(t), t.TempDir(), args...)
}

func runHelm(ctx context.Context, bin, home string, args ...string) (string, error) {
	env := []string{"HELM_CACHE_HOME=" + home, "HELM_CONFIG_HOME=" + home, "HELM_DATA_HOME=" + home}
	return runEnv(ctx, env, bin, args...)
}

// helmBinary is $STEER_CACHE/tools/helm-<version of tools.txt>, which `make deps` builds.
func helmBinary(t *testing.T) string {
	t.Helper()
	version := manifests.ToolVersion("helm")
	if version == "" {
		t.Fatal("tools.txt names no helm version")
	}
	cache, err := localcluster.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(cache, "tools", "helm-"+version)
	if _, err := os.Stat(bin); err != nil {
		if testing.Short() {
			t.Skipf("%s not built: skipped under -short", bin)
		}
		t.Fatalf("%v: run `make deps`", err)
	}
	return bin
}

func kubectlBinary(t *testing.T) string {
	t.Helper()
	kubetest.RequireCluster(t)
	bin, err := localcluster.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	return runEnv(t.Context(), nil, bin, args...)
}

func runEnv(ctx context.Context, env []string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// decode returns the objects of a multi-document YAML stream, sorted by kind, namespace and name.
func decode(t *testing.T, s string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if u.Object != nil {
			objs = append(objs, &u)
		}
	}
	sort.Slice(objs, func(i, j int) bool { return key(objs[i]) < key(objs[j]) })
	return objs
}

func key(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

func keys(objs []*unstructured.Unstructured) []string {
	var ks []string
	for _, u := range objs {
		ks = append(ks, key(u))
	}
	return ks
}

// firstDifference shows the first line where got and want part.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  committed: %q\n  chart:     %q", i+1, gl, wl)
		}
	}
	return ""
}
