// Package bpffs is the one definition of where Steer pins its BPF objects:
//
//	<root>/<container-id>/flows              flow table (map)
//	<root>/<container-id>/counters           per-CPU counters (map)
//	<root>/<container-id>/config             load-time constants: groups, loop mark (the .rodata map)
//	<root>/<container-id>/ifaces             the interface table (the .data.ifaces map, frozen)
//	<root>/<container-id>/version            which build wrote the pins: {layout, object}
//	<root>/<container-id>/<map>              any other map, by its name (datapath.PinName)
//	<root>/<container-id>/svc-*              the Service proxy's maps (Svc*Pin)
//	<root>/<container-id>/link-<ifname>-<hook> TCX or XDP link
//	<root>/_ready/                           collections steerd loaded ahead for the thin plugin
//
// Every map pin carries the BTF of its key and value, so a build can read (and an upgrade carry
// across) the maps another build wrote. Pins without "version" were written by the builds
// before it, all of layout 1.
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
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where Steer pins its objects on a node.
const DefaultRoot = "/sys/fs/bpf/steer"

// Pin names inside a container's directory.
const (
	FlowsPin    = "flows"
	CountersPin = "counters"
	ConfigPin   = "config"
	IfacesPin   = "ifaces"
	VersionPin  = "version"
)

// IsLinkPin tells a link's pin from a map's.
func IsLinkPin(name string) bool { return strings.HasPrefix(name, "link-") }

// Pin names of the Service proxy's maps: the first four there from ADD on (the pod's programs
// use them), the others from the pod's first Service entry, when the proxy is loaded.
const (
	SvcStatePin        = "svc-state"         // whether the pod has frontends
	SvcFrontendsPin    = "svc-frontends"     // frontend -> service id, backend count, affinity
	SvcBackendAddrsPin = "svc-backend-addrs" // the backends' addresses, whose replies are diverted
	SvcProgsPin        = "svc-progs"         // the proxy's programs, tail-called
	SvcSlotsPin        = "svc-slots"         // (service id, generation, index) -> backend id
	SvcBackendsPin     = "svc-backends"      // backend id -> address, port, interface, next hop
	SvcConnsPin        = "svc-conns"         // connection -> backend
	SvcRevNATPin       = "svc-revnat"        // a backend's reply -> the frontend and the pod's address
	SvcAffinityPin     = "svc-affinity"      // (service id, client) -> backend, for sessionAffinity
	SvcCountersPin     = "svc-counters"      // per-CPU counters per service id
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

// ReadyDir holds the collections steerd keeps loaded ahead for the thin plugin (see
// datapath.FillReady). Its name is no container ID's: those start alphanumeric.
func (l Layout) ReadyDir() string { return filepath.Join(l.Root, "_ready") }

// Default is the layout on a node.
func Default() Layout { return Layout{Root: DefaultRoot} }

// Dir is the directory of one container's pins.
func (l Layout) Dir(containerID string) (string, error) {
	if err := ValidContainerID(containerID); err != nil {
		return "", err
	}
	return filepath.Join(l.Root, containerID), nil
}

// LinkPin is the pin name of the link attaching hook (one of LinkHooks) on ifname.
func LinkPin(ifname, hook string) string {
	return "link-" + ifname + "-" + hook
}

// The hooks a link pin can name: TC ingress and egress (TCX, or cls_bpf where TCX is missing),
// and XDP.
const (
	HookIngress = "ingress"
	HookEgress  = "egress"
	HookXDP     = "xdp"
)

// LinkHooks are the hooks a link pin can name.
var LinkHooks = []string{HookIngress, HookEgress, HookXDP}

// ParseLinkPin is the inverse of LinkPin; ok is false for a pin that is not a link's.
func ParseLinkPin(name string) (ifname, hook string, ok bool) {
	rest, found := strings.CutPrefix(name, "link-")
	if !found {
		return "", "", false
	}
	for _, h := range LinkHooks {
		if ifname, found := strings.CutSuffix(rest, "-"+h); found && ifname != "" {
			return ifname, h, true
		}
	}
	return "", "", false
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

// MountPoint is the one place EnsureMounted mounts a bpffs: where the kernel and every BPF
// tool expect it.
const MountPoint = "/sys/fs/bpf"

// CheckRoot reports why root cannot be a pin root, or nil. It must be an absolute, clean
// path strictly under some directory: the root's directories are listed and removed as
// containers', so it must be Steer's own, never a bpffs mount point such as /sys/fs/bpf.
func CheckRoot(root string) error {
	switch {
	case !filepath.IsAbs(root):
		return fmt.Errorf("bpffs root %q is not an absolute path", root)
	case filepath.Clean(root) != root:
		return fmt.Errorf("bpffs root %q is not a clean path (want %q)", root, filepath.Clean(root))
	case root == "/" || root == MountPoint:
		return fmt.Errorf("bpffs root %q must be a directory of Steer's own on a bpffs, e.g. %s", root, DefaultRoot)
	}
	return nil
}

// EnsureMounted creates the layout's root on a bpffs. When the root's nearest existing
// ancestor is not on a bpffs, it mounts one, but only on an empty MountPoint that nothing is
// mounted on yet (a fresh node): mounting anywhere else could hide a live file system, as a
// bpffs over /sys/fs would hide cgroupfs and the host's real bpffs.
func (l Layout) EnsureMounted() error {
	if err := CheckRoot(l.Root); err != nil {
		return err
	}
	dir := l.Root
	for {
		if _, err := os.Lstat(dir); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("bpffs root %s: %w", l.Root, err)
		}
		dir = filepath.Dir(dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		if dir != MountPoint {
			return fmt.Errorf("bpffs root %s: %s is not on a bpffs, and Steer mounts one only on %s; mount a bpffs first", l.Root, dir, MountPoint)
		}
		if err := checkMountable(dir); err != nil {
			return fmt.Errorf("bpffs root %s: %w", l.Root, err)
		}
		if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on %s: %w", dir, err)
		}
	}
	return os.MkdirAll(l.Root, 0o700)
}

// checkMountable refuses a directory that is a mount point or has entries: a bpffs there
// would hide them.
func checkMountable(dir string) error {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st.Dev != parent.Dev {
		return fmt.Errorf("%s is a mount point of another file system: not mounting a bpffs over it", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: not mounting a bpffs over it", dir)
	}
	return nil
}
