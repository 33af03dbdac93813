package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"

	"github.com/steernet/steer/manifests"
)

const fieldManager = "steer-localcluster"

// crdCreateDelay mirrors kube-apiserver's customresource_handler.go: a create of a custom
// resource whose CRD turned Established (lastTransitionTime, whole seconds) less than 2 s ago
// sleeps 2 s, a guard for HA apiservers. Start waits that window out once, so no test's first
// create silently takes 2 s longer.
const crdCreateDelay = 2 * time.Second

var crdResource = schema.GroupVersionResource{
	Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions",
}

// installCRDs applies every CRD Steer ships (manifests.CRDGlob: the Helm chart's crds/) with
// server-side apply and waits until the apiserver serves them.
func installCRDs(ctx context.Context, dyn dynamic.Interface, log *slog.Logger) error {
	files, err := fs.Glob(manifests.FS, manifests.CRDGlob)
	if err != nil {
		return fmt.Errorf("list CRD manifests: %w", err)
	}
	var names []string
	for _, file := range files {
		data, err := fs.ReadFile(manifests.FS, file)
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		objs, err := decodeManifests(data)
		if err != nil {
			return fmt.Errorf("decode %s: %w", file, err)
		}
		for _, obj := range objs {
			if obj.GetKind() != "CustomResourceDefinition" {
				return fmt.Errorf("%s: %s %q is not a CustomResourceDefinition", file, obj.GetKind(), obj.GetName())
			}
			opts := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
			if _, err := dyn.Resource(crdResource).Apply(ctx, obj.GetName(), obj, opts); err != nil {
				return fmt.Errorf("apply CRD %s: %w", obj.GetName(), err)
			}
			names = append(names, obj.GetName())
		}
	}
	var settled time.Time
	for _, name := range names {
		established, err := waitEstablished(ctx, dyn, name)
		if err != nil {
			return err
		}
		log.Debug("CRD established", "crd", name, "at", established)
		// The margin absorbs timer slack; past that instant no create is delayed.
		if t := established.Add(crdCreateDelay + 50*time.Millisecond); t.After(settled) {
			settled = t
		}
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait for CRDs to accept creates: %w", ctx.Err())
	case <-time.After(time.Until(settled)):
		return nil
	}
}

// waitEstablished waits until the CRD is served and returns when it became so.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) (time.Time, error) {
	var at time.Time
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		crd, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			cond, _ := c.(map[string]any)
			if cond["type"] != "Established" || cond["status"] != "True" {
				continue
			}
			ts, _ := cond["lastTransitionTime"].(string)
			if at, err = time.Parse(time.RFC3339, ts); err != nil {
				return false, fmt.Errorf("CRD %s: Established lastTransitionTime %q: %w", name, ts, err)
			}
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("wait for CRD %s to be established: %w", name, err)
	}
	return at, nil
}

// decodeManifests splits a multi-document YAML (or JSON) stream into objects.
func decodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(obj) == 0 { // an empty document, e.g. a trailing "---"
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: obj})
	}
}
