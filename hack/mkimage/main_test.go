package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageLoads builds an image from two stand-in binaries and reads it back the way
// `docker load` does: the tag, the entrypoint and the files must be there.
func TestImageLoads(t *testing.T) {
	dir := t.TempDir()
	var bins []string
	for _, b := range []string{"steerd", "steerctl"} {
		p := filepath.Join(dir, b)
		if err := os.WriteFile(p, []byte("#!/bin/true\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		bins = append(bins, p)
	}
	out := filepath.Join(dir, "image.tar")
	if err := run("steernet/steer:test", out, bins); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("steernet/steer:test")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil || cfg.Config.Entrypoint[0] != "/usr/local/bin/steerd" || cfg.OS != "linux" {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	layers, _ := img.Layers()
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	found := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		found[h.Name] = true
	}
	for _, want := range []string{"usr/local/bin/steerd", "usr/local/bin/steerctl"} {
		if !found[want] {
			t.Errorf("%s missing from the layer: %v", want, found)
		}
	}
}
