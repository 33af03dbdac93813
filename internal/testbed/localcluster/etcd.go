package localcluster

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/steernet/steer/internal/testutil/child"
)

// startEtcd runs a single-member etcd on loopback, waits until it answers /health and returns
// its client URL.
func startEtcd(ctx context.Context, bin, dir string) (*child.Process, string, error) {
	var clientURL string
	p, err := startOnFreePorts(ctx, 2, func(ports []int) (*child.Process, probeFunc, error) {
		clientURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		args := []string{
			"--name=default",
			"--data-dir=" + filepath.Join(dir, "etcd-data"),
			"--listen-client-urls=" + clientURL,
			"--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=default=" + peerURL,
			// The data is thrown away with the cluster; fsync only slows tests on a shared disk.
			"--unsafe-no-fsync",
		}
		p, err := startProcess("etcd", bin, args, filepath.Join(dir, "etcd.log"))
		probe := func(ctx context.Context) error {
			return httpOK(ctx, http.DefaultClient, clientURL+"/health", "")
		}
		return p, probe, err
	})
	if err != nil {
		return nil, "", err
	}
	return p, clientURL, nil
}
