package realnode

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// hostPaths are the places outside its own directory where a node writes whatever its
// configuration says: kubelet's device-plugin socket and container log links (fixed paths),
// containerd's shim sockets (fixed), and the paths Steer's DaemonSet and CNI use as operators
// run them (/opt/cni/bin, /etc/cni/net.d, /var/lib/cni, /run/steer, Steer's pin root).
var hostPaths = []string{
	"/var/lib/kubelet",
	"/var/log/containers",
	"/run/containerd",
	"/opt/cni",
	"/etc/cni",
	"/var/lib/cni",
	"/run/steer",
	"/sys/fs/bpf/steer",
}

// kernelTunables are the sysctls kubelet sets at start (it refuses to start when told not to);
// the node puts back what it found.
var kernelTunables = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// hostState is what the machine looked like before the node started, so that Stop leaves it
// exactly so.
type hostState struct {
	// existed maps a host path that existed to the set of paths below it at start.
	existed  map[string]map[string]bool
	sysctls  map[string]string
	bpfShare bool // /sys/fs/bpf was made a shared mount for the node and must go back to private
}

// claimHost records the host state. A host path that already holds a file is refused: the node
// would share it with another user and could not tell its files from theirs. Empty directories
// (another test's leftovers of the same default paths) are recorded and kept.
func claimHost() (*hostState, error) {
	h := &hostState{existed: map[string]map[string]bool{}, sysctls: map[string]string{}}
	for _, p := range hostPaths {
		entries, err := listTree(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for e := range entries {
			if fi, err := os.Lstat(e); err == nil && !fi.IsDir() {
				return nil, fmt.Errorf("%s is in use on this machine (%s): a real node's kubelet, containerd and CNI need it for themselves", p, e)
			}
		}
		h.existed[p] = entries
	}
	for _, k := range kernelTunables {
		v, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			return nil, fmt.Errorf("read sysctl %s: %w", k, err)
		}
		h.sysctls[k] = strings.TrimSpace(string(v))
	}
	return h, nil
}

// shareBPFFS makes /sys/fs/bpf a shared mount while the node runs: the DaemonSet mounts it with
// HostToContainer propagation, which containerd refuses on a private mount.
func (h *hostState) shareBPFFS() error {
	m, err := mountOf("/sys/fs/bpf")
	if err != nil {
		return err
	}
	if m.shared || m.slave {
		return nil
	}
	if err := unix.Mount("", "/sys/fs/bpf", "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make /sys/fs/bpf shared: %w", err)
	}
	h.bpfShare = true
	return nil
}

// restore undoes every change to the host: the paths the node created (unmounting anything
// below them first), the sysctls kubelet set, the propagation of /sys/fs/bpf.
func (h *hostState) restore() error {
	var errs []error
	for _, p := range hostPaths {
		before, existed := h.existed[p]
		errs = append(errs, unmountBelow(p))
		if !existed {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		now, err := listTree(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		// Deepest first, so directories are empty when their turn comes.
		var added []string
		for e := range now {
			if !before[e] {
				added = append(added, e)
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(added)))
		for _, e := range added {
			if err := os.RemoveAll(e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for k, v := range h.sysctls {
		cur, err := os.ReadFile("/proc/sys/" + k)
		if err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", k, v, err))
		}
	}
	if m, err := mountOf("/sys/fs/bpf"); h.bpfShare && err == nil && m.shared {
		if err := unix.Mount("", "/sys/fs/bpf", "", unix.MS_PRIVATE, ""); err != nil {
			errs = append(errs, fmt.Errorf("make /sys/fs/bpf private again: %w", err))
		}
	}
	return errors.Join(errs...)
}

// listTree returns every path below root (not root itself).
func listTree(root string) (map[string]bool, error) {
	if _, err := os.Lstat(root); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if p != root {
			out[p] = true
		}
		return nil
	})
	return out, err
}

// mountInfo is one line of /proc/self/mountinfo, the fields the node needs.
type mountInfo struct {
	target        string
	shared, slave bool
}

func mounts() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		m := mountInfo{target: unescapeMount(fields[4])}
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			m.shared = m.shared || strings.HasPrefix(opt, "shared:")
			m.slave = m.slave || strings.HasPrefix(opt, "master:")
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// mountOf returns the mount whose target is exactly path, the last one when stacked.
func mountOf(path string) (mountInfo, error) {
	ms, err := mounts()
	if err != nil {
		return mountInfo{}, err
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].target == path {
			return ms[i], nil
		}
	}
	return mountInfo{}, fmt.Errorf("%s is not a mount point", path)
}

// unmountBelow lazily unmounts every mount at or below dir, newest first: container root
// filesystems, network namespaces, kubelet's volumes, shm.
func unmountBelow(dir string) error {
	ms, err := mounts()
	if err != nil {
		return err
	}
	var errs []error
	for i := len(ms) - 1; i >= 0; i-- {
		t := ms[i].target
		if t != dir && !strings.HasPrefix(t, dir+"/") {
			continue
		}
		if err := unix.Unmount(t, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
