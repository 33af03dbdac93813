package emulation

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/internal/testbed/podns"
)

// Kubelet plays a node's kubelet and container runtime: it creates pod sandboxes and calls the
// CNI config the node has (the first in its conf dir, as containerd does) through libcni.
type Kubelet struct {
	Node   int
	NodeNS ns.NetNS
	Host   HostRoot
	Client kubernetes.Interface
	// Exec runs the plugin; nil forks and executes it as a runtime does.
	Exec   invoke.Exec
	prefix string
}

// NewKubelet returns the kubelet of node i of topo, whose files live in host.
func NewKubelet(topo *Topology, i int, host HostRoot, client kubernetes.Interface, prefix string) *Kubelet {
	return &Kubelet{Node: i, NodeNS: topo.Nodes[i], Host: host, Client: client, prefix: prefix}
}

// RunPod creates the pod object (bound to this node) and its sandbox, and runs CNI ADD. On
// failure the sandbox is removed and the error is the plugin's.
func (k *Kubelet) RunPod(ctx context.Context, pod *corev1.Pod) (_ *Pod, err error) {
	pod = k.Bind(pod)
	created, err := k.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	p, err := NewPod(k.prefix, pod.Name, k.Node)
	if err != nil {
		return nil, err
	}
	p.Namespace, p.UID = created.Namespace, string(created.UID)
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Remove())
		}
	}()
	if p.Result, err = k.Add(ctx, p); err != nil {
		return nil, err
	}
	return p, p.WaitAddresses(ctx)
}

// Bind returns a copy of pod scheduled to this node, with a container if it has none, ready to
// be created in the apiserver.
func (k *Kubelet) Bind(pod *corev1.Pod) *corev1.Pod {
	pod = pod.DeepCopy()
	pod.Spec.NodeName = fmt.Sprintf("node-%c", 'a'+k.Node)
	if len(pod.Spec.Containers) == 0 {
		pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}
	}
	return pod
}

// Add runs CNI ADD for the pod's sandbox, from the node's namespace, as the runtime does.
func (k *Kubelet) Add(ctx context.Context, p *Pod) (res types.Result, err error) {
	list, rt, err := k.cni(p)
	if err != nil {
		return nil, err
	}
	err = k.NodeNS.Do(func(ns.NetNS) (err error) {
		res, err = libcni.NewCNIConfigWithCacheDir([]string{k.Host.BinDir()}, k.Host.RuntimeDir(), k.Exec).AddNetworkList(ctx, list, rt)
		return err
	})
	return res, err
}

// Del runs CNI DEL for the pod's sandbox.
func (k *Kubelet) Del(ctx context.Context, p *Pod) error {
	return k.verb(p, func(c *libcni.CNIConfig, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
		return c.DelNetworkList(ctx, list, rt)
	})
}

// Check runs CNI CHECK for the pod's sandbox.
func (k *Kubelet) Check(ctx context.Context, p *Pod) error {
	return k.verb(p, func(c *libcni.CNIConfig, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
		return c.CheckNetworkList(ctx, list, rt)
	})
}

// verb runs a CNI verb for the pod's sandbox from the node's namespace, as the runtime does.
func (k *Kubelet) verb(p *Pod, run func(*libcni.CNIConfig, *libcni.NetworkConfigList, *libcni.RuntimeConf) error) error {
	list, rt, err := k.cni(p)
	if err != nil {
		return err
	}
	return k.NodeNS.Do(func(ns.NetNS) error {
		return run(libcni.NewCNIConfigWithCacheDir([]string{k.Host.BinDir()}, k.Host.RuntimeDir(), k.Exec), list, rt)
	})
}

// StopPod runs CNI DEL, removes the sandbox and deletes the pod object.
func (k *Kubelet) StopPod(ctx context.Context, p *Pod) error {
	errs := []error{k.Del(ctx, p), p.Remove()}
	err := k.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cni loads the node's CNI config as the runtime does and the pod's runtime arguments.
func (k *Kubelet) cni(p *Pod) (*libcni.NetworkConfigList, *libcni.RuntimeConf, error) {
	files, err := libcni.ConfFiles(k.Host.ConfDir(), []string{".conf", ".conflist", ".json"})
	if err != nil || len(files) == 0 {
		return nil, nil, fmt.Errorf("no CNI config in %s: %v", k.Host.ConfDir(), err)
	}
	list, err := libcni.NetworkConfFromFile(files[0])
	if err != nil {
		return nil, nil, err
	}
	return list, podns.RuntimeConf(p.ContainerID, p.NS.Path(), p.Namespace, p.Name, p.UID), nil
}
