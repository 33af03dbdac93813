package realnode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/steernet/steer/internal/testutil/child"
)

// Leftovers lists what a stopped node left on the machine: its processes, mounts, cgroups,
// network namespaces, directory, host paths and sysctls not put back. Empty after a clean Stop.
// Stop takes the list while it still holds the machine's lock: afterwards the host paths may
// already be the next node's.
func (n *Node) Leftovers() []string { return n.left }

func (n *Node) leftovers() []string {
	var out []string
	if pids := append(n.cgroupPIDs(), n.shimPIDs()...); len(pids) > 0 {
		out = append(out, fmt.Sprintf("processes %v", pids))
	}
	for _, p := range []*child.Process{n.containerd, n.kubelet, n.kcm, n.scheduler} {
		if p != nil && !p.Exited() {
			out = append(out, fmt.Sprintf("%s (pid %d) running", p.Name, p.Pid()))
		}
	}
	if ms, err := mounts(); err == nil {
		for _, m := range ms {
			if under(m.target, n.dir) || under(m.target, "/run/containerd") || under(m.target, "/var/lib/kubelet") {
				out = append(out, "mount "+m.target)
			}
		}
	}
	if hs, err := cgroupHierarchies(); err == nil {
		for _, h := range hs {
			if _, err := os.Stat(filepath.Join(h, n.cgroupRoot)); err == nil {
				out = append(out, "cgroup "+filepath.Join(h, n.cgroupRoot))
			}
		}
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), n.name) {
				out = append(out, "netns "+e.Name())
			}
		}
	}
	if _, err := os.Stat(n.dir); err == nil {
		out = append(out, "dir "+n.dir)
	}
	for _, p := range hostPaths {
		before, existed := n.host.existed[p]
		now, err := listTree(p)
		if err != nil {
			if existed {
				out = append(out, "host path removed: "+p)
			}
			continue
		}
		if !existed {
			out = append(out, "host path "+p)
			continue
		}
		for e := range now {
			if !before[e] {
				out = append(out, "host path "+e)
			}
		}
	}
	for k, v := range n.host.sysctls {
		if cur, err := os.ReadFile("/proc/sys/" + k); err == nil && strings.TrimSpace(string(cur)) != v {
			out = append(out, fmt.Sprintf("sysctl %s = %s, was %s", k, strings.TrimSpace(string(cur)), v))
		}
	}
	if m, err := mountOf("/sys/fs/bpf"); err == nil && m.shared && n.host.bpfShare {
		out = append(out, "/sys/fs/bpf still shared")
	}
	return out
}

func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }
