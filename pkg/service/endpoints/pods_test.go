package endpoints

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/steernet/steer/pkg/k8s"
)

// typicalPod is a pod as the apiserver serves it: managed fields, env, volumes, statuses.
func typicalPod(i int, attached bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: fmt.Sprintf("web-%05d", i), UID: "0f8fad5b-d9cb-469f-a165-70867728950e",
			Labels:      map[string]string{"app": "web", "pod-template-hash": "5d4f8c7b9"},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": time.Now().String()},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate,
				FieldsV1: metav1.NewFieldsV1(strings.Repeat("f", 1500))}},
		},
		Spec: corev1.PodSpec{NodeName: "node-a"},
	}
	for c := range 2 {
		ctr := corev1.Container{Name: fmt.Sprintf("c%d", c), Image: "registry.example/web:1.2.3",
			Ports: []corev1.ContainerPort{{Name: "http-alt", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}
		for e := range 10 {
			ctr.Env = append(ctr.Env, corev1.EnvVar{Name: fmt.Sprintf("VAR_%d", e), Value: "some configuration value"})
		}
		p.Spec.Containers = append(p.Spec.Containers, ctr)
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image, ImageID: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ContainerID: "containerd://0123456789abcdef"})
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue}}
	if attached {
		p.Annotations[k8s.NetworkStatusAnnotation] = `[{"name":"cbr0","interface":"eth0","ips":["10.244.0.5"],"default":true,"dns":{}},{"name":"shop/dmz","interface":"net1","ips":["192.0.2.10","2001:db8:2::a"],"mac":"02:00:00:00:00:01","dns":{}}]`
	}
	return p
}

// BenchmarkPodCache reports the heap one cached pod costs the controller, trimmed, for a
// cluster where one pod in ten has a secondary network, against the pod kept whole.
func BenchmarkPodCache(b *testing.B) {
	const pods = 10000
	for _, trim := range []bool{false, true} {
		b.Run(map[bool]string{false: "whole", true: "trimmed"}[trim], func(b *testing.B) {
			for b.Loop() {
				idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for i := range pods {
					var obj any = typicalPod(i, i%10 == 0)
					if trim {
						obj, _ = trimPod(obj)
					}
					_ = idx.Add(obj)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/pods, "B/pod")
				runtime.KeepAlive(idx)
			}
		})
	}
}
