package realnode

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/steernet/steer/internal/testutil/child"
)

const cgroupFS = "/sys/fs/cgroup"

// cgroupHierarchies are the mounted cgroup v1 hierarchies (this host's layout; kubelet runs
// with failCgroupV1: false).
func cgroupHierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "unified" {
			out = append(out, filepath.Join(cgroupFS, e.Name()))
		}
	}
	return out, nil
}

// makeCgroupRoot creates the node's cgroup root in every hierarchy, so the node's pods live
// under a name of this run's, and gives the cpuset one its parent's CPUs and memory nodes (a
// new cpuset cgroup has none, and no task could join it).
func (n *Node) makeCgroupRoot() error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		d := filepath.Join(h, n.cgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), bytes.TrimSpace(v), 0o644); err != nil {
					return fmt.Errorf("set %s/%s: %w", d, f, err)
				}
			}
		}
	}
	return nil
}

// cgroupPIDs are the processes left in the node's cgroups.
func (n *Node) cgroupPIDs() []int {
	seen := map[int]bool{}
	hs, _ := cgroupHierarchies()
	for _, h := range hs {
		root := filepath.Join(h, n.cgroupRoot)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	var pids []int
	for p := range seen {
		pids = append(pids, p)
	}
	return pids
}

// shimPIDs are the containerd shims of this node's containerd (they outlive it by design).
func (n *Node) shimPIDs() []int {
	return child.Processes(func(dir string) bool {
		cmd, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			return false
		}
		args := strings.Split(string(cmd), "\x00")
		return len(args) > 0 && filepath.Base(args[0]) == "containerd-shim-runc-v2" && strings.Contains(string(cmd), n.CRISocket())
	})
}

// pluginPIDs are the CNI plugins running from CNIBinDir, which the node owns: a call containerd
// started before it stopped runs on without it, and a DEL run in-process by a plugin whose steerd
// has gone writes Steer's cache directory, after the host was put back unless it is killed.
func pluginPIDs() []int {
	return child.Processes(func(dir string) bool {
		exe, err := os.Readlink(filepath.Join(dir, "exe"))
		return err == nil && under(exe, CNIBinDir)
	})
}

// killLeftovers kills every process containerd and kubelet left: the containers in the node's
// cgroups, the shims and the CNI plugins.
func (n *Node) killLeftovers() error {
	if n.dir == "" {
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		pids := append(append(n.cgroupPIDs(), n.shimPIDs()...), pluginPIDs()...)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of the node still running after SIGKILL: %v", pids)
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroupRoot removes the node's cgroups, deepest first.
func (n *Node) removeCgroupRoot() error {
	if n.cgroupRoot == "" {
		return nil
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		root := filepath.Join(h, n.cgroupRoot)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			// A cgroup whose last task just died may be busy for a moment.
			var err error
			for i := 0; i < 50; i++ {
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
