// Package bpffs is the one definition of where Steer pins its BPF objects:
//
//	<root>/<container-id>/flows              flow table (map)
//	<root>/<container-id>/counters           per-CPU counters (map)
//	<root>/<container-id>/config             load-time configuration (the .rodata map)
//	<root>/<container-id>/link-<ifname>-<hook> TCX or XDP link
//
// The root defaults to /sys/fs/bpf/steer. Links are pinned because the CNI plugin exits right
// after ADD: an unpinned link would detach with it.
package bpffs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where Steer pins its objects on a node.
const DefaultRoot = "/sys/fs/bpf/steer"

// Pin names inside a container's directory.
const (
	FlowsPin    = "flows"
	CountersPin = "counters"
	ConfigPin   = "config"
)

// ValidContainerID reports why id cannot name a pin directory, or nil. The alphabet is the CNI
// spec's; it also keeps IDs from escaping the root ('/', "..", NUL). Checked by hand: a regexp
// compiled at package init costs every plugin exec about half a millisecond.
func ValidContainerID(id string) error {
	ok := len(id) >= 1 && len(id) <= 255 && isAlnum(id[0])
	for i := 1; ok && i < len(id); i++ {
		c := id[i]
		ok = isAlnum(c) || c == '_' || c == '.' || c == '-'
	}
	if !ok {
		return fmt.Errorf("invalid container ID %q: want 1-255 of [A-Za-z0-9_.-], starting alphanumeric", id)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Layout locates pins under a root directory on a bpffs.
type Layout struct {
	Root string
}

// Default is the layout on a node.
func Default() Layout { return Layout{Root: DefaultRoot} }

// Dir is the directory of one container's pins.
func (l Layout) Dir(containerID string) (string, error) {
	if err := ValidContainerID(containerID); err != nil {
		return "", err
	}
	return filepath.Join(l.Root, containerID), nil
}

// LinkPin is the pin name of the link attaching hook ("ingress", "egress", "xdp") on ifname.
func LinkPin(ifname, hook string) string {
	return "link-" + ifname + "-" + hook
}

// Containers lists the container IDs that have pins.
func (l Layout) Containers() ([]string, error) {
	entries, err := os.ReadDir(l.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && ValidContainerID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Remove unpins everything of a container; a container without pins is not an error.
func (l Layout) Remove(containerID string) error {
	dir, err := l.Dir(containerID)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("unpin %s: %w", dir, err)
	}
	return nil
}

// EnsureMounted mounts a bpffs on the parent of the layout's root when none is mounted there
// (a fresh node has none) and creates the root.
func (l Layout) EnsureMounted() error {
	mnt := filepath.Dir(l.Root)
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", mnt, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpffs", mnt, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on %s: %w", mnt, err)
		}
	}
	return os.MkdirAll(l.Root, 0o700)
}
