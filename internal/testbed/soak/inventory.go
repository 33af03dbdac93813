package soak

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/internal/testbed/podns"
)

// Inventory counts what pods leave on a node when they are gone: everything a leak would
// grow. Two inventories taken with no pod running must be equal.
type Inventory struct {
	Links       int // in the nodes' namespaces
	Routes      int // in the nodes' namespaces, every table, both families
	PodNetns    int // sandboxes of the campaign still in /run/netns
	IPAM        int // host-local allocations (one file per address)
	CNICache    int // files in the runtime's and Steer's CNI caches
	Pins        int // entries under the campaign's bpffs root
	BPFPrograms int // the campaign's still loaded in the kernel (see BPFObjects)
	BPFMaps     int
	Processes   int // plugins (and their children) still running from the nodes' bin dirs
	// Orphans are such processes whose parent died (re-parented to init): delegates of a
	// SIGKILLed steerd still running. Reported apart: they are the killed daemon's, not a leak
	// of Steer's clean-up.
	Orphans []int
}

// Scope says where an Inventory looks.
type Scope struct {
	Nodes       []ns.NetNS
	NetnsPrefix string   // pod sandboxes are named with it
	IPAMDirs    []string // host-local dataDirs
	CacheDirs   []string // libcni caches and Steer's cache directories
	BPFFSRoot   string
	BPF         *BPFObjects // the campaign's programs and maps
	BinDirs     []string
}

// Take counts everything in s.
func Take(s Scope) (Inventory, error) {
	var inv Inventory
	var errs []error
	for _, n := range s.Nodes {
		l, r, err := countLinksRoutes(n)
		inv.Links += l
		inv.Routes += r
		errs = append(errs, err)
	}
	entries, err := os.ReadDir(podns.RunDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), s.NetnsPrefix) {
			inv.PodNetns++
		}
	}
	for _, d := range s.IPAMDirs {
		n, err := countFiles(d, func(name string) bool {
			// host-local's own bookkeeping, not allocations.
			return name != "lock" && !strings.HasPrefix(name, "last_reserved_ip")
		})
		inv.IPAM += n
		errs = append(errs, err)
	}
	for _, d := range s.CacheDirs {
		n, err := countFiles(d, func(string) bool { return true })
		inv.CNICache += n
		errs = append(errs, err)
	}
	inv.Pins, err = countEntries(s.BPFFSRoot)
	errs = append(errs, err)
	inv.BPFPrograms, inv.BPFMaps = s.BPF.Live()
	inv.Processes, inv.Orphans, err = processesFrom(s.BinDirs)
	errs = append(errs, err)
	return inv, errors.Join(errs...)
}

// Sub is what grew from base to inv (negative when something shrank).
func (inv Inventory) Sub(base Inventory) Inventory {
	return Inventory{
		Links:       inv.Links - base.Links,
		Routes:      inv.Routes - base.Routes,
		PodNetns:    inv.PodNetns - base.PodNetns,
		IPAM:        inv.IPAM - base.IPAM,
		CNICache:    inv.CNICache - base.CNICache,
		Pins:        inv.Pins - base.Pins,
		BPFPrograms: inv.BPFPrograms - base.BPFPrograms,
		BPFMaps:     inv.BPFMaps - base.BPFMaps,
		Processes:   inv.Processes - base.Processes,
		Orphans:     inv.Orphans,
	}
}

// Rows names every count, in table order.
func (inv Inventory) Rows() [][2]any {
	return [][2]any{
		{"links (nodes)", inv.Links}, {"routes (nodes)", inv.Routes}, {"pod netns", inv.PodNetns},
		{"host-local IPs", inv.IPAM}, {"CNI cache entries", inv.CNICache}, {"bpffs pins", inv.Pins},
		{"BPF programs", inv.BPFPrograms}, {"BPF maps", inv.BPFMaps}, {"plugin processes", inv.Processes},
	}
}

// Zero reports whether every count is 0 (orphans aside).
func (inv Inventory) Zero() bool {
	inv.Orphans = nil
	return reflect.ValueOf(inv).IsZero()
}

func countLinksRoutes(n ns.NetNS) (links, routes int, err error) {
	err = n.Do(func(ns.NetNS) error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		ls, err := h.LinkList()
		if err != nil {
			return err
		}
		links = len(ls)
		rs, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		routes = len(rs)
		return err
	})
	return links, routes, err
}

// countFiles counts the regular files under dir whose base name passes keep.
func countFiles(dir string, keep func(string) bool) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() && keep(d.Name()) {
			n++
		}
		return nil
	})
	return n, err
}

// countEntries counts files and directories below root (not root itself).
func countEntries(root string) (int, error) {
	n := -1
	err := filepath.WalkDir(root, func(string, fs.DirEntry, error) error { n++; return nil })
	return max(n, 0), err
}

// processesFrom counts processes started from one of dirs: runtimes and libcni put the
// plugin's path in argv[0] (the bin dirs hold symlinks, so the executable itself would name the
// shared plugin cache).
func processesFrom(dirs []string) (n int, orphans []int, err error) {
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return 0, nil, err
	}
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if !slices.ContainsFunc(dirs, func(d string) bool { return strings.HasPrefix(argv0, d+"/") }) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat")); err == nil && parentPID(string(st)) == 1 {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			orphans = append(orphans, pid)
			continue
		}
		n++
	}
	return n, orphans, nil
}

// parentPID reads the ppid from /proc/<pid>/stat ("pid (comm) state ppid ...").
func parentPID(stat string) int {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
