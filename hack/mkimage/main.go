// Command mkimage builds Steer's container image without Docker: an OCI image index with one
// image per platform (linux/amd64 and linux/arm64), each one layer holding the static binaries,
// cross-compiled with CGO_ENABLED=0, on an empty base (steerd needs no shell, libc or tools: it
// talks netlink and writes /proc itself, and runs the delegates from the host's CNI bin
// directory). The BPF objects need no per-platform build: bpf2go's little-endian object is
// embedded in the binaries of every little-endian architecture, amd64 and arm64 alike.
//
// The tarball is an OCI image layout whose index.json names the image index the way containerd
// and the OCI spec read it, so `ctr -n k8s.io images import --all-platforms` (or --platform)
// loads it, and `skopeo copy --all oci-archive:...` pushes it to a registry. The reference
// defaults to the Helm chart's default image (values.yaml's repository, Chart.yaml's
// appVersion), so what `make image` writes is what the chart and the kustomize manifests run.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

// binDir is where the binaries live in the image.
const binDir = "usr/local/bin"

// Annotations of index.json's entry: containerd names the imported image by the first (the full
// reference), the OCI image layout by the second (the tag).
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// epoch is every timestamp in the image, so that the same binaries give the same digests.
var epoch = time.Unix(0, 0).UTC()

// machines are the ELF machines of the platforms Steer ships for: a binary of another machine
// in a platform's image is refused.
var machines = map[string]elf.Machine{
	"linux/amd64": elf.EM_X86_64,
	"linux/arm64": elf.EM_AARCH64,
}

// options say what to build and where to write it.
type options struct {
	ref       string   // image reference; empty: the chart's default image
	chart     string   // the Helm chart directory the default reference is read from
	out       string   // tarball to write
	platforms []string // os/arch
	pkgs      []string // Go packages whose binaries go into the image
}

func main() {
	var o options
	var platforms, pkgs string
	flag.StringVar(&o.ref, "tag", "", "image reference (default: the chart's image.repository and appVersion)")
	flag.StringVar(&o.chart, "chart", "manifests/charts/steer", "Helm chart whose default image is built")
	flag.StringVar(&o.out, "out", "bin/steer-image.tar", "tarball to write (an OCI image layout)")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "platforms, comma-separated")
	flag.StringVar(&pkgs, "pkgs", "./cmd/steer,./cmd/steer-shim,./cmd/steerd,./cmd/steerctl", "Go packages whose binaries go into "+binDir)
	flag.Parse()
	o.platforms, o.pkgs = strings.Split(platforms, ","), strings.Split(pkgs, ",")
	ref, digest, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %s@%s (%s)\n", o.out, ref, digest, strings.Join(o.platforms, ", "))
}

