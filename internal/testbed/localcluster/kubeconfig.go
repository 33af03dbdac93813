package localcluster

import (
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	clientcmdlatest "k8s.io/client-go/tools/clientcmd/api/latest"
)

const contextName = "steer-local"

// restConfig is the admin client configuration for s.
func restConfig(s *apiServer) *rest.Config {
	cfg := &rest.Config{
		Host:        s.url,
		BearerToken: s.token,
		// Tests create objects in bursts; client-side throttling would only slow them down.
		QPS:   200,
		Burst: 400,
	}
	if s.ca != nil {
		cfg.CAData = s.ca
	} else {
		// Only reached if a future apiserver stops writing its CA next to the serving cert. The
		// server is on 127.0.0.1 and the token dies with it, so skipping verification there is
		// harmless; servingCA normally lets clients verify.
		cfg.Insecure = true
	}
	return cfg
}

// writeKubeconfig writes cfg as a single-context kubeconfig (mode 0600) for kubectl and tools.
func writeKubeconfig(path string, cfg *rest.Config) error {
	cluster := clientcmdapi.NewCluster()
	cluster.Server = cfg.Host
	cluster.CertificateAuthorityData = cfg.CAData
	cluster.InsecureSkipTLSVerify = cfg.Insecure

	user := clientcmdapi.NewAuthInfo()
	user.Token = cfg.BearerToken

	kctx := clientcmdapi.NewContext()
	kctx.Cluster = contextName
	kctx.AuthInfo = contextName
	kctx.Namespace = "default"

	kc := clientcmdapi.NewConfig()
	kc.Clusters[contextName] = cluster
	kc.AuthInfos[contextName] = user
	kc.Contexts[contextName] = kctx
	kc.CurrentContext = contextName
	// What clientcmd.WriteToFile does, without the clientcmd package and its flag dependencies.
	data, err := runtime.Encode(clientcmdlatest.Codec, kc)
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
