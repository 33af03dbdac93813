package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const (
	chartDir = "../../manifests/charts/steer"
	// bpfObject is bpf2go's output, the one object every little-endian build embeds.
	bpfObject = "../../pkg/datapath/steer_bpfel.o"
	// renderedManifests are the kustomize manifests, rendered from the chart's defaults.
	renderedManifests = "../../manifests/steer.yaml"
)

var steerPkgs = []string{
	"github.com/steernet/steer/cmd/steer",
	"github.com/steernet/steer/cmd/steer-shim",
	"github.com/steernet/steer/cmd/steerd",
	"github.com/steernet/steer/cmd/steerctl",
}

// TestMultiArchImage builds the image as `make image` does and reads it back as an importer
// would: index.json names an image index of two images, linux/amd64 and linux/arm64, every
// blob matches its digest, each config says its platform, and each layer holds Steer's
// binaries as static ELF executables of that platform's machine with the BPF object embedded.
func TestMultiArchImage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles Steer for two platforms: skipped under -short")
	}
	obj, err := os.ReadFile(bpfObject)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "steer-image.tar")
	ref, digest, err := run(options{chart: chartDir, out: out, platforms: []string{"linux/amd64", "linux/arm64"}, pkgs: steerPkgs})
	if err != nil {
		t.Fatal(err)
	}
	dir := untar(t, out)

	var ociLayout struct {
		Version string `json:"imageLayoutVersion"`
	}
	readJSON(t, filepath.Join(dir, "oci-layout"), &ociLayout)
	if ociLayout.Version != "1.0.0" {
		t.Errorf("oci-layout version %q, want 1.0.0", ociLayout.Version)
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 {
		t.Fatalf("index.json lists %d entries, want the one image index", len(topManifest.Manifests))
	}
	entry := topManifest.Manifests[0]
	if !entry.MediaType.IsIndex() || entry.Digest != digest {
		t.Fatalf("index.json entry %s %s, want the image index %s", entry.MediaType, entry.Digest, digest)
	}
	wantName := "docker.io/steernet/steer:" + ref.TagStr()
	if got := entry.Annotations[annotationContainerdName]; got != wantName {
		t.Errorf("%s = %q, want %q (kubelet asks containerd for this name)", annotationContainerdName, got, wantName)
	}
	if got := entry.Annotations[annotationRefName]; got != ref.TagStr() {
		t.Errorf("%s = %q, want the tag %q", annotationRefName, got, ref.TagStr())
	}

	idx, err := top.ImageIndex(entry.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// Digests and sizes of every manifest, config and layer, as a registry or containerd checks them.
	if err := validate.Index(idx); err != nil {
		t.Fatalf("image index does not validate: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, desc := range im.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %s has no platform", desc.Digest)
		}
		platform := desc.Platform.OS + "/" + desc.Platform.Architecture
		seen[platform] = true
		t.Run(strings.ReplaceAll(platform, "/", "-"), func(t *testing.T) {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OS != desc.Platform.OS || cfg.Architecture != desc.Platform.Architecture || cfg.Variant != desc.Platform.Variant {
				t.Errorf("config says %s/%s/%s, the index %s", cfg.OS, cfg.Architecture, cfg.Variant, desc.Platform)
			}
			if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/usr/local/bin/steerd" {
				t.Errorf("entrypoint %q, want steerd", cfg.Config.Entrypoint)
			}
			files := layerFiles(t, img)
			for _, bin := range []string{"steer", "steer-shim", "steerd", "steerctl"} {
				data, ok := files["usr/local/bin/"+bin]
				if !ok {
					t.Errorf("%s missing from the layer", bin)
					continue
				}
				checkELF(t, bin, data, machines[platform])
				// The shim only talks to steerd: it carries no BPF.
				if bin != "steer-shim" && !bytes.Contains(data, obj) {
					t.Errorf("%s does not embed %s", bin, bpfObject)
				}
			}
		})
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if !seen[p] {
			t.Errorf("no %s image in the index (has %v)", p, seen)
		}
	}
}

// TestBPFObjectServesArm64 states why one BPF object serves both platforms: bpf2go built it for
// the little-endian BPF target, and its Go file is compiled (and the object embedded) on every
// little-endian architecture Steer ships for.
func TestBPFObjectServesArm64(t *testing.T) {
	f, err := elf.Open(bpfObject)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_BPF || f.Data != elf.ELFDATA2LSB {
		t.Errorf("%s: %s %s, want little-endian BPF", bpfObject, f.Machine, f.Data)
	}
	src, err := os.ReadFile(strings.TrimSuffix(bpfObject, ".o") + ".go")
	if err != nil {
		t.Fatal(err)
	}
	constraint, _, _ := strings.Cut(string(src[bytes.Index(src, []byte("//go:build ")):]), "\n")
	for _, arch := range []string{"amd64", "arm64"} {
		if !strings.Contains(" "+constraint+" ", " "+arch+" ") {
			t.Errorf("%s does not build on %s: %q", bpfObject, arch, constraint)
		}
	}
}

// TestReferenceIsWhatTheManifestsRun: `make image` builds the image the chart's defaults, and so
// the kustomize manifests rendered from them, run.
func TestReferenceIsWhatTheManifestsRun(t *testing.T) {
	ref, err := reference(options{chart: chartDir})
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := os.ReadFile(renderedManifests)
	if err != nil {
		t.Fatal(err)
	}
	images := 0
	for _, line := range strings.Split(string(rendered), "\n") {
		if img, ok := strings.CutPrefix(strings.TrimSpace(line), "image: "); ok {
			images++
			if img != ref.String() {
				t.Errorf("%s runs %s, mkimage builds %s", renderedManifests, img, ref)
			}
		}
	}
	if images == 0 {
		t.Errorf("no image in %s", renderedManifests)
	}
	if got, want := containerdName(ref), "docker.io/"+ref.String(); got != want {
		t.Errorf("containerd name %s, want %s", got, want)
	}
}

func TestRefusals(t *testing.T) {
	if _, err := parsePlatform("linux/s390x"); err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("linux/s390x: %v, want an error naming the platforms Steer ships for", err)
	}
	// The BPF object is an ELF of another machine: refused for both platforms.
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if err := checkBinary(bpfObject, p); err == nil || !strings.Contains(err.Error(), "EM_BPF") {
			t.Errorf("checkBinary(%s, %s) = %v, want a machine mismatch", bpfObject, p, err)
		}
	}
}

func checkELF(t *testing.T, name string, data []byte, want elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: not an ELF: %v", name, err)
		return
	}
	if f.Machine != want || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
		t.Errorf("%s: %s %s %s, want a 64-bit %s executable", name, f.Machine, f.Class, f.Type, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked", name)
		}
	}
}

// layerFiles returns the regular files of the image's layers by path.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				if files[h.Name], err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc.Close()
	}
	return files
}

// untar extracts the tarball as `ctr images import` reads it: regular files and directories only.
func untar(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, data, 0o644)
			}
		default:
			t.Fatalf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
