// Package podns creates and removes named network namespaces the way a container runtime
// does for a pod sandbox: bind-mounted under /run/netns so `ip netns` sees them.
package podns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces are bind-mounted.
const RunDir = "/run/netns"

// NS is a named network namespace.
type NS struct {
	ns.NetNS
	name   string
	closed bool
}

// Name is the namespace's name under RunDir.
func (n *NS) Name() string { return n.name }

// New creates a namespace named prefix plus a random suffix, so concurrent users never clash.
func New(prefix string) (*NS, error) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + "-" + hex.EncodeToString(b)
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(RunDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	_ = f.Close()

	if err := bindNew(path); err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	n, err := ns.GetNS(path)
	if err != nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		_ = os.Remove(path)
		return nil, err
	}
	return &NS{NetNS: n, name: name}, nil
}

// bindNew creates a namespace on a locked thread and bind-mounts it at path. The thread is
// thrown away afterwards (not unlocked) because restoring its namespace could fail.
func bindNew(path string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind %s: %w", path, err)
			return
		}
		// Bring loopback up: runtimes do, and local traffic in the pod needs it.
		errc <- setLoopbackUp()
	}()
	return <-errc
}

// Remove unmounts and deletes the namespace; removing it twice is not an error.
func (n *NS) Remove() error {
	path := n.Path()
	var err error
	if !n.closed {
		err = n.Close()
		n.closed = true
	}
	if uerr := unix.Unmount(path, unix.MNT_DETACH); uerr != nil && !errors.Is(uerr, unix.EINVAL) && !errors.Is(uerr, unix.ENOENT) {
		err = errors.Join(err, fmt.Errorf("unmount %s: %w", path, uerr))
	}
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}
