// Package cniplugins locates the reference CNI plugins (bridge, macvlan, host-local …) that
// hack/install-cni-plugins.sh installs into the cache. Release and plugin list are defined once,
// in plugins.txt, which the script reads and this package embeds.
package cniplugins

import (
	_ "embed"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/steernet/steer/internal/testbed/localcluster"
)

//go:embed plugins.txt
var spec string

// Version is the containernetworking/plugins release; Names are the plugins' binary names.
var Version, Names = parse(spec)

func parse(s string) (version string, names []string) {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "version":
			version = f[1]
		case len(f) == 2 && f[0] == "plugin":
			names = append(names, path.Base(f[1]))
		}
	}
	if version == "" || len(names) == 0 {
		panic("cniplugins: plugins.txt names no version or no plugin")
	}
	return version, names
}

// Dir is where hack/install-cni-plugins.sh put the plugins. It fails, naming the fix, when any
// is missing: tests must not pass by skipping.
func Dir() (string, error) {
	cache, err := localcluster.CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "cni-plugins", Version)
	for _, p := range Names {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("reference CNI plugin %s missing in %s: run `make deps` (hack/install-cni-plugins.sh)", p, dir)
		}
	}
	return dir, nil
}
