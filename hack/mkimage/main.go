// Command mkimage builds Steer's container image as a tarball without Docker: one layer with
// the static binaries on an empty base (steerd needs no shell, libc or tools: it talks netlink
// and writes /proc itself, and runs the delegates from the host's CNI bin directory). The
// tarball loads with `docker load` and `ctr images import`.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	tag := flag.String("tag", "steernet/steer:0.1.0", "image reference")
	out := flag.String("out", "bin/steer-image.tar", "tarball to write")
	bins := flag.String("bins", "bin/steer,bin/steerd,bin/steerctl", "binaries to put in /usr/local/bin")
	flag.Parse()
	if err := run(*tag, *out, strings.Split(*bins, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(tag, out string, bins []string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	layerTar, err := binariesTar(bins)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config.Entrypoint = []string{"/usr/local/bin/steerd"}
	cfg.Config.Cmd = []string{"run"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "steer", "org.opencontainers.image.licenses": "Apache-2.0"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	// A fixed creation time keeps the image reproducible.
	if img, err = mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()}); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return err
	}
	digest, _ := img.Digest()
	fmt.Printf("%s: %s %s\n", out, ref, digest)
	return nil
}

// binariesTar lays the binaries out under usr/local/bin, owned by root, with fixed times.
func binariesTar(bins []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"usr/", "usr/local/", "usr/local/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
	}
	for _, b := range bins {
		f, err := os.Open(b)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "usr/local/bin/" + filepath.Base(b), Mode: 0o755, Size: st.Size(), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Close()
			return nil, err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
