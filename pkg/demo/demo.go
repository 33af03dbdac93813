// Package demo is the story `make demo` tells, written once so that a test runs the same code.
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/localcluster"
	"github.com/steernet/steer/pkg/podns"
)

// Run brings the local cluster up, runs every step and tears everything down, also on
// cancellation or failure.
func Run(ctx context.Context, out io.Writer, log *slog.Logger) (err error) {
	p := printer{w: out}
	p.heading("Local cluster")
	p.say("starting kube-apiserver and etcd on loopback (about 5 s)")
	start := time.Now()
	cluster, err := localcluster.Start(ctx, localcluster.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		p.heading("Tear-down")
		err = joinErr(err, cluster.Stop())
		p.say("cluster stopped, namespaces and pins removed")
	}()
	p.say("apiserver ready at %s in %s (kubeconfig %s)", cluster.Host(), time.Since(start).Round(100*time.Millisecond), cluster.Kubeconfig())

	nads, err := k8s.NewNADClientForConfig(cluster.RESTConfig())
	if err != nil {
		return err
	}
	const ns = "default"
	_, err = nads.Create(ctx, &k8s.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "dmz", Namespace: ns},
		Spec: k8s.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.0.0","type":"macvlan","master":"lan0","mode":"bridge",` +
			`"ipam":{"type":"static","addresses":[{"address":"192.0.2.10/24","gateway":"192.0.2.1"}]}}`},
	})
	if err != nil {
		return fmt.Errorf("create NAD: %w", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Annotations: map[string]string{k8s.NetworksAnnotation: "dmz"}},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if _, err := cluster.Client().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod: %w", err)
	}
	p.say("created NetworkAttachmentDefinition %s/dmz and pod %s/web annotated %s=dmz", ns, ns, k8s.NetworksAnnotation)

	podNS, err := podns.New("demo-web")
	if err != nil {
		return err
	}
	defer func() { err = joinErr(err, podNS.Remove()) }()
	p.say("pod sandbox: network namespace %s", podNS.Name())

	kubectl, err := localcluster.Kubectl()
	if err != nil {
		return err
	}
	p.heading("kubectl get network-attachment-definitions,pods -A")
	p.run(ctx, kubectl, "--kubeconfig", cluster.Kubeconfig(), "get", "network-attachment-definitions,pods", "-A")
	return nil
}

type printer struct{ w io.Writer }

func (p printer) heading(s string) { fmt.Fprintf(p.w, "\n== %s\n", s) }
func (p printer) say(f string, a ...any) {
	fmt.Fprintf(p.w, "   "+f+"\n", a...)
}

func (p printer) run(ctx context.Context, name string, args ...string) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Fprintf(p.w, "   | %s\n", line)
	}
	if err != nil {
		fmt.Fprintf(p.w, "   ! %v\n", err)
	}
}

func joinErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
