package manifests_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/manifests"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestApplyServerSide applies every manifest to the real apiserver with server-side apply,
// with validation as strict as it gets: any rejected field fails the test.
func TestApplyServerSide(t *testing.T) {
	cluster := kubetest.Cluster(t)
	cfg := cluster.RESTConfig()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	files, _ := fs.Glob(manifests.FS, "*.yaml")
	applied := 0
	for _, f := range files {
		b, _ := manifests.FS.ReadFile(f)
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if u.Object == nil || u.GetKind() == "Kustomization" {
				continue
			}
			gvk := u.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: %s: %v", f, gvk, err)
			}
			data, err := u.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			ri := dyn.Resource(m.Resource)
			force := true
			opts := metav1.PatchOptions{FieldManager: "steer-test", Force: &force, FieldValidation: "Strict"}
			if u.GetNamespace() != "" {
				_, err = ri.Namespace(u.GetNamespace()).Patch(context.Background(), u.GetName(), types.ApplyPatchType, data, opts)
			} else {
				_, err = ri.Patch(context.Background(), u.GetName(), types.ApplyPatchType, data, opts)
			}
			if err != nil {
				t.Errorf("%s: %s %s rejected: %v", f, gvk.Kind, u.GetName(), err)
				continue
			}
			applied++
		}
	}
	if applied < 7 {
		t.Errorf("applied %d objects, want at least 7 (CRD, SA, ClusterRole, binding, Role, binding, DaemonSet)", applied)
	}
}
