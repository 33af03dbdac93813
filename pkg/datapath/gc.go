package datapath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf/link"

	"github.com/steernet/steer/pkg/bpffs"
)

// Defunct tells whether a container's attachment outlived its pod: every pinned link has lost
// its interface (the kernel detaches a link when its device goes, as it does with the pod's
// network namespace). An attachment without link pins (legacy TC) cannot tell and is not
// defunct; CNI GC removes those.
func Defunct(layout bpffs.Layout, containerID string) (bool, error) {
	dir, err := layout.Dir(containerID)
	if err != nil {
		return false, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	links := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "link-") {
			continue
		}
		links++
		alive, err := linkAlive(filepath.Join(dir, e.Name()))
		if err != nil || alive {
			return false, err
		}
	}
	return links > 0, nil
}

func linkAlive(path string) (bool, error) {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return false, err
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false, err
	}
	if tcx := info.TCX(); tcx != nil {
		return tcx.Ifindex != 0, nil
	}
	if xdp := info.XDP(); xdp != nil {
		return xdp.Ifindex != 0, nil
	}
	return true, nil
}

// CollectDefunct removes the pins of every defunct attachment and returns their container IDs.
func CollectDefunct(layout bpffs.Layout) ([]string, error) {
	ids, err := layout.Containers()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, id := range ids {
		dead, err := Defunct(layout, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if dead {
			if err := layout.Remove(id); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, id)
		}
	}
	return removed, errors.Join(errs...)
}
