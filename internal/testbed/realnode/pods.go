package realnode

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/pkg/k8s"
)

// Pod is a pod kubelet runs on the node: its object once Ready, and its sandbox.
type Pod struct {
	Object    *corev1.Pod
	SandboxID string // the CNI container ID, which names Steer's pins
	NetNS     string // the sandbox's network namespace, a path under NetNSDir
}

// EchoPod is a pod of the echo image (TCP and UDP echo servers on the emulation's ports) in
// namespace, selecting networks (the networks annotation; none when empty), with labels.
func (n *Node) EchoPod(namespace, name, networks string, labels map[string]string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "echo", Image: n.images.Echo, ImagePullPolicy: corev1.PullNever,
			}},
			AutomountServiceAccountToken:  new(bool),
			TerminationGracePeriodSeconds: new(int64),
		},
	}
	if networks != "" {
		pod.Annotations = map[string]string{k8s.NetworksAnnotation: networks}
	}
	return pod
}

// RunPod creates pod through the apiserver and waits until kubelet reports it Ready.
func (n *Node) RunPod(ctx context.Context, pod *corev1.Pod) (*Pod, error) {
	pods := n.cluster.Client().CoreV1().Pods(pod.Namespace)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	var got *corev1.Pod
	err := poll(ctx, 2*time.Minute, func() (err error) {
		if got, err = pods.Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("pod %s is %s: %s", pod.Name, got.Status.Phase, n.podEvents(ctx, pod.Namespace, pod.Name))
	})
	if err != nil {
		return nil, err
	}
	sbs, err := n.Sandboxes(ctx)
	if err != nil {
		return nil, err
	}
	for _, sb := range sbs {
		if sb.Namespace == pod.Namespace && sb.Name == pod.Name && sb.State == "SANDBOX_READY" {
			path, err := n.SandboxNetNS(ctx, sb.ID)
			if err != nil {
				return nil, err
			}
			return &Pod{Object: got, SandboxID: sb.ID, NetNS: path}, nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s is Ready without a ready sandbox", pod.Namespace, pod.Name)
}

// podEvents summarises a pod's last events, for failures (a sandbox that failed CNI ADD says
// why).
func (n *Node) podEvents(ctx context.Context, namespace, name string) string {
	evs, err := n.cluster.Client().CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, ev := range evs.Items {
		out = append(out, ev.Reason+": "+ev.Message)
	}
	if len(out) > 3 {
		out = out[len(out)-3:]
	}
	return strings.Join(out, " | ")
}

// DeletePod deletes a pod and waits until it is gone and its sandbox stopped: stopping ran CNI
// DEL and removed the network namespace (kubelet removes dead sandboxes later, in its garbage
// collection).
func (n *Node) DeletePod(ctx context.Context, namespace, name string) error {
	pods := n.cluster.Client().CoreV1().Pods(namespace)
	if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return poll(ctx, 2*time.Minute, func() error {
		if _, err := pods.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s still exists (%v)", name, err)
		}
		sbs, err := n.Sandboxes(ctx)
		if err != nil {
			return err
		}
		for _, sb := range sbs {
			if sb.Namespace == namespace && sb.Name == name && sb.State == "SANDBOX_READY" {
				return fmt.Errorf("sandbox %s of pod %s still running", sb.ID, name)
			}
		}
		return nil
	})
}

// WaitNamespaceReady waits until namespace has its default service account, which
// service-account admission wants of every pod and the controller-manager creates.
func (n *Node) WaitNamespaceReady(ctx context.Context, namespace string) error {
	return poll(ctx, time.Minute, func() error {
		_, err := n.cluster.Client().CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}
