package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/steernet/steer/pkg/bpffs"
)

// readVersion reads a container's version pin; pins without one are UnversionedLayout's.
func readVersion(dir string) (Version, error) {
	if _, err := os.Stat(dir); err != nil {
		return Version{}, fmt.Errorf("no attachment: %w", err)
	}
	v, err := readVersionPin(filepath.Join(dir, bpffs.VersionPin))
	if errors.Is(err, os.ErrNotExist) {
		return Version{Layout: UnversionedLayout}, nil
	}
	return v, err
}

// readVersionPin reads the version map pinned at path.
func readVersionPin(path string) (Version, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return Version{}, fmt.Errorf("open version: %w", err)
	}
	defer m.Close()
	var v [2]uint32
	if err := m.Lookup(uint32(0), &v); err != nil {
		return Version{}, fmt.Errorf("read version: %w", err)
	}
	return Version{Layout: v[0], Object: v[1]}, nil
}

// ReadVersion returns the version of the build that wrote a container's pins.
func ReadVersion(layout bpffs.Layout, containerID string) (Version, error) {
	dir, err := layout.Dir(containerID)
	if err != nil {
		return Version{}, err
	}
	return readVersion(dir)
}

func hasLinkPins(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if bpffs.IsLinkPin(e.Name()) {
			return true
		}
	}
	return false
}

// CheckVersion verifies that a container's attachment is wholly at version want: its version
// pin says so, no upgrade is under way, and every attached program uses the pinned maps (so
// none runs the programs of another build). It returns one error per problem. Without
// netnsPath, the programs of a legacy TC attachment are not looked at.
func CheckVersion(layout bpffs.Layout, containerID, netnsPath string, want Version) []error {
	dir, err := layout.Dir(containerID)
	if err != nil {
		return []error{err}
	}
	v, err := readVersion(dir)
	if err != nil {
		return []error{err}
	}
	var problems []error
	if v != want {
		problems = append(problems, fmt.Errorf("pins at %s, not %s", v, want))
	}
	if _, err := os.Stat(filepath.Join(dir, UpgradingPin)); err == nil {
		problems = append(problems, errors.New("an upgrade was left half-way (steerd finishes it when it starts)"))
	}
	hooks, err := findHooks(netnsPath, dir)
	if err != nil && netnsPath == "" && !hasLinkPins(dir) {
		return problems // legacy TC: its programs are found only in its network namespace
	}
	if err != nil {
		return append(problems, err)
	}
	defer closeHooks(hooks)
	live, err := liveMaps(hooks)
	if err != nil {
		return append(problems, err)
	}
	defer closeMaps(live)
	for name, maps := range live {
		pin, err := ebpf.LoadPinnedMap(filepath.Join(dir, PinName(name)), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			if !isDataSection(name) && len(name) < 15 { // a longer name is cut: its pin is unknown
				problems = append(problems, fmt.Errorf("map %s of the programs has no pin: %w", name, err))
			}
			continue
		}
		info, err := pin.Info()
		pin.Close()
		if err != nil {
			problems = append(problems, err)
			continue
		}
		pinID, _ := info.ID()
		for _, m := range maps {
			if mi, err := m.Info(); err == nil {
				if id, _ := mi.ID(); id != pinID {
					problems = append(problems, fmt.Errorf("a program uses a map %s (id %d) that is not the pinned one (id %d): programs of two builds are attached", name, id, pinID))
				}
			}
		}
	}
	return problems
}
