package cninode

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Links lists the link names in a namespace, sorted.
func Links(t testing.TB, n ns.NetNS) []string {
	t.Helper()
	var names []string
	err := n.Do(func(ns.NetNS) error {
		links, err := netlink.LinkList()
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// MAC is the hardware address of a link in a namespace.
func MAC(t testing.TB, n ns.NetNS, ifName string) string {
	t.Helper()
	var mac string
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if err == nil {
			mac = l.Attrs().HardwareAddr.String()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// Addrs lists the global addresses (CIDR form) of a link in a namespace.
func Addrs(t testing.TB, n ns.NetNS, ifName string) []string {
	t.Helper()
	var out []string
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range addrs {
			if a.Scope == unix.RT_SCOPE_UNIVERSE {
				out = append(out, a.IPNet.String())
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Routes lists the IPv4 routes of the main table as "dst via gw dev ifname" (or "dst dev
// ifname"), "default" for the default route.
func Routes(t testing.TB, n ns.NetNS) []string {
	t.Helper()
	var out []string
	err := n.Do(func(ns.NetNS) error {
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			dst := "default"
			if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
				dst = r.Dst.String()
			}
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return err
			}
			s := dst
			if r.Gw != nil {
				s += " via " + r.Gw.String()
			}
			out = append(out, s+" dev "+l.Attrs().Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// IPAMAllocations lists the addresses host-local holds in the node's IPAM dir, as
// "network/ip".
func (n *Node) IPAMAllocations(t testing.TB) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(n.IPAMDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if net.ParseIP(d.Name()) != nil {
			rel, _ := filepath.Rel(n.IPAMDir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// CacheFiles lists steer's cache files and libcni's result cache under CNIDir, and
// device-info files.
func (n *Node) CacheFiles(t testing.TB) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(n.CNIDir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(n.CNIDir, path)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// AssertClean fails the test if anything of the pods is left: a link other than lo in
// their namespaces, a host-local allocation, a steer or libcni cache file, a veth in the
// node namespace, or a BPF pin.
func (n *Node) AssertClean(t testing.TB, pods ...*Pod) {
	t.Helper()
	for _, p := range pods {
		if links := Links(t, p.NetNS); !slices.Equal(links, []string{"lo"}) {
			t.Errorf("pod %s netns still has links %v", p.Name, links)
		}
	}
	if a := n.IPAMAllocations(t); len(a) > 0 {
		t.Errorf("host-local allocations left: %v", a)
	}
	if c := n.CacheFiles(t); len(c) > 0 {
		t.Errorf("cache files left in cniDir: %v", c)
	}
	for _, l := range Links(t, n.Host) {
		if strings.HasPrefix(l, "veth") {
			t.Errorf("node netns still has %s", l)
		}
	}
	if pins, err := os.ReadDir(n.BPFRoot); err == nil && len(pins) > 0 {
		var names []string
		for _, p := range pins {
			names = append(names, p.Name())
		}
		t.Errorf("BPF pins left in %s: %v", n.BPFRoot, names)
	}
}

// CNIError returns err's *types.Error, failing the test when it has none.
func CNIError(t testing.TB, err error) *types.Error {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a CNI error", err, err)
	}
	return te
}

// FileExists reports whether path exists.
func FileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
