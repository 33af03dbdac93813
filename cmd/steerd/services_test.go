package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/svctest"
	"github.com/steernet/steer/manifests"
	"github.com/steernet/steer/pkg/service"
	"github.com/steernet/steer/pkg/service/endpoints"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// applyRBAC creates the ServiceAccount, roles and bindings of the shipped manifests (the chart
// rendered with its defaults).
func applyRBAC(t *testing.T, c kubernetes.Interface) {
	t.Helper()
	data, err := manifests.FS.ReadFile("steer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	ctx := t.Context()
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(raw.Raw)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw.Raw, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			continue // the DaemonSet
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

type recorder struct {
	mu   sync.Mutex
	last map[string][]service.Entry
}

func (r *recorder) Program(id string, entries []service.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[id] = slices.Clone(entries)
	return nil
}

func (r *recorder) backends(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.last[id] {
		out = append(out, fmt.Sprintf("%s %s via %s -> %v", e.Frontend.Proto, e.Frontend.Addr, e.IfName, e.Backends))
	}
	return strings.Join(out, "\n")
}

// TestServicesWithShippedRBAC runs what `steerd run` runs for Services, as the DaemonSet's
// service account with exactly the shipped RBAC: the elected controller writes slices and
// Events, and the node agent programs a pod found in the plugin's cache.
func TestServicesWithShippedRBAC(t *testing.T) {
	cluster := kubetest.Cluster(t)
	admin := cluster.Client()
	applyRBAC(t, admin)
	ns := kubetest.Namespace(t)

	// A pod of this node, as the plugin's cache records it.
	cniDir := t.TempDir()
	entry := map[string]any{
		"kind": "steer/cache/v1", "containerID": "client", "ifName": "eth0", "complete": true,
		"pod": map[string]any{"namespace": ns, "name": "client"},
		"attachments": []map[string]any{
			{"ifName": "eth0", "network": "flannel", "primary": true},
			{"ifName": "net1", "network": ns + "/dmz"},
		},
	}
	b, _ := json.Marshal(entry)
	if err := os.WriteFile(filepath.Join(cniDir, "client.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := cluster.RESTConfig()
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:kube-system:steer",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
	}
	var f serviceFlags
	fs := flag.NewFlagSet("steerd run", flag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse([]string{"-services-lease=kube-system/steer-endpointslices",
		"-services-lease-duration=4s", "-services-renew-deadline=3s", "-services-retry-period=500ms"}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{last: map[string][]service.Entry{}}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s := services{flags: f, cfg: cfg, nodeName: "node-a", cniDir: pluginCNIDir(map[string]any{"cniDir": cniDir}),
		programmer: rec, reg: prometheus.NewRegistry(), log: log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("services: %v", err)
		}
	}()

	svc, err := admin.CoreV1().Services(ns).Create(t.Context(), svctest.Service(ns, "web-dmz", "dmz", corev1.IPv4Protocol), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svctest.CreatePod(t, admin, svctest.Pod(ns, "web-a", "node-b", map[string][]string{ns + "/dmz": {"192.0.2.10"}}), true)
	svctest.WaitSlices(t, admin, ns, "web-dmz", "IPv4 web-a=192.0.2.10 ready=true serving=true terminating=false http/TCP:8080,dns/UDP:53")
	ip := svc.Spec.ClusterIP
	want := fmt.Sprintf("UDP %s:53 via net1 -> [192.0.2.10:53]\nTCP %s:80 via net1 -> [192.0.2.10:8080]", ip, ip)
	svctest.Eventually(t, 15*time.Second, "the cached pod programmed", func() (bool, string) {
		got := rec.backends("client")
		return got == want, got
	})
	svctest.Eventually(t, 15*time.Second, "an Event from the controller", func() (bool, string) {
		list, err := admin.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "web-dmz").String(),
		})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.Reason == endpoints.ReasonServing {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(list.Items))
	})
	lease, err := admin.CoordinationV1().Leases("kube-system").Get(t.Context(), "steer-endpointslices", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || !strings.HasPrefix(*lease.Spec.HolderIdentity, "node-a_") {
		t.Errorf("lease: %v, %+v; want held by node-a", err, lease)
	}
}
