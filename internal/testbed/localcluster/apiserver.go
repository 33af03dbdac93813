package localcluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/steernet/steer/internal/testutil/child"
)

// apiServer is a running kube-apiserver and what a client needs to reach it.
type apiServer struct {
	proc  *child.Process
	url   string
	port  int
	token string // admin bearer token, group system:masters
	ca    []byte // PEM of the serving CA; nil when none could be verified
	// launch starts kube-apiserver on port with the same flags, files and certificates.
	launch func(port int) (*child.Process, probeFunc, error)
}

// startAPIServer runs kube-apiserver on loopback against etcdURL and waits for /readyz.
func startAPIServer(ctx context.Context, bin, dir, etcdURL string, extraArgs []string) (*apiServer, error) {
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "tokens.csv")
	// Format: token,user,uid,"group1,group2". system:masters bypasses RBAC.
	if err := os.WriteFile(tokenFile, []byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write token file: %w", err)
	}
	saKey := filepath.Join(dir, "sa.key")
	if err := writeECKey(saKey); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "pki")

	// Readiness is probed before the serving CA is read, so the probe cannot verify it. It only
	// ever talks to 127.0.0.1 and sends a token that dies with the cluster.
	probeClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	defer probeClient.CloseIdleConnections()

	s := &apiServer{token: token}
	s.launch = func(port int) (*child.Process, probeFunc, error) {
		s.port = port
		s.url = "https://127.0.0.1:" + strconv.Itoa(port)
		args := []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			// No kubernetes Service/Endpoints upkeep: nothing here routes to the apiserver.
			"--endpoint-reconciler-type=none",
			"--cert-dir=" + certDir,
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + saKey,
			"--service-account-signing-key-file=" + saKey,
			"--token-auth-file=" + tokenFile,
			"--authorization-mode=RBAC",
			"--allow-privileged=true",
			// No controller-manager mints service-account tokens, so pods would be rejected.
			"--disable-admission-plugins=ServiceAccount",
			// Dual-stack, so IPv6 and dual-stack Services can be made; single-stack Services
			// still get IPv4, the first family.
			"--service-cluster-ip-range=10.96.0.0/16,2001:db8:96::/112",
		}
		p, err := startProcess("kube-apiserver", bin, append(withoutOverridden(args, extraArgs), extraArgs...), filepath.Join(dir, "kube-apiserver.log"))
		probe := func(ctx context.Context) error {
			return httpOK(ctx, probeClient, s.url+"/readyz", token)
		}
		return p, probe, err
	}
	s.proc, err = startOnFreePorts(ctx, 1, func(ports []int) (*child.Process, probeFunc, error) { return s.launch(ports[0]) })
	if err != nil {
		return nil, err
	}
	s.ca = servingCA(filepath.Join(certDir, "apiserver.crt"))
	return s, nil
}

// servingCA returns the CA that kube-apiserver generated to sign its self-signed serving cert
// (it writes the serving cert followed by that CA into cert-dir), or nil unless the serving cert
// verifies against it for 127.0.0.1.
func servingCA(certFile string) []byte {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil
	}
	var leaf *x509.Certificate
	var caPEM []byte
	roots := x509.NewCertPool()
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil
		}
		if !cert.IsCA {
			leaf = cert
			continue
		}
		roots.AddCert(cert)
		caPEM = append(caPEM, pem.EncodeToMemory(block)...)
	}
	if leaf == nil || caPEM == nil {
		return nil
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", CurrentTime: time.Now()}
	if _, err := leaf.Verify(opts); err != nil {
		return nil
	}
	return caPEM
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// writeECKey writes a fresh P-256 key, used both to sign service-account tokens and to verify them.
func writeECKey(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate service-account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal service-account key: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		return fmt.Errorf("write service-account key: %w", err)
	}
	return nil
}

// withoutOverridden drops the flags of args that extra sets again: for list flags such as
// --disable-admission-plugins kube-apiserver appends a repeated flag instead of replacing it.
func withoutOverridden(args, extra []string) []string {
	var out []string
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		overridden := false
		for _, e := range extra {
			if en, _, _ := strings.Cut(e, "="); en == name {
				overridden = true
			}
		}
		if !overridden {
			out = append(out, a)
		}
	}
	return out
}
