package kubetest

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestMain(m *testing.M) { Main(m) }

func TestClusterIsShared(t *testing.T) {
	first := Cluster(t)
	t.Run("subtest", func(t *testing.T) {
		if got := Cluster(t); got != first {
			t.Errorf("Cluster() = %p in a subtest, want the binary's one cluster %p", got, first)
		}
	})
}

func TestNamespaceIsCreatedAndDeleted(t *testing.T) {
	client := Cluster(t).Client()
	var name string
	t.Run("odd/Name with_CAPS and a rather long tail that exceeds the label limit", func(t *testing.T) {
		name = Namespace(t)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Fatalf("namespace %q is not a DNS-1123 label: %v", name, errs)
		}
		if _, err := client.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{}); err != nil {
			t.Fatalf("get namespace %s: %v", name, err)
		}
	})
	ns, err := client.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		t.Fatal(err)
	case ns.DeletionTimestamp == nil:
		t.Errorf("namespace %s not deleted after its test ended", name)
	}
}

func TestNamespaceName(t *testing.T) {
	for _, in := range []string{"TestX", "TestX/sub_case#01", "---", "", strings.Repeat("Ab/", 40)} {
		got := namespaceName(in)
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("namespaceName(%q) = %q: %v", in, got, errs)
		}
		if again := namespaceName(in); again == got {
			t.Errorf("namespaceName(%q) returned %q twice, want a unique suffix", in, got)
		}
	}
}
