package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/pkg/bpffs"
)

// hook is one attached program of a pod: a pinned TCX or XDP link, or a legacy cls_bpf filter.
type hook struct {
	kind   string // one of bpffs.LinkHooks
	link   link.Link
	filter *netlink.BpfFilter // legacy TC, in netns
	netns  string
}

func (h *hook) egress() bool { return h.kind == bpffs.HookEgress }

// program is the name of the hook's program in the object.
func (h *hook) program() string {
	switch h.kind {
	case bpffs.HookEgress:
		return "steer_egress"
	case bpffs.HookXDP:
		return "steer_ingress_xdp"
	}
	return "steer_ingress"
}

func (h *hook) programID() (ebpf.ProgramID, error) {
	if h.link == nil {
		return ebpf.ProgramID(h.filter.Id), nil
	}
	info, err := h.link.Info()
	if err != nil {
		return 0, err
	}
	return info.Program, nil
}

// replace swaps the hook's program for coll's, atomically: a link's program is exchanged by
// the kernel (BPF_LINK_UPDATE), a cls_bpf filter replaced under the same handle and priority.
func (h *hook) replace(coll *ebpf.Collection) error {
	prog := coll.Programs[h.program()]
	if prog == nil {
		return fmt.Errorf("object has no program %s", h.program())
	}
	if h.link != nil {
		if err := h.link.Update(prog); err != nil {
			return fmt.Errorf("replace %s program: %w", h.kind, err)
		}
		return nil
	}
	return ns.WithNetNSPath(h.netns, func(ns.NetNS) error {
		f := *h.filter
		f.Fd, f.Id = prog.FD(), 0
		if err := netlink.FilterReplace(&f); err != nil {
			return fmt.Errorf("replace cls_bpf %s program on interface %d: %w", h.kind, f.LinkIndex, err)
		}
		return nil
	})
}

// findHooks opens the pinned links of dir, or, when there are none, the legacy filters in the
// pod's network namespace.
func findHooks(netnsPath, dir string) ([]hook, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var hooks []hook
	for _, e := range entries {
		if !bpffs.IsLinkPin(e.Name()) {
			continue
		}
		l, err := link.LoadPinnedLink(filepath.Join(dir, e.Name()), nil)
		if err != nil {
			closeHooks(hooks)
			return nil, fmt.Errorf("open link %s: %w", e.Name(), err)
		}
		hooks = append(hooks, hook{kind: e.Name()[strings.LastIndexByte(e.Name(), '-')+1:], link: l})
	}
	if len(hooks) > 0 {
		return hooks, nil
	}
	if netnsPath == "" {
		return nil, errors.New("no pinned links: a legacy TC attachment is upgraded only with its network namespace")
	}
	err = ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			for _, kind := range []string{bpffs.HookIngress, bpffs.HookEgress} {
				filters, err := netlink.FilterList(l, clsFilterAttrs(l.Attrs().Index, kind).Parent)
				if err != nil {
					continue // no clsact qdisc
				}
				for _, f := range filters {
					if bf, ok := f.(*netlink.BpfFilter); ok && f.Attrs().Priority == clsPriority {
						hooks = append(hooks, hook{kind: kind, filter: bf, netns: netnsPath})
					}
				}
			}
		}
		return nil
	})
	if err == nil && len(hooks) == 0 {
		err = errors.New("no programs attached")
	}
	return hooks, err
}

func closeHooks(hooks []hook) {
	for _, h := range hooks {
		if h.link != nil {
			h.link.Close()
		}
	}
}

// liveMaps returns the maps the attached programs use, by name: the pinned ones, the unpinned
// data sections (.bss), and after an interrupted upgrade the maps of both builds.
func liveMaps(hooks []hook) (map[string][]*ebpf.Map, error) {
	live := map[string][]*ebpf.Map{}
	seen := map[ebpf.MapID]bool{}
	for i := range hooks {
		id, err := hooks[i].programID()
		if err != nil {
			closeMaps(live)
			return nil, err
		}
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			closeMaps(live)
			return nil, fmt.Errorf("%s program %d: %w", hooks[i].kind, id, err)
		}
		info, err := prog.Info()
		prog.Close()
		if err != nil {
			closeMaps(live)
			return nil, err
		}
		ids, _ := info.MapIDs()
		for _, mid := range ids {
			if seen[mid] {
				continue
			}
			seen[mid] = true
			m, err := ebpf.NewMapFromID(mid)
			if err != nil {
				continue // freed meanwhile
			}
			mi, err := m.Info()
			if err != nil {
				m.Close()
				continue
			}
			live[mi.Name] = append(live[mi.Name], m)
		}
	}
	return live, nil
}

func closeMaps(maps map[string][]*ebpf.Map) {
	for _, ms := range maps {
		for _, m := range ms {
			m.Close()
		}
	}
}
