// Package svctest builds the Services on secondary networks, pods and network-status that the
// tests of the EndpointSlice controller and the node agent run against the local apiserver.
package svctest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/service"
)

// Service is the example Service: http on a named target port, dns on its own port.
func Service(ns, name, network string, families ...corev1.IPFamily) *corev1.Service {
	policy := corev1.IPFamilyPolicySingleStack
	if len(families) > 1 {
		policy = corev1.IPFamilyPolicyRequireDualStack
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels:      map[string]string{service.ProxyNameLabel: service.MultusProxyName, "tier": "dmz"},
			Annotations: map[string]string{},
		},
		Spec: corev1.ServiceSpec{
			Selector:       map[string]string{"app": "web"},
			IPFamilyPolicy: &policy,
			IPFamilies:     families,
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http-alt"), Protocol: corev1.ProtocolTCP},
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			},
		},
	}
	if network != "" {
		svc.Annotations[service.NetworkAnnotation] = network
	}
	return svc
}

// Pod is a pod of app=web with network-status naming networks (name: addresses).
func Pod(ns, name, node string, networks map[string][]string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web", Ports: []corev1.ContainerPort{
				{Name: "http-alt", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
			}}},
		},
	}
	if networks != nil {
		st := []k8s.NetworkStatus{{Name: "flannel", Interface: "eth0", IPs: []string{"10.244.0.5"}, Default: true}}
		i := 1
		for _, n := range sortedNames(networks) {
			st = append(st, k8s.NetworkStatus{Name: n, Interface: fmt.Sprintf("net%d", i), IPs: networks[n]})
			i++
		}
		b, _ := json.Marshal(st)
		pod.Annotations = map[string]string{k8s.NetworkStatusAnnotation: string(b)}
	}
	return pod
}

func sortedNames(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CreatePod creates the pod and sets its Ready condition.
func CreatePod(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, ready bool) *corev1.Pod {
	t.Helper()
	got, err := c.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return SetReady(t, c, got, ready)
}

// SetReady sets the pod running, Ready or not, as a kubelet would.
func SetReady(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, ready bool) *corev1.Pod {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod = pod.DeepCopy()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	got, err := c.CoreV1().Pods(pod.Namespace).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status of pod %s: %v", pod.Name, err)
	}
	return got
}

// HoldFinalizer keeps a deleted pod terminating (no kubelet here removes it).
const HoldFinalizer = "test.steernet.io/hold"

// ReleasePod removes HoldFinalizer, so a deleted pod goes.
func ReleasePod(t *testing.T, c kubernetes.Interface, ns, name string) {
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = c.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
}

// SteerSlices are the Service's slices written by Steer's controller.
func SteerSlices(t *testing.T, c kubernetes.Interface, ns, svc string) []discovery.EndpointSlice {
	t.Helper()
	list, err := c.DiscoveryV1().EndpointSlices(ns).List(t.Context(), metav1.ListOptions{
		LabelSelector: service.ServiceNameLabel + "=" + svc + "," + service.ManagedByLabel + "=" + service.SteerManagedBy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// Summary renders slices as sorted lines "IPv4 pod=addr ready serving terminating ports", so
// tests compare one string.
func Summary(ss []discovery.EndpointSlice) string {
	var lines []string
	for _, s := range ss {
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s:%d", *p.Name, *p.Protocol, *p.Port))
		}
		if len(s.Endpoints) == 0 {
			lines = append(lines, fmt.Sprintf("%s (none)", s.AddressType))
		}
		for _, ep := range s.Endpoints {
			lines = append(lines, fmt.Sprintf("%s %s=%s ready=%t serving=%t terminating=%t %s",
				s.AddressType, ep.TargetRef.Name, strings.Join(ep.Addresses, ","),
				*ep.Conditions.Ready, *ep.Conditions.Serving, *ep.Conditions.Terminating, strings.Join(ports, ",")))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// Eventually polls cond every 50 ms until it holds or timeout passes, then fails with last.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last:\n%s", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitSlices waits until Summary of the Service's slices is want.
func WaitSlices(t *testing.T, c kubernetes.Interface, ns, svc, want string) {
	t.Helper()
	Eventually(t, 15*time.Second, "slices of "+svc, func() (bool, string) {
		got := Summary(SteerSlices(t, c, ns, svc))
		return got == want, got
	})
}
