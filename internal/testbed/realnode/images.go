package realnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Images are the node's local images; no registry is reachable, so every image is a tarball
// imported into containerd and pods use imagePullPolicy Never.
type Images struct {
	Pause string // the sandbox image containerd pins
	Echo  string // a test pod: TCP and UDP echo servers
	Steer string // Steer's image from `make image`, tagged for this run
}

// buildPodImages compiles podimage and writes a tarball holding it as the pause and the echo
// image: one static binary in one layer, like Steer's own image.
func buildPodImages(ctx context.Context, dir, tag string) (tarPath string, refs map[string]string, err error) {
	bin := filepath.Join(dir, "podimage")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/steernet/steer/internal/testbed/realnode/podimage")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("build podimage: %w: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", nil, err
	}
	layerTar := tarOf("podimage", data)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return "", nil, err
	}
	refs = map[string]string{
		"pause": "steer.test/pause:" + tag,
		"echo":  "steer.test/echo:" + tag,
	}
	byRef := map[name.Reference]v1.Image{}
	for mode, ref := range refs {
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			return "", nil, err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return "", nil, err
		}
		cfg = cfg.DeepCopy()
		cfg.Architecture, cfg.OS = "amd64", "linux"
		cfg.Config.Entrypoint = []string{"/podimage", mode}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return "", nil, err
		}
		t, err := name.NewTag(ref)
		if err != nil {
			return "", nil, err
		}
		byRef[t] = img
	}
	tarPath = filepath.Join(dir, "pod-images.tar")
	if err := tarball.MultiRefWriteToFile(tarPath, byRef); err != nil {
		return "", nil, fmt.Errorf("write pod images: %w", err)
	}
	return tarPath, refs, nil
}
