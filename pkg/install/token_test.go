package install

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/k8s"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestTokenRotation: the thin-mode kubeconfig reads its token from a file steerd keeps fresh.
// When the kubelet rotates the service-account token and the old one is revoked, a plugin
// started afterwards still gets through.
func TestTokenRotation(t *testing.T) {
	cluster := kubetest.Cluster(t)
	admin := cluster.Client()
	ctx := context.Background()
	ns := kubetest.Namespace(t)

	// A service account allowed to read pods, and two secrets to bind its tokens to: deleting
	// a secret revokes the tokens bound to it, as deleting a pod revokes its projected token.
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "steer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "steer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "steer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "steer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "steer", Namespace: ns}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := func(secret string) string {
		s, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		exp := int64(600)
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "steer", &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: secret, UID: s.UID},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}

	dir := t.TempDir()
	projected, hostToken := filepath.Join(dir, "projected-token"), filepath.Join(dir, "steer.d", "token")
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, cluster.RESTConfig().CAData, 0o644); err != nil {
		t.Fatal(err)
	}
	first := token("first")
	if err := os.WriteFile(projected, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "steer.d", "steer.kubeconfig")
	if err := WriteKubeconfig(kubeconfig, Kubeconfig{Server: cluster.Host(), CAFile: ca, TokenPath: hostToken}); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = SyncToken(sctx, projected, hostToken, 20*time.Millisecond) }()

	// Each call stands for one plugin exec: a fresh client reading the kubeconfig.
	plugin := func() error {
		cfg, err := k8s.RESTConfigFromKubeconfig(kubeconfig, 5*time.Second)
		if err != nil {
			return err
		}
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		_, err = c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err
	}
	var lastErr error
	defer func() {
		if t.Failed() {
			t.Logf("last plugin error: %v", lastErr)
		}
	}()
	waitFor(t, func() bool { lastErr = plugin(); return lastErr == nil })

	// The kubelet rotates the token; the old one is revoked.
	if err := os.WriteFile(projected, []byte(token("second")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := admin.CoreV1().Secrets(ns).Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		b, _ := os.ReadFile(hostToken)
		p, _ := os.ReadFile(projected)
		return string(b) == string(p)
	})
	// Wait until the old token is refused (the apiserver caches authentications for ~10 s):
	// only then does a working plugin prove the rotation reached it.
	cfg := cluster.RESTConfig()
	cfg.BearerToken, cfg.BearerTokenFile = first, ""
	old, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := old.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked token still works after 30 s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := plugin(); err != nil {
		t.Fatalf("thin mode after rotation: %v", err)
	}
}