// run builds the binaries for every platform, the images and their index, and writes the
// tarball. It returns the image reference and the index's digest.
func run(o options) (name.Tag, v1.Hash, error) {
	ref, err := reference(o)
	if err != nil {
		return name.Tag{}, v1.Hash{}, err
	}
	work, err := os.MkdirTemp("", "steer-image-")
	if err != nil {
		return name.Tag{}, v1.Hash{}, err
	}
	defer os.RemoveAll(work)

	var adds []mutate.IndexAddendum
	for _, p := range o.platforms {
		plat, err := parsePlatform(p)
		if err != nil {
			return name.Tag{}, v1.Hash{}, err
		}
		dir := filepath.Join(work, plat.OS+"-"+plat.Architecture)
		bins, err := build(plat, o.pkgs, dir)
		if err != nil {
			return name.Tag{}, v1.Hash{}, err
		}
		img, err := image(plat, bins)
		if err != nil {
			return name.Tag{}, v1.Hash{}, fmt.Errorf("%s: %w", p, err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	digest, err := idx.Digest()
	if err != nil {
		return name.Tag{}, v1.Hash{}, err
	}
	lp, err := layout.Write(filepath.Join(work, "layout"), empty.Index)
	if err != nil {
		return name.Tag{}, v1.Hash{}, err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationContainerdName: containerdName(ref),
		annotationRefName:        ref.TagStr(),
	})); err != nil {
		return name.Tag{}, v1.Hash{}, err
	}
	if err := writeTar(string(lp), o.out); err != nil {
		return name.Tag{}, v1.Hash{}, err
	}
	return ref, digest, nil
}

// reference is the image reference: the one given, or the chart's default image.
func reference(o options) (name.Tag, error) {
	if o.ref != "" {
		return name.NewTag(o.ref)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
	}
	for file, v := range map[string]any{"Chart.yaml": &chart, "values.yaml": &values} {
		b, err := os.ReadFile(filepath.Join(o.chart, file))
		if err != nil {
			return name.Tag{}, err
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			return name.Tag{}, fmt.Errorf("%s: %w", filepath.Join(o.chart, file), err)
		}
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = chart.AppVersion
	}
	if values.Image.Repository == "" || tag == "" {
		return name.Tag{}, fmt.Errorf("%s: no image.repository or no appVersion", o.chart)
	}
	return name.NewTag(values.Image.Repository + ":" + tag)
}

// containerdName is the reference as containerd stores it, and as kubelet asks for it: Docker
// Hub is docker.io (go-containerregistry says index.docker.io), its official images library/.
func containerdName(ref name.Tag) string {
	registry := ref.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	return registry + "/" + ref.RepositoryStr() + ":" + ref.TagStr()
}

func parsePlatform(s string) (*v1.Platform, error) {
	if _, ok := machines[s]; !ok {
		known := make([]string, 0, len(machines))
		for p := range machines {
			known = append(known, p)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("platform %q: Steer is built for %s", s, strings.Join(known, ", "))
	}
	goos, arch, _ := strings.Cut(s, "/")
	p := &v1.Platform{OS: goos, Architecture: arch}
	if arch == "arm64" {
		p.Variant = "v8" // as registries and buildx name it; containerd treats "" and v8 alike
	}
	return p, nil
}

// build cross-compiles the packages for the platform into dir and checks each binary is a
// static ELF of the platform's machine. It returns the binaries' paths.
func build(plat *v1.Platform, pkgs []string, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{"build", "-trimpath", "-o", dir + "/"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build for %s/%s: %w\n%s", plat.OS, plat.Architecture, err, stderr.String())
	}
	var bins []string
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, path.Base(pkg))
		if err := checkBinary(bin, plat.OS+"/"+plat.Architecture); err != nil {
			return nil, err
		}
		bins = append(bins, bin)
	}
	return bins, nil
}

// checkBinary fails unless the file is a static 64-bit little-endian ELF executable for the
// platform's machine: one that runs on the empty base of that platform's image.
func checkBinary(file, platform string) error {
	want, ok := machines[platform]
	if !ok {
		return fmt.Errorf("platform %q unknown", platform)
	}
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer f.Close()
	switch {
	case f.Machine != want:
		return fmt.Errorf("%s: ELF for %s, want %s (%s)", file, f.Machine, want, platform)
	case f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB:
		return fmt.Errorf("%s: %s %s, want a 64-bit little-endian binary", file, f.Class, f.Data)
	case f.Type != elf.ET_EXEC:
		return fmt.Errorf("%s: ELF type %s, want a static executable", file, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (has an interpreter): the image has no libc", file)
		}
	}
	return nil
}

// image is one platform's image: the binaries in one layer, steerd as the entrypoint.
func image(plat *v1.Platform, bins []string) (v1.Image, error) {
	layerTar, err := binariesTar(bins)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = plat.OS, plat.Architecture, plat.Variant
	cfg.Config.Entrypoint = []string{"/" + binDir + "/steerd"}
	cfg.Config.Cmd = []string{"run"}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "steer",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: epoch})
}

// binariesTar lays the binaries out under usr/local/bin, owned by root, with fixed times.
func binariesTar(bins []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"usr/", "usr/local/", binDir + "/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, b := range bins {
		data, err := os.ReadFile(b)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: binDir + "/" + filepath.Base(b), Mode: 0o755, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeTar archives the OCI layout directory as the tarball out: files in a fixed order with
// fixed times, written to a temporary file first so a reader never sees half a tarball.
func writeTar(dir, out string) (err error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	tw := tar.NewWriter(tmp)
	// WalkDir visits in lexical order: oci-layout, index.json and blobs/ come out the same each time.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch})
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := errors.Join(tw.Close(), tmp.Chmod(0o644), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
