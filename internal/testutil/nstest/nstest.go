// Package nstest makes network namespaces, links and bpffs roots for tests. Everything it
// creates has a unique name and is removed in t.Cleanup, also when the test fails.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/bpffs"
)

// RequireRoot skips tests that need root (network namespaces, BPF, other users) when not run as
// root, and under -short: `make unit` is the quick loop that needs no privileges.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root: skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, loads BPF programs or switches users")
	}
}

// Suffix returns a short random suffix for unique names.
func Suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewNS creates a network namespace that is deleted when the test ends. A namespace that
// cannot be removed fails the test instead of being left behind silently.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := newNSLocked()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		if err := RemoveNS(n.Path()); err != nil {
			t.Errorf("remove netns: %v", err)
		}
	})
	return n
}

// Create makes a network namespace whose removal (RemoveNS) is the caller's, for loops that
// make and remove many within one test.
func Create() (ns.NetNS, error) { return newNSLocked() }

// nsLockFile serialises namespace creation across test binaries (go test runs packages in
// parallel).
const nsLockFile = "/run/steer-nstest.lock"

// newNSLocked is testutils.NewNS under nsLockFile. The first calls on a machine find
// /run/netns not yet a mount point and bind-mount it on itself; two at once stack two such
// mounts, and a namespace created between them is mounted in both layers: its cleanup
// unmounted only the top one, its file could not be removed (EBUSY), the error was
// ignored, and a cnitest-* namespace outlived a green run.
func newNSLocked() (ns.NetNS, error) {
	f, err := os.OpenFile(nsLockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return nil, err
	}
	return testutils.NewNS()
}

// RemoveNS unmounts every mount on a namespace's path (stacked ones too) and removes the
// file; a path already gone is fine.
func RemoveNS(path string) error {
	for range 16 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) {
			break // no longer a mount point
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Name returns the namespace's name as `ip netns` knows it.
func Name(n ns.NetNS) string { return filepath.Base(n.Path()) }

// Veth creates a veth pair with one end in each namespace, both up, and returns the links.
func Veth(t testing.TB, a ns.NetNS, aName string, b ns.NetNS, bName string) (netlink.Link, netlink.Link) {
	t.Helper()
	tmpA, tmpB := "va"+Suffix(), "vb"+Suffix()
	err := a.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tmpA}, PeerName: tmpB}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		peer, err := netlink.LinkByName(tmpB)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(peer, int(b.Fd())); err != nil {
			return err
		}
		return renameUp(tmpA, aName)
	})
	if err != nil {
		t.Fatalf("veth %s/%s: %v", aName, bName, err)
	}
	if err := b.Do(func(ns.NetNS) error { return renameUp(tmpB, bName) }); err != nil {
		t.Fatalf("veth peer %s: %v", bName, err)
	}
	return LinkIn(t, a, aName), LinkIn(t, b, bName)
}

func renameUp(from, to string) error {
	l, err := netlink.LinkByName(from)
	if err != nil {
		return err
	}
	if from != to {
		if err := netlink.LinkSetName(l, to); err != nil {
			return err
		}
	}
	return netlink.LinkSetUp(l)
}

// LinkIn looks a link up by name inside n.
func LinkIn(t testing.TB, n ns.NetNS, name string) netlink.Link {
	t.Helper()
	var l netlink.Link
	err := n.Do(func(ns.NetNS) (err error) {
		l, err = netlink.LinkByName(name)
		return err
	})
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

// AddAddr adds a CIDR address to a link inside n.
func AddAddr(t testing.TB, n ns.NetNS, name, cidr string) {
	t.Helper()
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if addr.IP.To4() == nil {
			addr.Flags = 0x02 // IFA_F_NODAD: usable at once
		}
		return netlink.AddrAdd(l, addr)
	})
	if err != nil {
		t.Fatalf("addr %s on %s: %v", cidr, name, err)
	}
}

// Run runs a command inside n (as `ip netns exec`) and returns its combined output.
func Run(t testing.TB, n ns.NetNS, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", Name(n)}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustRun is Run failing the test on error.
func MustRun(t testing.TB, n ns.NetNS, args ...string) string {
	t.Helper()
	out, err := Run(t, n, args...)
	if err != nil {
		t.Fatalf("%v in %s: %v\n%s", args, Name(n), err, out)
	}
	return out
}

// BPFRoot returns a private pin root on the host's bpffs, removed when the test ends.
func BPFRoot(t testing.TB) bpffs.Layout {
	t.Helper()
	RequireRoot(t)
	l := bpffs.Layout{Root: "/sys/fs/bpf/steer-test-" + Suffix()}
	if err := l.EnsureMounted(); err != nil {
		t.Fatalf("bpffs: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(l.Root) })
	return l
}

// MAC returns the hardware address of a link.
func MAC(l netlink.Link) net.HardwareAddr { return l.Attrs().HardwareAddr }

// PinnedMapID is the ID of the map pinned at path: tests tell by it which map a pod runs on.
func PinnedMapID(t testing.TB, path string) ebpf.MapID {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}
