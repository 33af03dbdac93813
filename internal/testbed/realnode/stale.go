package realnode

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// record is what Stop needs to tear a node down, kept in the node's directory so that a later
// Start can finish the job when a test binary died without stopping its node (a timeout's
// panic, SIGKILL): kubelet and containerd die with it, but the shims and containers do not.
type record struct {
	PID        int                        `json:"pid"`
	Name       string                     `json:"name"`
	CgroupRoot string                     `json:"cgroupRoot"`
	Existed    map[string]map[string]bool `json:"existed"`
	Sysctls    map[string]string          `json:"sysctls"`
	BPFShare   bool                       `json:"bpfShare"`
}

const recordName = "node.json"

func (n *Node) writeRecord() error {
	data, err := json.Marshal(record{
		PID: os.Getpid(), Name: n.name, CgroupRoot: n.cgroupRoot,
		Existed: n.host.existed, Sysctls: n.host.sysctls, BPFShare: n.host.bpfShare,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.dir, recordName), data, 0o600)
}

// sweepStale tears down the nodes of test binaries that are gone.
func sweepStale() error {
	recs, _ := filepath.Glob(filepath.Join(os.TempDir(), "steer-node-*", recordName))
	var errs []error
	for _, path := range recs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var r record
		if err := json.Unmarshal(data, &r); err != nil || r.PID == 0 || r.Name == "" {
			continue
		}
		if err := syscall.Kill(r.PID, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
			continue // its owner still runs
		}
		n := &Node{
			name: r.Name, dir: filepath.Dir(path), cgroupRoot: r.CgroupRoot,
			host: &hostState{existed: r.Existed, sysctls: r.Sysctls, bpfShare: r.BPFShare},
		}
		if n.host.existed == nil {
			n.host.existed = map[string]map[string]bool{}
		}
		errs = append(errs, n.killLeftovers(), unmountBelow(n.dir), n.removeCgroupRoot(),
			removeNetNSPrefixed(n.name), n.host.restore(), os.RemoveAll(n.dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up the node of a test binary that died: %w", err)
	}
	return nil
}

// removeNetNSPrefixed removes the named network namespaces of a node (its own and its LAN's).
func removeNetNSPrefixed(prefix string) error {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix+"-") {
			continue
		}
		p := filepath.Join("/run/netns", e.Name())
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, err)
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
