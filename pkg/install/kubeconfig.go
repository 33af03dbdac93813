package install

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// In-cluster service account files, projected by the kubelet and rotated by it.
const (
	ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	TokenFile         = "token"
	CAFile            = "ca.crt"
)

// Kubeconfig describes the kubeconfig the thin-mode plugin uses on the host.
type Kubeconfig struct {
	Server    string // https://host:port of the apiserver
	CAFile    string // the CA bundle to trust (read and embedded)
	TokenPath string // host path of the token file the kubeconfig names
}

// WriteKubeconfig writes a kubeconfig that reads its token from k.TokenPath instead of holding
// a copy: client-go re-reads a tokenFile, so when steerd refreshes that file the plugin never
// presents an expired token (copying the token itself into the kubeconfig is how Multus'
// kubeconfigs expire).
func WriteKubeconfig(path string, k Kubeconfig) error {
	ca, err := os.ReadFile(k.CAFile)
	if err != nil {
		return fmt.Errorf("read CA: %w", err)
	}
	doc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: steer
  user:
    tokenFile: %s
contexts:
- name: steer
  context:
    cluster: local
    user: steer
current-context: steer
`, k.Server, base64.StdEncoding.EncodeToString(ca), k.TokenPath)
	return writeAtomic(path, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, doc)
		return err
	})
}

// SyncToken copies the projected token at src to dst whenever it changes, until ctx ends.
// The kubelet rotates src well before expiry; dst is what the host-side plugin reads.
func SyncToken(ctx context.Context, src, dst string, every time.Duration) error {
	var last []byte
	for {
		tok, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("read token: %w", err)
		}
		if !bytes.Equal(tok, last) {
			if err := writeAtomic(dst, 0o600, func(w io.Writer) error { _, err := w.Write(tok); return err }); err != nil {
				return err
			}
			last = tok
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// RemoveKubeconfig removes what WriteKubeconfig and SyncToken wrote.
func RemoveKubeconfig(dir string) error {
	return os.RemoveAll(filepath.Clean(dir))
}
