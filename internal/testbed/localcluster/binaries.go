package localcluster

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

//go:embed versions.txt
var versions string

// Versions built by hack/install-kube.sh, both read from versions.txt. The script honours
// KUBE_VERSION and ETCD_VERSION, and so does this package, so both always agree on where a
// binary lives.
var DefaultKubeVersion, DefaultEtcdVersion = version("kube"), version("etcd")

// Version is the release versions.txt names for name (e.g. "containerd"); it panics when the
// file names none, a build mistake.
func Version(name string) string { return version(name) }

func version(name string) string {
	for _, line := range strings.Split(versions, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	panic("localcluster: versions.txt names no " + name + " version")
}

// Paths locates the binaries a local cluster runs.
type Paths struct {
	Etcd          string
	KubeAPIServer string
	Kubectl       string
}

// CacheDir is where hack/install-kube.sh caches binaries: $STEER_CACHE, else $HOME/.cache/steer.
func CacheDir() (string, error) {
	if dir := os.Getenv("STEER_CACHE"); dir != "" {
		return dir, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locate the binary cache: %w", err)
	}
	return filepath.Join(home, ".cache", "steer"), nil
}

// Binaries returns the cached etcd, kube-apiserver and kubectl. It fails, naming the fix, when
// any of them is missing: callers (tests, the demo) must not silently fall back to skipping.
func Binaries() (Paths, error) {
	cache, err := CacheDir()
	if err != nil {
		return Paths{}, err
	}
	kube := filepath.Join(cache, "kube", envOr("KUBE_VERSION", DefaultKubeVersion))
	p := Paths{
		Etcd:          filepath.Join(cache, "etcd", envOr("ETCD_VERSION", DefaultEtcdVersion), "etcd"),
		KubeAPIServer: filepath.Join(kube, "kube-apiserver"),
		Kubectl:       filepath.Join(kube, "kubectl"),
	}
	var errs []error
	for _, bin := range []string{p.Etcd, p.KubeAPIServer, p.Kubectl} {
		if err := checkExecutable(bin); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Paths{}, fmt.Errorf("local cluster binaries missing, run `make deps` (hack/install-kube.sh): %w", err)
	}
	return p, nil
}

// Kubectl returns the path of the cached kubectl.
func Kubectl() (string, error) {
	p, err := Binaries()
	if err != nil {
		return "", err
	}
	return p.Kubectl, nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
