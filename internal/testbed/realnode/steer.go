package realnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/pkg/install"
)

// Steer's DaemonSet as manifests/ ships it.
const (
	SteerNamespace = "kube-system"
	SteerDaemonSet = "steer"
)

// SteerImageTarball is the image `make image` builds: $STEER_IMAGE, else bin/steer-image.tar of
// the module.
func SteerImageTarball() (string, error) {
	if p := os.Getenv("STEER_IMAGE"); p != "" {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "steer-image.tar")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the image %s missing: run `make image` (or set STEER_IMAGE): %w", p, err)
	}
	return p, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("locate the module: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("locate the module: not inside Steer's module")
	}
	return filepath.Dir(gomod), nil
}

// LoadSteerImage imports Steer's image tarball (a single image or a multi-platform index) and
// tags it steer.test/steer:<tag> for this run; Images().Steer names it.
func (n *Node) LoadSteerImage(ctx context.Context, tarPath, tag string) error {
	refs, err := n.ImportImage(ctx, tarPath)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return fmt.Errorf("%s holds no named image", tarPath)
	}
	ref := "steer.test/steer:" + tag
	if err := n.TagImage(ctx, refs[0], ref); err != nil {
		return err
	}
	n.images.Steer = ref
	return nil
}

// RetagSteer gives the loaded Steer image another tag, as a new release would bring.
func (n *Node) RetagSteer(ctx context.Context, tag string) (string, error) {
	ref := "steer.test/steer:" + tag
	return ref, n.TagImage(ctx, n.images.Steer, ref)
}

// ApplySteer deploys Steer as operators do: `kubectl apply -k` of an overlay on manifests/ that
// sets the image (image is a reference of Images().Steer or RetagSteer) and what this node
// needs: imagePullPolicy Never (no registry), the apiserver's address (no kube-proxy routes the
// kubernetes Service here) and containerd's netns directory of this node.
func (n *Node) ApplySteer(ctx context.Context, image string) error {
	return n.applySteer(ctx, image, "steer-overlay", nil)
}

// applySteer applies an overlay in n's directory overlayDir on manifests/, as ApplySteer
// describes, with the JSON patch extra (of the shipped DaemonSet's spec) on top when it is
// given.
func (n *Node) applySteer(ctx context.Context, image, overlayDir string, extra func(corev1.PodSpec) ([]byte, error)) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	kubectl, err := localcluster.Kubectl()
	if err != nil {
		return err
	}
	base := filepath.Join(root, "manifests")
	ds, err := shippedDaemonSet(ctx, kubectl, base)
	if err != nil {
		return err
	}
	overlay := filepath.Join(n.dir, overlayDir)
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(overlay, base)
	if err != nil {
		return err
	}
	kust, err := n.overlay(rel, ds, image)
	if err != nil {
		return err
	}
	if extra != nil {
		patch, err := extra(ds.Spec.Template.Spec)
		if err != nil {
			return err
		}
		var k map[string]any
		if err := yaml.Unmarshal(kust, &k); err != nil {
			return err
		}
		patches, _ := k["patches"].([]any)
		k["patches"] = append(patches, map[string]any{
			"target": map[string]any{"kind": "DaemonSet", "name": SteerDaemonSet},
			"patch":  string(patch),
		})
		if kust, err = yaml.Marshal(k); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), kust, 0o644); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", n.cluster.Kubeconfig(), "apply", "-k", overlay).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl apply -k: %w: %s", err, out)
	}
	return nil
}

// shippedDaemonSet is Steer's DaemonSet as the manifests in base render.
func shippedDaemonSet(ctx context.Context, kubectl, base string) (*appsv1.DaemonSet, error) {
	rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", base).Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w", base, err)
	}
	return daemonSetOf(rendered)
}

// daemonSetOf finds Steer's DaemonSet in rendered manifests.
func daemonSetOf(rendered []byte) (*appsv1.DaemonSet, error) {
	for _, doc := range strings.Split(string(rendered), "\n---\n") {
		var meta struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil || meta.Kind != "DaemonSet" || meta.Metadata.Name != SteerDaemonSet {
			continue
		}
		var ds appsv1.DaemonSet
		if err := yaml.Unmarshal([]byte(doc), &ds); err != nil {
			return nil, err
		}
		return &ds, nil
	}
	return nil, fmt.Errorf("the manifests hold no DaemonSet %q", SteerDaemonSet)
}

// overlay is the kustomization of resource (a directory or a file): the image by kustomize's
// images transformer (none when image is empty), the rest as JSON patches computed from the
// rendered DaemonSet (so they follow its containers and volumes).
func (n *Node) overlay(resource string, ds *appsv1.DaemonSet, image string) ([]byte, error) {
	api, err := url.Parse(n.cluster.Host())
	if err != nil {
		return nil, err
	}
	var ops []map[string]any
	add := func(path string, v any) { ops = append(ops, map[string]any{"op": "add", "path": path, "value": v}) }
	replace := func(path string, v any) { ops = append(ops, map[string]any{"op": "replace", "path": path, "value": v}) }
	env := []map[string]any{
		{"name": "KUBERNETES_SERVICE_HOST", "value": api.Hostname()},
		{"name": "KUBERNETES_SERVICE_PORT", "value": api.Port()},
	}
	spec := ds.Spec.Template.Spec
	netnsVolume := ""
	for i, v := range spec.Volumes {
		if v.HostPath != nil && (v.HostPath.Path == "/var/run/netns" || v.HostPath.Path == "/run/netns") {
			netnsVolume = v.Name
			replace(fmt.Sprintf("/spec/template/spec/volumes/%d/hostPath/path", i), n.NetNSDir())
		}
	}
	names := map[string]bool{}
	for kind, cs := range map[string][]containerShape{"initContainers": containersOf(spec.InitContainers), "containers": containersOf(spec.Containers)} {
		for i, c := range cs {
			p := fmt.Sprintf("/spec/template/spec/%s/%d", kind, i)
			add(p+"/imagePullPolicy", "Never")
			if c.hasEnv {
				for _, e := range env {
					add(p+"/env/-", e)
				}
			} else {
				add(p+"/env", env)
			}
			for j, m := range c.mounts {
				if m == netnsVolume {
					replace(fmt.Sprintf("%s/volumeMounts/%d/mountPath", p, j), n.NetNSDir())
				}
			}
			names[c.image] = true
		}
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	kust := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{resource},
		"patches": []map[string]any{{
			"target": map[string]any{"kind": "DaemonSet", "name": SteerDaemonSet},
			"patch":  string(patch),
		}},
	}
	if image != "" {
		var images []map[string]any
		name, tag, _ := strings.Cut(image, ":")
		for img := range names {
			images = append(images, map[string]any{"name": imageName(img), "newName": name, "newTag": tag})
		}
		kust["images"] = images
	}
	return yaml.Marshal(kust)
}

// imageName is a reference without its tag or digest.
func imageName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// WaitSteerRolledOut waits until every pod of Steer's DaemonSet runs image and is ready, and
// Steer's CNI config is in place.
func (n *Node) WaitSteerRolledOut(ctx context.Context, image string) error {
	return n.waitSteer(ctx, image, filepath.Join(CNIConfDir, install.ConfigName))
}

// waitSteer waits until every pod of Steer's DaemonSet runs image and is ready, and Steer's CNI
// config is written at config.
func (n *Node) waitSteer(ctx context.Context, image, config string) error {
	return poll(ctx, 2*time.Minute, func() error {
		ds, err := n.cluster.Client().AppsV1().DaemonSets(SteerNamespace).Get(ctx, SteerDaemonSet, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := ds.Status
		if ds.Generation != st.ObservedGeneration || st.DesiredNumberScheduled == 0 ||
			st.UpdatedNumberScheduled != st.DesiredNumberScheduled || st.NumberReady != st.DesiredNumberScheduled ||
			st.NumberAvailable != st.DesiredNumberScheduled {
			return fmt.Errorf("DaemonSet %s not rolled out: %+v", SteerDaemonSet, st)
		}
		for _, c := range ds.Spec.Template.Spec.Containers {
			if !strings.HasSuffix(c.Image, image) {
				return permanent(fmt.Errorf("DaemonSet runs %s, not %s", c.Image, image))
			}
		}
		if _, err := os.Stat(config); err != nil {
			return fmt.Errorf("the CNI config of Steer not written: %w", err)
		}
		return nil
	})
}

// DeleteSteer deletes Steer's DaemonSet (foreground: returns once its pods are gone).
func (n *Node) DeleteSteer(ctx context.Context) error {
	fg := metav1.DeletePropagationForeground
	err := n.cluster.Client().AppsV1().DaemonSets(SteerNamespace).Delete(ctx, SteerDaemonSet, metav1.DeleteOptions{PropagationPolicy: &fg})
	if err != nil {
		return err
	}
	return poll(ctx, 2*time.Minute, func() error {
		_, err := n.cluster.Client().AppsV1().DaemonSets(SteerNamespace).Get(ctx, SteerDaemonSet, metav1.GetOptions{})
		if err == nil {
			return errors.New("DaemonSet still there")
		}
		sbs, err := n.Sandboxes(ctx)
		if err != nil {
			return err
		}
		for _, sb := range sbs {
			if sb.Namespace == SteerNamespace && sb.State == "SANDBOX_READY" {
				return fmt.Errorf("pod %s of Steer still running", sb.Name)
			}
		}
		return nil
	})
}

// containerShape is what the overlay's patches need to know of a container.
type containerShape struct {
	image  string
	hasEnv bool
	mounts []string
}

func containersOf(cs []corev1.Container) []containerShape {
	var out []containerShape
	for _, c := range cs {
		cc := containerShape{image: c.Image, hasEnv: len(c.Env) > 0}
		for _, m := range c.VolumeMounts {
			cc.mounts = append(cc.mounts, m.Name)
		}
		out = append(out, cc)
	}
	return out
}
